//! The store contract: one suite of async functions over `Arc<dyn Store>`, run against
//! every backend. `sqlite::memory:` and a temp-file SQLite always run; PostgreSQL runs when
//! `APIARY_TEST_DATABASE_URL` is set (and is skipped otherwise).
//!
//! Every test expects an empty database.

use std::sync::Arc;

use apiary_model::{Ident, Secret};
use apiary_store::{open, Store};

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
                    let Some(store) = super::common::postgres().await else {
                        return;
                    };
                    super::$name(store.clone()).await;
                    store.close().await;
                }
            )*
        }
    };
}

contract!(idents_crud_and_version);

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
