//! The SQLite roll-up file (`<database>-rollups`): exact after a crash between the two
//! commits, rebuilt when lost, moved over from the main file of an older database, and
//! applied exactly once when two processes write the same database.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use apiary_store::{open, Dimension, Store};
use chrono::Duration;
use rusqlite::Connection;

mod common;
use common::*;

fn rollup_path(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}-rollups", db.display()))
}

async fn open_file(db: &Path) -> Arc<dyn Store> {
    open(&format!("sqlite://{}", db.display())).await.unwrap()
}

/// What the dashboards read for every dimension, over the sessions' two days and over a
/// window that ends now (the 24-hour window's path).
async fn snapshot(store: &Arc<dyn Store>) -> Vec<(Dimension, Vec<(String, u64)>)> {
    let (since, until) = (base() - Duration::hours(1), base() + Duration::hours(49));
    let mut out = Vec::new();
    for d in Dimension::ALL {
        out.push((d, store.top(d, since, until, 1000).await.unwrap()));
    }
    out
}

fn all_count(snap: &[(Dimension, Vec<(String, u64)>)]) -> u64 {
    snap.iter()
        .find(|(d, _)| *d == Dimension::All)
        .map_or(0, |(_, v)| v.iter().map(|(_, n)| n).sum())
}

fn remove_rollup_file(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", rollup_path(db).display()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_two_commits_is_mended_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let sessions = gen_sessions(1, 300, 40);
    let store = open_file(&db).await;
    insert_sessions(&store, &sessions[..200], 100).await;
    store.close().await;
    // The roll-up file as it was after two batches.
    let saved = dir.path().join("saved");
    std::fs::copy(rollup_path(&db), &saved).unwrap();

    let store = open_file(&db).await;
    store
        .insert_batch(items_for(&sessions[200..]))
        .await
        .unwrap();
    let want = snapshot(&store).await;
    assert_eq!(all_count(&want), 300);
    store.close().await;

    // The third batch committed in the main file, its roll-up commit lost: the increments
    // are still in the main file's log and the next open applies them.
    remove_rollup_file(&db);
    std::fs::copy(&saved, rollup_path(&db)).unwrap();
    let store = open_file(&db).await;
    assert_eq!(snapshot(&store).await, want);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_applied_before_the_crash_are_not_applied_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let store = open_file(&db).await;
    insert_sessions(&store, &gen_sessions(2, 250, 40), 50).await;
    let want = snapshot(&store).await;
    store.close().await;
    for _ in 0..2 {
        let store = open_file(&db).await;
        assert_eq!(snapshot(&store).await, want);
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_rollup_file_is_rebuilt_from_the_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let store = open_file(&db).await;
    insert_sessions(&store, &gen_sessions(3, 400, 40), 64).await;
    let want = snapshot(&store).await;
    store.close().await;
    remove_rollup_file(&db);
    let store = open_file(&db).await;
    assert_eq!(snapshot(&store).await, want);
    // And it keeps counting from there.
    store
        .insert_batch(items_for(&gen_sessions(4, 10, 40)))
        .await
        .unwrap();
    assert_eq!(all_count(&snapshot(&store).await), 410);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollup_file_of_another_database_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (db, other) = (dir.path().join("d.db"), dir.path().join("e.db"));
    let store = open_file(&db).await;
    insert_sessions(&store, &gen_sessions(5, 120, 40), 60).await;
    let want = snapshot(&store).await;
    store.close().await;
    let o = open_file(&other).await;
    insert_sessions(&o, &gen_sessions(6, 77, 40), 77).await;
    o.close().await;
    std::fs::copy(rollup_path(&other), rollup_path(&db)).unwrap();
    let store = open_file(&db).await;
    assert_eq!(snapshot(&store).await, want);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_of_an_older_database_move_to_their_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.db");
    let store = open_file(&db).await;
    insert_sessions(&store, &gen_sessions(7, 90, 40), 30).await;
    let want = snapshot(&store).await;
    store.close().await;
    // Put the roll-ups back where schema version 10 kept them, with no roll-up file.
    let c = Connection::open(&db).unwrap();
    c.execute_batch(&format!(
        "ATTACH DATABASE '{}' AS ru;
         CREATE TABLE main.rollup_hourly AS SELECT * FROM ru.rollup_hourly;
         CREATE TABLE main.rollup_window AS SELECT * FROM ru.rollup_window;
         INSERT INTO main.counters (name, value)
             SELECT name, value FROM ru.rollup_state WHERE name = 'rollup_window_hour';
         DETACH DATABASE ru;",
        rollup_path(&db).display()
    ))
    .unwrap();
    // Nonsense in the sessions: the move must copy, not recompute.
    c.execute("UPDATE sessions SET honeypot = 'moved-not-rebuilt'", [])
        .unwrap();
    drop(c);
    remove_rollup_file(&db);
    let store = open_file(&db).await;
    assert_eq!(snapshot(&store).await, want);
    store.close().await;
    let tables: i64 = Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('rollup_hourly', 'rollup_window')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0, "the main file's copies are dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_writing_one_database_count_each_session_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let a = open_file(&db).await;
    let b = open_file(&db).await;
    let sessions = gen_sessions(8, 600, 40);
    let (x, y) = sessions.split_at(300);
    let (xa, yb) = (x.to_vec(), y.to_vec());
    let (a2, b2) = (a.clone(), b.clone());
    let ta = tokio::spawn(async move {
        for chunk in xa.chunks(20) {
            a2.insert_batch(items_for(chunk)).await.unwrap();
        }
    });
    let tb = tokio::spawn(async move {
        for chunk in yb.chunks(30) {
            b2.insert_batch(items_for(chunk)).await.unwrap();
        }
    });
    ta.await.unwrap();
    tb.await.unwrap();
    let got = snapshot(&a).await;
    assert_eq!(got, snapshot(&b).await);
    assert_eq!(all_count(&got), 600);
    a.close().await;
    b.close().await;
    // The same as one process storing them all.
    let one = dir.path().join("h.db");
    let s = open_file(&one).await;
    s.insert_batch(items_for(&sessions)).await.unwrap();
    assert_eq!(snapshot(&s).await, got);
    s.close().await;
}
