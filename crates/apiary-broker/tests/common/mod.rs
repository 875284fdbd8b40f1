//! Shared harness for the broker's integration tests: an in-process broker on
//! `127.0.0.1:0`, a raw-socket hpfeeds client that speaks exact bytes, and helpers to find
//! the Python interpreter that has `hpfeeds` 3.1.0 installed.
//!
//! Every wait is a deadline (generous, for a loaded 2-core machine); nothing asserts on
//! timing.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod python;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use apiary_broker::{Broker, BrokerConfig};
use apiary_model::{Ident, Secret};
use bytes::{Bytes, BytesMut};
use hpfeeds::frame::{self, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How long any single expected event may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);

/// Largest frame the test client accepts from a broker.
const CLIENT_MAX_FRAME: usize = 64 * 1024 * 1024;

/// An ident with the given channel rights.
pub fn ident(name: &str, secret: &str, publish: &[&str], subscribe: &[&str]) -> Ident {
    Ident {
        ident: name.into(),
        secret: Secret::new(secret),
        publish: publish.iter().map(|s| s.to_string()).collect(),
        subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
        owner: "tests".into(),
    }
}

/// The idents most tests use: `pub1` publishes `test`, `sub1` subscribes `test`,
/// `both` does both (and may publish `other`), `watch` subscribes `test` (for `..broker`).
pub fn default_idents() -> Vec<Ident> {
    vec![
        ident("pub1", "pubsecret", &["test"], &[]),
        ident("sub1", "subsecret", &[], &["test"]),
        ident("both", "bothsecret", &["test"], &["test", "other"]),
        ident("watch", "watchsecret", &[], &["test"]),
    ]
}

/// A config for tests: a recognisable name, defaults otherwise.
pub fn config() -> BrokerConfig {
    BrokerConfig {
        name: "apiary-test".into(),
        ..BrokerConfig::default()
    }
}

/// Cancels the broker when dropped, so a failing test never leaves it running.
pub struct CancelOnDrop(pub CancellationToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// A broker serving on a real socket.
pub struct TestBroker {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The broker (metrics, `load_idents`, `subscribe_internal`).
    pub broker: Broker,
    /// Cancels the accept loop and every connection on drop.
    pub guard: CancelOnDrop,
}

impl TestBroker {
    /// Shuts the broker down now.
    pub fn shutdown(&self) {
        self.guard.0.cancel();
    }

    /// Opens a raw connection and reads INFO.
    pub async fn connect(&self) -> RawClient {
        RawClient::connect(self.addr).await
    }

    /// Opens a connection, reads INFO, authenticates and proves the broker accepted it.
    pub async fn login(&self, ident: &str, secret: &str) -> RawClient {
        let mut c = self.connect().await;
        c.auth(ident, secret).await;
        c.sync().await;
        c
    }
}

/// Starts a plain-TCP broker on `127.0.0.1:0`.
pub async fn start(config: BrokerConfig, idents: &[Ident]) -> TestBroker {
    start_with_tls(config, idents, None).await
}

/// Starts a broker on `127.0.0.1:0`, speaking TLS when `tls` is set.
pub async fn start_with_tls(
    config: BrokerConfig,
    idents: &[Ident],
    tls: Option<TlsAcceptor>,
) -> TestBroker {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let broker = Broker::new(config);
    broker.load_idents(idents);
    let token = CancellationToken::new();
    let b = broker.clone();
    let t = token.clone();
    tokio::spawn(async move { b.run(listener, tls, t).await });
    TestBroker {
        addr,
        broker,
        guard: CancelOnDrop(token),
    }
}

/// What reading one frame produced.
#[derive(Debug)]
pub enum Read {
    /// A whole frame: its exact bytes and its parse.
    Frame(Bytes, Frame),
    /// The peer closed the connection (EOF or reset) with no partial frame pending.
    Closed,
    /// Nothing complete arrived in time.
    Timeout,
}

/// A hpfeeds client on a raw socket: every byte is under the test's control.
pub struct RawClient {
    pub stream: TcpStream,
    buf: BytesMut,
    /// The exact INFO frame received on connect.
    pub info: Bytes,
    /// Broker name from INFO.
    pub name: Bytes,
    /// Nonce from INFO.
    pub nonce: Bytes,
    /// Ident after `auth`.
    pub ident: String,
}

impl RawClient {
    /// Connects and reads the INFO frame.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Self::from_stream(stream).await
    }

    /// Wraps an already connected stream and reads the INFO frame.
    pub async fn from_stream(stream: TcpStream) -> Self {
        let mut c = Self {
            stream,
            buf: BytesMut::new(),
            info: Bytes::new(),
            name: Bytes::new(),
            nonce: Bytes::new(),
            ident: String::new(),
        };
        match c.read(WAIT).await {
            Read::Frame(raw, Frame::Info { name, nonce }) => {
                c.info = raw;
                c.name = name;
                c.nonce = nonce;
            }
            other => panic!("expected INFO on connect, got {other:?}"),
        }
        c
    }

    /// Sends AUTH for `ident` with `SHA1(nonce ‖ secret)`. Success has no reply.
    pub async fn auth(&mut self, ident: &str, secret: &str) {
        let hash = hpfeeds::auth_hash(&self.nonce, secret.as_bytes());
        self.send(&Frame::Auth {
            ident: Bytes::copy_from_slice(ident.as_bytes()),
            hash: Bytes::copy_from_slice(&hash),
        })
        .await;
        self.ident = ident.to_string();
    }

    /// Barrier: proves the broker has processed every frame sent before it. Sends a second
    /// AUTH, which an authenticated connection answers with a non-fatal
    /// `Already authenticated`; anything queued for this client before that (relayed
    /// messages included) arrives first and makes this panic.
    pub async fn sync(&mut self) {
        self.send(&Frame::Auth {
            ident: Bytes::copy_from_slice(self.ident.as_bytes()),
            hash: Bytes::new(),
        })
        .await;
        self.expect_error("Already authenticated").await;
    }

    /// Encodes and sends a frame.
    pub async fn send(&mut self, f: &Frame) {
        let b = f.to_bytes().expect("encodable frame");
        self.send_raw(&b).await;
    }

    /// Sends bytes as they are.
    pub async fn send_raw(&mut self, b: &[u8]) {
        tokio::time::timeout(WAIT, self.stream.write_all(b))
            .await
            .expect("send timed out")
            .expect("send");
    }

    /// Like `send_raw`, but a closed connection is not an error (for hostile input that
    /// the broker may refuse before reading all of it).
    pub async fn try_send_raw(&mut self, b: &[u8]) -> std::io::Result<()> {
        match tokio::time::timeout(WAIT, self.stream.write_all(b)).await {
            Ok(r) => r,
            Err(_) => panic!("send timed out"),
        }
    }

    /// Publishes as the authenticated ident.
    pub async fn publish(&mut self, channel: &str, payload: impl Into<Bytes>) {
        let f = Frame::publish(
            Bytes::copy_from_slice(self.ident.as_bytes()),
            Bytes::copy_from_slice(channel.as_bytes()),
            payload,
        );
        self.send(&f).await;
    }

    /// Subscribes as the authenticated ident.
    pub async fn subscribe(&mut self, channel: &str) {
        self.send(&Frame::Subscribe {
            ident: Bytes::copy_from_slice(self.ident.as_bytes()),
            channel: Bytes::copy_from_slice(channel.as_bytes()),
        })
        .await;
    }

    /// Unsubscribes as the authenticated ident.
    pub async fn unsubscribe(&mut self, channel: &str) {
        self.send(&Frame::Unsubscribe {
            ident: Bytes::copy_from_slice(self.ident.as_bytes()),
            channel: Bytes::copy_from_slice(channel.as_bytes()),
        })
        .await;
    }

    /// Reads one frame within `timeout`.
    pub async fn read(&mut self, timeout: Duration) -> Read {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match frame::check(&self.buf, CLIENT_MAX_FRAME) {
                Ok(len) => {
                    let raw = self.buf.split_to(len).freeze();
                    let parsed = frame::parse(raw.clone()).expect("broker sent a parsable frame");
                    return Read::Frame(raw, parsed);
                }
                Err(frame::Error::Incomplete) => {}
                Err(e) => panic!("broker sent an invalid frame: {e}; buffer {:?}", self.buf),
            }
            self.buf.reserve(64 * 1024);
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Read::Timeout,
                Ok(Ok(0)) | Ok(Err(_)) => {
                    assert!(
                        self.buf.is_empty(),
                        "connection closed inside a frame: {:?}",
                        self.buf
                    );
                    return Read::Closed;
                }
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The next frame; panics on close or timeout.
    pub async fn expect_frame(&mut self) -> (Bytes, Frame) {
        match self.read(WAIT).await {
            Read::Frame(raw, f) => (raw, f),
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next frame must be ERROR with exactly `text`.
    pub async fn expect_error(&mut self, text: &str) {
        let got = self.expect_error_text().await;
        assert_eq!(got, text, "error text");
    }

    /// The next frame must be ERROR; returns its text.
    pub async fn expect_error_text(&mut self) -> String {
        match self.expect_frame().await {
            (_, Frame::Error(t)) => String::from_utf8(t.to_vec()).expect("utf-8 error text"),
            (raw, f) => panic!("expected ERROR, got {f:?} ({raw:?})"),
        }
    }

    /// The next frame must be a PUBLISH; returns its exact bytes and fields.
    pub async fn expect_publish(&mut self) -> (Bytes, Bytes, Bytes, Bytes) {
        match self.expect_frame().await {
            (
                raw,
                Frame::Publish {
                    ident,
                    channel,
                    payload,
                },
            ) => (raw, ident, channel, payload),
            (raw, f) => panic!("expected PUBLISH, got {f:?} ({raw:?})"),
        }
    }

    /// The broker must close the connection next, with no further frame.
    pub async fn expect_closed(&mut self) {
        match self.read(WAIT).await {
            Read::Closed => {}
            other => panic!("expected the broker to close the connection, got {other:?}"),
        }
    }
}

/// Polls `cond` every few milliseconds until it holds; panics with `what` after [`WAIT`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Resident set size of this process in bytes (`/proc/self/statm`, field 2 × page size).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("statm resident field");
    pages * 4096
}

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// The Python interpreter with `hpfeeds` 3.1.0: `$APIARY_TEST_PYTHON`, else
/// `<repo>/.venv/bin/python`. Missing is a test failure, never a silent skip.
pub fn python() -> PathBuf {
    let p = match std::env::var_os("APIARY_TEST_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => repo_root().join(".venv/bin/python"),
    };
    assert!(
        p.exists(),
        "Python with hpfeeds 3.1.0 not found at {}: run `bash .ci/run` once (it creates \
         .venv and installs hpfeeds[broker]==3.1.0), or set APIARY_TEST_PYTHON to such an \
         interpreter",
        p.display()
    );
    p
}

/// A path inside `tests/python/` at the repository root.
pub fn python_script(name: &str) -> PathBuf {
    let p = repo_root().join("tests/python").join(name);
    assert!(p.exists(), "missing helper script {}", p.display());
    p
}
