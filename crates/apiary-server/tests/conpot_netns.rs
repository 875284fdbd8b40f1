//! The real Conpot end to end in network namespaces: `cpsrv` runs `apiary server`; in
//! `cpsen` the Conpot deploy script *as the server serves it* (GET /deploy/<token>.sh) does
//! its part — its `register` (POST /api/sensor/ with the enrollment token) and its
//! `conpot_setup` (template on the standard ports, conpot.cfg with the hpfeeds output,
//! command line) — and Conpot 0.6.0 from `.venv-conpot` (installed by `.ci/run` with the
//! script's CONPOT_DEPS pins) runs that command line. `cpatt` sends a Modbus/TCP "read
//! holding registers" request. Conpot's `conpot.events` must become a stored `conpot`
//! session with the attacker's address and source port, destination port 502 and the
//! request's function code, under the registered sensor.
//!
//! What the test does not run of the script: the package install, `useradd`, the pip
//! install and the service start (systemd/setpriv). Conpot refuses to run as root, so it
//! runs in a user namespace as uid 1000; `net.ipv4.ip_unprivileged_port_start=0` in the
//! sensor namespace stands in for the CAP_NET_BIND_SERVICE the script grants it.
//!
//! Needs root and the venv; otherwise prints SKIPPED and passes.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

/// From the served script: its variable lines (server URL, token, broker; honeypot name)
/// and the named shell functions, verbatim.
fn script_parts(script: &str, functions: &[&str]) -> String {
    let mut out = String::new();
    for prefix in ["SERVER_URL=", "HONEYPOT="] {
        let line = script
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} line in the script"));
        out.push_str(line);
        out.push('\n');
    }
    for name in functions {
        let start = format!("{name}() {{");
        let mut lines = script.lines().skip_while(|l| !l.starts_with(&start));
        let first = lines
            .next()
            .unwrap_or_else(|| panic!("no function {name} in the script"));
        out.push_str(first);
        out.push('\n');
        if !first.trim_end().ends_with('}') {
            for l in lines {
                out.push_str(l);
                out.push('\n');
                if l == "}" {
                    break;
                }
            }
        }
    }
    out
}

/// Conpot in its own process group; the group is killed on drop.
struct Conpot(Child);

impl Drop for Conpot {
    fn drop(&mut self) {
        let _ = netns::sh(&format!("kill -KILL -- -{}", self.0.id()));
        let _ = self.0.wait();
    }
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

#[test]
fn conpot_with_the_deploy_scripts_config_publishes_modbus_sessions() {
    if !netns::usable("conpot_netns", &["/usr/bin/python3"]) {
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
    let url = command
        .split_whitespace()
        .find(|w| w.ends_with(".sh"))
        .expect("script URL in the command");
    let (ok, script) = lab.exec("sen", &format!("curl -fsS {url}"));
    assert!(ok, "{script}");
    assert!(
        script.contains(&format!("HPF_HOST=\"{srv}\"")) && script.contains("HPF_PORT=\"10000\""),
        "broker not rendered into the script"
    );

    // The script's own registration and setup, in sen, then Conpot with its command line.
    let home = tmp.path().join("conpot");
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::symlink(&venv, home.join("venv")).unwrap();
    let program = format!(
        "set -euo pipefail\n{}\nETC={etc}\nHOME_DIR={home}\nRUN_USER=conpot\n\
         register\nconpot_setup\ncd \"$HOME_DIR/var\"\n\
         exec unshare --user --map-user=1000 --map-group=1000 \"${{CONPOT_CMD[@]}}\"\n",
        script_parts(
            &script,
            &["say", "die", "json_field", "register", "conpot_setup"]
        ),
        etc = tmp.path().join("etc").display(),
        home = home.display(),
    );
    std::fs::write(tmp.path().join("run-conpot.sh"), &program).unwrap();
    let (ok, out) = lab.exec("sen", "sysctl -qw net.ipv4.ip_unprivileged_port_start=0");
    assert!(ok, "{out}");
    let out_path = tmp.path().join("conpot.out");
    let conpot = Conpot(
        Command::new("ip")
            .args(["netns", "exec", &lab.ns("sen"), "bash"])
            .arg(tmp.path().join("run-conpot.sh"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(&out_path).unwrap()))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&out_path)
                    .unwrap(),
            ))
            .process_group(0)
            .spawn()
            .expect("spawn conpot"),
    );
    let log = || std::fs::read_to_string(&out_path).unwrap_or_default();

    // The config is the script's: hpfeeds to our broker as the registered sensor.
    wait_for("the registration", 20, &log, || {
        lab.api(&key, "/api/sensor/")
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
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

    // Conpot listens on 502 (the script's template) and has dialled the broker.
    wait_for("Modbus on :502", 30, &log, || {
        log().contains("Modbus server started on: ('0.0.0.0', 502)")
    });
    wait_for("the hpfeeds connection", 20, &log, || {
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
    eprintln!(
        "conpot_netns: {} requests sent, {} stored as sessions ({} requests) from {att} to {sen}:502 in {:.1} s",
        sent.len(),
        stored.len(),
        requests(&stored),
        started.elapsed().as_secs_f64()
    );
    drop(conpot);
}
