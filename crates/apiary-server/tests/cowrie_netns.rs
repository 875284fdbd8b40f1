//! The real Cowrie end to end in network namespaces, deployed by its script: `cwsrv` runs
//! `apiary server`; `cwsen` runs the Cowrie deploy script from the Deploy page as its
//! one-line command (`curl .../deploy/<token>.sh | bash`): it registers, creates the
//! `cowrie` user, writes cowrie.cfg (hpfeeds3 output to our broker) and starts Cowrie 3.1.4
//! as `cowrie` on port 2222 (setpriv + nohup: no systemd in a namespace). From `cwatt` an
//! SSH client (paramiko) tries a password Cowrie rejects, then one it accepts, and runs a
//! command. Cowrie's `cowrie.sessions` message must become one stored `cowrie` session with
//! the attacker's address, destination port 2222, both credentials in order, the command and
//! the client's version, under the registered sensor. A second run keeps one sensor and
//! restarts Cowrie.
//!
//! Not run for real: the package and pip installs (the namespaces have no internet). The
//! script skips them when /opt/cowrie/venv is usable, and the test makes it a link to
//! `.venv-cowrie` (cowrie 3.1.4, hpfeeds 3.1.0 and paramiko, built by `.ci/run`).
//! /etc/apiary-sensor, /opt/cowrie and /var/log are bind-mounted from a temp dir; the
//! `cowrie` system user is created on the host (like conpot_netns's `conpot`).
//!
//! Needs root, setpriv and python3; otherwise prints SKIPPED and passes.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use common::netns::{self, Lab};
use serde_json::{json, Value};

const USER: &str = "root";
/// Rejected by Cowrie's default userdb (`root:x:!123456`).
const BAD_PASSWORD: &str = "123456";
/// Accepted by the default userdb (`root:x:*`).
const GOOD_PASSWORD: &str = "apiary-e2e-Pw7";

const MOUNTS: &[(&str, &str)] = &[
    ("etc", "/etc/apiary-sensor"),
    ("opt", "/opt/cowrie"),
    ("varlog", "/var/log"),
];

/// `.venv-cowrie` with the script's cowrie and hpfeeds pins and paramiko (the SSH client).
fn cowrie_venv() -> PathBuf {
    netns::python_venv(
        "cowrie",
        "import importlib.metadata as m, sys, paramiko, hpfeeds.twisted, cowrie\n\
         sys.exit(m.version('cowrie') != '3.1.4' or m.version('hpfeeds') != '3.1.0')",
        "{v}/bin/pip install --disable-pip-version-check --quiet 'cowrie==3.1.4' \
         'hpfeeds==3.1.0' 'paramiko>=3,<6'",
    )
}

/// The attacker's SSH session: a rejected password, an accepted one, then a command.
const SSH_CLIENT: &str = r#"
import socket, sys, paramiko
host, port, user, bad, good = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
sock = socket.create_connection((host, port), timeout=60)
t = paramiko.Transport(sock)
t.banner_timeout = 60
t.auth_timeout = 60
t.start_client(timeout=60)
try:
    t.auth_password(user, bad)
    sys.exit("the rejected password was accepted")
except paramiko.AuthenticationException:
    print("rejected", user, bad)
t.auth_password(user, good)
assert t.is_authenticated()
print("accepted", user, good)
ch = t.open_session(timeout=60)
ch.settimeout(60)
try:
    ch.exec_command("uname -a")
    out = ch.makefile("rb").read()
    print("uname:", out.decode(errors="replace").strip())
except paramiko.SSHException as e:
    # Cowrie may run the command and close the channel before paramiko sees the reply.
    print("exec:", e)
ch.close()
t.close()
"#;

#[test]
fn cowrie_deploy_script_publishes_ssh_sessions() {
    if !netns::usable("cowrie_netns", &["setpriv", "python3"]) {
        return;
    }
    let started = Instant::now();
    let venv = cowrie_venv();
    let tmp = tempfile::tempdir().unwrap();
    let (lab, key) = Lab::with_server("cw", "10.231.84", tmp.path());
    let (srv, sen, att) = (lab.srv(), lab.sen(), lab.att());
    let command = lab.deploy_command(&key, "Cowrie");

    let (command, _) = lab.deploy_python_honeypot("cowrie", &command, &venv, MOUNTS);
    let home = tmp.path().join("opt");
    let log = || {
        std::fs::read_to_string(tmp.path().join("varlog/cowrie-foreground.log")).unwrap_or_default()
    };

    // The config is the script's: hpfeeds3 to our broker as the registered sensor.
    let sensors = lab.api(&key, "/api/sensor/");
    assert_eq!(sensors.as_array().unwrap().len(), 1, "{sensors}");
    assert_eq!(sensors[0]["honeypot"], "cowrie", "{sensors}");
    let uuid = sensors[0]["uuid"].as_str().unwrap().to_owned();
    let cfg = std::fs::read_to_string(home.join("state/cowrie.cfg")).unwrap();
    for want in [
        "[output_hpfeeds3]".to_string(),
        "enabled = true".into(),
        format!("server = {srv}"),
        "port = 10000".into(),
        "channel = cowrie.sessions".into(),
        "listen_endpoints = tcp:2222:interface=0.0.0.0".into(),
    ] {
        assert!(cfg.lines().any(|l| l == want), "no `{want}` in:\n{cfg}");
    }
    // Running as cowrie, not root (Cowrie refuses root anyway).
    let pid = std::fs::read_to_string(home.join("state/apiary-cowrie.pid")).unwrap();
    let (_, user) = netns::sh(&format!("ps -o user= -p {}", pid.trim()));
    assert_eq!(user.trim(), "cowrie", "Cowrie pid {pid}\n{}", log());

    // Listening, and the hpfeeds output started: it drops publishes until it is
    // connected, so give the connect and AUTH a moment after its factory starts.
    netns::wait_for_daemon("Cowrie's SSH listener", 120, &log, || {
        log().contains("Ready to accept SSH connections")
    });
    netns::wait_for_daemon("Cowrie's hpfeeds3 output", 60, &log, || {
        log().contains("Starting factory <hpfeeds.twisted.factory.ClientFactory")
    });
    std::thread::sleep(std::time::Duration::from_secs(3));

    let (ok, client) = lab.exec(
        "att",
        &format!(
            "{}/bin/python -c {} {sen} 2222 {USER} {BAD_PASSWORD} {GOOD_PASSWORD}",
            venv.display(),
            netns::shell_quote(SSH_CLIENT)
        ),
    );
    eprintln!("[ssh client] {client}");
    assert!(ok, "the SSH client failed: {client}\n{}", log());

    // Cowrie publishes one cowrie.sessions message when the session closes.
    let mut list = Value::Null;
    netns::wait_for_daemon("the stored session", 60, &log, || {
        list = lab.api(&key, &format!("/api/session/?source_ip={att}"));
        list["data"].as_array().is_some_and(|d| !d.is_empty())
    });
    let rows = list["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "one SSH connection, one session: {list}");
    let s = lab.api(&key, &format!("/api/session/{}/", rows[0]["id"]));
    eprintln!("[session] {s}");
    assert_eq!(s["honeypot"], "cowrie", "{s}");
    assert_eq!(s["channel"], "cowrie.sessions", "{s}");
    assert_eq!(s["protocol"], "ssh", "{s}");
    assert_eq!(s["identifier"], uuid.as_str(), "{s}");
    assert_eq!(s["source_ip"], att.as_str(), "{s}");
    assert_eq!(s["destination_port"], 2222, "{s}");
    assert_eq!(s["internal"], true, "10.231.84.0/24 is RFC 1918: {s}");
    let d = &s["details"];
    assert_eq!(
        d["credentials"],
        json!([
            {"username": USER, "password": BAD_PASSWORD},
            {"username": USER, "password": GOOD_PASSWORD},
        ]),
        "the failed attempt first, then the login: {s}"
    );
    assert_eq!(d["logged_in"], true, "{s}");
    assert_eq!(d["commands"], json!(["uname -a"]), "{s}");
    assert!(
        d["ssh_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("SSH-2.0-paramiko")),
        "{s}"
    );

    // Second run: same sensor, Cowrie restarted (a new pid, still as cowrie).
    let pidfile = home.join("state/apiary-cowrie.pid");
    lab.redeploy_restarts(&key, &command, MOUNTS, &pidfile, "cowrie");
    eprintln!(
        "cowrie_netns: session from {att} to {sen}:2222 stored, Cowrie restarted, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
