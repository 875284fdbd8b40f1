//! `/` and `/ui/dashboard/`: the last 24 hours.

use std::collections::HashMap;
use std::sync::Arc;

use apiary_store::{Dimension, HourCount, SessionFilter, Store};
use axum::extract::State;
use chrono::{Duration, Utc};
use maud::{html, Markup};

use crate::auth::PageCaller;
use crate::error::AppError;
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

/// Everything the dashboard shows; computed once per cache period for every viewer.
pub struct DashboardData {
    total: u64,
    hours: Vec<HourCount>,
    ips: Vec<(String, u64)>,
    ports: Vec<(String, u64)>,
    honeypots: Vec<(String, u64)>,
    sensors: Vec<(String, u64)>,
    sigs: Vec<(String, u64)>,
    users: Vec<(String, u64)>,
    passwords: Vec<(String, u64)>,
    /// Sensor ident → display name.
    names: HashMap<String, String>,
    /// Top source address → country code of its latest session.
    countries: HashMap<String, String>,
}

/// Runs the dashboard's queries, all at once: each is a separate read (roll-up scans,
/// the sensor list, one source-index probe per top address), and the SQLite backend has
/// several reader connections, so the page takes about as long as its slowest query
/// rather than their sum.
async fn load(store: Arc<dyn Store>) -> Result<DashboardData, AppError> {
    let started = std::time::Instant::now();
    let now = Utc::now();
    let since = now - Duration::hours(24);
    let s = &*store;
    let top = |d| s.top(d, since, now, 5);
    let (total, hours, ips, ports, honeypots, sensors, sigs, users, passwords, list) = futures::try_join!(
        s.total_sessions(since, now),
        s.counts_per_hour(since, now, None),
        top(Dimension::SourceIp),
        top(Dimension::DestinationPort),
        top(Dimension::Honeypot),
        top(Dimension::Sensor),
        top(Dimension::Signature),
        top(Dimension::Username),
        top(Dimension::Password),
        s.list_sensors(),
    )?;
    let names = list.into_iter().map(|r| (r.ident, r.name)).collect();
    let lookups = ips.iter().filter_map(|(ip, _)| {
        let net = parse_net(ip)?;
        let f = SessionFilter {
            source: Some(net),
            ..Default::default()
        };
        Some(async move {
            let (rows, _) = s.sessions(f, apiary_store::Page::first(1)).await?;
            let cc = rows
                .first()
                .and_then(|r| r.source_geo.as_ref())
                .and_then(|g| g.country_code.clone());
            Ok::<_, apiary_store::StoreError>(cc.map(|cc| (ip.clone(), cc)))
        })
    });
    let countries = futures::future::try_join_all(lookups)
        .await?
        .into_iter()
        .flatten()
        .collect();
    tracing::debug!(
        ms = started.elapsed().as_secs_f64() * 1e3,
        "dashboard figures computed"
    );
    Ok(DashboardData {
        total,
        hours,
        ips,
        ports,
        honeypots,
        sensors,
        sigs,
        users,
        passwords,
        names,
        countries,
    })
}

/// `GET /ui/dashboard/`.
pub async fn show(State(st): State<AppState>, PageCaller(c): PageCaller, _p: Params) -> PageResult {
    let store = st.store.clone();
    let data = st.dashboard.get(move || load(store)).await?;
    let d = &*data;
    let points: Vec<(String, u64)> = d
        .hours
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
            p { "Attacks in the last 24 hours: " a.big href="/ui/attacks/?hours_ago=24" { (thousands(d.total)) } }
            (bar_chart(&points, 720, 120))
        }
        div.grid {
            div.card {
                h2 { "Top 5 attacker IPs" }
                @if d.ips.is_empty() { p { "None." } }
                table {
                    @for (ip, n) in &d.ips {
                        tr {
                            td { a href=(attacker_link(ip)) { (ip) } }
                            td { @if let Some(cc) = d.countries.get(ip) { a href=(report_link("country", cc)) { (cc) } } @else { "?" } }
                            td.n { a href=(report_link("source_ip", ip)) { (thousands(*n)) } }
                        }
                    }
                }
            }
            (top_list("Top 5 attacked ports", &d.ports, |v| report_link("destination_port", v), str::to_owned))
            (top_list("Top 5 honeypots", &d.honeypots, |v| report_link("honeypot", v), str::to_owned))
            (top_list("Top 5 sensors", &d.sensors, |v| report_link("identifier", v), |v| d.names.get(v).cloned().unwrap_or_else(|| v.to_owned())))
            (top_list("Top 5 IDS signatures", &d.sigs, |v| report_link("signature", v), str::to_owned))
            (top_list("Top 5 usernames", &d.users, |v| report_link("credential", v), str::to_owned))
            (top_list("Top 5 passwords", &d.passwords, |v| report_link("credential", v), str::to_owned))
        }
    };
    Ok(Page(layout("Dashboard", &c, body)))
}
