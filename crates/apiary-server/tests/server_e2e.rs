//! The `apiary` binary end to end: start, health, metrics, idents managed while running,
//! clear errors, clean shutdown. Real sockets, real SQLite.

mod common;

use std::time::{Duration, Instant};

use common::*;
use hpfeeds::Frame;

fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn server_health_metrics_idents_and_clean_shutdown() {
    let mut server = TestServer::start(&[]);
    let (status, body) = http_get(server.http, "/healthz");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ok"));

    // Unknown ident is refused.
    let mut c = RawClient::connect(server.hpfeeds);
    assert_eq!(&c.name[..], b"apiary");
    assert_eq!(c.nonce.len(), 4);
    c.auth("sensor1", "pw");
    assert_eq!(
        c.read_frame(),
        Some(Frame::error("Authentication failed for sensor1"))
    );

    // Added while the server runs: picked up without a restart.
    let (ok, out, err) = admin(
        server.data_dir(),
        &[
            "ident",
            "add",
            "sensor1",
            "--secret",
            "pw",
            "--publish",
            "test",
        ],
    );
    assert!(ok, "{out}{err}");
    let (ok, out, _) = admin(
        server.data_dir(),
        &["ident", "add", "reader", "--subscribe", "test"],
    );
    assert!(ok);
    let reader_secret = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret:"))
        .map(|s| s.trim().to_string())
        .expect("generated secret printed");
    assert_eq!(reader_secret.len(), 64);
    let (_, list, _) = admin(server.data_dir(), &["ident", "list"]);
    assert!(list.contains("sensor1") && list.contains("reader"));
    assert!(
        !list.contains(&reader_secret),
        "ident list must not show secrets"
    );

    let mut sub = poll(Duration::from_secs(10), || {
        let mut s = RawClient::connect(server.hpfeeds);
        s.auth("reader", &reader_secret);
        s.subscribe("reader", "test");
        // A refused AUTH answers with an error at once; accepted ones answer nothing.
        s.stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .ok();
        match s.read_frame() {
            Some(Frame::Error(_)) => None,
            _ => Some(s),
        }
    })
    .expect("reader ident picked up by the running server");
    sub.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok();
    let mut publisher = RawClient::connect(server.hpfeeds);
    publisher.auth("sensor1", "pw");
    publisher.publish("sensor1", "test", b"{\"hello\": 1}");
    assert_eq!(
        sub.read_frame(),
        Some(Frame::publish("sensor1", "test", &b"{\"hello\": 1}"[..]))
    );

    let (status, metrics) = http_get(server.http, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("apiary_broker_messages_in_total{channel=\"test\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("apiary_broker_refusals_total{reason=\"auth_failed\"}"));

    // Removed while running: its open connection is closed.
    let (ok, _, _) = admin(server.data_dir(), &["ident", "remove", "sensor1"]);
    assert!(ok);
    publisher
        .stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok();
    assert_eq!(
        publisher.read_frame(),
        None,
        "removed ident's connection closed"
    );
    let (ok, _, err) = admin(server.data_dir(), &["ident", "remove", "sensor1"]);
    assert!(!ok && err.contains("no ident"), "{err}");

    assert!(server.stop(), "clean exit on SIGTERM");
    // The database is intact and still has the remaining ident.
    let (_, list, _) = admin(server.data_dir(), &["ident", "list"]);
    assert!(
        list.contains("reader") && !list.contains("sensor1"),
        "{list}"
    );
}

#[test]
fn address_in_use_names_the_key() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = apiary()
        .args([
            "server",
            "--hpfeeds-listen",
            &addr,
            "--http-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hpfeeds.listen") && err.contains(&addr) && err.contains("already in use"),
        "{err}"
    );
}

#[test]
fn bad_config_names_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("apiary.toml");
    std::fs::write(&cfg, "[hpfeeds]\nmax_frame_bytes = \"big\"\n").unwrap();
    let out = apiary()
        .args(["config", "check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hpfeeds.max_frame_bytes") && err.contains(&cfg.display().to_string()),
        "{err}"
    );

    std::fs::write(&cfg, "[http]\nlisten = \"127.0.0.1:1\"\ntypo = 1\n").unwrap();
    let out = apiary()
        .args(["config", "check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("typo"), "{err}");
}

#[test]
fn config_example_is_printed_and_valid() {
    let out = apiary().args(["config", "example"]).output().unwrap();
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("example.toml");
    std::fs::write(&cfg, &out.stdout).unwrap();
    let out = apiary()
        .args(["config", "check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_success(&out);
}
