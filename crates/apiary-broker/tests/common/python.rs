//! Running the Python `hpfeeds` 3.1.0 package: the client-driver script
//! `tests/python/hpfeeds_peer.py` and the reference `hpfeeds-broker`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use super::{python, python_script, RawClient, WAIT};

/// A running `hpfeeds_peer.py`; its stdout is a stream of JSON events.
pub struct PyPeer {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    what: String,
}

impl PyPeer {
    /// [`PyPeer::spawn`] signed in as `ident` with `secret`, then `args`.
    pub fn spawn_as(
        mode: &str,
        addr: SocketAddr,
        ident: &str,
        secret: &str,
        args: &[&str],
    ) -> Self {
        let mut all = vec!["--ident", ident, "--secret", secret];
        all.extend_from_slice(args);
        Self::spawn(mode, addr, &all)
    }

    /// Starts `hpfeeds_peer.py <mode> --port <addr.port> <args...>`.
    pub fn spawn(mode: &str, addr: SocketAddr, args: &[&str]) -> Self {
        let mut cmd = Command::new(python());
        cmd.arg(python_script("hpfeeds_peer.py"))
            .arg(mode)
            .args(["--host", &addr.ip().to_string()])
            .args(["--port", &addr.port().to_string()])
            .args(args)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e} (run `bash .ci/run` or set APIARY_TEST_PYTHON)",
                python().display()
            )
        });
        let stdout = child.stdout.take().expect("piped stdout");
        Self {
            child,
            lines: BufReader::new(stdout).lines(),
            what: format!("hpfeeds_peer.py {mode} {}", args.join(" ")),
        }
    }

    async fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), e.read_to_string(&mut s)).await;
        }
        s
    }

    /// The next event; panics (with the script's stderr) if none arrives in time.
    pub async fn next_event(&mut self) -> Value {
        match tokio::time::timeout(WAIT, self.lines.next_line()).await {
            Ok(Ok(Some(line))) => serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("{}: bad event line {line:?}: {e}", self.what)),
            Ok(Ok(None)) | Ok(Err(_)) => {
                let _ = self.child.wait().await;
                let err = self.stderr().await;
                panic!("{} ended without another event; stderr:\n{err}", self.what)
            }
            Err(_) => {
                let _ = self.child.start_kill();
                let err = self.stderr().await;
                panic!("{}: no event in time; stderr:\n{err}", self.what)
            }
        }
    }

    /// The next event must be of kind `event`; returns it.
    pub async fn expect(&mut self, event: &str) -> Value {
        let v = self.next_event().await;
        assert_eq!(v["event"], event, "{}: unexpected event {v}", self.what);
        v
    }

    /// Reads the remaining events and waits for the script to exit; returns the events
    /// and the exit code.
    pub async fn finish(mut self) -> (Vec<Value>, Option<i32>) {
        let mut events = Vec::new();
        loop {
            match tokio::time::timeout(WAIT, self.lines.next_line()).await {
                Ok(Ok(Some(line))) => events.push(
                    serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("{}: bad line {line:?}: {e}", self.what)),
                ),
                Ok(Ok(None)) | Ok(Err(_)) => break,
                Err(_) => {
                    let _ = self.child.start_kill();
                    let err = self.stderr().await;
                    panic!(
                        "{} did not finish; events {events:?}; stderr:\n{err}",
                        self.what
                    )
                }
            }
        }
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit", self.what))
            .expect("wait");
        (events, status.code())
    }

    /// Like [`finish`](Self::finish), but the script must exit 0 with `done` last.
    pub async fn finish_ok(mut self) -> Vec<Value> {
        let what = self.what.clone();
        let err_pipe = self.child.stderr.take();
        let (events, code) = self.finish().await;
        if code != Some(0) || events.last().map(|e| &e["event"]) != Some(&"done".into()) {
            let mut err = String::new();
            if let Some(mut e) = err_pipe {
                let _ = e.read_to_string(&mut err).await;
            }
            panic!("{what} failed (exit {code:?}); events {events:?}; stderr:\n{err}");
        }
        events
    }
}

/// Events of kind `event`.
pub fn events_of<'a>(events: &'a [Value], event: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == event).collect()
}

/// A reference `hpfeeds-broker` (Python, hpfeeds 3.1.0) on free loopback ports, killed
/// on drop.
pub struct PyBroker {
    child: std::process::Child,
    /// Where it accepts hpfeeds clients.
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for PyBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (the broker binds it itself; a lost race is retried).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl PyBroker {
    /// Starts `hpfeeds-broker` with a JSON auth file `users` (the broker's format:
    /// `{ident: {owner, secret, pubchans, subchans}}`) and waits until it greets clients.
    pub async fn start(name: &str, users: &Value) -> Self {
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let dir = tempfile::tempdir().expect("tempdir");
            let auth = dir.path().join("users.json");
            std::fs::write(&auth, users.to_string()).expect("write users.json");
            let log = dir.path().join("broker.log");
            let (port, exporter) = (free_port(), free_port());
            let py = python();
            // The console script sits next to the venv's interpreter.
            let script = py.with_file_name("hpfeeds-broker");
            let mut cmd = if script.exists() {
                let mut c = std::process::Command::new(&py);
                c.arg(&script);
                c
            } else {
                let mut c = std::process::Command::new(&py);
                c.args([
                    "-c",
                    "import sys; from hpfeeds.scripts.broker import main; sys.exit(main())",
                ]);
                c
            };
            cmd.args(["--bind", &format!("127.0.0.1:{port}")])
                .arg("--auth")
                .arg(&auth)
                // Without --exporter it would open 0.0.0.0:8080.
                .args(["--exporter", &format!("127.0.0.1:{exporter}")])
                .args(["--name", name])
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&log).expect("log file"))
                .stderr(std::fs::File::create(dir.path().join("broker.err")).expect("err file"));
            let child = cmd.spawn().unwrap_or_else(|e| {
                panic!(
                    "cannot start hpfeeds-broker with {}: {e} (run `bash .ci/run`)",
                    py.display()
                )
            });
            let mut b = PyBroker {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                dir,
            };
            match b.wait_ready().await {
                Ok(()) => return b,
                Err(e) => last_err = e,
            }
        }
        panic!("hpfeeds-broker did not start: {last_err}");
    }

    fn output(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!(
            "stdout:\n{}\nstderr:\n{}",
            read("broker.log"),
            read("broker.err")
        )
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}; {}", self.output()));
            }
            if let Ok(s) = tokio::net::TcpStream::connect(self.addr).await {
                // Greeted with INFO: ready.
                RawClient::from_stream(s).await;
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("not listening after 30 s; {}", self.output()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The broker's working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
