//! Running the `apiary` binary from tests and examples: an admin command that must succeed,
//! and `apiary server` on free local ports with the listener addresses it reports.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs `cmd` (an `apiary` admin command) with no stdin; panics with the command and its
/// stderr unless it succeeds; returns its trimmed stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().expect("run apiary");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `bin server` on 127.0.0.1 port 0 (HPFeeds and HTTP) with `data_dir`, logging at info to
/// a piped stderr (read it with [`wait_for_listeners`]).
pub fn server_command(bin: &Path, data_dir: &Path) -> Command {
    let mut c = Command::new(bin);
    c.args([
        "server",
        "--hpfeeds-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
    ])
    .arg("--data-dir")
    .arg(data_dir)
    .env("APIARY_LOG", "info")
    .stderr(Stdio::piped())
    .stdout(Stdio::null());
    c
}

/// Reads the server's log lines from `log` until it has reported both listeners; returns
/// (HPFeeds, HTTP) addresses. Panics when that takes longer than `timeout`.
pub fn wait_for_listeners(
    log: &mpsc::Receiver<String>,
    timeout: Duration,
) -> (SocketAddr, SocketAddr) {
    let (mut hpfeeds, mut http) = (None, None);
    let deadline = Instant::now() + timeout;
    while hpfeeds.is_none() || http.is_none() {
        let line = log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("server did not report its listeners in time");
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
            .and_then(|a| a.parse::<SocketAddr>().ok());
        if line.contains("hpfeeds broker listening") {
            hpfeeds = addr;
        } else if line.contains("HTTP listening") {
            http = addr;
        }
    }
    (hpfeeds.expect("hpfeeds addr"), http.expect("http addr"))
}
