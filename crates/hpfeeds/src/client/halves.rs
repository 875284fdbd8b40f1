//! The two halves of a connection: [`Publisher`] owns the write side, [`Subscriber`]
//! the read side. [`Client`](super::Client) is both together.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{FutureExt, Sink, Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio_util::codec::FramedRead;

use super::io::Io;
use super::{ClientError, Message};
use crate::codec::HpfeedsCodec;
use crate::frame::{self, Frame, HEADER_LEN};

/// How many received messages [`Subscriber::absorb_ready`] may park while the caller is
/// busy publishing. Beyond this we stop reading and let TCP push back on the broker.
const PENDING_CAP: usize = 4096;

/// The write side of a connection: publishes, subscribes, unsubscribes.
///
/// Publications are encoded into an in-memory buffer and written to the socket once
/// [`ClientOptions::write_buffer`](super::ClientOptions::write_buffer) bytes are pending,
/// or on [`flush`](Self::flush). Subscribe and unsubscribe flush immediately. Also a
/// [`Sink`] of `(channel, payload)` pairs.
///
/// Once an IO error has been returned the connection is dead; every later call fails too.
#[derive(Debug)]
pub struct Publisher {
    io: WriteHalf<Io>,
    buf: BytesMut,
    ident: Bytes,
    write_buffer: usize,
    max_frame: usize,
}

impl Publisher {
    pub(crate) fn new(
        io: WriteHalf<Io>,
        ident: Bytes,
        write_buffer: usize,
        max_frame: usize,
    ) -> Self {
        Self {
            io,
            buf: BytesMut::with_capacity(write_buffer.clamp(4096, 1 << 20)),
            ident,
            write_buffer,
            max_frame,
        }
    }

    /// The identifier this connection authenticated as.
    pub fn ident(&self) -> &[u8] {
        &self.ident
    }

    pub(crate) fn write_threshold(&self) -> usize {
        self.write_buffer
    }

    /// Bytes encoded but not yet written to the socket.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Encodes an `OP_PUBLISH` into the write buffer without any IO.
    ///
    /// The buffer grows without bound until [`flush`](Self::flush) or a
    /// [`publish`](Self::publish) call writes it out. Fails with
    /// [`ClientError::Invalid`] (connection unaffected) if the channel is longer than 255
    /// bytes or the frame would exceed the maximum frame length.
    pub fn feed(
        &mut self,
        channel: impl AsRef<[u8]>,
        payload: impl AsRef<[u8]>,
    ) -> Result<(), ClientError> {
        let (channel, payload) = (channel.as_ref(), payload.as_ref());
        let Ok(channel_len) = u8::try_from(channel.len()) else {
            return Err(ClientError::Invalid(frame::Error::Invalid(
                "channel longer than 255 bytes",
            )));
        };
        // The ident length was checked at connect time.
        let ident_len = self.ident.len() as u8;
        let total =
            (HEADER_LEN + 2 + self.ident.len() + channel.len()).saturating_add(payload.len());
        if total > self.max_frame {
            return Err(ClientError::Invalid(frame::Error::TooLarge {
                len: total as u64,
                max: self.max_frame,
            }));
        }
        let Ok(total32) = u32::try_from(total) else {
            return Err(ClientError::Invalid(frame::Error::Invalid(
                "frame exceeds 4 GiB",
            )));
        };
        self.buf.reserve(total);
        self.buf.put_u32(total32);
        self.buf.put_u8(frame::Opcode::Publish as u8);
        self.buf.put_u8(ident_len);
        self.buf.put_slice(&self.ident);
        self.buf.put_u8(channel_len);
        self.buf.put_slice(channel);
        self.buf.put_slice(payload);
        Ok(())
    }

    /// Encodes an `OP_PUBLISH`, writing the buffer out (without flushing) if it has
    /// reached the configured size. Does not wait for the broker: hpfeeds has no
    /// acknowledgements.
    pub async fn publish(
        &mut self,
        channel: impl AsRef<[u8]>,
        payload: impl AsRef<[u8]>,
    ) -> Result<(), ClientError> {
        self.feed(channel, payload)?;
        if self.buf.len() >= self.write_buffer {
            self.write_out().await?;
        }
        Ok(())
    }

    /// Publishes every payload on one channel, writing whenever the buffer fills, and
    /// returns how many were encoded. Does not flush. On error, payloads before the
    /// failing one may already be on the wire.
    pub async fn publish_batch<P: AsRef<[u8]>>(
        &mut self,
        channel: impl AsRef<[u8]>,
        payloads: impl IntoIterator<Item = P>,
    ) -> Result<usize, ClientError> {
        let channel = channel.as_ref();
        let mut n = 0;
        for p in payloads {
            self.feed(channel, p)?;
            n += 1;
            if self.buf.len() >= self.write_buffer {
                self.write_out().await?;
            }
        }
        Ok(n)
    }

    /// Sends `OP_SUBSCRIBE` for `channel` and flushes.
    pub async fn subscribe(&mut self, channel: impl AsRef<[u8]>) -> Result<(), ClientError> {
        let f = Frame::Subscribe {
            ident: self.ident.clone(),
            channel: Bytes::copy_from_slice(channel.as_ref()),
        };
        self.send_frame(&f).await
    }

    /// Sends `OP_UNSUBSCRIBE` for `channel` and flushes.
    pub async fn unsubscribe(&mut self, channel: impl AsRef<[u8]>) -> Result<(), ClientError> {
        let f = Frame::Unsubscribe {
            ident: self.ident.clone(),
            channel: Bytes::copy_from_slice(channel.as_ref()),
        };
        self.send_frame(&f).await
    }

    /// Encodes any frame after what is buffered and flushes everything.
    pub(crate) async fn send_frame(&mut self, f: &Frame) -> Result<(), ClientError> {
        let len = f.encoded_len().map_err(ClientError::Invalid)?;
        if len > self.max_frame {
            return Err(ClientError::Invalid(frame::Error::TooLarge {
                len: len as u64,
                max: self.max_frame,
            }));
        }
        f.encode(&mut self.buf).map_err(ClientError::Invalid)?;
        self.flush().await
    }

    /// Writes everything buffered to the socket and flushes the stream (including TLS).
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.write_out().await?;
        self.io.flush().await?;
        Ok(())
    }

    /// Flushes, then shuts down the write direction (TCP FIN / TLS close_notify).
    pub async fn shutdown(&mut self) -> Result<(), ClientError> {
        self.flush().await?;
        self.io.shutdown().await?;
        Ok(())
    }

    /// Writes the buffer to the socket without flushing.
    pub(crate) async fn write_out(&mut self) -> Result<(), ClientError> {
        futures::future::poll_fn(|cx| self.poll_write_out(cx)).await?;
        Ok(())
    }

    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.buf.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.buf.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<C: AsRef<[u8]>, P: AsRef<[u8]>> Sink<(C, P)> for Publisher {
    type Error = ClientError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        let this = self.get_mut();
        if this.buf.len() >= this.write_buffer {
            ready!(this.poll_write_out(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, (channel, payload): (C, P)) -> Result<(), ClientError> {
        self.get_mut().feed(channel, payload)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        let this = self.get_mut();
        ready!(this.poll_write_out(cx))?;
        ready!(Pin::new(&mut this.io).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), ClientError>> {
        let this = self.get_mut();
        ready!(this.poll_write_out(cx))?;
        ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
        Poll::Ready(Ok(()))
    }
}

/// The read side of a connection: a [`Stream`] of received publications.
///
/// The broker's `OP_ERROR` frames arrive as `Err(`[`ClientError::Broker`]`)` items; the
/// stream continues after them (legacy brokers keep the connection open), and ends
/// (`None`) when the broker closes the connection or sends bytes that are not a frame.
/// Other frame types from the broker are ignored, as the Python client does.
#[derive(Debug)]
pub struct Subscriber {
    frames: FramedRead<ReadHalf<Io>, HpfeedsCodec>,
    pending: VecDeque<Message>,
}

impl Subscriber {
    pub(crate) fn new(io: ReadHalf<Io>, max_frame: usize) -> Self {
        Self {
            frames: FramedRead::new(io, HpfeedsCodec::new(max_frame)),
            pending: VecDeque::new(),
        }
    }

    /// The next publication. Broker errors come back as [`ClientError::Broker`]; a
    /// closed connection as [`ClientError::Closed`]. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Message, ClientError> {
        match self.next().await {
            Some(r) => r,
            None => Err(ClientError::Closed),
        }
    }

    /// Reads the raw next frame; used for the handshake.
    pub(crate) async fn next_frame(&mut self) -> Result<Frame, ClientError> {
        match self.frames.next().await {
            Some(r) => Ok(r?),
            None => Err(ClientError::Closed),
        }
    }

    pub(crate) fn park(&mut self, m: Message) {
        self.pending.push_back(m);
    }

    /// Without waiting, takes whatever the socket already holds: publications are parked
    /// for later [`recv`](Self::recv), an error or EOF is returned now. Lets a
    /// publish-only caller notice the broker's `OP_ERROR` (e.g. failed authentication).
    pub(crate) fn absorb_ready(&mut self) -> Result<(), ClientError> {
        while self.pending.len() < PENDING_CAP {
            // `now_or_never` polls with a no-op waker; the next real poll re-registers.
            match futures::future::poll_fn(|cx| self.poll_wire(cx)).now_or_never() {
                None => break,
                Some(None) => return Err(ClientError::Closed),
                Some(Some(Ok(m))) => self.pending.push_back(m),
                Some(Some(Err(e))) => return Err(e),
            }
        }
        Ok(())
    }

    /// Polls the socket (not the parked messages) for the next publication or error.
    fn poll_wire(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, ClientError>>> {
        loop {
            let item = match ready!(self.frames.poll_next_unpin(cx)) {
                None => None,
                Some(Err(e)) => Some(Err(e.into())),
                Some(Ok(Frame::Publish {
                    ident,
                    channel,
                    payload,
                })) => Some(Ok(Message {
                    ident,
                    channel,
                    payload,
                })),
                Some(Ok(Frame::Error(text))) => Some(Err(ClientError::Broker(
                    String::from_utf8_lossy(&text).into_owned(),
                ))),
                Some(Ok(other)) => {
                    tracing::debug!(opcode = ?other.opcode(), "ignoring unexpected frame from broker");
                    continue;
                }
            };
            return Poll::Ready(item);
        }
    }
}

impl Stream for Subscriber {
    type Item = Result<Message, ClientError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(m) = this.pending.pop_front() {
            return Poll::Ready(Some(Ok(m)));
        }
        this.poll_wire(cx)
    }
}
