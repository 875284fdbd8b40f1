//! `/ui/payloads/`: raw messages per channel, searchable.

use apiary_store::{Dimension, RawQuery, RawStatus};
use axum::extract::State;
use chrono::{Duration, Utc};
use maud::html;

use crate::auth::PageCaller;
use crate::query::{human, Params};
use crate::state::AppState;

use super::{layout, show_bytes, Page, PageResult};

/// Characters of a payload shown in the list.
const PREVIEW: usize = 400;

/// `GET /ui/payloads/`.
pub async fn show(State(st): State<AppState>, PageCaller(c): PageCaller, p: Params) -> PageResult {
    let page = p.page(25)?;
    let q = RawQuery {
        channel: p.get("channel").map(str::to_owned),
        ident: p.get("ident").map(str::to_owned),
        text: p.get("payload").map(str::to_owned),
        status: p.get("status").and_then(RawStatus::parse),
    };
    let (rows, next) = st.store.raw_messages(q, page).await?;
    let now = Utc::now();
    let mut channels: Vec<String> = st
        .store
        .top(Dimension::Channel, now - Duration::days(30), now, 200)
        .await?
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    channels.sort();
    let qs = p.with_cursor(None);
    let body = html! {
        form.filters method="get" action="/ui/payloads/" {
            label { "Channel" select name="channel" {
                option value="" { "any" }
                @for ch in &channels { option value=(ch) selected[Some(ch.as_str()) == p.get("channel")] { (ch) } }
            } }
            label { "Ident" input type="text" name="ident" value=(p.get("ident").unwrap_or("")); }
            label { "Payload contains" input type="text" name="payload" value=(p.get("payload").unwrap_or("")); }
            label { "Status" select name="status" {
                option value="" { "any" }
                @for s in ["pending", "normalized", "error"] { option value=(s) selected[Some(s) == p.get("status")] { (s) } }
            } }
            button type="submit" { "Go" }
        }
        @if rows.is_empty() { p { "No messages match." } }
        table {
            tr { th { "#" } th { "Received (UTC)" } th { "Channel" } th { "Ident" } th { "Status" } th { "Payload" } }
            @for r in &rows {
                @let text = show_bytes(&r.event.payload);
                @let preview: String = text.chars().take(PREVIEW).collect();
                tr {
                    td.n { (r.event.id.unwrap_or_default()) }
                    td { (human(r.event.received_at)) }
                    td { (r.event.channel) }
                    td { (r.event.ident) }
                    td { (r.status.as_str()) @if let Some(e) = &r.error { br; small { (e) } } }
                    td { pre { (preview) @if text.chars().count() > PREVIEW { "…" } } }
                }
            }
        }
        p {
            @if p.get("cursor").is_some() { a href=(format!("/ui/payloads/?{qs}")) { "« Newest" } " " }
            @if let Some(n) = &next { a href=(format!("/ui/payloads/?{}", p.with_cursor(Some(n)))) { "Older »" } }
        }
    };
    Ok(Page(layout("Payloads", &c, body)))
}
