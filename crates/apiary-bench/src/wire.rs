//! Blocking hpfeeds client pieces for the load generators: connect + AUTH, SUBSCRIBE,
//! pre-built PUBLISH batches and a header-only frame scanner.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use hpfeeds::frame::{self, Frame, HEADER_LEN};

/// The channel every workload publishes to.
pub const CHANNEL: &str = "bench";
/// Payload stamp of the readiness probe (never a real timestamp).
pub const MARKER: u64 = u64::MAX;

/// Reads exactly one frame (blocking, with the socket's read timeout).
pub fn read_frame(s: &mut TcpStream) -> Result<Frame> {
    let mut head = [0u8; HEADER_LEN];
    s.read_exact(&mut head).context("reading frame header")?;
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if !(HEADER_LEN..=1 << 20).contains(&len) {
        bail!("bad frame length {len}");
    }
    let mut buf = vec![0u8; len];
    buf[..HEADER_LEN].copy_from_slice(&head);
    s.read_exact(&mut buf[HEADER_LEN..])
        .context("reading frame body")?;
    Ok(frame::parse(Bytes::from(buf))?)
}

/// Connects, reads OP_INFO and sends OP_AUTH. Nothing is read back: neither broker
/// answers a successful AUTH.
pub fn connect_auth(addr: SocketAddr, ident: &str, secret: &str) -> Result<TcpStream> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let nonce = match read_frame(&mut s)? {
        Frame::Info { nonce, .. } => nonce,
        Frame::Error(e) => bail!("broker error: {}", String::from_utf8_lossy(&e)),
        other => bail!("expected OP_INFO, got {:?}", other.opcode()),
    };
    let auth = Frame::Auth {
        ident: Bytes::copy_from_slice(ident.as_bytes()),
        hash: Bytes::copy_from_slice(&hpfeeds::auth_hash(&nonce, secret.as_bytes())),
    };
    s.write_all(&auth.to_bytes()?)?;
    Ok(s)
}

/// Sends OP_SUBSCRIBE.
pub fn subscribe(s: &mut TcpStream, ident: &str, channel: &str) -> Result<()> {
    let f = Frame::Subscribe {
        ident: Bytes::copy_from_slice(ident.as_bytes()),
        channel: Bytes::copy_from_slice(channel.as_bytes()),
    };
    s.write_all(&f.to_bytes()?)?;
    Ok(())
}

/// A buffer of identical PUBLISH frames whose payloads start with an 8-byte stamp.
pub struct Batch {
    pub buf: Vec<u8>,
    pub frame_len: usize,
    pub frames: usize,
    stamp_at: usize,
}

impl Batch {
    /// About `target_bytes` worth of frames (at least one).
    pub fn new(
        ident: &str,
        channel: &str,
        payload_len: usize,
        target_bytes: usize,
    ) -> Result<Self> {
        if payload_len < 8 {
            bail!("payload must be at least 8 bytes (it carries the send timestamp)");
        }
        let one = Frame::publish(
            Bytes::copy_from_slice(ident.as_bytes()),
            Bytes::copy_from_slice(channel.as_bytes()),
            vec![b'x'; payload_len],
        )
        .to_bytes()?;
        let frames = (target_bytes / one.len()).max(1);
        let mut buf = Vec::with_capacity(one.len() * frames);
        for _ in 0..frames {
            buf.extend_from_slice(&one);
        }
        Ok(Self {
            buf,
            frame_len: one.len(),
            frames,
            stamp_at: HEADER_LEN + 1 + ident.len() + 1 + channel.len(),
        })
    }

    /// Writes `stamp` into the first `n` frames and returns their bytes.
    pub fn stamped(&mut self, n: usize, stamp: u64) -> &[u8] {
        let n = n.min(self.frames);
        let s = stamp.to_le_bytes();
        for i in 0..n {
            let at = i * self.frame_len + self.stamp_at;
            self.buf[at..at + 8].copy_from_slice(&s);
        }
        &self.buf[..n * self.frame_len]
    }
}

/// A socket error that only means "not now": the timeout set on the socket passed, the
/// call would block or was interrupted; the caller checks its deadline and tries again.
pub fn is_retryable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Writes all of `data`, tolerating send timeouts (set on the socket) so that the caller's
/// deadline is checked even when the broker stops reading. Returns false on deadline.
pub fn write_all_until(s: &mut TcpStream, mut data: &[u8], deadline: Instant) -> io::Result<bool> {
    while !data.is_empty() {
        match s.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if is_retryable(&e) => {
                if Instant::now() >= deadline {
                    return Ok(false);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// What the scanner found in one complete frame.
pub enum Scanned<'a> {
    /// A PUBLISH whose payload starts with this stamp (None if shorter than 8 bytes).
    Publish(Option<u64>),
    /// An OP_ERROR from the broker.
    Error(&'a [u8]),
    /// Anything else.
    Other,
}

/// Scans complete frames at the front of `buf`, calling `f` for each; returns the number
/// of bytes consumed. Only length headers and the string-length bytes are looked at.
pub fn scan(buf: &[u8], mut f: impl FnMut(Scanned<'_>)) -> Result<usize> {
    let mut off = 0;
    while let Some(head) = buf.get(off..off + HEADER_LEN) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if len < HEADER_LEN {
            return Err(anyhow!("broker sent a frame of length {len}"));
        }
        let Some(fr) = buf.get(off..off + len) else {
            break;
        };
        match fr[4] {
            3 => {
                let stamp = fr
                    .get(HEADER_LEN)
                    .map(|&il| HEADER_LEN + 1 + il as usize)
                    .and_then(|at| fr.get(at).map(|&cl| at + 1 + cl as usize))
                    .and_then(|p| fr.get(p..p + 8))
                    .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]));
                f(Scanned::Publish(stamp));
            }
            0 => f(Scanned::Error(&fr[HEADER_LEN..])),
            _ => f(Scanned::Other),
        }
        off += len;
    }
    Ok(off)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_stamps_are_found_by_scan() {
        let mut b = Batch::new("pub0", CHANNEL, 100, 1000).unwrap();
        assert_eq!(b.frame_len, 5 + 1 + 4 + 1 + 5 + 100);
        let data = b.stamped(3, 42).to_vec();
        let mut stamps = Vec::new();
        let used = scan(&data[..data.len() - 1], |s| {
            if let Scanned::Publish(st) = s {
                stamps.push(st)
            }
        })
        .unwrap();
        assert_eq!(stamps, vec![Some(42), Some(42)]);
        assert_eq!(used, 2 * b.frame_len);
    }
}
