//! The web app over real TCP against the `apiary` binary: sessions published over hpfeeds,
//! sign-in, configured cookie settings, auth enforced, filters, a streamed export.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

const EMAIL: &str = "admin@example.org";
const PASSWORD: &str = "web e2e password";

struct Resp {
    status: u16,
    head: String,
    body: String,
}

/// One HTTP/1.1 request on its own connection; chunked bodies are decoded.
fn http(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &str) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("response head");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Resp {
        status,
        head: head.to_owned(),
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").expect("chunk size");
        let n = usize::from_str_radix(size.trim(), 16).expect("hex size");
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
}

fn cowrie(ip: &str, port: u16, minute: u32, user: &str) -> String {
    serde_json::json!({
        "session": format!("s{ip}{minute}"),
        "startTime": format!("{}", (chrono::Utc::now() - chrono::Duration::minutes(minute.into()))
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        "peerIP": ip, "peerPort": 40000 + minute, "hostIP": "192.0.2.1", "hostPort": port,
        "credentials": [[user, "hunter2"]], "commands": [], "urls": [],
        "protocol": if port == 23 { "telnet" } else { "ssh" },
    })
    .to_string()
}

#[test]
fn web_app_over_tcp_with_ingested_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let out = apiary()
        .args(["user", "add", EMAIL, "--role", "admin", "--data-dir"])
        .arg(dir.path())
        .env("APIARY_PASSWORD", PASSWORD)
        .env_remove("APIARY_CONFIG")
        .output()
        .unwrap();
    assert_success(&out);
    let (ok, o, e) = admin(
        dir.path(),
        &[
            "ident",
            "add",
            "sensor-a",
            "--secret",
            "pw",
            "--publish",
            "cowrie.sessions",
        ],
    );
    assert!(ok, "{o}{e}");
    let config = dir.path().join("apiary.toml");
    std::fs::write(
        &config,
        "[http]\nsecure_cookies = true\nsession_hours = 2\nrequest_timeout_secs = 10\n",
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let server = TestServer::start_in(dir, &["--config", &config]);
    let web = server.http;

    // Anonymous: pages redirect to sign-in, the API answers 401.
    let r = http(web, "GET", "/ui/dashboard/", "", "");
    assert!(matches!(r.status, 302 | 303), "{}", r.head);
    assert!(r.head.contains("/ui/login/"), "{}", r.head);
    assert_eq!(http(web, "GET", "/api/session/", "", "").status, 401);

    let mut p = RawClient::connect(server.hpfeeds);
    p.auth("sensor-a", "pw");
    for m in 0..4 {
        p.publish(
            "sensor-a",
            "cowrie.sessions",
            cowrie("203.0.113.5", 22, m, "root").as_bytes(),
        );
    }
    for m in 0..2 {
        p.publish(
            "sensor-a",
            "cowrie.sessions",
            cowrie("198.51.100.9", 23, m, "admin").as_bytes(),
        );
    }

    // Sign in: the cookie carries the configured lifetime and Secure.
    let login = serde_json::json!({"email": EMAIL, "password": PASSWORD}).to_string();
    let r = http(
        web,
        "POST",
        "/auth/login/",
        "Content-Type: application/json\r\n",
        &login,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let set = r
        .head
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: apiary_session=")
        })
        .expect("session cookie")
        .to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(set.contains("; Secure"), "{set}");
    assert!(set.contains("Max-Age=7200"), "{set}");
    let cookie = set.split_once(": ").unwrap().1.split(';').next().unwrap();
    let auth = format!("Cookie: {cookie}\r\n");

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http(web, "GET", "/api/session/", &auth, "");
        assert_eq!(r.status, 200, "{}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        if v["data"].as_array().unwrap().len() == 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sessions not ingested: {}",
            r.body
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Two filters: exactly the matching sessions, in the API and in the report.
    let r = http(
        web,
        "GET",
        "/api/session/?source_ip=203.0.113.5&destination_port=22",
        &auth,
        "",
    );
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let rows = v["data"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert!(rows
        .iter()
        .all(|s| s["source_ip"] == "203.0.113.5" && s["destination_port"] == 22));
    let r = http(
        web,
        "GET",
        "/ui/attacks/?destination_port=23&protocol=telnet",
        &auth,
        "",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body.matches("/ui/session/").count(), 2, "{}", r.body);
    assert!(r.body.contains("198.51.100.9") && !r.body.contains("203.0.113.5"));
    let r = http(web, "GET", "/ui/dashboard/", &auth, "");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("Attacks in the last 24 hours"));
    assert!(
        r.body.contains("/ui/attacks/?source_ip=203.0.113.5"),
        "top attacker linked"
    );

    // The export is streamed (chunked) and holds exactly the filtered set.
    let r = http(
        web,
        "GET",
        "/ui/attacks/export.csv?source_ip=203.0.113.5",
        &auth,
        "",
    );
    assert_eq!(r.status, 200);
    assert!(
        r.head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{}",
        r.head
    );
    assert_eq!(r.body.lines().count(), 5, "{}", r.body);
    assert!(r.body.lines().skip(1).all(|l| l.contains("203.0.113.5")));
    drop(server);
}

/// A request whose handler cannot finish within `http.request_timeout_secs` (here a client
/// that announces a body and stops sending it, holding the login handler) answers 503 at
/// the deadline, and the server keeps serving everyone else.
#[test]
fn a_request_past_the_deadline_answers_503() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("apiary.toml");
    std::fs::write(&config, "[http]\nrequest_timeout_secs = 1\n").unwrap();
    let config = config.to_str().unwrap().to_owned();
    let server = TestServer::start_in(dir, &["--config", &config]);
    let web = server.http;

    let mut slow = TcpStream::connect(web).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(20))).ok();
    write!(
        slow,
        "POST /auth/login/ HTTP/1.1\r\nHost: {web}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"email\": "
    )
    .expect("write");
    let t0 = Instant::now();
    // Meanwhile another client is served at once.
    assert_eq!(http(web, "GET", "/healthz", "", "").status, 200);
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = slow
            .read(&mut buf)
            .expect("response before the read timeout");
        assert!(n > 0, "closed without a response");
        raw.extend_from_slice(&buf[..n]);
    }
    let waited = t0.elapsed();
    let head = String::from_utf8_lossy(&raw).into_owned();
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    // The JSON error may follow the head in a later read.
    let _ = slow.read_to_end(&mut raw);
    let whole = String::from_utf8_lossy(&raw);
    assert!(
        whole.contains(r#""error":"the request took too long"#),
        "{whole}"
    );
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(10),
        "answered after {waited:?}"
    );
    assert_eq!(http(web, "GET", "/healthz", "", "").status, 200);
    drop(server);
}
