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
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const NET: &str = "10.231.77";
const SRV: &str = "10.231.77.1";
const SEN: &str = "10.231.77.2";
const ATT: &str = "10.231.77.3";
const NS: [&str; 3] = ["srv", "sen", "att"];

fn sh(cmd: &str) -> (bool, String) {
    let out = Command::new("bash")
        .args(["-c", cmd])
        .output()
        .expect("run bash");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn must(cmd: &str) -> String {
    let (ok, out) = sh(cmd);
    assert!(ok, "command failed: {cmd}\n{out}");
    out
}

struct Netns {
    dir: PathBuf,
    server: Option<Child>,
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let pid = self.dir.join("var/apiary-sensor.pid");
        if let Ok(p) = std::fs::read_to_string(pid) {
            let _ = sh(&format!("kill {}", p.trim()));
        }
        for ns in NS {
            let _ = sh(&format!("ip netns del {ns}"));
        }
    }
}

fn setup_net() {
    for ns in NS {
        let _ = sh(&format!("ip netns del {ns} 2>/dev/null"));
        must(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
    }
    must(&format!(
        "ip -n srv link add br0 type bridge && ip -n srv link set br0 up && ip -n srv addr add {SRV}/24 dev br0"
    ));
    for (ns, ip) in [("sen", SEN), ("att", ATT)] {
        must(&format!(
            "ip -n srv link add p-{ns} type veth peer name eth0 netns {ns} && \
             ip -n srv link set p-{ns} master br0 up && \
             ip -n {ns} addr add {ip}/24 dev eth0 && ip -n {ns} link set eth0 up"
        ));
    }
    let _ = NET;
}

fn sensor_binary() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_apiary"))
        .parent()
        .unwrap()
        .to_path_buf();
    let bin = dir.join("apiary-sensor");
    if !bin.exists() {
        must(&format!(
            "cd {} && cargo build -p apiary-sensor",
            common::repo_root().display()
        ));
    }
    assert!(bin.exists(), "no {}", bin.display());
    bin
}

fn start_server(data: &Path, sensor_bin: &Path) -> Child {
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            "srv",
            env!("CARGO_BIN_EXE_apiary"),
            "server",
        ])
        .args(["--hpfeeds-listen", &format!("{SRV}:10000")])
        .args(["--http-listen", &format!("{SRV}:8080")])
        .arg("--data-dir")
        .arg(data)
        .env_remove("APIARY_CONFIG")
        .env("APIARY_LOG", "info")
        .env("APIARY_ADMIN_EMAIL", "admin@example.org")
        .env("APIARY_ADMIN_PASSWORD", "correct horse battery staple")
        .env("APIARY_DEPLOY__SENSOR_BINARY", sensor_bin)
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(data.join("server.log"))
                .unwrap(),
        ))
        .spawn()
        .expect("spawn server");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, _) = sh(&format!(
            "ip netns exec srv curl -fsS -m 2 http://{SRV}:8080/healthz"
        ));
        if ok {
            return child;
        }
        if let Ok(Some(s)) = child.try_wait() {
            panic!("server exited: {s}");
        }
        assert!(Instant::now() < deadline, "server did not come up");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stop_server(child: &mut Child) {
    let _ = sh(&format!("kill -TERM {}", child.id()));
    let _ = child.wait();
}

fn api(key: &str, path: &str) -> Value {
    let out = must(&format!(
        "ip netns exec srv curl -fsS -m 10 -H 'Authorization: Bearer {key}' 'http://{SRV}:8080{path}'"
    ));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{path}: {e}: {out}"))
}

/// The one-line command, run in `sen` with the script's directories bind-mounted from `dir`.
fn deploy(dir: &Path, command: &str) -> String {
    let d = dir.display();
    let inner = format!(
        "mount --bind {d}/etc /etc/apiary-sensor && mount --bind {d}/var /var/lib/apiary-sensor && \
         mount --bind {d}/bin /usr/local/bin && mount --bind {d}/log.txt /var/log/apiary-sensor.log 2>/dev/null; \
         {command}"
    );
    let _ = sh(
        "mkdir -p /etc/apiary-sensor /var/lib/apiary-sensor && touch /var/log/apiary-sensor.log",
    );
    let (ok, out) = sh(&format!(
        "ip netns exec sen unshare -m --propagation private bash -c {}",
        shell_quote(&inner)
    ));
    eprintln!("[deploy] {out}");
    assert!(ok, "deploy command failed:\n{out}");
    out
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

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
fn attacker_sessions(key: &str) -> Vec<(i64, Option<String>, Value)> {
    let list = api(key, &format!("/api/session/?source_ip={ATT}&limit=1000"));
    let mut out = Vec::new();
    for s in list["data"].as_array().cloned().unwrap_or_default() {
        let id = s["id"].as_i64().unwrap();
        let full = api(key, &format!("/api/session/{id}/"));
        let eid = full["details"]["extra"]["id"].as_str().map(str::to_owned);
        out.push((id, eid, full));
    }
    out
}

fn wait_sessions(key: &str, want: usize, secs: u64) -> Vec<(i64, Option<String>, Value)> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = attacker_sessions(key);
        if got.len() >= want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn deploy_command_in_namespaces_delivers_every_event_once() {
    if !sh("test $(id -u) -eq 0").0
        || !sh("command -v ip && command -v unshare && command -v curl").0
    {
        eprintln!("\n*** SKIPPED deploy_netns: needs root, ip, unshare and curl ***\n");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    for d in ["etc", "var", "bin", "data"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(dir.join("log.txt"), b"").unwrap();
    let mut guard = Netns {
        dir: dir.clone(),
        server: None,
    };
    setup_net();
    let bin = sensor_binary();
    let data = dir.join("data");
    guard.server = Some(start_server(&data, &bin));

    let (ok, out, err) = common::admin(&data, &["apikey", "create", "admin@example.org"]);
    assert!(ok, "{out}{err}");
    let key = out
        .split_whitespace()
        .find(|w| w.len() == 64 && w.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no key in {out}"))
        .to_owned();
    let tok = must(&format!(
        "ip netns exec srv curl -fsS -X POST -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \
         -d '{{\"script\": \"Apiary sensor\", \"hours\": 1}}' http://{SRV}:8080/api/deploy/token/"
    ));
    let tok: Value = serde_json::from_str(&tok).unwrap();
    let command = tok["command"]
        .as_str()
        .unwrap()
        .replace("sudo bash", "bash");
    assert!(
        command.starts_with(&format!("curl -fsSL http://{SRV}:8080/deploy/")),
        "{command}"
    );

    let out = deploy(&dir, &command);
    assert!(out.contains("created sensor"), "{out}");
    let sensors = api(&key, "/api/sensor/");
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
            std::fs::read_to_string(dir.join("log.txt")).unwrap_or_default()
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
    let got = wait_sessions(&key, sent, 60);
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
    stop_server(guard.server.as_mut().unwrap());
    guard.server = None;
    let mut offline = 0;
    offline += attack("b");
    offline += attack("c");
    std::thread::sleep(Duration::from_secs(2));
    guard.server = Some(start_server(&data, &bin));
    let want = before_stop + offline;
    let got = wait_sessions(&key, want, 120);
    std::thread::sleep(Duration::from_secs(5));
    let got2 = attacker_sessions(&key);
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
    let out = deploy(&dir, &command);
    assert!(out.contains("already registered"), "{out}");
    let sensors = api(&key, "/api/sensor/");
    assert_eq!(sensors.as_array().unwrap().len(), 1, "{sensors}");
    eprintln!("deploy_netns: {want} sessions, each event once; one sensor after two deploys");
}
