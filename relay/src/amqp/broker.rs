//! The connection to the broker: TLS trust for `amqps://`, and the connection state that
//! `/healthz` reports.

use std::path::Path;
use std::sync::Mutex;

use base64::Engine as _;
use lapin::tcp::OwnedTLSConfig;
use lapin::{Connection, ConnectionProperties};
use lienthong_common::now_unix_ms;
use serde::Serialize;

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

/// Where the node stands with the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Not connected yet since the node started.
    Connecting,
    /// Connected, queues declared, consuming.
    Connected,
    /// The connection was lost or an attempt failed; retrying with backoff.
    Reconnecting,
}

/// The broker connection as `/healthz` shows it (docs/api.md).
#[derive(Debug, Clone, Serialize)]
pub struct BrokerHealth {
    /// The state.
    pub state: LinkState,
    /// When it entered that state (Unix ms).
    pub since_unix_ms: i64,
    /// Why the last connection ended or the last attempt failed; absent while connected.
    pub last_error: Option<String>,
}

/// The broker connection state: written by the integration's connection loop, read by
/// `/healthz`. A std `Mutex`: held only to copy or replace a small value, never across an
/// await, so it cannot stall the reactor.
#[derive(Debug)]
pub struct BrokerState(Mutex<BrokerHealth>);

impl Default for BrokerState {
    fn default() -> Self {
        Self(Mutex::new(BrokerHealth {
            state: LinkState::Connecting,
            since_unix_ms: now_unix_ms(),
            last_error: None,
        }))
    }
}

impl BrokerState {
    fn set(&self, state: LinkState, last_error: Option<String>) {
        let mut h = match self.0.lock() {
            Ok(h) => h,
            Err(p) => p.into_inner(),
        };
        if h.state != state {
            h.since_unix_ms = now_unix_ms();
        }
        h.state = state;
        h.last_error = last_error;
    }

    /// Connected and consuming.
    pub fn connected(&self) {
        self.set(LinkState::Connected, None);
    }

    /// The connection ended or could not be made, because of `cause`.
    pub fn lost(&self, cause: &str) {
        self.set(LinkState::Reconnecting, Some(cause.to_owned()));
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> BrokerHealth {
        match self.0.lock() {
            Ok(h) => h.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}
