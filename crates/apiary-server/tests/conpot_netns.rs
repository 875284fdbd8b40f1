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

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::{self, Lab};
use serde_json::Value;

fn script_path() -> PathBuf {
    common::repo_root().join("crates/apiary-web/deploy/conpot.sh")
}

fn venv_ready(venv: &Path) -> bool {
    Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import importlib.metadata as m, sys, conpot, hpfeeds, gevent, modbus_tk\n\
             sys.exit(m.version('conpot') != '0.6.0')",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `.venv-conpot` at the repo root; created like `.ci/run` does when missing (the deploy
/// script's CONPOT_DEPS, then conpot 0.6.0 without dependencies).
fn conpot_venv() -> PathBuf {
    let venv = common::repo_root().join(".venv-conpot");
    if venv_ready(&venv) {
        return venv;
    }
    let script = std::fs::read_to_string(script_path()).unwrap();
    let deps = script
        .lines()
        .find_map(|l| l.strip_prefix("CONPOT_DEPS=\""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("CONPOT_DEPS in conpot.sh");
    eprintln!("creating {} (conpot 0.6.0 with {deps})", venv.display());
    let v = venv.display();
    netns::must(&format!(
        "rm -rf {v} && python3 -m venv {v} && \
         {v}/bin/pip install --disable-pip-version-check --quiet {deps} && \
         {v}/bin/pip install --disable-pip-version-check --quiet --no-deps conpot==0.6.0"
    ));
    assert!(venv_ready(&venv), "{v} unusable after install");
    venv
}

fn wait_for(what: &str, secs: u64, log: &dyn Fn() -> String, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; conpot output:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
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

/// Shell commands, run in the deploy's private mount namespace, that make the venv's
/// interpreter reachable for an unprivileged user when it sits under a root-only /root.
fn interpreter_view(venv: &Path, stage: &Path) -> String {
    let python = std::fs::canonicalize(venv.join("bin/python3")).unwrap();
    let (reachable, _) = netns::sh(&format!(
        "setpriv --reuid=nobody --regid=$(id -g nobody) --clear-groups {} -c pass",
        python.display()
    ));
    if reachable {
        return String::new();
    }
    let Ok(rest) = python.strip_prefix("/root") else {
        panic!("{} is not runnable by unprivileged users", python.display());
    };
    let top = rest
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    let s = stage.display();
    format!(
        "mkdir -p {s} && mount --bind /root/{top} {s} && mount -t tmpfs -o mode=0755 none /root && \
         mkdir /root/{top} && mount --bind {s} /root/{top} && "
    )
}

#[test]
fn conpot_deploy_script_publishes_modbus_sessions() {
    if !netns::usable("conpot_netns", &["setpriv", "/usr/bin/python3"]) {
        return;
    }
    let started = Instant::now();
    let venv = conpot_venv();
    let tmp = tempfile::tempdir().unwrap();
    let mut lab = Lab::new("cp", "10.231.79", tmp.path());
    let (srv, sen, att) = (lab.srv(), lab.sen(), lab.att());
    lab.start_server(&netns::sensor_binary());
    let key = lab.api_key();
    let command = lab.deploy_command(&key, "Conpot");

    let home = tmp.path().join("opt");
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::symlink(&venv, home.join("venv")).unwrap();
    let view = interpreter_view(&venv, &tmp.path().join("interpreter"));
    let out = lab.deploy(&format!("{view}{command}"), MOUNTS);
    assert!(out.contains("created sensor"), "{out}");
    assert!(
        out.contains("no systemd: conpot started in the background as conpot"),
        "{out}"
    );
    assert!(
        !out.contains("installed conpot"),
        "the venv was rebuilt: {out}"
    );
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
    wait_for("Modbus on :502", 30, &log, || {
        log().contains("Modbus server started on: ('0.0.0.0', 502)")
    });
    // Conpot 0.6.0 connects only after its ENIP server starts, and that start blocks the
    // whole gevent loop for the template's `<enip><timeout>` (20 s: cpppo's apidict waits on a
    // multiprocessing Condition). So ~20 s after the Modbus line, hence 45 s here.
    wait_for("the hpfeeds connection", 45, &log, || {
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
    wait_for("a stored Modbus request", 40, &log, || {
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
    wait_for("the last request's session", 20, &log, || {
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
    let out = lab.deploy(&format!("{view}{command}"), MOUNTS);
    assert!(out.contains("already registered"), "{out}");
    let sensors = lab.api(&key, "/api/sensor/");
    assert_eq!(sensors.as_array().unwrap().len(), 1, "{sensors}");
    let pid2 = std::fs::read_to_string(home.join("var/conpot.pid")).unwrap();
    assert_ne!(pid.trim(), pid2.trim());
    let (_, user) = netns::sh(&format!("ps -o user= -p {}", pid2.trim()));
    assert_eq!(
        user.trim(),
        "conpot",
        "Conpot after the second deploy, pid {pid2}"
    );
    assert!(
        !netns::sh(&format!("kill -0 {}", pid.trim())).0,
        "old Conpot still runs"
    );
    eprintln!(
        "conpot_netns: {} requests sent, {} stored as sessions ({} requests) from {att} to {sen}:502 in {:.1} s",
        sent.len(),
        stored.len(),
        requests(&stored),
        started.elapsed().as_secs_f64()
    );
}
