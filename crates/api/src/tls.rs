//! HTTPS without a reverse proxy: `serve --tls-cert FILE --tls-key FILE` (PEM), by rustls with the ring provider.
//!
//! The certificate file holds the chain (leaf first); the key file one private key (PKCS#8, PKCS#1 or SEC1). Both are
//! read once at start; a file that is missing, empty or does not match is a clear error before anything is served.
//! TLS 1.2 and 1.3, rustls's safe defaults, ALPN `http/1.1` (the server speaks HTTP/1.1: WebSockets and SSE as
//! without TLS). The status streams, terminals and desktops ride the same connection.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file.
    #[error("--tls-cert {path}: {why}")]
    Cert {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The key file.
    #[error("--tls-key {path}: {why}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The pair does not make a server configuration (the key does not match the certificate...).
    #[error("--tls-cert/--tls-key: {0}")]
    Config(String),
}

/// A TLS acceptor for the listener. Cheap to clone.
#[derive(Clone)]
pub struct Tls(tokio_rustls::TlsAcceptor);

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tls(..)")
    }
}

impl Tls {
    /// Loads a certificate chain and its key (PEM files).
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let cert_err = |why: String| TlsError::Cert { path: cert.display().to_string(), why };
        let key_err = |why: String| TlsError::Key { path: key.display().to_string(), why };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| cert_err(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| cert_err(e.to_string()))?;
        if certs.is_empty() {
            return Err(cert_err("no CERTIFICATE in the file".into()));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| key_err(e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }

    /// Completes the server side of a handshake.
    pub(crate) async fn accept<S>(&self, stream: S) -> std::io::Result<tokio_rustls::server::TlsStream<S>>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        self.0.accept(stream).await
    }
}
