//! `apiary-bench sensor`: apiary-sensor (FTP service) against OpenCanary (FTP module) on the
//! same load in the same run: idle RSS, RSS holding N concurrent connections, accept rate.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Options for the sensor benchmark.
#[derive(clap::Args)]
pub struct SensorArgs {
    /// apiary-sensor binary (release build).
    #[arg(long, default_value = "target/release/apiary-sensor")]
    pub sensor_bin: PathBuf,
    /// OpenCanary venv (created with pip if missing).
    #[arg(long, default_value = ".venv-opencanary")]
    pub venv: PathBuf,
    /// Concurrent connections to hold.
    #[arg(long, default_value_t = 10_000)]
    pub conns: usize,
    /// Accept-rate phase duration in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub rate_secs: f64,
    /// Parallel connectors in the accept-rate phase.
    #[arg(long, default_value_t = 256)]
    pub parallel: usize,
    /// Skip OpenCanary.
    #[arg(long)]
    pub skip_opencanary: bool,
}

struct Figures {
    idle_kib: u64,
    held: usize,
    held_kib: u64,
    rate: f64,
}

fn free_port() -> Result<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn rss_kib(pid: u32) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

async fn wait_banner(addr: SocketAddr, child: &mut Child) -> Result<()> {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait()? {
            bail!("server exited early: {st}");
        }
        if let Ok(Ok(mut s)) =
            tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await
        {
            let mut b = [0u8; 64];
            if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await {
                if n > 0 {
                    return Ok(());
                }
            }
        }
        if t0.elapsed() > Duration::from_secs(60) {
            bail!("server on {addr} never answered");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn connect_read(addr: SocketAddr) -> Result<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    let mut b = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await??;
    if n == 0 {
        bail!("closed before banner");
    }
    Ok(s)
}

async fn measure(
    name: &str,
    addr: SocketAddr,
    child: &mut Child,
    a: &SensorArgs,
) -> Result<Figures> {
    let pid = child.id();
    wait_banner(addr, child).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_kib = rss_kib(pid)?;
    println!("[{name}] idle RSS {:.1} MiB", idle_kib as f64 / 1024.0);

    // Hold N connections, each having read its banner; at most 500 connects in flight.
    let sem = Arc::new(tokio::sync::Semaphore::new(500));
    let mut tasks = Vec::with_capacity(a.conns);
    for _ in 0..a.conns {
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire_owned().await;
            connect_read(addr).await
        }));
    }
    let mut held = Vec::with_capacity(a.conns);
    let mut errs = 0usize;
    let mut first_err = None;
    for t in tasks {
        match t.await? {
            Ok(s) => held.push(s),
            Err(e) => {
                errs += 1;
                first_err.get_or_insert(e.to_string());
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held_kib = rss_kib(pid)?;
    let held_n = held.len();
    println!(
        "[{name}] holding {held_n}/{} connections ({errs} failed{}), RSS {:.1} MiB",
        a.conns,
        first_err
            .map(|e| format!(", first: {e}"))
            .unwrap_or_default(),
        held_kib as f64 / 1024.0
    );
    drop(held);
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Accept rate: connect + first byte, `parallel` loops for `rate_secs`.
    let ok = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs_f64(a.rate_secs);
    let t0 = Instant::now();
    let mut ws = Vec::new();
    for _ in 0..a.parallel {
        let (ok, bad) = (ok.clone(), bad.clone());
        ws.push(tokio::spawn(async move {
            while Instant::now() < end {
                match connect_read(addr).await {
                    Ok(s) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        drop(s);
                    }
                    Err(_) => {
                        bad.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }));
    }
    for w in ws {
        w.await?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let n = ok.load(Ordering::Relaxed);
    let rate = n as f64 / secs;
    println!(
        "[{name}] accept rate {rate:.0} conn/s ({n} in {secs:.2} s, {} failed, {} parallel)",
        bad.load(Ordering::Relaxed),
        a.parallel
    );
    Ok(Figures {
        idle_kib,
        held: held_n,
        held_kib,
        rate,
    })
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_sensor(a: &SensorArgs, dir: &Path, rt: &tokio::runtime::Runtime) -> Result<Figures> {
    if !a.sensor_bin.is_file() {
        bail!(
            "{:?} missing: cargo build --release -p apiary-sensor",
            a.sensor_bin
        );
    }
    let port = free_port()?;
    let spool = dir.join("spool");
    std::fs::create_dir_all(&spool)?;
    let max_conns = a.conns * 2 + a.parallel + 100;
    let timeout = 3600;
    // Broker port 9 on loopback: unreachable, events stay spooled.
    let cfg = format!(
        "[broker]\nhost = \"127.0.0.1\"\nport = 9\nident = \"bench\"\nsecret = \"bench\"\n\n\
         [sensor]\nspool_dir = {spool:?}\nmax_connections = {max_conns}\nconn_timeout_secs = {timeout}\n\
         bind = \"127.0.0.1\"\n\n[[service]]\nkind = \"ftp\"\nport = {port}\n"
    );
    let path = dir.join("sensor.toml");
    std::fs::write(&path, cfg)?;
    println!(
        "[apiary-sensor] ftp on 127.0.0.1:{port}, max_connections = {max_conns}, conn_timeout_secs = {timeout}"
    );
    let child = Command::new(&a.sensor_bin)
        .arg("run")
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("spawn apiary-sensor")?;
    let mut k = Killed(child);
    rt.block_on(measure(
        "apiary-sensor",
        SocketAddr::from(([127, 0, 0, 1], port)),
        &mut k.0,
        a,
    ))
}

fn ensure_venv(venv: &Path) -> Result<()> {
    if venv.join("bin/opencanary.tac").is_file() {
        return Ok(());
    }
    if !venv.join("bin/pip").is_file() {
        let st = Command::new("python3")
            .args(["-m", "venv"])
            .arg(venv)
            .status()?;
        if !st.success() {
            bail!("python3 -m venv failed");
        }
    }
    let st = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "opencanary==0.9.10"])
        .status()?;
    if !st.success() || !venv.join("bin/opencanary.tac").is_file() {
        bail!("pip install opencanary==0.9.10 failed");
    }
    Ok(())
}

fn run_opencanary(a: &SensorArgs, dir: &Path, rt: &tokio::runtime::Runtime) -> Result<Figures> {
    ensure_venv(&a.venv)?;
    let venv = std::fs::canonicalize(&a.venv)?;
    let port = free_port()?;
    let cfg = serde_json::json!({
        "device.node_id": "opencanary-bench",
        "device.listen_addr": "127.0.0.1",
        "ftp.enabled": true,
        "ftp.port": port,
        "ftp.banner": "FTPd 1.0 ready",
        "logger": {
            "class": "PyLogger",
            "kwargs": {
                "formatters": {"plain": {"format": "%(message)s"}},
                "handlers": {"file": {"class": "logging.FileHandler",
                                      "filename": dir.join("opencanary.log")}}
            }
        }
    });
    std::fs::write(
        dir.join("opencanary.conf"),
        serde_json::to_vec_pretty(&cfg)?,
    )?;
    println!("[opencanary] ftp on 127.0.0.1:{port} (twistd -noy opencanary.tac)");
    let child = Command::new(venv.join("bin/twistd"))
        .arg("-noy")
        .arg(venv.join("bin/opencanary.tac"))
        .arg("--pidfile=")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("twistd.err"))?)
        .spawn()
        .context("spawn twistd")?;
    let mut k = Killed(child);
    rt.block_on(measure(
        "opencanary",
        SocketAddr::from(([127, 0, 0, 1], port)),
        &mut k.0,
        a,
    ))
}

fn mib(k: u64) -> String {
    format!("{:.1} MiB", k as f64 / 1024.0)
}

/// Entry point of `apiary-bench sensor`.
pub fn run(a: SensorArgs) -> Result<()> {
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    let got = rlimit::increase_nofile_limit(u64::MAX)?;
    println!("RLIMIT_NOFILE {soft}/{hard} -> {got} (children inherit)");
    if (got as usize) < a.conns + a.parallel + 200 {
        println!(
            "WARNING: fd limit {got} is below the {} connections asked",
            a.conns
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let ours = run_sensor(&a, &dir.path().join("sensor"), &rt)?;
    let oc_dir = dir.path().join("opencanary");
    std::fs::create_dir_all(&oc_dir)?;
    let theirs = if a.skip_opencanary {
        println!("OpenCanary skipped (--skip-opencanary)");
        None
    } else {
        match run_opencanary(&a, &oc_dir, &rt) {
            Ok(f) => Some(f),
            Err(e) => {
                let tail = std::fs::read_to_string(oc_dir.join("twistd.err")).unwrap_or_default();
                println!("NOTICE: OpenCanary not measured: {e:#}\n{tail}");
                None
            }
        }
    };

    let n = a.conns;
    let row = |label: &str, o: String, t: Option<String>, ratio: Option<f64>, target: String| {
        println!(
            "{label:<26} {o:>16} {:>16} {:>10} {target}",
            t.unwrap_or_else(|| "-".into()),
            ratio
                .map(|r| format!("{r:.2}x"))
                .unwrap_or_else(|| "-".into())
        );
    };
    let met = |b: bool| if b { "MET" } else { "NOT MET" };
    println!();
    println!(
        "{:<26} {:>16} {:>16} {:>10} target",
        "metric", "apiary-sensor", "opencanary", "oc/ours"
    );
    row(
        "idle RSS",
        mib(ours.idle_kib),
        theirs.as_ref().map(|t| mib(t.idle_kib)),
        theirs
            .as_ref()
            .map(|t| t.idle_kib as f64 / ours.idle_kib as f64),
        format!("<= 15 MiB: {}", met(ours.idle_kib <= 15 * 1024)),
    );
    row(
        "connections held",
        format!("{}/{n}", ours.held),
        theirs.as_ref().map(|t| format!("{}/{n}", t.held)),
        None,
        format!("{n}: {}", met(ours.held >= n)),
    );
    row(
        &format!("RSS holding {n}"),
        mib(ours.held_kib),
        theirs.as_ref().map(|t| mib(t.held_kib)),
        theirs
            .as_ref()
            .map(|t| t.held_kib as f64 / ours.held_kib as f64),
        format!(
            "<= 100 MiB: {}",
            met(ours.held >= n && ours.held_kib <= 100 * 1024)
        ),
    );
    row(
        "accept rate (conn/s)",
        format!("{:.0}", ours.rate),
        theirs.as_ref().map(|t| format!("{:.0}", t.rate)),
        theirs.as_ref().map(|t| ours.rate / t.rate.max(1e-9)),
        format!(">= 5000/s: {} (ratio = ours/oc)", met(ours.rate >= 5000.0)),
    );
    Ok(())
}
