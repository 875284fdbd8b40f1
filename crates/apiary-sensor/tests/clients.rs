//! Protocol services against real third-party clients: Samba's `smbclient` and Python
//! `impacket` (SMB2 + NTLM), `python-tds` (MSSQL LOGIN7), curl (HTTPS), nmap (UDP). Each test prints `SKIP: ...`
//! and passes when its client is not installed here; `.ci/run` installs them all.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use apiary_sensor::config::Kind;
use apiary_sensor::services::{self, proto::Opts, Bound, Ctx, Limits};
use apiary_sensor::Shared;
use common::*;
use tokio::net::TcpListener;

async fn start(kind: Kind, s: &Arc<Shared>, opts: Opts) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let ctx = Ctx {
        shared: s.clone(),
        limits: Limits {
            timeout: Duration::from_secs(10),
            max_bytes: 64 * 1024,
        },
        sem: Arc::new(tokio::sync::Semaphore::new(100)),
        ssh: None,
    };
    tokio::spawn(services::serve(
        Bound {
            kind,
            listener,
            banner: None,
            shell: None,
            opts: Arc::new(opts),
        },
        ctx,
    ));
    port
}

/// A program that runs (`prog arg` starts), else prints a SKIP line.
fn have(prog: &str, arg: &str) -> bool {
    let ok = std::process::Command::new(prog).arg(arg).output().is_ok();
    if !ok {
        eprintln!("SKIP: `{prog}` is not installed here (bash .ci/run installs it)");
    }
    ok
}

/// The repository's Python venv (or `$APIARY_TEST_PYTHON`) when it can import `module`,
/// else prints a SKIP line.
fn python_with(module: &str) -> Option<PathBuf> {
    let p = std::env::var_os("APIARY_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"));
    let ok = std::process::Command::new(&p)
        .args(["-c", &format!("import {module}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!(
            "SKIP: {} cannot import {module} (bash .ci/run installs it)",
            p.display()
        );
    }
    ok.then_some(p)
}

/// Asserts the NetNTLMv2 hashcat line: `user::DOMAIN:challenge(16 hex):ntproofstr(32
/// hex):blob(hex)`.
fn assert_netntlmv2(h: &str, user: &str, domain: &str) {
    let parts: Vec<&str> = h.split(':').collect();
    assert_eq!(parts.len(), 6, "{h}");
    assert_eq!((parts[0], parts[1], parts[2]), (user, "", domain), "{h}");
    let hexlen = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit()).then_some(s.len());
    assert_eq!(hexlen(parts[3]), Some(16), "{h}");
    assert_eq!(hexlen(parts[4]), Some(32), "{h}");
    assert!(hexlen(parts[5]).is_some_and(|n| n > 32), "{h}");
    // The blob starts with the NTLMv2 client challenge header 0x0101.
    assert!(parts[5].starts_with("0101"), "{h}");
}

/// Samba's smbclient (SMB2/3 negotiate, SPNEGO-wrapped NTLMSSP): the login fails with
/// NT_STATUS_LOGON_FAILURE and the event carries user, domain, workstation and a
/// NetNTLMv2 hash; the challenge names the configured domain.
#[tokio::test]
async fn smbclient_sends_ntlm_credentials() {
    if !have("smbclient", "--version") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let s = shared(d.path());
    let mut opts = Opts::default();
    opts.smb.netbios_domain = "CORP".into();
    opts.smb.netbios_name = "FS01".into();
    let port = start(Kind::Smb, &s, opts).await;
    let out = tokio::process::Command::new("smbclient")
        .args(["-L", "//127.0.0.1", "-p", &port.to_string()])
        .args([
            "-U",
            "CORP\\alice%Secret1",
            "-m",
            "SMB3",
            "--use-kerberos=off",
        ])
        .args(["--option=client min protocol=SMB2", "-n", "LAPTOP7"])
        .env("HOME", d.path())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).into_owned();
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("LOGON_FAILURE"), "{text}");
    let ev = wait_events(&s, 1).await;
    let e = &ev[0];
    assert_eq!(e["service"], "smb", "{e}");
    assert_eq!(e["extra"]["ntlm_user"], "alice", "{e}");
    assert_eq!(e["extra"]["ntlm_domain"], "CORP", "{e}");
    assert_eq!(e["extra"]["ntlm_workstation"], "LAPTOP7", "{e}");
    assert_eq!(e["credentials"][0]["username"], "CORP\\alice", "{e}");
    assert_eq!(e["credentials"][0]["password"], "", "{e}");
    assert_netntlmv2(e["extra"]["ntlm_hash"].as_str().unwrap(), "alice", "CORP");
}

/// impacket's SMBConnection: an SMB1 NEGOTIATE offering `SMB 2.???` is answered in SMB2,
/// the client upgrades, and its NTLM login is recorded.
#[tokio::test]
async fn impacket_upgrades_from_smb1_and_sends_ntlm_credentials() {
    let Some(py) = python_with("impacket") else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let s = shared(d.path());
    let port = start(Kind::Smb, &s, Opts::default()).await;
    let script = format!(
        r#"
from impacket.smbconnection import SMBConnection, SessionError
c = SMBConnection("127.0.0.1", "127.0.0.1", sess_port={port}, timeout=5)
print("dialect", hex(c.getDialect()))
try:
    c.login("bob", "Winter2026!", domain="ACME")
except SessionError as e:
    print("refused", e.getErrorCode() == 0xC000006D)
"#
    );
    let out = tokio::process::Command::new(&py)
        .args(["-c", &script])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).into_owned();
    assert!(text.contains("refused True"), "{text}");
    let ev = wait_events(&s, 1).await;
    let e = &ev[0];
    assert_eq!(e["extra"]["smb_version"], "1", "first packet was SMB1: {e}");
    assert_eq!(e["extra"]["ntlm_user"], "bob", "{e}");
    assert_eq!(e["extra"]["ntlm_domain"], "ACME", "{e}");
    assert_eq!(e["credentials"][0]["username"], "ACME\\bob", "{e}");
    assert_netntlmv2(e["extra"]["ntlm_hash"].as_str().unwrap(), "bob", "ACME");
}

/// python-tds (pure-Python TDS 7.4): PRELOGIN is answered without TLS, the LOGIN7 is
/// recorded with the password de-obfuscated exactly, and the client gets error 18456.
#[tokio::test]
async fn pytds_login7_password_is_captured() {
    let Some(py) = python_with("pytds") else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let s = shared(d.path());
    let port = start(Kind::Mssql, &s, Opts::default()).await;
    let password = "P@ss w0rd!é;'\"x";
    let script = format!(
        r#"
import sys, pytds
try:
    pytds.connect(server="127.0.0.1", port={port}, user="sa", password=sys.argv[1],
                  database="master", appname="evil-app", login_timeout=5, timeout=5)
    print("connected?!")
except pytds.Error as e:
    print("refused", getattr(e, "number", None), e)
"#
    );
    let out = tokio::process::Command::new(&py)
        .args(["-c", &script, password])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).into_owned();
    assert!(text.contains("refused 18456"), "{text}");
    assert!(text.contains("Login failed for user 'sa'"), "{text}");
    let ev = wait_events(&s, 1).await;
    let e = &ev[0];
    assert_eq!(e["service"], "mssql", "{e}");
    assert_eq!(e["credentials"][0]["username"], "sa", "{e}");
    assert_eq!(e["credentials"][0]["password"], password, "{e}");
    assert_eq!(e["extra"]["mssql_app"], "evil-app", "{e}");
    assert_eq!(e["extra"]["mssql_server"], "127.0.0.1", "{e}");
    assert_eq!(e["extra"]["database"], "master", "{e}");
    assert!(e["extra"]["mssql_library"].as_str().is_some(), "{e}");
    assert!(e["extra"]["mssql_hostname"].as_str().is_some(), "{e}");
}

/// curl over TLS (self-signed certificate made for the configured name): the HTTP request
/// is answered and recorded with the SNI and ALPN offer; plain HTTP sent to the TLS port
/// is kept as payload with the TLS error.
#[tokio::test]
async fn curl_over_https_records_sni_alpn_and_request() {
    if !have("curl", "--version") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let s = shared(d.path());
    let opts = Opts {
        tls: Some(services::tls::Tls::self_signed("intranet.corp.test").unwrap()),
        ..Opts::default()
    };
    let port = start(Kind::Https, &s, opts).await;
    let url = format!("https://intranet.corp.test:{port}/admin/login.php?next=%2F");
    let out = tokio::process::Command::new("curl")
        .args(["-k", "-sS", "-v", "--max-time", "5", "-A", "probe/1.0"])
        .args(["--resolve", &format!("intranet.corp.test:{port}:127.0.0.1")])
        .arg(&url)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("It works!"));
    assert!(stderr.contains("CN=intranet.corp.test"), "{stderr}");
    let ev = wait_events(&s, 1).await;
    let e = &ev[0];
    assert_eq!(e["service"], "https", "{e}");
    assert_eq!(e["closed"], "peer", "{e}");
    assert_eq!(e["http"]["path"], "/admin/login.php?next=%2F", "{e}");
    assert_eq!(e["http"]["user_agent"], "probe/1.0", "{e}");
    assert_eq!(e["extra"]["tls_sni"], "intranet.corp.test", "{e}");
    let alpn = e["extra"]["tls_alpn"].as_array().unwrap();
    assert!(alpn.iter().any(|p| p == "http/1.1"), "{e}");
    assert!(
        e["bytes_in"].as_u64().unwrap() > 200,
        "raw TLS bytes are counted: {e}"
    );

    // Plain HTTP on the TLS port.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut sink = Vec::new();
    let _ = c.read_to_end(&mut sink).await;
    let ev = wait_events(&s, 2).await;
    let e = &ev[1];
    assert!(e["extra"]["tls_error"].is_string(), "{e}");
    assert!(
        e["payload_hex"].as_str().unwrap().starts_with("474554"),
        "{e}"
    );
}

async fn start_udp(s: &Arc<Shared>) -> u16 {
    start_udp_on(s, "127.0.0.1:0").await
}

async fn start_udp_on(s: &Arc<Shared>, bind: &str) -> u16 {
    start_udp_window(s, bind, Duration::from_millis(300))
        .await
        .0
}

async fn start_udp_window(
    s: &Arc<Shared>,
    bind: &str,
    window: Duration,
) -> (u16, services::udp::Udp) {
    let sock = std::net::UdpSocket::bind(bind).unwrap();
    sock.set_nonblocking(true).unwrap();
    let port = sock.local_addr().unwrap().port();
    let udp = services::udp::spawn(
        vec![tokio::net::UdpSocket::from_std(sock).unwrap()],
        s.clone(),
        services::udp::UdpConfig {
            window,
            max_flows: 64,
        },
    );
    (port, udp)
}

/// Flows still open when the sensor stops are reported with `closed` = `shutdown`.
#[tokio::test]
async fn udp_shutdown_reports_open_flows() {
    let d = tempfile::tempdir().unwrap();
    let s = shared(d.path());
    let (port, udp) = start_udp_window(&s, "127.0.0.1:0", Duration::from_secs(600)).await;
    let c = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    c.send_to(b"ping", ("127.0.0.1", port)).await.unwrap();
    for _ in 0..100 {
        if s.udp_datagrams.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(events(&s).is_empty(), "the window is long");
    udp.shutdown();
    let ev = wait_events(&s, 1).await;
    assert_eq!(ev[0]["closed"], "shutdown", "{}", ev[0]);
    assert_eq!(ev[0]["payload_hex"], "70696e67");
}

/// The UDP catch-all: a socket sending three datagrams makes one flow event (count,
/// bytes, first payload); an nmap UDP scan of the port is recorded; nothing is answered.
#[tokio::test]
async fn udp_flows_from_a_socket_and_an_nmap_scan() {
    let d = tempfile::tempdir().unwrap();
    let s = shared(d.path());
    let port = start_udp(&s).await;
    let c = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for m in [&b"OPTIONS sip:"[..], b"100@x", b" SIP/2.0"] {
        c.send_to(m, ("127.0.0.1", port)).await.unwrap();
    }
    let mut buf = [0u8; 64];
    let answered = tokio::time::timeout(Duration::from_millis(400), c.recv_from(&mut buf)).await;
    assert!(answered.is_err(), "the catch-all never answers");
    let ev = wait_events(&s, 1).await;
    let e = &ev[0];
    assert_eq!(
        (e["service"].as_str(), e["transport"].as_str()),
        (Some("udp"), Some("udp")),
        "{e}"
    );
    assert_eq!(e["src_port"], c.local_addr().unwrap().port(), "{e}");
    assert_eq!(e["dst_port"], port, "{e}");
    assert_eq!(e["extra"]["udp_datagrams"], 3, "{e}");
    assert_eq!(e["bytes_in"], 25, "{e}");
    assert_eq!(
        e["payload_hex"],
        hex_of(b"OPTIONS sip:100@x SIP/2.0"),
        "{e}"
    );
    assert_eq!(
        s.udp_datagrams.load(std::sync::atomic::Ordering::Relaxed),
        3
    );

    // nmap's UDP scan needs raw sockets (root).
    if !have("nmap", "--version") {
        return;
    }
    if !nix_is_root() {
        eprintln!("SKIP: nmap -sU needs root");
        return;
    }
    let out = tokio::process::Command::new("nmap")
        .args(["-sU", "-Pn", "-n", "-p", &port.to_string(), "127.0.0.1"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains(&format!("{port}/udp")), "{text}");
    let ev = wait_events(&s, 2).await;
    let scan: Vec<_> = ev[1..].iter().filter(|e| e["dst_port"] == port).collect();
    assert!(!scan.is_empty(), "{ev:?}");
    assert_eq!(scan[0]["src_ip"], "127.0.0.1");
    assert_eq!(scan[0]["transport"], "udp");
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn nix_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// Bound to a wildcard address (the sensor default), the event names the address the
/// datagram was sent to (IP_PKTINFO / IPV6_PKTINFO), not 0.0.0.0 or ::.
#[tokio::test]
async fn udp_on_a_wildcard_address_records_the_real_destination() {
    let d = tempfile::tempdir().unwrap();
    let s = shared(d.path());
    let v4 = start_udp_on(&s, "0.0.0.0:0").await;
    let c = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    c.send_to(b"\x17\x00\x03\x2a", ("127.0.0.1", v4))
        .await
        .unwrap();
    let ev = wait_events(&s, 1).await;
    assert_eq!(ev[0]["dst_ip"], "127.0.0.1", "{}", ev[0]);
    assert_eq!(ev[0]["dst_port"], v4);
    assert_eq!(ev[0]["payload_hex"], "1700032a");
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("SKIP: no IPv6 loopback here");
        return;
    }
    let v6 = start_udp_on(&s, "[::]:0").await;
    let c6 = tokio::net::UdpSocket::bind("[::1]:0").await.unwrap();
    c6.send_to(b"x", ("::1", v6)).await.unwrap();
    let ev = wait_events(&s, 2).await;
    assert_eq!(ev[1]["dst_ip"], "::1", "{}", ev[1]);
    assert_eq!(ev[1]["src_ip"], "::1", "{}", ev[1]);
}
