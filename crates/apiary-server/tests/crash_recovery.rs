//! `kill -9` during sustained ingest: every message the server had committed before the
//! kill is there after a restart, each with its session (raw message and session commit
//! together), the roll-ups count exactly the sessions stored (the roll-up log mends a
//! crash between the main and the roll-up commits), and ingest resumes.

mod common;

use std::time::Duration;

use common::ingest::{
    add_ident, assert_roll_ups_match_rows, connect, count, cowrie, one_more_is_stored, open_store,
    publish_committed, wait_raw,
};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_events_survive_kill_9_with_roll_ups_exact() {
    let mut server = TestServer::start(&[]);
    add_ident(&server, "sensor-a", "s3cret", "cowrie.sessions");
    let mut client = connect(&server, "sensor-a", "s3cret").await;

    // A first part, all committed.
    const FIRST: usize = 1_000;
    let store = open_store(server.data_dir()).await;
    publish_committed(&mut client, &*store, FIRST).await;

    // A second part still streaming in when the server is killed.
    let publisher = tokio::spawn(async move {
        let mut sent = 0usize;
        for i in FIRST..FIRST + 200_000 {
            if client.publish("cowrie.sessions", cowrie(i)).await.is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });
    let seen = wait_raw(&*store, FIRST as u64 + 500, Duration::from_secs(60)).await;
    assert!(
        seen >= FIRST as u64 + 500,
        "ingest of the second part began"
    );
    let mut child = server.child.take().expect("server running");
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    // What the server had committed when it died: at least what we saw, at most all sent.
    let committed_before = count(&*store, "raw_messages").await;
    let sent = publisher.await.unwrap();
    assert!(
        committed_before < (FIRST + sent) as u64,
        "killed mid-stream: {committed_before} committed of {} sent",
        FIRST + sent
    );
    store.close().await;
    drop(store);

    // Restart on the same files.
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    let server = TestServer::start_in(dir, &[]);
    let store = open_store(server.data_dir()).await;
    let raw = count(&*store, "raw_messages").await;
    assert_eq!(raw, committed_before, "nothing committed was lost");
    let rows = assert_roll_ups_match_rows(&*store, "after the crash").await;
    assert_eq!(rows, raw, "every stored message has its session");
    assert_eq!(count(&*store, "sessions").await, rows);

    println!(
        "crash_recovery: killed with {committed_before} of {} sent committed; after the restart \
         {raw} raw messages, {rows} sessions, roll-ups equal",
        FIRST + sent
    );

    // Ingest resumes.
    let mut c = connect(&server, "sensor-a", "s3cret").await;
    one_more_is_stored(&mut c, &*store, raw, cowrie(FIRST + 300_000)).await;
}
