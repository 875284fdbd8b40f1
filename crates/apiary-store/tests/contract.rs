//! The store contract: one suite of async functions over `Arc<dyn Store>`, run against
//! every backend. `sqlite::memory:` and a temp-file SQLite always run; PostgreSQL runs when
//! `APIARY_TEST_DATABASE_URL` is set (and is skipped otherwise), each test in a fresh
//! schema that is dropped afterwards.
//!
//! Every test expects an empty database.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;

use apiary_model::{
    Credential, Dork, FileRecord, GeoInfo, HttpRequest, Ident, Normalized, P0fMetadata, RawEvent,
    Secret, Session, SessionDetails, UrlRecord,
};
use apiary_store::{
    open, Dimension, IngestItem, Page, RawFilter, RawQuery, RawStatus, SensorRecord, SessionFilter,
    SourceGroupCount, SourceGrouping, Store, StoreError, TopSourcesQuery,
};
use bytes::Bytes;
use chrono::{DateTime, Duration, DurationRound, Utc};

mod common;
use common::*;

/// Runs one contract function against each backend.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let store = super::open("sqlite::memory:").await.unwrap();
                    super::$name(store.clone()).await;
                    store.close().await;
                }
            )*
        }
        mod file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let url = format!("sqlite://{}", dir.path().join("apiary.db").display());
                    let store = super::open(&url).await.unwrap();
                    super::$name(store.clone()).await;
                    store.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some((store, _schema)) = super::common::postgres().await else {
                        return;
                    };
                    super::$name(store.clone()).await;
                    store.close().await;
                }
            )*
        }
    };
}

contract!(
    idents_crud_and_version,
    batch_round_trip,
    error_outcome_keeps_raw,
    session_filters,
    keyset_paging_under_inserts,
    rollups_match_brute_force,
    top_over_the_last_day,
    attacker_stats_figures,
    free_text_search,
    top_sources_exact,
    retention,
    ingest_goes_on_during_a_prune,
    hostile_strings,
    side_records,
    sensors_crud,
    renormalize_replaces,
    raw_browsing,
    metrics_figures,
    accounts_crud,
    deploy_scripts_and_tokens,
);

fn ident(name: &str, secret: &str) -> Ident {
    Ident {
        ident: name.into(),
        secret: Secret::new(secret),
        publish: vec!["cowrie.sessions".into(), "dionaea.capture".into()],
        subscribe: vec![],
        owner: "alice".into(),
    }
}

async fn idents_crud_and_version(store: Arc<dyn Store>) {
    let v0 = store.idents_version().await.unwrap();
    assert!(store.list_idents().await.unwrap().is_empty());
    assert_eq!(store.get_ident("a").await.unwrap(), None);

    let a = ident("a", "s1");
    store.upsert_ident(&a).await.unwrap();
    let v1 = store.idents_version().await.unwrap();
    assert_ne!(v0, v1);
    assert_eq!(store.get_ident("a").await.unwrap(), Some(a.clone()));

    let mut a2 = ident("a", "s2");
    a2.subscribe = vec!["geoloc.events".into()];
    store.upsert_ident(&a2).await.unwrap();
    let v2 = store.idents_version().await.unwrap();
    assert_ne!(v1, v2);
    assert_eq!(store.get_ident("a").await.unwrap(), Some(a2.clone()));

    let b = ident("b", "s3");
    store.upsert_ident(&b).await.unwrap();
    assert_eq!(store.list_idents().await.unwrap(), vec![a2, b]);

    let v3 = store.idents_version().await.unwrap();
    assert!(store.delete_ident("a").await.unwrap());
    let v4 = store.idents_version().await.unwrap();
    assert_ne!(v3, v4);
    assert!(!store.delete_ident("a").await.unwrap());
    assert_eq!(
        store.idents_version().await.unwrap(),
        v4,
        "no-op delete keeps version"
    );
    assert_eq!(store.list_idents().await.unwrap().len(), 1);

    assert!(store.upsert_ident(&ident("", "x")).await.is_err());
}

fn raw(channel: &str, ident: &str, at: DateTime<Utc>, payload: &[u8]) -> RawEvent {
    RawEvent {
        id: None,
        channel: channel.into(),
        ident: ident.into(),
        received_at: at,
        payload: Bytes::copy_from_slice(payload),
    }
}

fn full_session() -> Session {
    Session {
        id: None,
        timestamp: base() + Duration::microseconds(1_234_567),
        source_ip: Some("198.51.100.7".parse().unwrap()),
        source_port: Some(51234),
        destination_ip: Some("2001:db8::10".parse().unwrap()),
        destination_port: Some(22),
        protocol: Some("ssh".into()),
        honeypot: "cowrie".into(),
        channel: "cowrie.sessions".into(),
        sensor: "sensor-a".into(),
        internal: false,
        source_geo: Some(ashburn_geo()),
        destination_geo: Some(GeoInfo {
            country_code: Some("NL".into()),
            latitude: Some(52.37),
            longitude: Some(4.89),
            ..GeoInfo::default()
        }),
        raw_id: None,
        details: SessionDetails {
            credentials: vec![
                Credential {
                    username: "root".into(),
                    password: "123456".into(),
                },
                Credential {
                    username: "admin".into(),
                    password: "admin".into(),
                },
            ],
            ssh_version: Some("SSH-2.0-Go".into()),
            http: Some(HttpRequest {
                method: Some("GET".into()),
                path: Some("/x".into()),
                headers: vec![("host".into(), "a".into())],
                ..HttpRequest::default()
            }),
            ics: Some(serde_json::json!({"pdus": [1, 2]})),
            urls: vec!["http://evil.example/a.sh".into()],
            commands: vec!["uname -a".into()],
            hashes: vec!["ab".repeat(32)],
            logged_in: Some(true),
            extra: Some(serde_json::json!({"k": "v"})),
            ..SessionDetails::default()
        },
    }
}

async fn batch_round_trip(store: Arc<dyn Store>) {
    let payload: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let s = full_session();
    let second = Session {
        source_ip: Some("203.0.113.9".parse().unwrap()),
        channel: String::new(), // filled from the raw message
        sensor: String::new(),
        ..gen_session(&mut Rng::seeded(3), 10)
    };
    let batch = vec![
        IngestItem {
            raw: raw("cowrie.sessions", "sensor-a", s.timestamp, &payload),
            outcome: Ok(vec![
                Normalized::Session(Box::new(s.clone())),
                Normalized::Session(Box::new(second.clone())),
            ]),
        },
        IngestItem {
            raw: raw("p0f.events", "sensor-b", s.timestamp, b"{}"),
            outcome: Ok(vec![]),
        },
    ];
    let r = store.insert_batch(batch).await.unwrap();
    assert_eq!(r.raw_ids.len(), 2);
    assert_eq!((r.sessions, r.errors, r.side_records), (2, 0, 0));
    assert!(store.insert_batch(vec![]).await.unwrap().raw_ids.is_empty());

    let got = store.raw(r.raw_ids[0]).await.unwrap().unwrap();
    assert_eq!(&got.event.payload[..], &payload[..]);
    assert_eq!(got.event.id, Some(r.raw_ids[0]));
    assert_eq!(got.event.received_at, s.timestamp);
    assert_eq!(got.status, RawStatus::Normalized);
    assert_eq!(got.error, None);
    assert_eq!(
        store
            .raw(r.raw_ids[1])
            .await
            .unwrap()
            .unwrap()
            .event
            .channel,
        "p0f.events"
    );
    assert!(store.raw(i64::MAX).await.unwrap().is_none());

    let all = all_sessions(&store, SessionFilter::default(), 10).await;
    assert_eq!(all.len(), 2);
    let stored = all
        .iter()
        .find(|x| x.honeypot == "cowrie" && x.source_port == Some(51234))
        .unwrap();
    let mut want = s.clone();
    want.id = stored.id;
    want.raw_id = Some(r.raw_ids[0]);
    assert_eq!(stored, &want);
    // Session ids come back in record order.
    assert_eq!(r.session_ids.len(), 2);
    assert_eq!(Some(r.session_ids[0]), stored.id);
    assert_eq!(
        store
            .session(r.session_ids[1])
            .await
            .unwrap()
            .unwrap()
            .source_ip,
        second.source_ip
    );
    assert_eq!(
        store.session(stored.id.unwrap()).await.unwrap().as_ref(),
        Some(&want)
    );
    assert!(store.session(i64::MAX).await.unwrap().is_none());

    let other = all.iter().find(|x| x.id != stored.id).unwrap();
    assert_eq!(other.channel, "cowrie.sessions");
    assert_eq!(other.sensor, "sensor-a");
}

async fn error_outcome_keeps_raw(store: Arc<dyn Store>) {
    let at = base();
    let r = store
        .insert_batch(vec![
            IngestItem {
                raw: raw("dionaea.capture", "s1", at, b"\x00not json"),
                outcome: Err("expected value at line 1 column 1".into()),
            },
            IngestItem {
                raw: raw("dionaea.capture", "s1", at, b"{}"),
                outcome: Ok(vec![]),
            },
        ])
        .await
        .unwrap();
    assert_eq!(r.errors, 1);
    let bad = store.raw(r.raw_ids[0]).await.unwrap().unwrap();
    assert_eq!(bad.status, RawStatus::Error);
    assert_eq!(
        bad.error.as_deref(),
        Some("expected value at line 1 column 1")
    );
    assert_eq!(&bad.event.payload[..], b"\x00not json");
    assert!(all_sessions(&store, SessionFilter::default(), 10)
        .await
        .is_empty());

    let errors = store
        .raw_for_renormalize(
            RawFilter {
                only_errors: true,
                ..RawFilter::default()
            },
            0,
            10,
        )
        .await
        .unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].id, Some(r.raw_ids[0]));
    let everything = store
        .raw_for_renormalize(RawFilter::default(), 0, 10)
        .await
        .unwrap();
    assert_eq!(everything.len(), 2);
}

/// The brute-force meaning of a filter, to compare the store against.
fn matches(f: &SessionFilter, s: &Session) -> bool {
    let geo = s.source_geo.as_ref();
    f.since.is_none_or(|t| s.timestamp >= t)
        && f.until.is_none_or(|t| s.timestamp < t)
        && f.sensor.as_ref().is_none_or(|v| &s.sensor == v)
        && f.honeypot.as_ref().is_none_or(|v| &s.honeypot == v)
        && f.source
            .is_none_or(|n| s.source_ip.is_some_and(|ip| n.contains(&ip)))
        && f.destination_port
            .is_none_or(|p| s.destination_port == Some(p))
        && f.protocol
            .as_ref()
            .is_none_or(|p| s.protocol.as_ref() == Some(p))
        && f.country
            .as_ref()
            .is_none_or(|c| geo.and_then(|g| g.country_code.as_ref()) == Some(c))
        && f.asn.is_none_or(|a| geo.and_then(|g| g.asn) == Some(a))
        && f.signature.as_ref().is_none_or(|t| {
            s.details.ids.as_ref().is_some_and(|i| {
                i.signature
                    .to_ascii_lowercase()
                    .contains(&t.to_ascii_lowercase())
            })
        })
        && f.credential.as_ref().is_none_or(|c| {
            s.details
                .credentials
                .iter()
                .any(|x| &x.username == c || &x.password == c)
        })
        && f.channel.as_ref().is_none_or(|c| &s.channel == c)
        && f.internal.is_none_or(|i| s.internal == i)
        && f.text.as_ref().is_none_or(|t| text_matches(t, s))
}

/// `SessionFilter::text`: exact credential, or signature / URL containing it (ASCII
/// case-insensitive).
fn text_matches(t: &str, s: &Session) -> bool {
    let lower = t.to_ascii_lowercase();
    let has = |v: &str| v.to_ascii_lowercase().contains(&lower);
    s.details
        .credentials
        .iter()
        .any(|c| c.username == t || c.password == t)
        || s.details.ids.as_ref().is_some_and(|i| has(&i.signature))
        || s.details.urls.iter().any(|u| has(u))
}

fn ids(sessions: &[Session]) -> Vec<i64> {
    sessions.iter().map(|s| s.id.unwrap()).collect()
}

async fn session_filters(store: Arc<dyn Store>) {
    let mut stored = insert_sessions(&store, &gen_sessions(7, 600, 48), 100).await;
    newest_first(&mut stored);
    let t = |h: i64| base() + Duration::hours(h);
    let net = |s: &str| Some(s.parse().unwrap());
    let filters = vec![
        SessionFilter::default(),
        SessionFilter {
            since: Some(t(10)),
            until: Some(t(20)),
            ..Default::default()
        },
        SessionFilter {
            until: Some(t(1)),
            ..Default::default()
        },
        SessionFilter {
            sensor: Some("sensor-b".into()),
            ..Default::default()
        },
        SessionFilter {
            honeypot: Some("dionaea".into()),
            ..Default::default()
        },
        SessionFilter {
            source: net("198.51.100.7/32"),
            ..Default::default()
        },
        SessionFilter {
            source: net("198.51.100.0/24"),
            ..Default::default()
        },
        SessionFilter {
            source: net("198.51.0.0/16"),
            ..Default::default()
        },
        SessionFilter {
            source: net("10.0.0.0/8"),
            ..Default::default()
        },
        SessionFilter {
            source: net("2001:db8::2/128"),
            ..Default::default()
        },
        SessionFilter {
            source: net("2001:db8::/32"),
            ..Default::default()
        },
        SessionFilter {
            source: net("0.0.0.0/0"),
            ..Default::default()
        },
        SessionFilter {
            destination_port: Some(22),
            ..Default::default()
        },
        SessionFilter {
            protocol: Some("telnet".into()),
            ..Default::default()
        },
        SessionFilter {
            country: Some("CN".into()),
            ..Default::default()
        },
        SessionFilter {
            asn: Some(3320),
            ..Default::default()
        },
        SessionFilter {
            signature: Some("ssh scan".into()),
            ..Default::default()
        },
        SessionFilter {
            signature: Some("%".into()),
            ..Default::default()
        },
        SessionFilter {
            signature: Some("*NIX".into()),
            ..Default::default()
        },
        SessionFilter {
            credential: Some("root".into()),
            ..Default::default()
        },
        SessionFilter {
            credential: Some("raspberry".into()),
            ..Default::default()
        },
        SessionFilter {
            channel: Some("snort.events".into()),
            ..Default::default()
        },
        SessionFilter {
            internal: Some(true),
            ..Default::default()
        },
        SessionFilter {
            sensor: Some("sensor-a".into()),
            honeypot: Some("cowrie".into()),
            destination_port: Some(22),
            since: Some(t(5)),
            ..Default::default()
        },
        SessionFilter {
            source: net("198.51.100.0/24"),
            credential: Some("admin".into()),
            until: Some(t(30)),
            ..Default::default()
        },
        SessionFilter {
            sensor: Some("nobody".into()),
            ..Default::default()
        },
    ];
    for f in filters {
        let want: Vec<Session> = stored.iter().filter(|s| matches(&f, s)).cloned().collect();
        let nobody = f.sensor.as_deref() == Some("nobody");
        assert_eq!(want.is_empty(), nobody, "fixture should exercise {f:?}");
        for page in [7, 1000] {
            let got = all_sessions(&store, f.clone(), page).await;
            assert_eq!(ids(&got), ids(&want), "filter {f:?}, page {page}");
        }
        if f == SessionFilter::default() {
            assert_eq!(
                store.sessions(f, Page::first(10_000)).await.unwrap().0,
                stored
            );
        }
    }
    let bad = Page::after(10, apiary_store::Cursor("zz".into()));
    assert!(matches!(
        store.sessions(SessionFilter::default(), bad).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn keyset_paging_under_inserts(store: Arc<dyn Store>) {
    let before = insert_sessions(&store, &gen_sessions(11, 400, 24), 50).await;
    let mut seen = Vec::new();
    let mut page = Page::first(37);
    let mut rng = Rng::seeded(99);
    let mut round = 0u64;
    loop {
        let (rows, next) = store
            .sessions(SessionFilter::default(), page)
            .await
            .unwrap();
        seen.extend(ids(&rows));
        // Concurrent ingest between pages: newer, older and same-time sessions.
        let extra: Vec<Session> = (0..20)
            .map(|_| {
                let minutes = rng.below(30 * 60) as i64 - 120;
                gen_session(&mut rng, minutes)
            })
            .collect();
        round += 1;
        store.insert_batch(items_for(&extra)).await.unwrap();
        match next {
            Some(c) => page = Page::after(37, c),
            None => break,
        }
    }
    assert!(round > 10);
    let unique: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a row was returned twice");
    for id in ids(&before) {
        assert!(
            unique.contains(&id),
            "row {id} present before paging was skipped"
        );
    }
}

fn dim_values(d: Dimension, s: &Session) -> Vec<String> {
    let geo = s.source_geo.as_ref();
    match d {
        Dimension::All => vec![String::new()],
        Dimension::Honeypot => vec![s.honeypot.clone()],
        Dimension::Sensor => vec![s.sensor.clone()],
        Dimension::DestinationPort => s
            .destination_port
            .map(|p| p.to_string())
            .into_iter()
            .collect(),
        Dimension::SourceIp => s.source_ip.map(|i| i.to_string()).into_iter().collect(),
        Dimension::Country => geo
            .and_then(|g| g.country_code.clone())
            .into_iter()
            .collect(),
        Dimension::Protocol => s.protocol.clone().into_iter().collect(),
        Dimension::Channel => vec![s.channel.clone()],
        Dimension::Signature => s.details.ids.iter().map(|i| i.signature.clone()).collect(),
        Dimension::Username => s
            .details
            .credentials
            .iter()
            .map(|c| c.username.clone())
            .collect(),
        Dimension::Password => s
            .details
            .credentials
            .iter()
            .map(|c| c.password.clone())
            .collect(),
    }
}

fn brute_top(
    sessions: &[Session],
    d: Dimension,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<(String, u64)> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    for s in sessions
        .iter()
        .filter(|s| s.timestamp >= since && s.timestamp < until)
    {
        for v in dim_values(d, s) {
            *counts.entry(v).or_default() += 1;
        }
    }
    let mut v: Vec<_> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

async fn check_rollups(store: &Arc<dyn Store>, sessions: &[Session]) {
    let t = |h: i64| base() + Duration::hours(h);
    for (since, until) in [(t(0), t(48)), (t(5), t(6)), (t(10), t(34)), (t(-5), t(100))] {
        for d in Dimension::ALL {
            let want = brute_top(sessions, d, since, until);
            let got = store.top(d, since, until, 1000).await.unwrap();
            assert_eq!(got, want, "top {d:?} {since}..{until}");
            let got3 = store.top(d, since, until, 3).await.unwrap();
            assert_eq!(got3, want.iter().take(3).cloned().collect::<Vec<_>>());
        }
        let total = sessions
            .iter()
            .filter(|s| s.timestamp >= since && s.timestamp < until)
            .count();
        assert_eq!(
            store.total_sessions(since, until).await.unwrap(),
            total as u64
        );
    }
    let hours = store.counts_per_hour(t(0), t(48), None).await.unwrap();
    assert_eq!(hours.len(), 48);
    let per_hour = store
        .counts_per_hour(t(0), t(48), Some((Dimension::Honeypot, "cowrie".into())))
        .await
        .unwrap();
    for (i, (h, hc)) in hours.iter().zip(&per_hour).enumerate() {
        let (lo, hi) = (t(i as i64), t(i as i64 + 1));
        assert_eq!(h.hour, lo);
        let in_hour = sessions
            .iter()
            .filter(|s| s.timestamp >= lo && s.timestamp < hi);
        assert_eq!(h.count, in_hour.clone().count() as u64);
        assert_eq!(
            hc.count,
            in_hour.filter(|s| s.honeypot == "cowrie").count() as u64
        );
    }
}

async fn rollups_match_brute_force(store: Arc<dyn Store>) {
    let sessions = insert_sessions(&store, &gen_sessions(5, 900, 48), 128).await;
    check_rollups(&store, &sessions).await;
    // Partial hours count whole buckets.
    let t = base() + Duration::minutes(90);
    let whole = store
        .total_sessions(base() + Duration::hours(1), base() + Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(
        store
            .total_sessions(t, t + Duration::minutes(1))
            .await
            .unwrap(),
        whole
    );
    assert!(store
        .top(
            Dimension::Sensor,
            base() + Duration::hours(500),
            base() + Duration::hours(501),
            10
        )
        .await
        .unwrap()
        .is_empty());
}

/// The dashboard's window (now - 24 h .. now), which the SQLite store answers from its
/// sliding roll-up: same figures as summing the hours, with sessions before, inside,
/// at the edges of and after (future-dated) the window, arriving over several batches.
async fn top_over_the_last_day(store: Arc<dyn Store>) {
    let now = Utc::now();
    let shift = now - Duration::hours(30) - base();
    let mut sessions = gen_sessions(21, 900, 33);
    for s in &mut sessions {
        s.timestamp += shift;
    }
    let sessions = insert_sessions(&store, &sessions, 200).await;
    let (since, until) = (now - Duration::hours(24), now);
    // Roll-ups count whole hour buckets.
    let hour = Duration::hours(1);
    let bucket_lo = since.duration_trunc(hour).unwrap();
    let bucket_hi = until.duration_trunc(hour).unwrap() + hour;
    for d in Dimension::ALL {
        let want = brute_top(&sessions, d, bucket_lo, bucket_hi);
        assert_eq!(
            store.top(d, since, until, 1000).await.unwrap(),
            want,
            "{d:?}"
        );
        let got3 = store.top(d, since, until, 3).await.unwrap();
        assert_eq!(got3, want.iter().take(3).cloned().collect::<Vec<_>>());
        // Ending on the next hour boundary: 24 buckets, not 25.
        let (lo, hi) = (bucket_lo + hour, bucket_hi);
        let want = brute_top(&sessions, d, lo, hi);
        assert_eq!(store.top(d, lo, hi, 1000).await.unwrap(), want, "{d:?}");
        for n in [1, 2, 5] {
            let got = store.top(d, lo, hi, n).await.unwrap();
            assert_eq!(got, want.iter().take(n).cloned().collect::<Vec<_>>());
        }
        // Open-ended (what top_sources asks with no `until`): the future-dated too.
        let far = now + Duration::days(3653);
        let want = brute_top(&sessions, d, bucket_lo, far);
        for n in [1, 3, 1000] {
            let got = store.top(d, since, far, n).await.unwrap();
            assert_eq!(
                got,
                want.iter().take(n).cloned().collect::<Vec<_>>(),
                "{d:?}"
            );
        }
    }
    // Top attackers of the last day, no end: exact, future-dated sessions included.
    for limit in [1, 5, 50] {
        let q = TopSourcesQuery {
            filter: SessionFilter {
                since: Some(since),
                ..Default::default()
            },
            limit,
            ..Default::default()
        };
        assert_eq!(
            store.top_sources(q.clone()).await.unwrap().rows,
            brute_top_sources(&sessions, &q),
            "{q:?}"
        );
    }
}

async fn attacker_stats_figures(store: Arc<dyn Store>) {
    let sessions = insert_sessions(&store, &gen_sessions(13, 500, 48), 100).await;
    for ip in [
        "198.51.100.7",
        "2001:db8::1",
        "::ffff:198.51.100.7",
        "192.0.2.99",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        let canon = apiary_model::event::canonical_ip(ip);
        for since in [None, Some(base() + Duration::hours(24))] {
            let mine: Vec<&Session> = sessions
                .iter()
                .filter(|s| s.source_ip == Some(canon) && since.is_none_or(|t| s.timestamp >= t))
                .collect();
            let st = store.attacker_stats(ip, since).await.unwrap();
            assert_eq!(st.ip, Some(canon));
            assert_eq!(st.count, mine.len() as u64);
            assert_eq!(st.first_seen, mine.iter().map(|s| s.timestamp).min());
            assert_eq!(st.last_seen, mine.iter().map(|s| s.timestamp).max());
            let ports: BTreeSet<u16> = mine.iter().filter_map(|s| s.destination_port).collect();
            assert_eq!(st.ports, ports.into_iter().collect::<Vec<_>>());
            let hp: BTreeSet<String> = mine.iter().map(|s| s.honeypot.clone()).collect();
            assert_eq!(st.honeypots, hp.into_iter().collect::<Vec<_>>());
            let se: BTreeSet<String> = mine.iter().map(|s| s.sensor.clone()).collect();
            assert_eq!(st.sensors, se.into_iter().collect::<Vec<_>>());
            let mut creds: BTreeMap<(String, String), u64> = BTreeMap::new();
            for c in mine.iter().flat_map(|s| &s.details.credentials) {
                *creds
                    .entry((c.username.clone(), c.password.clone()))
                    .or_default() += 1;
            }
            let got: BTreeMap<(String, String), u64> = st
                .credentials
                .iter()
                .map(|(c, n)| ((c.username.clone(), c.password.clone()), *n))
                .collect();
            assert_eq!(got, creds);
            assert!(st.credentials.windows(2).all(|w| w[0].1 >= w[1].1));
            let urls: BTreeSet<String> = mine.iter().flat_map(|s| s.details.urls.clone()).collect();
            assert_eq!(st.urls, urls.into_iter().collect::<Vec<_>>());
            let cmds: BTreeSet<String> = mine
                .iter()
                .flat_map(|s| s.details.commands.clone())
                .collect();
            assert_eq!(st.commands, cmds.into_iter().collect::<Vec<_>>());
        }
    }
}

async fn free_text_search(store: Arc<dyn Store>) {
    let mut stored = insert_sessions(&store, &gen_sessions(17, 600, 48), 100).await;
    newest_first(&mut stored);
    let t = |h: i64| base() + Duration::hours(h);
    let text = |q: &str| SessionFilter {
        text: Some(q.into()),
        ..Default::default()
    };
    let cases = vec![
        // Credentials: exact, username or password.
        (text("root"), true),
        (text("raspberry"), true),
        (text("RASPBERRY"), false),
        (text("12345"), false),
        // Signatures and URLs: substring, ASCII case-insensitive, LIKE characters literal.
        (text("ssh scan"), true),
        (text("%"), true),
        (text("*nix"), true),
        (text("evil.example/1"), true),
        (text("EVIL.EXAMPLE"), true),
        (text("_"), true),
        (text("nowhere"), false),
        // A signature search narrowed to the hours the signature roll-up names.
        (
            SessionFilter {
                since: Some(t(20)),
                until: Some(t(23) + Duration::minutes(30)),
                ..text("scan")
            },
            true,
        ),
        (
            SessionFilter {
                sensor: Some("sensor-b".into()),
                since: Some(t(6)),
                ..text("admin")
            },
            true,
        ),
        (
            SessionFilter {
                source: Some("198.51.100.0/24".parse().unwrap()),
                until: Some(t(30)),
                ..text("evil")
            },
            true,
        ),
        (
            SessionFilter {
                credential: Some("pi".into()),
                ..text("admin")
            },
            true,
        ),
        (
            SessionFilter {
                signature: Some("ET".into()),
                ..text("scan")
            },
            true,
        ),
    ];
    for (f, some) in cases {
        let want: Vec<Session> = stored.iter().filter(|s| matches(&f, s)).cloned().collect();
        assert_eq!(!want.is_empty(), some, "fixture should exercise {f:?}");
        for page in [1, 7, 1000] {
            let got = all_sessions(&store, f.clone(), page).await;
            assert_eq!(ids(&got), ids(&want), "filter {f:?}, page {page}");
        }
    }
    // "root" is a username and a password: sessions with both come once.
    let both = stored
        .iter()
        .filter(|s| {
            s.details
                .credentials
                .iter()
                .any(|c| c.username == "root" && c.password == "root")
        })
        .count();
    assert!(both > 0, "fixture should have root/root");
}

/// Brute force of [`Store::top_sources`] over the stored sessions.
fn brute_top_sources(stored: &[Session], q: &TopSourcesQuery) -> Vec<SourceGroupCount> {
    type Key = (String, String, Option<String>, Option<u16>);
    let mut counts: BTreeMap<Key, (IpAddr, u64)> = BTreeMap::new();
    // Stored IPv4 sources are also inside the IPv4-mapped form of their network.
    let mut filter = q.filter.clone();
    if let Some(ipnet::IpNet::V6(n)) = filter.source {
        if let (Some(v4), true) = (n.network().to_ipv4_mapped(), n.prefix_len() >= 96) {
            filter.source = Some(ipnet::Ipv4Net::new(v4, n.prefix_len() - 96).unwrap().into());
        }
    }
    for s in stored {
        let Some(ip) = s.source_ip else { continue };
        if !matches(&filter, s)
            || s.protocol
                .as_ref()
                .is_some_and(|p| q.exclude_protocols.contains(p))
        {
            continue;
        }
        let (proto, port) = match q.grouping {
            SourceGrouping::Honeypot => (None, None),
            SourceGrouping::Service => (s.protocol.clone(), s.destination_port),
        };
        counts
            .entry((ip.to_string(), s.honeypot.clone(), proto, port))
            .or_insert((ip, 0))
            .1 += 1;
    }
    let mut rows: Vec<_> = counts.into_iter().collect();
    // BTreeMap order is the tie order; a stable sort by count keeps it.
    rows.sort_by_key(|r| std::cmp::Reverse(r.1 .1));
    rows.into_iter()
        .take(q.limit)
        .map(
            |((_, honeypot, protocol, destination_port), (ip, count))| SourceGroupCount {
                source_ip: ip,
                honeypot,
                protocol,
                destination_port,
                count,
            },
        )
        .collect()
}

async fn top_sources_exact(store: Arc<dyn Store>) {
    // Many sources with skewed activity, so most are never probed.
    let mut rng = Rng::seeded(99);
    let mut sessions = gen_sessions(23, 1500, 30);
    for s in &mut sessions {
        let spread = rng.below(200) + 1;
        let i = rng.below(spread);
        s.source_ip = Some(if i.is_multiple_of(17) {
            format!("2001:db8::{i:x}").parse().unwrap()
        } else {
            format!("192.0.2.{i}").parse().unwrap()
        });
        if rng.below(10) == 0 {
            s.protocol = Some("pcap".into());
        }
    }
    let stored = insert_sessions(&store, &sessions, 500).await;
    let t = |m: i64| base() + Duration::minutes(m);
    let filters = vec![
        SessionFilter::default(),
        // Windows that start and end inside an hour: the roll-up sums over-count there.
        SessionFilter {
            since: Some(t(10 * 60 + 17)),
            ..Default::default()
        },
        SessionFilter {
            since: Some(t(3 * 60 + 59)),
            until: Some(t(4 * 60 + 1)),
            ..Default::default()
        },
        SessionFilter {
            honeypot: Some("dionaea".into()),
            since: Some(t(600)),
            ..Default::default()
        },
        SessionFilter {
            destination_port: Some(23),
            credential: None,
            ..Default::default()
        },
        SessionFilter {
            source: Some("192.0.2.0/28".parse().unwrap()),
            ..Default::default()
        },
        SessionFilter {
            source: Some("::ffff:192.0.2.0/124".parse().unwrap()),
            since: Some(t(300)),
            ..Default::default()
        },
        SessionFilter {
            credential: Some("root".into()),
            ..Default::default()
        },
        SessionFilter {
            honeypot: Some("nothing".into()),
            ..Default::default()
        },
    ];
    for filter in filters {
        for grouping in [SourceGrouping::Honeypot, SourceGrouping::Service] {
            for exclude in [vec![], vec!["pcap".to_string(), "telnet".to_string()]] {
                for limit in [1, 3, 10, 1000] {
                    let q = TopSourcesQuery {
                        filter: filter.clone(),
                        grouping,
                        exclude_protocols: exclude.clone(),
                        limit,
                    };
                    let want = brute_top_sources(&stored, &q);
                    let got = store.top_sources(q.clone()).await.unwrap();
                    assert!(!got.truncated);
                    assert_eq!(got.rows, want, "{q:?}");
                }
            }
        }
    }
    let q = TopSourcesQuery {
        filter: SessionFilter {
            text: Some("root".into()),
            ..Default::default()
        },
        limit: 10,
        ..Default::default()
    };
    assert!(matches!(
        store.top_sources(q).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn retention(store: Arc<dyn Store>) {
    assert_eq!(store.oldest_data().await.unwrap(), None);
    let sessions = insert_sessions(&store, &gen_sessions(17, 700, 48), 100).await;
    let oldest = |s: &mut dyn Iterator<Item = &Session>| s.map(|s| s.timestamp).min();
    assert_eq!(
        store.oldest_data().await.unwrap(),
        oldest(&mut sessions.iter())
    );
    // SQLite tells the bytes in use; PostgreSQL cannot (VACUUM reuses space unseen).
    if let Some(used) = store.space_used_bytes().await.unwrap() {
        assert!(used > 0);
    }
    let raw_horizon = base() + Duration::hours(30) + Duration::minutes(17);
    let session_horizon = base() + Duration::hours(20) + Duration::minutes(30);
    let kept: Vec<&Session> = sessions
        .iter()
        .filter(|s| s.timestamp >= session_horizon)
        .collect();
    let dropped_creds: usize = sessions
        .iter()
        .filter(|s| s.timestamp < session_horizon)
        .map(|s| s.details.credentials.len())
        .sum();
    let r = store
        .prune(Some(raw_horizon), Some(session_horizon), 7)
        .await
        .unwrap();
    assert_eq!(r.sessions as usize, sessions.len() - kept.len());
    assert_eq!(r.credentials as usize, dropped_creds);
    // Raw received_at equals the session time in these fixtures.
    assert_eq!(
        r.raw as usize,
        sessions
            .iter()
            .filter(|s| s.timestamp < raw_horizon)
            .count()
    );
    assert!(r.rollups > 0);
    // Raw messages are pruned to a later horizon: the oldest left is a session's.
    assert_eq!(
        store.oldest_data().await.unwrap(),
        oldest(&mut kept.iter().copied())
    );

    let left = all_sessions(&store, SessionFilter::default(), 500).await;
    let mut want: Vec<i64> = kept.iter().map(|s| s.id.unwrap()).collect();
    want.sort_unstable();
    let mut got = ids(&left);
    got.sort_unstable();
    assert_eq!(got, want);
    for s in &sessions {
        let raw = store.raw(s.raw_id.unwrap()).await.unwrap();
        assert_eq!(raw.is_some(), s.timestamp >= raw_horizon);
    }
    // Hours wholly before the horizon are gone; the horizon's own hour and later are intact.
    let hour = base() + Duration::hours(20);
    assert_eq!(store.total_sessions(base(), hour).await.unwrap(), 0);
    let later: Vec<Session> = sessions
        .iter()
        .filter(|s| s.timestamp >= hour)
        .cloned()
        .collect();
    for d in Dimension::ALL {
        let end = base() + Duration::hours(48);
        assert_eq!(
            store.top(d, hour, end, 1000).await.unwrap(),
            brute_top(&later, d, hour, end)
        );
    }
    // Credential filter no longer finds pruned sessions.
    let root = all_sessions(
        &store,
        SessionFilter {
            credential: Some("root".into()),
            ..Default::default()
        },
        100,
    )
    .await;
    assert!(root.iter().all(|s| s.timestamp >= session_horizon));
    // A second pass finds nothing more.
    let again = store
        .prune(Some(raw_horizon), Some(session_horizon), 7)
        .await
        .unwrap();
    assert_eq!(
        (again.raw, again.sessions, again.credentials, again.rollups),
        (0, 0, 0, 0)
    );
    let counts: HashMap<String, u64> = store.table_counts().await.unwrap().into_iter().collect();
    // The same names on every backend: tables, not the counters that are marks.
    let mut names: Vec<&str> = counts.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "credentials",
            "dorks",
            "files",
            "idents",
            "p0f_metadata",
            "raw_messages",
            "rollup_hourly",
            "sensors",
            "sessions",
            "urls"
        ]
    );
    assert_eq!(counts["sessions"], kept.len() as u64);
    assert_eq!(
        counts["raw_messages"] as usize,
        sessions
            .iter()
            .filter(|s| s.timestamp >= raw_horizon)
            .count()
    );
    assert_eq!(
        store.prune(None, None, 10).await.unwrap(),
        Default::default()
    );
}

/// A retention pass is many short transactions: a batch inserted while one runs is
/// committed before the pass ends, and both end as if they had run one after the other.
async fn ingest_goes_on_during_a_prune(store: Arc<dyn Store>) {
    let old = insert_sessions(&store, &gen_sessions(23, 300, 48), 100).await;
    let horizon = base() + Duration::hours(48);
    let mut new = gen_sessions(24, 50, 2);
    for s in &mut new {
        s.timestamp += Duration::hours(100);
    }
    let done = Arc::new(AtomicBool::new(false));
    // One row per transaction: hundreds of them, so the pass is still going when the
    // batch below asks for the writer.
    let pass = tokio::spawn({
        let (store, done) = (store.clone(), done.clone());
        async move {
            let r = store.prune(Some(horizon), Some(horizon), 1).await.unwrap();
            done.store(true, SeqCst);
            r
        }
    });
    while store.oldest_data().await.unwrap() == old.iter().map(|s| s.timestamp).min() {
        tokio::task::yield_now().await;
    }
    let raw_ids = store.insert_batch(items_for(&new)).await.unwrap().raw_ids;
    assert!(!done.load(SeqCst), "the batch waited for the whole pass");
    let r = pass.await.unwrap();
    assert_eq!(r.sessions as usize, old.len());
    assert_eq!(r.raw as usize, old.len());
    let (rows, _) = store
        .sessions(SessionFilter::default(), Page::first(Page::MAX))
        .await
        .unwrap();
    let mut got: Vec<i64> = rows.iter().filter_map(|s| s.raw_id).collect();
    got.sort_unstable();
    assert_eq!(got, raw_ids, "exactly the batch is left");
    let (since, until) = (base(), base() + Duration::hours(200));
    assert_eq!(
        store.total_sessions(since, until).await.unwrap(),
        new.len() as u64,
        "the roll-ups count the batch and nothing pruned"
    );
}

async fn hostile_strings(store: Arc<dyn Store>) {
    let big = "A".repeat(1 << 20);
    let nul = "a\0b\0\0c".to_string();
    let script = "<script>alert('x')</script>\"; DROP TABLE sessions; --".to_string();
    let mut s = full_session();
    s.honeypot = script.clone();
    s.sensor = nul.clone();
    s.protocol = Some(big.clone());
    s.details.credentials = vec![Credential {
        username: nul.clone(),
        password: big.clone(),
    }];
    s.details.commands = vec![
        script.clone(),
        big.clone(),
        "\u{202e}rtl \u{fffd} 🐝".into(),
    ];
    let payload: Vec<u8> = [
        b"\xff\xfe\x00".as_slice(),
        &[0x80; 1000],
        big.as_bytes(),
        b"\xc3\x28",
    ]
    .concat();
    let r = store
        .insert_batch(vec![IngestItem {
            raw: raw(&script, &nul, s.timestamp, &payload),
            outcome: Ok(vec![Normalized::Session(Box::new(s.clone()))]),
        }])
        .await
        .unwrap();
    let got = store.raw(r.raw_ids[0]).await.unwrap().unwrap();
    assert_eq!(&got.event.payload[..], &payload[..]);
    assert_eq!(got.event.channel, script);
    assert_eq!(got.event.ident, nul);
    let all = all_sessions(&store, SessionFilter::default(), 10).await;
    assert_eq!(all.len(), 1);
    let mut want = s.clone();
    want.id = all[0].id;
    want.raw_id = Some(r.raw_ids[0]);
    assert_eq!(all[0], want);
    let by_cred = all_sessions(
        &store,
        SessionFilter {
            credential: Some(nul.clone()),
            ..Default::default()
        },
        10,
    )
    .await;
    assert_eq!(by_cred.len(), 1);
    let by_sensor = all_sessions(
        &store,
        SessionFilter {
            sensor: Some(nul.clone()),
            ..Default::default()
        },
        10,
    )
    .await;
    assert_eq!(by_sensor.len(), 1);
    let top = store
        .top(Dimension::Username, base(), base() + Duration::hours(1), 5)
        .await
        .unwrap();
    assert_eq!(top, vec![(nul.clone(), 1)]);
    let top = store
        .top(Dimension::Honeypot, base(), base() + Duration::hours(1), 5)
        .await
        .unwrap();
    assert_eq!(top, vec![(script.clone(), 1)]);
    // Searching raw payloads for hostile text is a byte search, not a pattern.
    let (found, _) = store
        .raw_messages(
            RawQuery {
                text: Some("%".into()),
                ..Default::default()
            },
            Page::first(10),
        )
        .await
        .unwrap();
    assert!(found.is_empty());
}

async fn side_records(store: Arc<dyn Store>) {
    let file = FileRecord {
        md5: "a".repeat(32),
        sha1: "b".repeat(40),
        sha256: "c".repeat(64),
        sha512: "d".repeat(128),
        size: 4,
        content_guess: Some("PE32 executable".into()),
        data: Some(vec![0x4d, 0x5a, 0x00, 0xff]),
        url: Some("http://evil.example/x.exe".into()),
    };
    let records = |at_min: i64| {
        let at = base() + Duration::minutes(at_min);
        IngestItem {
            raw: raw("dionaea.capture", "s1", at, b"{}"),
            outcome: Ok(vec![
                Normalized::File(file.clone()),
                Normalized::Url(UrlRecord {
                    url: "http://evil.example/x.exe".into(),
                    file_sha512: vec![file.sha512.clone()],
                }),
                Normalized::Dork(Dork {
                    content: "/phpmyadmin/".into(),
                    kind: "inurl".into(),
                }),
                Normalized::Metadata(P0fMetadata {
                    ip: "198.51.100.7".into(),
                    os: Some("Linux 3.x".into()),
                    ..Default::default()
                }),
            ]),
        }
    };
    let r = store
        .insert_batch(vec![records(10), records(5)])
        .await
        .unwrap();
    assert_eq!(r.side_records, 8);
    let r2 = store
        .insert_batch(vec![
            records(20),
            IngestItem {
                raw: raw("p0f.events", "s1", base() + Duration::minutes(30), b"{}"),
                outcome: Ok(vec![
                    Normalized::Metadata(P0fMetadata {
                        ip: "198.51.100.7".into(),
                        app: Some("curl".into()),
                        ..Default::default()
                    }),
                    Normalized::Metadata(P0fMetadata {
                        ip: "203.0.113.9".into(),
                        link: Some("Ethernet".into()),
                        ..Default::default()
                    }),
                    Normalized::Dork(Dork {
                        content: "/wp-login.php".into(),
                        kind: "inurl".into(),
                    }),
                ]),
            },
        ])
        .await
        .unwrap();
    assert_eq!(r2.side_records, 7);

    let (files, next) = store.files(Page::first(10)).await.unwrap();
    assert!(next.is_none());
    assert_eq!(files.len(), 1);
    let f = &files[0];
    assert_eq!(f.count, 3);
    assert_eq!(f.first_seen, base() + Duration::minutes(5));
    assert_eq!(f.last_seen, base() + Duration::minutes(20));
    assert_eq!(f.file.data, None, "listings leave bytes out");
    for h in [
        &file.md5,
        &file.sha1,
        &file.sha256,
        &file.sha512,
        &file.sha512.to_uppercase(),
    ] {
        let one = store.file(h).await.unwrap().unwrap();
        assert_eq!(one.file, file);
    }
    assert!(store.file("e".repeat(32).as_str()).await.unwrap().is_none());
    assert!(store.file("nothex").await.unwrap().is_none());

    let (urls, _) = store.urls(Page::first(10)).await.unwrap();
    assert_eq!(urls.len(), 1);
    assert_eq!(
        (urls[0].count, urls[0].file_sha512.clone()),
        (3, vec![file.sha512.clone()])
    );

    let (dorks, _) = store.dorks(Page::first(10)).await.unwrap();
    assert_eq!(
        dorks
            .iter()
            .map(|d| (d.content.as_str(), d.count))
            .collect::<Vec<_>>(),
        vec![("/wp-login.php", 1), ("/phpmyadmin/", 3)]
    );
    let (d1, c1) = store.dorks(Page::first(1)).await.unwrap();
    let (d2, c2) = store.dorks(Page::after(1, c1.unwrap())).await.unwrap();
    assert_eq!(
        (d1[0].content.as_str(), d2[0].content.as_str()),
        ("/wp-login.php", "/phpmyadmin/")
    );
    assert!(c2.is_none());

    let m = store.metadata_for("198.51.100.7").await.unwrap().unwrap();
    assert_eq!(m.metadata.os.as_deref(), Some("Linux 3.x"));
    assert_eq!(m.metadata.app.as_deref(), Some("curl"));
    assert_eq!(m.first_seen, base() + Duration::minutes(5));
    assert_eq!(m.updated_at, base() + Duration::minutes(30));
    let (meta, _) = store.metadata(Page::first(10)).await.unwrap();
    assert_eq!(meta.len(), 2);
    assert!(store.metadata_for("192.0.2.1").await.unwrap().is_none());
}

fn sensor(uuid: &str, name: &str) -> SensorRecord {
    SensorRecord {
        uuid: uuid.into(),
        name: name.into(),
        hostname: "hp01".into(),
        ip: Some("203.0.113.10".into()),
        honeypot: "cowrie".into(),
        ident: format!("ident-{uuid}"),
        created_at: base(),
        last_seen: None,
        heartbeat: None,
        latitude: Some(52.5),
        longitude: None,
    }
}

async fn sensors_crud(store: Arc<dyn Store>) {
    let a = sensor("u1", "alpha");
    store.create_sensor(&a).await.unwrap();
    assert!(matches!(
        store.create_sensor(&a).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.create_sensor(&sensor("u2", "alpha")).await,
        Err(StoreError::Conflict(_))
    ));
    store.create_sensor(&sensor("u2", "beta")).await.unwrap();
    assert_eq!(store.get_sensor("u1").await.unwrap(), Some(a.clone()));
    assert_eq!(
        store
            .list_sensors()
            .await
            .unwrap()
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["alpha", "beta"]
    );

    let mut a2 = a.clone();
    a2.name = "alpha2".into();
    a2.hostname = "hp02".into();
    store.update_sensor(&a2).await.unwrap();
    assert_eq!(store.get_sensor("u1").await.unwrap(), Some(a2.clone()));
    let mut clash = a2.clone();
    clash.name = "beta".into();
    assert!(matches!(
        store.update_sensor(&clash).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.update_sensor(&sensor("nope", "x")).await,
        Err(StoreError::NotFound)
    ));

    // Publishing moves last_seen forward, never back.
    let t1 = base() + Duration::hours(2);
    store
        .insert_batch(vec![IngestItem {
            raw: raw("cowrie.sessions", "ident-u1", t1, b"{}"),
            outcome: Ok(vec![]),
        }])
        .await
        .unwrap();
    assert_eq!(
        store.get_sensor("u1").await.unwrap().unwrap().last_seen,
        Some(t1)
    );
    store.touch_sensor("ident-u1", base()).await.unwrap();
    assert_eq!(
        store.get_sensor("u1").await.unwrap().unwrap().last_seen,
        Some(t1)
    );
    let t2 = t1 + Duration::minutes(1);
    assert!(store
        .record_heartbeat("u1", t2, serde_json::json!({"load": 0.5}))
        .await
        .unwrap());
    let got = store.get_sensor("u1").await.unwrap().unwrap();
    assert_eq!(
        (got.last_seen, got.heartbeat),
        (Some(t2), Some(serde_json::json!({"load": 0.5})))
    );
    assert!(!store
        .record_heartbeat("nope", t2, serde_json::json!({}))
        .await
        .unwrap());

    assert!(store.delete_sensor("u1").await.unwrap());
    assert!(!store.delete_sensor("u1").await.unwrap());
    assert_eq!(store.list_sensors().await.unwrap().len(), 1);
}

async fn renormalize_replaces(store: Arc<dyn Store>) {
    let sessions = insert_sessions(&store, &gen_sessions(23, 200, 12), 50).await;
    let bad = store
        .insert_batch(vec![IngestItem {
            raw: raw(
                "cowrie.sessions",
                "sensor-a",
                base() + Duration::minutes(3),
                b"{\"v\":2}",
            ),
            outcome: Err("unknown version".into()),
        }])
        .await
        .unwrap()
        .raw_ids[0];
    let file = FileRecord {
        sha512: "f".repeat(128),
        ..Default::default()
    };

    // Walk the cowrie raws the way `apiary renormalize --channel` would.
    let filter = RawFilter {
        channel: Some("cowrie.events".into()),
        ..Default::default()
    };
    let mut after = 0;
    let mut replaced: Vec<Session> = Vec::new();
    let mut rng = Rng::seeded(5);
    loop {
        let raws = store
            .raw_for_renormalize(filter.clone(), after, 16)
            .await
            .unwrap();
        let Some(last) = raws.last() else { break };
        after = last.id.unwrap();
        let mut items = Vec::new();
        for r in &raws {
            let old = sessions.iter().find(|s| s.raw_id == r.id).unwrap();
            // The "fixed" normalizer: two sessions per message, different port.
            let mut a = gen_session(&mut rng, 0);
            a.timestamp = old.timestamp;
            a.honeypot = "cowrie".into();
            a.channel = old.channel.clone();
            a.sensor = old.sensor.clone();
            a.destination_port = Some(2222);
            let b = Session {
                source_port: Some(1),
                ..a.clone()
            };
            replaced.push(a.clone());
            replaced.push(b.clone());
            items.push((
                r.id.unwrap(),
                Ok(vec![
                    Normalized::Session(Box::new(a)),
                    Normalized::Session(Box::new(b)),
                    Normalized::File(file.clone()),
                ]),
            ));
        }
        store.renormalize_batch(items).await.unwrap();
    }
    assert!(!replaced.is_empty());
    store
        .mark_renormalized(bad, Ok(vec![Normalized::File(file.clone())]))
        .await
        .unwrap();
    assert_eq!(
        store.raw(bad).await.unwrap().unwrap().status,
        RawStatus::Normalized
    );
    assert!(matches!(
        store.mark_renormalized(i64::MAX, Ok(vec![])).await,
        Err(StoreError::NotFound)
    ));

    let mut expect: Vec<Session> = sessions
        .iter()
        .filter(|s| s.honeypot != "cowrie")
        .cloned()
        .collect();
    expect.extend(replaced.iter().cloned());
    let now = all_sessions(&store, SessionFilter::default(), 500).await;
    assert_eq!(now.len(), expect.len());
    let cowrie = all_sessions(
        &store,
        SessionFilter {
            honeypot: Some("cowrie".into()),
            ..Default::default()
        },
        500,
    )
    .await;
    assert!(cowrie.iter().all(|s| s.destination_port == Some(2222)));
    assert_eq!(cowrie.len(), replaced.len());
    check_rollups(&store, &expect).await;
    // Side records from re-normalizing already-counted messages do not count again;
    // the previously failed message counts once.
    let f = store.file(&file.sha512).await.unwrap().unwrap();
    assert_eq!(f.count, 2);
    let counts: HashMap<String, u64> = store.table_counts().await.unwrap().into_iter().collect();
    assert_eq!(counts["sessions"], expect.len() as u64);
    let creds: usize = expect.iter().map(|s| s.details.credentials.len()).sum();
    assert_eq!(counts["credentials"], creds as u64);

    // Re-normalizing to an error keeps the raw message and drops its sessions.
    let one = cowrie[0].raw_id.unwrap();
    store
        .mark_renormalized(one, Err("nope".into()))
        .await
        .unwrap();
    let raw = store.raw(one).await.unwrap().unwrap();
    assert_eq!(
        (raw.status, raw.error.as_deref()),
        (RawStatus::Error, Some("nope"))
    );
    let after_err = all_sessions(&store, SessionFilter::default(), 500).await;
    assert_eq!(after_err.len(), expect.len() - 2);
    let errs = store
        .raw_for_renormalize(
            RawFilter {
                only_errors: true,
                ..Default::default()
            },
            0,
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        errs.iter().map(|r| r.id.unwrap()).collect::<Vec<_>>(),
        vec![one]
    );
    let since = store
        .raw_for_renormalize(
            RawFilter {
                since: Some(base() + Duration::hours(6)),
                ..Default::default()
            },
            0,
            1000,
        )
        .await
        .unwrap();
    assert!(
        !since.is_empty()
            && since
                .iter()
                .all(|r| r.received_at >= base() + Duration::hours(6))
    );
}

async fn raw_browsing(store: Arc<dyn Store>) {
    let mut items = Vec::new();
    for i in 0..50 {
        let channel = if i % 2 == 0 {
            "cowrie.sessions"
        } else {
            "dionaea.capture"
        };
        let payload = format!(
            "{{\"n\":{i},\"tag\":\"{}\"}}",
            if i % 5 == 0 { "needle" } else { "hay" }
        );
        items.push(IngestItem {
            raw: raw(
                channel,
                "s1",
                base() + Duration::seconds(i),
                payload.as_bytes(),
            ),
            outcome: Ok(vec![]),
        });
    }
    items.push(IngestItem {
        raw: raw("x", "s2", base(), b"\x00needle\xff"),
        outcome: Err("bad".into()),
    });
    store.insert_batch(items).await.unwrap();

    let walk = |q: RawQuery| {
        let store = store.clone();
        async move {
            let mut out = Vec::new();
            let mut page = Page::first(7);
            loop {
                let (rows, next) = store.raw_messages(q.clone(), page).await.unwrap();
                out.extend(rows);
                match next {
                    Some(c) => page = Page::after(7, c),
                    None => return out,
                }
            }
        }
    };
    let all = walk(RawQuery::default()).await;
    assert_eq!(all.len(), 51);
    assert!(all.windows(2).all(|w| w[0].event.id > w[1].event.id));
    assert_eq!(
        walk(RawQuery {
            channel: Some("cowrie.sessions".into()),
            ..Default::default()
        })
        .await
        .len(),
        25
    );
    let needles = walk(RawQuery {
        text: Some("needle".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(needles.len(), 11);
    assert_eq!(
        walk(RawQuery {
            text: Some("needle".into()),
            channel: Some("dionaea.capture".into()),
            ..Default::default()
        })
        .await
        .len(),
        5
    );
    assert_eq!(
        walk(RawQuery {
            status: Some(RawStatus::Error),
            ..Default::default()
        })
        .await
        .len(),
        1
    );
    assert_eq!(
        walk(RawQuery {
            ident: Some("s2".into()),
            ..Default::default()
        })
        .await
        .len(),
        1
    );
}

async fn metrics_figures(store: Arc<dyn Store>) {
    insert_sessions(&store, &gen_sessions(29, 120, 4), 40).await;
    store.upsert_ident(&ident("a", "b")).await.unwrap();
    let counts: HashMap<String, u64> = store.table_counts().await.unwrap().into_iter().collect();
    assert_eq!(counts["sessions"], 120);
    assert_eq!(counts["raw_messages"], 120);
    assert_eq!(counts["idents"], 1);
    assert!(counts["rollup_hourly"] > 0);
    assert!(counts.contains_key("files") && counts.contains_key("credentials"));
    // Size is reported for files; in-memory databases report 0.
    let _ = store.database_size_bytes().await.unwrap();
}

async fn accounts_crud(store: Arc<dyn Store>) {
    use apiary_model::{Role, WebSession};
    assert_eq!(store.count_users().await.unwrap(), 0);
    let a = store
        .create_user(" Alice@Example.org ", Role::Admin, "$argon2id$a")
        .await
        .unwrap();
    assert_eq!(a.email, "Alice@Example.org");
    assert!(matches!(
        store
            .create_user("alice@example.ORG", Role::Analyst, "x")
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.create_user("  ", Role::Analyst, "x").await,
        Err(StoreError::Invalid(_))
    ));
    let b = store
        .create_user("bob@example.org", Role::Analyst, "$argon2id$b")
        .await
        .unwrap();
    assert_eq!(store.count_users().await.unwrap(), 2);
    assert_eq!(store.user_by_id(a.id).await.unwrap(), Some(a.clone()));
    let (u, hash) = store
        .user_with_password("alice@example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((u.id, hash.as_str()), (a.id, "$argon2id$a"));
    assert_eq!(
        store.list_users().await.unwrap(),
        vec![a.clone(), b.clone()]
    );
    store.set_password(b.id, "$argon2id$b2").await.unwrap();
    store.set_role(b.id, Role::Admin).await.unwrap();
    assert_eq!(
        store.user_by_id(b.id).await.unwrap().unwrap().role,
        Role::Admin
    );
    assert!(matches!(
        store.set_role(9999, Role::Admin).await,
        Err(StoreError::NotFound)
    ));

    let k = store
        .create_api_key(a.id, "hash-a", "apk_1234", "ci")
        .await
        .unwrap();
    assert_eq!(
        store.list_api_keys(Some(a.id)).await.unwrap(),
        vec![k.clone()]
    );
    assert_eq!(store.list_api_keys(None).await.unwrap().len(), 1);
    assert_eq!(
        store.user_by_api_key("hash-a").await.unwrap().map(|u| u.id),
        Some(a.id)
    );
    assert!(!store.delete_api_key(k.id, Some(b.id)).await.unwrap());
    assert!(store.delete_api_key(k.id, Some(a.id)).await.unwrap());
    assert_eq!(store.user_by_api_key("hash-a").await.unwrap(), None);

    let now = Utc::now();
    let ws = |token: &str, expires: DateTime<Utc>| WebSession {
        token_hash: token.into(),
        user_id: a.id,
        csrf: "c".into(),
        created_at: DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap(),
        expires_at: DateTime::from_timestamp_micros(expires.timestamp_micros()).unwrap(),
    };
    store
        .create_web_session(&ws("live", now + Duration::hours(1)))
        .await
        .unwrap();
    store
        .create_web_session(&ws("old", now - Duration::hours(1)))
        .await
        .unwrap();
    let (got, user) = store.web_session("live").await.unwrap().unwrap();
    assert_eq!((got, user.id), (ws("live", now + Duration::hours(1)), a.id));
    assert!(store.web_session("old").await.unwrap().is_none());
    store.delete_web_session("nope").await.unwrap();
    assert_eq!(store.delete_user_sessions(a.id).await.unwrap(), 2);
    store
        .create_web_session(&ws("again", now + Duration::hours(1)))
        .await
        .unwrap();
    assert!(store.delete_user(a.id).await.unwrap());
    assert!(!store.delete_user(a.id).await.unwrap());
    assert!(store.web_session("again").await.unwrap().is_none());
    assert_eq!(store.count_users().await.unwrap(), 1);
}

async fn deploy_scripts_and_tokens(store: Arc<dyn Store>) {
    use apiary_store::NewEnrollmentToken;
    let s = store
        .create_deploy_script("Cowrie", "cowrie", "echo 1\n", "first", "a@x")
        .await
        .unwrap();
    assert_eq!(s.version, 1);
    assert!(matches!(
        store
            .create_deploy_script("Cowrie", "cowrie", "x", "", "")
            .await,
        Err(StoreError::Conflict(_))
    ));
    let s2 = store
        .update_deploy_script(s.id, "echo 2\n", "second", "b@x")
        .await
        .unwrap();
    assert_eq!((s2.version, s2.body.as_str()), (2, "echo 2\n"));
    assert_eq!(store.deploy_script(s.id).await.unwrap(), Some(s2.clone()));
    let versions = store.deploy_script_versions(s.id).await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![2, 1]
    );
    assert!(matches!(
        store.update_deploy_script(999, "x", "", "").await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.list_deploy_scripts().await.unwrap(), vec![s2]);

    let new = |hash: &str, script_id: i64| NewEnrollmentToken {
        script_id,
        token_hash: hash.into(),
        prefix: "tok_".into(),
        label: "lab".into(),
        created_by: "a@x".into(),
        expires_at: Utc::now() + Duration::hours(1),
    };
    assert!(matches!(
        store.create_enrollment_token(&new("h0", 999)).await,
        Err(StoreError::NotFound)
    ));
    let t = store
        .create_enrollment_token(&new("h1", s.id))
        .await
        .unwrap();
    assert!(t.is_valid(Utc::now()) && t.uses == 0);
    assert_eq!(store.enrollment_token("h1").await.unwrap(), Some(t.clone()));
    assert_eq!(
        store
            .list_enrollment_tokens(Some(s.id))
            .await
            .unwrap()
            .len(),
        1
    );
    store.create_sensor(&sensor("u1", "alpha")).await.unwrap();
    assert_eq!(store.enrolled_sensor(t.id, "host").await.unwrap(), None);
    store
        .record_enrollment(t.id, "host", "u1", Utc::now())
        .await
        .unwrap();
    store
        .record_enrollment(t.id, "host", "u1", Utc::now())
        .await
        .unwrap();
    assert_eq!(
        store
            .enrolled_sensor(t.id, "host")
            .await
            .unwrap()
            .as_deref(),
        Some("u1")
    );
    assert_eq!(
        store.sensor_enrollment_token("u1").await.unwrap(),
        Some(t.id)
    );
    assert_eq!(store.enrollment_token("h1").await.unwrap().unwrap().uses, 2);
    assert!(store.revoke_enrollment_token(t.id).await.unwrap());
    assert!(!store.revoke_enrollment_token(999).await.unwrap());
    assert!(store.enrollment_token("h1").await.unwrap().unwrap().revoked);
    // The enrollment is forgotten once its sensor is gone.
    store.delete_sensor("u1").await.unwrap();
    assert_eq!(store.enrolled_sensor(t.id, "host").await.unwrap(), None);
}

// ---- backend-independent checks of open() and of file persistence ----

#[tokio::test]
async fn open_rejects_bad_urls() {
    let err = |r: apiary_store::Result<Arc<dyn Store>>| match r {
        Err(e) => e.to_string(),
        Ok(_) => panic!("opened"),
    };
    let missing = err(open("sqlite:///nonexistent-dir-apiary/sub/apiary.db").await);
    assert!(missing.contains("/nonexistent-dir-apiary/sub"), "{missing}");
    // Nothing listens on port 1: a connection error that names the server, not the password.
    let pg = err(open("postgres://u:hunter2@127.0.0.1:1/apiary").await);
    assert!(pg.contains("127.0.0.1") && !pg.contains("hunter2"), "{pg}");
    let pg = err(open("postgres://u:hunter2@127.0.0.1:notaport/apiary").await);
    assert!(!pg.contains("hunter2"), "{pg}");
    let mysql = err(open("mysql://u:hunter2@h/db").await);
    assert!(
        mysql.contains("mysql") && !mysql.contains("hunter2"),
        "{mysql}"
    );
    assert!(err(open("sqlite://").await).contains("no path"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("apiary.db").display());
    let store = open(&url).await.unwrap();
    let sessions = insert_sessions(&store, &gen_sessions(31, 300, 24), 64).await;
    store.upsert_ident(&ident("a", "s")).await.unwrap();
    let version = store.idents_version().await.unwrap();
    store.create_sensor(&sensor("u1", "alpha")).await.unwrap();
    assert!(store.database_size_bytes().await.unwrap() > 0);
    let schema = store.migrate().await.unwrap();
    assert!(schema >= 3);
    store.close().await;
    assert!(
        store.list_idents().await.is_err(),
        "closed store refuses work"
    );
    store.close().await; // idempotent

    let store = open(&url).await.unwrap();
    assert_eq!(store.migrate().await.unwrap(), schema);
    assert_eq!(store.idents_version().await.unwrap(), version);
    assert_eq!(store.get_ident("a").await.unwrap(), Some(ident("a", "s")));
    assert!(store.get_sensor("u1").await.unwrap().is_some());
    let mut want = sessions.clone();
    newest_first(&mut want);
    assert_eq!(
        all_sessions(&store, SessionFilter::default(), 1000).await,
        want
    );
    check_rollups(&store, &sessions).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_proceed_while_writing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("apiary.db").display());
    let store = open(&url).await.unwrap();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for seed in 0..20 {
                store
                    .insert_batch(items_for(&gen_sessions(seed, 500, 24)))
                    .await
                    .unwrap();
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() {
        let n = store
            .total_sessions(base(), base() + Duration::hours(24))
            .await
            .unwrap();
        let (page, _) = store
            .sessions(SessionFilter::default(), Page::first(50))
            .await
            .unwrap();
        assert!(n % 500 == 0, "a reader saw a half-written batch: {n}");
        assert!(page.len() <= 50);
        reads += 1;
    }
    writer.await.unwrap();
    assert!(reads > 0);
    assert_eq!(
        store
            .total_sessions(base(), base() + Duration::hours(24))
            .await
            .unwrap(),
        10_000
    );
    store.close().await;
}

// ---- PostgreSQL only: persistence across stores and concurrent writers ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_survives_reopen_and_concurrent_writers() {
    let Some((store, schema)) = postgres().await else {
        return;
    };
    // Writers in parallel (the pool has several connections): shared roll-up, counter and
    // side rows must neither deadlock nor lose increments.
    let mut writers = Vec::new();
    for seed in 0..6u64 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for round in 0..5u64 {
                let mut items = items_for(&gen_sessions(seed * 10 + round, 200, 24));
                items.push(IngestItem {
                    raw: raw("dionaea.capture", "sensor-a", base(), b"{}"),
                    outcome: Ok(vec![Normalized::Url(UrlRecord {
                        url: "http://evil.example/x".into(),
                        file_sha512: vec![],
                    })]),
                });
                store.insert_batch(items).await.unwrap();
            }
        }));
    }
    let mut reads = 0;
    while !writers.iter().all(|w| w.is_finished()) {
        let n = store
            .total_sessions(base(), base() + Duration::hours(24))
            .await
            .unwrap();
        assert!(n % 200 == 0, "a reader saw a half-written batch: {n}");
        reads += 1;
    }
    for w in writers {
        w.await.unwrap();
    }
    assert!(reads > 0);
    let total = 6 * 5 * 200;
    assert_eq!(
        store
            .total_sessions(base(), base() + Duration::hours(24))
            .await
            .unwrap(),
        total
    );
    let (urls, _) = store.urls(Page::first(10)).await.unwrap();
    assert_eq!(urls.len(), 1);
    assert_eq!(urls[0].count, 30);
    store.upsert_ident(&ident("a", "s")).await.unwrap();
    let version = store.idents_version().await.unwrap();
    let schema_version = store.migrate().await.unwrap();
    assert!(store.database_size_bytes().await.unwrap() > 0);
    store.close().await;
    assert!(
        store.list_idents().await.is_err(),
        "closed store refuses work"
    );
    store.close().await; // idempotent

    // A second store on the same schema sees everything.
    let url = std::env::var("APIARY_TEST_DATABASE_URL").unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let again = open(&format!(
        "{url}{sep}options=-c%20search_path%3D{}",
        schema.name()
    ))
    .await
    .unwrap();
    assert_eq!(again.migrate().await.unwrap(), schema_version);
    assert_eq!(again.idents_version().await.unwrap(), version);
    let counts: HashMap<String, u64> = again.table_counts().await.unwrap().into_iter().collect();
    assert_eq!(counts["sessions"], total);
    assert_eq!(counts["raw_messages"], total + 30);
    again.close().await;
}

/// The sliding 24 h window on PostgreSQL: built on the first batch, kept equal to the
/// hourly sums by concurrent writers (values with NUL bytes and 1,000-character values
/// included), and the store's top-N over the last day is what the hours sum to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_window_kept_by_concurrent_writers() {
    let Some((store, schema)) = postgres().await else {
        return;
    };
    let now = Utc::now();
    let shift = now - Duration::hours(30) - base();
    let mut writers = Vec::new();
    for seed in 0..4u64 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let mut sessions = gen_sessions(70 + seed, 600, 33);
            for (i, s) in sessions.iter_mut().enumerate() {
                s.timestamp += shift;
                if i % 50 == 0 {
                    s.details.credentials.push(Credential {
                        username: format!("nul\0{}", i % 3),
                        password: "p".repeat(1000),
                    });
                }
            }
            for chunk in sessions.chunks(100) {
                store.insert_batch(items_for(chunk)).await.unwrap();
            }
            sessions
        }));
    }
    let mut all = Vec::new();
    for w in writers {
        all.extend(w.await.unwrap());
    }
    // 300 usernames tried once each: a top-N cutting through them reads the window past
    // its first page inside one run of equal counts.
    let mut ties: Vec<Session> = all[..300].to_vec();
    for (i, s) in ties.iter_mut().enumerate() {
        s.timestamp = now - Duration::minutes(30);
        s.details.credentials = vec![Credential {
            username: format!("tie-{i:03}"),
            password: "x".into(),
        }];
    }
    store.insert_batch(items_for(&ties)).await.unwrap();
    all.extend(ties);
    let url = std::env::var("APIARY_TEST_DATABASE_URL").unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("SET search_path TO {}", schema.name()))
        .await
        .unwrap();
    let w = window_hour(&client).await;
    let hour_now = now.timestamp_micros().div_euclid(3_600_000_000);
    assert!(w >= hour_now && w <= hour_now + 1, "W {w}, now {hour_now}");
    assert_eq!(window_mismatches(&client, w).await, 0);
    let windowed: i64 = client
        .query_one("SELECT count(DISTINCT dim) FROM rollup_window", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(windowed, 3, "source address, username and password");
    let (since, until) = (now - Duration::hours(24), now);
    let hour = Duration::hours(1);
    let (lo, hi) = (
        since.duration_trunc(hour).unwrap(),
        until.duration_trunc(hour).unwrap() + hour,
    );
    for d in [
        Dimension::SourceIp,
        Dimension::Username,
        Dimension::Password,
    ] {
        let want = brute_top(&all, d, lo, hi);
        for n in [1, 10, 150, 250, 400] {
            assert_eq!(
                store.top(d, since, until, n).await.unwrap(),
                want.iter().take(n).cloned().collect::<Vec<_>>(),
                "{d:?} top {n}"
            );
        }
    }

    // Quiet hours, simulated: the window set back to where it stood 3 hours ago (moved
    // on hour by hour: hours leaving subtracted, hours entering added) and 30 hours ago
    // (rebuilt). The next batch must bring it to the hourly sums of the current hour.
    let dims: Vec<i16> = client
        .query("SELECT DISTINCT dim FROM rollup_window", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for (round, back) in [3i64, 30].into_iter().enumerate() {
        let old = w - back;
        client
            .batch_execute("DELETE FROM rollup_window")
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO rollup_window (dim, value, count)
                 SELECT dim, value, SUM(count) FROM rollup_hourly
                 WHERE dim = ANY($1) AND hour >= $2::bigint - 24 AND hour <= $2::bigint
                 GROUP BY dim, value HAVING SUM(count) <> 0",
                &[&dims, &old],
            )
            .await
            .unwrap();
        client
            .execute(
                "UPDATE counters SET value = $1 WHERE name = 'rollup_window_hour'",
                &[&old],
            )
            .await
            .unwrap();
        assert_eq!(window_mismatches(&client, old).await, 0);
        let mut late: Vec<Session> = all[..20].to_vec();
        for (i, s) in late.iter_mut().enumerate() {
            s.timestamp = Utc::now() - Duration::seconds(i as i64);
            s.details.credentials = vec![Credential {
                username: format!("late-{round}-{}", i % 4),
                password: "late".into(),
            }];
        }
        store.insert_batch(items_for(&late)).await.unwrap();
        all.extend(late);
        let moved = window_hour(&client).await;
        assert!(moved >= w, "window at {moved} after a batch, was {old}");
        assert_eq!(
            window_mismatches(&client, moved).await,
            0,
            "set back {back} h"
        );
        let until = Utc::now();
        let since = until - Duration::hours(24);
        let (lo, hi) = (
            since.duration_trunc(hour).unwrap(),
            until.duration_trunc(hour).unwrap() + hour,
        );
        for d in [Dimension::SourceIp, Dimension::Username] {
            assert_eq!(
                store.top(d, since, until, 20).await.unwrap(),
                brute_top(&all, d, lo, hi)
                    .into_iter()
                    .take(20)
                    .collect::<Vec<_>>(),
                "{d:?} after setting the window back {back} h"
            );
        }
    }
    store.close().await;
}

/// The PostgreSQL window's current hour `W`.
async fn window_hour(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT value FROM counters WHERE name = 'rollup_window_hour'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Rows where the PostgreSQL window at hour `w` differs from the hourly sums over
/// `w - 24 ..= w` (for the dimensions it holds).
async fn window_mismatches(client: &tokio_postgres::Client, w: i64) -> i64 {
    client
        .query_one(
            "WITH want AS (
                 SELECT dim, value, SUM(count) AS n FROM rollup_hourly
                 WHERE dim IN (SELECT DISTINCT dim FROM rollup_window)
                   AND hour >= $1::bigint - 24 AND hour <= $1::bigint
                 GROUP BY dim, value HAVING SUM(count) <> 0)
             SELECT count(*) FROM want FULL JOIN rollup_window r
                 ON r.dim = want.dim AND r.value = want.value
             WHERE r.count IS DISTINCT FROM want.n",
            &[&w],
        )
        .await
        .unwrap()
        .get(0)
}
