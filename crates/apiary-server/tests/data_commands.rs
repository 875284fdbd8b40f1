//! `apiary import mnemosyne` and `apiary renormalize` on a real SQLite file.

mod common;

use apiary_model::RawEvent;
use apiary_store::{IngestItem, Page, SessionFilter};
use common::*;

fn cowrie_payload(ip: &str, user: &str) -> serde_json::Value {
    serde_json::json!({"peerIP": ip, "peerPort": 40000, "hostIP": "10.0.0.2", "hostPort": 22,
        "credentials": [[user, "pw"]], "version": "SSH-2.0-Go", "protocol": "ssh"})
}

async fn store_at(dir: &std::path::Path) -> std::sync::Arc<dyn apiary_store::Store> {
    apiary_store::open(&format!("sqlite://{}", dir.join("apiary.db").display()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_mnemosyne_dump_counts_bad_lines_and_never_aborts() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("hpfeed.json");
    let mut lines = vec![];
    for (i, ip) in ["198.51.100.1", "198.51.100.2", "8.8.8.8"]
        .iter()
        .enumerate()
    {
        lines.push(
            serde_json::json!({"_id": {"$oid": format!("5d0b6e2f00000000000000{i:02}")},
                "channel": "cowrie.sessions", "ident": "mhn-sensor",
                "payload": cowrie_payload(ip, "root"),
                "timestamp": {"$date": "2019-06-20T12:00:00.000Z"}, "normalized": true})
            .to_string(),
        );
    }
    lines.push("{this is not json".into());
    lines.push(r#"{"channel": "cowrie.sessions", "payload": "x"}"#.into());
    std::fs::write(&dump, lines.join("\n")).unwrap();

    let (ok, out, err) = admin(dir.path(), &["import", "mnemosyne", dump.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("imported 3 messages"), "{out}");
    assert!(out.contains("2 bad lines skipped"), "{out}");
    assert!(err.contains("import"), "progress is shown: {err}");

    let store = store_at(dir.path()).await;
    let (sessions, _) = store
        .sessions(SessionFilter::default(), Page::default())
        .await
        .unwrap();
    assert_eq!(sessions.len(), 3);
    assert!(sessions
        .iter()
        .all(|s| s.sensor == "mhn-sensor" && s.honeypot == "cowrie"));
    assert!(sessions
        .iter()
        .all(|s| s.timestamp.to_rfc3339().starts_with("2019-06-20")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renormalize_turns_old_failures_into_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = admin(dir.path(), &["migrate"]);
    assert!(ok, "{err}");
    let store = store_at(dir.path()).await;
    // Stored by an older, buggy normalizer: raw kept with an error, no session.
    let raw = |ip: &str| RawEvent {
        id: None,
        channel: "cowrie.sessions".into(),
        ident: "s1".into(),
        received_at: chrono::Utc::now(),
        payload: cowrie_payload(ip, "admin").to_string().into_bytes().into(),
    };
    store
        .insert_batch(vec![
            IngestItem {
                raw: raw("198.51.100.7"),
                outcome: Err("old normalizer bug".into()),
            },
            IngestItem {
                raw: raw("198.51.100.8"),
                outcome: Err("old normalizer bug".into()),
            },
        ])
        .await
        .unwrap();
    store.close().await;
    drop(store);

    let (ok, out, err) = admin(
        dir.path(),
        &[
            "renormalize",
            "--channel",
            "cowrie.sessions",
            "--errors-only",
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("renormalized 2 raw messages (0 still failing)"),
        "{out}"
    );
    let store = store_at(dir.path()).await;
    let (sessions, _) = store
        .sessions(SessionFilter::default(), Page::default())
        .await
        .unwrap();
    assert_eq!(sessions.len(), 2);
    assert!(sessions
        .iter()
        .all(|s| s.details.credentials[0].username == "admin"));
    // Running it again changes nothing (no duplicates).
    let (ok, _, _) = admin(dir.path(), &["renormalize", "--channel", "cowrie.sessions"]);
    assert!(ok);
    let (again, _) = store
        .sessions(SessionFilter::default(), Page::default())
        .await
        .unwrap();
    assert_eq!(again.len(), 2);
}
