//! `apiary backup FILE` while a client streams events into the running server: the copy
//! is one consistent snapshot (every raw message with its session, roll-ups counting
//! exactly its sessions), a server started on the copy serves it and takes new events,
//! and an existing file is never overwritten.

mod common;

use std::time::Duration;

use common::ingest::{
    add_ident, assert_roll_ups_match_rows, connect, count, cowrie, one_more_is_stored, open_store,
    publish_committed, wait_raw,
};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_of_a_running_server_is_consistent_and_restores() {
    let server = TestServer::start(&[]);
    add_ident(&server, "sensor-a", "s3cret", "cowrie.sessions");
    let mut client = connect(&server, "sensor-a", "s3cret").await;
    const FIRST: usize = 2_000;
    let live = open_store(server.data_dir()).await;
    publish_committed(&mut client, &*live, FIRST).await;

    // Back up while more streams in.
    const MORE: usize = 40_000;
    let publisher = tokio::spawn(async move {
        for i in FIRST..FIRST + MORE {
            client.publish("cowrie.sessions", cowrie(i)).await.unwrap();
        }
        client.flush().await.unwrap();
    });
    wait_raw(&*live, FIRST as u64 + 1_000, Duration::from_secs(60)).await;
    let out_dir = tempfile::tempdir().unwrap();
    let file = out_dir.path().join("apiary-backup.db");
    let file_arg = file.to_str().unwrap();
    let (ok, out, err) = admin(server.data_dir(), &["backup", file_arg]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("backed up to"), "{out}");
    assert!(err.contains("backup"), "progress is shown: {err}");
    publisher.await.unwrap();
    let total = (FIRST + MORE) as u64;
    assert_eq!(
        wait_raw(&*live, total, Duration::from_secs(120)).await,
        total
    );

    // One snapshot: raw messages and sessions from the same instant, roll-ups exact.
    let copy = apiary_store::open(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    let raw = count(&*copy, "raw_messages").await;
    let sessions = count(&*copy, "sessions").await;
    assert!(raw >= FIRST as u64 + 1_000 && raw <= total, "{raw}");
    assert_eq!(sessions, raw, "every message in the copy has its session");
    assert_eq!(
        assert_roll_ups_match_rows(&*copy, "the copy").await,
        sessions
    );
    copy.close().await;
    drop(copy);

    // Nothing to back up where there is no database (and none is created).
    let empty = tempfile::tempdir().unwrap();
    let (ok, _, err) = admin(empty.path(), &["backup", file_arg]);
    assert!(!ok && err.contains("no database at"), "{err}");
    assert!(!empty.path().join("apiary.db").exists());

    // Never over an existing file.
    let (ok, out, err) = admin(server.data_dir(), &["backup", file_arg]);
    assert!(!ok, "{out}{err}");
    assert!(err.contains("exists"), "{err}");

    // Restore: the two files in place of a fresh server's.
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(&file, restored.path().join("apiary.db")).unwrap();
    std::fs::copy(
        out_dir.path().join("apiary-backup.db-rollups"),
        restored.path().join("apiary.db-rollups"),
    )
    .unwrap();
    let second = TestServer::start_in(restored, &[]);
    let store = open_store(second.data_dir()).await;
    assert_eq!(count(&*store, "raw_messages").await, raw);
    assert_eq!(
        assert_roll_ups_match_rows(&*store, "the restored copy").await,
        sessions
    );
    let mut c = connect(&second, "sensor-a", "s3cret").await;
    one_more_is_stored(&mut c, &*store, raw, cowrie(total as usize)).await;
    println!("backup: {raw} of {total} messages in the snapshot, restored and ingesting");
    store.close().await;
    live.close().await;
}
