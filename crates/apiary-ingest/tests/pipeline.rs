//! The pipeline against a real (in-memory SQLite) store: everything sent is committed in
//! order, failures keep the raw message, and heartbeats update the sensor record.

use std::sync::Arc;
use std::time::Duration;

use apiary_broker::Published;
use apiary_geo::GeoDb;
use apiary_ingest::pipeline::{Pipeline, PipelineConfig};
use apiary_store::{Page, RawQuery, SensorRecord, SessionFilter};
use bytes::Bytes;
use chrono::Utc;

fn msg(ident: &str, channel: &str, payload: &str) -> Published {
    Published {
        ident: Bytes::copy_from_slice(ident.as_bytes()),
        channel: Bytes::copy_from_slice(channel.as_bytes()),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        received_at: Utc::now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_everything_and_records_heartbeats() {
    let store = apiary_store::open("sqlite::memory:").await.unwrap();
    let uuid = "6f1c0e1e-0000-4000-8000-000000000001";
    store
        .create_sensor(&SensorRecord {
            uuid: uuid.into(),
            name: "edge-1".into(),
            hostname: "edge-1".into(),
            ip: None,
            honeypot: "apiary".into(),
            ident: uuid.into(),
            created_at: Utc::now(),
            last_seen: None,
            heartbeat: None,
            latitude: None,
            longitude: None,
        })
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let pipeline = Pipeline::spawn(
        rx,
        store.clone(),
        Arc::new(GeoDb::disabled()),
        PipelineConfig {
            batch_size: 100,
            batch_delay: Duration::from_millis(10),
        },
    );
    let n = 1_000;
    for i in 0..n {
        let payload = serde_json::json!({
            "connection_type": "accept", "connection_transport": "tcp",
            "connection_protocol": "smbd", "remote_host": format!("198.51.100.{}", i % 250 + 1),
            "remote_port": 40000 + i, "local_host": "203.0.113.5", "local_port": 445
        });
        tx.send(msg(uuid, "dionaea.connections", &payload.to_string()))
            .await
            .unwrap();
    }
    tx.send(msg(uuid, "dionaea.connections", "{broken"))
        .await
        .unwrap();
    tx.send(msg(uuid, "no.such.channel", "x")).await.unwrap();
    let hb = r#"{"v":1,"sensor":"edge-1","hostname":"edge-1.example","version":"0.1.0","services":["ssh","http"],"uptime_s":42}"#;
    tx.send(msg(uuid, "apiary.heartbeat", hb)).await.unwrap();
    drop(tx);
    pipeline.finish().await;

    let total = store
        .total_sessions(
            Utc::now() - chrono::Duration::hours(1),
            Utc::now() + chrono::Duration::hours(1),
        )
        .await
        .unwrap();
    assert_eq!(total, n as u64, "every session committed");
    let mut seen = 0;
    let page = Page {
        limit: 10_000,
        after: None,
    };
    let (sessions, _) = store
        .sessions(SessionFilter::default(), page)
        .await
        .unwrap();
    for s in &sessions {
        assert_eq!(s.sensor, uuid);
        assert_eq!(s.destination_port, Some(445));
        seen += 1;
    }
    assert_eq!(seen, n);
    let (raws, _) = store
        .raw_messages(
            RawQuery::default(),
            Page {
                limit: 10_000,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        raws.len(),
        n + 3,
        "every raw message kept, including failures"
    );
    // Two batches are in the store at once (one preparing while the other commits), yet
    // they commit in hand-over order: raw ids follow the order of publication.
    let mut by_id: Vec<(i64, u64)> = raws
        .iter()
        .filter_map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.event.payload).ok()?;
            Some((r.event.id?, v["remote_port"].as_u64()?))
        })
        .collect();
    by_id.sort_unstable();
    let ports: Vec<u64> = by_id.iter().map(|&(_, port)| port).collect();
    assert_eq!(ports, (40_000..40_000 + n as u64).collect::<Vec<_>>());
    assert!(raws
        .iter()
        .any(|r| &r.event.payload[..] == b"{broken" && r.error.is_some()));
    assert!(raws
        .iter()
        .any(|r| r.event.channel == "no.such.channel" && r.error.is_some()));

    let sensor = store.get_sensor(uuid).await.unwrap().expect("sensor");
    let hb = sensor.heartbeat.expect("heartbeat recorded");
    assert_eq!(hb["hostname"], "edge-1.example");
    assert_eq!(hb["uptime_s"], 42);
    assert!(sensor.last_seen.is_some());
}
