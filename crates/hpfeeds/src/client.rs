//! An async hpfeeds client: connect, authenticate, publish, subscribe.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hpfeeds::client::ClientError> {
//! use hpfeeds::client::{Client, ClientOptions};
//! let mut c = Client::connect(ClientOptions::new("127.0.0.1", 10000, "sensor1", "s3cret")).await?;
//! c.subscribe("cowrie.sessions").await?;
//! c.publish("cowrie.sessions", br#"{"session": "x"}"#).await?;
//! c.flush().await?; // publications are buffered until a flush or a full buffer
//! let msg = c.recv().await?;
//! # Ok(()) }
//! ```
//!
//! # Authentication failures
//! hpfeeds brokers say nothing when `OP_AUTH` succeeds; they answer a failure with
//! `OP_ERROR` (and usually close). [`Client::connect`] therefore returns as soon as AUTH
//! is sent, and a failure shows up later as [`ClientError::Broker`] from `recv`, the
//! [`Subscriber`] stream, or (on an unsplit [`Client`]) from the next call that writes to
//! the socket. [`Client::check_auth`] waits a bounded time for such an answer.
//!
//! # Layout
//! - `options`: [`ClientOptions`], [`TlsOptions`].
//! - `io`: plain TCP or TLS stream.
//! - `halves`: [`Publisher`] (write side, buffered) and [`Subscriber`] (read side).
//! - `reconnect`: [`ReconnectingClient`] with exponential backoff.

mod halves;
mod io;
mod options;
mod reconnect;

use std::time::Duration;

use bytes::Bytes;

pub use halves::{Publisher, Subscriber};
pub use options::{ClientOptions, TlsOptions, DEFAULT_CONNECT_TIMEOUT, DEFAULT_WRITE_BUFFER};
pub use reconnect::{Backoff, ReconnectingClient};

use crate::codec::CodecError;
use crate::frame::{self, auth_hash, Frame};

/// Everything that can go wrong on a client connection.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The broker sent `OP_ERROR` with this text (e.g. `Authentication failed for x`).
    #[error("broker error: {0}")]
    Broker(String),
    /// The broker closed the connection.
    #[error("connection closed by broker")]
    Closed,
    /// Connecting, the TLS handshake or the broker greeting took longer than
    /// [`ClientOptions::connect_timeout`].
    #[error("timed out connecting to the broker")]
    Timeout,
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The broker sent bytes that are not a valid frame (or one over the size limit).
    #[error("broker sent an invalid frame: {0}")]
    Frame(frame::Error),
    /// The broker broke the protocol in another way (e.g. no `OP_INFO` greeting).
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    /// The caller asked for something unencodable (channel over 255 bytes, frame over the
    /// size limit). Nothing was written; the connection is still usable.
    #[error("invalid request: {0}")]
    Invalid(frame::Error),
    /// TLS could not be set up (CA file, server name).
    #[error("TLS: {0}")]
    Tls(String),
    /// [`ClientOptions`] are unusable (e.g. ident longer than 255 bytes).
    #[error("invalid client options: {0}")]
    Options(&'static str),
}

impl ClientError {
    /// Whether the connection must be considered dead after this error. Only
    /// [`ClientError::Invalid`] leaves it usable.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, ClientError::Invalid(_))
    }
}

impl From<CodecError> for ClientError {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::Frame(f) => ClientError::Frame(f),
            CodecError::Io(io) => ClientError::Io(io),
        }
    }
}

/// A publication received from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Identifier of the publisher, as relayed by the broker.
    pub ident: Bytes,
    /// Channel name.
    pub channel: Bytes,
    /// Opaque payload.
    pub payload: Bytes,
}

impl Message {
    /// The publisher identifier as UTF-8, if it is.
    pub fn ident_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.ident).ok()
    }

    /// The channel name as UTF-8, if it is.
    pub fn channel_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.channel).ok()
    }
}

/// What the broker said in its `OP_INFO` greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// Broker name (e.g. `hpfeeds`, `@hp2`).
    pub name: Bytes,
    /// The authentication nonce (4 bytes in every known broker).
    pub nonce: Bytes,
}

/// An authenticated connection to a broker: a [`Publisher`] and a [`Subscriber`] kept
/// together. Use [`split`](Self::split) to drive both directions from different tasks.
#[derive(Debug)]
pub struct Client {
    publisher: Publisher,
    subscriber: Subscriber,
    info: BrokerInfo,
}

impl Client {
    /// Connects, reads `OP_INFO` and sends `OP_AUTH`. Returns without waiting for an
    /// answer (see the [module docs](self) on authentication failures). Everything up to
    /// and including reading `OP_INFO` is bounded by [`ClientOptions::connect_timeout`].
    pub async fn connect(opts: ClientOptions) -> Result<Client, ClientError> {
        if opts.ident.len() > usize::from(u8::MAX) {
            return Err(ClientError::Options("ident longer than 255 bytes"));
        }
        if opts.max_frame_len < frame::HEADER_LEN {
            return Err(ClientError::Options("max_frame_len below 5"));
        }
        let (subscriber, publisher, info) =
            tokio::time::timeout(opts.connect_timeout, Self::greet(&opts))
                .await
                .map_err(|_| ClientError::Timeout)??;
        let mut client = Client {
            publisher,
            subscriber,
            info,
        };
        let auth = Frame::Auth {
            ident: Bytes::copy_from_slice(opts.ident.as_bytes()),
            hash: Bytes::copy_from_slice(&auth_hash(&client.info.nonce, opts.secret.as_bytes())),
        };
        client.publisher.send_frame(&auth).await?;
        Ok(client)
    }

    /// Opens the stream and reads `OP_INFO`.
    async fn greet(
        opts: &ClientOptions,
    ) -> Result<(Subscriber, Publisher, BrokerInfo), ClientError> {
        let io = io::open(opts).await?;
        let (r, w) = tokio::io::split(io);
        let mut subscriber = Subscriber::new(r, opts.max_frame_len);
        let publisher = Publisher::new(
            w,
            Bytes::copy_from_slice(opts.ident.as_bytes()),
            opts.write_buffer,
            opts.max_frame_len,
        );
        let info = match subscriber.next_frame().await? {
            Frame::Info { name, nonce } => BrokerInfo { name, nonce },
            Frame::Error(text) => {
                return Err(ClientError::Broker(
                    String::from_utf8_lossy(&text).into_owned(),
                ))
            }
            _ => {
                return Err(ClientError::Protocol(
                    "first frame from broker is not OP_INFO",
                ))
            }
        };
        Ok((subscriber, publisher, info))
    }

    /// The broker's `OP_INFO` greeting.
    pub fn info(&self) -> &BrokerInfo {
        &self.info
    }

    /// The identifier this connection authenticated as.
    pub fn ident(&self) -> &[u8] {
        self.publisher.ident()
    }

    /// Waits up to `wait` for the broker to reject the authentication. `Ok` means no
    /// `OP_ERROR` or close arrived in time, which is the only success signal hpfeeds
    /// has. Publications that arrive meanwhile are kept for [`recv`](Self::recv).
    pub async fn check_auth(&mut self, wait: Duration) -> Result<(), ClientError> {
        self.publisher.flush().await?;
        match tokio::time::timeout(wait, self.subscriber.recv()).await {
            Err(_elapsed) => Ok(()),
            Ok(Ok(m)) => {
                self.subscriber.park(m);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
        }
    }

    /// Bytes encoded but not yet written to the socket.
    pub fn buffered(&self) -> usize {
        self.publisher.buffered()
    }

    /// Encodes a publication into the write buffer without IO. See [`Publisher::feed`].
    pub fn feed(
        &mut self,
        channel: impl AsRef<[u8]>,
        payload: impl AsRef<[u8]>,
    ) -> Result<(), ClientError> {
        self.publisher.feed(channel, payload)
    }

    /// Buffers a publication and writes the buffer out once it is full (no flush).
    /// Before writing, any `OP_ERROR` the broker already sent is returned instead.
    pub async fn publish(
        &mut self,
        channel: impl AsRef<[u8]>,
        payload: impl AsRef<[u8]>,
    ) -> Result<(), ClientError> {
        self.publisher.feed(channel, payload)?;
        if self.publisher.buffered() >= self.publisher.write_threshold() {
            self.subscriber.absorb_ready()?;
            self.publisher.write_out().await?;
        }
        Ok(())
    }

    /// Publishes every payload on one channel; see [`Publisher::publish_batch`].
    pub async fn publish_batch<P: AsRef<[u8]>>(
        &mut self,
        channel: impl AsRef<[u8]>,
        payloads: impl IntoIterator<Item = P>,
    ) -> Result<usize, ClientError> {
        self.subscriber.absorb_ready()?;
        self.publisher.publish_batch(channel, payloads).await
    }

    /// Writes and flushes everything buffered. Any `OP_ERROR` the broker already sent is
    /// returned first.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.subscriber.absorb_ready()?;
        self.publisher.flush().await
    }

    /// Subscribes to `channel` (flushes).
    pub async fn subscribe(&mut self, channel: impl AsRef<[u8]>) -> Result<(), ClientError> {
        self.publisher.subscribe(channel).await
    }

    /// Unsubscribes from `channel` (flushes).
    pub async fn unsubscribe(&mut self, channel: impl AsRef<[u8]>) -> Result<(), ClientError> {
        self.publisher.unsubscribe(channel).await
    }

    /// The next publication. Flushes buffered output first, so waiting for a reply to
    /// something just published cannot deadlock. Cancel-safe once the flush is done.
    pub async fn recv(&mut self) -> Result<Message, ClientError> {
        if self.publisher.buffered() > 0 {
            self.publisher.flush().await?;
        }
        self.subscriber.recv().await
    }

    /// Separates the write and read sides so they can be used from different tasks.
    /// Broker errors then only arrive on the [`Subscriber`].
    pub fn split(self) -> (Publisher, Subscriber) {
        (self.publisher, self.subscriber)
    }

    /// Flushes and shuts down the write direction.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.publisher.shutdown().await
    }
}
