//! source → normalize + enrich → sink, joined by bounded channels.
//!
//! - The source is the broker's lossless in-process subscription: when this pipeline is
//!   behind, publishers wait (TCP backpressure) instead of messages being dropped.
//! - The normalize stage runs on a blocking thread (it is CPU work) and builds batches of
//!   up to `batch_size` messages, waiting at most `batch_delay` for a batch to fill.
//! - The sink commits one batch per transaction; the channel between the stages holds
//!   [`STAGED_BATCHES`] batches so normalizing batch N+1 overlaps committing batch N, and
//!   the sink hands [`IN_FLIGHT`] batches to the store at once, which commits them in
//!   order.
//!
//! Loss window on a crash or `kill -9`: messages already read from publishers' sockets
//! but not yet committed — at most the broker→pipeline queue (`queue`) plus
//! `STAGED_BATCHES + IN_FLIGHT` batches. A clean shutdown drains and commits everything.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use apiary_broker::Published;
use apiary_geo::GeoDb;
use apiary_model::event::is_internal;
use apiary_model::{bounded, Normalized, RawEvent};
use apiary_store::{BatchResult, IngestItem, Store};
use futures::stream::{FuturesOrdered, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, warn};

use crate::live::LivePublisher;
use crate::normalize;

/// Batches queued between normalizing and committing.
pub const STAGED_BATCHES: usize = 2;

/// Pipeline settings.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Maximum messages per transaction.
    pub batch_size: usize,
    /// Longest wait for a batch to fill.
    pub batch_delay: Duration,
}

/// Pipeline counters.
#[derive(Debug, Default)]
pub struct IngestMetrics {
    /// Raw messages committed.
    pub raw_committed: AtomicU64,
    /// Sessions committed.
    pub sessions: AtomicU64,
    /// Other records (files, urls, dorks, metadata) committed.
    pub side_records: AtomicU64,
    /// Messages whose normalization failed (raw kept with the error).
    pub normalize_errors: AtomicU64,
    /// Messages on channels without a normalizer (raw kept).
    pub unknown_channel: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
    /// Batches that failed to commit (retried).
    pub commit_failures: AtomicU64,
    /// Microseconds spent normalizing and enriching.
    pub normalize_us: AtomicU64,
    /// Microseconds spent in batch commits (including retries).
    pub commit_us: AtomicU64,
    /// When batch commits began failing, while they fail (cleared by a commit).
    failing_since: std::sync::Mutex<Option<std::time::Instant>>,
}

impl IngestMetrics {
    /// How long batch commits have been failing without one succeeding (none: they work).
    pub fn failing_for(&self) -> Option<Duration> {
        let since = *self.failing_since.lock().unwrap_or_else(|e| e.into_inner());
        since.map(|t| t.elapsed())
    }

    fn commit_failed(&self) {
        self.commit_failures.fetch_add(1, Relaxed);
        let mut since = self.failing_since.lock().unwrap_or_else(|e| e.into_inner());
        since.get_or_insert_with(std::time::Instant::now);
    }

    fn committed(&self) {
        *self.failing_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Prometheus text.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let failing = self.failing_for().unwrap_or_default().as_secs_f64();
        let _ = writeln!(
            out,
            "# HELP apiary_ingest_commit_failing_seconds How long batch commits have been failing (0: they work).\n\
             # TYPE apiary_ingest_commit_failing_seconds gauge\napiary_ingest_commit_failing_seconds {failing:.1}"
        );
        for (name, help, v) in [
            (
                "apiary_ingest_raw_committed_total",
                "Raw messages committed.",
                &self.raw_committed,
            ),
            (
                "apiary_ingest_sessions_total",
                "Sessions committed.",
                &self.sessions,
            ),
            (
                "apiary_ingest_side_records_total",
                "Files, urls, dorks and metadata committed.",
                &self.side_records,
            ),
            (
                "apiary_ingest_normalize_errors_total",
                "Messages whose normalization failed (raw kept).",
                &self.normalize_errors,
            ),
            (
                "apiary_ingest_unknown_channel_total",
                "Messages on channels without a normalizer (raw kept).",
                &self.unknown_channel,
            ),
            (
                "apiary_ingest_batches_total",
                "Batches committed.",
                &self.batches,
            ),
            (
                "apiary_ingest_commit_failures_total",
                "Batch commits that failed and were retried.",
                &self.commit_failures,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Relaxed)
            );
        }
        for (name, help, v) in [
            (
                "apiary_ingest_normalize_seconds_total",
                "Time spent normalizing and enriching messages.",
                &self.normalize_us,
            ),
            (
                "apiary_ingest_commit_seconds_total",
                "Time spent committing batches.",
                &self.commit_us,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {:.6}",
                v.load(Relaxed) as f64 / 1e6
            );
        }
    }
}

/// A running pipeline.
pub struct Pipeline {
    /// Counters.
    pub metrics: Arc<IngestMetrics>,
    normalize: JoinHandle<()>,
    sink: JoinHandle<()>,
}

impl Pipeline {
    /// Starts the stages. The pipeline ends when `source` is closed (every sender dropped)
    /// and everything received has been committed.
    pub fn spawn(
        source: mpsc::Receiver<Published>,
        store: Arc<dyn Store>,
        geo: Arc<GeoDb>,
        config: PipelineConfig,
    ) -> Self {
        Self::spawn_live(source, store, geo, config, None)
    }

    /// [`Pipeline::spawn`], also publishing each committed batch's sessions on `live`.
    pub fn spawn_live(
        source: mpsc::Receiver<Published>,
        store: Arc<dyn Store>,
        geo: Arc<GeoDb>,
        config: PipelineConfig,
        live: Option<LivePublisher>,
    ) -> Self {
        let metrics = Arc::new(IngestMetrics::default());
        let (tx, rx) = mpsc::channel::<Vec<IngestItem>>(STAGED_BATCHES);
        let normalize = {
            let metrics = metrics.clone();
            let handle = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                normalize_stage(handle, source, tx, geo, config, &metrics)
            })
        };
        let sink = tokio::spawn(sink_stage(rx, store, metrics.clone(), live));
        Self {
            metrics,
            normalize,
            sink,
        }
    }

    /// Waits until everything received has been committed.
    pub async fn finish(self) {
        let _ = self.normalize.await;
        let _ = self.sink.await;
    }
}

/// Turns one raw message into a store item: normalized records, enriched.
pub fn process(raw: RawEvent, geo: &GeoDb, metrics: &IngestMetrics) -> IngestItem {
    let mut out = Vec::new();
    let outcome = match normalize::normalize(&raw, &mut out) {
        Ok(()) => {
            for n in &mut out {
                if let Normalized::Session(s) = n {
                    s.channel.clone_from(&raw.channel);
                    s.sensor.clone_from(&raw.ident);
                    if let Some(ip) = s.source_ip {
                        s.internal = is_internal(ip);
                        if s.source_geo.is_none() {
                            s.source_geo = geo.lookup(ip);
                        }
                    }
                    if let (Some(ip), None) = (s.destination_ip, &s.destination_geo) {
                        s.destination_geo = geo.lookup(ip);
                    }
                }
            }
            Ok(out)
        }
        Err(e) => {
            if matches!(e, normalize::NormalizeError::UnknownChannel(_)) {
                metrics.unknown_channel.fetch_add(1, Relaxed);
            } else {
                metrics.normalize_errors.fetch_add(1, Relaxed);
            }
            Err(bounded::truncate(e.to_string(), bounded::MEDIUM))
        }
    };
    IngestItem { raw, outcome }
}

fn to_raw(p: Published) -> RawEvent {
    RawEvent {
        id: None,
        channel: bounded::lossy(&p.channel, 255),
        ident: bounded::lossy(&p.ident, 255),
        received_at: p.received_at,
        payload: p.payload,
    }
}

fn normalize_stage(
    rt: tokio::runtime::Handle,
    mut source: mpsc::Receiver<Published>,
    tx: mpsc::Sender<Vec<IngestItem>>,
    geo: Arc<GeoDb>,
    config: PipelineConfig,
    metrics: &IngestMetrics,
) {
    let mut buf: Vec<Published> = Vec::with_capacity(config.batch_size);
    loop {
        buf.clear();
        // Block for the first message, then fill the batch until it is full or the delay
        // has passed.
        let open = rt.block_on(async {
            if source.recv_many(&mut buf, config.batch_size).await == 0 {
                return false;
            }
            let deadline = tokio::time::Instant::now() + config.batch_delay;
            while buf.len() < config.batch_size {
                let want = config.batch_size - buf.len();
                match tokio::time::timeout_at(deadline, source.recv_many(&mut buf, want)).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            true
        });
        if !open && buf.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let batch: Vec<IngestItem> = buf
            .drain(..)
            .map(|p| process(to_raw(p), &geo, metrics))
            .collect();
        metrics
            .normalize_us
            .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
        if rt.block_on(tx.send(batch)).is_err() {
            error!("ingest sink stopped; normalize stage exiting");
            return;
        }
        if !open {
            return;
        }
    }
}

/// Batches the sink hands to the store before the oldest has committed: the store
/// prepares one (JSON, roll-up sums) while the other holds the writer, and still commits
/// them in order.
pub const IN_FLIGHT: usize = 2;

async fn sink_stage(
    mut rx: mpsc::Receiver<Vec<IngestItem>>,
    store: Arc<dyn Store>,
    metrics: Arc<IngestMetrics>,
    mut live: Option<LivePublisher>,
) {
    let mut pending = FuturesOrdered::new();
    let mut open = true;
    loop {
        // Results are handled in hand-over order; a new batch is taken while fewer than
        // IN_FLIGHT are pending. Pushing one and polling `pending` next starts it (its
        // store call takes its commit ticket) before any later batch.
        let done = if open && pending.len() < IN_FLIGHT {
            tokio::select! {
                biased;
                done = pending.next(), if !pending.is_empty() => done,
                batch = rx.recv() => {
                    match batch {
                        Some(batch) => pending.push_back(commit(store.clone(), batch, metrics.clone())),
                        None => open = false,
                    }
                    continue;
                }
            }
        } else {
            pending.next().await
        };
        let Some((batch, committed)) = done else {
            break;
        };
        let n = batch.len() as u64;
        let (mut sessions, mut side) = (0u64, 0u64);
        for item in &batch {
            if let Ok(records) = &item.outcome {
                for r in records {
                    match r {
                        Normalized::Session(_) => sessions += 1,
                        _ => side += 1,
                    }
                }
            }
        }
        record_heartbeats(&batch, &*store).await;
        // Only committed sessions go live: they have ids and survive a crash.
        if let Some(live) = &mut live {
            live.publish(&batch, &committed, &*store).await;
        }
        metrics.raw_committed.fetch_add(n, Relaxed);
        metrics.sessions.fetch_add(sessions, Relaxed);
        metrics.side_records.fetch_add(side, Relaxed);
        metrics.batches.fetch_add(1, Relaxed);
    }
}

/// Commits one batch, retrying forever with backoff: a full disk or a restarting
/// database must slow ingest down (backpressure reaches the publishers), not lose the
/// batch.
async fn commit(
    store: Arc<dyn Store>,
    mut batch: Vec<IngestItem>,
    metrics: Arc<IngestMetrics>,
) -> (Vec<IngestItem>, BatchResult) {
    let mut delay = Duration::from_millis(100);
    let started = std::time::Instant::now();
    let mut failures = 0u64;
    let committed = loop {
        // The store hands the batch back either way: no copy kept for the retry.
        let (back, result) = store.insert_batch_owned(std::mem::take(&mut batch)).await;
        batch = back;
        match result {
            Ok(r) => {
                metrics.committed();
                break r;
            }
            Err(e) => {
                metrics.commit_failed();
                failures += 1;
                // The first failure, then about once a minute (retries are 5 s apart).
                if failures == 1 || failures.is_multiple_of(12) {
                    warn!(error = %e, messages = batch.len(), failures, "batch commit failed; retrying until it succeeds (publishers are held back meanwhile)");
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    };
    if failures > 0 {
        tracing::info!(
            messages = batch.len(),
            failures,
            seconds = started.elapsed().as_secs(),
            "batch committed after failed attempts"
        );
    }
    metrics
        .commit_us
        .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
    (batch, committed)
}

/// Sensor heartbeats (`apiary.heartbeat`) update the sensor's status; the sensor's hpfeeds
/// ident is its uuid. A heartbeat from an ident with no sensor record is only kept raw.
async fn record_heartbeats(batch: &[IngestItem], store: &dyn Store) {
    for item in batch {
        if item.raw.channel != "apiary.heartbeat" || item.outcome.is_err() {
            continue;
        }
        let Ok(hb) = normalize::parse_heartbeat(&item.raw) else {
            continue;
        };
        let info = serde_json::json!({
            "sensor": hb.sensor,
            "hostname": hb.hostname,
            "version": hb.version,
            "services": hb.services,
            "uptime_s": hb.uptime_s,
        });
        if let Err(e) = store
            .record_heartbeat(&item.raw.ident, item.raw.received_at, info)
            .await
        {
            warn!(error = %e, "cannot record sensor heartbeat");
        }
    }
}
