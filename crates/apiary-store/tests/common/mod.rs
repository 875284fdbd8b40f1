//! Fixtures shared by the contract suite: deterministic session generators and helpers.
#![allow(dead_code)]

use std::net::IpAddr;
use std::sync::Arc;

use apiary_model::{Credential, GeoInfo, IdsAlert, Normalized, RawEvent, Session, SessionDetails};
use apiary_store::{IngestItem, Page, SessionFilter, Store};
pub use apiary_testdata::pg::{scoped_url, PgSchema};
use bytes::Bytes;
use chrono::{DateTime, Duration, TimeZone, Utc};

/// The PostgreSQL store under test in a fresh schema of its own, or `None` (test skipped)
/// when `APIARY_TEST_DATABASE_URL` is unset. Panics (the test fails) when the variable is
/// set but the database cannot be reached. The schema is dropped when the returned guard
/// is, also when the test panics, so tests run in parallel and leave nothing behind.
pub async fn postgres() -> Option<(Arc<dyn Store>, PgSchema)> {
    let url = std::env::var("APIARY_TEST_DATABASE_URL").ok()?;
    let schema = PgSchema::create(&url).await;
    let store = apiary_store::open(&scoped_url(&url, schema.name()))
        .await
        .expect("APIARY_TEST_DATABASE_URL is set but the store does not open");
    Some((store, schema))
}

/// An hour-aligned instant all generated data is relative to.
pub fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap()
}

/// A fully geolocated source: Ashburn, US, in AS14618 (AMAZON-AES).
pub fn ashburn_geo() -> GeoInfo {
    GeoInfo {
        country_code: Some("US".into()),
        country: Some("United States".into()),
        city: Some("Ashburn".into()),
        latitude: Some(39.0437),
        longitude: Some(-77.4875),
        asn: Some(14618),
        as_org: Some("AMAZON-AES".into()),
    }
}

/// Small deterministic generator (xorshift); tests need no `rand`.
pub use apiary_testdata::Rng;

pub const HONEYPOTS: &[&str] = &["cowrie", "dionaea", "glastopf", "snort"];
pub const SENSORS: &[&str] = &["sensor-a", "sensor-b", "sensor-c"];
pub const SOURCES: &[&str] = &[
    "198.51.100.7",
    "198.51.100.200",
    "198.51.101.3",
    "203.0.113.9",
    "10.1.2.3",
    "2001:db8::1",
    "2001:db8::2",
];
pub const USERS: &[&str] = &["root", "admin", "pi", "ubnt"];
pub const PASSWORDS: &[&str] = &["123456", "admin", "raspberry", "root"];
pub const SIGNATURES: &[&str] = &[
    "ET SCAN Potential SSH Scan",
    "ET POLICY Suspicious inbound to mySQL port 3306",
    "GPL ICMP_INFO PING *NIX",
    "ET WEB 100% pwn_kit",
];

/// A varied session `minutes` after [`base`].
pub fn gen_session(rng: &mut Rng, minutes: i64) -> Session {
    let honeypot = *rng.pick(HONEYPOTS);
    let source: IpAddr = rng.pick(SOURCES).parse().unwrap();
    let mut details = SessionDetails::default();
    if honeypot == "cowrie" {
        for _ in 0..rng.below(4) {
            details.credentials.push(Credential {
                username: rng.pick(USERS).to_string(),
                password: rng.pick(PASSWORDS).to_string(),
            });
        }
        if rng.below(2) == 0 {
            details.commands = vec!["uname -a".into(), format!("echo {}", rng.below(3))];
            details.urls = vec![format!("http://evil.example/{}.sh", rng.below(3))];
        }
    }
    if honeypot == "snort" {
        details.ids = Some(IdsAlert {
            signature: rng.pick(SIGNATURES).to_string(),
            signature_id: Some(2_001_219),
            priority: Some(2),
            ..IdsAlert::default()
        });
    }
    let geo = match rng.below(4) {
        0 => None,
        1 => Some(ashburn_geo()),
        2 => Some(GeoInfo {
            country_code: Some("CN".into()),
            asn: Some(4134),
            ..GeoInfo::default()
        }),
        _ => Some(GeoInfo {
            country_code: Some("DE".into()),
            asn: Some(3320),
            latitude: Some(52.52),
            longitude: Some(13.405),
            ..GeoInfo::default()
        }),
    };
    Session {
        id: None,
        timestamp: base()
            + Duration::minutes(minutes)
            + Duration::microseconds(rng.below(1_000_000) as i64),
        source_ip: Some(source),
        source_port: Some(1024 + rng.below(60000) as u16),
        destination_ip: (rng.below(2) == 0).then(|| "192.0.2.10".parse().unwrap()),
        destination_port: *rng.pick(&[Some(22u16), Some(23), Some(80), Some(445), None]),
        protocol: rng
            .pick(&[Some("ssh"), Some("telnet"), Some("http"), None])
            .map(str::to_owned),
        honeypot: honeypot.into(),
        channel: format!("{honeypot}.events"),
        sensor: rng.pick(SENSORS).to_string(),
        internal: apiary_model::event::is_internal(source),
        source_geo: geo,
        destination_geo: None,
        raw_id: None,
        details,
    }
}

/// `n` sessions spread over `hours` hours after [`base`].
pub fn gen_sessions(seed: u64, n: usize, hours: i64) -> Vec<Session> {
    let mut rng = Rng::seeded(seed);
    (0..n)
        .map(|_| {
            let minutes = rng.below((hours * 60) as u64) as i64;
            gen_session(&mut rng, minutes)
        })
        .collect()
}

/// One raw message per session, published by its sensor on its channel.
pub fn items_for(sessions: &[Session]) -> Vec<IngestItem> {
    sessions
        .iter()
        .map(|s| IngestItem {
            raw: RawEvent {
                id: None,
                channel: s.channel.clone(),
                ident: s.sensor.clone(),
                received_at: s.timestamp,
                payload: Bytes::from(format!("{{\"honeypot\":\"{}\"}}", s.honeypot)),
            },
            outcome: Ok(vec![Normalized::Session(Box::new(s.clone()))]),
        })
        .collect()
}

/// Inserts `sessions` in batches of `batch` and returns them as stored (ids set).
pub async fn insert_sessions(
    store: &Arc<dyn Store>,
    sessions: &[Session],
    batch: usize,
) -> Vec<Session> {
    let mut stored = Vec::with_capacity(sessions.len());
    for chunk in sessions.chunks(batch.max(1)) {
        let r = store.insert_batch(items_for(chunk)).await.unwrap();
        assert_eq!(r.raw_ids.len(), chunk.len());
        for (s, raw_id) in chunk.iter().zip(&r.raw_ids) {
            let mut s = s.clone();
            s.raw_id = Some(*raw_id);
            stored.push(s);
        }
    }
    // Learn the session ids: exactly one session per raw message.
    let all = all_sessions(store, SessionFilter::default(), 1000).await;
    assert_eq!(all.len(), stored.len());
    for s in &mut stored {
        let found = all.iter().find(|a| a.raw_id == s.raw_id).unwrap();
        s.id = found.id;
    }
    stored
}

/// Every session matching `filter`, walking all pages of size `page`.
pub async fn all_sessions(
    store: &Arc<dyn Store>,
    filter: SessionFilter,
    page: usize,
) -> Vec<Session> {
    let mut out = Vec::new();
    let mut next = Page::first(page);
    loop {
        let (rows, cursor) = store.sessions(filter.clone(), next).await.unwrap();
        assert!(rows.len() <= page);
        out.extend(rows);
        match cursor {
            Some(c) => next = Page::after(page, c),
            None => return out,
        }
    }
}

/// Sorts newest first, as the store pages.
pub fn newest_first(sessions: &mut [Session]) {
    sessions.sort_by_key(|s| std::cmp::Reverse((s.timestamp, s.id)));
}

/// SQL that takes a SQLite database back to the schema before migrations 0014 and 0015
/// (day-led source index, ASN-led ASN index, no run spans); the next open re-applies them.
pub const BEFORE_RUN_INDEXES: &str = "DROP INDEX sessions_source_run;
    DROP INDEX sessions_asn_run;
    DROP TABLE session_runs;
    CREATE INDEX sessions_source_day ON sessions (ts / 86400000000, source_key, ts,
        honeypot, protocol, destination_port, sensor);
    CREATE INDEX sessions_asn ON sessions (asn, ts);
    DELETE FROM schema_migrations WHERE version IN (14, 15);";
