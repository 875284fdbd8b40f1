//! The (source address, honeypot) roll-up that top attackers by honeypot take their
//! candidates from, added to databases stored before it: PostgreSQL's migration 0016
//! counts exactly what the writer counts. (The SQLite roll-up file's counterpart is in
//! `rollup_file.rs`.) Needs `APIARY_TEST_DATABASE_URL`; skipped without it.

use apiary_store::Dimension;
use chrono::Utc;

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migration_0016_counts_what_the_writer_counts() {
    let Ok(url) = std::env::var("APIARY_TEST_DATABASE_URL") else {
        eprintln!("\n*** SKIPPED honeypot_source: APIARY_TEST_DATABASE_URL is not set ***\n");
        return;
    };
    let schema = PgSchema::create(&url).await;
    let scoped = scoped_url(&url, schema.name());
    let store = apiary_store::open(&scoped).await.unwrap();
    let now = Utc::now();
    insert_sessions(&store, &recent_sessions(4, 500, now), 100).await;
    let want = recent_tops(&store, now).await;
    let pairs = &want
        .iter()
        .find(|(d, _)| *d == Dimension::HoneypotSource)
        .unwrap()
        .1;
    assert!(
        pairs.len() > SOURCES.len(),
        "addresses seen on several honeypots"
    );
    assert!(pairs.iter().any(|(v, _)| v.starts_with("2001:db8::")));
    store.close().await;

    // Back to what the version before left: no rows of the dimension; then the migration.
    let (client, conn) = tokio_postgres::connect(&scoped, tokio_postgres::NoTls)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "DELETE FROM rollup_hourly WHERE dim = {code};
             DELETE FROM rollup_window WHERE dim = {code};",
            code = Dimension::HoneypotSource.code()
        ))
        .await
        .unwrap();
    client
        .batch_execute(include_str!(
            "../migrations/postgres/0016_honeypot_source_rollup.sql"
        ))
        .await
        .unwrap();
    drop(client);
    conn.await.unwrap().unwrap();

    let store = apiary_store::open(&scoped).await.unwrap();
    assert_eq!(recent_tops(&store, now).await, want);
    // The writer's next batch rebuilds the window, which then agrees with the hourly sums.
    store
        .insert_batch(items_for(&recent_sessions(5, 50, now)))
        .await
        .unwrap();
    let after = recent_tops(&store, now).await;
    for pair in after.chunks(2) {
        assert_eq!(
            pair[0].1, pair[1].1,
            "{:?}: window and hourly sums",
            pair[0].0
        );
    }
    store.close().await;
}
