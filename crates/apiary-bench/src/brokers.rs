//! The two brokers under test, each in its own child process, killed on drop.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::wire;

/// Which broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ours,
    Python,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::Python => "python",
        }
    }
}

/// A running broker process.
pub struct BrokerProc {
    pub kind: Kind,
    pub addr: SocketAddr,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<BufReader<ChildStdout>>,
    exporter: Option<SocketAddr>,
    pub log: Option<PathBuf>,
}

/// A port that was free a moment ago (the Python CLI needs a number up front).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl BrokerProc {
    /// Our broker: this very binary, re-executed with the hidden `serve-broker` command.
    pub fn start_ours(
        users: &Path,
        threads: Option<usize>,
        queue_frames: Option<usize>,
    ) -> Result<Self> {
        let exe = std::env::current_exe().context("locating the bench binary")?;
        let mut cmd = Command::new(exe);
        cmd.arg("serve-broker")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--idents")
            .arg(users);
        if let Some(t) = threads {
            cmd.arg("--threads").arg(t.to_string());
        }
        if let Some(q) = queue_frames {
            cmd.arg("--queue-frames").arg(q.to_string());
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting serve-broker")?;
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().map(BufReader::new);
        let mut line = String::new();
        if let Some(out) = stdout.as_mut() {
            out.read_line(&mut line)?;
        }
        let mut me = Self {
            kind: Kind::Ours,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child,
            stdin,
            stdout,
            exporter: None,
            log: None,
        };
        let port: u16 = line
            .trim()
            .strip_prefix("LISTENING ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| anyhow!("serve-broker did not report its port: {line:?}"))?;
        me.addr.set_port(port);
        me.wait_ready()?;
        Ok(me)
    }

    /// The Python reference broker via its CLI.
    pub fn start_python(exe: &Path, users: &Path, log: &Path) -> Result<Self> {
        let port = free_port()?;
        let exporter = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let out = File::create(log)?;
        let child = Command::new(exe)
            .arg("--bind")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--auth")
            .arg(users)
            .arg("--exporter")
            .arg(exporter.to_string())
            .arg("--name")
            .arg("python-bench")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {exe:?}"))?;
        let mut me = Self {
            kind: Kind::Python,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            stdin: None,
            stdout: None,
            exporter: Some(exporter),
            log: Some(log.to_path_buf()),
        };
        me.wait_ready()?;
        Ok(me)
    }

    /// Polls until the broker accepts a connection and greets it with OP_INFO.
    fn wait_ready(&mut self) -> Result<()> {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait()? {
                bail!("{} broker exited early ({st})", self.kind.name());
            }
            if let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)) {
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                if let Ok(hpfeeds::Frame::Info { .. }) = wire::read_frame(&mut s) {
                    return Ok(());
                }
            }
            if Instant::now() > until {
                bail!(
                    "{} broker did not come up on {}",
                    self.kind.name(),
                    self.addr
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size in KiB, from /proc/<pid>/status.
    pub fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("no VmRSS in /proc/{}/status", self.pid()))
    }

    /// Our broker's counters (`STATS k=v ...`); None for the Python broker.
    pub fn stats(&mut self) -> Option<BTreeMap<String, i64>> {
        let (stdin, stdout) = (self.stdin.as_mut()?, self.stdout.as_mut()?);
        stdin.write_all(b"stats\n").ok()?;
        stdin.flush().ok()?;
        let mut line = String::new();
        stdout.read_line(&mut line).ok()?;
        let rest = line.trim().strip_prefix("STATS ")?;
        Some(
            rest.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
                .collect(),
        )
    }

    /// Authenticated connections as the broker reports them: our STATS, or the sum of
    /// the Python exporter's `hpfeeds_client_authenticated_connections` gauges.
    pub fn authenticated(&mut self) -> Option<u64> {
        if self.kind == Kind::Ours {
            return self.stats()?.get("authed").map(|v| (*v).max(0) as u64);
        }
        let mut s = TcpStream::connect_timeout(&self.exporter?, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        let mut total = 0.0;
        let mut found = false;
        for l in body.lines() {
            if let Some(rest) = l.strip_prefix("hpfeeds_client_authenticated_connections{") {
                if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
                    total += v;
                    found = true;
                }
            }
        }
        found.then_some(total as u64)
    }
}

impl Drop for BrokerProc {
    fn drop(&mut self) {
        self.stdin.take(); // EOF: our broker shuts down by itself.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
