//! A bounded attacker connection: every read is counted against the per-connection byte
//! limit and lines are capped, so a handler can never buffer more than the limit.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::event::PAYLOAD_KEEP;

/// The byte limit was reached.
pub fn byte_limit() -> io::Error {
    io::Error::other("byte_limit")
}

/// True for the error made by [`byte_limit`].
pub fn is_byte_limit(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Other && e.to_string() == "byte_limit"
}

/// A connection with a read buffer.
pub struct Conn<S = TcpStream> {
    stream: S,
    /// Unconsumed received bytes.
    pub buf: Vec<u8>,
    /// Total bytes received.
    pub bytes_in: u64,
    /// Total bytes sent.
    pub bytes_out: u64,
    max: u64,
    /// First bytes received.
    pub head: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Wraps a stream with a read limit.
    pub fn new(stream: S, max: u64) -> Self {
        Conn {
            stream,
            buf: Vec::new(),
            bytes_in: 0,
            bytes_out: 0,
            max,
            head: Vec::new(),
        }
    }

    /// Reads more bytes into `buf`. `Ok(0)` is EOF.
    pub async fn fill(&mut self) -> io::Result<usize> {
        let room = self.max.saturating_sub(self.bytes_in);
        if room == 0 {
            return Err(byte_limit());
        }
        let mut tmp = [0u8; 4096];
        let want = tmp.len().min(room as usize);
        let n = self.stream.read(&mut tmp[..want]).await?;
        let got = &tmp[..n];
        if self.head.len() < PAYLOAD_KEEP {
            let k = (PAYLOAD_KEEP - self.head.len()).min(n);
            self.head.extend_from_slice(&got[..k]);
        }
        self.buf.extend_from_slice(got);
        self.bytes_in += n as u64;
        Ok(n)
    }

    /// Next line without its terminator (`\n` or `\r\n`); `None` at EOF with nothing
    /// pending. A line longer than `max_len` is returned cut at `max_len` (the rest is
    /// returned as the next "line").
    pub async fn line(&mut self, max_len: usize) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                if i <= max_len {
                    let mut l: Vec<u8> = self.buf.drain(..=i).collect();
                    l.pop();
                    if l.last() == Some(&b'\r') {
                        l.pop();
                    }
                    return Ok(Some(l));
                }
            }
            if self.buf.len() > max_len {
                return Ok(Some(self.buf.drain(..max_len).collect()));
            }
            if self.fill().await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(std::mem::take(&mut self.buf)));
            }
        }
    }

    /// Exactly `n` bytes (`n` is bounded by the caller), or `None` at EOF.
    pub async fn exact(&mut self, n: usize) -> io::Result<Option<Vec<u8>>> {
        while self.buf.len() < n {
            if self.fill().await? == 0 {
                return Ok(None);
            }
        }
        Ok(Some(self.buf.drain(..n).collect()))
    }

    /// Reads until `pat` appears (returning everything up to and including it) or
    /// `max_len` bytes are buffered (returning those). `None` at EOF with nothing read.
    pub async fn until(&mut self, pat: &[u8], max_len: usize) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = self.buf.windows(pat.len()).position(|w| w == pat) {
                return Ok(Some(self.buf.drain(..i + pat.len()).collect()));
            }
            if self.buf.len() >= max_len {
                return Ok(Some(self.buf.drain(..max_len).collect()));
            }
            if self.fill().await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(std::mem::take(&mut self.buf)));
            }
        }
    }

    /// Reads and discards/keeps everything until EOF or the limit.
    pub async fn drain_all(&mut self) -> io::Result<()> {
        while self.fill().await? > 0 {
            self.buf.clear();
        }
        Ok(())
    }

    /// Sends bytes.
    pub async fn send(&mut self, b: &[u8]) -> io::Result<()> {
        self.stream.write_all(b).await?;
        self.bytes_out += b.len() as u64;
        Ok(())
    }

    /// Closes the sending side (over TLS this sends close_notify).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.stream.shutdown().await
    }
}

/// Counters and client-banner capture around a stream handed to a library (russh).
pub struct Counted<S> {
    inner: S,
    /// Bytes read.
    pub read: Arc<AtomicU64>,
    /// Bytes written.
    pub written: Arc<AtomicU64>,
    max: u64,
    /// The first bytes read (the SSH client identification is in here).
    pub head: Arc<parking_head::Head>,
}

/// Shared first-bytes buffer.
pub mod parking_head {
    use std::sync::Mutex;
    /// First bytes read from the client.
    #[derive(Default)]
    pub struct Head(pub Mutex<Vec<u8>>);
}

/// Handles on a [`Counted`] stream's meters, kept by the connection task after the stream
/// itself moved into a protocol library (russh, rustls).
pub struct Meters {
    /// Bytes read.
    pub read: Arc<AtomicU64>,
    /// Bytes written.
    pub written: Arc<AtomicU64>,
    /// The first bytes read.
    pub head: Arc<parking_head::Head>,
}

impl<S> Counted<S> {
    /// Handles on the meters.
    pub fn meters(&self) -> Meters {
        Meters {
            read: self.read.clone(),
            written: self.written.clone(),
            head: self.head.clone(),
        }
    }

    /// Wraps `inner`, failing reads after `max` bytes.
    pub fn new(inner: S, max: u64) -> Self {
        Counted {
            inner,
            read: Arc::default(),
            written: Arc::default(),
            max,
            head: Arc::default(),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.read.load(Ordering::Relaxed) >= self.max {
            return Poll::Ready(Err(byte_limit()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let got = &buf.filled()[before..];
            self.read.fetch_add(got.len() as u64, Ordering::Relaxed);
            if let Ok(mut h) = self.head.0.lock() {
                if h.len() < 512 {
                    let k = (512 - h.len()).min(got.len());
                    h.extend_from_slice(&got[..k]);
                }
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
