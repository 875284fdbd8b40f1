//! The byte stream under a client: plain TCP or TLS over TCP.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, pki_types};

use super::{ClientError, ClientOptions, TlsOptions};

/// A connected stream. An enum rather than a boxed trait object: reads and writes stay
/// statically dispatched.
#[derive(Debug)]
pub(crate) enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Opens TCP (and TLS, if configured) to the broker. No timeout here; the caller bounds
/// the whole handshake.
pub(crate) async fn open(opts: &ClientOptions) -> Result<Io, ClientError> {
    // Build the TLS config first so a bad CA file fails before any network traffic.
    let tls = match &opts.tls {
        None => None,
        Some(t) => {
            let config = client_config(t)?;
            let name = pki_types::ServerName::try_from(opts.host.clone()).map_err(|e| {
                ClientError::Tls(format!("invalid server name {:?}: {e}", opts.host))
            })?;
            Some((config, name))
        }
    };
    let tcp = TcpStream::connect((opts.host.as_str(), opts.port)).await?;
    // We batch writes ourselves; Nagle would only add latency to explicit flushes.
    tcp.set_nodelay(true)?;
    match tls {
        None => Ok(Io::Plain(tcp)),
        Some((config, name)) => {
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(Io::Tls(Box::new(stream)))
        }
    }
}

fn client_config(tls: &TlsOptions) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    match tls {
        TlsOptions::Config(c) => Ok(c.clone()),
        TlsOptions::CaFile(path) => {
            use pki_types::pem::PemObject;
            let pem = std::fs::read(path).map_err(|e| {
                ClientError::Tls(format!("cannot read CA file {}: {e}", path.display()))
            })?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in pki_types::CertificateDer::pem_slice_iter(&pem) {
                let cert = cert
                    .map_err(|e| ClientError::Tls(format!("bad PEM in {}: {e}", path.display())))?;
                roots.add(cert).map_err(|e| {
                    ClientError::Tls(format!("bad CA certificate in {}: {e}", path.display()))
                })?;
            }
            if roots.is_empty() {
                return Err(ClientError::Tls(format!(
                    "no certificates in CA file {}",
                    path.display()
                )));
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| ClientError::Tls(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
