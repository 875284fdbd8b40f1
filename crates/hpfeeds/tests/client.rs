//! The client against tiny fake brokers that speak raw bytes on 127.0.0.1:0.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use hpfeeds::auth_hash;
use hpfeeds::client::{
    Backoff, Client, ClientError, ClientOptions, Message, ReconnectingClient, TlsOptions,
};
use hpfeeds::frame::{self, Frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const NONCE: [u8; 4] = [0x8d, 0xb2, 0x69, 0x42];
/// Bound for anything that should happen promptly; never reached when tests pass.
const PATIENCE: Duration = Duration::from_secs(10);

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).expect("test hex")
}

/// The broker side of one connection.
struct Peer<S> {
    stream: S,
    buf: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Peer<S> {
    fn new(stream: S) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// The next frame from the client, or `None` at EOF.
    async fn frame(&mut self) -> Option<Frame> {
        loop {
            match frame::check(&self.buf, 1 << 20) {
                Ok(n) => {
                    let raw = self.buf.split_to(n).freeze();
                    return Some(frame::parse(raw).expect("client frames parse"));
                }
                Err(frame::Error::Incomplete) => {}
                Err(e) => panic!("client sent an invalid frame: {e}"),
            }
            if self.stream.read_buf(&mut self.buf).await.expect("read") == 0 {
                return None;
            }
        }
    }

    /// Exactly the next `n` raw bytes from the client.
    async fn exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            let got = self.stream.read_buf(&mut self.buf).await.expect("read");
            assert_ne!(got, 0, "EOF after {} of {n} bytes", self.buf.len());
        }
        self.buf.split_to(n).to_vec()
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    async fn send_frame(&mut self, f: &Frame) {
        let bytes = f.to_bytes().expect("encodable");
        self.send(&bytes).await;
    }

    /// Sends `OP_INFO` (name `mybroker`) and returns the client's `(ident, hash)`.
    async fn greet(&mut self, nonce: [u8; 4]) -> (Bytes, Bytes) {
        self.send_frame(&Frame::Info {
            name: Bytes::from_static(b"mybroker"),
            nonce: Bytes::copy_from_slice(&nonce),
        })
        .await;
        match self.frame().await {
            Some(Frame::Auth { ident, hash }) => (ident, hash),
            other => panic!("expected AUTH, got {other:?}"),
        }
    }

    /// Greets and insists on the right secret.
    async fn login(&mut self, nonce: [u8; 4], secret: &str) -> Bytes {
        let (ident, hash) = self.greet(nonce).await;
        assert_eq!(
            hash.as_ref(),
            auth_hash(&nonce, secret.as_bytes()).as_slice()
        );
        ident
    }
}

async fn listen() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

async fn accept(l: &TcpListener) -> Peer<TcpStream> {
    let (s, _) = timeout(PATIENCE, l.accept())
        .await
        .expect("client connected in time")
        .expect("accept");
    Peer::new(s)
}

fn opts(port: u16) -> ClientOptions {
    ClientOptions::new("127.0.0.1", port, "pub1", "pubsecret")
}

fn msg(ident: &'static str, channel: &'static str, payload: &'static str) -> Message {
    Message {
        ident: Bytes::from_static(ident.as_bytes()),
        channel: Bytes::from_static(channel.as_bytes()),
        payload: Bytes::from_static(payload.as_bytes()),
    }
}

#[tokio::test]
async fn handshake_publish_subscribe_bytes_are_exact() {
    let (l, port) = listen().await;
    let server = tokio::spawn(async move {
        let mut p = accept(&l).await;
        p.send(&h("00 00 00 12 01 08 6d 79 62 72 6f 6b 65 72 8d b2 69 42"))
            .await;
        let auth = p.exact(30).await;
        let publ = p.exact(33).await;
        let sub = p.exact(14).await;
        let unsub = p.exact(14).await;
        (auth, publ, sub, unsub)
    });
    let mut c = Client::connect(opts(port)).await.expect("connect");
    assert_eq!(c.info().name.as_ref(), b"mybroker");
    assert_eq!(c.info().nonce.as_ref(), NONCE);
    assert_eq!(c.ident(), b"pub1");
    c.publish("test", br#"{"hello": "world"}"#)
        .await
        .expect("publish");
    c.flush().await.expect("flush");
    c.subscribe("test").await.expect("subscribe");
    c.unsubscribe("test").await.expect("unsubscribe");
    let (auth, publ, sub, unsub) = timeout(PATIENCE, server)
        .await
        .expect("server")
        .expect("join");

    let mut want = h("00 00 00 1e 02 04");
    want.extend_from_slice(b"pub1");
    // hashlib.sha1(bytes.fromhex('8db26942') + b'pubsecret').hexdigest()
    want.extend_from_slice(&h("72eaeba7ee80dbc2470f74dd5759e68457614dce"));
    assert_eq!(auth, want);
    let mut want = h("00 00 00 21 03 04");
    want.extend_from_slice(b"pub1\x04test{\"hello\": \"world\"}");
    assert_eq!(publ, want);
    let mut want = h("00 00 00 0e 04 04");
    want.extend_from_slice(b"pub1test");
    assert_eq!(sub, want);
    want[4] = 5;
    assert_eq!(unsub, want);
}

#[tokio::test]
async fn publications_are_buffered_until_flush_or_a_full_buffer() {
    let (l, port) = listen().await;
    let server = tokio::spawn(async move {
        let mut p = accept(&l).await;
        p.login(NONCE, "pubsecret").await;
        let mut got = Vec::new();
        for _ in 0..106 {
            got.push(p.frame().await.expect("frame"));
        }
        got
    });
    let mut c = Client::connect(opts(port).with_write_buffer(100))
        .await
        .expect("connect");
    // 17-byte frames: the buffer is written out when the sixth one reaches 102 bytes.
    for i in 0..5u32 {
        c.publish("ch", i.to_be_bytes()).await.expect("publish");
    }
    assert_eq!(c.buffered(), 85);
    c.publish("ch", 5u32.to_be_bytes()).await.expect("publish");
    assert_eq!(c.buffered(), 0);
    // `feed` never does IO, whatever the size.
    for i in 6..106u32 {
        c.feed("ch", i.to_be_bytes()).expect("feed");
    }
    assert_eq!(c.buffered(), 1700);
    c.flush().await.expect("flush");
    assert_eq!(c.buffered(), 0);
    let got = timeout(PATIENCE, server)
        .await
        .expect("server")
        .expect("join");
    for (i, f) in got.into_iter().enumerate() {
        assert_eq!(
            f,
            Frame::publish("pub1", "ch", (i as u32).to_be_bytes().to_vec())
        );
    }
}

#[tokio::test]
async fn receives_publications_then_broker_errors_then_close() {
    let (l, port) = listen().await;
    tokio::spawn(async move {
        let mut p = accept(&l).await;
        p.login(NONCE, "pubsecret").await;
        let mut publ = h("00 00 00 21 03 04");
        publ.extend_from_slice(b"pub1\x04test{\"hello\": \"world\"}");
        p.send(&publ).await;
        p.send_frame(&Frame::error("accessfail.")).await;
        p.send_frame(&Frame::publish("pub2", "other", "x")).await;
        // Unexpected frame types from a broker are ignored.
        p.send_frame(&Frame::Subscribe {
            ident: Bytes::from_static(b"x"),
            channel: Bytes::from_static(b"y"),
        })
        .await;
        p.send_frame(&Frame::publish("pub3", "last", "z")).await;
    });
    let mut c = Client::connect(opts(port)).await.expect("connect");
    let m = c.recv().await.expect("message");
    assert_eq!(m, msg("pub1", "test", r#"{"hello": "world"}"#));
    assert_eq!(m.channel_str(), Some("test"));
    assert_eq!(m.ident_str(), Some("pub1"));
    match c.recv().await {
        Err(ClientError::Broker(t)) => assert_eq!(t, "accessfail."),
        other => panic!("expected a broker error, got {other:?}"),
    }
    assert_eq!(
        c.recv().await.expect("still open"),
        msg("pub2", "other", "x")
    );
    assert_eq!(
        c.recv().await.expect("skipped junk"),
        msg("pub3", "last", "z")
    );
    assert!(matches!(c.recv().await, Err(ClientError::Closed)));
}

/// A broker that rejects the secret the way hpfeeds 3.1.0 does: ERROR, then close.
async fn rejecting_broker() -> u16 {
    let (l, port) = listen().await;
    tokio::spawn(async move {
        let mut p = accept(&l).await;
        let (ident, hash) = p.greet(NONCE).await;
        assert_ne!(hash.as_ref(), auth_hash(&NONCE, b"right").as_slice());
        let text = format!(
            "Authentication failed for {}",
            String::from_utf8_lossy(&ident)
        );
        p.send_frame(&Frame::error(text)).await;
    });
    port
}

#[tokio::test]
async fn auth_failure_is_reported_by_check_auth() {
    let port = rejecting_broker().await;
    let mut c = Client::connect(ClientOptions::new("127.0.0.1", port, "pub1", "wrong"))
        .await
        .expect("connect succeeds: brokers are silent until they reject");
    match c.check_auth(PATIENCE).await {
        Err(ClientError::Broker(t)) => assert_eq!(t, "Authentication failed for pub1"),
        other => panic!("expected the auth failure, got {other:?}"),
    }
}

#[tokio::test]
async fn auth_failure_reaches_a_publish_only_caller() {
    let port = rejecting_broker().await;
    let mut c = Client::connect(ClientOptions::new("127.0.0.1", port, "pub1", "wrong"))
        .await
        .expect("connect");
    let err = timeout(PATIENCE, async {
        loop {
            match c.flush().await {
                Ok(()) => tokio::task::yield_now().await,
                Err(e) => break e,
            }
        }
    })
    .await
    .expect("error surfaced");
    assert!(
        matches!(&err, ClientError::Broker(t) if t == "Authentication failed for pub1"),
        "{err:?}"
    );
    assert!(err.is_fatal());
}

#[tokio::test]
async fn check_auth_passes_when_the_broker_stays_silent() {
    let (l, port) = listen().await;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut p = accept(&l).await;
        p.login(NONCE, "pubsecret").await;
        let _ = done_rx.await; // keep the connection open
    });
    let mut c = Client::connect(opts(port)).await.expect("connect");
    c.check_auth(Duration::from_millis(50))
        .await
        .expect("no rejection");
    drop(done_tx);
}

#[tokio::test]
async fn connect_times_out_without_info() {
    let (l, port) = listen().await;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _silent = accept(&l).await;
        let _ = done_rx.await;
    });
    let r = Client::connect(opts(port).with_connect_timeout(Duration::from_millis(100))).await;
    assert!(matches!(r, Err(ClientError::Timeout)), "{r:?}");
    drop(done_tx);
}

#[tokio::test]
async fn first_frame_must_be_info() {
    let (l, port) = listen().await;
    tokio::spawn(async move {
        let mut p = accept(&l).await;
        p.send_frame(&Frame::publish("a", "b", "c")).await;
        let mut p = accept(&l).await;
        p.send_frame(&Frame::error("Too many connections")).await;
        let mut p = accept(&l).await;
        p.send(&[0xff, 0xff, 0xff, 0xff, 1]).await;
        let _p = accept(&l).await; // closes at once
    });
    let r = Client::connect(opts(port)).await;
    assert!(matches!(r, Err(ClientError::Protocol(_))), "{r:?}");
    let r = Client::connect(opts(port)).await;
    assert!(
        matches!(&r, Err(ClientError::Broker(t)) if t == "Too many connections"),
        "{r:?}"
    );
    let r = Client::connect(opts(port)).await;
    assert!(
        matches!(r, Err(ClientError::Frame(frame::Error::TooLarge { .. }))),
        "{r:?}"
    );
    let r = Client::connect(opts(port)).await;
    assert!(matches!(r, Err(ClientError::Closed)), "{r:?}");
}

#[tokio::test]
async fn bad_options_are_refused_before_connecting() {
    let long = "x".repeat(256);
    let r = Client::connect(ClientOptions::new("127.0.0.1", 1, long, "s")).await;
    assert!(matches!(r, Err(ClientError::Options(_))), "{r:?}");
}

#[tokio::test]
async fn invalid_requests_leave_the_connection_usable() {
    let (l, port) = listen().await;
    let server = tokio::spawn(async move {
        let mut p = accept(&l).await;
        p.login(NONCE, "pubsecret").await;
        p.frame().await
    });
    let mut c = Client::connect(opts(port).with_max_frame_len(100))
        .await
        .expect("connect");
    let e = c
        .publish("c".repeat(256), "p")
        .await
        .expect_err("long channel");
    assert!(
        matches!(e, ClientError::Invalid(_)) && !e.is_fatal(),
        "{e:?}"
    );
    let e = c
        .publish("ch", [0u8; 100])
        .await
        .expect_err("frame over max");
    assert!(
        matches!(
            e,
            ClientError::Invalid(frame::Error::TooLarge { len: 113, max: 100 })
        ),
        "{e:?}"
    );
    c.publish("ch", "ok").await.expect("publish");
    c.flush().await.expect("flush");
    let f = timeout(PATIENCE, server)
        .await
        .expect("server")
        .expect("join");
    assert_eq!(f, Some(Frame::publish("pub1", "ch", "ok")));
}

/// Accepts one client and echoes every PUBLISH back, like a broker relaying to a
/// publisher subscribed to its own channel.
async fn echo_broker() -> u16 {
    let (l, port) = listen().await;
    tokio::spawn(async move {
        let mut p = accept(&l).await;
        p.login(NONCE, "pubsecret").await;
        let mut out = BytesMut::new();
        loop {
            // Echo whatever whole frames are buffered in one write.
            while let Ok(n) = frame::check(&p.buf, 1 << 20) {
                let raw = p.buf.split_to(n);
                if raw.get(4) == Some(&3) {
                    out.extend_from_slice(&raw);
                }
            }
            if !out.is_empty() {
                p.send(&out).await;
                out.clear();
            }
            if p.stream.read_buf(&mut p.buf).await.expect("read") == 0 {
                return;
            }
        }
    });
    port
}

#[tokio::test]
async fn split_halves_publish_and_receive_concurrently() {
    const N: u32 = 20_000;
    let port = echo_broker().await;
    let c = Client::connect(opts(port).with_write_buffer(16 * 1024))
        .await
        .expect("connect");
    let (mut publisher, subscriber) = c.split();
    let writer = tokio::spawn(async move {
        publisher
            .publish_batch("bench", (0..N).map(u32::to_be_bytes))
            .await
            .expect("batch");
        let mut items = futures::stream::iter((N..2 * N).map(|i| Ok(("bench", i.to_be_bytes()))));
        publisher.send_all(&mut items).await.expect("sink");
        publisher.shutdown().await.expect("shutdown");
    });
    let got: Vec<Message> = timeout(
        PATIENCE,
        subscriber
            .take(2 * N as usize)
            .map(|r| r.expect("message"))
            .collect(),
    )
    .await
    .expect("all echoed");
    timeout(PATIENCE, writer)
        .await
        .expect("writer")
        .expect("join");
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.payload.as_ref(), (i as u32).to_be_bytes());
        assert_eq!(m.channel.as_ref(), b"bench");
    }
}

fn fast_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(50),
        jitter: 0.5,
        healthy_after: Duration::from_secs(60),
    }
}

#[tokio::test]
async fn reconnecting_client_resubscribes_after_the_broker_drops_it() {
    let (l, port) = listen().await;
    let server = tokio::spawn(async move {
        let mut p = accept(&l).await;
        p.login([1, 2, 3, 4], "pubsecret").await;
        assert_eq!(
            p.frame().await,
            Some(Frame::Subscribe {
                ident: Bytes::from_static(b"pub1"),
                channel: Bytes::from_static(b"test")
            })
        );
        drop(p);
        // The second connection authenticates against a new nonce and re-subscribes.
        let mut p = accept(&l).await;
        p.login([5, 6, 7, 8], "pubsecret").await;
        assert!(
            matches!(p.frame().await, Some(Frame::Subscribe { channel, .. }) if channel == "test")
        );
        p.send_frame(&Frame::publish("pub2", "test", "after")).await;
        p // keep it open until the test has read
    });
    let mut rc = ReconnectingClient::new(opts(port), fast_backoff());
    let seen = Arc::new(AtomicU64::new(0));
    let hook_seen = seen.clone();
    rc.set_on_reconnect(move |g| hook_seen.store(g, Ordering::SeqCst));
    assert!(!rc.is_connected());
    rc.subscribe("test").await.expect("subscribe connects");
    assert_eq!(rc.generation(), 1);
    let e = timeout(PATIENCE, rc.recv())
        .await
        .expect("prompt")
        .expect_err("dropped");
    assert!(matches!(e, ClientError::Closed), "{e:?}");
    assert!(!rc.is_connected());
    let m = timeout(PATIENCE, rc.recv())
        .await
        .expect("prompt")
        .expect("message");
    assert_eq!(m, msg("pub2", "test", "after"));
    assert_eq!(rc.generation(), 2);
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    // The connection died young, so the backoff was not reset.
    assert_eq!(rc.failures(), 1);
    drop(
        timeout(PATIENCE, server)
            .await
            .expect("server")
            .expect("join"),
    );
}

#[tokio::test]
async fn reconnecting_publisher_reports_the_loss_and_publishes_on_a_new_connection() {
    let (l, port) = listen().await;
    let server = tokio::spawn(async move {
        // First connection: authenticate, then hang up without reading anything more.
        let mut p = accept(&l).await;
        p.login(NONCE, "pubsecret").await;
        drop(p);
        let mut p = accept(&l).await;
        p.login(NONCE, "pubsecret").await;
        p.frame().await
    });
    let mut rc = ReconnectingClient::new(opts(port), fast_backoff());
    rc.publish("test", "maybe lost").await.expect("buffered");
    let err = timeout(PATIENCE, async {
        loop {
            match rc.flush().await {
                Ok(()) => tokio::task::yield_now().await,
                Err(e) => break e,
            }
        }
    })
    .await
    .expect("the drop is noticed");
    assert!(err.is_fatal(), "{err:?}");
    assert!(!rc.is_connected());
    // A caller with a spool re-sends; the next call reconnects after the backoff.
    rc.publish("test", "redelivered").await.expect("publish");
    rc.flush().await.expect("flush");
    let f = timeout(PATIENCE, server)
        .await
        .expect("server")
        .expect("join");
    assert_eq!(f, Some(Frame::publish("pub1", "test", "redelivered")));
    assert_eq!(rc.generation(), 2);
}

#[tokio::test]
async fn reconnecting_client_keeps_trying_while_the_broker_is_down() {
    // Reserve a port, then close it: connections are refused until a broker appears.
    let (l, port) = listen().await;
    drop(l);
    let mut rc = ReconnectingClient::new(opts(port), fast_backoff());
    for n in 1..=3 {
        assert!(rc.try_connect().await.is_err());
        assert_eq!(rc.failures(), n);
    }
    let l = TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("rebind");
    let server = tokio::spawn(async move {
        let mut p = accept(&l).await;
        p.login(NONCE, "pubsecret").await;
        p.frame().await
    });
    rc.publish("test", "hello")
        .await
        .expect("eventually connects");
    rc.flush().await.expect("flush");
    let f = timeout(PATIENCE, server)
        .await
        .expect("server")
        .expect("join");
    assert_eq!(f, Some(Frame::publish("pub1", "test", "hello")));
}

mod tls {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    use tokio_rustls::rustls::{self, pki_types};

    /// A CA (PEM) and a server config for `localhost` signed by it.
    fn ca_and_server() -> (String, Arc<rustls::ServerConfig>) {
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_cert = ca.self_signed(&ca_key).expect("CA cert");
        let issuer = Issuer::new(ca, ca_key);
        let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        leaf.subject_alt_names = vec![SanType::DnsName("localhost".try_into().expect("dns"))];
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).expect("leaf cert");
        let key = pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf_cert.der().clone()], key)
        .expect("server config");
        (ca_cert.pem(), Arc::new(config))
    }

    #[tokio::test]
    async fn publish_and_receive_over_tls_with_sni() {
        let (ca_pem, server_config) = ca_and_server();
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca_pem).expect("write CA");
        let (l, port) = listen().await;
        let server = tokio::spawn(async move {
            let (tcp, _) = l.accept().await.expect("accept");
            let tls = tokio_rustls::TlsAcceptor::from(server_config)
                .accept(tcp)
                .await
                .expect("handshake");
            let sni = tls.get_ref().1.server_name().map(str::to_owned);
            let mut p = Peer::new(tls);
            p.login(NONCE, "pubsecret").await;
            let f = p.frame().await;
            p.send_frame(&Frame::publish("pub2", "test", "secret stuff"))
                .await;
            p.stream.shutdown().await.expect("close_notify");
            (sni, f)
        });
        let o = ClientOptions::new("localhost", port, "pub1", "pubsecret")
            .with_tls(TlsOptions::CaFile(ca_path));
        let mut c = Client::connect(o).await.expect("TLS connect");
        c.publish("test", "over tls").await.expect("publish");
        let m = c.recv().await.expect("recv flushes, then reads");
        assert_eq!(m, msg("pub2", "test", "secret stuff"));
        let (sni, f) = timeout(PATIENCE, server)
            .await
            .expect("server")
            .expect("join");
        assert_eq!(sni.as_deref(), Some("localhost"));
        assert_eq!(f, Some(Frame::publish("pub1", "test", "over tls")));
    }

    #[tokio::test]
    async fn an_untrusted_broker_certificate_is_refused() {
        let (_, server_config) = ca_and_server();
        let (other_ca, _) = ca_and_server();
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_path = dir.path().join("other.pem");
        std::fs::write(&ca_path, other_ca).expect("write CA");
        let (l, port) = listen().await;
        tokio::spawn(async move {
            let (tcp, _) = l.accept().await.expect("accept");
            let _ = tokio_rustls::TlsAcceptor::from(server_config)
                .accept(tcp)
                .await;
        });
        let o = ClientOptions::new("localhost", port, "pub1", "pubsecret")
            .with_tls(TlsOptions::CaFile(ca_path));
        let r = Client::connect(o).await;
        assert!(matches!(r, Err(ClientError::Io(_))), "{r:?}");
    }

    #[tokio::test]
    async fn a_missing_or_empty_ca_file_is_a_tls_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        for path in [dir.path().join("missing.pem"), empty] {
            let o =
                ClientOptions::new("localhost", 1, "pub1", "s").with_tls(TlsOptions::CaFile(path));
            let r = Client::connect(o).await;
            assert!(matches!(r, Err(ClientError::Tls(_))), "{r:?}");
        }
    }
}

/// Everything a caller may want to move into `tokio::spawn` is `Send`, futures included.
#[allow(dead_code, clippy::diverging_sub_expression)]
fn handles_and_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    async fn futures(mut c: Client, mut rc: ReconnectingClient) {
        send(&c.publish("c", "p"));
        send(&c.recv());
        send(&rc.publish("c", "p"));
        send(&rc.recv());
        send(&rc.try_connect());
        let (mut p, mut s) = c.split();
        send(&p.publish("c", "p"));
        send(&s.recv());
        send(&p);
        send(&s);
        send(&rc);
        send(&Client::connect(opts(1)));
    }
}
