//! The real p0f end to end in network namespaces: `p0srv` runs `apiary server`, `p0sen` runs
//! the p0f deploy script from the Deploy page as its one-line command (Debian's p0f 3.09b
//! on the namespace's default-route interface writing `-o /var/log/p0f.log`, and
//! apiary-sensor's p0f forwarder tailing it, both nohup'd: no systemd in a namespace),
//! `p0att` connects with curl and scans with nmap (and hping3) the sensor host. p0f's
//! fingerprints of the attacker must reach the server on `p0f.log` and show in
//! `/api/metadata/?ip=<attacker>` with p0f's OS guess (Linux, from curl's SYN) and tool
//! guess (`app`: NMap SYN scan), and make no sessions (p0f observations are not attacks).
//! A second run of the command keeps one sensor and one p0f. (p0f 3.09b's HTTP signatures
//! predate today's curl and wget: their requests come out `app=???`.)
//!
//! Needs root, p0f and nmap (installed by `.ci/run`); otherwise prints SKIPPED and passes.
//! The script's directories (/etc/apiary-sensor, /var/lib/apiary-sensor, /usr/local/bin,
//! /var/log) are bind-mounted from a temp dir in a private mount namespace.

mod common;

use std::time::Instant;

use common::netns::{self, wait_for, Lab};
use serde_json::Value;

const MOUNTS: &[(&str, &str)] = &[
    ("etc", "/etc/apiary-sensor"),
    ("var", "/var/lib/apiary-sensor"),
    ("bin", "/usr/local/bin"),
    ("varlog", "/var/log"),
];

#[test]
fn p0f_deploy_script_fingerprints_the_attacker() {
    if !netns::usable("p0f_netns", &["p0f", "nmap"]) {
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let (lab, key) = Lab::with_server("p0", "10.231.78", tmp.path());
    let (sen, att) = (lab.sen(), lab.att());
    let command = lab.deploy_command(&key, "p0f");

    let out = lab.deploy(&command, MOUNTS);
    assert!(out.contains("created sensor"), "{out}");
    assert!(
        out.contains("p0f started in the background on eth0"),
        "{out}"
    );
    let sensors = lab.api(&key, "/api/sensor/");
    assert_eq!(sensors.as_array().unwrap().len(), 1, "{sensors}");
    assert_eq!(sensors[0]["honeypot"], "p0f", "{sensors}");

    // p0f is capturing and the forwarder runs (the forwarder publishes nothing until p0f
    // writes a line).
    wait_for("p0f's main loop", 20, || {
        lab.read("varlog/p0f-foreground.log")
            .contains("main event loop")
    });
    wait_for("the forwarder's privilege drop", 20, || {
        lab.read("varlog/apiary-forward-p0f.log")
            .contains("dropped privileges")
    });

    // The forwarder dropped root for the user the script created.
    let fwd = lab.read("var/apiary-forward-p0f.pid");
    let (_, user) = netns::sh(&format!("ps -o user= -p {}", fwd.trim()));
    assert_eq!(user.trim(), "apiary-sensor", "forwarder pid {fwd}");

    // The attacker: curl (a Linux SYN; nothing listens, so RST), a SYN scan, hping3 SYNs.
    let _ = lab.exec("att", &format!("curl -s -m 5 -o /dev/null http://{sen}/"));
    let (_, o) = lab.exec("att", &format!("nmap -sS -Pn -n -p 22,80,443,8080 {sen}"));
    eprintln!("[att] {o}");
    if netns::sh("command -v hping3").0 {
        let _ = lab.exec("att", &format!("hping3 -S -p 80 -c 3 -i u200000 {sen}"));
    }

    // p0f saw it: its own log names the attacker.
    wait_for("p0f log lines about the attacker", 20, || {
        lab.read("varlog/p0f.log").contains(&format!("cli={att}/"))
    });
    let p0f_log = lab.read("varlog/p0f.log");
    eprintln!("[p0f.log]\n{p0f_log}");

    // The server has the fingerprints of the attacker's address.
    let mut meta = Value::Null;
    wait_for("metadata for the attacker", 30, || {
        meta = lab.api(&key, &format!("/api/metadata/?ip={att}"));
        let rows = meta["data"].as_array().cloned().unwrap_or_default();
        rows.iter().any(|r| r["os"].is_string()) && rows.iter().any(|r| r["app"].is_string())
    });
    eprintln!("[metadata] {meta}");
    let rows = meta["data"].as_array().unwrap();
    for r in rows {
        assert_eq!(r["ip"], att.as_str(), "{r}");
        assert_eq!(r["honeypot"], "p0f", "{r}");
    }
    let oses: Vec<&str> = rows.iter().filter_map(|r| r["os"].as_str()).collect();
    assert!(
        oses.iter().any(|o| o.contains("Linux")),
        "no Linux OS guess: {oses:?}"
    );
    let apps: Vec<&str> = rows.iter().filter_map(|r| r["app"].as_str()).collect();
    assert!(
        apps.iter().any(|a| a.contains("NMap")),
        "no NMap app guess: {apps:?}"
    );
    // The script filters the sensor's own traffic to the server: the server's address is
    // never fingerprinted (the sensor's may be, from its answers to the attacker).
    assert!(
        out.contains(&format!("p0f filter: not host {}", lab.srv())),
        "{out}"
    );
    let all = lab.api(&key, "/api/metadata/?limit=100");
    for r in all["data"].as_array().unwrap() {
        let ip = r["ip"].as_str().unwrap();
        assert!(ip == att || ip == sen, "unexpected address {ip}: {all}");
    }
    // p0f observations are not attacks.
    let sessions = lab.api(&key, "/api/session/?honeypot=p0f");
    assert_eq!(
        sessions["data"].as_array().map(Vec::len),
        Some(0),
        "{sessions}"
    );

    // Second run: same sensor, p0f not started twice.
    let pid = lab.read("var/apiary-p0f.pid");
    let out = lab.deploy(&command, MOUNTS);
    assert!(out.contains("already registered"), "{out}");
    assert!(out.contains("p0f already running"), "{out}");
    assert_eq!(lab.read("var/apiary-p0f.pid"), pid);
    let sensors = lab.api(&key, "/api/sensor/");
    assert_eq!(sensors.as_array().unwrap().len(), 1, "{sensors}");
    eprintln!(
        "p0f_netns: {} metadata rows for {att} (os {oses:?}, app {apps:?}) in {:.1} s",
        rows.len(),
        started.elapsed().as_secs_f64()
    );
}
