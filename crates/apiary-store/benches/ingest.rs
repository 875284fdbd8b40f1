//! Ingest and dashboard-query benchmark for the SQLite store.
//!
//! ```text
//! cargo bench -p apiary-store --bench ingest -- [SESSIONS] [BATCH]
//! APIARY_BENCH_SESSIONS=200000 APIARY_BENCH_BATCH=5000 cargo bench -p apiary-store --bench ingest
//! APIARY_BENCH_POSTGRES=postgres://postgres@127.0.0.1:5432/test cargo bench -p apiary-store --bench ingest
//! ```
//!
//! With `APIARY_BENCH_POSTGRES` the store measured in 1. and 3. is PostgreSQL, in a fresh
//! schema (`apiary_bench_<pid>`, dropped afterwards); the reference stays plain SQLite.
//!
//! 1. Inserts SESSIONS sessions (default 1,000,000), one raw message each, in batches of
//!    BATCH (default 5,000) through `Arc<dyn Store>` into a temp-file database with every
//!    index and roll-up.
//! 2. Inserts the same rows with plain rusqlite into a bare table with the same columns
//!    (no indexes, no raw, no roll-ups, same pragmas, same batch transactions): the
//!    reference for what SQLite itself can do on this machine.
//! 3. Times dashboard queries over the last 24 hours at that size.
//!
//! Only timings are printed; nothing is asserted.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use apiary_model::{Credential, GeoInfo, IdsAlert, Normalized, RawEvent, Session, SessionDetails};
use apiary_store::{
    Dimension, IngestItem, Page, SessionFilter, SourceGrouping, Store, TopSourcesQuery,
};
use apiary_testdata::timing::{time_address_queries, time_dashboard_queries, time_query};
use apiary_testdata::{reference, Rng};
use bytes::Bytes;
use chrono::{DateTime, Duration, DurationRound, Utc};

/// Hours the generated sessions span, ending now.
const SPAN_HOURS: i64 = 72;

const HONEYPOTS: &[&str] = &[
    "cowrie", "dionaea", "glastopf", "snort", "conpot", "wordpot",
];
const PROTOCOLS: &[&str] = &["ssh", "telnet", "http", "microsoft-ds", "mysql", "modbus"];
const PORTS: &[u16] = &[
    22, 23, 80, 445, 3306, 502, 8080, 2222, 1433, 3389, 5060, 21, 25, 443, 5900, 6379, 9200, 8443,
    135, 139,
];
const COUNTRIES: &[&str] = &[
    "CN", "US", "RU", "BR", "IN", "VN", "DE", "NL", "KR", "ID", "FR", "GB", "TW", "UA", "IR", "TR",
    "SG", "JP", "HK", "AR",
];

fn session(rng: &mut Rng, ts: DateTime<Utc>) -> Session {
    let hp = HONEYPOTS[rng.skewed(HONEYPOTS.len() as u64) as usize];
    let ip = Ipv4Addr::from(0x0b00_0000u32 + (rng.skewed(50_000) as u32) * 7919);
    let country = rng.skewed(COUNTRIES.len() as u64) as usize;
    let mut details = SessionDetails::default();
    if hp == "cowrie" {
        for _ in 0..1 + rng.below(3) {
            details.credentials.push(Credential {
                username: format!("user{}", rng.skewed(200)),
                password: format!("pass{}", rng.skewed(1000)),
            });
        }
        details.ssh_version = Some("SSH-2.0-libssh2_1.9.0".into());
    }
    if hp == "snort" {
        details.ids = Some(IdsAlert {
            signature: format!(
                "ET SCAN Suspicious inbound traffic rule {}",
                rng.skewed(100)
            ),
            signature_id: Some(2_000_000 + rng.below(1000)),
            priority: Some(2),
            ..IdsAlert::default()
        });
    }
    Session {
        id: None,
        timestamp: ts,
        source_ip: Some(IpAddr::V4(ip)),
        source_port: Some(1024 + rng.below(60_000) as u16),
        destination_ip: Some(
            "192.0.2.10"
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ),
        destination_port: Some(PORTS[rng.skewed(PORTS.len() as u64) as usize]),
        protocol: Some(PROTOCOLS[rng.below(PROTOCOLS.len() as u64) as usize].into()),
        honeypot: hp.into(),
        channel: format!("{hp}.events"),
        sensor: format!("sensor-{:02}", rng.below(20)),
        internal: false,
        source_geo: Some(GeoInfo {
            country_code: Some(COUNTRIES[country].into()),
            city: None,
            latitude: Some(10.0 + country as f64),
            longitude: Some(20.0 + country as f64),
            asn: Some(4000 + country as u32 * 13),
            as_org: Some(format!("AS org {country}")),
            country: None,
        }),
        destination_geo: None,
        raw_id: None,
        details,
    }
}

/// Batch `b` of the run: timestamps ascend through the span like live traffic.
fn batch(
    rng: &mut Rng,
    start: DateTime<Utc>,
    step_us: i64,
    first: usize,
    n: usize,
) -> Vec<IngestItem> {
    (first..first + n)
        .map(|i| {
            let ts = start + Duration::microseconds(step_us * i as i64);
            let s = session(rng, ts);
            let payload = format!(
                "{{\"peerIP\":\"{}\",\"peerPort\":{},\"hostPort\":{},\"session\":\"{:016x}\"}}",
                s.source_ip.map(|i| i.to_string()).unwrap_or_default(),
                s.source_port.unwrap_or(0),
                s.destination_port.unwrap_or(0),
                rng.next_u64()
            );
            IngestItem {
                raw: RawEvent {
                    id: None,
                    channel: s.channel.clone(),
                    ident: s.sensor.clone(),
                    received_at: ts,
                    payload: Bytes::from(payload),
                },
                outcome: Ok(vec![Normalized::Session(Box::new(s))]),
            }
        })
        .collect()
}

fn arg(pos: usize, env: &str, default: usize) -> usize {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .nth(pos)
        .or_else(|| std::env::var(env).ok())
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// CPU time (user + system) this process has used so far, in seconds: wall-clock rates are
/// noisy on a shared machine, CPU per session much less so.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14th and 15th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

fn rate(n: usize, d: StdDuration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// Plain rusqlite: same rows, same columns, no indexes, no raw table, no roll-ups.
fn reference(
    path: &std::path::Path,
    total: usize,
    batch_size: usize,
    start: DateTime<Utc>,
    step_us: i64,
) -> rusqlite::Result<StdDuration> {
    let mut conn = reference::open_reference_db(path)?;
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut spent = StdDuration::ZERO;
    let mut done = 0;
    while done < total {
        let n = batch_size.min(total - done);
        let items = batch(&mut rng, start, step_us, done, n);
        let t = Instant::now();
        let tx = conn.transaction()?;
        {
            let mut st = reference::prepare_insert(&tx)?;
            for (i, item) in items.iter().enumerate() {
                let Ok(records) = &item.outcome else { continue };
                for r in records {
                    let Normalized::Session(s) = r else { continue };
                    reference::insert_session(&mut st, s, (done + i) as i64)?;
                }
            }
        }
        tx.commit()?;
        spent += t.elapsed();
        done += n;
    }
    Ok(spent)
}

/// Runs SQL with the `psql` client (schema set-up only; the store has its own driver).
fn psql(url: &str, sql: &str) -> Result<(), Box<dyn std::error::Error>> {
    let out = std::process::Command::new("psql")
        .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()?;
    if !out.status.success() {
        return Err(format!("psql: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let total = arg(0, "APIARY_BENCH_SESSIONS", 1_000_000);
    let batch_size = arg(1, "APIARY_BENCH_BATCH", 5_000).max(1);
    let dir = tempfile::tempdir()?;
    let now = Utc::now().duration_trunc(Duration::hours(1))? + Duration::hours(1);
    let start = now - Duration::hours(SPAN_HOURS);
    let step_us = (SPAN_HOURS * 3_600_000_000) / total.max(1) as i64;
    println!("apiary-store ingest bench: {total} sessions in batches of {batch_size}, spanning {SPAN_HOURS} h");

    // 1. Through the trait, everything on.
    let db = dir.path().join("apiary.db");
    let pg = std::env::var("APIARY_BENCH_POSTGRES").ok();
    let schema = format!("apiary_bench_{}", std::process::id());
    let url = match &pg {
        Some(base) => {
            psql(
                base,
                &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
            )?;
            let sep = if base.contains('?') { '&' } else { '?' };
            println!("store under test: PostgreSQL, schema {schema}");
            format!("{base}{sep}options=-c%20search_path%3D{schema}")
        }
        None => format!("sqlite://{}", db.display()),
    };
    let store: Arc<dyn Store> = apiary_store::open(&url).await?;
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut spent = StdDuration::ZERO;
    let mut cpu = 0.0;
    let mut done = 0;
    while done < total {
        let n = batch_size.min(total - done);
        let items = batch(&mut rng, start, step_us, done, n);
        let (t, c) = (Instant::now(), cpu_seconds());
        store.insert_batch(items).await?;
        spent += t.elapsed();
        cpu += cpu_seconds() - c;
        done += n;
    }
    let store_rate = rate(total, spent);
    println!(
        "store (raw + session + credentials + 10 session indexes + roll-ups): {:>10.0} sessions/s  ({:.2} s, {:.1} µs CPU/session)",
        store_rate,
        spent.as_secs_f64(),
        cpu * 1e6 / total as f64
    );
    println!(
        "  database size {:.1} MiB",
        store.database_size_bytes().await? as f64 / (1024.0 * 1024.0)
    );

    // 2. Plain rusqlite reference.
    let ref_db = dir.path().join("reference.db");
    let ref_spent =
        tokio::task::spawn_blocking(move || reference(&ref_db, total, batch_size, start, step_us))
            .await??;
    let ref_rate = rate(total, ref_spent);
    println!(
        "reference (plain rusqlite, bare sessions table, no indexes):       {:>10.0} rows/s      ({:.2} s)",
        ref_rate,
        ref_spent.as_secs_f64()
    );
    println!("ratio store / reference: {:.2}", store_rate / ref_rate);

    // 3. Dashboard queries over the last 24 h.
    let since = now - Duration::hours(24);
    println!(
        "queries over the last 24 h ({} sessions in range):",
        store.total_sessions(since, now).await?
    );
    let dimensions = [
        Dimension::SourceIp,
        Dimension::DestinationPort,
        Dimension::Country,
        Dimension::Honeypot,
        Dimension::Sensor,
        Dimension::Username,
        Dimension::Password,
        Dimension::Signature,
    ];
    time_dashboard_queries(&*store, since, now, 5, &dimensions).await;
    time_address_queries(&*store, since, now, 5).await;
    time_query("sessions credential=user0 (50)", 5, || {
        store.sessions(
            SessionFilter {
                credential: Some("user0".into()),
                ..Default::default()
            },
            Page::first(50),
        )
    })
    .await;
    time_query("sessions signature~'rule 42' (50)", 5, || {
        store.sessions(
            SessionFilter {
                signature: Some("rule 42".into()),
                ..Default::default()
            },
            Page::first(50),
        )
    })
    .await;
    time_query("sessions text='user0' (50)", 5, || {
        store.sessions(
            SessionFilter {
                text: Some("user0".into()),
                ..Default::default()
            },
            Page::first(50),
        )
    })
    .await;
    time_query("sessions text='nothing' (50, 24 h)", 5, || {
        store.sessions(
            SessionFilter {
                since: Some(since),
                text: Some("nothing".into()),
                ..Default::default()
            },
            Page::first(50),
        )
    })
    .await;
    for (label, hours, grouping) in [
        (
            "top_sources 100 by honeypot (4 h)",
            4,
            SourceGrouping::Honeypot,
        ),
        (
            "top_sources 100 by service (4 h)",
            4,
            SourceGrouping::Service,
        ),
        (
            "top_sources 100 by honeypot (24 h)",
            24,
            SourceGrouping::Honeypot,
        ),
    ] {
        time_query(label, 5, || {
            store.top_sources(TopSourcesQuery {
                filter: SessionFilter {
                    since: Some(Utc::now() - Duration::hours(hours)),
                    ..Default::default()
                },
                grouping,
                exclude_protocols: vec!["pcap".into()],
                limit: 100,
            })
        })
        .await;
    }
    time_query("top_sources 100 honeypot=cowrie (4 h)", 5, || {
        store.top_sources(TopSourcesQuery {
            filter: SessionFilter {
                since: Some(Utc::now() - Duration::hours(4)),
                honeypot: Some("cowrie".into()),
                ..Default::default()
            },
            limit: 100,
            ..Default::default()
        })
    })
    .await;
    time_query("table_counts", 3, || store.table_counts()).await;
    store.close().await;
    if let Some(base) = &pg {
        drop(store);
        psql(base, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))?;
    }
    Ok(())
}
