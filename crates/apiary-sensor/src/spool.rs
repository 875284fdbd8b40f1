//! On-disk spool: every event goes here first and is published from here.
//!
//! # Layout (`<spool_dir>/spool/`)
//! - `seg-<id>.log`: append-only segments, one JSON record per line:
//!   `{"c": channel, "p": payload, "s": {"k": source, "i": inode, "o": offset}?}`.
//!   `s` is set by log forwarders: the file position *after* the forwarded line, so the
//!   forwarder's resume point is written in the same `write` as the data (see
//!   [`Spool::source_positions`]).
//! - `ack`: `"<segment> <offset>"`, the position after the last record the broker took,
//!   replaced atomically (write + fsync + rename).
//! - `dropped`: count of records discarded because the spool hit its size bound.
//!
//! # Guarantees
//! - A record is in the file (page cache) before `append` returns, so a crash of the
//!   sensor process loses nothing; segments are fsynced by [`Spool::sync`] (called
//!   periodically and before every ack) for power loss.
//! - A torn last line (crash mid-write) is cut off on open.
//! - Total size is bounded: when the segments exceed `max_bytes`, the oldest segment is
//!   deleted — acknowledged ones first by construction (they are the oldest), unsent ones
//!   only when there is no other way — and the unsent records lost are counted.
//! - Acknowledged segments are deleted once the ack moves past them.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A position: the byte offset of the next record in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// Segment id.
    pub seg: u64,
    /// Byte offset in that segment.
    pub off: u64,
}

/// Forwarder position carried by a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePos {
    /// Forwarder key (its path).
    #[serde(rename = "k")]
    pub key: String,
    /// Inode of the file.
    #[serde(rename = "i")]
    pub inode: u64,
    /// Offset after the line.
    #[serde(rename = "o")]
    pub offset: u64,
}

#[derive(Serialize)]
struct RecOut<'a> {
    c: &'a str,
    p: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    s: Option<&'a SourcePos>,
}

#[derive(Deserialize)]
struct RecIn {
    c: String,
    p: String,
    #[serde(default)]
    s: Option<SourcePos>,
}

/// A record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Channel.
    pub channel: String,
    /// Payload.
    pub payload: String,
    /// Position after this record.
    pub next: Pos,
}

/// Counters for the heartbeat.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SpoolStats {
    /// Records not yet acknowledged.
    pub pending: u64,
    /// Bytes not yet acknowledged.
    pub pending_bytes: u64,
    /// Records dropped because the spool was full (ever).
    pub dropped: u64,
}

/// The spool.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    seg_max: u64,
    total_max: u64,
    /// segment id → length in bytes.
    segs: BTreeMap<u64, u64>,
    writer: File,
    ack: Pos,
    dropped: u64,
    pending: u64,
    dirty: bool,
    sources: HashMap<String, SourcePos>,
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("seg-{id:016}.log"))
}

fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn count_lines(path: &Path, from: u64) -> std::io::Result<u64> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(from))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let r = f.read(&mut buf)?;
        if r == 0 {
            return Ok(n);
        }
        n += buf.iter().take(r).filter(|&&b| b == b'\n').count() as u64;
    }
}

impl Spool {
    /// Opens (creating) the spool under `dir/spool`, recovering from a crash.
    pub fn open(dir: &Path, seg_max: u64, total_max: u64) -> std::io::Result<Spool> {
        let dir = dir.join("spool");
        fs::create_dir_all(&dir)?;
        let mut segs = BTreeMap::new();
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name
                .strip_prefix("seg-")
                .and_then(|r| r.strip_suffix(".log"))
                .and_then(|r| r.parse::<u64>().ok())
            {
                segs.insert(id, e.metadata()?.len());
            }
        }
        // Cut a torn last line in the newest segment.
        if let Some((&id, len)) = segs.iter_mut().next_back() {
            let path = seg_path(&dir, id);
            let data = fs::read(&path)?;
            let keep = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            if (keep as u64) < *len {
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(keep as u64)?;
                *len = keep as u64;
            }
        }
        if segs.is_empty() {
            File::create(seg_path(&dir, 1))?;
            segs.insert(1, 0);
        }
        let last = segs.keys().next_back().copied().unwrap_or(1);
        let writer = OpenOptions::new().append(true).open(seg_path(&dir, last))?;
        let first = segs.keys().next().copied().unwrap_or(1);
        let mut ack = match fs::read_to_string(dir.join("ack")) {
            Ok(s) => {
                let mut it = s.split_whitespace().map(|x| x.parse::<u64>().ok());
                match (it.next().flatten(), it.next().flatten()) {
                    (Some(seg), Some(off)) => Pos { seg, off },
                    _ => Pos { seg: first, off: 0 },
                }
            }
            Err(_) => Pos { seg: first, off: 0 },
        };
        if ack.seg < first {
            ack = Pos { seg: first, off: 0 };
        }
        if let Some(&len) = segs.get(&ack.seg) {
            ack.off = ack.off.min(len);
        }
        let dropped = fs::read_to_string(dir.join("dropped"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let mut sp = Spool {
            dir,
            seg_max,
            total_max,
            segs,
            writer,
            ack,
            dropped,
            pending: 0,
            dirty: false,
            sources: HashMap::new(),
        };
        sp.recount()?;
        Ok(sp)
    }

    /// Recounts pending records and collects forwarder positions from every segment.
    fn recount(&mut self) -> std::io::Result<()> {
        let mut pending = 0;
        for (&id, _) in self.segs.iter() {
            let f = File::open(seg_path(&self.dir, id))?;
            let mut off = 0u64;
            for line in BufReader::new(f).split(b'\n') {
                let line = line?;
                let start = off;
                off += line.len() as u64 + 1;
                if (Pos {
                    seg: id,
                    off: start,
                }) >= self.ack
                {
                    pending += 1;
                }
                if line.windows(5).any(|w| w == b"\"s\":{") {
                    if let Ok(r) = serde_json::from_slice::<RecIn>(&line) {
                        if let Some(s) = r.s {
                            self.sources.insert(s.key.clone(), s);
                        }
                    }
                }
            }
        }
        self.pending = pending;
        Ok(())
    }

    /// The newest forwarder positions found in (or appended to) the spool, by key.
    pub fn source_positions(&self) -> &HashMap<String, SourcePos> {
        &self.sources
    }

    /// Appends one record.
    pub fn append(
        &mut self,
        channel: &str,
        payload: &str,
        src: Option<&SourcePos>,
    ) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(&RecOut {
            c: channel,
            p: payload,
            s: src,
        })
        .map_err(std::io::Error::other)?;
        line.push(b'\n');
        let last = self.segs.keys().next_back().copied().unwrap_or(1);
        let len = self.segs.get(&last).copied().unwrap_or(0);
        let last = if len > 0 && len + line.len() as u64 > self.seg_max {
            self.writer.sync_data()?;
            let id = last + 1;
            self.writer = OpenOptions::new()
                .create(true)
                .append(true)
                .open(seg_path(&self.dir, id))?;
            self.segs.insert(id, 0);
            id
        } else {
            last
        };
        self.writer.write_all(&line)?;
        if let Some(l) = self.segs.get_mut(&last) {
            *l += line.len() as u64;
        }
        self.pending += 1;
        self.dirty = true;
        if let Some(s) = src {
            self.sources.insert(s.key.clone(), s.clone());
        }
        self.enforce_bound()
    }

    fn total(&self) -> u64 {
        self.segs.values().sum()
    }

    fn enforce_bound(&mut self) -> std::io::Result<()> {
        while self.total() > self.total_max && self.segs.len() > 1 {
            let Some((&id, _)) = self.segs.iter().next() else {
                break;
            };
            let path = seg_path(&self.dir, id);
            let lost = if self.ack.seg < id {
                count_lines(&path, 0)?
            } else if self.ack.seg == id {
                count_lines(&path, self.ack.off)?
            } else {
                0
            };
            fs::remove_file(&path)?;
            self.segs.remove(&id);
            if lost > 0 {
                self.dropped += lost;
                self.pending = self.pending.saturating_sub(lost);
                write_atomic(&self.dir, "dropped", self.dropped.to_string().as_bytes())?;
                tracing::warn!(
                    lost,
                    total_dropped = self.dropped,
                    "spool full: dropped oldest unsent segment"
                );
            }
            if self.ack.seg <= id {
                let next = self.segs.keys().next().copied().unwrap_or(id + 1);
                self.ack = Pos { seg: next, off: 0 };
                self.write_ack()?;
            }
        }
        Ok(())
    }

    /// fsyncs the current segment if anything was appended since the last sync.
    pub fn sync(&mut self) -> std::io::Result<()> {
        if self.dirty {
            self.writer.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }

    fn write_ack(&self) -> std::io::Result<()> {
        write_atomic(
            &self.dir,
            "ack",
            format!("{} {}", self.ack.seg, self.ack.off).as_bytes(),
        )
    }

    /// The acknowledged position (where delivery resumes after a restart or reconnect).
    pub fn acked(&self) -> Pos {
        self.ack
    }

    /// Reads up to `max` records starting at `from` (clamped to the oldest existing data).
    pub fn read(&self, from: Pos, max: usize) -> std::io::Result<Vec<Record>> {
        let mut out = Vec::new();
        let mut pos = from;
        if let Some(&first) = self.segs.keys().next() {
            if pos.seg < first {
                pos = Pos { seg: first, off: 0 };
            }
        }
        while out.len() < max {
            let Some(&len) = self.segs.get(&pos.seg) else {
                // A segment dropped meanwhile: continue with the next one.
                match self.segs.range(pos.seg..).next() {
                    Some((&id, _)) => {
                        pos = Pos { seg: id, off: 0 };
                        continue;
                    }
                    None => break,
                }
            };
            if pos.off >= len {
                match self.segs.range(pos.seg + 1..).next() {
                    Some((&id, _)) => {
                        pos = Pos { seg: id, off: 0 };
                        continue;
                    }
                    None => break,
                }
            }
            let mut f = File::open(seg_path(&self.dir, pos.seg))?;
            f.seek(SeekFrom::Start(pos.off))?;
            let mut r = BufReader::new(f.take(len - pos.off));
            let mut line = Vec::new();
            while out.len() < max {
                line.clear();
                let n = r.read_until(b'\n', &mut line)?;
                if n == 0 || line.last() != Some(&b'\n') {
                    pos.off = len;
                    break;
                }
                pos.off += n as u64;
                match serde_json::from_slice::<RecIn>(&line) {
                    Ok(rec) => out.push(Record {
                        channel: rec.c,
                        payload: rec.p,
                        next: pos,
                    }),
                    Err(e) => tracing::warn!(error = %e, "skipping unreadable spool record"),
                }
            }
        }
        Ok(out)
    }

    /// Acknowledges everything before `pos` (`n` records since the previous ack). Older
    /// positions are ignored. Fully acknowledged segments are deleted.
    pub fn ack(&mut self, pos: Pos, n: u64) -> std::io::Result<()> {
        if pos <= self.ack {
            return Ok(());
        }
        self.sync()?;
        self.ack = pos;
        self.pending = self.pending.saturating_sub(n);
        self.write_ack()?;
        let last = self.segs.keys().next_back().copied().unwrap_or(0);
        let old: Vec<u64> = self
            .segs
            .range(..pos.seg)
            .map(|(&id, _)| id)
            .filter(|&id| id != last)
            .collect();
        for id in old {
            fs::remove_file(seg_path(&self.dir, id))?;
            self.segs.remove(&id);
        }
        Ok(())
    }

    /// Counters.
    pub fn stats(&self) -> SpoolStats {
        let mut bytes = 0;
        for (&id, &len) in &self.segs {
            if id > self.ack.seg {
                bytes += len;
            } else if id == self.ack.seg {
                bytes += len.saturating_sub(self.ack.off);
            }
        }
        SpoolStats {
            pending: self.pending,
            pending_bytes: bytes,
            dropped: self.dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(r: &[Record]) -> Vec<String> {
        r.iter().map(|r| r.payload.clone()).collect()
    }

    #[test]
    fn append_read_ack_restart() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Spool::open(d.path(), 200, 10_000).unwrap();
        for i in 0..20 {
            s.append("apiary.events", &format!("{{\"n\":{i}}}"), None)
                .unwrap();
        }
        assert_eq!(s.stats().pending, 20);
        let r = s.read(s.acked(), 7).unwrap();
        assert_eq!(r.len(), 7);
        s.ack(r[6].next, 7).unwrap();
        // Crash: drop without sync, reopen.
        drop(s);
        let mut s = Spool::open(d.path(), 200, 10_000).unwrap();
        assert_eq!(s.stats().pending, 13);
        let r = s.read(s.acked(), 100).unwrap();
        let want: Vec<String> = (7..20).map(|i| format!("{{\"n\":{i}}}")).collect();
        assert_eq!(payloads(&r), want);
        s.ack(r.last().unwrap().next, 13).unwrap();
        assert_eq!(s.stats().pending, 0);
        assert!(s.read(s.acked(), 10).unwrap().is_empty());
        // Acked segments are gone, only the writer segment remains.
        assert_eq!(
            fs::read_dir(d.path().join("spool"))
                .unwrap()
                .filter(|e| e
                    .as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("seg-"))
                .count(),
            1
        );
        s.append("c", "after", None).unwrap();
        drop(s);
        let s = Spool::open(d.path(), 200, 10_000).unwrap();
        assert_eq!(payloads(&s.read(s.acked(), 10).unwrap()), vec!["after"]);
    }

    #[test]
    fn torn_tail_is_cut_and_appends_continue() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Spool::open(d.path(), 1 << 20, 1 << 22).unwrap();
        s.append("c", "one", None).unwrap();
        drop(s);
        let seg = seg_path(&d.path().join("spool"), 1);
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"{\"c\":\"c\",\"p\":\"tw").unwrap();
        drop(f);
        let mut s = Spool::open(d.path(), 1 << 20, 1 << 22).unwrap();
        s.append("c", "two", None).unwrap();
        assert_eq!(
            payloads(&s.read(s.acked(), 10).unwrap()),
            vec!["one", "two"]
        );
        assert_eq!(s.stats().pending, 2);
    }

    #[test]
    fn bound_drops_oldest_and_counts() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Spool::open(d.path(), 100, 300).unwrap();
        for i in 0..100 {
            s.append("c", &format!("{i:04}"), None).unwrap();
        }
        let st = s.stats();
        assert!(st.dropped > 0);
        assert_eq!(st.pending + st.dropped, 100);
        let r = s.read(s.acked(), 1000).unwrap();
        assert_eq!(r.len() as u64, st.pending);
        // The newest survive, in order.
        assert_eq!(r.last().unwrap().payload, "0099");
        drop(s);
        let s = Spool::open(d.path(), 100, 300).unwrap();
        assert_eq!(s.stats().dropped, st.dropped);
        assert_eq!(s.stats().pending, st.pending);
    }

    #[test]
    fn source_positions_survive_restart() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Spool::open(d.path(), 1 << 20, 1 << 22).unwrap();
        let sp = SourcePos {
            key: "/x".into(),
            inode: 5,
            offset: 42,
        };
        s.append("p0f.log", "line \"s\":{ tricky", Some(&sp))
            .unwrap();
        drop(s);
        let s = Spool::open(d.path(), 1 << 20, 1 << 22).unwrap();
        assert_eq!(s.source_positions().get("/x"), Some(&sp));
    }
}
