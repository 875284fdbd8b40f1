//! SQLite's credential search index is merged in bulk every `merge_every` sessions: a
//! search must find exactly the sessions with that username or password whether their
//! terms are merged or still only in `credentials`, after retention deleted some of them,
//! and on a database whose credentials predate the term table (migration 0013, merged on
//! open).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use apiary_model::{Credential, Normalized, Session};
use apiary_store::{open, SessionFilter, Store};
use chrono::Duration;
use rusqlite::Connection;

mod common;
use common::*;

async fn open_file(db: &Path) -> Arc<dyn Store> {
    open(&format!("sqlite://{}", db.display())).await.unwrap()
}

fn sql_i64(db: &Path, sql: &str) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// Every username and password of `sessions`.
fn terms(sessions: &[Session]) -> BTreeSet<String> {
    sessions
        .iter()
        .flat_map(|s| &s.details.credentials)
        .flat_map(|c| [c.username.clone(), c.password.clone()])
        .collect()
}

/// For each term: the raw ids of the sessions a search finds, against those that have it.
async fn check_search(store: &Arc<dyn Store>, stored: &[Session], terms: &BTreeSet<String>) {
    for term in terms {
        let filter = SessionFilter {
            credential: Some(term.clone()),
            ..SessionFilter::default()
        };
        let found: BTreeSet<i64> = all_sessions(store, filter, 7)
            .await
            .iter()
            .map(|s| s.raw_id.unwrap())
            .collect();
        let want: BTreeSet<i64> = stored
            .iter()
            .filter(|s| {
                s.details
                    .credentials
                    .iter()
                    .any(|c| &c.username == term || &c.password == term)
            })
            .map(|s| s.raw_id.unwrap())
            .collect();
        assert_eq!(found, want, "search for {term:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_is_exact_across_merged_and_recent_sessions_and_after_retention() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    open_file(&db).await.close().await;
    Connection::open(&db)
        .unwrap()
        .execute("UPDATE credential_terms_state SET merge_every = 50", [])
        .unwrap();

    let store = open_file(&db).await;
    // Over three days so the search walks several day partitions.
    let sessions = gen_sessions(11, 250, 72);
    let stored = insert_sessions(&store, &sessions, 40).await;
    let all_terms = terms(&stored);
    assert!(all_terms.len() > 5);
    check_search(&store, &stored, &all_terms).await;
    // Some sessions merged, the newest not yet.
    let merged = sql_i64(&db, "SELECT merged FROM credential_terms_state");
    let max_id = sql_i64(&db, "SELECT MAX(id) FROM sessions");
    assert!(
        merged >= 200 && merged < max_id,
        "merged {merged} of {max_id}"
    );
    assert!(sql_i64(&db, "SELECT COUNT(*) FROM credential_terms") > 0);

    // Retention: the terms of deleted sessions go with them.
    let cutoff = base() + Duration::hours(30);
    store.prune(None, Some(cutoff), 17).await.unwrap();
    let kept: Vec<Session> = stored
        .iter()
        .filter(|s| s.timestamp >= cutoff)
        .cloned()
        .collect();
    assert!(kept.len() < stored.len());
    check_search(&store, &kept, &all_terms).await;
    store.close().await;
    assert_eq!(
        sql_i64(
            &db,
            "SELECT COUNT(*) FROM credential_terms WHERE session_id NOT IN (SELECT id FROM sessions)"
        ),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_builds_the_terms_of_stored_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let store = open_file(&db).await;
    let stored = insert_sessions(&store, &gen_sessions(12, 120, 48), 30).await;
    store.close().await;

    // Back to the schema before migration 0013 (and 0014-0015 after it), credentials kept.
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(BEFORE_RUN_INDEXES).unwrap();
    conn.execute_batch(
        "DROP TABLE credential_terms;
         DROP TABLE credential_terms_state;
         CREATE INDEX credentials_username_day ON credentials
             (ts / 86400000000, username, session_id);
         CREATE INDEX credentials_password_day ON credentials
             (ts / 86400000000, password, session_id);
         DELETE FROM schema_migrations WHERE version = 13;",
    )
    .unwrap();
    drop(conn);

    // Fewer sessions than one merge: left to ingest, searched in credentials.
    let store = open_file(&db).await;
    assert_eq!(sql_i64(&db, "SELECT merged FROM credential_terms_state"), 0);
    check_search(&store, &stored, &terms(&stored)).await;
    store.close().await;

    // A backlog of more than one merge is merged on open.
    Connection::open(&db)
        .unwrap()
        .execute("UPDATE credential_terms_state SET merge_every = 25", [])
        .unwrap();
    let store = open_file(&db).await;
    assert_eq!(
        sql_i64(&db, "SELECT merged FROM credential_terms_state"),
        sql_i64(&db, "SELECT MAX(id) FROM sessions")
    );
    assert!(sql_i64(&db, "SELECT COUNT(*) FROM credential_terms") > 0);
    check_search(&store, &stored, &terms(&stored)).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renormalized_sessions_leave_no_stale_terms_even_when_their_id_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    open_file(&db).await.close().await;
    Connection::open(&db)
        .unwrap()
        .execute("UPDATE credential_terms_state SET merge_every = 10", [])
        .unwrap();
    let store = open_file(&db).await;
    let mut sessions = gen_sessions(13, 40, 5);
    let last = sessions.last_mut().unwrap();
    last.details.credentials = vec![Credential {
        username: "before-user".into(),
        password: "before-pass".into(),
    }];
    let mut stored = insert_sessions(&store, &sessions, 20).await;
    // Everything merged, the last session (the highest id) included.
    let max_id = sql_i64(&db, "SELECT MAX(id) FROM sessions");
    assert_eq!(
        sql_i64(&db, "SELECT merged FROM credential_terms_state"),
        max_id
    );

    // Re-normalized with other credentials: its old session (the highest id) is deleted
    // and SQLite gives the new one the same id.
    let mut renewed = stored.last().unwrap().clone();
    renewed.raw_id = None;
    renewed.details.credentials = vec![Credential {
        username: "after-user".into(),
        password: "after-pass".into(),
    }];
    let raw_id = stored.last().unwrap().raw_id.unwrap();
    store
        .renormalize_batch(vec![(
            raw_id,
            Ok(vec![Normalized::Session(Box::new(renewed.clone()))]),
        )])
        .await
        .unwrap();
    assert_eq!(sql_i64(&db, "SELECT MAX(id) FROM sessions"), max_id);
    renewed.raw_id = Some(raw_id);
    *stored.last_mut().unwrap() = renewed;
    let all: BTreeSet<String> = terms(&stored)
        .into_iter()
        .chain(["before-user".to_string(), "before-pass".to_string()])
        .collect();
    check_search(&store, &stored, &all).await;
    store.close().await;
}
