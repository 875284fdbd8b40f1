//! A real third-party honeypot end to end: Cowrie 3.1.4 (installed from PyPI into
//! `.venv-cowrie`) is configured with the exact `cowrie.cfg` text that Apiary's Cowrie deploy
//! script writes (`crates/apiary-sensor/deploy/cowrie.sh`, rendered with this test's broker
//! address and ident), runs in the foreground without root, and publishes to the running
//! `apiary` binary. An SSH login attempt (paramiko, one rejected and one accepted password,
//! then a command) becomes one stored `cowrie` session with those credentials.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use apiary_model::Credential;
use apiary_store::{Page, SessionFilter};
use common::*;

const IDENT: &str = "cowrie-e2e";
const SECRET: &str = "cowrie-e2e-secret";
const USER: &str = "root";
/// Rejected by Cowrie's default userdb (`root:x:!123456`).
const BAD_PASSWORD: &str = "123456";
/// Accepted by the default userdb (`root:x:*`).
const GOOD_PASSWORD: &str = "apiary-e2e-Pw7";

fn run(cmd: &mut Command) -> std::process::Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"))
}

/// `.venv-cowrie` at the repo root with cowrie 3.1.4, hpfeeds 3.1.0 and paramiko (the SSH
/// client); created when missing (`.ci/run` does the same). Fails loudly when it can't.
fn cowrie_venv() -> PathBuf {
    let venv = repo_root().join(".venv-cowrie");
    let python = venv.join("bin/python");
    let ready = |python: &Path| {
        python.exists()
            && Command::new(python)
                .args([
                    "-c",
                    "import importlib.metadata as m, sys, paramiko, hpfeeds.twisted, cowrie\n\
                     sys.exit(m.version('cowrie') != '3.1.4' or m.version('hpfeeds') != '3.1.0')",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    };
    if !ready(&python) {
        eprintln!(
            "creating {} (cowrie 3.1.4, hpfeeds 3.1.0, paramiko)",
            venv.display()
        );
        let out = run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
        assert!(
            out.status.success(),
            "python3 -m venv failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = run(Command::new(venv.join("bin/pip")).args([
            "install",
            "--disable-pip-version-check",
            "--quiet",
            "cowrie==3.1.4",
            "hpfeeds==3.1.0",
            "paramiko>=3,<6",
        ]));
        assert!(
            out.status.success(),
            "pip install into {} failed:\n{}{}",
            venv.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            ready(&python),
            "{} still unusable after install",
            venv.display()
        );
    }
    venv
}

/// The `cowrie.cfg` heredoc from the deploy script, rendered by bash with the script's
/// variables set, exactly as the script would write it.
fn deploy_script_config(host: &str, port: u16, ident: &str, secret: &str) -> String {
    let script_path = repo_root().join("crates/apiary-sensor/deploy/cowrie.sh");
    let script = std::fs::read_to_string(&script_path).expect("read cowrie.sh");
    let mut lines = script.lines();
    lines
        .by_ref()
        .find(|l| l.contains("cowrie.cfg\" <<CFG"))
        .expect("cowrie.sh writes cowrie.cfg with a <<CFG heredoc");
    let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "CFG").collect();
    assert!(!body.is_empty(), "empty cowrie.cfg heredoc in cowrie.sh");
    let out = run(Command::new("bash")
        .arg("-c")
        .arg(format!("set -eu\ncat <<CFG\n{}\nCFG\n", body.join("\n")))
        .env("HPF_HOST", host)
        .env("HPF_PORT", port.to_string())
        .env("IDENT", ident)
        .env("SECRET", secret));
    assert!(
        out.status.success(),
        "rendering the heredoc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = String::from_utf8(out.stdout).expect("utf-8 config");
    for want in [
        "[output_hpfeeds3]".to_string(),
        "enabled = true".into(),
        format!("server = {host}"),
        format!("port = {port}"),
        format!("identifier = {ident}"),
        format!("secret = {secret}"),
        "channel = cowrie.sessions".into(),
    ] {
        assert!(
            cfg.lines().any(|l| l.trim() == want),
            "no `{want}` in:\n{cfg}"
        );
    }
    cfg
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn is_root() -> bool {
    let out = run(Command::new("id").arg("-u"));
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// A `cowrie` command run in `state`: the venv's bin first on PATH (cowrie execs `twistd`
/// from PATH) and, when we are root (Cowrie refuses to run as root), inside a user
/// namespace that maps us to uid 1000 while keeping our file access.
fn cowrie_cmd(venv: &Path, state: &Path, args: &[&str]) -> Command {
    let bin = venv.join("bin");
    let cowrie = bin.join("cowrie");
    let mut cmd = if is_root() {
        let mut c = Command::new("unshare");
        c.args(["--user", "--map-user=1000", "--map-group=1000"])
            .arg(&cowrie);
        c
    } else {
        Command::new(&cowrie)
    };
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.args(args)
        .current_dir(state)
        .env("PATH", format!("{}:{path}", bin.display()))
        .env("HOME", state);
    cmd
}

/// Cowrie running in the foreground in its own process group; the group is killed on drop.
struct Cowrie {
    child: Child,
    log: mpsc::Receiver<String>,
}

impl Cowrie {
    fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while let Ok(line) = self
            .log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if line.contains(needle) {
                return true;
            }
        }
        false
    }
}

impl Drop for Cowrie {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-TERM", "--", &group])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_cowrie(venv: &Path, state: &Path, ssh_port: u16) -> Cowrie {
    let out = run(&mut cowrie_cmd(venv, state, &["init"]));
    assert!(
        out.status.success(),
        "cowrie init failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cmd = cowrie_cmd(venv, state, &["start"]);
    // Foreground, logging to stdout. The deploy script's config listens on 0.0.0.0:2222;
    // the test only moves the listener to a free loopback port (env overrides any file).
    cmd.env("COWRIE_STDOUT", "yes")
        .env(
            "COWRIE_SSH_LISTEN_ENDPOINTS",
            format!("tcp:{ssh_port}:interface=127.0.0.1"),
        )
        .env("COWRIE_TELNET_ENABLED", "false")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().expect("spawn cowrie start");
    let (tx, rx) = mpsc::channel();
    for (name, stream) in [
        (
            "cowrie",
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ),
        (
            "cowrie!",
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ),
    ] {
        let tx = tx.clone();
        let stream = stream.expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                eprintln!("[{name}] {line}");
                let _ = tx.send(line);
            }
        });
    }
    Cowrie { child, log: rx }
}

const SSH_CLIENT: &str = r#"
import socket, sys, paramiko
port, user, bad, good = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
sock = socket.create_connection(("127.0.0.1", port), timeout=60)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cowrie_from_pypi_configured_by_deploy_script_publishes_ssh_session() {
    let started = Instant::now();
    let venv = cowrie_venv();
    eprintln!("cowrie venv ready after {:?}", started.elapsed());

    let server = TestServer::start(&[]);
    let (ok, out, err) = admin(
        server.data_dir(),
        &[
            "ident",
            "add",
            IDENT,
            "--secret",
            SECRET,
            "--publish",
            "cowrie.sessions",
        ],
    );
    assert!(ok, "{out}{err}");
    // Cowrie's hpfeeds output drops publishes while it is not connected, so make sure the
    // running server accepts the ident before Cowrie starts.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let opts = hpfeeds::ClientOptions::new(
            server.hpfeeds.ip().to_string(),
            server.hpfeeds.port(),
            IDENT,
            SECRET,
        );
        if let Ok(mut c) = hpfeeds::Client::connect(opts).await {
            if c.check_auth(Duration::from_millis(500)).await.is_ok() {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the server never accepted the new ident"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let state = tempfile::tempdir().expect("cowrie state dir");
    let cfg = deploy_script_config(
        &server.hpfeeds.ip().to_string(),
        server.hpfeeds.port(),
        IDENT,
        SECRET,
    );
    // Where the deploy script puts it: ./cowrie.cfg in Cowrie's working directory.
    std::fs::write(state.path().join("cowrie.cfg"), &cfg).expect("write cowrie.cfg");

    let ssh_port = free_port();
    let cowrie = start_cowrie(&venv, state.path(), ssh_port);
    assert!(
        cowrie.wait_log("Ready to accept SSH connections", Duration::from_secs(180)),
        "cowrie did not start listening"
    );
    eprintln!("cowrie listening after {:?}", started.elapsed());
    // The hpfeeds output connects asynchronously at startup and silently drops publishes
    // until it is connected: wait for its factory to start, then give the loopback connect
    // and AUTH a moment on a loaded machine.
    assert!(
        cowrie.wait_log(
            "Starting factory <hpfeeds.twisted.factory.ClientFactory",
            Duration::from_secs(60)
        ),
        "cowrie's hpfeeds3 output did not start"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    let out = run(Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg(SSH_CLIENT)
        .args([&ssh_port.to_string(), USER, BAD_PASSWORD, GOOD_PASSWORD]));
    eprintln!(
        "[ssh client] {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the SSH client failed");

    // Cowrie publishes one cowrie.sessions message when the session closes.
    let store = apiary_store::open(&format!(
        "sqlite://{}",
        server.data_dir().join("apiary.db").display()
    ))
    .await
    .expect("open store");
    let deadline = Instant::now() + Duration::from_secs(120);
    let sessions = loop {
        let (sessions, _) = store
            .sessions(SessionFilter::default(), Page::default())
            .await
            .expect("query sessions");
        if !sessions.is_empty() {
            break sessions;
        }
        assert!(
            Instant::now() < deadline,
            "no session stored within 120 s of the SSH login"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!("session stored after {:?}", started.elapsed());
    assert_eq!(
        sessions.len(),
        1,
        "one SSH connection, one session: {sessions:#?}"
    );
    let s = &sessions[0];
    assert_eq!(s.honeypot, "cowrie");
    assert_eq!(s.protocol.as_deref(), Some("ssh"));
    assert_eq!(s.channel, "cowrie.sessions");
    assert_eq!(s.sensor, IDENT);
    assert_eq!(s.source_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    assert!(s.internal, "loopback source is internal");
    assert!(s.source_geo.is_none());
    assert_eq!(s.destination_port, Some(ssh_port));
    let cred = |p: &str| Credential {
        username: USER.into(),
        password: p.into(),
    };
    assert_eq!(
        s.details.credentials,
        vec![cred(BAD_PASSWORD), cred(GOOD_PASSWORD)],
        "failed attempt first, then the successful login"
    );
    assert_eq!(s.details.logged_in, Some(true));
    assert_eq!(s.details.commands, vec!["uname -a".to_string()]);
    assert!(
        s.details
            .ssh_version
            .as_deref()
            .is_some_and(|v| v.starts_with("SSH-2.0-paramiko")),
        "{:?}",
        s.details.ssh_version
    );
    drop(cowrie);
    eprintln!("total {:?}", started.elapsed());
}
