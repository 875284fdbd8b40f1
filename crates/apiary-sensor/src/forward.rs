//! Log forwarders: tail a file, publish every complete line (one line per message) on the
//! forwarder's channel, through the spool.
//!
//! # Positions (no duplicate, no gap across restarts)
//! Each published line is appended to the spool together with the file position after it
//! (`SourcePos`: inode + offset) in the same write, and the forwarder's state file
//! (`<spool_dir>/forward/<name>.pos`) is rewritten after each poll (covering filtered-out
//! lines too). On start the newer of the two is used, so a crash between the spool
//! append and the state write neither repeats nor skips a line.
//!
//! # Rotation and truncation
//! - Rotation (the path now names another inode): the old file is read to its end through
//!   the still-open handle, then the new file is read from offset 0. After a restart, if
//!   the path's inode is not the saved one, the rotated file (`rotated_path`, default
//!   `<path>.1`) is drained from the saved offset when its inode matches.
//! - Truncation (same inode, size below our offset, e.g. `copytruncate`): restart at 0.
//! - A final line without `\n` waits until it is completed (or the file is rotated away).
//! - Lines longer than 256 KiB are skipped and counted.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{ForwardKind, Forwarder};
use crate::spool::SourcePos;
use crate::Shared;

/// Longest line forwarded.
pub const MAX_LINE: usize = 256 * 1024;

/// One tailed file.
pub struct Tailer {
    key: String,
    path: PathBuf,
    rotated: PathBuf,
    channel: String,
    kind: ForwardKind,
    event_types: Vec<String>,
    state_path: PathBuf,
    file: Option<File>,
    inode: u64,
    /// Position after the last complete line handled.
    offset: u64,
    pending: Vec<u8>,
    skipping: bool,
    /// Lines published.
    pub lines: u64,
    /// Lines dropped as oversized.
    pub oversized: u64,
    /// Lines filtered out.
    pub filtered: u64,
}

#[derive(Deserialize)]
struct EveHead {
    #[serde(default)]
    event_type: Option<String>,
}

impl Tailer {
    /// Creates a tailer, restoring its position from the state file and the spool.
    pub fn new(f: &Forwarder, state_dir: &Path, shared: &Shared) -> std::io::Result<Tailer> {
        let key = f.path.to_string_lossy().into_owned();
        let dir = state_dir.join("forward");
        fs::create_dir_all(&dir)?;
        let name: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let state_path = dir.join(format!("{name}.pos"));
        let mut t = Tailer {
            rotated: f.rotated_path.clone().unwrap_or_else(|| {
                let mut p = f.path.clone().into_os_string();
                p.push(".1");
                PathBuf::from(p)
            }),
            channel: f
                .channel
                .clone()
                .unwrap_or_else(|| f.kind.channel().to_owned()),
            kind: f.kind,
            event_types: f
                .event_types
                .clone()
                .unwrap_or_else(|| vec!["alert".into()]),
            path: f.path.clone(),
            key,
            state_path,
            file: None,
            inode: 0,
            offset: 0,
            pending: Vec::new(),
            skipping: false,
            lines: 0,
            oversized: 0,
            filtered: 0,
        };
        let saved = fs::read_to_string(&t.state_path).ok().and_then(|s| {
            let mut it = s.split_whitespace().map(|x| x.parse::<u64>().ok());
            Some((it.next()??, it.next()??))
        });
        let from_spool = shared
            .spool
            .lock()
            .ok()
            .and_then(|s| s.source_positions().get(&t.key).cloned());
        let pos = match (saved, from_spool) {
            (Some((i, o)), Some(sp)) if sp.inode != i || sp.offset > o => {
                Some((sp.inode, sp.offset))
            }
            (Some(x), _) => Some(x),
            (None, Some(sp)) => Some((sp.inode, sp.offset)),
            (None, None) => None,
        };
        if let Some((ino, off)) = pos {
            t.inode = ino;
            t.offset = off;
            match fs::metadata(&t.path) {
                Ok(m) if m.ino() == ino => {
                    let mut f = File::open(&t.path)?;
                    if m.len() < off {
                        t.offset = 0;
                    }
                    f.seek(SeekFrom::Start(t.offset))?;
                    t.file = Some(f);
                }
                _ => {
                    // Rotated while we were down: drain the old file if we can find it.
                    if let Ok(m) = fs::metadata(&t.rotated) {
                        if m.ino() == ino {
                            let mut f = File::open(&t.rotated)?;
                            if m.len() < off {
                                t.offset = 0;
                            }
                            f.seek(SeekFrom::Start(t.offset))?;
                            t.file = Some(f);
                        }
                    }
                }
            }
        }
        Ok(t)
    }

    /// Label for the heartbeat.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": self.kind.name(), "path": self.key, "channel": self.channel,
            "lines": self.lines, "oversized": self.oversized, "filtered": self.filtered,
        })
    }

    fn read_available(&mut self, shared: &Shared, final_read: bool) -> std::io::Result<()> {
        let Some(mut f) = self.file.take() else {
            return Ok(());
        };
        let mut buf = vec![0u8; 64 * 1024];
        let r = (|| -> std::io::Result<()> {
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                self.consume(&buf[..n], shared)?;
            }
            if final_read && !self.pending.is_empty() {
                let line = std::mem::take(&mut self.pending);
                let len = line.len() as u64;
                self.publish_line(&line, len, shared)?;
            }
            Ok(())
        })();
        self.file = Some(f);
        r
    }

    fn consume(&mut self, mut data: &[u8], shared: &Shared) -> std::io::Result<()> {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let used = (i + 1) as u64;
                    if self.skipping || self.pending.len() + i > MAX_LINE {
                        self.skipping = false;
                        self.offset += self.pending.len() as u64 + used;
                        self.pending.clear();
                        self.oversized += 1;
                    } else {
                        let mut line = std::mem::take(&mut self.pending);
                        line.extend_from_slice(&data[..i]);
                        let len = line.len() as u64 + 1;
                        self.publish_line(&line, len, shared)?;
                    }
                    data = &data[i + 1..];
                }
                None => {
                    if self.skipping {
                        self.offset += data.len() as u64;
                    } else {
                        self.pending.extend_from_slice(data);
                        if self.pending.len() > MAX_LINE {
                            self.skipping = true;
                            self.offset += self.pending.len() as u64;
                            self.pending.clear();
                        }
                    }
                    data = &[];
                }
            }
        }
        Ok(())
    }

    fn publish_line(&mut self, line: &[u8], len: u64, shared: &Shared) -> std::io::Result<()> {
        self.offset += len;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(());
        }
        if self.kind == ForwardKind::Suricata {
            let keep = serde_json::from_slice::<EveHead>(line)
                .ok()
                .and_then(|h| h.event_type)
                .is_some_and(|t| self.event_types.iter().any(|w| w == &t));
            if !keep {
                self.filtered += 1;
                return Ok(());
            }
        }
        let text = String::from_utf8_lossy(line);
        let sp = SourcePos {
            key: self.key.clone(),
            inode: self.inode,
            offset: self.offset,
        };
        shared.emit(&self.channel, &text, Some(&sp))?;
        self.lines += 1;
        Ok(())
    }

    fn save(&self) -> std::io::Result<()> {
        let tmp = self.state_path.with_extension("tmp");
        fs::write(&tmp, format!("{} {}", self.inode, self.offset))?;
        fs::rename(&tmp, &self.state_path)
    }

    /// One poll: read new lines, follow rotation/truncation, save the position.
    pub fn step(&mut self, shared: &Shared) -> std::io::Result<()> {
        let meta = fs::metadata(&self.path).ok();
        let cur_ino = meta.as_ref().map(|m| m.ino());
        if self.file.is_some() && cur_ino != Some(self.inode) {
            // Rotated (or removed): finish the old file first.
            self.read_available(shared, cur_ino.is_some())?;
            if cur_ino.is_some() {
                self.file = None;
                self.pending.clear();
                self.skipping = false;
            }
        }
        if self.file.is_none() {
            if let Some(m) = &meta {
                let f = File::open(&self.path)?;
                self.inode = m.ino();
                self.offset = 0;
                self.pending.clear();
                self.skipping = false;
                self.file = Some(f);
            }
        } else if let (Some(m), Some(f)) = (&meta, self.file.as_mut()) {
            let consumed = self.offset + self.pending.len() as u64;
            if m.len() < consumed {
                tracing::info!(path = %self.key, "file truncated; reading from the start");
                f.seek(SeekFrom::Start(0))?;
                self.offset = 0;
                self.pending.clear();
                self.skipping = false;
            }
        }
        self.read_available(shared, false)?;
        if self.file.is_some() {
            self.save()?;
        }
        Ok(())
    }
}

/// Runs all tailers on a dedicated thread until `stop` is set.
pub fn spawn(
    mut tailers: Vec<Tailer>,
    shared: Arc<Shared>,
    poll: Duration,
    stop: Arc<AtomicBool>,
    stats: Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        // The last error logged per tailer: a log that stays unreadable (missing, wrong
        // permissions) is reported when the error starts or changes, not every poll.
        let mut last: Vec<Option<String>> = vec![None; tailers.len()];
        while !stop.load(Ordering::Relaxed) {
            for (t, last) in tailers.iter_mut().zip(last.iter_mut()) {
                match t.step(&shared) {
                    Ok(()) => {
                        if last.take().is_some() {
                            tracing::info!(path = %t.key, "forwarder recovered");
                        }
                    }
                    Err(e) => {
                        let e = e.to_string();
                        if last.as_deref() != Some(e.as_str()) {
                            tracing::warn!(path = %t.key, error = %e, "forwarder step failed (repeats are not logged)");
                            *last = Some(e);
                        }
                    }
                }
            }
            if let Ok(mut s) = stats.lock() {
                *s = tailers.iter().map(|t| t.describe()).collect();
            }
            std::thread::sleep(poll);
        }
    })
}
