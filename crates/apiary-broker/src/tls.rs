//! TLS for the hpfeeds listener: certificate chain and key from PEM files.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::{self, pki_types::PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Errors loading TLS material; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds no usable item.
    #[error("{path}: {what}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
}

/// Builds an acceptor from a PEM certificate chain and a PEM private key.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let open = |p: &Path| {
        File::open(p)
            .map(BufReader::new)
            .map_err(|source| TlsError::Read {
                path: p.display().to_string(),
                source,
            })
    };
    let certs = rustls_pemfile::certs(&mut open(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            path: cert.display().to_string(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Invalid {
            path: cert.display().to_string(),
            what: "no PEM certificate found".into(),
        });
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut open(key)?)
        .map_err(|source| TlsError::Read {
            path: key.display().to_string(),
            source,
        })?
        .ok_or_else(|| TlsError::Invalid {
            path: key.display().to_string(),
            what: "no PEM private key found".into(),
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| TlsError::Invalid {
            path: cert.display().to_string(),
            what: e.to_string(),
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
