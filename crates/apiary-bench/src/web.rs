//! `apiary-bench web`: page latency of the real `apiary server` over a large database.
//!
//! 1. Data: `<dir>/apiary.db` with N sessions (default 10,000,000 over 30 days), written
//!    through the store by the shared generator (`apiary-testdata`, the same data as the
//!    `ingest_e2e` bench). An existing database in `--dir` is reused as it is: preloading
//!    10M takes a while.
//! 2. Server: the `apiary` binary (`--apiary`, default next to this one) started on that
//!    data dir with HTTP on a loopback port; the first start creates the bench admin from
//!    `APIARY_ADMIN_EMAIL`/`APIARY_ADMIN_PASSWORD`. Sign-in through `POST /auth/login/`.
//! 3. Load: for each URL, C clients (default 20), each one keep-alive HTTP/1.1
//!    connection sending the next request when the last answer is read (closed loop), for
//!    a warm-up and then S seconds; latency = request written → whole body read. Prints
//!    median / p90 / p99 / max and requests per second per URL.
//! 4. Reference: `/healthz` (one indexed store read, tiny JSON) under the same load, and,
//!    when `wrk` is on PATH, `wrk` against the same URLs with the same cookie.
//!
//! Load generator and server share the machine's cores, so absolute figures depend on the
//! host and what else it runs (load average printed with the results).

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use apiary_store::Store;
use chrono::Utc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

use crate::hist::Hist;

const EMAIL: &str = "bench@apiary.invalid";
const PASSWORD: &str = "bench-password-not-secret";

/// Options of `apiary-bench web`.
#[derive(clap::Args)]
pub struct WebArgs {
    /// Sessions to preload (ignored when `--dir` already holds a database).
    #[arg(long, default_value_t = 10_000_000)]
    sessions: usize,
    /// Days the preloaded sessions span.
    #[arg(long, default_value_t = 30)]
    span_days: i64,
    /// Data directory to (re)use; default a temporary one, deleted afterwards.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Only preload `--dir`, do not start the server.
    #[arg(long)]
    preload_only: bool,
    /// The `apiary` binary (default: `apiary` next to this executable).
    #[arg(long)]
    apiary: Option<PathBuf>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 20)]
    clients: usize,
    /// Measured seconds per URL.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Warm-up seconds per URL (not measured).
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// URLs (path and query) to measure instead of the default set; repeatable.
    #[arg(long)]
    url: Vec<String>,
    /// Skip `wrk` even when it is installed.
    #[arg(long)]
    no_wrk: bool,
}

/// The pages: the dashboard and the attacks report with two filters; the same
/// report filtered by a /16 and a country (a source-index walk); the API with two filters.
fn default_urls() -> Vec<String> {
    [
        "/healthz",
        "/ui/dashboard/",
        "/ui/attacks/?honeypot=dionaea&destination_port=445",
        "/ui/attacks/?protocol=telnet&country=CN",
        "/api/session/?honeypot=cowrie&destination_port=22&limit=100",
    ]
    .map(String::from)
    .to_vec()
}

pub fn run(a: WebArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_async(a))
}

async fn run_async(a: WebArgs) -> Result<()> {
    let tmp;
    let dir = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    println!(
        "apiary web bench: data dir {}, {} clients, {} s per URL (+{} s warm-up); load average {}",
        dir.display(),
        a.clients,
        a.seconds,
        a.warmup,
        apiary_testdata::load_average()
    );
    let stored = prepare_data(&a, &dir).await?;
    if a.preload_only {
        return Ok(());
    }
    let bin = apiary_bin(a.apiary.as_deref())?;
    let mut server = Server::start(&bin, &dir).await?;
    let cookie = sign_in(server.addr).await?;
    let urls = if a.url.is_empty() {
        default_urls()
    } else {
        a.url.clone()
    };
    println!(
        "server {} (pid {}), {stored} sessions stored, RSS {} MiB",
        server.addr,
        server.child.id(),
        server.rss_mib()
    );
    println!(
        "{:<62} {:>8} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "URL", "req/s", "median", "p90", "p99", "max", "errors"
    );
    let mut results = Vec::new();
    for url in &urls {
        let r = measure(server.addr, url, &cookie, &a).await?;
        println!(
            "{:<62} {:>8.1} {:>9} {:>9} {:>9} {:>9} {:>7}",
            url,
            r.rate,
            ms(r.hist.quantile(0.5)),
            ms(r.hist.quantile(0.9)),
            ms(r.hist.quantile(0.99)),
            ms(r.hist.quantile(1.0)),
            r.errors
        );
        if let Some(e) = &r.first_error {
            println!("  first error: {e}");
        }
        results.push((url.clone(), r));
    }
    println!(
        "server RSS {} MiB; load average {}",
        server.rss_mib(),
        apiary_testdata::load_average()
    );
    if !a.no_wrk {
        run_wrk(server.addr, &urls, &cookie, &a);
    }
    server.stop();
    let target = |url: &str| url.starts_with("/ui/dashboard/") || url.starts_with("/ui/attacks/");
    for (url, r) in results.iter().filter(|(u, _)| target(u)) {
        let (p50, p99) = (r.hist.quantile(0.5), r.hist.quantile(0.99));
        let ok = p50.is_some_and(|v| v <= 50_000_000)
            && p99.is_some_and(|v| v <= 200_000_000)
            && r.errors == 0;
        println!(
            "target (median <= 50 ms, p99 <= 200 ms) {}: {url}",
            if ok { "met" } else { "NOT met" }
        );
    }
    Ok(())
}

fn ms(ns: Option<u64>) -> String {
    ns.map_or("-".into(), |v| format!("{:.1} ms", v as f64 / 1e6))
}

/// Preloads `<dir>/apiary.db` unless it exists; returns the sessions stored.
async fn prepare_data(a: &WebArgs, dir: &Path) -> Result<u64> {
    let db = dir.join("apiary.db");
    let existed = db.exists();
    let store: Arc<dyn Store> = apiary_store::open(&format!("sqlite://{}", db.display()))
        .await
        .map_err(|e| anyhow!("opening {}: {e}", db.display()))?;
    let counted = |store: Arc<dyn Store>| async move {
        let now = Utc::now();
        store
            .total_sessions(
                now - chrono::Duration::days(3650),
                now + chrono::Duration::hours(2),
            )
            .await
            .map_err(|e| anyhow!("{e}"))
    };
    if existed {
        let n = counted(store.clone()).await?;
        println!("reusing {} ({n} sessions)", db.display());
        store.close().await;
        return Ok(n);
    }
    println!(
        "preloading {} sessions over {} days into {}",
        a.sessions,
        a.span_days,
        db.display()
    );
    let t = Instant::now();
    let geo = Arc::new(apiary_testdata::geo_db());
    let pool = Arc::new(apiary_testdata::address_pool(
        200_000,
        0x5eed_0000_1111_2222,
    ));
    let spec = apiary_testdata::PreloadSpec {
        sessions: a.sessions,
        span_days: a.span_days,
        ..Default::default()
    };
    apiary_testdata::preload(&store, &geo, &pool, &spec, Utc::now())
        .await
        .map_err(|e| anyhow!("preload: {e}"))?;
    let n = counted(store.clone()).await?;
    println!(
        "preloaded {n} sessions in {:.0} s; database {:.0} MiB",
        t.elapsed().as_secs_f64(),
        store.database_size_bytes().await.unwrap_or(0) as f64 / 1048576.0
    );
    store.close().await;
    Ok(n)
}

fn apiary_bin(arg: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = arg {
        return Ok(p.to_path_buf());
    }
    let me = std::env::current_exe()?;
    let sibling = me.with_file_name("apiary");
    if sibling.is_file() {
        return Ok(sibling);
    }
    bail!(
        "no apiary binary next to {} (build it: cargo build --release -p apiary-server, or pass --apiary)",
        me.display()
    )
}

/// The `apiary server` child process; killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    async fn start(bin: &Path, dir: &Path) -> Result<Self> {
        let http = free_port()?;
        let hpfeeds = free_port()?;
        let log = std::fs::File::create(dir.join("server.log"))?;
        let child = Command::new(bin)
            .arg("server")
            .arg("--data-dir")
            .arg(dir)
            .args(["--http-listen", &http.to_string()])
            .args(["--hpfeeds-listen", &hpfeeds.to_string()])
            .env("APIARY_ADMIN_EMAIL", EMAIL)
            .env("APIARY_ADMIN_PASSWORD", PASSWORD)
            .env("APIARY_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut s = Server { child, addr: http };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = s.child.try_wait()? {
                bail!(
                    "apiary server exited ({status}); see {}",
                    dir.join("server.log").display()
                );
            }
            if let Ok((200, _)) = one_request(
                http,
                "GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n",
            )
            .await
            {
                return Ok(s);
            }
            if Instant::now() > deadline {
                s.stop();
                bail!("apiary server did not answer /healthz within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    }

    fn stop(&mut self) {
        // SIGTERM first so the store checkpoints and closes cleanly; kill if it hangs.
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> Result<SocketAddr> {
    let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?)
}

/// One request on a fresh connection: (status, Set-Cookie values joined by `; `).
async fn one_request(addr: SocketAddr, req: &str) -> Result<(u16, String)> {
    let mut c = Client::connect(addr).await?;
    let r = c.send(req.as_bytes()).await?;
    Ok((r.status, r.cookies.join("; ")))
}

/// Signs in as the bench admin; returns the `Cookie` header value.
async fn sign_in(addr: SocketAddr) -> Result<String> {
    let body = serde_json::json!({"email": EMAIL, "password": PASSWORD}).to_string();
    let req = format!(
        "POST /auth/login/ HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, cookies) = one_request(addr, &req).await?;
    if status != 200 || !cookies.contains(apiary_web_cookie()) {
        bail!("sign-in failed: HTTP {status} (is the database from another bench user?)");
    }
    Ok(cookies)
}

fn apiary_web_cookie() -> &'static str {
    "apiary_session="
}

/// One response as read by [`Client::send`].
struct Response {
    status: u16,
    /// `name=value` of every Set-Cookie header.
    cookies: Vec<String>,
    close: bool,
}

/// A minimal keep-alive HTTP/1.1 client: enough for GETs against our own server
/// (Content-Length or chunked bodies, read and dropped).
struct Client {
    io: BufStream<TcpStream>,
    line: String,
    sink: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Result<Self> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(Self {
            io: BufStream::new(s),
            line: String::new(),
            sink: vec![0; 64 * 1024],
        })
    }

    async fn read_line(&mut self) -> Result<&str> {
        self.line.clear();
        if self.io.read_line(&mut self.line).await? == 0 {
            bail!("connection closed");
        }
        Ok(self.line.trim_end())
    }

    async fn discard(&mut self, mut n: usize) -> Result<()> {
        while n > 0 {
            let k = n.min(self.sink.len());
            self.io.read_exact(&mut self.sink[..k]).await?;
            n -= k;
        }
        Ok(())
    }

    async fn send(&mut self, req: &[u8]) -> Result<Response> {
        self.io.write_all(req).await?;
        self.io.flush().await?;
        let status_line = self.read_line().await?.to_owned();
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
        let (mut length, mut chunked, mut close) = (0usize, false, false);
        let mut cookies = Vec::new();
        loop {
            let line = self.read_line().await?;
            if line.is_empty() {
                break;
            }
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            match k.as_str() {
                "content-length" => length = v.parse()?,
                "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                "connection" => close = v.eq_ignore_ascii_case("close"),
                "set-cookie" => {
                    cookies.push(v.split(';').next().unwrap_or("").to_owned());
                }
                _ => {}
            }
        }
        if chunked {
            loop {
                let size = usize::from_str_radix(self.read_line().await?, 16)?;
                self.discard(size).await?;
                self.read_line().await?;
                if size == 0 {
                    break;
                }
            }
        } else {
            self.discard(length).await?;
        }
        Ok(Response {
            status,
            cookies,
            close,
        })
    }
}

struct Measured {
    hist: Hist,
    rate: f64,
    errors: u64,
    first_error: Option<String>,
}

/// C closed-loop clients on `url` for warm-up + S seconds; only the S seconds count.
async fn measure(addr: SocketAddr, url: &str, cookie: &str, a: &WebArgs) -> Result<Measured> {
    let req: Arc<[u8]> = format!(
        "GET {url} HTTP/1.1\r\nHost: bench\r\nCookie: {cookie}\r\nAccept: text/html,application/json\r\n\r\n"
    )
    .into_bytes()
    .into();
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(a.warmup);
    let end = measure_from + Duration::from_secs(a.seconds);
    let tasks: Vec<_> = (0..a.clients.max(1))
        .map(|_| {
            let req = req.clone();
            tokio::spawn(async move {
                let mut hist = Hist::default();
                let (mut n, mut errors, mut first_error) = (0u64, 0u64, None::<String>);
                let mut client: Option<Client> = None;
                while Instant::now() < end {
                    let t = Instant::now();
                    let c = match client.as_mut() {
                        Some(c) => c,
                        None => match Client::connect(addr).await {
                            Ok(c) => client.insert(c),
                            Err(e) => {
                                errors += 1;
                                first_error.get_or_insert(e.to_string());
                                tokio::time::sleep(Duration::from_millis(10)).await;
                                continue;
                            }
                        },
                    };
                    let r = c.send(&req).await;
                    let took = t.elapsed();
                    let counted = t >= measure_from && Instant::now() <= end;
                    match r {
                        Ok(resp) => {
                            if resp.close {
                                client = None;
                            }
                            if counted {
                                if resp.status == 200 {
                                    hist.record(took.as_nanos() as u64);
                                    n += 1;
                                } else {
                                    errors += 1;
                                    first_error.get_or_insert(format!("HTTP {}", resp.status));
                                }
                            }
                        }
                        Err(e) => {
                            client = None;
                            if counted {
                                errors += 1;
                                first_error.get_or_insert(e.to_string());
                            }
                        }
                    }
                }
                (hist, n, errors, first_error)
            })
        })
        .collect();
    let mut out = Measured {
        hist: Hist::default(),
        rate: 0.0,
        errors: 0,
        first_error: None,
    };
    let mut n = 0;
    for t in tasks {
        let (h, k, e, fe) = t.await?;
        out.hist.merge(&h);
        n += k;
        out.errors += e;
        if out.first_error.is_none() {
            out.first_error = fe;
        }
    }
    out.rate = n as f64 / a.seconds.max(1) as f64;
    Ok(out)
}

/// `wrk` against the same URLs with the same cookie and connection count, as a
/// cross-check of the figures above; skipped quietly when it is not installed.
fn run_wrk(addr: SocketAddr, urls: &[String], cookie: &str, a: &WebArgs) {
    let Ok(out) = Command::new("wrk").arg("--version").output() else {
        println!("(wrk not installed: no wrk cross-check; `apt-get install wrk` adds one)");
        return;
    };
    let _ = out;
    println!("wrk cross-check ({} connections, 2 threads):", a.clients);
    for url in urls {
        let target = format!("http://{addr}{url}");
        let r = Command::new("wrk")
            .args(["-t", "2", "-c", &a.clients.to_string()])
            .args(["-d", &format!("{}s", a.seconds)])
            .args(["-H", &format!("Cookie: {cookie}")])
            .arg("--latency")
            .arg(&target)
            .output();
        match r {
            Ok(o) => {
                let text = String::from_utf8_lossy(&o.stdout);
                let pick = |prefix: &str| {
                    text.lines()
                        .find(|l| l.trim_start().starts_with(prefix))
                        .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_owned())
                        .unwrap_or_else(|| "?".into())
                };
                let non2xx = text
                    .lines()
                    .find(|l| l.contains("Non-2xx"))
                    .map(|l| l.trim().to_owned())
                    .unwrap_or_default();
                println!(
                    "  {url:<60} req/s {:>8}  median {:>8}  p90 {:>8}  p99 {:>8} {non2xx}",
                    pick("Requests/sec:"),
                    pick("50%"),
                    pick("90%"),
                    pick("99%")
                );
            }
            Err(e) => println!("  {url}: wrk failed: {e}"),
        }
        let _ = std::io::stdout().flush();
    }
}
