//! The real Conpot end to end in network namespaces: `cpsrv` runs `apiary server`; `cpsen`
//! runs the Conpot deploy script from the Deploy page as its one-line command (`curl
//! .../deploy/<token>.sh | bash`): it registers, creates the `conpot` user, writes the
//! template (standard ports) and conpot.cfg (hpfeeds to our broker) and starts Conpot
//! 0.6.0 as `conpot` with CAP_NET_BIND_SERVICE (setpriv + nohup: no systemd in a
//! namespace). `cpatt` sends Modbus/TCP "read holding registers" requests to port 502.
//! Conpot's `conpot.events` must become stored `conpot` sessions with the attacker's address
//! and source port, destination port 502 and function code 3, under the registered sensor.
//! A second run keeps one sensor and restarts Conpot.
//!
//! Not run for real: the package and pip installs (the namespaces have no internet). The
//! script skips them when /opt/conpot/venv is usable, and the test makes it a link to
//! `.venv-conpot`, built by `.ci/run` with the script's own CONPOT_DEPS pins. When that
//! venv's interpreter lives under a root-only /root (pyenv), the deploy's private mount
//! namespace shows /root as a world-readable tmpfs holding only `.pyenv`, so the `conpot`
//! user can run it. /etc/apiary-sensor, /opt/conpot and /var/log are bind-mounted from a
//! temp dir; the `conpot` system user is created on the host (like deploy_netns's
//! `apiary-sensor`).
//!
//! Needs root, setpriv and python3; otherwise prints SKIPPED and passes.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::netns::{self, Lab};
use serde_json::Value;

fn script_path() -> PathBuf {
    common::repo_root().join("crates/apiary-web/deploy/conpot.sh")
}

/// `.venv-conpot`: the deploy script's CONPOT_DEPS, then conpot 0.6.0 without dependencies.
fn conpot_venv() -> PathBuf {
    let script = std::fs::read_to_string(script_path()).unwrap();
    let deps = script
        .lines()
        .find_map(|l| l.strip_prefix("CONPOT_DEPS=\""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("CONPOT_DEPS in conpot.sh");
    netns::python_venv(
        "conpot",
        "import importlib.metadata as m, sys, conpot, hpfeeds, gevent, modbus_tk\n\
         sys.exit(m.version('conpot') != '0.6.0')",
        &format!(
            "{{v}}/bin/pip install --disable-pip-version-check --quiet {deps} && \
             {{v}}/bin/pip install --disable-pip-version-check --quiet --no-deps conpot==0.6.0"
        ),
    )
}

/// One Modbus/TCP request from att (transaction 0x0001, unit 1, function 3 "read holding
/// registers", address 0, count 1); returns (client port, response hex).
fn modbus_request(lab: &Lab) -> Option<(u16, String)> {
    let py = "import socket, sys\n\
              s = socket.create_connection((sys.argv[1], 502), timeout=5)\n\
              print(s.getsockname()[1])\n\
              s.sendall(bytes.fromhex('000100000006010300000001'))\n\
              print(s.recv(260).hex())\n\
              s.close()";
    let (ok, out) = lab.exec(
        "att",
        &format!(
            "/usr/bin/python3 -c {} {}",
            netns::shell_quote(py),
            lab.sen()
        ),
    );
    let mut lines = out.lines();
    let port = lines.next()?.trim().parse().ok()?;
    let resp = lines.next()?.trim().to_owned();
    (ok && !resp.is_empty()).then_some((port, resp))
}

const MOUNTS: &[(&str, &str)] = &[
    ("etc", "/etc/apiary-sensor"),
    ("opt", "/opt/conpot"),
    ("varlog", "/var/log"),
];

#[test]
fn conpot_deploy_script_publishes_modbus_sessions() {
    if !netns::usable("conpot_netns", &["setpriv", "/usr/bin/python3"]) {
        return;
    }
    let started = Instant::now();
    let venv = conpot_venv();
    let tmp = tempfile::tempdir().unwrap();
    let (lab, key) = Lab::with_server("cp", "10.231.79", tmp.path());
    let (srv, sen, att) = (lab.srv(), lab.sen(), lab.att());
    let command = lab.deploy_command(&key, "Conpot");

    let (command, _) = lab.deploy_python_honeypot("conpot", &command, &venv, MOUNTS);
    let home = tmp.path().join("opt");
    let log = || {
        format!(
            "{}{}",
            std::fs::read_to_string(tmp.path().join("varlog/conpot-foreground.log"))
                .unwrap_or_default(),
            std::fs::read_to_string(home.join("var/conpot.log")).unwrap_or_default()
        )
    };

    // The config is the script's: hpfeeds to our broker as the registered sensor.
    let sensors = lab.api(&key, "/api/sensor/");
    assert_eq!(sensors.as_array().unwrap().len(), 1, "{sensors}");
    let uuid = sensors[0]["uuid"].as_str().unwrap().to_owned();
    assert_eq!(sensors[0]["honeypot"], "conpot", "{sensors}");
    let cfg = std::fs::read_to_string(home.join("conpot.cfg")).unwrap();
    for want in [
        "[hpfriends]".to_string(),
        "enabled = True".into(),
        format!("host = {srv}"),
        "port = 10000".into(),
        "channels = [\"conpot.events\", ]".into(),
    ] {
        assert!(cfg.lines().any(|l| l == want), "no `{want}` in:\n{cfg}");
    }
    // Running as conpot, not root.
    let pid = std::fs::read_to_string(home.join("var/conpot.pid")).unwrap();
    let (_, user) = netns::sh(&format!("ps -o user= -p {}", pid.trim()));
    assert_eq!(user.trim(), "conpot", "Conpot pid {pid}");

    // Conpot listens on 502 (the script's template) and has dialled the broker.
    netns::wait_for_daemon("Modbus on :502", 30, &log, || {
        log().contains("Modbus server started on: ('0.0.0.0', 502)")
    });
    // Conpot 0.6.0 connects only after its ENIP server starts, and that start blocks the
    // whole gevent loop for the template's `<enip><timeout>` (20 s: cpppo's apidict waits on a
    // multiprocessing Condition). So ~20 s after the Modbus line, hence 45 s here.
    netns::wait_for_daemon("the hpfeeds connection", 45, &log, || {
        log().contains(&format!("connecting to {srv}:10000"))
    });

    // Events before Conpot's first broker connect are dropped by Conpot: send requests
    // until one is stored, then one more that must be stored too. (Conpot keeps one session
    // per attacker address for `[session] timeout` seconds: every event of it carries the
    // `remote` port of its first connection.)
    let mut sent: Vec<(u16, String)> = Vec::new();
    let mut stored: Vec<Value> = Vec::new();
    let find = |lab: &Lab| -> Vec<Value> {
        let list = lab.api(&key, &format!("/api/session/?source_ip={att}&limit=100"));
        list["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|s| lab.api(&key, &format!("/api/session/{}/", s["id"])))
            .collect()
    };
    let requests = |v: &[Value]| {
        v.iter()
            .filter(|s| s["details"]["ics"]["function_code"] == 3)
            .count()
    };
    netns::wait_for_daemon("a stored Modbus request", 40, &log, || {
        if let Some(r) = modbus_request(&lab) {
            sent.push(r);
        }
        std::thread::sleep(Duration::from_millis(1500));
        stored = find(&lab);
        requests(&stored) > 0
    });
    let before = requests(&stored);
    let (port, resp) = modbus_request(&lab).expect("Modbus answer");
    sent.push((port, resp.clone()));
    // Transaction 0001 echoed, function 3 with the exception bit (the default template has
    // no holding register 0): a real Modbus answer from Conpot.
    assert!(resp.starts_with("0001000000030183"), "{resp}");
    netns::wait_for_daemon("the last request's session", 20, &log, || {
        stored = find(&lab);
        requests(&stored) > before
    });

    let ports: Vec<u16> = sent.iter().map(|s| s.0).collect();
    for s in &stored {
        assert_eq!(s["honeypot"], "conpot", "{s}");
        assert_eq!(s["channel"], "conpot.events", "{s}");
        assert_eq!(s["source_ip"], att.as_str(), "{s}");
        assert_eq!(s["destination_port"], 502, "{s}");
        assert_eq!(s["protocol"], "modbus", "{s}");
        assert_eq!(s["identifier"], uuid.as_str(), "{s}");
        let p = s["source_port"].as_u64().unwrap_or(0);
        assert!(
            ports.iter().any(|&x| u64::from(x) == p),
            "source port {p} not one of {ports:?}: {s}"
        );
        if s["details"]["ics"]["function_code"] == 3 {
            // Conpot 0.6.0 publishes the PDUs as null (bytes its JSON encoder drops).
            assert_eq!(s["details"]["ics"]["slave_id"], 1, "{s}");
        }
    }
    assert!(
        stored
            .iter()
            .any(|s| s["details"]["ics"]["type"] == "NEW_CONNECTION"),
        "no NEW_CONNECTION session: {stored:?}"
    );

    // Second run: same sensor, Conpot restarted (a new pid, still as conpot).
    lab.redeploy_restarts(
        &key,
        &command,
        MOUNTS,
        &home.join("var/conpot.pid"),
        "conpot",
    );
    eprintln!(
        "conpot_netns: {} requests sent, {} stored as sessions ({} requests) from {att} to {sen}:502 in {:.1} s",
        sent.len(),
        stored.len(),
        requests(&stored),
        started.elapsed().as_secs_f64()
    );
}
