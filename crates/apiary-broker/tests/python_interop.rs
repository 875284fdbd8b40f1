//! Interoperability with the real Python `hpfeeds` 3.1.0 package, both ways:
//! its sync and asyncio clients against our broker, and our client against its broker.
//!
//! Needs the interpreter prepared by `.ci/run` (`.venv/bin/python`, or
//! `APIARY_TEST_PYTHON`); without it these tests fail and say so.
//!
//! Python clients give no signal when a SUBSCRIBE reached the broker, so the tests watch
//! `test..broker` (our broker's join notifications) instead of sleeping.

mod common;

use apiary_broker::session::Refusal;
use bytes::Bytes;
use common::python::{events_of, PyBroker, PyPeer};
use common::*;
use hpfeeds::frame::Frame;
use serde_json::json;

/// Waits for `<ident>` joining `test` on a connection subscribed to `test..broker`.
async fn expect_join(watch: &mut RawClient, ident: &str) {
    let (_, who, channel, what) = watch.expect_publish().await;
    assert_eq!(
        (&who[..], &channel[..], &what[..]),
        (ident.as_bytes(), &b"test..broker"[..], &b"join"[..])
    );
}

fn idents() -> Vec<apiary_model::Ident> {
    let mut v = default_idents();
    v.push(ident("spy", "spysecret", &[], &["forbidden"]));
    v
}

/// Python publishes, Python and Rust subscribers receive; Rust publishes, Python receives.
async fn roundtrip(sub_mode: &str, pub_mode: &str) {
    let b = start(config(), &idents()).await;
    let mut watch = b.login("watch", "watchsecret").await;
    watch.subscribe("test..broker").await;
    watch.sync().await;
    let mut rust_sub = b.login("both", "bothsecret").await;
    rust_sub.subscribe("test").await;
    expect_join(&mut watch, "both").await;

    let args = ["--channel", "test", "--count", "2"];
    let mut py_sub = PyPeer::spawn_as(sub_mode, b.addr, "sub1", "subsecret", &args);
    py_sub.expect("connected").await;
    expect_join(&mut watch, "sub1").await;

    let payload = r#"{"from": "python", "n": 1}"#;
    let py_pub = PyPeer::spawn_as(
        pub_mode,
        b.addr,
        "pub1",
        "pubsecret",
        &["--channel", "test", "--payload", payload],
    );
    let events = py_pub.finish_ok().await;
    assert_eq!(events_of(&events, "published").len(), 1, "{events:?}");
    assert!(events_of(&events, "error").is_empty(), "{events:?}");

    // The Python client's PUBLISH, relayed byte for byte.
    let (raw, _, _, _) = rust_sub.expect_publish().await;
    let expected = Frame::publish("pub1", "test", payload.to_string())
        .to_bytes()
        .expect("frame");
    assert_eq!(raw, expected);

    // Then one from Rust, with bytes that are not UTF-8.
    let mut rust_pub = b.login("pub1", "pubsecret").await;
    rust_pub
        .publish("test", Bytes::from_static(b"\x00\xffrust"))
        .await;

    let events = py_sub.finish_ok().await;
    let msgs = events_of(&events, "message");
    assert_eq!(msgs.len(), 2, "{events:?}");
    assert_eq!(msgs[0]["ident"], "pub1");
    assert_eq!(msgs[0]["channel"], "test");
    assert_eq!(msgs[0]["payload"], payload);
    assert_eq!(msgs[1]["ident"], "pub1");
    assert_eq!(msgs[1]["payload_hex"], "00ff72757374");
    assert!(events_of(&events, "error").is_empty(), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sync_client_roundtrip() {
    roundtrip("sync-sub", "sync-pub").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_asyncio_client_session_roundtrip() {
    roundtrip("async-sub", "async-pub").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sync_client_reports_broker_name() {
    let b = start(config(), &idents()).await;
    let peer = PyPeer::spawn_as(
        "sync-auth",
        b.addr,
        "pub1",
        "pubsecret",
        &["--wait-error", "1"],
    );
    let events = peer.finish_ok().await;
    assert_eq!(events[0]["broker"], "apiary-test");
    // A correct AUTH gets no answer.
    assert!(events_of(&events, "error").is_empty(), "{events:?}");
    assert_eq!(b.broker.metrics().refusal_count(Refusal::AuthFailed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sync_client_sees_auth_failure() {
    let b = start(config(), &idents()).await;
    // hpfeeds.new() sends AUTH and returns without waiting for an answer; the broker's
    // error is what client.wait() reads next.
    let peer = PyPeer::spawn_as("sync-auth", b.addr, "sub1", "wrong", &[]);
    let events = peer.finish_ok().await;
    let errors = events_of(&events, "error");
    assert_eq!(errors.len(), 1, "{events:?}");
    assert_eq!(errors[0]["text"], "Authentication failed for sub1");
    assert_eq!(b.broker.metrics().refusal_count(Refusal::AuthFailed), 1);

    // The subscribing client: its run() loop gets the error through the error callback.
    let peer = PyPeer::spawn_as(
        "sync-sub",
        b.addr,
        "sub1",
        "wrong",
        &["--channel", "test", "--stop-on-error"],
    );
    let events = peer.finish_ok().await;
    let errors = events_of(&events, "error");
    assert_eq!(errors.len(), 1, "{events:?}");
    assert_eq!(errors[0]["text"], "Authentication failed for sub1");
    assert!(events_of(&events, "message").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_asyncio_client_with_wrong_secret_gets_nothing() {
    let b = start(config(), &idents()).await;
    let mut watch = b.login("watch", "watchsecret").await;
    watch.subscribe("test..broker").await;
    watch.sync().await;
    // ClientSession considers itself connected as soon as it has sent AUTH; the broker's
    // ERROR then hits its unimplemented on_error (the transport is dropped) and it
    // reconnects, failing again each time. It never receives anything.
    let peer = PyPeer::spawn_as(
        "async-sub",
        b.addr,
        "sub1",
        "wrong",
        &["--channel", "test", "--count", "1", "--timeout", "3"],
    );
    let mut publ = b.login("pub1", "pubsecret").await;
    let m = b.broker.metrics().clone();
    eventually("a few failed AUTHs from the asyncio client", || {
        m.refusal_count(Refusal::AuthFailed) >= 2
    })
    .await;
    publ.publish("test", "not for you").await;
    let (events, code) = peer.finish().await;
    assert_eq!(code, Some(3), "timed out waiting for a message: {events:?}");
    assert!(events_of(&events, "message").is_empty(), "{events:?}");
    // It never got as far as a subscription.
    watch.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_clients_get_acl_refusals_and_nothing_is_delivered() {
    let b = start(config(), &idents()).await;
    let mut watch = b.login("watch", "watchsecret").await;
    watch.subscribe("test..broker").await;
    watch.sync().await;
    let mut spy = b.login("spy", "spysecret").await;
    spy.subscribe("forbidden").await;
    spy.sync().await;

    // Subscribing outside the ACL: error through the callback, connection kept.
    let mut py_sub = PyPeer::spawn_as(
        "sync-sub",
        b.addr,
        "sub1",
        "subsecret",
        &[
            "--channel",
            "test",
            "--channel",
            "forbidden",
            "--count",
            "1",
        ],
    );
    py_sub.expect("connected").await;
    expect_join(&mut watch, "sub1").await;

    // Publishing outside the ACL: error, and the message goes nowhere.
    let py_pub = PyPeer::spawn_as(
        "sync-pub",
        b.addr,
        "pub1",
        "pubsecret",
        &[
            "--channel",
            "forbidden",
            "--payload",
            "leak",
            "--wait-error",
            "10",
        ],
    );
    let events = py_pub.finish_ok().await;
    let errors = events_of(&events, "error");
    assert_eq!(errors.len(), 1, "{events:?}");
    assert_eq!(
        errors[0]["text"],
        "Authkey not allowed to pub here. ident=pub1, chan=forbidden"
    );
    // The refusal proves the broker handled the PUBLISH; nothing reached the spy.
    spy.sync().await;

    let mut publ = b.login("pub1", "pubsecret").await;
    publ.publish("test", "allowed").await;
    let events = py_sub.finish_ok().await;
    let errors = events_of(&events, "error");
    assert_eq!(errors.len(), 1, "{events:?}");
    assert_eq!(
        errors[0]["text"],
        "Authkey not allowed to sub here. ident=sub1, chan=forbidden"
    );
    let msgs = events_of(&events, "message");
    assert_eq!(msgs.len(), 1, "{events:?}");
    assert_eq!(msgs[0]["channel"], "test");
    assert_eq!(msgs[0]["payload"], "allowed");
}

// ---- The reverse direction: our client against the Python reference broker. ----

fn py_users() -> serde_json::Value {
    json!({
        "pub1": {"owner": "tests", "secret": "pubsecret", "pubchans": ["test"], "subchans": []},
        "sub1": {"owner": "tests", "secret": "subsecret", "pubchans": [], "subchans": ["test"]},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_against_python_broker() {
    let pyb = PyBroker::start("pybroker", &py_users()).await;

    let mut sub = RawClient::connect(pyb.addr).await;
    assert_eq!(&sub.name[..], b"pybroker");
    assert_eq!(sub.nonce.len(), 4);
    sub.auth("sub1", "subsecret").await;
    sub.subscribe("test").await;
    let mut publ = RawClient::connect(pyb.addr).await;
    publ.auth("pub1", "pubsecret").await;

    // The Python broker has no barrier we could use: probe until the subscription is live.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        publ.publish("test", "probe").await;
        match sub.read(std::time::Duration::from_millis(100)).await {
            Read::Frame(_, Frame::Publish { .. }) => break,
            Read::Timeout => {}
            other => panic!("unexpected from hpfeeds-broker: {other:?}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscription never became live"
        );
    }
    for i in 0..20u32 {
        publ.publish("test", format!("msg {i}")).await;
    }
    let mut next = 0u32;
    while next < 20 {
        let (raw, ident, channel, payload) = sub.expect_publish().await;
        if &payload[..] == b"probe" {
            continue; // Probes still in flight.
        }
        assert_eq!((&ident[..], &channel[..]), (&b"pub1"[..], &b"test"[..]));
        assert_eq!(payload, format!("msg {next}"));
        assert_eq!(
            raw,
            Frame::publish("pub1", "test", format!("msg {next}"))
                .to_bytes()
                .expect("frame")
        );
        next += 1;
    }

    // Its error strings are the ones our broker copies.
    let mut bad = RawClient::connect(pyb.addr).await;
    bad.auth("pub1", "wrong").await;
    bad.expect_error("Authentication failed for pub1").await;
    bad.expect_closed().await;
    publ.publish("elsewhere", "x").await;
    publ.expect_error("Authkey not allowed to pub here. ident=pub1, chan=elsewhere")
        .await;
    publ.expect_closed().await;
}

/// The `hpfeeds` crate's client (what the sensor and benchmark use) against the Python
/// reference broker: auth, subscribe, publish, receive, and the broker's refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpfeeds_crate_client_against_python_broker() {
    use hpfeeds::{Client, ClientError, ClientOptions};
    let pyb = PyBroker::start("pybroker", &py_users()).await;
    let opts = |ident: &str, secret: &str| {
        ClientOptions::new(pyb.addr.ip().to_string(), pyb.addr.port(), ident, secret)
    };
    let mut sub = Client::connect(opts("sub1", "subsecret"))
        .await
        .expect("sub connects");
    assert_eq!(&sub.info().name[..], b"pybroker");
    sub.subscribe("test").await.expect("subscribe");
    let mut publ = Client::connect(opts("pub1", "pubsecret"))
        .await
        .expect("pub connects");

    // No subscription barrier in hpfeeds: probe until one arrives.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        publ.publish("test", "probe").await.expect("publish");
        publ.flush().await.expect("flush");
        if let Ok(Ok(m)) =
            tokio::time::timeout(std::time::Duration::from_millis(200), sub.recv()).await
        {
            assert_eq!(m.ident_str(), Some("pub1"));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscription never became live"
        );
    }
    publ.publish_batch("test", (0..50u32).map(|i| format!("msg {i}")))
        .await
        .expect("batch");
    publ.flush().await.expect("flush");
    let mut next = 0u32;
    while next < 50 {
        let m = tokio::time::timeout(WAIT, sub.recv())
            .await
            .expect("in time")
            .expect("message");
        if &m.payload[..] == b"probe" {
            continue;
        }
        assert_eq!(
            (m.ident_str(), m.channel_str()),
            (Some("pub1"), Some("test"))
        );
        assert_eq!(m.payload, format!("msg {next}"));
        next += 1;
    }

    let mut bad = Client::connect(opts("pub1", "wrong"))
        .await
        .expect("tcp connect");
    match bad.check_auth(std::time::Duration::from_secs(5)).await {
        Err(ClientError::Broker(text)) => assert_eq!(text, "Authentication failed for pub1"),
        other => panic!("expected the broker's refusal, got {other:?}"),
    }
}
