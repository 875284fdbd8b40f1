//! Load generator: N publisher threads and M subscriber threads on raw blocking sockets.
//!
//! Publishers write pre-built PUBLISH frames in ~64 KiB batches; the first 8 payload bytes
//! of every frame carry the send time (nanoseconds since a shared `Instant`, taken just
//! before the batch is handed to the kernel). Subscribers count complete frames from their
//! length headers and record `receive time − stamp` of every frame in a histogram.
//!
//! Subscribers are known to be subscribed before anything is measured: a probe connection
//! publishes marker frames until every subscriber has seen one.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::hist::Hist;
use crate::wire::{self, Batch, Scanned, CHANNEL, MARKER};

/// Shape of one workload.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Workload {
    /// Short name used by `--workload`.
    pub key: &'static str,
    /// Human label.
    pub label: &'static str,
    pub publishers: usize,
    pub subscribers: usize,
    pub payload: usize,
    /// Default messages sent (all publishers together) against our broker.
    pub ours_messages: u64,
    /// Default messages sent against the Python broker.
    pub python_messages: u64,
}

/// The workloads of the issue.
pub const WORKLOADS: [Workload; 6] = [
    Workload {
        key: "1to1",
        label: "1 pub -> 1 sub",
        publishers: 1,
        subscribers: 1,
        payload: 100,
        ours_messages: 2_000_000,
        python_messages: 200_000,
    },
    Workload {
        key: "1to1",
        label: "1 pub -> 1 sub",
        publishers: 1,
        subscribers: 1,
        payload: 4096,
        ours_messages: 500_000,
        python_messages: 100_000,
    },
    Workload {
        key: "1to10",
        label: "1 pub -> 10 subs",
        publishers: 1,
        subscribers: 10,
        payload: 100,
        ours_messages: 600_000,
        python_messages: 30_000,
    },
    Workload {
        key: "1to10",
        label: "1 pub -> 10 subs",
        publishers: 1,
        subscribers: 10,
        payload: 4096,
        ours_messages: 100_000,
        python_messages: 10_000,
    },
    Workload {
        key: "50to1",
        label: "50 pubs -> 1 sub",
        publishers: 50,
        subscribers: 1,
        payload: 100,
        ours_messages: 2_000_000,
        python_messages: 200_000,
    },
    Workload {
        key: "50to1",
        label: "50 pubs -> 1 sub",
        publishers: 50,
        subscribers: 1,
        payload: 4096,
        ours_messages: 500_000,
        python_messages: 60_000,
    },
];

/// Ident names and secrets used by the workloads (both brokers load the same table).
pub fn publisher_ident(i: usize) -> String {
    format!("pub{i}")
}
pub fn subscriber_ident(i: usize) -> String {
    format!("sub{i}")
}
pub const PROBE_IDENT: &str = "probe";
pub fn secret_of(ident: &str) -> String {
    format!("secret-{ident}")
}

/// One measured run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub workload: Workload,
    /// Total messages sent by all publishers together.
    pub messages: u64,
    /// Total publish rate in msg/s; None = as fast as possible.
    pub rate: Option<f64>,
    /// Hard limit for the whole run.
    pub timeout: Duration,
    /// Give up this long after the publishers finished if nothing more arrives.
    pub idle_grace: Duration,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub rate: Option<f64>,
    pub sent: u64,
    pub expected: u64,
    pub received: u64,
    pub lost: i64,
    /// Seconds from publish start until the last publisher finished writing.
    pub send_secs: f64,
    /// Seconds from publish start until the last message arrived.
    pub recv_secs: f64,
    /// Messages received by all subscribers per second.
    pub msgs_per_sec: f64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub max_us: Option<f64>,
    pub timed_out: bool,
    /// Errors seen by clients (broker ERROR frames, disconnects).
    pub errors: Vec<String>,
    /// Copies the broker itself reports having dropped (ours only).
    pub broker_drops: Option<i64>,
    /// Subscribers the broker disconnected as too slow (ours only).
    pub broker_slow_disconnects: Option<i64>,
}

impl RunResult {
    pub fn lossless(&self) -> bool {
        self.lost == 0 && self.errors.is_empty() && !self.timed_out
    }
}

struct SubResult {
    count: u64,
    last: Option<Instant>,
    hist: Hist,
    error: Option<String>,
    timed_out: bool,
}

struct PubResult {
    sent: u64,
    end: Instant,
    error: Option<String>,
    stream: TcpStream,
}

struct SubCtx {
    expected: u64,
    epoch: Instant,
    ready: Arc<AtomicUsize>,
    pubs_done: Arc<AtomicBool>,
    deadline: Instant,
    idle_grace: Duration,
}

fn now_ns(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64
}

fn subscriber_loop(mut s: TcpStream, cx: SubCtx) -> SubResult {
    let mut r = SubResult {
        count: 0,
        last: None,
        hist: Hist::default(),
        error: None,
        timed_out: false,
    };
    if let Err(e) = s.set_read_timeout(Some(Duration::from_millis(100))) {
        r.error = Some(e.to_string());
        return r;
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut filled = 0;
    let mut seen_marker = false;
    let mut last_progress = Instant::now();
    while r.count < cx.expected {
        let now = Instant::now();
        if now >= cx.deadline {
            r.timed_out = true;
            break;
        }
        if cx.pubs_done.load(Ordering::Acquire) && now - last_progress > cx.idle_grace {
            break;
        }
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match s.read(&mut buf[filled..]) {
            Ok(0) => {
                r.error = Some("broker closed the subscriber connection".into());
                break;
            }
            Ok(n) => {
                filled += n;
                let t = now_ns(cx.epoch);
                let before = r.count;
                let mut err = None;
                let used = wire::scan(&buf[..filled], |f| match f {
                    Scanned::Publish(Some(MARKER)) => {
                        if !seen_marker {
                            seen_marker = true;
                            cx.ready.fetch_add(1, Ordering::AcqRel);
                        }
                    }
                    Scanned::Publish(Some(stamp)) => {
                        r.count += 1;
                        r.hist.record(t.saturating_sub(stamp));
                    }
                    Scanned::Publish(None) => r.count += 1,
                    Scanned::Error(text) => {
                        err = Some(format!("broker error: {}", String::from_utf8_lossy(text)))
                    }
                    Scanned::Other => {}
                });
                match used {
                    Ok(used) => {
                        buf.copy_within(used..filled, 0);
                        filled -= used;
                    }
                    Err(e) => err = Some(e.to_string()),
                }
                if r.count > before {
                    last_progress = Instant::now();
                    r.last = Some(last_progress);
                }
                if err.is_some() {
                    r.error = err;
                    break;
                }
            }
            Err(e) if wire::is_retryable(&e) => {}
            Err(e) => {
                r.error = Some(format!("subscriber read: {e}"));
                break;
            }
        }
    }
    r
}

fn publisher_loop(
    mut s: TcpStream,
    mut batch: Batch,
    count: u64,
    rate: Option<f64>,
    epoch: Instant,
    start: &Barrier,
    deadline: Instant,
) -> PubResult {
    let mut sent = 0u64;
    let mut error = None;
    start.wait();
    let t0 = Instant::now();
    while sent < count {
        let n = (count - sent).min(batch.frames as u64) as usize;
        let data = batch.stamped(n, now_ns(epoch));
        match wire::write_all_until(&mut s, data, deadline) {
            Ok(true) => sent += n as u64,
            Ok(false) => {
                error = Some("publisher timed out (broker stopped reading)".into());
                break;
            }
            Err(e) => {
                error = Some(format!("publisher write: {e}"));
                break;
            }
        }
        if let Some(rate) = rate {
            let due = t0 + Duration::from_secs_f64(sent as f64 / rate);
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
        }
    }
    PubResult {
        sent,
        end: Instant::now(),
        error,
        stream: s,
    }
}

/// Runs one workload against the broker at `addr`.
pub fn run(addr: SocketAddr, spec: &RunSpec) -> Result<RunResult> {
    let wl = spec.workload;
    let epoch = Instant::now();
    let deadline = epoch + spec.timeout;
    let ready = Arc::new(AtomicUsize::new(0));
    let pubs_done = Arc::new(AtomicBool::new(false));
    let per_pub = |i: usize| {
        spec.messages / wl.publishers as u64
            + u64::from((i as u64) < spec.messages % wl.publishers as u64)
    };

    // Subscribers: connect, authenticate and subscribe from here so errors surface early.
    let mut subs = Vec::with_capacity(wl.subscribers);
    for i in 0..wl.subscribers {
        let ident = subscriber_ident(i);
        let mut s = wire::connect_auth(addr, &ident, &secret_of(&ident))
            .with_context(|| format!("subscriber {ident}"))?;
        wire::subscribe(&mut s, &ident, CHANNEL)?;
        let cx = SubCtx {
            expected: spec.messages,
            epoch,
            ready: ready.clone(),
            pubs_done: pubs_done.clone(),
            deadline,
            idle_grace: spec.idle_grace,
        };
        subs.push(
            thread::Builder::new()
                .name(format!("sub{i}"))
                .spawn(move || subscriber_loop(s, cx))?,
        );
    }

    // Wait until every subscriber sees a marker: then all subscriptions are in place.
    {
        let mut probe = wire::connect_auth(addr, PROBE_IDENT, &secret_of(PROBE_IDENT))?;
        let mut marker = Batch::new(PROBE_IDENT, CHANNEL, 16, 0)?;
        let frame = marker.stamped(1, MARKER).to_vec();
        let until = Instant::now() + Duration::from_secs(15);
        while ready.load(Ordering::Acquire) < wl.subscribers {
            if Instant::now() > until {
                pubs_done.store(true, Ordering::Release);
                bail!(
                    "only {} of {} subscribers became ready",
                    ready.load(Ordering::Acquire),
                    wl.subscribers
                );
            }
            std::io::Write::write_all(&mut probe, &frame).context("probe publish")?;
            thread::sleep(Duration::from_millis(20));
        }
    }

    // Publishers: authenticate all, then start together.
    let mut conns = Vec::with_capacity(wl.publishers);
    for i in 0..wl.publishers {
        let ident = publisher_ident(i);
        let connected = wire::connect_auth(addr, &ident, &secret_of(&ident))
            .with_context(|| format!("publisher {ident}"))
            .and_then(|s| {
                s.set_write_timeout(Some(Duration::from_millis(200)))?;
                Ok((s, Batch::new(&ident, CHANNEL, wl.payload, 64 * 1024)?))
            });
        match connected {
            Ok(c) => conns.push(c),
            Err(e) => {
                pubs_done.store(true, Ordering::Release);
                return Err(e);
            }
        }
    }
    let barrier = Arc::new(Barrier::new(wl.publishers + 1));
    let mut pubs = Vec::with_capacity(wl.publishers);
    for (i, (s, batch)) in conns.into_iter().enumerate() {
        let count = per_pub(i);
        let rate = spec.rate.map(|r| r / wl.publishers as f64);
        let b = barrier.clone();
        pubs.push(
            thread::Builder::new()
                .name(format!("pub{i}"))
                .spawn(move || publisher_loop(s, batch, count, rate, epoch, &b, deadline))?,
        );
    }
    // Let the broker process the AUTHs before the clock starts.
    thread::sleep(Duration::from_millis(100));
    barrier.wait();
    let t_start = Instant::now();

    let mut sent = 0;
    let mut send_end = t_start;
    let mut errors = Vec::new();
    let mut keep_open = Vec::new();
    for p in pubs {
        let r = p
            .join()
            .map_err(|_| anyhow::anyhow!("publisher thread panicked"))?;
        sent += r.sent;
        send_end = send_end.max(r.end);
        errors.extend(r.error);
        keep_open.push(r.stream);
    }
    pubs_done.store(true, Ordering::Release);

    let mut received = 0;
    let mut last = t_start;
    let mut hist = Hist::default();
    let mut timed_out = false;
    for s in subs {
        let r = s
            .join()
            .map_err(|_| anyhow::anyhow!("subscriber thread panicked"))?;
        received += r.count;
        if let Some(l) = r.last {
            last = last.max(l);
        }
        hist.merge(&r.hist);
        timed_out |= r.timed_out;
        errors.extend(r.error);
    }
    drop(keep_open);

    let expected = sent * wl.subscribers as u64;
    let recv_secs = (last - t_start).as_secs_f64();
    let us = |q: f64| hist.quantile(q).map(|v| v as f64 / 1000.0);
    errors.dedup();
    Ok(RunResult {
        rate: spec.rate,
        sent,
        expected,
        received,
        lost: expected as i64 - received as i64,
        send_secs: (send_end - t_start).as_secs_f64(),
        recv_secs,
        msgs_per_sec: if recv_secs > 0.0 {
            received as f64 / recv_secs
        } else {
            0.0
        },
        p50_us: us(0.5),
        p99_us: us(0.99),
        max_us: us(1.0),
        timed_out,
        errors,
        broker_drops: None,
        broker_slow_disconnects: None,
    })
}
