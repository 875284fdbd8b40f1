//! `/` and `/ui/dashboard/`: the last 24 hours.

use std::collections::HashMap;

use apiary_store::{Dimension, SessionFilter};
use axum::extract::State;
use chrono::{Duration, Utc};
use maud::{html, Markup};

use crate::auth::PageCaller;
use crate::query::{parse_net, Params};
use crate::state::AppState;

use super::{attacker_link, bar_chart, layout, report_link, thousands, Page, PageResult};

fn top_list(
    title: &str,
    rows: &[(String, u64)],
    link: impl Fn(&str) -> String,
    label: impl Fn(&str) -> String,
) -> Markup {
    html! {
        div.card {
            h2 { (title) }
            @if rows.is_empty() { p { "None." } }
            table {
                @for (v, n) in rows {
                    tr { td { a href=(link(v)) { (label(v)) } } td.n { (thousands(*n)) } }
                }
            }
        }
    }
}

/// `GET /ui/dashboard/`.
pub async fn show(State(st): State<AppState>, PageCaller(c): PageCaller, _p: Params) -> PageResult {
    let now = Utc::now();
    let since = now - Duration::hours(24);
    let s = &*st.store;
    let total = s.total_sessions(since, now).await?;
    let hours = s.counts_per_hour(since, now, None).await?;
    let top = |d| s.top(d, since, now, 5);
    let ips = top(Dimension::SourceIp).await?;
    let ports = top(Dimension::DestinationPort).await?;
    let honeypots = top(Dimension::Honeypot).await?;
    let sensors = top(Dimension::Sensor).await?;
    let sigs = top(Dimension::Signature).await?;
    let users = top(Dimension::Username).await?;
    let passwords = top(Dimension::Password).await?;
    let names: HashMap<String, String> = s
        .list_sensors()
        .await?
        .into_iter()
        .map(|r| (r.ident, r.name))
        .collect();
    let mut countries = HashMap::new();
    for (ip, _) in &ips {
        let Some(net) = parse_net(ip) else { continue };
        let f = SessionFilter {
            source: Some(net),
            ..Default::default()
        };
        let (rows, _) = s.sessions(f, apiary_store::Page::first(1)).await?;
        if let Some(cc) = rows
            .first()
            .and_then(|r| r.source_geo.as_ref())
            .and_then(|g| g.country_code.clone())
        {
            countries.insert(ip.clone(), cc);
        }
    }
    let points: Vec<(String, u64)> = hours
        .iter()
        .map(|h| (h.hour.format("%m-%d %H:00").to_string(), h.count))
        .collect();
    let body = html! {
        div.card #live-ticker {
            "Live: " strong #live-count { "0" } " events since this page opened, "
            strong #live-rate { "0.0" } " per second. " a href="/ui/map/" { "Open the live map" }
            ul #live-lines {}
        }
        script src=(format!("/static/map/live.js?v={}", crate::live::ASSET_VERSION)) {}
        div.card {
            p { "Attacks in the last 24 hours: " a.big href="/ui/attacks/?hours_ago=24" { (thousands(total)) } }
            (bar_chart(&points, 720, 120))
        }
        div.grid {
            div.card {
                h2 { "Top 5 attacker IPs" }
                @if ips.is_empty() { p { "None." } }
                table {
                    @for (ip, n) in &ips {
                        tr {
                            td { a href=(attacker_link(ip)) { (ip) } }
                            td { @if let Some(cc) = countries.get(ip) { a href=(report_link("country", cc)) { (cc) } } @else { "?" } }
                            td.n { a href=(report_link("source_ip", ip)) { (thousands(*n)) } }
                        }
                    }
                }
            }
            (top_list("Top 5 attacked ports", &ports, |v| report_link("destination_port", v), str::to_owned))
            (top_list("Top 5 honeypots", &honeypots, |v| report_link("honeypot", v), str::to_owned))
            (top_list("Top 5 sensors", &sensors, |v| report_link("identifier", v), |v| names.get(v).cloned().unwrap_or_else(|| v.to_owned())))
            (top_list("Top 5 IDS signatures", &sigs, |v| report_link("signature", v), str::to_owned))
            (top_list("Top 5 usernames", &users, |v| report_link("credential", v), str::to_owned))
            (top_list("Top 5 passwords", &passwords, |v| report_link("credential", v), str::to_owned))
        }
    };
    Ok(Page(layout("Dashboard", &c, body)))
}
