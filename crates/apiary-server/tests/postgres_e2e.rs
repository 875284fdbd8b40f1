//! The server on PostgreSQL, end to end: hpfeeds publishers → broker → pipeline → a real
//! PostgreSQL, read back through the store and the REST API; and the database dropping
//! the server's connections mid-stream (what a restart or a fail-over does): ingest slows
//! down and retries, nothing is lost or stored twice, and the roll-ups stay exact.
//!
//! Needs `APIARY_TEST_DATABASE_URL` (`.ci/run` sets it); skipped loudly without it. Each
//! run works in a scratch schema of its own.

mod common;

use std::time::{Duration, Instant};

use apiary_testdata::pg::{scoped_url, terminate_sessions, PgSchema};
use common::ingest::{
    assert_roll_ups_match_rows, connect, count, cowrie, metric, one_more_is_stored, wait_raw,
};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_on_postgres_survives_dropped_connections() {
    let Ok(base_url) = std::env::var("APIARY_TEST_DATABASE_URL") else {
        eprintln!("\n*** SKIPPED postgres_e2e: APIARY_TEST_DATABASE_URL is not set ***\n");
        return;
    };
    let schema = PgSchema::create(&base_url).await;
    // The server's connections carry a name of their own, so the test can drop them.
    let app = format!("apiary-{}", schema.name());
    let url = scoped_url(&base_url, schema.name());
    let server_url = format!("{url}&application_name={app}");
    let server = TestServer::start(&["--database-url", &server_url]);
    let (ok, out, err) = admin(
        server.data_dir(),
        &[
            "ident",
            "add",
            "sensor-a",
            "--secret",
            "s3cret",
            "--publish",
            "cowrie.sessions",
            "--database-url",
            &url,
        ],
    );
    assert!(ok, "{out}{err}");
    let mut client = connect(&server, "sensor-a", "s3cret").await;
    let store = apiary_store::open(&url).await.expect("open the store");

    const FIRST: usize = 500;
    for i in 0..FIRST {
        client.publish("cowrie.sessions", cowrie(i)).await.unwrap();
    }
    client.flush().await.unwrap();
    assert_eq!(
        wait_raw(&*store, FIRST as u64, Duration::from_secs(60)).await,
        FIRST as u64
    );

    // The REST API reads them back from PostgreSQL.
    let key = run_admin(
        server.data_dir(),
        &[
            "apikey",
            "create",
            "admin@localhost",
            "--database-url",
            &url,
        ],
    );
    let key = key.lines().last().unwrap().trim().to_owned();
    let (status, body) = http_get(
        server.http,
        &format!("/api/session/?channel=cowrie.sessions&limit=5&api_key={key}"),
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"].as_array().map(Vec::len), Some(5), "{body}");

    // A second part, streaming while PostgreSQL drops the server's connections.
    const SECOND: usize = 20_000;
    let publisher = tokio::spawn(async move {
        for i in FIRST..FIRST + SECOND {
            client
                .publish("cowrie.sessions", cowrie(i))
                .await
                .expect("publish: the server must hold us back, not drop us");
        }
        client.flush().await.unwrap();
        client
    });
    let total = (FIRST + SECOND) as u64;
    let mut terminated = 0;
    let mut rounds = 0;
    while count(&*store, "raw_messages").await < total && rounds < 20 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        terminated += terminate_sessions(&base_url, &app).await;
        rounds += 1;
    }
    let mut client = publisher.await.unwrap();
    assert!(terminated > 0, "the server's connections were dropped");
    assert_eq!(
        wait_raw(&*store, total, Duration::from_secs(120)).await,
        total,
        "every published message is stored once"
    );
    assert_eq!(
        count(&*store, "sessions").await,
        total,
        "each with its session"
    );

    // Exact counts, not the counters the store keeps: nothing was stored twice.
    let rows = assert_roll_ups_match_rows(&*store, "after the dropped connections").await;
    assert_eq!(rows, total);

    // The server goes on with fresh connections.
    let started = Instant::now();
    one_more_is_stored(&mut client, &*store, total, cowrie(FIRST + SECOND)).await;
    let failures = metric(&server, "apiary_ingest_commit_failures_total").unwrap_or(0.0);
    println!(
        "postgres_e2e: {terminated} server connections terminated in {rounds} rounds; \
         {failures} commit attempts failed and were retried; all {total} stored once; \
         one more stored {:.2} s later",
        started.elapsed().as_secs_f64()
    );
    store.close().await;
    drop(server);
}
