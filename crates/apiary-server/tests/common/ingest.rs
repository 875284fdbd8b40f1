//! Helpers for tests that publish to a running server and read what it stored: an ident,
//! an authenticated hpfeeds client, payloads, the store opened beside the server, counts.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiary_store::{Dimension, Page, SessionFilter, Store};
use chrono::Utc;

use super::{admin, http_get, TestServer};

const USERS: [&str; 7] = ["root", "admin", "pi", "ubuntu", "oracle", "test", "guest"];

/// The `i`th of a stream of distinct cowrie.sessions payloads (one login each, seven
/// usernames in turn).
pub fn cowrie(i: usize) -> Vec<u8> {
    cowrie_with_commands(i, &[])
}

/// [`cowrie`] with these commands run in the session (to make payloads bigger).
pub fn cowrie_with_commands(i: usize, commands: &[String]) -> Vec<u8> {
    serde_json::json!({
        "session": format!("{i:012x}"),
        "peerIP": format!("198.51.{}.{}", (i / 250) % 250, i % 250 + 1),
        "peerPort": 40000 + i % 20000, "hostIP": "10.0.0.5", "hostPort": 22,
        "loggedin": null, "credentials": [[USERS[i % USERS.len()], "hunter2"]],
        "commands": commands, "urls": [], "version": "SSH-2.0-Go", "ttylog": null,
        "protocol": "ssh"
    })
    .to_string()
    .into_bytes()
}

/// Sessions stored and sessions per username, read from the rows (not the counters or
/// roll-ups a test compares them with).
pub async fn usernames_in_rows(store: &dyn Store) -> (u64, BTreeMap<String, u64>) {
    let mut by_user = BTreeMap::new();
    let mut total = 0;
    let mut page = Page::first(Page::MAX);
    loop {
        let (rows, next) = store
            .sessions(SessionFilter::default(), page)
            .await
            .unwrap();
        for s in &rows {
            total += 1;
            for c in &s.details.credentials {
                *by_user.entry(c.username.clone()).or_default() += 1;
            }
        }
        match next {
            Some(c) => page = Page::after(Page::MAX, c),
            None => return (total, by_user),
        }
    }
}

/// Checks the store's roll-ups against its rows: the last day's session total and the
/// sessions per username equal what [`usernames_in_rows`] counts one by one. Returns the
/// number of sessions.
pub async fn assert_roll_ups_match_rows(store: &dyn Store, context: &str) -> u64 {
    let (rows, by_user) = usernames_in_rows(store).await;
    let (since, until) = (Utc::now() - chrono::Duration::days(1), Utc::now());
    assert_eq!(
        store.total_sessions(since, until).await.unwrap(),
        rows,
        "{context}: the session total"
    );
    let top: BTreeMap<String, u64> = store
        .top(Dimension::Username, since, until, 1_000)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(top, by_user, "{context}: sessions per username");
    rows
}

/// One un-labelled figure from the server's `/metrics`.
pub fn metric(server: &TestServer, name: &str) -> Option<f64> {
    let (status, body) = http_get(server.http, "/metrics");
    assert_eq!(status, 200, "/metrics answers");
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

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
pub use apiary_testdata::stored_rows as count;

/// Publishes [`cowrie`] payloads `0..n` and waits until the store holds `n` raw messages.
pub async fn publish_committed(client: &mut hpfeeds::Client, store: &dyn Store, n: usize) {
    for i in 0..n {
        client.publish("cowrie.sessions", cowrie(i)).await.unwrap();
    }
    client.flush().await.unwrap();
    assert_eq!(
        wait_raw(store, n as u64, Duration::from_secs(60)).await,
        n as u64,
        "all {n} committed"
    );
}

/// Publishes one more message with `client` and waits until it is stored after the
/// `stored` already there: ingest goes on.
pub async fn one_more_is_stored(
    client: &mut hpfeeds::Client,
    store: &dyn Store,
    stored: u64,
    payload: Vec<u8>,
) {
    client.publish("cowrie.sessions", payload).await.unwrap();
    client.flush().await.unwrap();
    assert_eq!(
        wait_raw(store, stored + 1, Duration::from_secs(30)).await,
        stored + 1,
        "ingest goes on"
    );
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
