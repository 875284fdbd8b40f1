//! New SQLite files (the database and its roll-up file) are created with 16 KiB pages; a
//! database created earlier with SQLite's default 4 KiB pages keeps them and still works.

use std::path::Path;

use apiary_store::{open, SessionFilter};
use rusqlite::Connection;

mod common;
use common::*;

fn page_size(db: &Path) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_files_get_16k_pages_and_old_files_keep_theirs() {
    let dir = tempfile::tempdir().unwrap();

    let new = dir.path().join("new.db");
    let store = open(&format!("sqlite://{}", new.display())).await.unwrap();
    insert_sessions(&store, &gen_sessions(1, 50, 2), 20).await;
    store.close().await;
    assert_eq!(page_size(&new), 16_384);
    assert_eq!(page_size(&dir.path().join("new.db-rollups")), 16_384);

    // A database file that already exists (here an empty one with 4 KiB pages, as every
    // file written before this change).
    let old = dir.path().join("old.db");
    Connection::open(&old)
        .unwrap()
        .execute_batch("PRAGMA page_size = 4096; CREATE TABLE t (x); DROP TABLE t;")
        .unwrap();
    let store = open(&format!("sqlite://{}", old.display())).await.unwrap();
    let stored = insert_sessions(&store, &gen_sessions(2, 50, 2), 20).await;
    let found = all_sessions(&store, SessionFilter::default(), 100).await;
    assert_eq!(found.len(), stored.len());
    store.close().await;
    assert_eq!(page_size(&old), 4096);
}
