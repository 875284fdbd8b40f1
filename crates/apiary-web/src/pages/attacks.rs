//! `/ui/attacks/`: the attacks report, its exports, and one session's detail.

use std::collections::HashMap;

use apiary_model::Session;
use apiary_store::Page as StorePage;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use maud::{html, Markup};

use crate::auth::PageCaller;
use crate::error::AppError;
use crate::export;
use crate::ops;
use crate::query::{human, Params};
use crate::state::AppState;

use super::{attacker_link, layout, show_bytes, HtmlError, Page, PageResult};

/// Rows per report page.
const PAGE_SIZE: usize = 50;

fn text_input(p: &Params, name: &str, label: &str, placeholder: &str) -> Markup {
    html! { label { (label) input type="text" name=(name) value=(p.get(name).unwrap_or("")) placeholder=(placeholder); } }
}

fn filter_form(p: &Params, sensors: &[(String, String)], honeypots: &[String]) -> Markup {
    let cur_sensor = p
        .get("identifier")
        .or_else(|| p.get("sensor"))
        .unwrap_or("");
    html! {
        form.filters method="get" action="/ui/attacks/" {
            label { "From (UTC)" input type="text" name="since" value=(p.get("since").unwrap_or("")) placeholder="YYYY-MM-DD[THH:MM]"; }
            label { "To (UTC)" input type="text" name="until" value=(p.get("until").unwrap_or("")) placeholder="YYYY-MM-DD[THH:MM]"; }
            (text_input(p, "hours_ago", "Last hours", ""))
            label { "Sensor" select name="identifier" {
                option value="" { "any" }
                @for (ident, name) in sensors {
                    option value=(ident) selected[ident == cur_sensor] { (name) }
                }
            } }
            label { "Honeypot" select name="honeypot" {
                option value="" { "any" }
                @for h in honeypots {
                    option value=(h) selected[Some(h.as_str()) == p.get("honeypot")] { (h) }
                }
            } }
            (text_input(p, "source_ip", "Source IP / CIDR", ""))
            (text_input(p, "destination_port", "Port", ""))
            (text_input(p, "protocol", "Protocol", ""))
            (text_input(p, "country", "Country", "CC"))
            (text_input(p, "asn", "ASN", ""))
            (text_input(p, "signature", "Signature contains", ""))
            (text_input(p, "credential", "Username/password", ""))
            (text_input(p, "q", "Free text", "exact username/password, or part of a signature or URL"))
            button type="submit" { "Go" }
            a href="/ui/attacks/" { "Reset" }
        }
    }
}

/// Sensor ident → display name.
async fn sensor_names(st: &AppState) -> Result<HashMap<String, String>, AppError> {
    Ok(st
        .store
        .list_sensors()
        .await?
        .into_iter()
        .map(|r| (r.ident, r.name))
        .collect())
}

fn sessions_table(rows: &[Session], names: &HashMap<String, String>) -> Markup {
    html! {
        table {
            tr { th { "Date (UTC)" } th { "Sensor" } th { "Country" } th { "Src IP" } th { "Dst port" } th { "Protocol" } th { "Honeypot" } th { "Detail" } }
            @for s in rows {
                @let ip = s.source_ip.map(|i| i.to_string());
                tr {
                    td { (human(s.timestamp)) }
                    td { (names.get(&s.sensor).map_or(s.sensor.as_str(), String::as_str)) }
                    td { (s.source_geo.as_ref().and_then(|g| g.country_code.as_deref()).unwrap_or("")) }
                    td { @if let Some(ip) = &ip { a href=(attacker_link(ip)) { (ip) } } }
                    td.n { (s.destination_port.map(|p| p.to_string()).unwrap_or_default()) }
                    td { (s.protocol.as_deref().unwrap_or("")) }
                    td { (s.honeypot) }
                    td { @if let Some(id) = s.id { a href=(format!("/ui/session/{id}/")) { "#" (id) } } }
                }
            }
        }
    }
}

/// `GET /ui/attacks/`.
pub async fn report(
    State(st): State<AppState>,
    PageCaller(c): PageCaller,
    p: Params,
) -> PageResult {
    let filter = p.session_filter()?;
    let page = p.page(PAGE_SIZE)?;
    let (rows, next) = ops::find_sessions(&*st.store, filter, p.get("q"), page).await?;
    let names = sensor_names(&st).await?;
    let mut sensors: Vec<(String, String)> =
        names.iter().map(|(a, b)| (a.clone(), b.clone())).collect();
    sensors.sort_by(|a, b| a.1.cmp(&b.1));
    let now = chrono::Utc::now();
    let mut honeypots: Vec<String> = st
        .store
        .top(
            apiary_store::Dimension::Honeypot,
            now - chrono::Duration::days(30),
            now,
            100,
        )
        .await?
        .into_iter()
        .map(|(h, _)| h)
        .collect();
    honeypots.sort();
    let qs = p.with_cursor(None);
    let body = html! {
        (filter_form(&p, &sensors, &honeypots))
        p {
            "Export the filtered set: "
            a href=(format!("/ui/attacks/export.csv?{qs}")) { "CSV" } " · "
            a href=(format!("/ui/attacks/export.json?{qs}")) { "JSON" }
        }
        @if rows.is_empty() { p { "No attacks match." } }
        (sessions_table(&rows, &names))
        p {
            @if p.get("cursor").is_some() { a href=(format!("/ui/attacks/?{qs}")) { "« Newest" } " " }
            @if let Some(n) = &next { a href=(format!("/ui/attacks/?{}", p.with_cursor(Some(n)))) { "Older »" } }
        }
    };
    Ok(Page(layout("Attacks report", &c, body)))
}

/// Sessions fetched per store call while exporting.
const EXPORT_PAGE: usize = 2_000;

/// Where an export stream is: the next page's cursor, or the end.
enum ExportPos {
    Start,
    After(apiary_store::Cursor),
    Done,
}

/// The filtered sessions, oldest page last, as a stream of encoded chunks: one store page
/// at a time, so an export of millions of sessions holds one page in memory, and the
/// client starts receiving at once. `head` comes first, each page is `encode`d, and
/// `tail(rows written)` closes the stream. A store error mid-way ends the stream with an
/// error (the client sees a truncated transfer, never a silently short file).
fn export_stream(
    st: AppState,
    filter: apiary_store::SessionFilter,
    q: Option<String>,
    head: String,
    encode: impl Fn(&[Session], u64, &mut String) + Send + Sync + 'static,
    tail: impl Fn(u64) -> String + Send + Sync + 'static,
) -> Body {
    let (encode, tail) = (std::sync::Arc::new(encode), std::sync::Arc::new(tail));
    let first = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(head)) });
    let pages = futures::stream::unfold((ExportPos::Start, 0u64), move |(pos, written)| {
        let (st, filter, q) = (st.clone(), filter.clone(), q.clone());
        let (encode, tail) = (encode.clone(), tail.clone());
        let after = match pos {
            ExportPos::Start => None,
            ExportPos::After(c) => Some(c),
            ExportPos::Done => return futures::future::Either::Left(async { None }),
        };
        let mut out = String::new();
        let chunk = async move {
            let page = StorePage {
                limit: EXPORT_PAGE,
                after,
            };
            match ops::find_sessions(&*st.store, filter, q.as_deref(), page).await {
                Ok((rows, next)) => {
                    encode(&rows, written, &mut out);
                    let written = written + rows.len() as u64;
                    let pos = match next {
                        Some(c) => ExportPos::After(c),
                        None => {
                            out.push_str(&tail(written));
                            ExportPos::Done
                        }
                    };
                    Some((Ok(Bytes::from(out)), (pos, written)))
                }
                Err(e) => {
                    tracing::warn!(error = ?e, "export stopped by a store error");
                    Some((
                        Err(std::io::Error::other("export stopped by a store error")),
                        (ExportPos::Done, written),
                    ))
                }
            }
        };
        futures::future::Either::Right(chunk)
    });
    Body::from_stream(first.chain(pages))
}

/// `GET /ui/attacks/export.csv`: every session of the filtered set, streamed.
pub async fn export_csv(
    State(st): State<AppState>,
    PageCaller(_c): PageCaller,
    p: Params,
) -> Result<Response, HtmlError> {
    let filter = p.session_filter()?;
    let mut head = String::new();
    export::header(&mut head);
    let body = export_stream(
        st,
        filter,
        p.get("q").map(str::to_owned),
        head,
        |rows, _, out| {
            for s in rows {
                export::row(out, s);
            }
        },
        |_| String::new(),
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"apiary-attacks.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}

/// `GET /ui/attacks/export.json`: `{"data": [...], "meta": {"size", "query"}}`, streamed.
pub async fn export_json(
    State(st): State<AppState>,
    PageCaller(_c): PageCaller,
    p: Params,
) -> Result<Response, HtmlError> {
    let filter = p.session_filter()?;
    let query = p.echo();
    let body = export_stream(
        st,
        filter,
        p.get("q").map(str::to_owned),
        "{\"data\":[".to_owned(),
        |rows, written, out| {
            for (i, s) in rows.iter().enumerate() {
                if written + i as u64 > 0 {
                    out.push(',');
                }
                out.push_str(&crate::api::session_json(s, true).to_string());
            }
        },
        move |n| {
            format!(
                "],\"meta\":{}}}",
                serde_json::json!({"size": n, "query": query})
            )
        },
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"apiary-attacks.json\"",
            ),
        ],
        body,
    )
        .into_response())
}

fn kv(k: &str, v: Option<String>) -> Markup {
    html! { tr { th { (k) } td { (v.unwrap_or_default()) } } }
}

/// `GET /ui/session/<id>/`: everything stored about one session, raw payload included.
pub async fn detail(
    State(st): State<AppState>,
    PageCaller(c): PageCaller,
    Path(id): Path<String>,
) -> PageResult {
    let id: i64 = id.parse().map_err(|_| AppError::NotFound)?;
    let s = st.store.session(id).await?.ok_or(AppError::NotFound)?;
    let raw = match s.raw_id {
        Some(r) => st.store.raw(r).await?,
        None => None,
    };
    let names = sensor_names(&st).await?;
    let d = &s.details;
    let g = s.source_geo.clone().unwrap_or_default();
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let body = html! {
        table {
            (kv("Time (UTC)", Some(human(s.timestamp))))
            (kv("Sensor", Some(format!("{} ({})", names.get(&s.sensor).map_or("", String::as_str), s.sensor))))
            (kv("Honeypot", Some(s.honeypot.clone())))
            (kv("Channel", Some(s.channel.clone())))
            (kv("Protocol", s.protocol.clone()))
            tr { th { "Source" } td {
                @if let Some(ip) = s.source_ip { a href=(attacker_link(&ip.to_string())) { (ip) } }
                @if let Some(p) = s.source_port { ":" (p) }
                @if s.internal { " (internal)" }
            } }
            (kv("Destination", Some(format!("{}:{}", s.destination_ip.map(|i| i.to_string()).unwrap_or_default(), s.destination_port.map(|p| p.to_string()).unwrap_or_default()))))
            (kv("Country", g.country_code.clone().map(|cc| format!("{cc} {}", g.country.clone().unwrap_or_default()))))
            (kv("City", g.city.clone()))
            (kv("ASN", g.asn.map(|a| format!("AS{a} {}", g.as_org.clone().unwrap_or_default()))))
            (kv("SSH client", d.ssh_version.clone()))
            (kv("Logged in", d.logged_in.map(|b| b.to_string())))
        }
        @if let Some(ids) = &d.ids {
            h2 { "IDS alert" }
            table {
                (kv("Signature", Some(ids.signature.clone())))
                (kv("SID", ids.signature_id.map(|v| v.to_string())))
                (kv("Classification", ids.classification.clone()))
                (kv("Priority", ids.priority.map(|v| v.to_string())))
                (kv("Action", ids.action.clone()))
            }
        }
        @if !d.credentials.is_empty() {
            h2 { "Credentials tried" }
            table { tr { th { "Username" } th { "Password" } }
                @for cr in &d.credentials { tr { td { (cr.username) } td { (cr.password) } } } }
        }
        @if !d.commands.is_empty() { h2 { "Commands" } pre { @for cmd in &d.commands { (cmd) "\n" } } }
        @if !d.urls.is_empty() { h2 { "URLs" } ul { @for u in &d.urls { li { (u) } } } }
        @if !d.hashes.is_empty() { h2 { "File hashes" } ul { @for h in &d.hashes { li { (h) } } } }
        @if let Some(h) = &d.http {
            h2 { "HTTP request" }
            table {
                (kv("Method", h.method.clone())) (kv("Path", h.path.clone())) (kv("Host", h.host.clone())) (kv("User-Agent", h.user_agent.clone()))
                @for (k, v) in &h.headers { (kv(k, Some(v.clone()))) }
            }
            @if let Some(b) = &h.body { pre { (b) } }
        }
        @if let Some(ics) = &d.ics { h2 { "ICS data" } pre { (pretty(ics)) } }
        @if let Some(extra) = &d.extra { h2 { "Extra" } pre { (pretty(extra)) } }
        h2 { "Raw message" }
        @match &raw {
            Some(r) => {
                p { "#" (r.event.id.unwrap_or_default()) " on " (r.event.channel) " from " (r.event.ident) " at " (human(r.event.received_at)) " — " (r.status.as_str())
                    @if let Some(e) = &r.error { " (" (e) ")" } }
                pre { (show_bytes(&r.event.payload)) }
            }
            None => p { "Not kept (pruned by retention, or imported without one)." },
        }
    };
    Ok(Page(layout(&format!("Session #{id}"), &c, body)))
}
