//! End-to-end ingest benchmark: hpfeeds publishers over TCP → broker → pipeline
//! (normalize + geo enrichment with the real mmdb in `data/geo`) → SQLite store, on top of
//! a database that already holds millions of sessions.
//!
//! ```text
//! cargo bench -p apiary-server --bench ingest_e2e -- [--sessions N] [--seconds S]
//!     [--publishers P] [--batch B] [--preload-batch B] [--span-days D] [--ips N] [--dir DIR]
//! ```
//!
//! 1. Preload: N sessions (default 10,000,000; with `--dir`, only what the database kept
//!    there from an earlier run lacks) generated as cowrie.sessions /
//!    dionaea.connections payloads, normalized and geolocated by the real pipeline code
//!    (`apiary_ingest::pipeline::process`), spread over the last D days (default 30), and
//!    stored through `Store::insert_batch` in big batches (not over TCP).
//! 2. Live: a broker on 127.0.0.1:0, the server's ingest pipeline on its in-process
//!    subscription, and P publisher connections (default 4) publishing realistic payloads
//!    with varied public source addresses for S seconds (default 60). Prints committed
//!    events per second every 5 s and the sustained rate. `--seconds 0` skips this step and
//!    the next: the queries of step 4 on the database `--dir` holds.
//! 3. Reference: a plain rusqlite bulk insert of the same session rows into a bare table
//!    (same columns, no indexes, no raw messages, no roll-ups, same batch size); then the
//!    floor of what is kept per event: each of those rows preceded by its raw message
//!    (two bare tables, one thread).
//! 4. Dashboard queries over the last 24 h at the final size: p50 and max of several runs.
//!
//! Nothing is asserted; only figures are printed.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use apiary_broker::router::ChannelFilter;
use apiary_broker::{Broker, BrokerConfig};
use apiary_geo::GeoDb;
use apiary_ingest::pipeline::{process, IngestMetrics, Pipeline, PipelineConfig};
use apiary_model::{Ident, Normalized, RawEvent, Secret};
use apiary_store::{Dimension, IngestItem, Store};
use apiary_testdata::timing::{time_address_queries, time_dashboard_queries};
use apiary_testdata::{
    address_pool, geo_db, live_payloads, load_average, preload, process_cpu_seconds, reference,
    BoxError, PreloadSpec,
};
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use tokio_util::sync::CancellationToken;

/// The server's allocator (see `src/main.rs`), so the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    sessions: usize,
    seconds: u64,
    publishers: usize,
    batch: usize,
    preload_batch: usize,
    span_days: i64,
    ips: usize,
    dir: Option<PathBuf>,
}

impl Args {
    fn parse() -> Result<Self, BoxError> {
        let mut a = Args {
            sessions: 10_000_000,
            seconds: 60,
            publishers: 4,
            batch: 20_000,
            preload_batch: 50_000,
            span_days: 30,
            ips: 200_000,
            dir: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            // `cargo bench` passes --bench; ignore flags we do not know.
            let known = [
                "--sessions",
                "--seconds",
                "--publishers",
                "--batch",
                "--preload-batch",
                "--span-days",
                "--ips",
                "--dir",
            ];
            if !known.contains(&flag.as_str()) {
                continue;
            }
            let v = it.next().ok_or(format!("{flag} needs a value"))?;
            let n = || -> Result<usize, BoxError> {
                Ok(v.replace('_', "")
                    .parse()
                    .map_err(|e| format!("{flag}: {e}"))?)
            };
            match flag.as_str() {
                "--sessions" => a.sessions = n()?,
                "--seconds" => a.seconds = n()? as u64,
                "--publishers" => a.publishers = n()?.max(1),
                "--batch" => a.batch = n()?.max(1),
                "--preload-batch" => a.preload_batch = n()?.max(1),
                "--span-days" => a.span_days = n()?.max(1) as i64,
                "--ips" => a.ips = n()?.max(1),
                _ => a.dir = Some(PathBuf::from(v)),
            }
        }
        Ok(a)
    }
}

fn rate(n: u64, d: StdDuration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

async fn publisher(
    port: u16,
    ident: String,
    payloads: Arc<Vec<(usize, &'static str, Bytes)>>,
    me: usize,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> Result<(), BoxError> {
    let mut c = hpfeeds::Client::connect(hpfeeds::ClientOptions::new(
        "127.0.0.1",
        port,
        ident.as_str(),
        "bench-secret",
    ))
    .await?;
    let mine: Vec<&(usize, &'static str, Bytes)> = payloads.iter().filter(|p| p.0 == me).collect();
    let mut i = 0usize;
    while !stop.load(Relaxed) {
        for _ in 0..256 {
            let (_, ch, body) = mine[i % mine.len()];
            c.publish(ch, body).await?;
            i += 1;
        }
        sent.fetch_add(256, Relaxed);
    }
    c.flush().await?;
    c.close().await?;
    Ok(())
}

struct Live {
    committed: u64,
    sustained: f64,
    warm_window: f64,
    /// Process CPU (all threads: publishers, broker, pipeline, writer) per committed event
    /// over the same window.
    cpu_us_per_event: f64,
}

async fn live(
    store: Arc<dyn Store>,
    geo: Arc<GeoDb>,
    payloads: Arc<Vec<(usize, &'static str, Bytes)>>,
    a: &Args,
) -> Result<Live, BoxError> {
    let broker = Broker::new(BrokerConfig::default());
    let idents: Vec<Ident> = (0..a.publishers)
        .map(|i| Ident {
            ident: format!("bench-{i:02}"),
            secret: Secret::new("bench-secret"),
            publish: vec!["cowrie.sessions".into(), "dionaea.connections".into()],
            subscribe: Vec::new(),
            owner: String::new(),
        })
        .collect();
    broker.load_idents(&idents);
    let source = broker.subscribe_internal(ChannelFilter::All, 65_536);
    let pipeline = Pipeline::spawn(
        source,
        store.clone(),
        geo,
        PipelineConfig {
            batch_size: a.batch,
            batch_delay: StdDuration::from_millis(200),
        },
    );
    let metrics = pipeline.metrics.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let shutdown = CancellationToken::new();
    let server = {
        let (b, s) = (broker.clone(), shutdown.clone());
        tokio::spawn(async move { b.run(listener, None, s).await })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let pubs: Vec<_> = (0..a.publishers)
        .map(|i| {
            tokio::spawn(publisher(
                port,
                format!("bench-{i:02}"),
                payloads.clone(),
                i,
                stop.clone(),
                sent.clone(),
            ))
        })
        .collect();

    let t0 = Instant::now();
    let warm = StdDuration::from_secs(5.min(a.seconds / 4));
    // The sustained rate runs from the first commit after the warm-up to the last one in
    // the window, timed to the poll (10 ms): whole batches only, so it is not off by up to
    // a batch the way counting at fixed instants is.
    // Process CPU time at those two commits too: CPU per event does not move when other
    // work shares the machine, where the rate does.
    let mut first_commit = None;
    let mut last_commit = (0u64, t0, 0.0);
    let mut last = (0u64, t0);
    let end = t0 + StdDuration::from_secs(a.seconds);
    while Instant::now() < end {
        tokio::time::sleep(StdDuration::from_millis(10).min(end - Instant::now())).await;
        let now = Instant::now();
        let c = metrics.raw_committed.load(Relaxed);
        if c != last_commit.0 {
            last_commit = (c, now, process_cpu_seconds());
            if first_commit.is_none() && now - t0 >= warm {
                first_commit = Some(last_commit);
            }
        }
        if now - last.1 >= StdDuration::from_secs(5) || now >= end {
            let busy = |us: &AtomicU64| us.load(Relaxed) as f64 / 1e6 / (now - t0).as_secs_f64();
            println!(
                "  t={:>5.1}s committed {c:>10}  last interval {:>8.0} events/s  published {:>10}  \
                 (normalize busy {:.0}%, commit busy {:.0}%)",
                (now - t0).as_secs_f64(),
                rate(c - last.0, now - last.1),
                sent.load(Relaxed),
                100.0 * busy(&metrics.normalize_us),
                100.0 * busy(&metrics.commit_us),
            );
            last = (c, now);
        }
    }
    let committed = metrics.raw_committed.load(Relaxed);
    let (wc, wt, wcpu) = first_commit.unwrap_or((0, t0, 0.0));
    let (lc, lt, lcpu) = last_commit;
    let out = Live {
        committed,
        cpu_us_per_event: (lcpu - wcpu) * 1e6 / lc.saturating_sub(wc).max(1) as f64,
        sustained: rate(lc.saturating_sub(wc), lt.saturating_duration_since(wt)),
        warm_window: lt.saturating_duration_since(wt).as_secs_f64(),
    };
    stop.store(true, Relaxed);
    for p in pubs {
        if let Ok(Err(e)) = p.await {
            println!("  publisher error: {e}");
        }
    }
    shutdown.cancel();
    let _ = server.await;
    broker.wait_closed(StdDuration::from_secs(10)).await;
    let drain = Instant::now();
    if tokio::time::timeout(StdDuration::from_secs(120), pipeline.finish())
        .await
        .is_err()
    {
        println!("  pipeline did not drain within 120 s");
    }
    println!(
        "  drained the rest in {:.1} s: {} events committed in total, {} normalize errors, {} commit failures",
        drain.elapsed().as_secs_f64(),
        metrics.raw_committed.load(Relaxed),
        metrics.normalize_errors.load(Relaxed),
        metrics.commit_failures.load(Relaxed)
    );
    Ok(out)
}

/// Plain rusqlite: the same session rows into a bare table, same batch size; with
/// `with_raw`, each preceded by its raw message into a bare table (the floor of what is
/// kept per event).
fn reference(
    path: &std::path::Path,
    items: &[IngestItem],
    total: usize,
    batch: usize,
    with_raw: bool,
) -> rusqlite::Result<StdDuration> {
    let mut conn = reference::open_reference_db(path)?;
    let sessions: Vec<(&IngestItem, &apiary_model::Session)> = items
        .iter()
        .filter_map(|i| Some((i, i.outcome.as_ref().ok()?)))
        .flat_map(|(i, records)| {
            records.iter().filter_map(move |n| match n {
                Normalized::Session(s) => Some((i, &**s)),
                _ => None,
            })
        })
        .collect();
    let t = Instant::now();
    let mut done = 0usize;
    while done < total {
        let n = batch.min(total - done);
        let tx = conn.transaction()?;
        {
            let mut st = reference::prepare_insert(&tx)?;
            let mut raw = reference::prepare_insert_raw(&tx)?;
            for i in done..done + n {
                let (item, s) = sessions[i % sessions.len()];
                let raw_id = if with_raw {
                    let r = &item.raw;
                    let at = r.received_at.timestamp_micros();
                    reference::insert_raw(&mut raw, &r.channel, &r.ident, at, &r.payload)?
                } else {
                    i as i64
                };
                reference::insert_session(&mut st, s, raw_id)?;
            }
        }
        tx.commit()?;
        done += n;
    }
    Ok(t.elapsed())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let a = Args::parse()?;
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    println!(
        "apiary end-to-end ingest bench: preload {} sessions over {} days, then {} s of {} \
         publishers over TCP, pipeline batch {}, {} source addresses; load average {}",
        a.sessions,
        a.span_days,
        a.seconds,
        a.publishers,
        a.batch,
        a.ips,
        load_average()
    );
    let geo = Arc::new(geo_db());
    println!(
        "  geo: {}",
        if geo.is_enabled() {
            "real mmdb"
        } else {
            "none"
        }
    );
    let pool = Arc::new(address_pool(a.ips, 0x5eed_0000_1111_2222));
    let now = Utc::now();
    let db = dir.join("apiary-e2e.db");
    let store: Arc<dyn Store> = apiary_store::open(&format!("sqlite://{}", db.display())).await?;

    // 1. Preload what the database (kept in --dir from an earlier run) lacks.
    let t = Instant::now();
    let stored = store
        .total_sessions(now - Duration::days(3650), now + Duration::hours(2))
        .await? as usize;
    let missing = a.sessions.saturating_sub(stored);
    if stored > 0 {
        println!("  reusing {stored} stored sessions; preloading {missing} more");
    }
    let spec = PreloadSpec {
        sessions: missing,
        span_days: a.span_days,
        batch: a.preload_batch,
        ..PreloadSpec::default()
    };
    preload(&store, &geo, &pool, &spec, now).await?;
    let before = store
        .total_sessions(now - Duration::days(3650), Utc::now() + Duration::hours(2))
        .await?;
    println!(
        "preload: {before} sessions stored in {:.0} s ({:.0}/s); database {:.0} MiB; load average {}",
        t.elapsed().as_secs_f64(),
        rate(missing as u64, t.elapsed()),
        store.database_size_bytes().await? as f64 / 1048576.0,
        load_average()
    );

    // 2-3. Live ingest over TCP and the references (`--seconds 0`: queries only).
    let after = if a.seconds > 0 {
        live_and_references(&store, &geo, &pool, &a, &dir, now, before).await?
    } else {
        before
    };

    // 4. Queries over the last 24 h at this size.
    let until = Utc::now();
    let since = until - Duration::hours(24);
    println!(
        "queries over the last 24 h ({} sessions in range, {after} stored):",
        store.total_sessions(since, until).await?
    );
    let dimensions = [
        Dimension::SourceIp,
        Dimension::DestinationPort,
        Dimension::Honeypot,
        Dimension::Username,
        Dimension::Password,
        Dimension::Country,
        Dimension::Sensor,
    ];
    time_dashboard_queries(&*store, since, until, 7, &dimensions).await;
    time_address_queries(&*store, since, until, 7).await;
    println!("load average {}", load_average());
    store.close().await;
    Ok(())
}

/// Live ingest over TCP for `--seconds`, then the plain-insert reference and the floor on
/// the same rows; returns the sessions stored after the live run.
async fn live_and_references(
    store: &Arc<dyn Store>,
    geo: &Arc<GeoDb>,
    pool: &[Ipv4Addr],
    a: &Args,
    dir: &Path,
    now: DateTime<Utc>,
    before: u64,
) -> Result<u64, BoxError> {
    // 2. Live ingest over TCP.
    let payloads = Arc::new(live_payloads(pool, 200_000, a.publishers));
    println!("live: {} publishers for {} s", a.publishers, a.seconds);
    let result = live(store.clone(), geo.clone(), payloads.clone(), a).await?;
    let after = store
        .total_sessions(now - Duration::days(3650), Utc::now() + Duration::hours(2))
        .await?;
    println!(
        "live: {} events committed during the window; sustained {:.0} events/s over the last {:.0} s; \
         {:.1} µs of process CPU per event; sessions stored {before} -> {after}; load average {}",
        result.committed,
        result.sustained,
        result.warm_window,
        result.cpu_us_per_event,
        load_average()
    );

    // 3. Reference: the same rows, plain rusqlite, bare table.
    let metrics = IngestMetrics::default();
    let items: Vec<IngestItem> = payloads
        .iter()
        .map(|(s, ch, body)| {
            let raw = RawEvent {
                id: None,
                channel: (*ch).into(),
                ident: format!("bench-{s:02}"),
                received_at: Utc::now(),
                payload: body.clone(),
            };
            process(raw, geo, &metrics)
        })
        .collect();
    let n_ref = (result.committed as usize).clamp(100_000, 5_000_000);
    let items = Arc::new(items);
    let mut rates = [0.0; 2];
    for (with_raw, rate_out) in [false, true].into_iter().zip(&mut rates) {
        let ref_db = dir.join("reference.db");
        // A reference left in --dir by an earlier run would make the bare tables exist.
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", ref_db.display()));
        }
        let (batch, items) = (a.batch, items.clone());
        let ref_time =
            tokio::task::spawn_blocking(move || reference(&ref_db, &items, n_ref, batch, with_raw))
                .await??;
        *rate_out = rate(n_ref as u64, ref_time);
    }
    let [ref_rate, floor_rate] = rates;
    println!(
        "reference: plain rusqlite bulk insert of {n_ref} of the same session rows (bare table, \
         batch {}): {ref_rate:.0} rows/s; load average {}",
        a.batch,
        load_average()
    );
    println!(
        "floor: each session row preceded by its raw message (two bare tables, no index, one \
         thread): {floor_rate:.0} events/s"
    );
    println!(
        "ratio end-to-end / reference: {:.2}; end-to-end / floor: {:.2}",
        result.sustained / ref_rate,
        result.sustained / floor_rate
    );

    Ok(after)
}
