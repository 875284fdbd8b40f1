//! Channel → subscribers.
//!
//! The authoritative subscription table sits behind a mutex that only (un)subscribe and
//! disconnect touch. Publishers read an immutable snapshot (`Arc<Snapshot>`) that is
//! rebuilt on every change and picked up through a generation counter, so the publish
//! path takes no lock per message.
//!
//! TCP subscribers get a queue bounded in frames and bytes ([`SubQueue`]); in-process
//! consumers get a bounded `mpsc` whose fullness makes the publisher wait (lossless).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::metrics::{BrokerMetrics, ChannelStats};
use crate::session::BROKER_SUFFIX;

/// A message as handed to in-process consumers (zero-copy slices of the frame).
#[derive(Debug, Clone)]
pub struct Published {
    /// Publisher ident (authenticated).
    pub ident: Bytes,
    /// Channel.
    pub channel: Bytes,
    /// Payload.
    pub payload: Bytes,
    /// When the broker read it.
    pub received_at: DateTime<Utc>,
}

/// What a connection's writer task receives.
#[derive(Debug)]
pub enum Outgoing {
    /// Encoded frame bytes to write.
    Frame(Bytes),
    /// Flush what came before, then close.
    Close,
}

/// Limits of a TCP subscriber's queue.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Maximum frames queued.
    pub max_frames: usize,
    /// Maximum bytes queued.
    pub max_bytes: usize,
    /// How long a queue may stay full before its subscriber is disconnected.
    pub grace: Duration,
}

/// The outgoing queue of one connection.
///
/// A mutex-protected `VecDeque` plus a `Notify` rather than an mpsc channel: an empty
/// `VecDeque` allocates nothing, while a channel allocates its first block up front, and
/// 10,000 idle sensor connections each own one of these.
pub struct SubQueue {
    items: Mutex<VecDeque<Outgoing>>,
    ready: Notify,
    /// Set when the writer has stopped; later frames are discarded.
    closed: AtomicBool,
    frames: AtomicUsize,
    bytes: AtomicUsize,
    /// Milliseconds since `epoch` when the queue first refused a frame; 0 = not full.
    full_since_ms: AtomicU64,
    epoch: Instant,
    limits: QueueLimits,
    kick: CancellationToken,
    slow: AtomicBool,
}

/// Result of offering a frame to a subscriber.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// Queued.
    Queued,
    /// Queue full: dropped for this subscriber.
    Dropped,
    /// Queue full for longer than the grace period: subscriber disconnected now.
    Disconnected,
}

impl SubQueue {
    /// A queue feeding `tx`; `kick` closes the owning connection.
    pub fn new(limits: QueueLimits, kick: CancellationToken) -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            closed: AtomicBool::new(false),
            frames: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            full_since_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            limits,
            kick,
            slow: Default::default(),
        }
    }

    /// Queues a control frame (INFO, ERROR) regardless of limits.
    pub fn control(&self, frame: Bytes) {
        self.frames.fetch_add(1, Relaxed);
        self.bytes.fetch_add(frame.len(), Relaxed);
        self.push(Outgoing::Frame(frame));
    }

    fn push(&self, item: Outgoing) {
        if self.closed.load(Relaxed) {
            return;
        }
        self.items.lock().push_back(item);
        self.ready.notify_one();
    }

    /// Waits for queued items and moves up to `max` of them into `out` (writer side).
    pub async fn next_batch(&self, out: &mut Vec<Outgoing>, max: usize) {
        loop {
            {
                let mut items = self.items.lock();
                if !items.is_empty() {
                    let n = items.len().min(max);
                    out.extend(items.drain(..n));
                    // Give memory back once a burst has drained.
                    if items.is_empty() && items.capacity() > 1024 {
                        *items = VecDeque::new();
                    }
                    return;
                }
            }
            // A notify_one that raced ahead of us left a permit, so this cannot miss it.
            self.ready.notified().await;
        }
    }

    /// Called by the writer when it stops: nothing more will be written.
    pub fn writer_stopped(&self) {
        self.closed.store(true, Relaxed);
        self.items.lock().clear();
    }

    /// Asks the writer to flush and close.
    pub fn close(&self) {
        self.push(Outgoing::Close);
    }

    /// Offers a data frame within the limits.
    pub fn offer(&self, frame: &Bytes) -> Offer {
        let len = frame.len();
        let frames = self.frames.load(Relaxed);
        let bytes = self.bytes.load(Relaxed);
        if frames >= self.limits.max_frames || bytes + len > self.limits.max_bytes {
            let now = self.epoch.elapsed().as_millis() as u64 + 1;
            let since = match self
                .full_since_ms
                .compare_exchange(0, now, Relaxed, Relaxed)
            {
                Ok(_) => now,
                Err(prev) => prev,
            };
            if now.saturating_sub(since) >= self.limits.grace.as_millis() as u64
                && !self.slow.swap(true, Relaxed)
            {
                self.control(hpfeeds_error("Subscriber too slow"));
                self.close();
                self.kick.cancel();
                return Offer::Disconnected;
            }
            return Offer::Dropped;
        }
        self.frames.fetch_add(1, Relaxed);
        self.bytes.fetch_add(len, Relaxed);
        self.push(Outgoing::Frame(frame.clone()));
        Offer::Queued
    }

    /// More than half full: its writer is behind.
    pub fn congested(&self) -> bool {
        self.frames.load(Relaxed) > self.limits.max_frames / 2
            || self.bytes.load(Relaxed) > self.limits.max_bytes / 2
    }

    /// Called by the writer after writing frames: releases their budget and clears the
    /// "full" mark once the queue is at most half full.
    pub fn written(&self, frames: usize, bytes: usize) {
        let left = self
            .frames
            .fetch_sub(frames, Relaxed)
            .saturating_sub(frames);
        self.bytes.fetch_sub(bytes, Relaxed);
        if left <= self.limits.max_frames / 2 && self.full_since_ms.load(Relaxed) != 0 {
            self.full_since_ms.store(0, Relaxed);
        }
    }
}

fn hpfeeds_error(text: &str) -> Bytes {
    hpfeeds::Frame::error(text).to_bytes().unwrap_or_default()
}

/// Which channels an in-process consumer wants.
#[derive(Debug, Clone)]
pub enum ChannelFilter {
    /// Every channel.
    All,
    /// Only these.
    Only(HashSet<Bytes>),
}

impl ChannelFilter {
    fn matches(&self, channel: &[u8]) -> bool {
        match self {
            ChannelFilter::All => true,
            ChannelFilter::Only(set) => set.contains(channel),
        }
    }
}

#[derive(Clone)]
struct TcpSub {
    conn: u64,
    ident: Bytes,
    queue: Arc<SubQueue>,
}

#[derive(Clone)]
struct Internal {
    filter: ChannelFilter,
    tx: mpsc::Sender<Published>,
}

/// Immutable view used by publishers.
#[derive(Default)]
pub struct Snapshot {
    channels: HashMap<Bytes, Arc<[TcpSub]>>,
    internal: Arc<[Internal]>,
}

#[derive(Default)]
struct Table {
    channels: HashMap<Bytes, Vec<TcpSub>>,
    internal: Vec<Internal>,
}

/// The channel table.
pub struct Router {
    table: Mutex<Table>,
    snapshot: RwLock<Arc<Snapshot>>,
    generation: AtomicU64,
    metrics: Arc<BrokerMetrics>,
}

/// A publisher's cached view of the router plus per-channel stats.
pub struct PublisherCache {
    generation: u64,
    snapshot: Arc<Snapshot>,
    stats: HashMap<Bytes, Arc<ChannelStats>>,
}

impl Router {
    /// An empty router.
    pub fn new(metrics: Arc<BrokerMetrics>) -> Self {
        Self {
            table: Mutex::default(),
            snapshot: RwLock::default(),
            generation: AtomicU64::new(1),
            metrics,
        }
    }

    fn rebuild(&self, table: &Table) {
        let snap = Snapshot {
            channels: table
                .channels
                .iter()
                .filter(|(_, subs)| !subs.is_empty())
                .map(|(k, v)| (k.clone(), Arc::from(v.as_slice())))
                .collect(),
            internal: Arc::from(table.internal.as_slice()),
        };
        *self.snapshot.write() = Arc::new(snap);
        self.generation.fetch_add(1, Relaxed);
    }

    /// A fresh publisher cache.
    pub fn cache(&self) -> PublisherCache {
        PublisherCache {
            generation: self.generation.load(Relaxed),
            snapshot: self.snapshot.read().clone(),
            stats: HashMap::new(),
        }
    }

    /// Registers an in-process consumer. Delivery is lossless: when the returned receiver
    /// is not drained, publishers wait (and stop reading their sockets).
    pub fn subscribe_internal(
        &self,
        filter: ChannelFilter,
        capacity: usize,
    ) -> mpsc::Receiver<Published> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let mut table = self.table.lock();
        table.internal.push(Internal { filter, tx });
        self.rebuild(&table);
        rx
    }

    /// Drops every in-process subscription so their receivers see the end of the stream
    /// (after the last connection has closed, at shutdown).
    pub fn close_internal(&self) {
        let mut table = self.table.lock();
        table.internal.clear();
        self.rebuild(&table);
    }

    /// Subscribes connection `conn` (authenticated as `ident`) to `channel`.
    pub fn subscribe(&self, conn: u64, ident: &Bytes, channel: &Bytes, queue: &Arc<SubQueue>) {
        {
            let mut table = self.table.lock();
            let subs = table.channels.entry(channel.clone()).or_default();
            if subs.iter().any(|s| s.conn == conn) {
                return;
            }
            subs.push(TcpSub {
                conn,
                ident: ident.clone(),
                queue: queue.clone(),
            });
            table.internal.retain(|i| !i.tx.is_closed());
            self.rebuild(&table);
        }
        self.notify(channel, ident, b"join");
    }

    /// Removes `conn`'s subscription to `channel`.
    pub fn unsubscribe(&self, conn: u64, channel: &Bytes) {
        let ident = {
            let mut table = self.table.lock();
            let Some(subs) = table.channels.get_mut(channel) else {
                return;
            };
            let Some(pos) = subs.iter().position(|s| s.conn == conn) else {
                return;
            };
            let removed = subs.swap_remove(pos);
            if subs.is_empty() {
                table.channels.remove(channel);
            }
            self.rebuild(&table);
            removed.ident
        };
        self.notify(channel, &ident, b"leave");
    }

    /// Removes every subscription of `conn` (on disconnect).
    pub fn remove_connection(&self, conn: u64, channels: &[Bytes]) {
        for c in channels {
            self.unsubscribe(conn, c);
        }
    }

    /// Publishes `join`/`leave` on `<channel>..broker`, legacy-broker style.
    fn notify(&self, channel: &Bytes, ident: &Bytes, what: &'static [u8]) {
        if channel.ends_with(BROKER_SUFFIX) {
            return;
        }
        let mut name = channel.to_vec();
        name.extend_from_slice(BROKER_SUFFIX);
        let Ok(frame) = hpfeeds::Frame::publish(ident.clone(), name.clone(), what).to_bytes()
        else {
            return; // Channel name too long for a ..broker suffix; nothing to notify.
        };
        let snap = self.snapshot.read().clone();
        if let Some(subs) = snap.channels.get(name.as_slice()) {
            for s in subs.iter() {
                s.queue.offer(&frame);
            }
        }
    }

    /// Relays one publication. `frame` is the original PUBLISH frame, which is exactly
    /// what subscribers receive. Waits only when an in-process consumer is full. Returns
    /// true when a subscriber's queue is more than half full, so the caller can let the
    /// writers run before it reads more.
    pub async fn publish(
        &self,
        cache: &mut PublisherCache,
        from_conn: u64,
        msg: Published,
        frame: &Bytes,
    ) -> bool {
        let mut congested = false;
        let generation = self.generation.load(Relaxed);
        if generation != cache.generation {
            cache.snapshot = self.snapshot.read().clone();
            cache.generation = generation;
        }
        let stats = match cache.stats.get(&msg.channel) {
            Some(s) => s.clone(),
            None => {
                let s = self.metrics.channel(&msg.channel);
                cache.stats.insert(msg.channel.clone(), s.clone());
                s
            }
        };
        stats.messages_in.fetch_add(1, Relaxed);
        stats.bytes_in.fetch_add(msg.payload.len() as u64, Relaxed);
        if let Some(subs) = cache.snapshot.channels.get(&msg.channel) {
            let (mut out, mut drops) = (0u64, 0u64);
            for s in subs.iter() {
                if s.conn == from_conn {
                    continue; // No echo to the publisher (legacy semantics).
                }
                match s.queue.offer(frame) {
                    Offer::Queued => {
                        out += 1;
                        congested |= s.queue.congested();
                    }
                    Offer::Dropped => drops += 1,
                    Offer::Disconnected => {
                        drops += 1;
                        self.metrics.slow_disconnects.fetch_add(1, Relaxed);
                    }
                }
            }
            stats.messages_out.fetch_add(out, Relaxed);
            if drops > 0 {
                stats.drops.fetch_add(drops, Relaxed);
            }
        }
        let internal = cache.snapshot.internal.clone();
        for i in internal.iter() {
            if !i.filter.matches(&msg.channel) {
                continue;
            }
            match i.tx.try_send(msg.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(m)) => {
                    self.metrics.internal_waits.fetch_add(1, Relaxed);
                    // Lossless: wait for room. A closed consumer is skipped.
                    let _ = i.tx.send(m).await;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => continue,
            }
            self.metrics.internal_delivered.fetch_add(1, Relaxed);
        }
        congested
    }
}
