//! `/api/live` end to end: events published over hpfeeds to the running `apiary` binary
//! arrive on the Server-Sent Events stream with their geolocation; filters work; anonymous
//! clients are refused; a client that never reads loses events for itself only and does
//! not slow ingest or the other clients. Also `/api/live/history` and the map page.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const CHANNELS: &str = "cowrie.sessions,dionaea.connections";

pub fn cowrie(ip: &str, user: &str) -> Vec<u8> {
    serde_json::json!({
        "session": "a1b2c3", "peerIP": ip, "peerPort": 51234, "hostIP": "10.0.0.5", "hostPort": 22,
        "loggedin": [user, "123456"], "credentials": [], "commands": [], "urls": [],
        "version": "SSH-2.0-libssh2_1.8.0", "ttylog": null, "protocol": "ssh"
    })
    .to_string()
    .into_bytes()
}

fn dionaea(ip: &str) -> Vec<u8> {
    serde_json::json!({"connection_type": "accept", "connection_transport": "tcp",
        "connection_protocol": "smbd", "remote_host": ip, "remote_port": 51912,
        "remote_hostname": "", "local_host": "77.88.55.88", "local_port": 445})
    .to_string()
    .into_bytes()
}

/// A data dir with an admin, an API key and a publishing ident; returns the key.
fn prepare(dir: &Path) -> String {
    let run = |args: &[&str]| run_admin(dir, args);
    run(&["user", "add", "admin@example.org", "--role", "admin"]);
    run(&[
        "ident",
        "add",
        "sensor-live",
        "--secret",
        "s3cret",
        "--publish",
        CHANNELS,
    ]);
    let key = run(&["apikey", "create", "admin@example.org"]);
    key.lines().last().unwrap_or_default().trim().to_owned()
}

/// Starts the server with geolocation and a small per-client live buffer.
pub fn start_server(live_buffer: &str) -> (TestServer, String) {
    std::env::set_var("APIARY_GEO__DIR", geo_dir());
    std::env::set_var("APIARY_MAP__LIVE_BUFFER", live_buffer);
    // The live buffer is raised to the ingest batch size; pin it so the flood below
    // outgrows it whatever the default batch size is.
    std::env::set_var("APIARY_INGEST__BATCH_SIZE", "2000");
    let dir = tempfile::tempdir().expect("tempdir");
    let key = prepare(dir.path());
    let server = TestServer::start_in(dir, &[]);
    (server, key)
}

/// A publishing hpfeeds client authenticated as `sensor-live`.
pub fn publisher(server: &TestServer) -> RawClient {
    let mut c = RawClient::connect(server.hpfeeds);
    c.auth("sensor-live", "s3cret");
    c
}

/// An SSE client reading on a thread; events come out of the receiver as
/// (event name, data).
pub struct Sse {
    pub rx: mpsc::Receiver<(String, String)>,
}

/// Opens `/api/live{query}`; returns the status line when it is not 200.
pub fn sse(addr: SocketAddr, query: &str, key: Option<&str>) -> Result<Sse, String> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET /api/live{query} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{auth}\r\n"
    )
    .expect("write");
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).expect("status line");
    if !status.contains(" 200 ") {
        return Err(status);
    }
    loop {
        let mut h = String::new();
        r.read_line(&mut h).expect("header");
        if h == "\r\n" {
            break;
        }
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Chunked transfer: chunk-size lines are skipped because they never start with
        // `event:` or `data:`.
        let (mut name, mut data) = (String::new(), String::new());
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if let Some(v) = l.strip_prefix("event:") {
                name = v.trim().to_owned();
            } else if let Some(v) = l.strip_prefix("data:") {
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            } else if l.is_empty()
                && !data.is_empty()
                && tx
                    .send((std::mem::take(&mut name), std::mem::take(&mut data)))
                    .is_err()
            {
                return;
            }
        }
    });
    Ok(Sse { rx })
}

impl Sse {
    /// `attack` events until `n` arrived or `timeout` passed.
    pub fn attacks(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut out = vec![];
        while out.len() < n {
            match self
                .rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok((name, data)) if name == "attack" => {
                    out.push(serde_json::from_str(&data).expect("event JSON"))
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        out
    }
}

fn metric(server: &TestServer, name: &str) -> u64 {
    let (_, body) = http_get(server.http, "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until the pipeline has a live subscriber registered (the SSE handshake is done
/// when the headers arrive, so this is immediate) — kept as a short settle.
/// `GET /api/live/history` of the last five minutes with `key`; asserts 200.
fn live_history(server: &TestServer, key: &str) -> Value {
    let (status, body) = http_get(
        server.http,
        &format!("/api/live/history?minutes=5&api_key={key}"),
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn settle() {
    std::thread::sleep(Duration::from_millis(200));
}

#[test]
fn live_stream_geo_filters_auth_and_slow_clients() {
    let (server, key) = start_server("256"); // raised to ingest.batch_size

    // Anonymous and wrong-key clients are refused.
    let (status, _) = http_get(server.http, "/api/live");
    assert_eq!(status, 401);
    let err = sse(server.http, "", Some("not-a-key"))
        .err()
        .expect("refused");
    assert!(err.contains(" 401 "), "{err}");

    let all = sse(server.http, "", Some(&key)).expect("sse");
    let de = sse(server.http, "?country=de", Some(&key)).expect("sse");
    let dionaea_only = sse(server.http, "?honeypot=dionaea", Some(&key)).expect("sse");
    let other_sensor = sse(server.http, "?sensor=nobody", Some(&key)).expect("sse");
    // Never read: its socket buffers fill up and it falls behind.
    let stalled = {
        // A tiny receive buffer, so the server's writes back up after a few events
        // instead of after megabytes of kernel buffering.
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        sock.connect(&server.http.into()).unwrap();
        let mut s: TcpStream = sock.into();
        write!(
            s,
            "GET /api/live HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n"
        )
        .unwrap();
        s
    };
    settle();
    assert_eq!(metric(&server, "apiary_live_clients"), 5);

    // Several countries (GeoLite2 City): US, GB, DE, JP, BR.
    let mut p = publisher(&server);
    let sources = [
        ("8.8.8.8", "US"),
        ("81.2.69.142", "GB"),
        ("5.9.0.1", "DE"),
        ("133.242.0.1", "JP"),
    ];
    // The ident may need a reload interval to become known; retry the first publish.
    let first = {
        let mut got = vec![];
        for _ in 0..30 {
            p.publish(
                "sensor-live",
                "cowrie.sessions",
                &cowrie(sources[0].0, "root"),
            );
            got = all.attacks(1, Duration::from_millis(500));
            if !got.is_empty() {
                break;
            }
            p = publisher(&server);
        }
        got.pop().expect("first live event")
    };
    assert_eq!(first["source_ip"], "8.8.8.8");
    assert_eq!(first["source"]["country_code"], "US");
    assert!(first["source"]["lat"].is_number() && first["source"]["lon"].is_number());
    assert!(first["raw_id"].is_i64(), "{first}");
    assert_eq!(first["sensor"], "sensor-live");
    assert_eq!(first["honeypot"], "cowrie");
    assert_eq!(first["channel"], "cowrie.sessions");
    assert_eq!(first["destination_port"], 22);
    assert_eq!(first["protocol"], "ssh");
    assert_eq!(first["summary"], "ssh login root/123456");
    // 10.0.0.5 has no location and none is configured: the event still arrives.
    assert_eq!(first["location_source"], "none");
    assert!(first["sensor_location"].is_null());

    for (ip, _) in &sources[1..] {
        p.publish("sensor-live", "cowrie.sessions", &cowrie(ip, "admin"));
    }
    p.publish(
        "sensor-live",
        "dionaea.connections",
        &dionaea("200.160.2.3"),
    );
    let rest = all.attacks(4, Duration::from_secs(10));
    assert_eq!(rest.len(), 4, "{rest:?}");
    for (ev, (ip, cc)) in rest.iter().zip(&sources[1..]) {
        assert_eq!(ev["source_ip"], *ip);
        assert_eq!(ev["source"]["country_code"], *cc, "{ev}");
        assert!(ev["source"]["lat"].is_number(), "{ev}");
    }
    let smb = &rest[3];
    assert_eq!(smb["honeypot"], "dionaea");
    assert_eq!(smb["source"]["country_code"], "BR", "{smb}");
    assert_eq!(smb["destination_port"], 445);
    // The public destination geolocates: the sensor is placed there.
    assert_eq!(smb["location_source"], "destination", "{smb}");
    assert!(smb["sensor_location"]["lat"].is_number());

    // Filters.
    let got = de.attacks(2, Duration::from_secs(3));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["source"]["country_code"], "DE");
    let got = dionaea_only.attacks(2, Duration::from_secs(2));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["honeypot"], "dionaea");
    assert!(other_sensor
        .attacks(1, Duration::from_millis(300))
        .is_empty());

    // History: the same five sessions, oldest first, with session ids.
    let h = live_history(&server, &key);
    let evs = h["events"].as_array().unwrap();
    assert_eq!(evs.len(), 5, "{h}");
    assert_eq!(evs[0]["source_ip"], "8.8.8.8");
    assert!(evs[0]["session_id"].is_i64());
    let (_, body) = http_get(
        server.http,
        &format!("/api/live/history?minutes=5&country=GB&api_key={key}"),
    );
    let h: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["events"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(http_get(server.http, "/api/live/history").0, 401);

    // A flood: the stalled client (never reads) falls behind and
    // loses events for itself; ingest commits everything and the reading client still
    // gets the marker published after the flood.
    // Enough bytes (~17 MB) to overflow what the stalled connection absorbs: the server's
    // socket send buffer (autotuned up to 4 MiB), hyper's buffer and the channel (~2,000
    // events).
    const FLOOD: usize = 40_000;
    let committed_before = metric(&server, "apiary_ingest_raw_committed_total");
    let t = Instant::now();
    for i in 0..FLOOD {
        let ip = format!("5.9.{}.{}", (i / 250) % 250, i % 250 + 1);
        p.publish("sensor-live", "cowrie.sessions", &cowrie(&ip, "flood"));
    }
    // Drain the reading client concurrently so it keeps up.
    let drained = std::thread::spawn(move || {
        let mut n = 0usize;
        let mut marker = None;
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            match all.rx.recv_timeout(Duration::from_secs(30)) {
                Ok((name, data)) if name == "attack" => {
                    n += 1;
                    if data.contains("\"marker\"") || data.contains("marker/123456") {
                        marker = Some(Instant::now());
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        (n, marker)
    });
    loop {
        let c = metric(&server, "apiary_ingest_raw_committed_total");
        if c >= committed_before + FLOOD as u64 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "ingest stalled at {c}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ingest_secs = t.elapsed().as_secs_f64();
    p.publish(
        "sensor-live",
        "cowrie.sessions",
        &cowrie("8.8.4.4", "marker"),
    );
    let (n, marker) = drained.join().unwrap();
    assert!(
        marker.is_some(),
        "reading client never got the marker ({n} events)"
    );
    // A lagging receiver learns (and counts) what it missed when it next polls, which the
    // stalled stream does once its socket drains: read it now, then watch the counter.
    let mut stalled = stalled;
    stalled
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lagged = 0;
    let mut sink = [0u8; 65536];
    while lagged == 0 && Instant::now() < deadline {
        let _ = std::io::Read::read(&mut stalled, &mut sink);
        lagged = metric(&server, "apiary_live_lagged_events_total");
    }
    eprintln!("flood: {FLOOD} events committed in {ingest_secs:.2}s; reader got {n}; lagged total {lagged}");
    assert!(lagged > 0, "the stalled client should have lagged");
    drop(stalled);
}

/// With no `map.server_latitude/longitude`, the server's public address
/// (`hpfeeds.public_host`) is geolocated and sensors without a location of their own are
/// drawn there; live events and history carry `location_source: "server"`. No event is
/// dropped for lack of a location.
#[test]
fn server_location_defaults_to_the_public_host() {
    let geo = geo_dir();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = prepare(dir.path());
    // A config file, not the environment: the other test in this binary shares it.
    let config = dir.path().join("apiary.toml");
    std::fs::write(
        &config,
        format!("[geo]\ndir = {geo:?}\n\n[hpfeeds]\npublic_host = \"81.2.69.142\"\n"),
    )
    .unwrap();
    let server = TestServer::start_in(dir, &["--config", config.to_str().unwrap()]);
    let all = sse(server.http, "", Some(&key)).expect("sse");
    settle();
    let mut p = publisher(&server);
    let got = {
        let mut got = vec![];
        for _ in 0..30 {
            // hostIP 10.0.0.5: private, so the sensor has no location of its own.
            p.publish("sensor-live", "cowrie.sessions", &cowrie("8.8.8.8", "root"));
            got = all.attacks(1, Duration::from_millis(500));
            if !got.is_empty() {
                break;
            }
            p = publisher(&server);
        }
        got.pop().expect("live event")
    };
    assert_eq!(got["location_source"], "server", "{got}");
    let (lat, lon) = (
        got["sensor_location"]["lat"].as_f64().unwrap(),
        got["sensor_location"]["lon"].as_f64().unwrap(),
    );
    // 81.2.69.142 is in the United Kingdom.
    assert!(
        (49.0..61.0).contains(&lat) && (-9.0..2.5).contains(&lon),
        "{got}"
    );
    assert!(
        got["session_id"].is_i64(),
        "live events carry their session id: {got}"
    );
    let h = live_history(&server, &key);
    let evs = h["events"].as_array().unwrap();
    assert!(!evs.is_empty(), "{h}");
    for ev in evs {
        assert_eq!(ev["location_source"], "server", "{ev}");
        assert_eq!(ev["session_id"], got["session_id"], "{ev}");
    }
}
