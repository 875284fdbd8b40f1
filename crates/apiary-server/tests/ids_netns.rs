//! The Suricata, Snort and Dionaea deploy scripts end to end in network namespaces, each
//! as the one-line command from the Deploy page: registration, apiary-sensor downloaded
//! from the server, its forwarder configured on the honeypot's log, started (nohup: no
//! systemd in a namespace) and dropped to the user the script creates.
//!
//! Debian here packages none of the three, so each is stood in for by a process of the
//! same name that does nothing (the script only has to find and start it), and the test
//! writes the log lines the real program would write, in its documented format (Suricata
//! eve.json alerts, Snort 3 alert_json, Dionaea's log_json), about the attacker's
//! address. Those lines must come out of the server's API as sessions with the attacker's
//! address, the signature or protocol, and nothing else; a second run keeps one sensor and
//! one stood-in program.
//!
//! Needs root (otherwise prints SKIPPED and passes). The scripts' directories are bind
//! mounted from a temp dir in a private mount namespace.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::netns::{self, wait_for, Lab};
use serde_json::Value;

/// An executable `name` in `dir` standing in for a program Debian here does not ship:
/// answers `-V` and otherwise sleeps, so it runs until killed.
fn stand_in(dir: &Path, name: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\n# Stand-in for {name} (not packaged here); see tests/ids_netns.rs.\n\
             [ \"$1\" = -V ] && {{ echo '{name} stand-in'; exit 0; }}\nexec sleep 100000\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn append(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

struct Case {
    script: &'static str,
    /// Process the script starts (stood in), if any.
    program: Option<&'static str>,
    mounts: &'static [(&'static str, &'static str)],
    /// The log, relative to the lab dir, and lines about (attacker, sensor).
    log: &'static str,
    lines: fn(&str, &str) -> Vec<String>,
}

fn suricata_lines(att: &str, sen: &str) -> Vec<String> {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f+0000");
    vec![
        // A flow record first: not an alert, the forwarder leaves it out.
        format!(
            r#"{{"timestamp":"{now}","flow_id":1,"in_iface":"eth0","event_type":"flow","src_ip":"{att}","src_port":40001,"dest_ip":"{sen}","dest_port":80,"proto":"TCP"}}"#
        ),
        format!(
            r#"{{"timestamp":"{now}","flow_id":2,"in_iface":"eth0","event_type":"alert","src_ip":"{att}","src_port":40002,"dest_ip":"{sen}","dest_port":80,"proto":"TCP","alert":{{"action":"allowed","gid":1,"signature_id":2024364,"rev":3,"signature":"ET SCAN Possible Nmap User-Agent Observed","category":"Web Application Attack","severity":1}},"http":{{"hostname":"{sen}","url":"/","http_user_agent":"Mozilla/5.0 (compatible; Nmap Scripting Engine)"}}}}"#
        ),
    ]
}

fn snort_lines(att: &str, sen: &str) -> Vec<String> {
    let now = chrono::Utc::now().format("%m/%d-%H:%M:%S%.6f");
    vec![format!(
        r#"{{ "timestamp" : "{now}", "pkt_num" : 7, "proto" : "TCP", "pkt_gen" : "raw", "pkt_len" : 60, "dir" : "C2S", "src_ap" : "{att}:40003", "dst_ap" : "{sen}:22", "rule" : "1:1000001:1", "action" : "allow", "msg" : "Apiary test SSH probe", "class" : "Attempted Information Leak", "priority" : 2 }}"#
    )]
}

fn dionaea_lines(att: &str, sen: &str) -> Vec<String> {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f");
    vec![format!(
        r#"{{"timestamp":"{now}","src_ip":"{att}","src_port":40004,"dst_ip":"{sen}","dst_port":445,"connection":{{"type":"accept","transport":"tcp","protocol":"smbd"}}}}"#
    )]
}

const SURICATA: Case = Case {
    script: "suricata",
    program: Some("suricata"),
    mounts: &[
        ("etc", "/etc/apiary-sensor"),
        ("var", "/var/lib/apiary-sensor"),
        ("bin", "/usr/local/bin"),
        ("varlog", "/var/log"),
    ],
    log: "varlog/suricata/eve.json",
    lines: suricata_lines,
};

const SNORT: Case = Case {
    script: "snort",
    program: Some("snort"),
    mounts: &[
        ("etc", "/etc/apiary-sensor"),
        ("var", "/var/lib/apiary-sensor"),
        ("bin", "/usr/local/bin"),
        ("varlog", "/var/log"),
        ("etcsnort", "/etc/snort"),
    ],
    log: "varlog/snort/alert_json.txt",
    lines: snort_lines,
};

const DIONAEA: Case = Case {
    script: "dionaea",
    program: None,
    mounts: &[
        ("etc", "/etc/apiary-sensor"),
        ("var", "/var/lib/apiary-sensor"),
        ("bin", "/usr/local/bin"),
        ("varlog", "/var/log"),
        ("dionaea", "/opt/dionaea"),
    ],
    log: "dionaea/var/lib/dionaea/dionaea.json",
    lines: dionaea_lines,
};

/// Runs one case in its own lab; returns the sessions the server has for the attacker.
fn run(case: &Case, prefix: &str, net: &str) -> Vec<Value> {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let mut lab = Lab::new(prefix, net, tmp.path());
    let (sen, att) = (lab.sen(), lab.att());
    if let Some(p) = case.program {
        stand_in(&lab.dir.join("bin"), p);
    }
    // The configuration the script checks for (Snort 3's snort.lua) and the log's
    // directory (Dionaea's, which the script does not create).
    std::fs::create_dir_all(lab.dir.join("etcsnort")).unwrap();
    std::fs::write(lab.dir.join("etcsnort/snort.lua"), "-- stand-in\n").unwrap();
    let log = lab.dir.join(case.log);
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    if case.script == "dionaea" {
        append(&log, &[]);
    }
    lab.start_server(&netns::sensor_binary());
    let key = lab.api_key();
    let command = lab.deploy_command(&key, case.script);

    let out = lab.deploy(&command, case.mounts);
    assert!(out.contains("created sensor"), "{out}");
    let sensors = lab.api(&key, "/api/sensor/");
    assert_eq!(sensors.as_array().unwrap().len(), 1, "{sensors}");
    assert_eq!(sensors[0]["honeypot"], case.script, "{sensors}");
    let unit = format!("apiary-forward-{}", case.script);
    wait_for("the forwarder's privilege drop", 20, || {
        lab.read(&format!("varlog/{unit}.log"))
            .contains("dropped privileges")
    });
    let fwd = lab.read(&format!("var/{unit}.pid"));
    let (_, user) = netns::sh(&format!("ps -o user= -p {}", fwd.trim()));
    assert_eq!(user.trim(), "apiary-sensor", "forwarder pid {fwd}");
    let program_pid = case.program.map(|p| {
        let pid = lab.read(&format!("var/apiary-{p}.pid"));
        assert!(netns::sh(&format!("kill -0 {}", pid.trim())).0, "{p} runs");
        pid
    });

    append(&log, &(case.lines)(&att, &sen));
    let mut sessions = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sessions.is_empty() {
        let v = lab.api(&key, &format!("/api/session/?source_ip={att}"));
        sessions = v["data"].as_array().cloned().unwrap_or_default();
        if Instant::now() > deadline {
            panic!(
                "no sessions for {att}; forwarder log:\n{}\nraw messages: {}\nserver log:\n{}",
                lab.read(&format!("varlog/{unit}.log")),
                lab.api(&key, "/api/feed/?limit=10"),
                lab.server_log()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // Nothing more arrives (the Suricata flow record is not an alert).
    std::thread::sleep(Duration::from_secs(2));
    let v = lab.api(&key, &format!("/api/session/?source_ip={att}"));
    sessions = v["data"].as_array().cloned().unwrap_or_default();

    // Second run: same sensor, the program not started twice, the forwarder restarted.
    let out = lab.deploy(&command, case.mounts);
    assert!(out.contains("already registered"), "{out}");
    if let (Some(p), Some(pid)) = (case.program, program_pid) {
        assert!(out.contains(&format!("{p} already running")), "{out}");
        assert_eq!(lab.read(&format!("var/apiary-{p}.pid")), pid);
    }
    let sensors = lab.api(&key, "/api/sensor/");
    assert_eq!(sensors.as_array().unwrap().len(), 1, "{sensors}");
    // The restarted forwarder resumes at its saved position: nothing is sent twice.
    wait_for("the restarted forwarder", 20, || {
        lab.read(&format!("varlog/{unit}.log"))
            .matches("dropped privileges")
            .count()
            >= 2
    });
    std::thread::sleep(Duration::from_secs(2));
    let again = lab.api(&key, &format!("/api/session/?source_ip={att}"));
    assert_eq!(
        again["data"].as_array().map(Vec::len),
        Some(sessions.len()),
        "{again}"
    );
    // Each session in full (the list leaves out the IDS details).
    let sessions: Vec<Value> = sessions
        .iter()
        .map(|s| lab.api(&key, &format!("/api/session/{}/", s["id"])))
        .collect();
    eprintln!(
        "ids_netns {}: {} sessions in {:.1} s",
        case.script,
        sessions.len(),
        started.elapsed().as_secs_f64()
    );
    sessions
}

#[test]
fn suricata_deploy_script_forwards_eve_alerts() {
    if !netns::usable("ids_netns", &[]) {
        return;
    }
    let s = run(&SURICATA, "su", "10.231.80");
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0]["honeypot"], "suricata", "{:?}", s[0]);
    assert_eq!(s[0]["destination_port"], 80, "{:?}", s[0]);
    let text = s[0].to_string();
    assert!(
        text.contains("ET SCAN Possible Nmap User-Agent Observed"),
        "{text}"
    );
}

#[test]
fn snort_deploy_script_forwards_alert_json() {
    if !netns::usable("ids_netns", &[]) {
        return;
    }
    let s = run(&SNORT, "sn", "10.231.81");
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0]["honeypot"], "snort", "{:?}", s[0]);
    assert_eq!(s[0]["destination_port"], 22, "{:?}", s[0]);
    let text = s[0].to_string();
    assert!(text.contains("Apiary test SSH probe"), "{text}");
}

#[test]
fn dionaea_deploy_script_forwards_its_json_log() {
    if !netns::usable("ids_netns", &[]) {
        return;
    }
    let s = run(&DIONAEA, "di", "10.231.82");
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0]["honeypot"], "dionaea", "{:?}", s[0]);
    assert_eq!(s[0]["destination_port"], 445, "{:?}", s[0]);
}
