//! `/ui/attacker/<ip>/`: one source address.

use apiary_store::{Dimension, Page as StorePage, SessionFilter};
use axum::extract::{Path, State};
use chrono::{Duration, Utc};
use maud::html;

use crate::auth::PageCaller;
use crate::query::{human, parse_ip_path};
use crate::state::AppState;

use super::{bar_chart, layout, report_link, thousands, Page, PageResult};

/// `GET /ui/attacker/<ip>/`.
pub async fn show(
    State(st): State<AppState>,
    PageCaller(c): PageCaller,
    Path(ip): Path<String>,
) -> PageResult {
    let ip = parse_ip_path(&ip)?;
    let ip_s = ip.to_string();
    let a = st.store.attacker_stats(ip, None).await?;
    let f = SessionFilter {
        source: Some(ip.into()),
        ..Default::default()
    };
    let (latest, _) = st.store.sessions(f, StorePage::first(1)).await?;
    let geo = latest
        .first()
        .and_then(|s| s.source_geo.clone())
        .unwrap_or_default();
    let now = Utc::now();
    let hours = st
        .store
        .counts_per_hour(
            now - Duration::days(7),
            now,
            Some((Dimension::SourceIp, ip_s.clone())),
        )
        .await?;
    let points: Vec<(String, u64)> = hours
        .iter()
        .map(|h| (h.hour.format("%m-%d %H:00").to_string(), h.count))
        .collect();
    let meta = st.store.metadata_for(&ip_s).await?;
    let body = html! {
        table {
            tr { th { "Sessions" } td { a href=(report_link("source_ip", &ip_s)) { (thousands(a.count)) } } }
            tr { th { "First seen (UTC)" } td { (a.first_seen.map(human).unwrap_or_default()) } }
            tr { th { "Last seen (UTC)" } td { (a.last_seen.map(human).unwrap_or_default()) } }
            tr { th { "Country" } td { (geo.country_code.clone().unwrap_or_default()) " " (geo.country.clone().unwrap_or_default()) " " (geo.city.clone().unwrap_or_default()) } }
            tr { th { "ASN" } td { @if let Some(asn) = geo.asn { "AS" (asn) " " } (geo.as_org.clone().unwrap_or_default()) } }
            @if let Some(m) = &meta {
                tr { th { "p0f" } td { (m.metadata.os.clone().unwrap_or_default()) " " (m.metadata.app.clone().unwrap_or_default()) " " (m.metadata.link.clone().unwrap_or_default()) } }
            }
            tr { th { "Sensors" } td { @for s in &a.sensors { a href=(report_link("identifier", s)) { (s) } " " } } }
            tr { th { "Honeypots" } td { @for h in &a.honeypots { (h) " " } } }
            tr { th { "Ports" } td { @for p in &a.ports { (p) " " } } }
        }
        h2 { "Sessions per hour, last 7 days" }
        (bar_chart(&points, 840, 100))
        h2 { "Credentials tried" }
        table { tr { th { "Username" } th { "Password" } th { "Times" } }
            @for (cr, n) in &a.credentials { tr { td { (cr.username) } td { (cr.password) } td.n { (n) } } } }
        h2 { "URLs" }
        ul { @for u in &a.urls { li { (u) } } }
        h2 { "Commands" }
        pre { @for cmd in &a.commands { (cmd) "\n" } }
    };
    Ok(Page(layout(&format!("Attacker {ip_s}"), &c, body)))
}
