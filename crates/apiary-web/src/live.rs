//! The live feed: `GET /api/live` (Server-Sent Events), `GET /api/live/history` (replay
//! from the store) and the static assets of the live map.
//!
//! Ingest publishes committed sessions on a bounded `tokio::sync::broadcast` channel held by
//! the [`LiveHub`], as [`LiveChunk`]s: each event is serialized once into a finished SSE
//! frame and every client writes those same bytes (a `Bytes` clone, no copy, no per-client
//! JSON). Each SSE client has its own receiver: sending never waits for a client, and a
//! client that reads too slowly (or not at all) loses the oldest chunks for itself only —
//! the events lost (exact, from the chunks' sequence numbers) are counted in
//! `apiary_live_lagged_events_total` and announced to that client as a `lagged` event.
//! Ingest and other clients are never slowed down.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use apiary_model::live::{LatLon, LiveChunk, LiveEvent, CHUNK_EVENTS};
use apiary_store::{Page, SessionFilter};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
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
/// Most bytes one write to a client gathers from chunks already waiting.
const WRITE_MAX: usize = 256 * 1024;
/// Least time between two writes to one client. Events that come sooner wait and go out
/// together: under a flood each client is woken and written to at most 50 times a second
/// (fewer wake-ups and system calls for the server and the client); at ordinary rates
/// (one ingest batch every `batch_delay_ms`, 50 ms by default) nothing waits.
const WRITE_GAP: Duration = Duration::from_millis(20);

/// The live channel and its counters.
pub struct LiveHub {
    tx: broadcast::Sender<Arc<LiveChunk>>,
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
    /// A hub whose clients may fall about `capacity` events behind (the channel holds
    /// chunks of up to [`CHUNK_EVENTS`] events).
    pub fn new(capacity: usize, server_location: Option<LatLon>) -> Self {
        let (tx, _) = broadcast::channel(capacity.div_ceil(CHUNK_EVENTS).max(16));
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
    pub fn sender(&self) -> broadcast::Sender<Arc<LiveChunk>> {
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
        let g = |k: &str| p.get(k).filter(|v| !v.is_empty()).map(str::to_owned);
        Self {
            honeypot: g("honeypot"),
            sensor: g("sensor"),
            country: g("country"),
        }
    }

    /// Whether every event passes.
    pub fn is_empty(&self) -> bool {
        self.honeypot.is_none() && self.sensor.is_none() && self.country.is_none()
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

    /// The frames of `chunk` this filter passes, and how many events that is. Unfiltered
    /// clients get the chunk's own buffer.
    fn select(&self, chunk: &LiveChunk, out: &mut Vec<Bytes>) -> u64 {
        if self.is_empty() {
            out.push(chunk.sse.clone());
            return chunk.len() as u64;
        }
        let mut n = 0;
        for (i, ev) in chunk.events.iter().enumerate() {
            if self.matches(ev) {
                out.push(chunk.frame(i));
                n += 1;
            }
        }
        n
    }
}

struct ClientGuard(Arc<LiveHub>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Relaxed);
    }
}

struct ClientState {
    rx: broadcast::Receiver<Arc<LiveChunk>>,
    closed: watch::Receiver<bool>,
    filter: LiveFilter,
    /// Sequence number of the next event this client expects (unknown until its first
    /// chunk).
    next_seq: Option<u64>,
    /// When the last events were handed to the connection.
    last_write: Option<tokio::time::Instant>,
    hub: Arc<LiveHub>,
    _guard: ClientGuard,
}

impl ClientState {
    /// Takes in one chunk: counts the events skipped before it (announced to the client as
    /// a `lagged` event) and collects the frames that pass the filter.
    fn take(&mut self, chunk: &LiveChunk, out: &mut Vec<Bytes>) {
        if let Some(next) = self.next_seq {
            let lost = chunk.first_seq.saturating_sub(next);
            if lost > 0 {
                self.hub.lagged.fetch_add(lost, Relaxed);
                out.push(Bytes::from(format!("event: lagged\ndata: {lost}\n\n")));
            }
        }
        self.next_seq = Some(chunk.end_seq());
        let n = self.filter.select(chunk, out);
        self.hub.delivered.fetch_add(n, Relaxed);
    }

    /// After `Lagged(n)` with no chunk seen yet: at least `n` events are gone.
    fn lagged_blind(&mut self, chunks: u64, out: &mut Vec<Bytes>) {
        if self.next_seq.is_none() {
            self.hub.lagged.fetch_add(chunks, Relaxed);
            out.push(Bytes::from(format!("event: lagged\ndata: {chunks}\n\n")));
        }
    }
}

fn client_stream(
    hub: Arc<LiveHub>,
    filter: LiveFilter,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    hub.clients.fetch_add(1, Relaxed);
    hub.connections.fetch_add(1, Relaxed);
    let st = ClientState {
        rx: hub.tx.subscribe(),
        closed: hub.closed.subscribe(),
        filter,
        next_seq: None,
        last_write: None,
        hub: hub.clone(),
        _guard: ClientGuard(hub),
    };
    // The first bytes go out at once, so the client (and a test) knows it is subscribed.
    let hello = futures::stream::once(async { vec![Bytes::from_static(b": live\n\n")] });
    let events = futures::stream::unfold(st, |mut st| async move {
        let mut out = Vec::new();
        loop {
            if *st.closed.borrow() {
                return None;
            }
            let got = tokio::select! {
                r = st.rx.recv() => r,
                _ = st.closed.changed() => return None,
                _ = tokio::time::sleep(KEEP_ALIVE) => {
                    return Some((vec![Bytes::from_static(b": keep-alive\n\n")], st));
                }
            };
            match got {
                Ok(chunk) => st.take(&chunk, &mut out),
                Err(broadcast::error::RecvError::Lagged(n)) => st.lagged_blind(n, &mut out),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
            if let Some(due) = st.last_write.map(|t| t + WRITE_GAP) {
                if due > tokio::time::Instant::now() {
                    tokio::select! {
                        _ = tokio::time::sleep_until(due) => {}
                        _ = st.closed.changed() => return None,
                    }
                }
            }
            // Whatever else is already waiting goes out in the same write (hyper queues the
            // buffers and writes them with one vectored write; nothing is copied).
            let mut size: usize = out.iter().map(Bytes::len).sum();
            while size < WRITE_MAX {
                match st.rx.try_recv() {
                    Ok(chunk) => st.take(&chunk, &mut out),
                    Err(broadcast::error::TryRecvError::Lagged(n)) => st.lagged_blind(n, &mut out),
                    Err(_) => break,
                }
                size = out.iter().map(Bytes::len).sum();
            }
            if !out.is_empty() {
                st.last_write = Some(tokio::time::Instant::now());
                return Some((out, st));
            }
        }
    });
    use futures::StreamExt;
    hello
        .chain(events)
        .flat_map(|parts| futures::stream::iter(parts.into_iter().map(Ok)))
}

/// `GET /api/live`: an SSE stream of `attack` events (JSON [`LiveEvent`]s), `lagged`
/// events (the number of events this client lost) and keep-alive comments.
pub async fn stream(State(st): State<AppState>, _c: Caller, p: Params) -> Response {
    let filter = LiveFilter::from_params(&p);
    let events = client_stream(st.live.clone(), filter);
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            // Tell buffering proxies to pass events through at once.
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(events),
    )
        .into_response()
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

    fn event(cc: &str, raw_id: i64) -> LiveEvent {
        LiveEvent {
            time: Utc::now(),
            session_id: Some(raw_id),
            raw_id: Some(raw_id),
            source_ip: Some("192.0.2.1".into()),
            source: apiary_model::live::LiveGeo {
                country_code: Some(cc.into()),
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
        }
    }

    /// Reads what the stream has ready (stops at the first pending poll).
    async fn ready_text<S: Stream<Item = Result<Bytes, Infallible>> + Unpin>(s: &mut S) -> String {
        use futures::StreamExt;
        let mut out = String::new();
        while let Ok(Some(Ok(b))) = tokio::time::timeout(Duration::from_millis(50), s.next()).await
        {
            out.push_str(std::str::from_utf8(&b).unwrap());
        }
        out
    }

    #[tokio::test]
    async fn slow_client_loses_oldest_events_counted_exactly() {
        let hub = Arc::new(LiveHub::new(16 * CHUNK_EVENTS, None));
        let tx = hub.sender();
        let mut all = Box::pin(client_stream(hub.clone(), LiveFilter::default()));
        let de = LiveFilter {
            country: Some("de".into()),
            ..Default::default()
        };
        let mut only_de = Box::pin(client_stream(hub.clone(), de));
        assert_eq!(hub.clients.load(Relaxed), 2);
        tx.send(Arc::new(LiveChunk::new(
            0,
            vec![event("US", 0), event("DE", 1)],
        )))
        .unwrap();
        let first = ready_text(&mut all).await;
        assert!(first.starts_with(": live\n\n"), "{first}");
        assert_eq!(first.matches("event: attack\n").count(), 2, "{first}");
        let first_de = ready_text(&mut only_de).await;
        assert_eq!(first_de.matches("event: attack\n").count(), 1, "{first_de}");
        assert!(first_de.contains("\"DE\"") && !first_de.contains("\"US\""));
        // 40 one-event chunks while nobody reads: the channel keeps the newest 16.
        for seq in 2..42 {
            let cc = if seq % 2 == 0 { "DE" } else { "US" };
            tx.send(Arc::new(LiveChunk::new(seq, vec![event(cc, seq as i64)])))
                .unwrap();
        }
        let rest = ready_text(&mut all).await;
        assert!(rest.starts_with("event: lagged\ndata: 24\n\n"), "{rest}");
        assert_eq!(rest.matches("event: attack\n").count(), 16, "{rest}");
        assert!(rest.contains("\"raw_id\":26,") && rest.contains("\"raw_id\":41,"));
        let rest_de = ready_text(&mut only_de).await;
        assert!(
            rest_de.starts_with("event: lagged\ndata: 24\n\n"),
            "{rest_de}"
        );
        assert_eq!(rest_de.matches("event: attack\n").count(), 8, "{rest_de}");
        assert_eq!(hub.lagged.load(Relaxed), 48);
        assert_eq!(hub.delivered.load(Relaxed), 2 + 1 + 16 + 8);
        drop(all);
        assert_eq!(hub.clients.load(Relaxed), 1);
        hub.close();
        assert_eq!(ready_text(&mut only_de).await, "");
    }

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
