//! Listeners: one task per port, a global connection cap (a semaphore shared by all
//! services), a per-connection time limit and byte limit, one `apiary.events` message
//! per connection.

pub mod conn;
pub mod mssql;
pub mod proto;
pub mod shell;
pub mod smb;
pub mod ssh;
pub mod tls;
pub mod udp;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::config::Kind;
use crate::event::{ip_text, ts, Capture, Event, EVENTS_CHANNEL};
use crate::Shared;
use conn::{is_byte_limit, Conn, Counted};

/// Limits applied to every connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock limit.
    pub timeout: Duration,
    /// Bytes read from the attacker.
    pub max_bytes: u64,
}

/// One bound service ready to serve.
pub struct Bound {
    /// Protocol.
    pub kind: Kind,
    /// Listener (bound before privileges are dropped).
    pub listener: TcpListener,
    /// Banner.
    pub banner: Option<String>,
    /// Fake-shell policy (SSH and Telnet with `fake_shell`); `None`: every login fails.
    pub shell: Option<Arc<shell::Policy>>,
    /// Per-service handler settings (SMB names, ...).
    pub opts: Arc<proto::Opts>,
}

/// What every connection task needs.
#[derive(Clone)]
pub struct Ctx {
    /// Shared state.
    pub shared: Arc<Shared>,
    /// Limits.
    pub limits: Limits,
    /// Global cap.
    pub sem: Arc<Semaphore>,
    /// SSH server config (only when an SSH service is configured).
    pub ssh: Option<Arc<russh::server::Config>>,
}

/// Accept loop for one listener. Runs until the task is aborted.
pub async fn serve(b: Bound, ctx: Ctx) {
    let banner: Option<Arc<str>> = b.banner.map(Arc::from);
    let shell = b.shell;
    let opts = b.opts;
    loop {
        let (stream, peer) = match b.listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = ctx.sem.clone().try_acquire_owned() else {
            ctx.shared.rejected.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let ctx = ctx.clone();
        let banner = banner.clone();
        let shell = shell.clone();
        let opts = opts.clone();
        let kind = b.kind;
        tokio::spawn(async move {
            ctx.shared.total.fetch_add(1, Ordering::Relaxed);
            ctx.shared.active.fetch_add(1, Ordering::Relaxed);
            handle(kind, stream, peer, banner.as_deref(), shell, &opts, &ctx).await;
            ctx.shared.active.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}

/// Handles one connection and emits its event.
pub async fn handle(
    kind: Kind,
    stream: TcpStream,
    peer: SocketAddr,
    banner: Option<&str>,
    shell: Option<Arc<shell::Policy>>,
    opts: &proto::Opts,
    ctx: &Ctx,
) {
    let start = Utc::now();
    let t0 = Instant::now();
    let mut local = stream.local_addr().unwrap_or(peer);
    // The catch-all behind a firewall redirect (deploy script, CATCH_ALL=1): the port the
    // attacker connected to is the original destination, not our listener's.
    let redirected = if kind == Kind::Tcp {
        original_destination(&stream).filter(|o| *o != local)
    } else {
        None
    };
    if let Some(o) = redirected {
        local = o;
    }
    let _ = stream.set_nodelay(true);
    let (cap, bytes_in, bytes_out, closed) = if kind == Kind::Ssh {
        match &ctx.ssh {
            Some(cfg) => run_ssh(stream, cfg.clone(), shell, ctx.limits).await,
            None => (Capture::default(), 0, 0, "error"),
        }
    } else if let (Kind::Https, Some(t)) = (kind, &opts.tls) {
        tls::run_https(stream, t, banner, ctx.limits).await
    } else {
        let mut cap = Capture::default();
        let mut c = Conn::new(stream, ctx.limits.max_bytes);
        let r = tokio::time::timeout(
            ctx.limits.timeout,
            proto::run(kind, &mut c, &mut cap, banner, shell.as_deref(), opts),
        )
        .await;
        let closed = match r {
            Err(_) => "timeout",
            Ok(Ok(())) => "peer",
            Ok(Err(e)) if is_byte_limit(&e) => "byte_limit",
            Ok(Err(_)) => "error",
        };
        if kind == Kind::Tcp || closed == "byte_limit" {
            cap.payload(&c.head);
        }
        if redirected.is_some() {
            cap.extra.insert("redirected".into(), true.into());
        }
        (cap, c.bytes_in, c.bytes_out, closed)
    };
    let ev = Event {
        v: 1,
        id: ctx.shared.next_id(),
        time: ts(start),
        end_time: ts(Utc::now()),
        service: kind.name().to_owned(),
        protocol: kind.name().to_owned(),
        transport: "tcp",
        src_ip: ip_text(&peer),
        src_port: peer.port(),
        dst_ip: ip_text(&local),
        dst_port: local.port(),
        bytes_in,
        bytes_out,
        duration_ms: t0.elapsed().as_millis() as u64,
        closed,
        capture: cap,
    };
    match serde_json::to_string(&ev) {
        Ok(s) => {
            let _ = ctx.shared.emit(EVENTS_CHANNEL, &s, None);
        }
        Err(e) => tracing::error!(error = %e, "event serialization failed"),
    }
}

/// The destination before a netfilter REDIRECT/DNAT (`SO_ORIGINAL_DST`); `None` when the
/// connection was not redirected or the kernel cannot say.
fn original_destination(stream: &TcpStream) -> Option<SocketAddr> {
    use nix::sys::socket::{getsockopt, sockopt};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};
    match stream.local_addr().ok()? {
        SocketAddr::V4(_) => {
            let a = getsockopt(stream, sockopt::OriginalDst).ok()?;
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::new(ip.into(), u16::from_be(a.sin_port)))
        }
        SocketAddr::V6(_) => {
            let a = getsockopt(stream, sockopt::Ip6tOriginalDst).ok()?;
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                0,
                0,
            )))
        }
    }
}

async fn run_ssh(
    stream: TcpStream,
    cfg: Arc<russh::server::Config>,
    shell: Option<Arc<shell::Policy>>,
    limits: Limits,
) -> (Capture, u64, u64, &'static str) {
    let counted = Counted::new(stream, limits.max_bytes);
    let conn::Meters {
        read,
        written,
        head,
    } = counted.meters();
    let cap = Arc::new(Mutex::new(Capture::default()));
    let handler = ssh::Recorder::new(cap.clone(), shell);
    let r = tokio::time::timeout(limits.timeout, async move {
        let session = russh::server::run_stream(cfg, counted, handler).await?;
        session.await
    })
    .await;
    let bytes_in = read.load(Ordering::Relaxed);
    let closed = match r {
        Err(_) => "timeout",
        Ok(Ok(())) => "peer",
        Ok(Err(_)) if bytes_in >= limits.max_bytes => "byte_limit",
        Ok(Err(_)) => "peer",
    };
    let mut out = cap.lock().map(|c| c.clone()).unwrap_or_default();
    if let Ok(h) = head.0.lock() {
        out.client_version = client_version(&h);
        if out.client_version.is_none() {
            out.payload(&h);
        }
    }
    (out, bytes_in, written.load(Ordering::Relaxed), closed)
}

/// The `SSH-` identification line from the first bytes a client sent (RFC 4253 allows
/// other lines before it).
pub fn client_version(head: &[u8]) -> Option<String> {
    head.split(|&b| b == b'\n')
        .take(8)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .find(|l| l.starts_with(b"SSH-"))
        .map(|l| apiary_model::bounded::lossy(l, apiary_model::bounded::SHORT))
}
