//! hpfeeds over TLS: a throwaway CA and server certificate made in the test (rcgen, ring),
//! the broker's `tls::acceptor`, and the Python sync client with `certfile=<CA>`.
//!
//! The same broker also listens on plain TCP, where a raw client watches `test..broker`
//! to know when the TLS subscriber's SUBSCRIBE has arrived.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use apiary_broker::Broker;
use common::python::{events_of, PyPeer};
use common::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Writes `ca.pem`, `server.pem` and `server.key` (SAN 127.0.0.1 and localhost) to `dir`.
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "apiary test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_cert = ca.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca, ca_key);

    let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
    leaf.subject_alt_names = vec![
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::DnsName("localhost".try_into().expect("dns name")),
    ];
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "apiary test broker");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).expect("leaf cert");

    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).expect("write CA");
    std::fs::write(&paths.1, leaf_cert.pem()).expect("write cert");
    std::fs::write(&paths.2, leaf_key.serialize_pem()).expect("write key");
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sync_client_over_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = make_certs(dir.path());
    let acceptor = apiary_broker::tls::acceptor(&cert, &key).expect("TLS acceptor");

    // One broker, two listeners: TLS for the Python clients, plain TCP for the watcher.
    let tls = start_with_tls(config(), &default_idents(), Some(acceptor)).await;
    let plain = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let plain_addr = plain.local_addr().expect("addr");
    let broker: Broker = tls.broker.clone();
    let token: CancellationToken = tls.guard.0.clone();
    tokio::spawn(async move { broker.run(plain, None, token).await });

    let mut watch = RawClient::connect(plain_addr).await;
    watch.auth("watch", "watchsecret").await;
    watch.sync().await;
    watch.subscribe("test..broker").await;
    watch.sync().await;

    let ca = ca.to_str().expect("utf-8 path");
    let mut sub = PyPeer::spawn_as(
        "sync-sub",
        tls.addr,
        "sub1",
        "subsecret",
        &["--channel", "test", "--count", "2", "--certfile", ca],
    );
    let connected = sub.expect("connected").await;
    assert_eq!(connected["broker"], "apiary-test");
    let (_, who, _, what) = watch.expect_publish().await;
    assert_eq!((&who[..], &what[..]), (&b"sub1"[..], &b"join"[..]));

    let publ = PyPeer::spawn_as(
        "sync-pub",
        tls.addr,
        "pub1",
        "pubsecret",
        &[
            "--channel",
            "test",
            "--payload",
            "over tls 1",
            "--payload",
            "over tls 2",
            "--certfile",
            ca,
        ],
    );
    let events = publ.finish_ok().await;
    assert_eq!(events_of(&events, "published").len(), 1, "{events:?}");

    let events = sub.finish_ok().await;
    let msgs = events_of(&events, "message");
    assert_eq!(msgs.len(), 2, "{events:?}");
    for (m, want) in msgs.iter().zip(["over tls 1", "over tls 2"]) {
        assert_eq!(m["ident"], "pub1");
        assert_eq!(m["channel"], "test");
        assert_eq!(m["payload"], want);
    }

    // A wrong secret over TLS is refused the same way.
    let bad = PyPeer::spawn_as("sync-auth", tls.addr, "pub1", "nope", &["--certfile", ca]);
    let events = bad.finish_ok().await;
    assert_eq!(
        events_of(&events, "error")[0]["text"],
        "Authentication failed for pub1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_not_trusting_the_ca_cannot_connect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, cert, key) = make_certs(dir.path());
    let acceptor = apiary_broker::tls::acceptor(&cert, &key).expect("TLS acceptor");
    let tls = start_with_tls(config(), &default_idents(), Some(acceptor)).await;
    // A different CA: verification fails. hpfeeds.new() then retries every 20 s forever
    // (even with reconnect=False), so the script's own deadline ends it.
    let other = tempfile::tempdir().expect("tempdir");
    let (other_ca, _, _) = make_certs(other.path());
    let peer = PyPeer::spawn_as(
        "sync-auth",
        tls.addr,
        "pub1",
        "pubsecret",
        &[
            "--certfile",
            other_ca.to_str().expect("utf-8 path"),
            "--timeout",
            "3",
        ],
    );
    let (events, code) = peer.finish().await;
    assert_eq!(code, Some(3), "{events:?}");
    assert!(events_of(&events, "connected").is_empty(), "{events:?}");
    assert_eq!(
        tls.broker
            .metrics()
            .authenticated_open
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    // Plain hpfeeds on the TLS port gets no INFO: the handshake fails and it is closed.
    let mut s = tokio::net::TcpStream::connect(tls.addr)
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut s, &[0, 0, 0, 5, 2])
        .await
        .expect("write");
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read(&mut s, &mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert!(
        n == 0 || buf[0] == 0x15,
        "expected close or a TLS alert, got {:?}",
        &buf[..n]
    );
}
