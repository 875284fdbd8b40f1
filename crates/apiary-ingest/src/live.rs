//! Publishing committed sessions as [`LiveEvent`]s on a bounded broadcast channel.
//!
//! The pipeline's sink calls [`LivePublisher::publish`] after a batch is committed, so every
//! event shown live has store ids and survives a crash. What the sink does there is kept
//! small: it builds the events (sensor position from a map refreshed every
//! [`SENSOR_REFRESH`]) and hands them to a fan-out task without waiting. That task
//! serializes each event **once** into [`LiveChunk`]s of at most [`CHUNK_EVENTS`] ready-made
//! SSE frames and sends them on a `tokio::sync::broadcast` channel, which every SSE client
//! reads: sending never waits, and a client that falls behind loses the oldest chunks for
//! itself only (the chunks' sequence numbers tell it how many events it lost).
//!
//! If the fan-out task itself falls behind (it is given [`FANOUT_QUEUE`] batches of
//! slack), batches are skipped for the live stream and counted in `dropped`; ingest never
//! waits for the live map.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiary_model::live::{LatLon, LiveChunk, LiveEvent, CHUNK_EVENTS};
use apiary_model::Normalized;
use apiary_store::{BatchResult, IngestItem, Store};
use tokio::sync::{broadcast, mpsc};

/// How often sensor locations are re-read from the store.
const SENSOR_REFRESH: Duration = Duration::from_secs(10);
/// Committed batches waiting for the fan-out task before the live stream skips some.
pub const FANOUT_QUEUE: usize = 64;

/// The sending side of the live stream.
pub type LiveSender = broadcast::Sender<Arc<LiveChunk>>;

/// Turns committed batches into live events.
pub struct LivePublisher {
    tx: LiveSender,
    server_location: Option<LatLon>,
    sensors: HashMap<String, LatLon>,
    loaded: Option<Instant>,
    fanout: Option<mpsc::Sender<Vec<LiveEvent>>>,
    /// Live events handed to the fan-out task (only counted while someone listens).
    pub published: Arc<AtomicU64>,
    /// Live events skipped because the fan-out task was behind.
    pub dropped: Arc<AtomicU64>,
}

impl LivePublisher {
    /// A publisher on `tx`; `server_location` is the server's position (the fallback for
    /// sensors without a configured location).
    pub fn new(tx: LiveSender, server_location: Option<LatLon>) -> Self {
        Self {
            tx,
            server_location,
            sensors: HashMap::new(),
            loaded: None,
            fanout: None,
            published: Arc::new(AtomicU64::new(0)),
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    async fn refresh(&mut self, store: &dyn Store) {
        if self.loaded.is_some_and(|t| t.elapsed() < SENSOR_REFRESH) {
            return;
        }
        self.loaded = Some(Instant::now());
        match store.list_sensors().await {
            Ok(list) => {
                self.sensors = list
                    .into_iter()
                    .filter_map(|r| match (r.latitude, r.longitude) {
                        (Some(lat), Some(lon)) if lat.is_finite() && lon.is_finite() => {
                            Some((r.ident, LatLon { lat, lon }))
                        }
                        _ => None,
                    })
                    .collect();
            }
            Err(e) => tracing::warn!(error = %e, "live map: cannot read sensor locations"),
        }
    }

    /// The fan-out task's queue, started on first use (inside the runtime).
    fn fanout(&mut self) -> &mpsc::Sender<Vec<LiveEvent>> {
        self.fanout.get_or_insert_with(|| {
            let (q, rx) = mpsc::channel(FANOUT_QUEUE);
            tokio::spawn(fan_out(rx, self.tx.clone()));
            q
        })
    }

    /// Hands one live event per committed session of `batch` (`result` is its commit
    /// result) to the fan-out task; never waits for it.
    pub async fn publish(&mut self, batch: &[IngestItem], result: &BatchResult, store: &dyn Store) {
        if self.tx.receiver_count() == 0 {
            // Nobody is watching: skip the work (the map loads history from the store).
            return;
        }
        self.refresh(store).await;
        let events = events(batch, result, &self.sensors, self.server_location);
        if events.is_empty() {
            return;
        }
        let n = events.len() as u64;
        match self.fanout().try_send(events) {
            Ok(()) => {
                self.published.fetch_add(n, Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(n, Relaxed);
                tracing::debug!(
                    events = n,
                    "live fan-out behind; batch skipped for the live map"
                );
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.fanout = None;
            }
        }
    }
}

/// The live events of a committed batch, in batch order. Session ids come from
/// `result.session_ids` when it has one per session (else they stay `None`).
fn events(
    batch: &[IngestItem],
    result: &BatchResult,
    sensors: &HashMap<String, LatLon>,
    server_location: Option<LatLon>,
) -> Vec<LiveEvent> {
    let sessions = batch
        .iter()
        .filter_map(|i| i.outcome.as_ref().ok())
        .flatten()
        .filter(|r| matches!(r, Normalized::Session(_)))
        .count();
    let ids = (result.session_ids.len() == sessions).then_some(&result.session_ids);
    let mut out = Vec::with_capacity(sessions);
    for (i, item) in batch.iter().enumerate() {
        let Ok(records) = &item.outcome else { continue };
        let raw_id = result.raw_ids.get(i).copied();
        for r in records {
            if let Normalized::Session(s) = r {
                let loc = sensors.get(&s.sensor).copied();
                let mut ev = LiveEvent::from_session(s, raw_id, loc, server_location);
                if ev.session_id.is_none() {
                    ev.session_id = ids.and_then(|ids| ids.get(out.len()).copied());
                }
                out.push(ev);
            }
        }
    }
    out
}

/// Serializes each batch once, in chunks, and broadcasts it.
async fn fan_out(mut rx: mpsc::Receiver<Vec<LiveEvent>>, tx: LiveSender) {
    let mut seq = 0u64;
    while let Some(events) = rx.recv().await {
        let mut events = events.into_iter();
        loop {
            let part: Vec<LiveEvent> = events.by_ref().take(CHUNK_EVENTS).collect();
            if part.is_empty() {
                break;
            }
            let chunk = LiveChunk::new(seq, part);
            seq = chunk.end_seq();
            // Err only when every receiver is gone: nothing to do.
            let _ = tx.send(Arc::new(chunk));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apiary_model::{RawEvent, Session};
    use chrono::Utc;

    fn raw() -> RawEvent {
        RawEvent {
            id: None,
            channel: "cowrie.sessions".into(),
            ident: "s1".into(),
            received_at: Utc::now(),
            payload: Default::default(),
        }
    }

    fn item(ips: &[&str]) -> IngestItem {
        let sessions = ips
            .iter()
            .map(|ip| {
                Normalized::Session(Box::new(Session {
                    id: None,
                    timestamp: Utc::now(),
                    source_ip: Some(ip.parse().unwrap()),
                    source_port: None,
                    destination_ip: None,
                    destination_port: Some(22),
                    protocol: Some("ssh".into()),
                    honeypot: "cowrie".into(),
                    channel: "cowrie.sessions".into(),
                    sensor: "s1".into(),
                    internal: false,
                    source_geo: None,
                    destination_geo: None,
                    raw_id: None,
                    details: Default::default(),
                }))
            })
            .collect();
        IngestItem {
            raw: raw(),
            outcome: Ok(sessions),
        }
    }

    #[test]
    fn session_ids_follow_batch_order_and_locations_fall_back() {
        let batch = vec![
            item(&["192.0.2.1", "192.0.2.2"]),
            IngestItem {
                raw: raw(),
                outcome: Err("bad".into()),
            },
            item(&["192.0.2.3"]),
        ];
        let server = Some(LatLon { lat: 1.0, lon: 2.0 });
        let mut result = BatchResult {
            raw_ids: vec![10, 11, 12],
            session_ids: vec![100, 101, 102],
            ..Default::default()
        };
        let evs = events(&batch, &result, &HashMap::new(), server);
        let got: Vec<_> = evs.iter().map(|e| (e.raw_id, e.session_id)).collect();
        assert_eq!(
            got,
            [
                (Some(10), Some(100)),
                (Some(10), Some(101)),
                (Some(12), Some(102))
            ]
        );
        assert!(evs.iter().all(|e| e.sensor_location == server));
        // A result without one id per session: no ids rather than wrong ones.
        result.session_ids.pop();
        let evs = events(&batch, &result, &HashMap::new(), None);
        assert!(evs.iter().all(|e| e.session_id.is_none()));
    }

    #[tokio::test]
    async fn fan_out_numbers_events_across_chunks() {
        let (tx, mut rx) = broadcast::channel(64);
        let (q, qrx) = mpsc::channel(4);
        let task = tokio::spawn(fan_out(qrx, tx));
        let batch = vec![item(&["192.0.2.1"; CHUNK_EVENTS + 5])];
        let evs = events(&batch, &BatchResult::default(), &HashMap::new(), None);
        q.send(evs.clone()).await.unwrap();
        q.send(evs[..3].to_vec()).await.unwrap();
        drop(q);
        task.await.unwrap();
        let mut seqs = vec![];
        while let Ok(c) = rx.try_recv() {
            seqs.push((c.first_seq, c.len()));
        }
        assert_eq!(
            seqs,
            [
                (0, CHUNK_EVENTS),
                (CHUNK_EVENTS as u64, 5),
                (CHUNK_EVENTS as u64 + 5, 3)
            ]
        );
    }
}
