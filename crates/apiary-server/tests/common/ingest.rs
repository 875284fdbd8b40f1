//! Helpers for tests that publish to a running server and read what it stored: an ident,
//! an authenticated hpfeeds client, the store opened beside the server, counts.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiary_store::Store;

use super::{admin, TestServer};

/// Adds `ident` with `secret`, allowed to publish to `channels` (comma-separated).
pub fn add_ident(server: &TestServer, ident: &str, secret: &str, channels: &str) {
    let (ok, out, err) = admin(
        server.data_dir(),
        &[
            "ident",
            "add",
            ident,
            "--secret",
            secret,
            "--publish",
            channels,
        ],
    );
    assert!(ok, "{out}{err}");
}

/// A client of `ident`, once the running server has picked the ident up (it reloads
/// idents every second in tests).
pub async fn connect(server: &TestServer, ident: &str, secret: &str) -> hpfeeds::Client {
    for _ in 0..50 {
        let opts = hpfeeds::ClientOptions::new(
            server.hpfeeds.ip().to_string(),
            server.hpfeeds.port(),
            ident,
            secret,
        );
        if let Ok(mut c) = hpfeeds::Client::connect(opts).await {
            if c.check_auth(Duration::from_millis(300)).await.is_ok() {
                return c;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("ident {ident} not accepted by the running server");
}

/// The server's SQLite store, opened from this process.
pub async fn open_store(dir: &Path) -> Arc<dyn Store> {
    apiary_store::open(&format!("sqlite://{}", dir.join("apiary.db").display()))
        .await
        .expect("open store")
}

/// Rows of `table` as the store counts them.
pub async fn count(store: &dyn Store, table: &str) -> u64 {
    store
        .table_counts()
        .await
        .unwrap()
        .into_iter()
        .find(|(t, _)| t == table)
        .map_or(0, |(_, n)| n)
}

/// Waits until at least `want` raw messages are stored; returns how many there are.
pub async fn wait_raw(store: &dyn Store, want: u64, timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let n = count(store, "raw_messages").await;
        if n >= want || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
