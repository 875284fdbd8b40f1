//! End to end in network namespaces: `srv` runs `apiary server`, `sen` runs the real
//! one-line deploy command (`curl -fsSL .../deploy/<token>.sh | bash`) which downloads
//! apiary-sensor from the server, registers and starts it (nohup: no systemd in a
//! namespace), `att` attacks the sensor's ports. Sessions must reach the API with the
//! attacker's address; with the server stopped the attacks go on and, after a restart,
//! every event arrives exactly once. Running the command twice leaves one sensor.
//!
//! Needs root (namespaces, veth, a bridge, binding ports < 1024 in `sen`). Without root it
//! prints a loud SKIPPED line and passes. The deploy script's state directories
//! (/etc/apiary-sensor, /var/lib/apiary-sensor, /usr/local/bin) are bind-mounted from a temp
//! dir in a private mount namespace, so the host's are not touched (the script does create
//! the `apiary-sensor` system user on the host).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::netns::{self, sh, Lab};
use serde_json::Value;

const NET: &str = "10.231.77";
const SEN: &str = "10.231.77.2";
const ATT: &str = "10.231.77.3";

/// The deploy script's state directories, bind-mounted from the test's temp dir.
const MOUNTS: &[(&str, &str)] = &[
    ("etc", "/etc/apiary-sensor"),
    ("var", "/var/lib/apiary-sensor"),
    ("bin", "/usr/local/bin"),
    ("log.txt", "/var/log/apiary-sensor.log"),
];

/// One round of attacks from `att`: HTTP with curl, raw TCP to telnet/redis/ftp.
fn attack(tag: &str) -> usize {
    let _ = sh(&format!(
        "ip netns exec att curl -s -m 5 -A 'netns-{tag}' 'http://{SEN}/admin/{tag}?x=1' >/dev/null"
    ));
    for (port, payload) in [
        (23, "root\\r\\nhunter2\\r\\n"),
        (6379, "PING\\r\\nCONFIG GET dir\\r\\n"),
        (21, "USER anonymous\\r\\nPASS x@y\\r\\nQUIT\\r\\n"),
    ] {
        let _ = sh(&format!(
            "ip netns exec att timeout 5 bash -c 'exec 3<>/dev/tcp/{SEN}/{port}; printf \"{payload}\" >&3; sleep 1; timeout 1 cat <&3 >/dev/null; exec 3>&-'"
        ));
    }
    4
}

/// Sessions from the attacker, with their sensor event ids (details.extra.id).
fn attacker_sessions(lab: &Lab, key: &str) -> Vec<(i64, Option<String>, Value)> {
    let list = lab.api(key, &format!("/api/session/?source_ip={ATT}&limit=1000"));
    let mut out = Vec::new();
    for s in list["data"].as_array().cloned().unwrap_or_default() {
        let id = s["id"].as_i64().unwrap();
        let full = lab.api(key, &format!("/api/session/{id}/"));
        let eid = full["details"]["extra"]["id"].as_str().map(str::to_owned);
        out.push((id, eid, full));
    }
    out
}

fn wait_sessions(
    lab: &Lab,
    key: &str,
    want: usize,
    secs: u64,
) -> Vec<(i64, Option<String>, Value)> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = attacker_sessions(lab, key);
        if got.len() >= want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn deploy_command_in_namespaces_delivers_every_event_once() {
    if !netns::usable("deploy_netns", &[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Namespaces srv, sen, att (no prefix: the names the rest of this file uses).
    let mut lab = Lab::new("", NET, tmp.path());
    let bin = netns::sensor_binary();
    lab.start_server(&bin);

    let key = lab.api_key();
    let command = lab.deploy_command(&key, "Apiary sensor");

    let out = lab.deploy(&command, MOUNTS);
    assert!(out.contains("created sensor"), "{out}");
    let sensors = lab.api(&key, "/api/sensor/");
    assert_eq!(sensors.as_array().unwrap().len(), 1, "{sensors}");
    let uuid = sensors[0]["uuid"].as_str().unwrap().to_owned();

    // Wait for the sensor's listeners, then attack.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sh(&format!(
        "ip netns exec att curl -s -m 2 -o /dev/null http://{SEN}/"
    ))
    .0
    {
        assert!(
            Instant::now() < deadline,
            "sensor never listened on :80; log: {}",
            std::fs::read_to_string(tmp.path().join("log.txt")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let warmup = 1; // the readiness probe above is a session too
    let mut sent = warmup;
    sent += attack("a");
    if sh("command -v nmap").0 {
        let _ = sh(&format!(
            "ip netns exec att nmap -sT -Pn -p 21,23,80,6379 {SEN}"
        ));
        sent += 4;
    }
    let got = wait_sessions(&lab, &key, sent, 60);
    assert!(
        got.len() >= sent - 1,
        "only {} of {sent} sessions arrived: {:?}",
        got.len(),
        got.iter().map(|g| &g.2).collect::<Vec<_>>()
    );
    for (_, _, s) in &got {
        assert_eq!(s["source_ip"], ATT);
        assert_eq!(s["identifier"], uuid.as_str());
    }
    let before_stop = got.len();

    // Server down: the sensor spools; attacks go on.
    lab.stop_server();
    let mut offline = 0;
    offline += attack("b");
    offline += attack("c");
    std::thread::sleep(Duration::from_secs(2));
    lab.start_server(&bin);
    let want = before_stop + offline;
    let got = wait_sessions(&lab, &key, want, 120);
    std::thread::sleep(Duration::from_secs(5));
    let got2 = attacker_sessions(&lab, &key);
    assert_eq!(
        got.len(),
        got2.len(),
        "sessions kept arriving after all were in"
    );
    let mut seen: HashMap<String, i64> = HashMap::new();
    for (id, eid, _) in &got2 {
        let eid = eid
            .clone()
            .unwrap_or_else(|| panic!("session {id} has no event id"));
        if let Some(prev) = seen.insert(eid.clone(), *id) {
            panic!("event {eid} stored twice: sessions {prev} and {id}");
        }
    }
    assert_eq!(
        got2.len(),
        want,
        "expected exactly {want} sessions after the restart"
    );

    // Second run of the same command: still one sensor.
    let out = lab.deploy(&command, MOUNTS);
    assert!(out.contains("already registered"), "{out}");
    let sensors = lab.api(&key, "/api/sensor/");
    assert_eq!(sensors.as_array().unwrap().len(), 1, "{sensors}");
    eprintln!("deploy_netns: {want} sessions, each event once; one sensor after two deploys");
}
