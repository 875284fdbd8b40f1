//! A full disk during sustained ingest: the server keeps running, ingest stops with a
//! clear error and a counted failure instead of dropping batches, publishers are slowed
//! by TCP backpressure, and once there is space again every message published is stored
//! with its session and counted once in the roll-ups.
//!
//! The data directory is a small tmpfs mounted for the test (needs root, as in CI; skipped
//! loudly otherwise) and grown with `mount -o remount` while the publisher is blocked.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::ingest::{
    add_ident, connect, count, cowrie_with_commands, metric, one_more_is_stored, open_store,
    wait_raw,
};
use common::*;

/// A tmpfs mounted on a directory, unmounted on drop (after the server using it is gone:
/// declare it before the server).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("run mount");
        assert!(
            st.success(),
            "remount {} with size={size}",
            self.0.display()
        );
    }

    fn free_bytes(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.0)
            .output()
            .expect("run df");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A cowrie.sessions payload padded to about 2 KB, so the disk fills after a few
/// thousand events.
fn cowrie(i: usize) -> Vec<u8> {
    cowrie_with_commands(i, &[format!("echo {}", "x".repeat(1_500))])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_slows_ingest_and_loses_nothing() {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !is_root {
        eprintln!("\n*** SKIPPED disk_full: needs root to mount a tmpfs ***\n");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.keep();
    let disk = Tmpfs::mount(&path, "24m").expect("mount a tmpfs as root");
    let data = tempfile::TempDir::new_in(&path).unwrap();
    let server = TestServer::start_in(data, &[]);
    add_ident(&server, "sensor-a", "s3cret", "cowrie.sessions");
    let mut client = connect(&server, "sensor-a", "s3cret").await;
    // Opened while there is space: opening applies pending roll-ups, which writes.
    let store = open_store(server.data_dir()).await;

    // Far more than 24 MB holds: the publisher must end up blocked, not refused.
    const SENT: usize = 40_000;
    let publisher = tokio::spawn(async move {
        for i in 0..SENT {
            client
                .publish("cowrie.sessions", cowrie(i))
                .await
                .expect("publish: the server must slow us down, not drop us");
        }
        client.flush().await.unwrap();
        client
    });

    assert!(
        server.wait_log("batch commit failed", Duration::from_secs(120)),
        "the full disk is reported in the log"
    );
    // Stuck, not crashed: the server answers, counts the failures and, once the space a
    // failed commit's rollback or a truncated WAL gave back is used up, stores nothing more.
    let deadline = Instant::now() + Duration::from_secs(90);
    let stuck = loop {
        let before = count(&*store, "raw_messages").await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = count(&*store, "raw_messages").await;
        if after == before {
            break after;
        }
        assert!(
            Instant::now() < deadline,
            "ingest never stopped on the full disk ({after} stored)"
        );
    };
    assert!(disk.free_bytes() < 1 << 20, "the tmpfs is full");
    assert!(metric(&server, "apiary_ingest_commit_failures_total").unwrap_or(0.0) >= 1.0);
    assert!(
        (stuck as usize) < SENT && !publisher.is_finished(),
        "the publisher is held back ({stuck} of {SENT} stored)"
    );

    // Health says so once commits have failed for a while (and the log says why).
    let deadline = Instant::now() + Duration::from_secs(60);
    let (status, body) = loop {
        let (status, body) = http_get(server.http, "/healthz");
        if status != 200 || Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("\"degraded\"") && body.contains("batch commits failing"),
        "{body}"
    );
    assert!(
        !body.contains("disk is full"),
        "no internals unauthenticated: {body}"
    );
    let failing = metric(&server, "apiary_ingest_commit_failing_seconds").unwrap_or(0.0);
    assert!(failing >= 10.0, "{failing}");

    // Space again: everything published arrives, once.
    let started = Instant::now();
    disk.resize("1g");
    let mut client = publisher.await.unwrap();
    let stored = wait_raw(&*store, SENT as u64, Duration::from_secs(180)).await;
    assert_eq!(stored, SENT as u64, "every published message is stored");
    let sessions = count(&*store, "sessions").await;
    assert_eq!(sessions, SENT as u64, "each with its session");
    // The roll-up file is written after each main commit, so it may trail by a batch.
    let deadline = Instant::now() + Duration::from_secs(30);
    let rolled = loop {
        let (since, until) = (Utc::now() - chrono::Duration::days(1), Utc::now());
        let n = store.total_sessions(since, until).await.unwrap();
        if n >= SENT as u64 || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rolled, SENT as u64, "the roll-ups count each session once");
    let (status, body) = http_get(server.http, "/healthz");
    assert_eq!(status, 200, "healthy again: {body}");
    assert_eq!(
        metric(&server, "apiary_ingest_commit_failing_seconds"),
        Some(0.0)
    );
    // And the server goes on: a last message after the recovery.
    one_more_is_stored(&mut client, &*store, SENT as u64, cowrie(SENT)).await;
    println!(
        "disk_full: stuck at {stuck} of {SENT} stored with the disk full; all {SENT} stored \
         {:.1} s after it grew",
        started.elapsed().as_secs_f64()
    );
    store.close().await;
    drop(server);
    drop(disk);
}
