//! Live feed benchmark (a program; prints figures, asserts nothing).
//!
//! 1. Publish → SSE latency: events are published over hpfeeds at a fixed rate (default
//!    1,000/s for 10 s), each carrying its send time; one `/api/live` client measures the
//!    time to arrival (p50/p90/p99/max).
//! 2. Fan-out: N events published as fast as possible, committed events/s measured from
//!    `/metrics`, first with no SSE client, then with 50 SSE clients reading.
//!
//! Run: `cargo build --release -p apiary-server --bin apiary --example live_bench &&
//! target/release/examples/live_bench` (APIARY_BIN overrides the server binary).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use hpfeeds::frame::{self, Frame};

fn bin() -> PathBuf {
    std::env::var("APIARY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let exe = std::env::current_exe().unwrap();
            exe.parent().unwrap().parent().unwrap().join("apiary")
        })
}

fn run(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(bin())
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("APIARY_PASSWORD", "correct horse battery staple")
        .stdin(Stdio::null())
        .output()
        .expect("run apiary");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

struct Server {
    child: Child,
    hpfeeds: SocketAddr,
    http: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path) -> Server {
    let mut child = Command::new(bin())
        .args([
            "server",
            "--hpfeeds-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir)
        .env("APIARY_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn server");
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let (mut hp, mut http) = (None, None);
    while hp.is_none() || http.is_none() {
        let l = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server start");
        let addr = l
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
            .and_then(|a| a.parse().ok());
        if l.contains("hpfeeds broker listening") {
            hp = addr;
        } else if l.contains("HTTP listening") {
            http = addr;
        }
    }
    Server {
        child,
        hpfeeds: hp.unwrap(),
        http: http.unwrap(),
    }
}

struct Publisher(TcpStream);

impl Publisher {
    fn connect(addr: SocketAddr) -> Self {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        let mut buf = BytesMut::new();
        let nonce = loop {
            let mut chunk = [0u8; 512];
            let n = s.read(&mut chunk).unwrap();
            buf.extend_from_slice(&chunk[..n]);
            if let Ok(len) = frame::check(&buf, 1 << 20) {
                match frame::parse(buf.split_to(len).freeze()) {
                    Ok(Frame::Info { nonce, .. }) => break nonce,
                    other => panic!("{other:?}"),
                }
            }
        };
        let hash = hpfeeds::auth_hash(&nonce, b"s3cret");
        let auth = Frame::Auth {
            ident: Bytes::from_static(b"bench"),
            hash: Bytes::copy_from_slice(&hash),
        };
        s.write_all(&auth.to_bytes().unwrap()).unwrap();
        Self(s)
    }
    fn frame(ip: &str, user: &str) -> Vec<u8> {
        let payload = format!(
            r#"{{"session":"x","peerIP":"{ip}","peerPort":1,"hostIP":"10.0.0.5","hostPort":22,"loggedin":["{user}","1"],"credentials":[],"commands":[],"urls":[],"protocol":"ssh"}}"#
        );
        Frame::publish(
            Bytes::from_static(b"bench"),
            Bytes::from_static(b"cowrie.sessions"),
            Bytes::from(payload),
        )
        .to_bytes()
        .unwrap()
        .to_vec()
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// An SSE client; calls `f` with each `attack` data line.
fn sse(addr: SocketAddr, key: &str, mut f: impl FnMut(&str) + Send + 'static) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /api/live HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    assert!(status.contains(" 200 "), "{status}");
    std::thread::spawn(move || {
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if let Some(d) = line.strip_prefix("data:") {
                f(d);
            }
        }
    });
}

fn metric(addr: SocketAddr, name: &str) -> u64 {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

fn flood(server: &Server, n: usize) -> f64 {
    let before = metric(server.http, "apiary_ingest_raw_committed_total");
    let mut p = Publisher::connect(server.hpfeeds);
    let t = Instant::now();
    let mut buf = Vec::with_capacity(1 << 20);
    for i in 0..n {
        buf.extend_from_slice(&Publisher::frame(
            &format!("5.9.{}.{}", (i / 250) % 250, i % 250 + 1),
            "flood",
        ));
        if buf.len() > 256 * 1024 {
            p.0.write_all(&buf).unwrap();
            buf.clear();
        }
    }
    p.0.write_all(&buf).unwrap();
    while metric(server.http, "apiary_ingest_raw_committed_total") < before + n as u64 {
        std::thread::sleep(Duration::from_millis(20));
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let rate: u64 = std::env::var("RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let secs: u64 = std::env::var("SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let flood_n: usize = std::env::var("FLOOD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    run(
        dir.path(),
        &["user", "add", "bench@example.org", "--role", "admin"],
    );
    run(
        dir.path(),
        &[
            "ident",
            "add",
            "bench",
            "--secret",
            "s3cret",
            "--publish",
            "cowrie.sessions",
        ],
    );
    let key = run(dir.path(), &["apikey", "create", "bench@example.org"]);
    let key = key.lines().last().unwrap().trim().to_owned();
    let server = start(dir.path());

    // 1. Latency at a fixed rate.
    let (tx, rx) = mpsc::channel::<u64>();
    sse(server.http, &key, move |d| {
        if let Some(i) = d.find("login t") {
            let t: u64 = d[i + 7..]
                .split('/')
                .next()
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            let _ = tx.send(now_us().saturating_sub(t));
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut p = Publisher::connect(server.hpfeeds);
    let total = rate * secs;
    let start = Instant::now();
    for i in 0..total {
        let due = start + Duration::from_micros(i * 1_000_000 / rate);
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
        let f = Publisher::frame(
            &format!("8.8.{}.{}", (i / 250) % 250, i % 250 + 1),
            &format!("t{}", now_us()),
        );
        p.0.write_all(&f).unwrap();
    }
    let sent_secs = start.elapsed().as_secs_f64();
    let mut lat = Vec::with_capacity(total as usize);
    let deadline = Instant::now() + Duration::from_secs(10);
    while lat.len() < total as usize {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(v) => lat.push(v),
            Err(_) => break,
        }
    }
    println!(
        "publish -> SSE latency: {total} events at {rate}/s (sent in {sent_secs:.2}s), received {}",
        lat.len()
    );
    if !lat.is_empty() {
        let max = *lat.iter().max().unwrap() as f64 / 1000.0;
        println!(
            "  p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            pct(&mut lat, 0.50),
            pct(&mut lat, 0.90),
            pct(&mut lat, 0.99),
            max
        );
    }

    // 2. Ingest with and without 50 SSE clients.
    let base = flood(&server, flood_n);
    println!(
        "ingest, 1 SSE client (the latency one): {base:.0} events/s committed ({flood_n} events)"
    );
    let received = Arc::new(AtomicU64::new(0));
    for _ in 0..50 {
        let r = received.clone();
        sse(server.http, &key, move |_| {
            r.fetch_add(1, Ordering::Relaxed);
        });
    }
    std::thread::sleep(Duration::from_millis(500));
    println!(
        "SSE clients connected: {}",
        metric(server.http, "apiary_live_clients")
    );
    let lag_before = metric(server.http, "apiary_live_lagged_events_total");
    let with = flood(&server, flood_n);
    std::thread::sleep(Duration::from_secs(2));
    let got = received.load(Ordering::Relaxed);
    println!(
        "ingest, 51 SSE clients: {with:.0} events/s committed ({flood_n} events); ratio {:.2}",
        with / base
    );
    println!(
        "  the 50 clients received {got} of {} events ({:.1}%); lagged (lost by slow clients) {}",
        50 * flood_n,
        100.0 * got as f64 / (50 * flood_n) as f64,
        metric(server.http, "apiary_live_lagged_events_total") - lag_before
    );
}
