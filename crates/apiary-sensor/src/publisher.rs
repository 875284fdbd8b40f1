//! Spool → broker.
//!
//! One connection at a time. After (re)connecting, delivery restarts from the spool's
//! acknowledged position. A batch is written, flushed, and then the connection is
//! watched for `confirm` (default 150 ms) for an `OP_ERROR` or a close; only then is the
//! batch acknowledged in the spool (position written atomically). A clean close (FIN)
//! inside that window still acknowledges the batch if a probe written after a pause does
//! not hit a reset (a peer that closes with unread data, or receives data after closing,
//! resets the connection). hpfeeds has no per-message acknowledgement, so this remains
//! at-least-once: a broker that crashes (reset) after reading a batch but before the
//! window ends makes the sensor send that batch again after reconnecting. Every event carries a unique `id` so consumers can
//! drop such duplicates. A sensor restart never duplicates acknowledged records and never
//! loses unacknowledged ones.
//!
//! Reconnects back off exponentially (1 s doubling to `backoff_max`, ±25 % jitter).
//! Heartbeats go out every `heartbeat` while connected; they are not spooled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hpfeeds::client::TlsOptions;
use hpfeeds::{Client, ClientOptions};
use tokio::sync::watch;

use crate::event::HEARTBEAT_CHANNEL;
use crate::Shared;

/// Records per batch.
pub const BATCH: usize = 1000;

/// Publisher settings.
#[derive(Clone)]
pub struct PubConfig {
    /// Broker options.
    pub opts: ClientOptions,
    /// Cap on reconnect delay.
    pub backoff_max: Duration,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Confirmation window after each batch.
    pub confirm: Duration,
}

impl PubConfig {
    /// From the config file's broker section.
    pub fn new(b: &crate::config::Broker, heartbeat: Duration) -> PubConfig {
        let mut opts =
            ClientOptions::new(b.host.clone(), b.port, b.ident.clone(), b.secret.clone());
        if let Some(ca) = &b.tls_ca {
            opts = opts.with_tls(TlsOptions::CaFile(ca.clone()));
        }
        PubConfig {
            opts,
            backoff_max: Duration::from_secs(b.backoff_max_secs.max(1)),
            heartbeat,
            confirm: Duration::from_millis(150),
        }
    }
}

/// Heartbeat builder.
pub type HeartbeatFn = Arc<dyn Fn() -> String + Send + Sync>;

fn backoff(failures: u32, max: Duration) -> Duration {
    let base = Duration::from_secs(1).saturating_mul(1u32 << failures.min(16));
    let d = base.min(max);
    let jitter = 0.75 + rand::random::<f64>() * 0.5;
    d.mul_f64(jitter)
}

/// Runs until `stop` becomes true; then flushes what it can within 2 s and returns.
pub async fn run(
    shared: Arc<Shared>,
    cfg: PubConfig,
    heartbeat: HeartbeatFn,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        let connected = tokio::select! {
            r = connect(&cfg) => r,
            _ = stop.changed() => return,
        };
        match connected {
            Ok(client) => {
                tracing::info!(host = %cfg.opts.host, port = cfg.opts.port, "connected to broker");
                failures = 0;
                match deliver(&shared, &cfg, client, &heartbeat, &mut stop).await {
                    Ok(()) => return,
                    Err(e) => tracing::warn!(error = %e, "broker connection lost"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, failures, "broker connect failed");
            }
        }
        let d = backoff(failures, cfg.backoff_max);
        failures = failures.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn connect(cfg: &PubConfig) -> Result<Client, hpfeeds::ClientError> {
    let mut c = Client::connect(cfg.opts.clone()).await?;
    c.check_auth(Duration::from_millis(300)).await?;
    Ok(c)
}

/// Delivers until an error (returned) or stop (Ok).
async fn deliver(
    shared: &Shared,
    cfg: &PubConfig,
    mut client: Client,
    heartbeat: &HeartbeatFn,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut next_hb = Instant::now();
    loop {
        if Instant::now() >= next_hb {
            client.publish(HEARTBEAT_CHANNEL, heartbeat()).await?;
            client.flush().await?;
            next_hb = Instant::now() + cfg.heartbeat;
        }
        let batch = {
            let s = shared
                .spool
                .lock()
                .map_err(|_| anyhow::anyhow!("spool lock poisoned"))?;
            s.read(s.acked(), BATCH)?
        };
        let stopping = *stop.borrow();
        if batch.is_empty() {
            if stopping {
                let _ = client.close().await;
                return Ok(());
            }
            let wait = next_hb.saturating_duration_since(Instant::now());
            tokio::select! {
                _ = shared.appended.notified() => {}
                _ = tokio::time::sleep(wait.min(Duration::from_secs(1))) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let n = batch.len() as u64;
        for r in &batch {
            if let Err(e) = client.feed(&r.channel, &r.payload) {
                if e.is_fatal() {
                    return Err(e.into());
                }
                tracing::warn!(error = %e, channel = %r.channel, "record cannot be published; skipped");
            }
        }
        client.flush().await?;
        match client.check_auth(cfg.confirm).await {
            Ok(()) => {}
            Err(hpfeeds::ClientError::Closed) => {
                // A clean close (FIN). If the broker closed with our batch unread, or the
                // batch reached an already closed socket, its kernel answers with a reset;
                // a probe written after a pause then fails. If the probe goes out, the
                // broker had consumed the batch before closing.
                tokio::time::sleep(cfg.confirm).await;
                let (mut w, _r) = client.split();
                let probe = w.feed(HEARTBEAT_CHANNEL, heartbeat());
                if probe.is_err() || w.flush().await.is_err() {
                    anyhow::bail!("broker closed; last batch unconfirmed, resending");
                }
                ack(shared, &batch, n)?;
                anyhow::bail!("broker closed the connection");
            }
            Err(e) => return Err(e.into()),
        }
        ack(shared, &batch, n)?;
    }
}

fn ack(shared: &Shared, batch: &[crate::spool::Record], n: u64) -> anyhow::Result<()> {
    if let Some(last) = batch.last() {
        let mut s = shared
            .spool
            .lock()
            .map_err(|_| anyhow::anyhow!("spool lock poisoned"))?;
        s.ack(last.next, n)?;
    }
    Ok(())
}
