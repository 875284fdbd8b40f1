//! HTTPS: TLS (rustls, ring) in front of the HTTP handler. The certificate is the
//! configured PEM pair or a self-signed one made at start for `tls_cn`. The ClientHello's
//! SNI and ALPN offer are recorded (`tls_sni`, `tls_alpn`); `http/1.1` is selected when
//! offered, nothing else (the handler speaks HTTP/1 only). The byte limit counts the raw
//! TLS bytes, and the caller's time limit covers the handshake.

use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context as _;
use apiary_model::bounded::{lossy, MAX_ITEMS, SHORT};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types::PrivateKeyDer, server::Acceptor};
use tokio_rustls::LazyConfigAcceptor;

use super::conn::{is_byte_limit, Conn, Counted, Meters};
use super::{proto, Limits};
use crate::event::Capture;

/// The two server configs (with and without ALPN `http/1.1`).
#[derive(Clone)]
pub struct Tls {
    h1: Arc<rustls::ServerConfig>,
    plain: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// From a PEM certificate chain and PEM private key.
    pub fn from_pem_files(cert: &Path, key: &Path) -> anyhow::Result<Tls> {
        let open = |p: &Path| {
            File::open(p)
                .map(BufReader::new)
                .with_context(|| format!("reading {}", p.display()))
        };
        let certs = rustls_pemfile::certs(&mut open(cert)?)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("reading {}", cert.display()))?;
        if certs.is_empty() {
            anyhow::bail!("{}: no PEM certificate found", cert.display());
        }
        let key = rustls_pemfile::private_key(&mut open(key)?)
            .with_context(|| format!("reading {}", key.display()))?
            .ok_or_else(|| anyhow::anyhow!("{}: no PEM private key found", key.display()))?;
        Tls::new(certs, key)
    }

    /// A fresh self-signed certificate for `cn` (also its subject alternative name).
    pub fn self_signed(cn: &str) -> anyhow::Result<Tls> {
        let mut params = rcgen::CertificateParams::new(vec![cn.to_owned()])
            .with_context(|| format!("certificate name {cn:?}"))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().context("generating a TLS key")?;
        let cert = params.self_signed(&key).context("self-signing")?;
        Tls::new(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
    }

    fn new(
        certs: Vec<rustls::pki_types::CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> anyhow::Result<Tls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let plain = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("TLS certificate and key")?;
        let mut h1 = plain.clone();
        h1.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            h1: Arc::new(h1),
            plain: Arc::new(plain),
        })
    }
}

/// Serves one HTTPS connection: returns the capture, raw bytes in and out, and why it
/// ended.
pub async fn run_https(
    stream: TcpStream,
    tls: &Tls,
    banner: Option<&str>,
    limits: Limits,
) -> (Capture, u64, u64, &'static str) {
    let counted = Counted::new(stream, limits.max_bytes);
    let Meters {
        read,
        written,
        head,
    } = counted.meters();
    let mut cap = Capture::default();
    let r = tokio::time::timeout(limits.timeout, async {
        let start = LazyConfigAcceptor::new(Acceptor::default(), counted).await?;
        let hello = start.client_hello();
        if let Some(sni) = hello.server_name() {
            cap.extra_str("tls_sni", sni);
        }
        let mut h1 = false;
        if let Some(protos) = hello.alpn() {
            let list: Vec<Value> = protos
                .take(MAX_ITEMS)
                .map(|p| {
                    h1 |= p == b"http/1.1";
                    Value::String(lossy(p, SHORT))
                })
                .collect();
            cap.extra.insert("tls_alpn".into(), Value::Array(list));
        }
        let config = if h1 { &tls.h1 } else { &tls.plain };
        let stream = start.into_stream(config.clone()).await?;
        if let Some(v) = stream.get_ref().1.protocol_version() {
            cap.extra_str("tls_version", v.as_str().unwrap_or("unknown"));
        }
        let mut c = Conn::new(stream, limits.max_bytes);
        proto::http(&mut c, &mut cap, banner, false).await?;
        c.shutdown().await
    })
    .await;
    let bytes_in = read.load(Ordering::Relaxed);
    let closed = match &r {
        Err(_) => "timeout",
        Ok(Ok(())) => "peer",
        Ok(Err(e)) if is_byte_limit(e) || bytes_in >= limits.max_bytes => "byte_limit",
        Ok(Err(_)) => "error",
    };
    if let Ok(Err(e)) = &r {
        if cap.http.is_none() {
            // No TLS (a plain HTTP request on the TLS port, a scanner's probe): keep what
            // arrived.
            cap.extra_str("tls_error", &e.to_string());
            if let Ok(h) = head.0.lock() {
                cap.payload(&h);
            }
        }
    }
    (cap, bytes_in, written.load(Ordering::Relaxed), closed)
}
