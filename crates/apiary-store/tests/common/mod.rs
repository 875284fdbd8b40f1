//! Fixtures shared by the contract suite.
#![allow(dead_code)]

use std::sync::Arc;

use apiary_store::Store;

/// The PostgreSQL store under test, or `None` (test skipped) when
/// `APIARY_TEST_DATABASE_URL` is unset. The database must be empty.
pub async fn postgres() -> Option<Arc<dyn Store>> {
    let url = std::env::var("APIARY_TEST_DATABASE_URL").ok()?;
    Some(
        apiary_store::open(&url)
            .await
            .expect("APIARY_TEST_DATABASE_URL is set but the store does not open"),
    )
}
