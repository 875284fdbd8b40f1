//! Connection settings for [`Client`](super::Client).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::rustls;

use crate::frame::DEFAULT_MAX_FRAME;

/// Default bound on TCP connect + TLS handshake + broker greeting.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default size at which buffered publications are written to the socket.
pub const DEFAULT_WRITE_BUFFER: usize = 64 * 1024;

/// Where to connect and how to authenticate.
///
/// Built with [`ClientOptions::new`]; the other fields have defaults and are public so
/// callers can adjust them. `Debug` masks the secret.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Broker host name or address. Also the TLS server name (SNI) when TLS is on.
    pub host: String,
    /// Broker TCP port.
    pub port: u16,
    /// hpfeeds identifier (at most 255 bytes).
    pub ident: String,
    /// Shared secret for `SHA1(nonce ‖ secret)`.
    pub secret: String,
    /// TLS settings; `None` means plain TCP.
    pub tls: Option<TlsOptions>,
    /// Bound on TCP connect, TLS handshake and reading the broker's `OP_INFO`.
    pub connect_timeout: Duration,
    /// Largest frame accepted from the broker (and sent to it), header included.
    pub max_frame_len: usize,
    /// Buffered publications are written out once this many bytes are pending. Larger
    /// values mean fewer syscalls; `0` writes every publication immediately (still
    /// without flushing a TLS layer until [`flush`](super::Client::flush)).
    pub write_buffer: usize,
}

impl ClientOptions {
    /// Options for a plain-TCP connection with default timeouts and limits.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        ident: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        Self {
            host: host.into(),
            port,
            ident: ident.into(),
            secret: secret.into(),
            tls: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_frame_len: DEFAULT_MAX_FRAME,
            write_buffer: DEFAULT_WRITE_BUFFER,
        }
    }

    /// Enables TLS.
    pub fn with_tls(mut self, tls: TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`max_frame_len`](Self::max_frame_len).
    pub fn with_max_frame_len(mut self, max: usize) -> Self {
        self.max_frame_len = max;
        self
    }

    /// Sets [`write_buffer`](Self::write_buffer).
    pub fn with_write_buffer(mut self, bytes: usize) -> Self {
        self.write_buffer = bytes;
        self
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("ident", &self.ident)
            .field("secret", &"********")
            .field("tls", &self.tls)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_frame_len", &self.max_frame_len)
            .field("write_buffer", &self.write_buffer)
            .finish()
    }
}

/// How to verify the broker's certificate. The server name is always
/// [`ClientOptions::host`].
#[derive(Clone)]
pub enum TlsOptions {
    /// Trust only the CA certificates in this PEM file. Uses the `ring` provider.
    CaFile(PathBuf),
    /// A complete rustls configuration (roots, client certificates, ALPN...).
    Config(Arc<rustls::ClientConfig>),
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsOptions::CaFile(p) => f.debug_tuple("CaFile").field(p).finish(),
            TlsOptions::Config(_) => f.write_str("Config(..)"),
        }
    }
}
