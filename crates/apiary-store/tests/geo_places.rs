//! SQLite keeps each distinct destination geolocation once (`geo_places`) and a reference
//! in the session row; rows written before migration 0012 hold the JSON inline and must
//! read back the same.

use std::path::Path;
use std::sync::Arc;

use apiary_model::{GeoInfo, Session};
use apiary_store::{open, SessionFilter, Store};
use rusqlite::Connection;

mod common;
use common::*;

async fn open_file(db: &Path) -> Arc<dyn Store> {
    open(&format!("sqlite://{}", db.display())).await.unwrap()
}

fn place(city: &str, lat: f64) -> GeoInfo {
    GeoInfo {
        country_code: Some("NL".into()),
        country: Some("Netherlands".into()),
        city: Some(city.into()),
        latitude: Some(lat),
        longitude: Some(4.9),
        asn: Some(64_500),
        as_org: Some("<b>Example</b> \"AS\"".into()),
    }
}

/// Sessions alternating between two destination places and none.
fn with_places(n: usize) -> Vec<Session> {
    let places = [
        Some(place("Amsterdam", 52.37)),
        Some(place("Delft", 52.01)),
        None,
    ];
    let mut sessions = gen_sessions(7, n, 10);
    for (i, s) in sessions.iter_mut().enumerate() {
        s.destination_geo = places[i % places.len()].clone();
    }
    sessions
}

async fn geos_by_raw_id(store: &Arc<dyn Store>) -> Vec<(i64, Option<GeoInfo>)> {
    let mut out: Vec<_> = all_sessions(store, SessionFilter::default(), 1000)
        .await
        .into_iter()
        .map(|s| (s.raw_id.unwrap(), s.destination_geo))
        .collect();
    out.sort_by_key(|(id, _)| *id);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_place_is_stored_once_and_read_back_in_every_session() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let store = open_file(&db).await;
    let sessions = with_places(90);
    // Three batches: the second and third find the places already interned.
    let stored = insert_sessions(&store, &sessions, 30).await;
    let want: Vec<_> = stored
        .iter()
        .map(|s| (s.raw_id.unwrap(), s.destination_geo.clone()))
        .collect();
    assert_eq!(geos_by_raw_id(&store).await, want);
    store.close().await;

    let c = Connection::open(&db).unwrap();
    let places: i64 = c
        .query_row("SELECT COUNT(*) FROM geo_places", [], |r| r.get(0))
        .unwrap();
    assert_eq!(places, 2);
    let inline: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM sessions WHERE destination_geo LIKE '{%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(inline, 0, "new rows hold a reference, not the JSON");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_written_before_the_migration_keep_their_inline_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let store = open_file(&db).await;
    let stored = insert_sessions(&store, &with_places(30), 30).await;
    store.close().await;

    // What an older version wrote: the JSON in the row (a third place, not interned).
    let legacy = place("Utrecht", 52.09);
    let json = serde_json::to_string(&legacy).unwrap();
    let c = Connection::open(&db).unwrap();
    let first = stored[0].raw_id.unwrap();
    c.execute(
        "UPDATE sessions SET destination_geo = ?1 WHERE raw_id = ?2",
        rusqlite::params![json, first],
    )
    .unwrap();
    drop(c);

    let store = open_file(&db).await;
    let mut want: Vec<_> = stored
        .iter()
        .map(|s| (s.raw_id.unwrap(), s.destination_geo.clone()))
        .collect();
    want[0].1 = Some(legacy);
    assert_eq!(geos_by_raw_id(&store).await, want);
    let one = store
        .sessions(SessionFilter::default(), apiary_store::Page::first(1000))
        .await
        .unwrap()
        .0
        .into_iter()
        .find(|s| s.raw_id == Some(first))
        .unwrap();
    let by_id = store.session(one.id.unwrap()).await.unwrap().unwrap();
    assert_eq!(by_id.destination_geo, want[0].1);
    store.close().await;
}
