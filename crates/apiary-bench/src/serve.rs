//! `apiary-bench serve-broker`: our broker in its own process, so that it gets the same
//! treatment as the Python one (separate address space, RSS readable from /proc).
//!
//! Protocol with the parent: prints `LISTENING <port>` once bound; then each `stats` line on
//! stdin is answered with one `STATS key=value ...` line; EOF on stdin (the parent exited
//! or dropped us) shuts the broker down.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, Result};
use apiary_broker::{Broker, BrokerConfig};
use apiary_model::{Ident, Secret};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering::Relaxed;
use tokio_util::sync::CancellationToken;

use crate::wire::CHANNEL;

/// One entry of the Python broker's JSON auth file (`--auth users.json`); both brokers
/// read the same file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserEntry {
    pub owner: String,
    pub secret: String,
    pub pubchans: Vec<String>,
    pub subchans: Vec<String>,
}

/// `{ident: entry}`.
pub type Users = BTreeMap<String, UserEntry>;

fn load_users(path: &Path) -> Result<Vec<Ident>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path:?}"))?;
    let users: Users = serde_json::from_str(&text).context("parsing idents JSON")?;
    Ok(users
        .into_iter()
        .map(|(ident, u)| Ident {
            ident,
            secret: Secret::new(u.secret),
            publish: u.pubchans,
            subscribe: u.subchans,
            owner: u.owner,
        })
        .collect())
}

/// Runs the broker until stdin closes.
pub fn serve(
    listen: &str,
    idents: &Path,
    threads: Option<usize>,
    backlog: u32,
    queue_frames: Option<usize>,
) -> Result<()> {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let idents = load_users(idents)?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.build()?;
    rt.block_on(async move {
        // An explicit backlog: the default (128, as in std) overflows when thousands of
        // clients connect at once and costs them a 1 s SYN retransmit.
        let addr: std::net::SocketAddr = listen.parse().context("--listen")?;
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket
            .bind(addr)
            .with_context(|| format!("binding {listen}"))?;
        let listener = socket.listen(backlog)?;
        let port = listener.local_addr()?.port();
        let defaults = BrokerConfig::default();
        let broker = Broker::new(BrokerConfig {
            name: "apiary-bench".into(),
            subscriber_queue_frames: queue_frames.unwrap_or(defaults.subscriber_queue_frames),
            // Every bench client connects from 127.0.0.1; the per-address cap on
            // unauthenticated connections (64) protects real deployments, not this.
            max_unauthenticated_per_ip: 20_000,
            max_unauthenticated: 20_000,
            ..defaults
        });
        broker.load_idents(&idents);
        let shutdown = CancellationToken::new();

        let metrics = broker.metrics().clone();
        let stop = shutdown.clone();
        std::thread::spawn(move || {
            let chan = metrics.channel(&Bytes::from_static(CHANNEL.as_bytes()));
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let Ok(line) = line else { break };
                if line.trim() == "stats" {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(
                        out,
                        "STATS open={} authed={} refused={} in={} out={} drops={} slow={}",
                        metrics.connections_open.load(Relaxed),
                        metrics.authenticated_open.load(Relaxed),
                        metrics.connections_refused.load(Relaxed),
                        chan.messages_in.load(Relaxed),
                        chan.messages_out.load(Relaxed),
                        chan.drops.load(Relaxed),
                        metrics.slow_disconnects.load(Relaxed),
                    );
                    let _ = out.flush();
                }
            }
            stop.cancel();
        });

        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "LISTENING {port}")?;
            out.flush()?;
        }
        broker.run(listener, None, shutdown).await;
        broker.wait_closed(std::time::Duration::from_secs(2)).await;
        Ok(())
    })
}
