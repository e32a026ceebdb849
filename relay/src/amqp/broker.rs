//! The connection to the broker and its TLS trust for `amqps://`.

use std::path::Path;

use base64::Engine as _;
use lapin::tcp::OwnedTLSConfig;
use lapin::{Connection, ConnectionProperties};

/// Does not build unless lapin's TCP layer can do TLS: without it, `amqps://` URLs would be
/// connected in plain text (see the `tcp-stream` entry of the workspace Cargo.toml).
const _: fn(&lapin::tcp::TcpStream) -> bool = |s| matches!(s, lapin::tcp::TcpStream::Rustls(_));

/// Why the node could not connect to the broker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// `amqp.ca` could not be read (it was checked at start; it changed since).
    #[error("amqp.ca: {path}: {reason}")]
    Ca {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// `amqps://` without `amqp.ca`, and the system has no trust roots to offer.
    #[error("amqps:// without amqp.ca, and no system trust roots were found ({0}); set amqp.ca to the PEM file of the CA that issued the broker's certificate")]
    NoSystemRoots(String),
    /// The broker refused, or could not be reached, or the TLS handshake failed.
    #[error(transparent)]
    Broker(#[from] lapin::Error),
}

/// The PEM trust roots lapin is given for `amqps://`: the certificates of `amqp.ca` only, or
/// without it the system's (`SSL_CERT_FILE`, `SSL_CERT_DIR`, else the distribution's bundle).
/// Re-read on every connection, so a renewed CA file is used without a restart.
fn trust_roots(ca: Option<&Path>) -> Result<String, ConnectError> {
    if let Some(path) = ca {
        return std::fs::read_to_string(path).map_err(|e| ConnectError::Ca {
            path: path.display().to_string(),
            reason: e.to_string(),
        });
    }
    let found = rustls_native_certs::load_native_certs();
    if found.certs.is_empty() {
        let why = found
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(ConnectError::NoSystemRoots(if why.is_empty() {
            "the trust store is empty".into()
        } else {
            why
        }));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut pem = String::new();
    for cert in &found.certs {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        let body = b64.encode(cert.as_ref());
        for line in body.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    Ok(pem)
}

/// Connects to the broker at `url`; for `amqps://`, trusting only the certificates in `ca` or,
/// without it, the system's roots. The broker's certificate must name the URL's host.
pub async fn connect(url: &str, ca: Option<&Path>) -> Result<Connection, ConnectError> {
    let tls = if url.starts_with("amqps://") {
        OwnedTLSConfig {
            identity: None,
            cert_chain: Some(trust_roots(ca)?),
        }
    } else {
        OwnedTLSConfig::default()
    };
    let runtime = lapin::runtime::default_runtime()?;
    Ok(Connection::connect_with_config(url, ConnectionProperties::default(), tls, runtime).await?)
}
