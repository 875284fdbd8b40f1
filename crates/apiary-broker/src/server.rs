//! Accept loops, connection limits and shutdown.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use apiary_model::Ident;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::auth::MemoryAuth;
use crate::connection;
use crate::metrics::BrokerMetrics;
use crate::router::{ChannelFilter, Published, QueueLimits, Router};

/// Broker settings.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Name sent in OP_INFO.
    pub name: String,
    /// Largest accepted frame, header included.
    pub max_frame: usize,
    /// Time a client has to authenticate.
    pub auth_timeout: Duration,
    /// Maximum open connections.
    pub max_connections: usize,
    /// Maximum connections that have not authenticated yet.
    pub max_unauthenticated: usize,
    /// Maximum connections one source address may have that have not authenticated yet,
    /// so one noisy host cannot fill `max_unauthenticated` and lock sensors out.
    pub max_unauthenticated_per_ip: usize,
    /// Frames a subscriber may have queued.
    pub subscriber_queue_frames: usize,
    /// Bytes a subscriber may have queued.
    pub subscriber_queue_bytes: usize,
    /// How long a subscriber's queue may stay full before it is disconnected.
    pub slow_subscriber_grace: Duration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            name: "apiary".into(),
            max_frame: hpfeeds::frame::DEFAULT_MAX_FRAME,
            auth_timeout: Duration::from_secs(10),
            max_connections: 20_000,
            max_unauthenticated: 2_048,
            max_unauthenticated_per_ip: 64,
            subscriber_queue_frames: 65_536,
            subscriber_queue_bytes: 64 * 1024 * 1024,
            slow_subscriber_grace: Duration::from_secs(5),
        }
    }
}

impl BrokerConfig {
    pub(crate) fn queue_limits(&self) -> QueueLimits {
        QueueLimits {
            max_frames: self.subscriber_queue_frames,
            max_bytes: self.subscriber_queue_bytes,
            grace: self.slow_subscriber_grace,
        }
    }
}

/// State shared by every connection.
pub(crate) struct Shared {
    pub(crate) config: BrokerConfig,
    pub(crate) auth: Arc<MemoryAuth>,
    pub(crate) router: Router,
    pub(crate) metrics: Arc<BrokerMetrics>,
    /// Authenticated connections by id: ident and kick token.
    conns: Mutex<HashMap<u64, (Bytes, CancellationToken)>>,
    /// Connections not yet authenticated, per source address.
    pending: Mutex<HashMap<IpAddr, usize>>,
}

impl Shared {
    pub(crate) fn register(&self, conn: u64, ident: Bytes, kick: CancellationToken) {
        self.conns.lock().insert(conn, (ident, kick));
    }
    pub(crate) fn deregister(&self, conn: u64) {
        self.conns.lock().remove(&conn);
    }

    /// Takes a pre-authentication slot for `ip`; false when it has too many.
    fn take_pending(&self, ip: IpAddr) -> bool {
        let mut pending = self.pending.lock();
        let n = pending.entry(ip).or_insert(0);
        if *n >= self.config.max_unauthenticated_per_ip {
            return false;
        }
        *n += 1;
        true
    }

    /// Gives a pre-authentication slot back (on AUTH success or disconnect).
    pub(crate) fn release_pending(&self, ip: IpAddr) {
        let mut pending = self.pending.lock();
        if let Some(n) = pending.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                pending.remove(&ip);
            }
        }
    }
}

/// The broker: credential table, router, metrics and the accept loops.
#[derive(Clone)]
pub struct Broker {
    shared: Arc<Shared>,
    next_conn: Arc<AtomicU64>,
    tracker: TaskTracker,
}

impl Broker {
    /// A broker with an empty credential table.
    pub fn new(config: BrokerConfig) -> Self {
        let metrics = Arc::new(BrokerMetrics::default());
        Self {
            shared: Arc::new(Shared {
                config,
                auth: Arc::new(MemoryAuth::new()),
                router: Router::new(metrics.clone()),
                metrics,
                conns: Mutex::default(),
                pending: Mutex::default(),
            }),
            next_conn: Arc::new(AtomicU64::new(1)),
            tracker: TaskTracker::new(),
        }
    }

    #[cfg(test)]
    pub(crate) fn shared_for_test(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Counters.
    pub fn metrics(&self) -> &Arc<BrokerMetrics> {
        &self.shared.metrics
    }

    /// Number of idents loaded.
    pub fn ident_count(&self) -> usize {
        self.shared.auth.len()
    }

    /// Replaces the credential table and closes the connections of idents that were
    /// removed or changed. Returns how many connections were closed.
    pub fn load_idents(&self, idents: &[Ident]) -> usize {
        let stale = self.shared.auth.replace_all(idents);
        if stale.is_empty() {
            return 0;
        }
        let conns = self.shared.conns.lock();
        let mut kicked = 0;
        for (ident, kick) in conns.values() {
            if stale.contains(ident) {
                kick.cancel();
                kicked += 1;
            }
        }
        self.shared
            .metrics
            .ident_kicks
            .fetch_add(kicked as u64, Relaxed);
        if kicked > 0 {
            info!(kicked, "closed connections of removed or changed idents");
        }
        kicked
    }

    /// Registers an in-process consumer of published messages (lossless, backpressured).
    pub fn subscribe_internal(
        &self,
        filter: ChannelFilter,
        capacity: usize,
    ) -> tokio::sync::mpsc::Receiver<Published> {
        self.shared.router.subscribe_internal(filter, capacity)
    }

    /// Accepts plain TCP (or TLS when `tls` is set) connections on `listener` until
    /// `shutdown` is cancelled, then closes every connection it opened.
    pub async fn run(
        &self,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        shutdown: CancellationToken,
    ) {
        let unauth = Arc::new(AtomicUsize::new(0));
        let mut backoff = Duration::from_millis(5);
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = listener.accept() => r,
            };
            let (stream, peer) = match accepted {
                Ok(x) => {
                    backoff = Duration::from_millis(5);
                    x
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "accept failed; backing off");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            let m = &self.shared.metrics;
            let open = m.connections_open.load(Relaxed) as usize;
            let pending = open.saturating_sub(m.authenticated_open.load(Relaxed).max(0) as usize);
            if open >= self.shared.config.max_connections
                || pending >= self.shared.config.max_unauthenticated
                || !self.shared.take_pending(peer.ip())
            {
                m.connections_refused.fetch_add(1, Relaxed);
                debug!(%peer, open, pending, "connection limit reached; refusing");
                drop(stream);
                continue;
            }
            m.connections_total.fetch_add(1, Relaxed);
            m.connections_open.fetch_add(1, Relaxed);
            let _ = stream.set_nodelay(true);
            let conn = self.next_conn.fetch_add(1, Relaxed);
            let shared = self.shared.clone();
            let token = shutdown.clone();
            let tls = tls.clone();
            let _ = &unauth;
            self.tracker.spawn(async move {
                serve_stream(stream, peer, conn, shared.clone(), token, tls).await;
                shared.metrics.connections_open.fetch_sub(1, Relaxed);
            });
        }
    }

    /// Waits until every connection task has ended (after shutdown was cancelled).
    pub async fn wait_closed(&self, deadline: Duration) -> bool {
        self.tracker.close();
        let closed = tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_ok();
        // Only now may in-process consumers see the end of their stream.
        self.shared.router.close_internal();
        closed
    }
}

async fn serve_stream(
    stream: TcpStream,
    peer: SocketAddr,
    conn: u64,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    tls: Option<TlsAcceptor>,
) {
    // Each branch is boxed so a plain TCP connection's task does not carry the (much
    // larger) TLS state inline: 10,000 idle sensors must fit in a few tens of MiB.
    match tls {
        None => Box::pin(connection::serve(stream, peer, conn, shared, shutdown)).await,
        Some(acceptor) => {
            let timeout = shared.config.auth_timeout;
            match tokio::time::timeout(timeout, Box::pin(acceptor.accept(stream))).await {
                Ok(Ok(s)) => Box::pin(connection::serve(s, peer, conn, shared, shutdown)).await,
                Ok(Err(e)) => {
                    shared.release_pending(peer.ip());
                    debug!(%peer, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    shared.release_pending(peer.ip());
                    debug!(%peer, "TLS handshake timed out");
                }
            }
        }
    }
}
