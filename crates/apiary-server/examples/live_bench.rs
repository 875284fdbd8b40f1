//! Live feed benchmark (a program; prints figures, asserts nothing).
//!
//! Starts the `apiary` binary on a fresh data dir and, over real sockets:
//!
//! 1. **Paced, no live client**: publishes `--rate` events/s (default 1,000, the issue's
//!    rate) over hpfeeds for `--secs` seconds. Measures ingest: events committed per second,
//!    publish → commit latency (from `apiary_ingest_raw_committed_total`, polled every
//!    `--poll-ms`), and the server's CPU time per event (from `/proc/<pid>/stat`).
//! 2. **Paced, `--clients` live clients** (default 50, each a plain `/api/live` SSE reader):
//!    the same figures, plus publish → SSE arrival latency over every client
//!    (p50/p99/max; target p99 ≤ 100 ms) and events lost by clients.
//! 3. **Flood** (`--flood N`, 0 to skip): N events as fast as one publisher can send, with
//!    no client and then with `--clients` clients: committed events/s and the ratio.
//!    On a machine with few cores the clients themselves (threads of this program) compete
//!    with the server for CPU, so this ratio mixes the server's fan-out cost with the
//!    benchmark's own reading cost; the program prints its own CPU time to show it.
//!
//! Run: `cargo run --release -p apiary-server --example live_bench -- --help`
//! (the `apiary` binary next to the example is used, built first when run through cargo;
//! `APIARY_BIN` overrides it).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apiary_testdata::server::{run_ok, server_command, wait_for_listeners};
use bytes::{Bytes, BytesMut};
use hpfeeds::frame::{self, Frame};

const HELP: &str = "\
live_bench: publish -> SSE latency and ingest with and without live map clients

USAGE: live_bench [OPTIONS]

OPTIONS:
  --rate N      events per second in the paced phases (default 1000)
  --secs S      length of each paced phase in seconds (default 10)
  --clients C   SSE clients in the phases with clients (default 50)
  --flood N     events per flood phase; 0 skips the floods (default 100000)
  --repeat K    flood pairs (without, then with clients) to run (default 3)
  --poll-ms M   /metrics polling interval for commit latency (default 5)
  --help        this text

ENVIRONMENT:
  APIARY_BIN    the apiary binary (default: target/<profile>/apiary beside this example)
";

struct Opts {
    rate: u64,
    secs: u64,
    clients: usize,
    flood: usize,
    repeat: usize,
    poll_ms: u64,
}

fn opts() -> Opts {
    let mut o = Opts {
        rate: 1000,
        secs: 10,
        clients: 50,
        flood: 100_000,
        repeat: 3,
        poll_ms: 5,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--help" || a == "-h" {
            print!("{HELP}");
            std::process::exit(0);
        }
        let v = args.next().unwrap_or_default();
        let n: u64 = v.parse().unwrap_or_else(|_| {
            eprintln!("{a} needs a number, got {v:?}\n\n{HELP}");
            std::process::exit(2)
        });
        match a.as_str() {
            "--rate" => o.rate = n.max(1),
            "--secs" => o.secs = n.max(1),
            "--clients" => o.clients = n as usize,
            "--flood" => o.flood = n as usize,
            "--poll-ms" => o.poll_ms = n.max(1),
            "--repeat" => o.repeat = (n as usize).max(1),
            _ => {
                eprintln!("unknown option {a}\n\n{HELP}");
                std::process::exit(2)
            }
        }
    }
    o
}

fn bin() -> PathBuf {
    std::env::var("APIARY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let exe = std::env::current_exe().unwrap();
            exe.parent().unwrap().parent().unwrap().join("apiary")
        })
}

/// Under `cargo run`, builds the `apiary` binary of the same profile (cargo does not build a
/// package's binaries for its examples).
fn build_server() {
    if std::env::var_os("APIARY_BIN").is_some() {
        return;
    }
    let Some(cargo) = std::env::var_os("CARGO") else {
        return;
    };
    let exe = std::env::current_exe().unwrap();
    let release = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .is_some_and(|p| p == "release");
    let mut c = Command::new(cargo);
    c.args(["build", "-p", "apiary-server", "--bin", "apiary"]);
    if release {
        c.arg("--release");
    }
    let ok = c.status().is_ok_and(|s| s.success());
    assert!(ok, "cannot build the apiary binary");
}

fn run(dir: &Path, args: &[&str]) -> String {
    run_ok(
        Command::new(bin())
            .args(args)
            .arg("--data-dir")
            .arg(dir)
            .env("APIARY_PASSWORD", "correct horse battery staple"),
    )
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

impl Server {
    /// CPU seconds (user + system) the server has used.
    fn cpu(&self) -> f64 {
        proc_cpu(&format!("/proc/{}/stat", self.child.id()))
    }
}

/// utime + stime of a /proc stat file, in seconds (USER_HZ is 100 on Linux).
fn proc_cpu(path: &str) -> f64 {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the ")" that closes the command name: state is field 3, utime 14.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn start(dir: &Path) -> Server {
    let mut child = server_command(&bin(), dir).spawn().expect("spawn server");
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let (hpfeeds, http) = wait_for_listeners(&rx, Duration::from_secs(60));
    Server {
        child,
        hpfeeds,
        http,
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

/// One SSE client on its own thread. It counts `data:` lines and, for events whose
/// summary carries a send time (`login t<µs>/…`), records the publish → arrival latency.
struct Client {
    events: Arc<AtomicU64>,
    lagged: Arc<AtomicU64>,
    latencies: Arc<Mutex<Vec<u64>>>,
}

fn sse(addr: SocketAddr, key: &str, stop: Arc<AtomicBool>) -> Client {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500))).ok();
    write!(
        s,
        "GET /api/live HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::with_capacity(256 * 1024, s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    assert!(status.contains(" 200 "), "{status}");
    let c = Client {
        events: Arc::default(),
        lagged: Arc::default(),
        latencies: Arc::default(),
    };
    let (events, lagged, lat) = (c.events.clone(), c.lagged.clone(), c.latencies.clone());
    std::thread::spawn(move || {
        let mut line = Vec::new();
        let mut local = Vec::new();
        let mut lagged_next = false;
        while !stop.load(Ordering::Relaxed) {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(_) => return,
            }
            if line.starts_with(b"event: lagged") {
                lagged_next = true;
            } else if let Some(d) = line.strip_prefix(b"data: ") {
                if lagged_next {
                    lagged_next = false;
                    let n = std::str::from_utf8(d)
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    lagged.fetch_add(n, Ordering::Relaxed);
                    continue;
                }
                events.fetch_add(1, Ordering::Relaxed);
                if let Some(i) = find(d, b"login t") {
                    let t: u64 = d[i + 7..]
                        .iter()
                        .take_while(|b| b.is_ascii_digit())
                        .fold(0, |a, b| a * 10 + u64::from(b - b'0'));
                    local.push(now_us().saturating_sub(t));
                    if local.len() >= 256 {
                        lat.lock().unwrap().append(&mut local);
                    }
                }
            }
            if !local.is_empty() && r.buffer().is_empty() {
                lat.lock().unwrap().append(&mut local);
            }
        }
    });
    c
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
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

const COMMITTED: &str = "apiary_ingest_raw_committed_total";

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

fn summary(v: &mut [u64]) -> String {
    v.sort_unstable();
    format!(
        "p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms  (n={})",
        pct(v, 0.5),
        pct(v, 0.9),
        pct(v, 0.99),
        pct(v, 1.0),
        v.len()
    )
}

/// What one paced phase measured.
struct Paced {
    commit_lat: Vec<u64>,
    committed_per_s: f64,
    server_cpu_per_event_us: f64,
    bench_cpu_s: f64,
}

/// Publishes `rate`/s for `secs`, with each event's send time in its username, while a
/// poller records when the committed counter passes each event.
fn paced(server: &Server, rate: u64, secs: u64, poll_ms: u64) -> Paced {
    let base = metric(server.http, COMMITTED);
    let total = rate * secs;
    let stop = Arc::new(AtomicBool::new(false));
    let polls = {
        let (stop, http) = (stop.clone(), server.http);
        std::thread::spawn(move || {
            let mut v = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let c = metric(http, COMMITTED);
                v.push((Instant::now(), c.saturating_sub(base)));
                std::thread::sleep(Duration::from_millis(poll_ms));
            }
            v
        })
    };
    let (cpu0, bench0) = (server.cpu(), proc_cpu("/proc/self/stat"));
    let mut p = Publisher::connect(server.hpfeeds);
    let mut sent = Vec::with_capacity(total as usize);
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
        sent.push(Instant::now());
        p.0.write_all(&f).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(server.http, COMMITTED) < base + total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(poll_ms));
    }
    let elapsed = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(poll_ms * 3));
    stop.store(true, Ordering::Relaxed);
    let polls = polls.join().unwrap();
    let (cpu1, bench1) = (server.cpu(), proc_cpu("/proc/self/stat"));
    // For event i: the first poll that saw more than i events committed.
    let mut lat = Vec::with_capacity(sent.len());
    let mut j = 0;
    for (i, t) in sent.iter().enumerate() {
        while j < polls.len() && polls[j].1 <= i as u64 {
            j += 1;
        }
        if j == polls.len() {
            break;
        }
        lat.push(polls[j].0.saturating_duration_since(*t).as_micros() as u64);
    }
    let committed = metric(server.http, COMMITTED) - base;
    Paced {
        commit_lat: lat,
        committed_per_s: committed as f64 / elapsed,
        server_cpu_per_event_us: (cpu1 - cpu0) * 1e6 / total as f64,
        bench_cpu_s: bench1 - bench0,
    }
}

fn print_paced(label: &str, rate: u64, secs: u64, mut r: Paced) {
    println!("{label}: {} events at {rate}/s", rate * secs);
    println!(
        "  ingest: {:.0} events/s committed; server CPU {:.0} us/event; this program's CPU {:.2} s",
        r.committed_per_s, r.server_cpu_per_event_us, r.bench_cpu_s
    );
    println!("  publish -> commit: {}", summary(&mut r.commit_lat));
}

/// N events as fast as one publisher can write them; returns committed events/s.
fn flood(server: &Server, n: usize) -> (f64, f64) {
    let before = metric(server.http, COMMITTED);
    let cpu0 = server.cpu();
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
    while metric(server.http, COMMITTED) < before + n as u64 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    (rate, (server.cpu() - cpu0) * 1e6 / n as f64)
}

fn main() {
    let o = opts();
    build_server();
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
    println!(
        "live_bench: {} cores visible; server {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        bin().display()
    );
    // Warm-up: the ident, the store's first pages, the geo database.
    let _ = paced(&server, o.rate, 1, o.poll_ms);

    // 1. Paced, no live client.
    let without = paced(&server, o.rate, o.secs, o.poll_ms);
    print_paced("paced, 0 SSE clients", o.rate, o.secs, without);

    // 2. Paced, with clients.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<Client> = (0..o.clients)
        .map(|_| sse(server.http, &key, stop.clone()))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    println!(
        "SSE clients connected: {}",
        metric(server.http, "apiary_live_clients")
    );
    let lag0 = metric(server.http, "apiary_live_lagged_events_total");
    let with = paced(&server, o.rate, o.secs, o.poll_ms);
    std::thread::sleep(Duration::from_secs(1));
    print_paced(
        &format!("paced, {} SSE clients", o.clients),
        o.rate,
        o.secs,
        with,
    );
    let mut all: Vec<u64> = Vec::new();
    let mut got = 0;
    for c in &clients {
        got += c.events.load(Ordering::Relaxed);
        all.append(&mut c.latencies.lock().unwrap());
    }
    let want = o.rate * o.secs * o.clients as u64;
    println!(
        "  publish -> SSE arrival over all clients: {}",
        summary(&mut all)
    );
    println!(
        "  clients received {got} of {want} events; lost by slow clients (server count): {}",
        metric(server.http, "apiary_live_lagged_events_total") - lag0
    );

    // 3. Floods, alternating without and with clients (the machine's other load drifts).
    stop.store(true, Ordering::Relaxed);
    drop(clients);
    std::thread::sleep(Duration::from_millis(1500));
    let mut ratios = Vec::new();
    for round in 0..if o.flood > 0 { o.repeat } else { 0 } {
        let bench0 = proc_cpu("/proc/self/stat");
        let (base, base_cpu) = flood(&server, o.flood);
        let bench_base = proc_cpu("/proc/self/stat") - bench0;
        println!(
            "flood {round}, 0 SSE clients: {base:.0} events/s committed ({} events); server CPU {base_cpu:.1} us/event; this program's CPU {bench_base:.2} s",
            o.flood
        );
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<Client> = (0..o.clients)
            .map(|_| sse(server.http, &key, stop.clone()))
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        let lag0 = metric(server.http, "apiary_live_lagged_events_total");
        let bench0 = proc_cpu("/proc/self/stat");
        let (with, with_cpu) = flood(&server, o.flood);
        let bench_with = proc_cpu("/proc/self/stat") - bench0;
        std::thread::sleep(Duration::from_secs(2));
        let got: u64 = clients
            .iter()
            .map(|c| c.events.load(Ordering::Relaxed))
            .sum();
        let lost: u64 = clients
            .iter()
            .map(|c| c.lagged.load(Ordering::Relaxed))
            .sum();
        println!(
            "flood {round}, {} SSE clients: {with:.0} events/s committed; ratio {:.2}; server CPU {with_cpu:.1} us/event; this program's CPU {bench_with:.2} s",
            o.clients,
            with / base
        );
        println!(
            "  clients received {got} of {} events ({:.1}%); lost by slow clients: {} (clients' own count {lost})",
            o.clients * o.flood,
            100.0 * got as f64 / (o.clients * o.flood) as f64,
            metric(server.http, "apiary_live_lagged_events_total") - lag0
        );
        ratios.push(with / base);
        stop.store(true, Ordering::Relaxed);
        drop(clients);
        std::thread::sleep(Duration::from_millis(1500));
    }
    if !ratios.is_empty() {
        ratios.sort_by(f64::total_cmp);
        println!(
            "flood ratios (with / without clients): {:?}; median {:.2}",
            ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>(),
            ratios[ratios.len() / 2]
        );
    }
}
