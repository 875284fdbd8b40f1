//! SQLite's source-address and ASN indexes are led by the run of the session id
//! (`id >> 16`) and read run by run, newest time span first. Runs' spans overlap when
//! events arrive late, so every reader must stay exact: the paged listing by address,
//! network or ASN (with time bounds and a credential), attacker stats and top attackers;
//! after migrations 0014 and 0015 on stored sessions; and after retention, which forgets
//! runs left empty.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use apiary_model::Session;
use apiary_store::{open, SessionFilter, SourceGrouping, Store, TopSourcesQuery};
use chrono::{DateTime, Duration, Utc};
use ipnet::IpNet;
use rusqlite::Connection;

mod common;
use common::*;

async fn open_file(db: &Path) -> Arc<dyn Store> {
    open(&format!("sqlite://{}", db.display())).await.unwrap()
}

fn conn(db: &Path) -> Connection {
    let c = Connection::open(db).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    c
}

/// The stored runs and their spans.
fn runs(db: &Path) -> Vec<(i64, i64, i64)> {
    conn(db)
        .prepare("SELECT run, min_ts, max_ts FROM session_runs ORDER BY run")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// The runs' spans computed from the sessions matching `cond`.
fn spans_from_sessions(db: &Path, cond: &str) -> Vec<(i64, i64, i64)> {
    conn(db)
        .prepare(&format!(
            "SELECT id >> 16, MIN(ts), MAX(ts) FROM sessions WHERE {cond} GROUP BY 1 ORDER BY 1"
        ))
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// Stores `parts` so that each starts a new run: a placeholder session (no source, so
/// no address query sees it) takes the id just below the next run, and the store's next
/// insert continues from there. Every part spans the same hours, so runs overlap in time.
async fn store_in_runs(store: &Arc<dyn Store>, db: &Path, parts: &[Vec<Session>]) -> Vec<Session> {
    let mut stored = insert_in_runs(store, db, parts).await;
    // Learn the session ids (one session per raw message).
    let ids: BTreeMap<i64, i64> = conn(db)
        .prepare("SELECT raw_id, id FROM sessions WHERE raw_id IS NOT NULL")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    for s in &mut stored {
        s.id = Some(ids[&s.raw_id.unwrap()]);
    }
    stored
}

/// The inserting half of [`store_in_runs`]: the sessions with their raw ids, not their
/// ids (which retention running meanwhile may take away).
async fn insert_in_runs(store: &Arc<dyn Store>, db: &Path, parts: &[Vec<Session>]) -> Vec<Session> {
    let mut stored = Vec::new();
    for (k, part) in parts.iter().enumerate() {
        if k > 0 {
            conn(db)
                .execute(
                    "INSERT INTO sessions (id, ts, honeypot, channel, sensor) \
                     VALUES (?1, 0, 'placeholder', 'placeholder', 'placeholder')",
                    [((k as i64) << 16) - 1],
                )
                .unwrap();
        }
        for chunk in part.chunks(40) {
            let r = store.insert_batch(items_for(chunk)).await.unwrap();
            for (s, raw_id) in chunk.iter().zip(&r.raw_ids) {
                let mut s = s.clone();
                s.raw_id = Some(*raw_id);
                stored.push(s);
            }
        }
    }
    stored
}

/// `parts` parts of `n` sessions each, part `k` over the `hours` hours from `k * hours`.
fn consecutive_parts(seed: u64, parts: u64, n: usize, hours: i64) -> Vec<Vec<Session>> {
    (0..parts)
        .map(|k| {
            let mut part = gen_sessions(seed + k, n, hours);
            for s in &mut part {
                s.timestamp += Duration::hours(hours * k as i64);
            }
            part
        })
        .collect()
}

/// Top sources of `[since, until)` by honeypot, every group (the limit is above their
/// number).
fn by_honeypot(since: DateTime<Utc>, until: DateTime<Utc>) -> TopSourcesQuery {
    TopSourcesQuery {
        filter: SessionFilter {
            since: Some(since),
            until: Some(until),
            ..SessionFilter::default()
        },
        grouping: SourceGrouping::Honeypot,
        exclude_protocols: Vec::new(),
        limit: 1000,
    }
}

fn ids(sessions: &[Session]) -> Vec<i64> {
    sessions.iter().map(|s| s.id.unwrap()).collect()
}

/// `since` and `until`.
type Window = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Listing by address, network or ASN, paged, with and without time bounds and
/// credentials, against the same filter applied to what was stored.
async fn check_listings(store: &Arc<dyn Store>, stored: &[Session]) {
    let t = |h: i64| base() + Duration::hours(h);
    let mut narrowing: Vec<SessionFilter> = SOURCES
        .iter()
        .map(|s| s.parse::<IpAddr>().unwrap().into())
        .chain([
            "198.51.100.0/23".parse().unwrap(),
            "2001:db8::/64".parse().unwrap(),
        ])
        .map(|net: IpNet| SessionFilter {
            source: Some(net),
            ..SessionFilter::default()
        })
        .collect();
    for asn in [4134, 3320, 14618] {
        narrowing.push(SessionFilter {
            asn: Some(asn),
            ..SessionFilter::default()
        });
    }
    narrowing.push(SessionFilter {
        source: Some("198.51.100.0/23".parse().unwrap()),
        asn: Some(3320),
        ..SessionFilter::default()
    });
    let windows: [Window; 3] = [(None, None), (Some(t(5)), Some(t(17))), (Some(t(20)), None)];
    for base_filter in &narrowing {
        for (since, until) in windows {
            for credential in [None, Some("root")] {
                let filter = SessionFilter {
                    since,
                    until,
                    credential: credential.map(str::to_owned),
                    ..base_filter.clone()
                };
                let mut want: Vec<Session> = stored
                    .iter()
                    .filter(|s| {
                        filter
                            .source
                            .is_none_or(|net| net.contains(&s.source_ip.unwrap()))
                    })
                    .filter(|s| {
                        filter
                            .asn
                            .is_none_or(|a| s.source_geo.as_ref().and_then(|g| g.asn) == Some(a))
                    })
                    .filter(|s| since.is_none_or(|t| s.timestamp >= t))
                    .filter(|s| until.is_none_or(|t| s.timestamp < t))
                    .filter(|s| {
                        credential.is_none_or(|c| {
                            s.details
                                .credentials
                                .iter()
                                .any(|x| x.username == c || x.password == c)
                        })
                    })
                    .cloned()
                    .collect();
                newest_first(&mut want);
                for page in [7, 1000] {
                    let found = all_sessions(store, filter.clone(), page).await;
                    assert_eq!(ids(&found), ids(&want), "{filter:?}, pages of {page}");
                }
            }
        }
    }
}

async fn check_stats(store: &Arc<dyn Store>, stored: &[Session]) {
    for ip in SOURCES {
        let ip: IpAddr = ip.parse().unwrap();
        for since in [None, Some(base() + Duration::hours(12))] {
            let mine: Vec<&Session> = stored
                .iter()
                .filter(|s| s.source_ip == Some(ip))
                .filter(|s| since.is_none_or(|t| s.timestamp >= t))
                .collect();
            let stats = store.attacker_stats(ip, since).await.unwrap();
            assert_eq!(stats.count, mine.len() as u64, "{ip} since {since:?}");
            assert_eq!(stats.first_seen, mine.iter().map(|s| s.timestamp).min());
            assert_eq!(stats.last_seen, mine.iter().map(|s| s.timestamp).max());
            let mut ports: Vec<u16> = mine.iter().filter_map(|s| s.destination_port).collect();
            ports.sort();
            ports.dedup();
            assert_eq!(stats.ports, ports);
            let sorted = |f: fn(&Session) -> String| {
                let mut v: Vec<String> = mine.iter().map(|s| f(s)).collect();
                v.sort();
                v.dedup();
                v
            };
            assert_eq!(stats.honeypots, sorted(|s| s.honeypot.clone()));
            assert_eq!(stats.sensors, sorted(|s| s.sensor.clone()));
            let tried: u64 = stats.credentials.iter().map(|(_, n)| n).sum();
            let want: usize = mine.iter().map(|s| s.details.credentials.len()).sum();
            assert_eq!(tried, want as u64, "{ip}: credentials");
        }
    }
}

async fn check_top_sources(store: &Arc<dyn Store>, stored: &[Session]) {
    let since = base();
    let until = base() + Duration::hours(24);
    let got = store
        .top_sources(TopSourcesQuery {
            filter: SessionFilter {
                since: Some(since),
                until: Some(until),
                ..SessionFilter::default()
            },
            grouping: SourceGrouping::Honeypot,
            exclude_protocols: Vec::new(),
            limit: 100,
        })
        .await
        .unwrap();
    let mut want: BTreeMap<(IpAddr, String), u64> = BTreeMap::new();
    for s in stored
        .iter()
        .filter(|s| s.timestamp >= since && s.timestamp < until)
    {
        *want
            .entry((s.source_ip.unwrap(), s.honeypot.clone()))
            .or_default() += 1;
    }
    let got: BTreeMap<(IpAddr, String), u64> = got
        .rows
        .iter()
        .map(|r| ((r.source_ip, r.honeypot.clone()), r.count))
        .collect();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_are_exact_across_overlapping_runs_migration_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let store = open_file(&db).await;
    // Four runs, each spread over the same 24 hours: late events everywhere.
    let parts: Vec<Vec<Session>> = (0..4).map(|k| gen_sessions(40 + k, 150, 24)).collect();
    let stored = store_in_runs(&store, &db, &parts).await;
    assert_eq!(runs(&db).len(), 4);
    assert_eq!(
        runs(&db),
        spans_from_sessions(&db, "honeypot <> 'placeholder'")
    );
    check_listings(&store, &stored).await;
    check_stats(&store, &stored).await;
    check_top_sources(&store, &stored).await;
    store.close().await;

    // Back to the schema before migration 0014: they rebuild the indexes and the spans.
    conn(&db).execute_batch(BEFORE_RUN_INDEXES).unwrap();
    let store = open_file(&db).await;
    assert_eq!(runs(&db), spans_from_sessions(&db, "true"));
    check_listings(&store, &stored).await;
    check_stats(&store, &stored).await;

    // Retention: drop the placeholders, then everything before hour 12. Runs keep
    // their (now wider) spans while they hold a session.
    conn(&db)
        .execute("DELETE FROM sessions WHERE honeypot = 'placeholder'", [])
        .unwrap();
    let cut = base() + Duration::hours(12);
    store.prune(None, Some(cut), 50).await.unwrap();
    let kept: Vec<Session> = stored
        .iter()
        .filter(|s| s.timestamp >= cut)
        .cloned()
        .collect();
    assert_eq!(runs(&db).len(), 4);
    check_listings(&store, &kept).await;
    check_stats(&store, &kept).await;
    // All of them: the runs are forgotten.
    store
        .prune(None, Some(base() + Duration::hours(48)), 50)
        .await
        .unwrap();
    assert_eq!(runs(&db), Vec::new());
    check_listings(&store, &[]).await;
    store.close().await;
}

/// Brute force of `top_sources` with every group kept (the limit is above their number).
fn brute_groups(stored: &[Session], q: &TopSourcesQuery) -> BTreeMap<GroupKey, u64> {
    let f = &q.filter;
    let mut want = BTreeMap::new();
    for s in stored {
        let pass = f.since.is_none_or(|t| s.timestamp >= t)
            && f.until.is_none_or(|t| s.timestamp < t)
            && f.honeypot.as_ref().is_none_or(|h| *h == s.honeypot)
            && f.sensor.as_ref().is_none_or(|x| *x == s.sensor)
            && f.protocol
                .as_ref()
                .is_none_or(|p| s.protocol.as_ref() == Some(p))
            && f.destination_port
                .is_none_or(|p| s.destination_port == Some(p))
            && f.country.as_ref().is_none_or(|c| {
                s.source_geo.as_ref().and_then(|g| g.country_code.as_ref()) == Some(c)
            })
            && s.protocol
                .as_ref()
                .is_none_or(|p| !q.exclude_protocols.contains(p));
        if !pass {
            continue;
        }
        let (protocol, port) = match q.grouping {
            SourceGrouping::Honeypot => (None, None),
            SourceGrouping::Service => (s.protocol.clone(), s.destination_port),
        };
        *want
            .entry((s.source_ip.unwrap(), s.honeypot.clone(), protocol, port))
            .or_default() += 1;
    }
    want
}

type GroupKey = (IpAddr, String, Option<String>, Option<u16>);

async fn top_groups(store: &Arc<dyn Store>, q: &TopSourcesQuery) -> BTreeMap<GroupKey, u64> {
    let got = store.top_sources(q.clone()).await.unwrap();
    assert!(!got.truncated);
    got.rows
        .iter()
        .map(|r| {
            (
                (
                    r.source_ip,
                    r.honeypot.clone(),
                    r.protocol.clone(),
                    r.destination_port,
                ),
                r.count,
            )
        })
        .collect()
}

/// Windows that take some runs whole and cut others, with the filters the kept per-run
/// counts are filtered by in memory (and a country, which they cannot be).
fn cache_queries() -> Vec<TopSourcesQuery> {
    let t = |h: i64| Some(base() + Duration::hours(h));
    let mut out = Vec::new();
    for (since, until) in [(None, None), (t(0), t(24)), (t(3), t(20)), (t(6), t(18))] {
        let window = SessionFilter {
            since,
            until,
            ..SessionFilter::default()
        };
        let filters = [
            window.clone(),
            SessionFilter {
                honeypot: Some("cowrie".into()),
                ..window.clone()
            },
            SessionFilter {
                sensor: Some("sensor-b".into()),
                protocol: Some("ssh".into()),
                ..window.clone()
            },
            SessionFilter {
                destination_port: Some(445),
                ..window.clone()
            },
            SessionFilter {
                country: Some("DE".into()),
                ..window.clone()
            },
        ];
        for filter in filters {
            for grouping in [SourceGrouping::Honeypot, SourceGrouping::Service] {
                for exclude_protocols in [vec![], vec!["telnet".to_string()]] {
                    out.push(TopSourcesQuery {
                        filter: filter.clone(),
                        grouping,
                        exclude_protocols,
                        limit: 1000,
                    });
                }
            }
        }
    }
    out
}

/// Every query twice (the second finds the per-run counts the first kept).
async fn check_cached_top_sources(store: &Arc<dyn Store>, stored: &[Session], when: &str) {
    for q in cache_queries() {
        let want = brute_groups(stored, &q);
        assert_eq!(top_groups(store, &q).await, want, "{when}, first: {q:?}");
        assert_eq!(top_groups(store, &q).await, want, "{when}, again: {q:?}");
    }
}

/// Sealed runs' counts of probed addresses are kept in memory between queries. They must
/// stay exact through retention (here and in another process's store on the same file)
/// and re-normalization, which change sealed runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_run_counts_stay_exact_through_retention_and_renormalization() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kept.db");
    let store = open_file(&db).await;
    // Four runs over hours 0-6, 6-12, 12-18 and 18-24: a day's window takes runs whole
    // and the others cut them.
    let parts = consecutive_parts(60, 4, 300, 6);
    let mut stored = store_in_runs(&store, &db, &parts).await;
    check_cached_top_sources(&store, &stored, "stored").await;

    // Retention through this store: run 0 loses its first three hours.
    let cut = base() + Duration::hours(3);
    store.prune(None, Some(cut), 50).await.unwrap();
    stored.retain(|s| s.timestamp >= cut);
    check_cached_top_sources(&store, &stored, "after retention").await;

    // Through another store on the same file, as `apiary` run beside the server would.
    let other = open_file(&db).await;
    let cut = base() + Duration::hours(9);
    other.prune(None, Some(cut), 50).await.unwrap();
    other.close().await;
    stored.retain(|s| s.timestamp >= cut);
    check_cached_top_sources(&store, &stored, "after another store's retention").await;

    // Re-normalization moves a session of sealed run 2 to another honeypot.
    let i = stored
        .iter()
        .position(|s| s.id.unwrap() >> 16 == 2 && s.honeypot == "cowrie")
        .unwrap();
    let mut moved = stored.remove(i);
    moved.honeypot = "dionaea".into();
    moved.channel = "dionaea.events".into();
    moved.id = None;
    let raw_id = moved.raw_id.unwrap();
    store
        .renormalize_batch(vec![(
            raw_id,
            Ok(vec![apiary_model::Normalized::Session(Box::new(
                moved.clone(),
            ))]),
        )])
        .await
        .unwrap();
    stored.push(moved);
    check_cached_top_sources(&store, &stored, "after re-normalization").await;

    // The counts are served from memory: a delete behind the store's back (not recorded
    // in its counters) is not seen in a kept run (run 2, which starts after every
    // retention cutoff so far), and is once retention deletes from that run.
    let hidden: i64 = conn(&db)
        .query_row(
            "SELECT id FROM sessions WHERE id >> 16 = 2 AND source_key IS NOT NULL LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    conn(&db)
        .execute("DELETE FROM sessions WHERE id = ?1", [hidden])
        .unwrap();
    let day = by_honeypot(base(), base() + Duration::hours(24));
    assert_eq!(top_groups(&store, &day).await, brute_groups(&stored, &day));
    stored.retain(|s| s.id != Some(hidden));
    assert_ne!(top_groups(&store, &day).await, brute_groups(&stored, &day));
    let cut = base() + Duration::hours(13);
    store.prune(None, Some(cut), 50).await.unwrap();
    stored.retain(|s| s.timestamp >= cut);
    assert_eq!(top_groups(&store, &day).await, brute_groups(&stored, &day));
    store.close().await;
}

/// What the database holds, grouped as `top_sources` by honeypot over `[since, until)`.
fn groups_in_db(db: &Path, since: DateTime<Utc>, until: DateTime<Utc>) -> BTreeMap<GroupKey, u64> {
    conn(db)
        .prepare(
            "SELECT source_ip, honeypot, COUNT(*) FROM sessions
             WHERE source_ip IS NOT NULL AND ts >= ?1 AND ts < ?2 GROUP BY 1, 2",
        )
        .unwrap()
        .query_map([since.timestamp_micros(), until.timestamp_micros()], |r| {
            let ip: String = r.get(0)?;
            Ok((
                (ip.parse().unwrap(), r.get(1)?, None, None),
                r.get::<_, i64>(2)? as u64,
            ))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// Queries racing inserts that seal runs and retention passes that cut into them: once
/// everything has stopped, what the queries left in memory must still give the stored
/// counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kept_run_counts_survive_racing_inserts_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("race.db");
    let store = open_file(&db).await;
    let parts = consecutive_parts(80, 10, 160, 2);
    let (since, until) = (base(), base() + Duration::hours(30));
    let day = by_honeypot(since, until);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, db) = (store.clone(), db.clone());
        tokio::spawn(async move { insert_in_runs(&store, &db, &parts).await })
    };
    let pruner = {
        let store = store.clone();
        tokio::spawn(async move {
            for h in 1..12 {
                tokio::time::sleep(std::time::Duration::from_millis(40)).await;
                store
                    .prune(None, Some(base() + Duration::hours(h)), 25)
                    .await
                    .unwrap();
            }
        })
    };
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (store, done, q) = (store.clone(), done.clone(), day.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    store.top_sources(q.clone()).await.unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    writer.await.unwrap();
    pruner.await.unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut queries = 0;
    for r in readers {
        queries += r.await.unwrap();
    }
    assert!(queries > 10, "the queries raced the writes: {queries}");
    assert_eq!(
        top_groups(&store, &day).await,
        groups_in_db(&db, since, until)
    );
    // Once more after one more retention pass, which the kept counts must see.
    store
        .prune(None, Some(base() + Duration::hours(13)), 1000)
        .await
        .unwrap();
    assert_eq!(
        top_groups(&store, &day).await,
        groups_in_db(&db, since, until)
    );
    store.close().await;
}
