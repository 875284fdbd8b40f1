//! PostgreSQL: a batch whose COMMIT fails is stored exactly once when retried, whether
//! the COMMIT was lost on the way (rolled back) or PostgreSQL committed and only its
//! answer was lost. The fault is a real broken TCP link ([`FaultyLink`]) at that moment.
//! Needs `APIARY_TEST_DATABASE_URL`; skipped without it.

use std::time::Duration;

use apiary_store::{Dimension, SessionFilter, Store};
use apiary_testdata::pg::{CommitFault, FaultyLink};
use apiary_testdata::stored_rows as stored;

mod common;
use common::*;

async fn store_until_ok(store: &dyn Store, items: &[apiary_store::IngestItem]) -> (u32, u64) {
    let mut failures = 0;
    loop {
        let (_, r) = store.insert_batch_owned(items.to_vec()).await;
        match r {
            Ok(r) => return (failures, r.sessions),
            Err(e) => {
                failures += 1;
                assert!(failures < 20, "never committed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_is_retried_without_storing_twice() {
    let Ok(url) = std::env::var("APIARY_TEST_DATABASE_URL") else {
        eprintln!("\n*** SKIPPED postgres_commit: APIARY_TEST_DATABASE_URL is not set ***\n");
        return;
    };
    let schema = PgSchema::create(&url).await;
    let link = FaultyLink::start(&url).await;
    let store = apiary_store::open(&scoped_url(&link.url(&url), schema.name()))
        .await
        .expect("open through the link");

    let first = items_for(&gen_sessions(1, 300, 24));
    let second = items_for(&gen_sessions(2, 200, 24));
    let (since, until) = (
        base() - chrono::Duration::days(3),
        base() + chrono::Duration::days(3),
    );

    // PostgreSQL never sees the COMMIT: the retry stores the batch.
    link.arm(CommitFault::Lost);
    let (failures, sessions) = store_until_ok(&*store, &first).await;
    assert_eq!(link.fired(), 1);
    assert!(failures >= 1, "the broken COMMIT is reported");
    assert_eq!(sessions, 300);
    assert_eq!(stored(&*store, "raw_messages").await, 300);

    // PostgreSQL commits, the answer is lost: the retry finds the batch stored.
    link.arm(CommitFault::AnswerLost);
    let (failures, sessions) = store_until_ok(&*store, &second).await;
    assert_eq!(link.fired(), 2);
    assert!(failures >= 1, "the lost answer is reported");
    assert_eq!(
        sessions, 200,
        "the retry returns what the first attempt stored"
    );
    assert_eq!(stored(&*store, "raw_messages").await, 500, "stored once");
    assert_eq!(stored(&*store, "sessions").await, 500);
    assert_eq!(
        all_sessions(&store, SessionFilter::default(), 100)
            .await
            .len(),
        500,
        "rows, not counters"
    );
    assert_eq!(store.total_sessions(since, until).await.unwrap(), 500);
    let top: u64 = store
        .top(Dimension::Honeypot, since, until, 100)
        .await
        .unwrap()
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(top, 500, "roll-ups counted once");

    // The same items again, with no fault, are a new batch: stored again (the store does
    // not deduplicate payloads, only retries of a failed commit).
    let (failures, _) = store_until_ok(&*store, &first).await;
    assert_eq!(failures, 0);
    assert_eq!(stored(&*store, "raw_messages").await, 800);
    store.close().await;
}
