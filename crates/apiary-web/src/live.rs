//! The live feed: `GET /api/live` (Server-Sent Events), `GET /api/live/history` (replay
//! from the store) and the static assets of the live map.
//!
//! Ingest publishes committed sessions on a bounded `tokio::sync::broadcast` channel held by
//! the [`LiveHub`]. Each SSE client has its own receiver: sending never waits for a client,
//! and a client that reads too slowly (or not at all) loses the oldest events for itself
//! only — counted in `apiary_live_lagged_events_total` and announced to that client as a
//! `lagged` event. Ingest and other clients are never slowed down.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use apiary_model::live::{LatLon, LiveEvent};
use apiary_store::{Page, SessionFilter};
use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use futures::Stream;
use tokio::sync::{broadcast, watch};

use crate::auth::Caller;
use crate::error::AppError;
use crate::query::Params;
use crate::state::AppState;

/// Events buffered per client before it starts losing them.
pub const DEFAULT_CAPACITY: usize = 4096;
/// Most events one history request returns.
pub const HISTORY_MAX: usize = 20_000;
/// Seconds between keep-alive comments.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The live channel and its counters.
pub struct LiveHub {
    tx: broadcast::Sender<Arc<LiveEvent>>,
    closed: watch::Sender<bool>,
    /// The server's own map position (sensor fallback).
    pub server_location: Option<LatLon>,
    /// Events lost by slow clients (sum over clients).
    pub lagged: AtomicU64,
    /// Events written to clients.
    pub delivered: AtomicU64,
    /// Clients connected now.
    pub clients: AtomicU64,
    /// Clients ever connected.
    pub connections: AtomicU64,
}

impl Default for LiveHub {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY, None)
    }
}

impl LiveHub {
    /// A hub whose clients may fall `capacity` events behind.
    pub fn new(capacity: usize, server_location: Option<LatLon>) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        let (closed, _) = watch::channel(false);
        Self {
            tx,
            closed,
            server_location,
            lagged: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            clients: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        }
    }

    /// The sender ingest publishes on.
    pub fn sender(&self) -> broadcast::Sender<Arc<LiveEvent>> {
        self.tx.clone()
    }

    /// Ends every stream (server shutdown).
    pub fn close(&self) {
        let _ = self.closed.send(true);
    }

    /// Prometheus text.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        for (name, kind, help, v) in [
            (
                "apiary_live_lagged_events_total",
                "counter",
                "Live events lost by slow SSE clients (each client loses only its own).",
                &self.lagged,
            ),
            (
                "apiary_live_delivered_events_total",
                "counter",
                "Live events written to SSE clients.",
                &self.delivered,
            ),
            (
                "apiary_live_clients",
                "gauge",
                "SSE clients connected.",
                &self.clients,
            ),
            (
                "apiary_live_connections_total",
                "counter",
                "SSE clients ever connected.",
                &self.connections,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Relaxed)
            );
        }
    }
}

/// `honeypot`, `sensor` and `country` filters (exact, case-insensitive).
#[derive(Debug, Clone, Default)]
pub struct LiveFilter {
    honeypot: Option<String>,
    sensor: Option<String>,
    country: Option<String>,
}

impl LiveFilter {
    /// From the query string.
    pub fn from_params(p: &Params) -> Self {
        let g = |k: &str| p.get(k).map(str::to_owned);
        Self {
            honeypot: g("honeypot"),
            sensor: g("sensor"),
            country: g("country"),
        }
    }

    /// Whether `e` passes.
    pub fn matches(&self, e: &LiveEvent) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| match want {
            None => true,
            Some(w) => have.is_some_and(|h| h.eq_ignore_ascii_case(w)),
        };
        eq(&self.honeypot, Some(&e.honeypot))
            && eq(&self.sensor, Some(&e.sensor))
            && eq(&self.country, e.source.country_code.as_deref())
    }
}

struct ClientGuard(Arc<LiveHub>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Relaxed);
    }
}

struct ClientState {
    rx: broadcast::Receiver<Arc<LiveEvent>>,
    closed: watch::Receiver<bool>,
    filter: LiveFilter,
    hub: Arc<LiveHub>,
    _guard: ClientGuard,
}

fn client_stream(
    hub: Arc<LiveHub>,
    filter: LiveFilter,
) -> impl Stream<Item = Result<Event, Infallible>> {
    hub.clients.fetch_add(1, Relaxed);
    hub.connections.fetch_add(1, Relaxed);
    let st = ClientState {
        rx: hub.tx.subscribe(),
        closed: hub.closed.subscribe(),
        filter,
        hub: hub.clone(),
        _guard: ClientGuard(hub),
    };
    futures::stream::unfold(st, |mut st| async move {
        loop {
            if *st.closed.borrow() {
                return None;
            }
            let got = tokio::select! {
                r = st.rx.recv() => r,
                _ = st.closed.changed() => return None,
            };
            match got {
                Ok(ev) => {
                    if !st.filter.matches(&ev) {
                        continue;
                    }
                    let Ok(json) = serde_json::to_string(&*ev) else {
                        continue;
                    };
                    st.hub.delivered.fetch_add(1, Relaxed);
                    return Some((Ok(Event::default().event("attack").data(json)), st));
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    st.hub.lagged.fetch_add(n, Relaxed);
                    let ev = Event::default().event("lagged").data(n.to_string());
                    return Some((Ok(ev), st));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

/// `GET /api/live`: an SSE stream of `attack` events (JSON [`LiveEvent`]s), `lagged`
/// events (the number this client lost) and keep-alive comments.
pub async fn stream(State(st): State<AppState>, _c: Caller, p: Params) -> Response {
    let filter = LiveFilter::from_params(&p);
    let events = client_stream(st.live.clone(), filter);
    let mut resp = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response();
    // Tell buffering proxies to pass events through at once.
    resp.headers_mut()
        .insert("x-accel-buffering", header::HeaderValue::from_static("no"));
    resp
}

fn parse_time(p: &Params, k: &str) -> Result<Option<DateTime<Utc>>, AppError> {
    p.get(k)
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| AppError::BadRequest(format!("\"{k}\" must be an RFC 3339 time.")))
        })
        .transpose()
}

/// `GET /api/live/history?minutes=15` or `?since=…&until=…` (RFC 3339), with `limit`
/// (default 5000, at most 20000) and the live filters: the sessions of that window as live
/// events, oldest first. When more matched than `limit`, the newest are returned and
/// `truncated` is true.
pub async fn history(
    State(st): State<AppState>,
    _c: Caller,
    p: Params,
) -> Result<Response, AppError> {
    let now = Utc::now();
    let until = parse_time(&p, "until")?.unwrap_or(now);
    let since = match parse_time(&p, "since")? {
        Some(t) => t,
        None => {
            let minutes: i64 = match p.get("minutes") {
                None => 15,
                Some(v) => v
                    .parse()
                    .ok()
                    .filter(|m| (1..=60 * 24 * 366).contains(m))
                    .ok_or_else(|| {
                        AppError::BadRequest("\"minutes\" must be 1 to 527040.".into())
                    })?,
            };
            until - chrono::Duration::minutes(minutes)
        }
    };
    if since >= until {
        return Err(AppError::BadRequest(
            "\"since\" must be before \"until\".".into(),
        ));
    }
    let limit: usize = match p.get("limit") {
        None => 5000,
        Some(v) => v
            .parse()
            .ok()
            .filter(|l| (1..=HISTORY_MAX).contains(l))
            .ok_or_else(|| {
                AppError::BadRequest(format!("\"limit\" must be 1 to {HISTORY_MAX}."))
            })?,
    };
    let mut filter = SessionFilter {
        since: Some(since),
        until: Some(until),
        honeypot: p.get("honeypot").map(str::to_owned),
        sensor: p.get("sensor").map(str::to_owned),
        country: p.get("country").map(|c| c.to_ascii_uppercase()),
        ..Default::default()
    };
    if let Some(h) = &mut filter.honeypot {
        h.make_ascii_lowercase();
    }
    let sensors: HashMap<String, LatLon> = st
        .store
        .list_sensors()
        .await?
        .into_iter()
        .filter_map(|r| match (r.latitude, r.longitude) {
            (Some(lat), Some(lon)) => Some((r.ident, LatLon { lat, lon })),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    let mut page = Page::first(limit.min(Page::MAX));
    let mut truncated = false;
    loop {
        let (rows, cursor) = st.store.sessions(filter.clone(), page).await?;
        for s in &rows {
            if out.len() == limit {
                truncated = true;
                break;
            }
            let loc = sensors.get(&s.sensor).copied();
            out.push(LiveEvent::from_session(
                s,
                None,
                loc,
                st.live.server_location,
            ));
        }
        match cursor {
            Some(c) if !truncated && out.len() < limit => {
                page = Page::after((limit - out.len()).min(Page::MAX), c)
            }
            Some(_) if out.len() == limit => {
                truncated = true;
                break;
            }
            _ => break,
        }
    }
    out.reverse();
    Ok(Json(serde_json::json!({
        "since": since,
        "until": until,
        "truncated": truncated,
        "events": out,
    }))
    .into_response())
}

/// Static assets of the map: (content type, cache-control, bytes).
fn asset(name: &str) -> Option<(&'static str, &'static str, &'static [u8])> {
    const DAY: &str = "public, max-age=86400";
    const WEEK: &str = "public, max-age=604800";
    Some(match name {
        "map.js" => (
            "text/javascript; charset=utf-8",
            DAY,
            include_bytes!("../static/map/map.js"),
        ),
        "live.js" => (
            "text/javascript; charset=utf-8",
            DAY,
            include_bytes!("../static/map/live.js"),
        ),
        "countries-110m.json" => (
            "application/json",
            WEEK,
            include_bytes!("../static/map/countries-110m.json"),
        ),
        "LICENSE" => (
            "text/plain; charset=utf-8",
            WEEK,
            include_bytes!("../static/map/LICENSE"),
        ),
        _ => return None,
    })
}

/// `GET /static/map/{name}`: no sign-in needed (code and public-domain outlines only).
/// URLs carry the crate version (`?v=`) so caching across upgrades is safe.
pub async fn static_map(
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<Response, AppError> {
    let (ct, cache, body) = asset(&name).ok_or(AppError::NotFound)?;
    Ok((
        [(header::CONTENT_TYPE, ct), (header::CACHE_CONTROL, cache)],
        body,
    )
        .into_response())
}

/// Version tag for asset URLs.
pub const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_matches_case_insensitively() {
        let ev = LiveEvent {
            time: Utc::now(),
            session_id: None,
            raw_id: Some(1),
            source_ip: Some("1.2.3.4".into()),
            source: apiary_model::live::LiveGeo {
                country_code: Some("DE".into()),
                ..Default::default()
            },
            sensor: "s1".into(),
            sensor_location: None,
            location_source: apiary_model::live::LocationSource::None,
            destination: None,
            honeypot: "cowrie".into(),
            channel: "cowrie.sessions".into(),
            destination_port: Some(22),
            protocol: None,
            summary: String::new(),
        };
        let f = |q: &[(&str, &str)]| {
            LiveFilter::from_params(&Params(
                q.iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
            ))
        };
        assert!(f(&[]).matches(&ev));
        assert!(f(&[("country", "de"), ("honeypot", "Cowrie")]).matches(&ev));
        assert!(!f(&[("country", "US")]).matches(&ev));
        assert!(!f(&[("sensor", "s2")]).matches(&ev));
        assert!(asset("countries-110m.json").is_some() && asset("../x").is_none());
    }
}
