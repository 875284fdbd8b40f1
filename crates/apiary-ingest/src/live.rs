//! Publishing committed sessions as [`LiveEvent`]s on a bounded broadcast channel.
//!
//! The pipeline's sink calls [`LivePublisher::publish`] after a batch is committed, so every
//! event shown live has store ids and survives a crash. The channel is a
//! `tokio::sync::broadcast`: sending never waits, and a receiver that falls behind loses the
//! oldest events for itself only (its `Lagged` count is reported by the reader).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiary_model::live::{LatLon, LiveEvent};
use apiary_model::Normalized;
use apiary_store::{BatchResult, IngestItem, Store};
use tokio::sync::broadcast;

/// How often sensor locations are re-read from the store.
const SENSOR_REFRESH: Duration = Duration::from_secs(10);

/// The sending side of the live stream.
pub type LiveSender = broadcast::Sender<Arc<LiveEvent>>;

/// Turns committed batches into live events.
pub struct LivePublisher {
    tx: LiveSender,
    server_location: Option<LatLon>,
    sensors: HashMap<String, LatLon>,
    loaded: Option<Instant>,
    /// Live events sent (only counted while someone listens).
    pub published: Arc<AtomicU64>,
}

impl LivePublisher {
    /// A publisher on `tx`; `server_location` is the server's configured position.
    pub fn new(tx: LiveSender, server_location: Option<LatLon>) -> Self {
        Self {
            tx,
            server_location,
            sensors: HashMap::new(),
            loaded: None,
            published: Arc::new(AtomicU64::new(0)),
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

    /// Sends one event per committed session of `batch` (`result` is its commit result).
    pub async fn publish(&mut self, batch: &[IngestItem], result: &BatchResult, store: &dyn Store) {
        if self.tx.receiver_count() == 0 {
            // Nobody is watching: skip the work (the map loads history from the store).
            return;
        }
        self.refresh(store).await;
        for (i, item) in batch.iter().enumerate() {
            let Ok(records) = &item.outcome else { continue };
            let raw_id = result.raw_ids.get(i).copied();
            for r in records {
                if let Normalized::Session(s) = r {
                    let loc = self.sensors.get(&s.sensor).copied();
                    let ev = LiveEvent::from_session(s, raw_id, loc, self.server_location);
                    self.published.fetch_add(1, Relaxed);
                    // Err only when every receiver is gone: nothing to do.
                    let _ = self.tx.send(Arc::new(ev));
                }
            }
        }
    }
}
