//! The broker's observable protocol behaviour, byte for byte, over real sockets.
//!
//! Each rule of the crate docs (`src/lib.rs`, "Behaviour") has a test here. Ordering
//! proofs use [`RawClient::sync`]: the broker answers it only after everything sent
//! before it was processed, so "nothing was relayed" is checked without sleeping.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use apiary_broker::session::Refusal;
use apiary_broker::BrokerConfig;
use bytes::Bytes;
use common::*;
use hpfeeds::frame::Frame;

#[tokio::test]
async fn info_has_configured_name_and_fresh_nonce() {
    let b = start(
        BrokerConfig {
            name: "@hp2".into(),
            ..config()
        },
        &default_idents(),
    )
    .await;
    let c1 = b.connect().await;
    let c2 = b.connect().await;
    for c in [&c1, &c2] {
        // u32 BE total length | op 1 | u8 name length | name | 4-byte nonce
        let info = &c.info[..];
        assert_eq!(info.len(), 5 + 1 + 4 + 4, "{info:?}");
        assert_eq!(&info[..4], &(info.len() as u32).to_be_bytes());
        assert_eq!(info[4], 1, "opcode INFO");
        assert_eq!(info[5], 4, "name length");
        assert_eq!(&info[6..10], b"@hp2");
        assert_eq!(c.nonce.len(), 4);
        assert_eq!(&info[10..], &c.nonce[..]);
    }
    // 2^-32 chance of a false failure.
    assert_ne!(c1.nonce, c2.nonce, "each connection gets its own nonce");
}

#[tokio::test]
async fn publish_is_relayed_byte_exact_with_publisher_ident() {
    let b = start(config(), &default_idents()).await;
    let mut sub = b.login("sub1", "subsecret").await;
    sub.subscribe("test").await;
    sub.sync().await;
    let mut publ = b.login("pub1", "pubsecret").await;

    let payload = br#"{"hello": "world"}"#;
    // Built by hand, independent of the encoder under test.
    let mut expected = vec![0, 0, 0, 0, 3, 4];
    expected.extend_from_slice(b"pub1");
    expected.push(4);
    expected.extend_from_slice(b"test");
    expected.extend_from_slice(payload);
    let len = expected.len() as u32;
    expected[..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(len, 33);
    publ.send_raw(&expected).await;

    let (raw, ident, channel, got) = sub.expect_publish().await;
    assert_eq!(&raw[..], &expected[..]);
    assert_eq!(
        (&ident[..], &channel[..], &got[..]),
        (&b"pub1"[..], &b"test"[..], &payload[..])
    );

    // Binary payloads (including bytes that are not UTF-8) pass through untouched.
    let binary: Vec<u8> = (0..=255u8).collect();
    publ.publish("test", binary.clone()).await;
    let (_, _, _, got) = sub.expect_publish().await;
    assert_eq!(&got[..], &binary[..]);
    let stats = b.broker.metrics().channel(&Bytes::from_static(b"test"));
    assert_eq!(stats.messages_in.load(Relaxed), 2);
    assert_eq!(stats.messages_out.load(Relaxed), 2);
}

#[tokio::test]
async fn wrong_secret_gets_error_then_close() {
    let b = start(config(), &default_idents()).await;
    let mut c = b.connect().await;
    c.auth("pub1", "not-the-secret").await;
    c.expect_error("Authentication failed for pub1").await;
    c.expect_closed().await;
    assert_eq!(b.broker.metrics().refusal_count(Refusal::AuthFailed), 1);
}

#[tokio::test]
async fn unknown_ident_gets_error_then_close() {
    let b = start(config(), &default_idents()).await;
    let mut c = b.connect().await;
    c.auth("nobody", "whatever").await;
    c.expect_error("Authentication failed for nobody").await;
    c.expect_closed().await;
}

#[tokio::test]
async fn publish_before_auth_is_fatal() {
    let b = start(config(), &default_idents()).await;
    let mut c = b.connect().await;
    c.send(&Frame::publish("pub1", "test", "early")).await;
    c.expect_error("First message was not AUTH").await;
    c.expect_closed().await;

    let mut c = b.connect().await;
    c.send(&Frame::Subscribe {
        ident: "sub1".into(),
        channel: "test".into(),
    })
    .await;
    c.expect_error("First message was not AUTH").await;
    c.expect_closed().await;
    assert_eq!(b.broker.metrics().refusal_count(Refusal::NotAuthFirst), 2);
}

#[tokio::test]
async fn acl_refusals_are_non_fatal() {
    let b = start(config(), &default_idents()).await;
    let mut sub = b.login("sub1", "subsecret").await;
    let mut publ = b.login("pub1", "pubsecret").await;

    publ.publish("forbidden", "x").await;
    publ.expect_error("Authkey not allowed to pub here. ident=pub1, chan=forbidden")
        .await;
    sub.subscribe("forbidden").await;
    sub.expect_error("Authkey not allowed to sub here. ident=sub1, chan=forbidden")
        .await;
    // Publishing to a notification channel is refused even with rights on the base.
    publ.publish("test..broker", "join").await;
    publ.expect_error("Authkey not allowed to pub here. ident=pub1, chan=test..broker")
        .await;

    // Both connections still work.
    sub.subscribe("test").await;
    sub.sync().await;
    publ.publish("test", "after refusals").await;
    let (_, ident, _, payload) = sub.expect_publish().await;
    assert_eq!(
        (&ident[..], &payload[..]),
        (&b"pub1"[..], &b"after refusals"[..])
    );
    let m = b.broker.metrics();
    assert_eq!(m.refusal_count(Refusal::PublishDenied), 2);
    assert_eq!(m.refusal_count(Refusal::SubscribeDenied), 1);
}

#[tokio::test]
async fn spoofed_ident_is_refused_and_not_relayed() {
    let b = start(config(), &default_idents()).await;
    let mut sub = b.login("sub1", "subsecret").await;
    sub.subscribe("test").await;
    sub.sync().await;
    let mut publ = b.login("pub1", "pubsecret").await;

    // pub1 claims to be `both`, which may also publish on `test`.
    publ.send(&Frame::publish("both", "test", "spoofed")).await;
    publ.expect_error("Invalid authkey in message, ident=both")
        .await;
    publ.send(&Frame::Subscribe {
        ident: "sub1".into(),
        channel: "test".into(),
    })
    .await;
    publ.expect_error("Invalid authkey in message, ident=sub1")
        .await;
    // The refusal came after the broker routed (or not) the spoofed frame, so the
    // subscriber's next frame must be the genuine one.
    publ.publish("test", "genuine").await;
    let (_, ident, _, payload) = sub.expect_publish().await;
    assert_eq!((&ident[..], &payload[..]), (&b"pub1"[..], &b"genuine"[..]));
    assert_eq!(b.broker.metrics().refusal_count(Refusal::IdentMismatch), 2);
}

#[tokio::test]
async fn no_echo_to_publisher() {
    let b = start(config(), &default_idents()).await;
    let mut both = b.login("both", "bothsecret").await;
    both.subscribe("test").await;
    let mut sub = b.login("sub1", "subsecret").await;
    sub.subscribe("test").await;
    sub.sync().await;

    both.publish("test", "mine").await;
    // An echo would be queued before the barrier's reply.
    both.sync().await;
    let (_, ident, _, payload) = sub.expect_publish().await;
    assert_eq!((&ident[..], &payload[..]), (&b"both"[..], &b"mine"[..]));

    // It still receives other publishers' messages on the same channel.
    let mut publ = b.login("pub1", "pubsecret").await;
    publ.publish("test", "theirs").await;
    let (_, ident, _, _) = both.expect_publish().await;
    assert_eq!(&ident[..], b"pub1");
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let b = start(config(), &default_idents()).await;
    let mut sub = b.login("sub1", "subsecret").await;
    sub.subscribe("test").await;
    sub.sync().await;
    let mut publ = b.login("pub1", "pubsecret").await;
    publ.publish("test", "one").await;
    let (_, _, _, p) = sub.expect_publish().await;
    assert_eq!(&p[..], b"one");

    sub.unsubscribe("test").await;
    sub.sync().await;
    publ.publish("test", "two").await;
    publ.sync().await;
    // "two" was routed before this barrier; had it been queued, it would come first.
    sub.sync().await;

    // Unsubscribing from something never subscribed is harmless.
    sub.unsubscribe("other").await;
    sub.sync().await;
}

#[tokio::test]
async fn broker_channel_reports_join_and_leave() {
    let b = start(config(), &default_idents()).await;
    let mut watch = b.login("watch", "watchsecret").await;
    watch.subscribe("test..broker").await;
    watch.sync().await;

    let expect = |what: &'static str| {
        move |(raw, ident, channel, payload): (Bytes, Bytes, Bytes, Bytes)| {
            assert_eq!(&ident[..], b"sub1", "{raw:?}");
            assert_eq!(&channel[..], b"test..broker");
            assert_eq!(&payload[..], what.as_bytes());
        }
    };
    let mut sub = b.login("sub1", "subsecret").await;
    sub.subscribe("test").await;
    expect("join")(watch.expect_publish().await);
    sub.unsubscribe("test").await;
    expect("leave")(watch.expect_publish().await);
    sub.subscribe("test").await;
    expect("join")(watch.expect_publish().await);
    drop(sub); // Disconnecting leaves every channel.
    expect("leave")(watch.expect_publish().await);

    // Subscribing to `<chan>..broker` needs subscribe rights on `<chan>`.
    let mut publ = b.login("pub1", "pubsecret").await;
    publ.subscribe("test..broker").await;
    publ.expect_error("Authkey not allowed to sub here. ident=pub1, chan=test..broker")
        .await;
}

#[tokio::test]
async fn auth_timeout_closes_idle_connection() {
    let b = start(
        BrokerConfig {
            // Long enough for a login on a loaded machine, short enough to wait for.
            auth_timeout: Duration::from_secs(1),
            ..config()
        },
        &default_idents(),
    )
    .await;
    let mut c = b.connect().await;
    c.expect_error("Authentication timeout").await;
    c.expect_closed().await;
    assert_eq!(b.broker.metrics().auth_timeouts.load(Relaxed), 1);

    // An authenticated connection outlives the auth timeout.
    let mut ok = b.login("pub1", "pubsecret").await;
    let idle_until = tokio::time::Instant::now() + Duration::from_millis(1500);
    tokio::time::sleep_until(idle_until).await;
    ok.sync().await;
    assert_eq!(b.broker.metrics().auth_timeouts.load(Relaxed), 1);
}

#[tokio::test]
async fn removed_ident_is_disconnected_and_changed_acl_applies_on_reconnect() {
    let b = start(config(), &default_idents()).await;
    let mut sub = b.login("sub1", "subsecret").await;
    let mut publ = b.login("pub1", "pubsecret").await;
    let mut watch = b.login("watch", "watchsecret").await;

    // Remove sub1, extend pub1's rights, keep watch unchanged.
    let idents = vec![
        ident("pub1", "pubsecret", &["test", "other"], &[]),
        ident("watch", "watchsecret", &[], &["test"]),
        ident("both", "bothsecret", &["test"], &["test", "other"]),
    ];
    assert_eq!(
        b.broker.load_idents(&idents),
        2,
        "sub1 and pub1 connections"
    );
    sub.expect_closed().await;
    publ.expect_closed().await;
    watch.sync().await; // Unchanged ident: connection untouched.
    assert_eq!(b.broker.metrics().ident_kicks.load(Relaxed), 2);

    // sub1 can no longer log in.
    let mut c = b.connect().await;
    c.auth("sub1", "subsecret").await;
    c.expect_error("Authentication failed for sub1").await;
    c.expect_closed().await;

    // pub1 reconnects with its new rights.
    let mut both = b.login("both", "bothsecret").await;
    both.subscribe("other").await;
    both.sync().await;
    let mut publ = b.login("pub1", "pubsecret").await;
    publ.publish("other", "new right").await;
    let (_, who, channel, _) = both.expect_publish().await;
    assert_eq!((&who[..], &channel[..]), (&b"pub1"[..], &b"other"[..]));

    // A secret change also kicks, and only the new secret works afterwards.
    let idents = vec![ident("pub1", "rotated", &["test", "other"], &[])];
    b.broker.load_idents(&idents);
    publ.expect_closed().await;
    let mut c = b.connect().await;
    c.auth("pub1", "pubsecret").await;
    c.expect_error("Authentication failed for pub1").await;
    let _ok = b.login("pub1", "rotated").await;
}

#[tokio::test]
async fn client_sending_info_or_error_is_closed() {
    let b = start(config(), &default_idents()).await;
    let mut c = b.login("pub1", "pubsecret").await;
    c.send(&Frame::Info {
        name: "evil".into(),
        nonce: Bytes::from_static(&[1, 2, 3, 4]),
    })
    .await;
    c.expect_error("Unexpected OP_INFO from client").await;
    c.expect_closed().await;

    let mut c = b.connect().await;
    c.send(&Frame::error("hello")).await;
    c.expect_error("Unexpected OP_ERROR from client").await;
    c.expect_closed().await;
}
