//! Helpers shared by the sensor's integration test files: a spool-backed `Shared` and the
//! events the services emitted into it.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use apiary_sensor::spool::Spool;
use apiary_sensor::Shared;

/// Shared state over a spool in `dir`.
pub fn shared(dir: &Path) -> Arc<Shared> {
    Arc::new(Shared::new(Spool::open(dir, 1 << 20, 64 << 20).unwrap()))
}

/// Every unacknowledged spool record as (channel, payload).
pub fn all_records(s: &Shared) -> Vec<(String, String)> {
    let sp = s.spool.lock().unwrap();
    sp.read(sp.acked(), 100_000)
        .unwrap()
        .into_iter()
        .map(|r| (r.channel, r.payload))
        .collect()
}

/// The `apiary.events` messages, parsed.
pub fn events(s: &Shared) -> Vec<serde_json::Value> {
    all_records(s)
        .into_iter()
        .filter(|(c, _)| c == "apiary.events")
        .map(|(_, p)| serde_json::from_str(&p).unwrap())
        .collect()
}

/// Waits up to 10 s for at least `n` events.
pub async fn wait_events(s: &Shared, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..200 {
        let e = events(s);
        if e.len() >= n {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {n} events, have {:?}", events(s));
}
