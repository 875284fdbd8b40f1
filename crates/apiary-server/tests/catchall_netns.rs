//! The Apiary sensor's catch-all in network namespaces: the deploy command run with
//! `CATCH_ALL=1` adds an nftables redirect in the sensor host, and connections from the
//! attacker host to ports no service listens on reach the API as sessions on the port the
//! attacker chose. A port something else already listened on when the script ran (the
//! admin's real service) is not redirected, and the regular services keep their own ports.
//!
//! Needs root and nft (installed by `.ci/run`); otherwise prints SKIPPED and passes.

mod common;

use std::time::Instant;

use common::netns::{self, wait_for, Lab};
use serde_json::Value;

const MOUNTS: &[(&str, &str)] = &[
    ("etc", "/etc/apiary-sensor"),
    ("var", "/var/lib/apiary-sensor"),
    ("bin", "/usr/local/bin"),
    ("log.txt", "/var/log/apiary-sensor.log"),
];

#[test]
fn catch_all_records_the_port_the_attacker_chose() {
    if !netns::usable("catchall_netns", &["nft", "python3"]) {
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let (lab, key) = Lab::with_server("ca", "10.231.83", tmp.path());
    let (sen, att) = (lab.sen(), lab.att());

    // The admin's own service on 8022, up before the deploy.
    let site = lab.dir.join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "the admin's own site\n").unwrap();
    let (ok, o) = lab.exec(
        "sen",
        &format!(
            "cd {} && (nohup python3 -m http.server 8022 >/dev/null 2>&1 &) && sleep 1",
            site.display()
        ),
    );
    assert!(ok, "{o}");

    let command = lab
        .deploy_command(&key, "Apiary sensor")
        .replace("| bash", "| CATCH_ALL=1 bash");
    let out = lab.deploy(&command, MOUNTS);
    assert!(
        out.contains("catch-all: other TCP ports redirected to 65000"),
        "{out}"
    );
    assert!(
        out.contains("8022"),
        "the admin's port is left alone: {out}"
    );
    wait_for("the sensor's services", 20, || {
        lab.read("log.txt").contains("dropped privileges")
    });

    // Unserved ports: a payload to 4444, a bare connect to 31337 (nmap connect scan).
    let (_, o) = lab.exec(
        "att",
        &format!(
            "timeout 5 bash -c 'exec 3<>/dev/tcp/{sen}/4444; printf \"GET /bot HTTP/1.0\\r\\n\\r\\n\" >&3; sleep 1; exec 3>&-'"
        ),
    );
    eprintln!("[att 4444] {o}");
    if netns::sh("command -v nmap").0 {
        let (_, o) = lab.exec("att", &format!("nmap -sT -Pn -n -p 31337 {sen}"));
        eprintln!("[att nmap] {o}");
    }
    // The admin's site still answers itself; telnet is still telnet.
    let (ok, page) = lab.exec("att", &format!("curl -s -m 5 http://{sen}:8022/"));
    assert!(ok && page.contains("the admin's own site"), "{page}");
    let _ = lab.exec(
        "att",
        &format!(
            "timeout 5 bash -c 'exec 3<>/dev/tcp/{sen}/23; printf \"root\\r\\nx\\r\\n\" >&3; sleep 1; exec 3>&-'"
        ),
    );

    let mut sessions: Vec<Value> = Vec::new();
    wait_for("sessions on 4444 and 23", 30, || {
        let v = lab.api(&key, &format!("/api/session/?source_ip={att}&limit=100"));
        sessions = v["data"].as_array().cloned().unwrap_or_default();
        let ports: Vec<i64> = sessions
            .iter()
            .filter_map(|s| s["destination_port"].as_i64())
            .collect();
        ports.contains(&4444) && ports.contains(&23)
    });
    let ports: Vec<i64> = sessions
        .iter()
        .filter_map(|s| s["destination_port"].as_i64())
        .collect();
    eprintln!("[ports] {ports:?}");
    assert!(
        !ports.contains(&65000),
        "the listener's port leaked: {ports:?}"
    );
    assert!(
        !ports.contains(&8022),
        "the admin's port was redirected: {ports:?}"
    );
    let s4444 = sessions
        .iter()
        .find(|s| s["destination_port"] == 4444)
        .unwrap();
    let full = lab.api(&key, &format!("/api/session/{}/", s4444["id"]));
    assert_eq!(full["destination_ip"], sen.as_str(), "{full}");
    assert_eq!(
        full["details"]["extra"]["sensor_extra"]["redirected"], true,
        "{full}"
    );
    let text = full.to_string();
    assert!(text.contains("474554202f626f74"), "payload kept: {text}");

    // A second run keeps the rules to one table and one sensor.
    let out = lab.deploy(&command, MOUNTS);
    assert!(out.contains("already registered"), "{out}");
    let (_, tables) = lab.exec("sen", "nft list tables");
    assert_eq!(tables.matches("apiary_catch_all").count(), 1, "{tables}");
    eprintln!(
        "catchall_netns: ports {ports:?} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
