//! `apiary-sensor run --config /etc/apiary-sensor/sensor.toml`

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use apiary_sensor::config::{Config, Kind};
use apiary_sensor::event::ts;
use apiary_sensor::publisher::{self, PubConfig};
use apiary_sensor::services::{self, Bound, Ctx, Limits};
use apiary_sensor::spool::Spool;
use apiary_sensor::{forward, privdrop, Shared};
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

#[derive(Parser)]
#[command(name = "apiary-sensor", version, about = "Apiary honeypot sensor")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the sensor.
    Run {
        /// Config file.
        #[arg(long, short, default_value = "/etc/apiary-sensor/sensor.toml")]
        config: PathBuf,
    },
    /// Parse the config file and exit.
    CheckConfig {
        /// Config file.
        #[arg(long, short, default_value = "/etc/apiary-sensor/sensor.toml")]
        config: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::CheckConfig { config } => {
            let c = Config::load(&config)?;
            // Reads HTTPS certificate/key files too, so a bad pair fails here, not at start.
            for s in c.services.iter().filter(|s| s.enabled) {
                s.opts()
                    .with_context(|| format!("service {}", s.kind.name()))?;
            }
            println!(
                "ok: {} service(s), {} forwarder(s), broker {}:{}",
                c.services.iter().filter(|s| s.enabled).count(),
                c.forwarders.len(),
                c.broker.host,
                c.broker.port
            );
            Ok(())
        }
        Cmd::Run { config } => {
            let c = Config::load(&config)?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(run(c))
        }
    }
}

fn chown_tree(dir: &Path, user: &str) -> anyhow::Result<()> {
    use nix::unistd::{chown, User};
    let Some(u) = User::from_name(user)? else {
        anyhow::bail!("no such user {user:?}");
    };
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        chown(&p, Some(u.uid), Some(u.gid))?;
        if p.is_dir() {
            for e in std::fs::read_dir(&p)? {
                stack.push(e?.path());
            }
        }
    }
    Ok(())
}

async fn run(c: Config) -> anyhow::Result<()> {
    // 1. Bind every port while we may still be root.
    let mut bound = Vec::new();
    let mut udp_sockets = Vec::new();
    for s in c.services.iter().filter(|s| s.enabled) {
        let shell = s.shell_policy()?.map(Arc::new);
        let opts = Arc::new(
            s.opts()
                .with_context(|| format!("service {}", s.kind.name()))?,
        );
        let mut ports: Vec<u16> = s.ports.clone();
        if let Some(p) = s.port {
            ports.push(p);
        } else if ports.is_empty() {
            ports.push(s.kind.default_port());
        }
        for p in ports {
            let addr = std::net::SocketAddr::new(c.sensor.bind, p);
            if s.kind == Kind::Udp {
                let sock = bind_udp(addr).with_context(|| format!("binding udp on {addr}"))?;
                tracing::info!(service = "udp", %addr, "listening");
                udp_sockets.push((sock, p));
                continue;
            }
            let listener =
                listen(addr).with_context(|| format!("binding {} on {addr}", s.kind.name()))?;
            tracing::info!(service = s.kind.name(), %addr, "listening");
            bound.push((
                Bound {
                    kind: s.kind,
                    listener,
                    banner: s.banner.clone(),
                    shell: shell.clone(),
                    opts: opts.clone(),
                },
                p,
            ));
        }
    }
    // 2. State dir, then drop privileges.
    let dir = c.sensor.spool_dir.clone();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if nix::unistd::getuid().is_root() {
        chown_tree(&dir, &c.sensor.user)?;
        if let Some((uid, gid)) = privdrop::drop_to(&c.sensor.user, c.sensor.group.as_deref())? {
            tracing::info!(uid, gid, user = %c.sensor.user, "dropped privileges");
        }
    }
    // 3. Spool, SSH key, shared state.
    let spool = Spool::open(&dir, c.sensor.spool_segment_bytes, c.sensor.spool_max_bytes)
        .with_context(|| format!("opening spool in {}", dir.display()))?;
    let shared = Arc::new(Shared::new(spool));
    let limits = Limits {
        timeout: Duration::from_secs(c.sensor.conn_timeout_secs.max(1)),
        max_bytes: c.sensor.conn_max_bytes.max(1),
    };
    let ssh = match bound.iter().find(|(b, _)| b.kind == Kind::Ssh) {
        Some((b, _)) => {
            let key = services::ssh::host_key(&dir.join("ssh_host_ed25519.seed"))?;
            Some(Arc::new(services::ssh::config(
                key,
                b.banner.as_deref(),
                limits.timeout,
            )))
        }
        None => None,
    };
    let ctx = Ctx {
        shared: shared.clone(),
        limits,
        sem: Arc::new(Semaphore::new(c.sensor.max_connections)),
        ssh,
    };
    let mut service_list: Vec<serde_json::Value> = bound
        .iter()
        .map(|(b, p)| serde_json::json!({"name": b.kind.name(), "port": p}))
        .collect();
    service_list.extend(
        udp_sockets
            .iter()
            .map(|(_, p)| serde_json::json!({"name": "udp", "port": p, "transport": "udp"})),
    );
    let mut tasks = Vec::new();
    for (b, _) in bound {
        tasks.push(tokio::spawn(services::serve(b, ctx.clone())));
    }
    let mut udp = None;
    if !udp_sockets.is_empty() {
        let mut socks = Vec::new();
        for (s, _) in udp_sockets {
            socks.push(tokio::net::UdpSocket::from_std(s)?);
        }
        udp = Some(services::udp::spawn(
            socks,
            shared.clone(),
            services::udp::UdpConfig {
                window: Duration::from_millis(c.sensor.udp_window_ms),
                max_flows: c.sensor.udp_max_flows,
            },
        ));
    }
    // 4. Forwarders.
    let stop_fwd = Arc::new(AtomicBool::new(false));
    let fwd_stats = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tailers = Vec::new();
    for f in &c.forwarders {
        tailers.push(forward::Tailer::new(f, &dir, &shared)?);
    }
    let fwd_thread = (!tailers.is_empty()).then(|| {
        forward::spawn(
            tailers,
            shared.clone(),
            Duration::from_millis(c.sensor.poll_ms.max(10)),
            stop_fwd.clone(),
            fwd_stats.clone(),
        )
    });
    // 5. Periodic fsync.
    let syncer = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut iv = tokio::time::interval(Duration::from_secs(1));
            loop {
                iv.tick().await;
                if let Ok(mut s) = shared.spool.lock() {
                    let _ = s.sync();
                }
            }
        })
    };
    // 6. Publisher with heartbeats.
    let started = Instant::now();
    let hb_secs = c.sensor.heartbeat_secs.max(1);
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let hb: publisher::HeartbeatFn = {
        let shared = shared.clone();
        let fwd_stats = fwd_stats.clone();
        Arc::new(move || {
            let spool = shared.spool.lock().map(|s| s.stats()).unwrap_or_default();
            serde_json::json!({
                "v": 1, "time": ts(chrono::Utc::now()), "boot_id": shared.boot_id,
                "version": env!("CARGO_PKG_VERSION"), "hostname": hostname,
                "uptime_s": started.elapsed().as_secs(), "interval_s": hb_secs,
                "services": service_list,
                "connections": {
                    "active": shared.active.load(Ordering::Relaxed),
                    "total": shared.total.load(Ordering::Relaxed),
                    "rejected": shared.rejected.load(Ordering::Relaxed),
                },
                "udp": {
                    "datagrams": shared.udp_datagrams.load(Ordering::Relaxed),
                    "dropped": shared.udp_dropped.load(Ordering::Relaxed),
                },
                "spool": spool,
                "forwarders": fwd_stats.lock().map(|s| s.clone()).unwrap_or_default(),
            })
            .to_string()
        })
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let pcfg = PubConfig::new(&c.broker, Duration::from_secs(hb_secs));
    let mut publisher = tokio::spawn(publisher::run(shared.clone(), pcfg, hb, stop_rx));
    // 7. Wait for a signal.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = &mut publisher => { anyhow::bail!("publisher stopped unexpectedly"); }
    }
    tracing::info!("shutting down");
    for t in &tasks {
        t.abort();
    }
    if let Some(u) = udp {
        u.shutdown();
    }
    stop_fwd.store(true, Ordering::Relaxed);
    if let Some(t) = fwd_thread {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(3), publisher).await;
    syncer.abort();
    if let Ok(mut s) = shared.spool.lock() {
        s.sync()?;
        let st = s.stats();
        tracing::info!(pending = st.pending, dropped = st.dropped, "spool synced");
    }
    Ok(())
}

/// Pending connections the kernel may queue per listener. Scanners open thousands at once:
/// with tokio's default (1,024) the accept queue overflowed, the kernel dropped the final
/// ACKs and those clients waited for SYN-ACK retransmissions (1 s, 2 s, 4 s, ...) before
/// the banner came. The kernel caps it at net.core.somaxconn.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// A UDP socket for the catch-all (non-blocking, ready for tokio).
fn bind_udp(addr: std::net::SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let s = std::net::UdpSocket::bind(addr)?;
    s.set_nonblocking(true)?;
    Ok(s)
}
