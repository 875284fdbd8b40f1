//! Hostile and broken input: garbage, truncated and impossible frames, connection floods.
//! The broker must answer with an ERROR frame where the rules say so, close, keep its
//! memory bounded, count what happened, and keep serving honest clients.
//!
//! Tests that measure this process's RSS (`/proc/self/statm`) hold [`SERIAL`], so the
//! other tests of this binary cannot allocate in the middle of a measurement.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use apiary_broker::session::Refusal;
use apiary_broker::BrokerConfig;
use common::*;
use hpfeeds::frame::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MIB: u64 = 1024 * 1024;

/// A plain header: total length and opcode.
fn header(len: u32, op: u8) -> Vec<u8> {
    let mut h = len.to_be_bytes().to_vec();
    h.push(op);
    h
}

/// After hostile input the broker must still authenticate, route and deliver.
async fn still_serves(b: &TestBroker) {
    let mut sub = b.login("sub1", "subsecret").await;
    sub.subscribe("test").await;
    sub.sync().await;
    let mut publ = b.login("pub1", "pubsecret").await;
    publ.publish("test", "still alive").await;
    let (_, _, _, p) = sub.expect_publish().await;
    assert_eq!(&p[..], b"still alive");
}

/// Sends `bytes` on a fresh connection; the broker must answer with one ERROR frame
/// starting with `prefix` and close. Returns the error text.
async fn expect_rejected(b: &TestBroker, bytes: &[u8], prefix: &str) -> String {
    let mut c = b.connect().await;
    // The broker may close before reading everything; that is fine.
    let _ = c.try_send_raw(bytes).await;
    let text = c.expect_error_text().await;
    assert!(
        text.starts_with(prefix),
        "{text:?} should start with {prefix:?}"
    );
    c.expect_closed().await;
    text
}

/// A broker with the default idents that drops connections not authenticated within 300 ms.
async fn start_with_short_auth_timeout() -> TestBroker {
    start(
        BrokerConfig {
            auth_timeout: Duration::from_millis(300),
            ..config()
        },
        &default_idents(),
    )
    .await
}

#[tokio::test]
async fn garbage_gets_error_and_close() {
    let b = start(config(), &default_idents()).await;
    // An HTTP request and a TLS ClientHello: their first bytes claim huge frames.
    expect_rejected(&b, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "Frame too large").await;
    expect_rejected(
        &b,
        &[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ],
        "Frame too large",
    )
    .await;
    // Zeros: length 0.
    expect_rejected(&b, &[0u8; 64], "Invalid frame").await;
    // Unparsable body: an AUTH whose ident length runs past the frame.
    let mut bad = header(8, 2);
    bad.extend_from_slice(&[200, b'a', b'b']);
    expect_rejected(&b, &bad, "Invalid frame").await;
    assert_eq!(b.broker.metrics().rejected_total(), 4);
    still_serves(&b).await;
}

#[tokio::test]
async fn short_lengths_are_rejected() {
    let b = start(config(), &default_idents()).await;
    for len in [0u32, 3, 4] {
        let text = expect_rejected(&b, &header(len, 3), "Invalid frame").await;
        assert!(text.contains("length field below 5"), "{text}");
    }
    // Also after authentication.
    let mut c = b.login("pub1", "pubsecret").await;
    c.send_raw(&header(3, 3)).await;
    let text = c.expect_error_text().await;
    assert!(text.starts_with("Invalid frame"), "{text}");
    c.expect_closed().await;
    assert_eq!(b.broker.metrics().rejected_total(), 4);
    still_serves(&b).await;
}

#[tokio::test]
async fn truncated_frame_then_eof_is_dropped() {
    let b = start(config(), &default_idents()).await;
    // Before authentication: half an AUTH, then EOF.
    let mut c = b.connect().await;
    c.send_raw(&[0, 0, 0, 30, 2, 4, b'p', b'u']).await;
    c.stream.shutdown().await.expect("half-close");
    c.expect_closed().await;

    // After authentication: half a PUBLISH is never relayed.
    let mut sub = b.login("sub1", "subsecret").await;
    sub.subscribe("test").await;
    sub.sync().await;
    let mut publ = b.login("pub1", "pubsecret").await;
    let full = Frame::publish("pub1", "test", vec![b'x'; 100])
        .to_bytes()
        .expect("frame");
    publ.send_raw(&full[..60]).await;
    publ.stream.shutdown().await.expect("half-close");
    publ.expect_closed().await;
    eventually("both truncated connections closed", || {
        b.broker.metrics().connections_open.load(Relaxed) == 1
    })
    .await;
    sub.sync().await; // Nothing was queued for the subscriber.
    still_serves(&b).await;
}

#[tokio::test]
async fn four_gib_length_claim_is_refused_without_allocating() {
    let _serial = SERIAL.lock().await;
    let b = start(config(), &default_idents()).await;
    let before = rss_bytes();
    for op in [2u8, 3] {
        let text = expect_rejected(&b, &header(u32::MAX, op), "Frame too large").await;
        assert!(text.contains("4294967295"), "{text}");
    }
    // After authentication too, with a body following the header.
    let mut c = b.login("pub1", "pubsecret").await;
    let mut bytes = header(u32::MAX, 3);
    bytes.extend_from_slice(&[4, b'p', b'u', b'b', b'1', 4, b't', b'e', b's', b't']);
    let _ = c.try_send_raw(&bytes).await;
    let text = c.expect_error_text().await;
    assert!(text.starts_with("Frame too large"), "{text}");
    c.expect_closed().await;
    let after = rss_bytes();
    assert!(
        after.saturating_sub(before) < 8 * MIB,
        "RSS grew from {before} to {after} bytes"
    );
    still_serves(&b).await;
}

#[tokio::test]
async fn unauthenticated_clients_cannot_make_the_broker_buffer_big_frames() {
    let _serial = SERIAL.lock().await;
    let b = start(config(), &default_idents()).await;
    // Each connection claims a frame just under the 10 MiB limit and sends 2 MiB of it.
    // A broker that buffers pre-auth frames up to the limit would hold 32 × 2 MiB here.
    let body = vec![b'A'; 2 * MIB as usize];
    let claim = 10 * MIB as u32 - 16;
    let before = rss_bytes();
    let mut conns = Vec::new();
    for _ in 0..32 {
        let mut c = b.connect().await;
        let _ = c.try_send_raw(&header(claim, 3)).await;
        let _ = c.try_send_raw(&body).await;
        conns.push(c);
    }
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 24 * MIB,
        "RSS grew by {grown} bytes while 32 unauthenticated clients sent partial frames"
    );
    for mut c in conns {
        let text = c.expect_error_text().await;
        assert!(
            text.starts_with("Frame too large") || text == "First message was not AUTH",
            "{text}"
        );
        c.expect_closed().await;
    }
    still_serves(&b).await;
}

#[tokio::test]
async fn unknown_opcode_is_fatal() {
    let b = start(config(), &default_idents()).await;
    let mut bytes = header(9, 9);
    bytes.extend_from_slice(b"junk");
    expect_rejected(&b, &bytes, "Unknown opcode").await;
    let mut c = b.login("pub1", "pubsecret").await;
    c.send_raw(&bytes).await;
    c.expect_error("Unknown opcode").await;
    c.expect_closed().await;
    assert_eq!(b.broker.metrics().rejected_total(), 2);
    still_serves(&b).await;
}

#[tokio::test]
async fn frames_above_configured_limit_close_only_that_connection() {
    let b = start(
        BrokerConfig {
            max_frame: 1024,
            ..config()
        },
        &default_idents(),
    )
    .await;
    let mut sub = b.login("sub1", "subsecret").await;
    sub.subscribe("test").await;
    sub.sync().await;
    let mut publ = b.login("pub1", "pubsecret").await;
    // 5 header + 5 ident + 5 channel = 15 bytes of overhead.
    publ.publish("test", vec![b'a'; 1024 - 15]).await;
    let (raw, _, _, _) = sub.expect_publish().await;
    assert_eq!(raw.len(), 1024, "a frame exactly at the limit is relayed");

    publ.publish("test", vec![b'b'; 1024 - 14]).await;
    publ.expect_error("Frame too large: 1025 bytes, limit 1024")
        .await;
    publ.expect_closed().await;
    sub.sync().await; // Nothing of the oversized frame reached the subscriber.
    still_serves(&b).await;
}

#[tokio::test]
async fn idle_connections_time_out_and_are_counted() {
    let b = start_with_short_auth_timeout().await;
    let mut conns = Vec::new();
    for _ in 0..50 {
        conns.push(b.connect().await);
    }
    for c in &mut conns {
        c.expect_error("Authentication timeout").await;
        c.expect_closed().await;
    }
    assert_eq!(b.broker.metrics().auth_timeouts.load(Relaxed), 50);
    eventually("timed-out connections released", || {
        b.broker.metrics().connections_open.load(Relaxed) == 0
    })
    .await;
    still_serves(&b).await;
}

/// Opens `n` connections that never authenticate. Returns the streams that got INFO
/// (accepted) and how many were closed without it (refused at the limit).
async fn flood(b: &TestBroker, n: usize, keep: &mut Vec<TcpStream>) -> (usize, usize) {
    let (mut accepted, mut refused) = (0, 0);
    // Batches keep the listen backlog short and let the accept loop keep up.
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let mut batch = Vec::new();
        for _ in chunk {
            batch.push(TcpStream::connect(b.addr).await.expect("connect"));
        }
        for mut s in batch {
            let mut buf = [0u8; 64];
            match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => refused += 1,
                Ok(Ok(_)) => {
                    accepted += 1;
                    keep.push(s);
                }
                Err(_) => panic!("flood connection neither greeted nor closed"),
            }
        }
    }
    (accepted, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_idle_connections_do_not_lock_out_authenticated_clients() {
    let _serial = SERIAL.lock().await;
    // 1,000 flood sockets plus the broker's side of the accepted ones.
    let limit = rlimit::increase_nofile_limit(8192).expect("raise RLIMIT_NOFILE");
    assert!(
        limit >= 2200,
        "open-files limit too low for this test: {limit}"
    );
    let b = start(
        BrokerConfig {
            max_unauthenticated: 300,
            // Every flood socket comes from 127.0.0.1; the per-address cap is tested below.
            max_unauthenticated_per_ip: 10_000,
            auth_timeout: Duration::from_secs(300),
            ..config()
        },
        &default_idents(),
    )
    .await;
    let m = b.broker.metrics().clone();
    let mut sub = b.login("sub1", "subsecret").await;
    sub.subscribe("test").await;
    sub.sync().await;
    let before = rss_bytes();

    let mut idle = Vec::new();
    let (a1, r1) = flood(&b, 150, &mut idle).await;
    assert_eq!((a1, r1), (150, 0));
    // An honest client authenticates in the middle of the flood...
    let mut publ = b.login("pub1", "pubsecret").await;
    publ.publish("test", "during").await;
    let (_, _, _, p) = sub.expect_publish().await;
    assert_eq!(&p[..], b"during");
    // ...and the rest of the flood hits the limit of unauthenticated connections.
    let (a2, r2) = flood(&b, 850, &mut idle).await;
    assert_eq!(
        (a2, r2),
        (150, 700),
        "300 pending allowed, the rest refused"
    );
    assert_eq!(m.connections_refused.load(Relaxed), 700);
    assert_eq!(m.connections_open.load(Relaxed), 302);
    assert_eq!(m.authenticated_open.load(Relaxed), 2);

    // Authenticated clients are unaffected.
    for i in 0..100u32 {
        publ.publish("test", i.to_be_bytes().to_vec()).await;
    }
    for i in 0..100u32 {
        let (_, _, _, p) = sub.expect_publish().await;
        assert_eq!(&p[..], &i.to_be_bytes());
    }
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 48 * MIB,
        "RSS grew by {grown} bytes for 1,000 idle connections"
    );

    // Closing the flood frees the slots; new clients are served again.
    drop(idle);
    eventually("idle connections released", || {
        m.connections_open.load(Relaxed) == 2
    })
    .await;
    still_serves(&b).await;
}

#[tokio::test]
async fn metrics_count_rejections_refusals_and_timeouts() {
    let b = start(config(), &default_idents()).await;
    expect_rejected(&b, &header(0, 2), "Invalid frame").await;
    expect_rejected(&b, &header(u32::MAX, 3), "Frame too large").await;
    expect_rejected(&b, &header(5, 9), "Unknown opcode").await;
    let mut c = b.connect().await;
    c.auth("pub1", "wrong").await;
    c.expect_error("Authentication failed for pub1").await;
    let mut c = b.login("pub1", "pubsecret").await;
    c.publish("nope", "x").await;
    c.expect_error("Authkey not allowed to pub here. ident=pub1, chan=nope")
        .await;

    let m = b.broker.metrics();
    assert_eq!(m.rejected_total(), 3);
    assert_eq!(m.refusal_count(Refusal::AuthFailed), 1);
    assert_eq!(m.refusal_count(Refusal::PublishDenied), 1);
    let mut text = String::new();
    m.render(&mut text);
    for line in [
        "apiary_broker_frames_rejected_total{reason=\"short_length\"} 1",
        "apiary_broker_frames_rejected_total{reason=\"too_large\"} 1",
        "apiary_broker_frames_rejected_total{reason=\"unknown_opcode\"} 1",
        "apiary_broker_refusals_total{reason=\"auth_failed\"} 1",
        "apiary_broker_refusals_total{reason=\"publish_denied\"} 1",
        "apiary_broker_connections_total 5",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }

    // Auth timeouts, on a broker with a short one.
    let b = start_with_short_auth_timeout().await;
    let mut c = b.connect().await;
    c.expect_error("Authentication timeout").await;
    let mut text = String::new();
    b.broker.metrics().render(&mut text);
    assert!(
        text.lines()
            .any(|l| l == "apiary_broker_auth_timeouts_total 1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_more_than_its_share_of_pending_connections() {
    let _serial = SERIAL.lock().await;
    let b = start(
        BrokerConfig {
            max_unauthenticated_per_ip: 5,
            auth_timeout: Duration::from_secs(300),
            ..config()
        },
        &default_idents(),
    )
    .await;
    let mut idle = Vec::new();
    let (accepted, refused) = flood(&b, 10, &mut idle).await;
    assert_eq!((accepted, refused), (5, 5));
    // Authenticating is what frees a slot: drop one idle socket, then an honest client
    // gets in and, once authenticated, no longer counts against the address.
    drop(idle.pop());
    let m = b.broker.metrics().clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    while m.connections_open.load(Relaxed) != 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "closed socket never noticed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut publ = b.login("pub1", "pubsecret").await;
    publ.sync().await;
    let (accepted, _) = flood(&b, 1, &mut idle).await;
    assert_eq!(
        accepted, 1,
        "the authenticated client released its pending slot"
    );
}
