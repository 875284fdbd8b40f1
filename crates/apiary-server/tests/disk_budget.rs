//! The disk budget (`retention.max_size_mb`): a server started on ten days of data that
//! take about three times the budget prunes the oldest hours first, down under the budget,
//! and keeps every message and session newer than what it pruned.

mod common;

use std::sync::Arc;
use std::time::Duration;

use apiary_geo::GeoDb;
use apiary_testdata::{address_pool, preload, PreloadSpec};
use chrono::Utc;
use common::ingest::{count, open_store};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_budget_prunes_the_oldest_data_first() {
    let dir = tempfile::tempdir().unwrap();
    let spec = PreloadSpec {
        sessions: 30_000,
        span_days: 10,
        batch: 5_000,
        sensors: 4,
    };
    let now = Utc::now();
    let store = open_store(dir.path()).await;
    let geo = Arc::new(GeoDb::disabled());
    let pool = Arc::new(address_pool(2_000, 7));
    preload(&store, &geo, &pool, &spec, now).await.unwrap();
    let used_before = store.space_used_bytes().await.unwrap().expect("SQLite");
    let oldest_before = store.oldest_data().await.unwrap().unwrap();
    store.close().await;
    drop(store);

    let budget_mb = (used_before / 3 / 1_000_000).max(1);
    let config = dir.path().join("apiary.toml");
    std::fs::write(
        &config,
        format!("[retention]\nmax_size_mb = {budget_mb}\nbudget_check_seconds = 1\n"),
    )
    .unwrap();
    let server = TestServer::start_in(dir, &["--config", config.to_str().unwrap()]);
    assert!(
        server.wait_log(
            "disk budget: pruned the oldest data",
            Duration::from_secs(120)
        ),
        "the budget pass ran"
    );

    let store = open_store(server.data_dir()).await;
    let used = store.space_used_bytes().await.unwrap().unwrap();
    assert!(
        used <= budget_mb * 1_000_000,
        "{used} bytes in use, budget {budget_mb} MB"
    );
    // Store figures on /metrics are refreshed in the background after a scrape.
    let mut shown = false;
    for _ in 0..50 {
        let (status, metrics) = http_get(server.http, "/metrics");
        assert_eq!(status, 200);
        if metrics.contains("apiary_store_used_bytes ") {
            shown = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(shown, "/metrics shows the bytes in use");

    // The oldest went, and nothing newer: the preload's sessions are evenly spaced, so
    // the ones left are exactly those at or after the oldest time still stored.
    let oldest = store.oldest_data().await.unwrap().unwrap();
    assert!(oldest > oldest_before);
    let start = now - chrono::Duration::days(spec.span_days);
    let step_us = (spec.span_days * 24 - 1) * 3_600_000_000 / spec.sessions as i64;
    let newer = (0..spec.sessions as i64)
        .filter(|i| start + chrono::Duration::microseconds(step_us * i) >= oldest)
        .count() as u64;
    assert!(newer > 0 && newer < spec.sessions as u64);
    assert_eq!(count(&*store, "sessions").await, newer, "sessions kept");
    assert_eq!(
        count(&*store, "raw_messages").await,
        newer,
        "raw messages kept"
    );
    println!(
        "disk_budget: {:.1} MB in use before, budget {budget_mb} MB, {:.1} MB after; \
         {newer} of {} sessions kept, data before {oldest} pruned",
        used_before as f64 / 1e6,
        used as f64 / 1e6,
        spec.sessions
    );
    store.close().await;
}
