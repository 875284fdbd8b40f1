//! Ingest end to end over TCP: real hpfeeds clients (ours and the Python package) publish
//! honeypot payloads to the running `apiary` binary; the sessions are queryable in the
//! store with geolocation from the real database, survive a restart, and malformed
//! payloads are kept as raw messages with their error.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use apiary_store::{Page, SessionFilter, Store};
use common::ingest::{self, add_ident, connect, open_store};
use common::*;

const CHANNELS: &str = "cowrie.sessions,dionaea.connections,conpot.events,glastopf.events";

fn cowrie(ip: &str, user: &str) -> Vec<u8> {
    serde_json::json!({
        "session": "a1b2c3", "peerIP": ip, "peerPort": 51234, "hostIP": "10.0.0.5", "hostPort": 22,
        "loggedin": null, "credentials": [[user, "hunter2"]], "commands": [], "urls": [],
        "version": "SSH-2.0-libssh2_1.8.0", "ttylog": null, "protocol": "ssh"
    })
    .to_string()
    .into_bytes()
}

fn geo_env() -> (String, String) {
    ("APIARY_GEO__DIR".into(), geo_dir())
}

async fn wait_raw(store: &dyn Store, want: u64) -> u64 {
    ingest::wait_raw(store, want, Duration::from_secs(30)).await
}

fn all() -> SessionFilter {
    SessionFilter::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_events_are_normalized_geolocated_and_survive_restart() {
    let (k, v) = geo_env();
    std::env::set_var(&k, &v);
    let mut server = TestServer::start(&[]);
    add_ident(&server, "sensor-a", "s3cret", CHANNELS);
    let mut client = connect(&server, "sensor-a", "s3cret").await;

    // Our Rust client: cowrie sessions from the US (v4 and v6), a dionaea accept, a
    // dionaea listen (not an attack), an RFC 1918 source, hostile and malformed payloads.
    client
        .publish("cowrie.sessions", cowrie("8.8.8.8", "root"))
        .await
        .unwrap();
    client
        .publish(
            "cowrie.sessions",
            cowrie("2001:4860:4860::8888", "<script>alert(1)</script>"),
        )
        .await
        .unwrap();
    client
        .publish("cowrie.sessions", cowrie("192.168.1.50", "admin"))
        .await
        .unwrap();
    let dionaea = serde_json::json!({"connection_type": "accept", "connection_transport": "tcp",
        "connection_protocol": "smbd", "remote_host": "::ffff:81.2.69.160", "remote_port": 51912,
        "remote_hostname": "", "local_host": "::ffff:203.0.113.5", "local_port": 445});
    client
        .publish("dionaea.connections", dionaea.to_string().into_bytes())
        .await
        .unwrap();
    let listen = serde_json::json!({"connection_type": "listen", "connection_transport": "tcp",
        "connection_protocol": "smbd", "remote_host": "", "remote_port": 0,
        "local_host": "0.0.0.0", "local_port": 445});
    client
        .publish("dionaea.connections", listen.to_string().into_bytes())
        .await
        .unwrap();
    client
        .publish("cowrie.sessions", b"{not json \xff".to_vec())
        .await
        .unwrap();
    client.flush().await.unwrap();

    // The Python hpfeeds 3.1.0 client publishes too.
    let python = test_python();
    let out = std::process::Command::new(&python)
        .arg(repo_root().join("tests/python/hpfeeds_peer.py"))
        .args(["sync-pub", "--port", &server.hpfeeds.port().to_string()])
        .args([
            "--ident",
            "sensor-a",
            "--secret",
            "s3cret",
            "--channel",
            "cowrie.sessions",
        ])
        .arg("--payload")
        .arg(String::from_utf8(cowrie("81.2.69.142", "pyuser")).unwrap())
        .args(["--wait-error", "1"])
        .output()
        .expect("run python client");
    assert_success(&out);

    let store = open_store(server.data_dir()).await;
    assert_eq!(
        wait_raw(&*store, 7).await,
        7,
        "every published message is stored raw"
    );

    let (sessions, _) = store.sessions(all(), Page::default()).await.unwrap();
    let by_ip = |ip: &str| {
        let ip: IpAddr = ip.parse().unwrap();
        sessions.iter().find(|s| s.source_ip == Some(ip)).cloned()
    };
    assert_eq!(
        sessions.len(),
        5,
        "listen record and malformed payload make no session: {sessions:#?}"
    );
    let us = by_ip("8.8.8.8").expect("cowrie session");
    assert_eq!(us.honeypot, "cowrie");
    assert_eq!(us.sensor, "sensor-a");
    assert_eq!(us.channel, "cowrie.sessions");
    assert_eq!(us.destination_port, Some(22));
    assert_eq!(us.details.credentials[0].username, "root");
    assert_eq!(
        us.source_geo
            .as_ref()
            .and_then(|g| g.country_code.as_deref()),
        Some("US")
    );
    // ASN from the @ip-location-db/asn ranges fetched beside the city database.
    assert_eq!(us.source_geo.as_ref().and_then(|g| g.asn), Some(15169));
    let v6 = by_ip("2001:4860:4860::8888").expect("ipv6 session");
    assert_eq!(v6.source_geo.as_ref().and_then(|g| g.asn), Some(15169));
    assert_eq!(
        v6.details.credentials[0].username,
        "<script>alert(1)</script>"
    );
    assert!(v6
        .source_geo
        .as_ref()
        .and_then(|g| g.country_code.clone())
        .is_some());
    let internal = by_ip("192.168.1.50").expect("RFC 1918 sources are kept");
    assert!(internal.internal);
    assert!(internal.source_geo.is_none());
    let smb = by_ip("81.2.69.160").expect("dionaea accept, ::ffff: unmapped");
    assert_eq!(
        (smb.honeypot.as_str(), smb.destination_port),
        ("dionaea", Some(445))
    );
    assert_eq!(
        smb.source_geo
            .as_ref()
            .and_then(|g| g.country_code.as_deref()),
        Some("GB")
    );
    let py = by_ip("81.2.69.142").expect("session published by the Python client");
    assert_eq!(py.details.credentials[0].username, "pyuser");

    // The malformed payload is kept, byte for byte, with its error.
    let raws = store
        .raw_messages(apiary_store::RawQuery::default(), Page::default())
        .await
        .unwrap()
        .0;
    let bad = raws
        .iter()
        .find(|r| &r.event.payload[..] == b"{not json \xff")
        .expect("malformed raw kept");
    assert_eq!(bad.status, apiary_store::RawStatus::Error);
    assert!(bad.error.is_some());
    drop(client);

    // Restart: everything is still there and ingest resumes.
    assert!(server.stop(), "clean shutdown");
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    let server = TestServer::start_in(dir, &[]);
    let store2 = open_store(server.data_dir()).await;
    let (after, _) = store2.sessions(all(), Page::default()).await.unwrap();
    assert_eq!(after.len(), 5, "sessions survive a restart");
    let mut c = connect(&server, "sensor-a", "s3cret").await;
    c.publish("cowrie.sessions", cowrie("8.8.4.4", "again"))
        .await
        .unwrap();
    c.flush().await.unwrap();
    assert_eq!(wait_raw(&*store2, 8).await, 8);
}
