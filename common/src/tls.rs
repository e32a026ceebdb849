//! rustls configurations for the relay link: mutual TLS, TLS 1.3 only, ring provider.
//!
//! - A parent (server) requires a client certificate that passes [`TrustStore::verify_chain`]
//!   (chained to the interchange CA, valid, clientAuth, not on the CRL): the same chain policy
//!   as every signed document and receipt. Which agency the child may be is decided after the
//!   handshake, from the certificate ([`peer_agency`]), by the node's trust gate.
//! - A child (client) checks the parent's certificate through [`TrustStore::verify_chain`] and
//!   requires it to name the configured parent agency. Host names are not used: the agency
//!   code in the certificate is the identity.
//! - Neither side resumes TLS sessions: every handshake checks the peer's chain against the
//!   CRLs in force.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, ServerConfig,
    SignatureScheme,
};
use rustls_pki_types::pem::PemObject;

use crate::agency::AgencyCode;
use crate::trust::{self, CertError, TrustStore, Usage};

/// ALPN for gRPC over HTTP/2.
const ALPN_H2: &[u8] = b"h2";

/// TLS setup failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Certificate or key files.
    #[error(transparent)]
    Trust(#[from] trust::TrustError),
    /// Key file.
    #[error("{path}: {reason}")]
    Key {
        /// File.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// This node's certificate chain and key, loaded once.
#[derive(Debug)]
pub struct Identity {
    /// Chain, end entity first.
    pub chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Identity {
    /// Loads a PEM chain and PEM key.
    pub fn load(cert: &std::path::Path, key: &std::path::Path) -> Result<Self, TlsError> {
        let chain = trust::load_certs(cert)?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
            path: key.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self { chain, key })
    }
}

/// TLS versions of the link: 1.3 only, unless `[tls] min_version = "1.2"` widens it.
fn versions(allow_tls12: bool) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static WITH_TLS12: [&rustls::SupportedProtocolVersion; 2] =
        [&rustls::version::TLS13, &rustls::version::TLS12];
    static TLS13_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    if allow_tls12 {
        &WITH_TLS12
    } else {
        &TLS13_ONLY
    }
}

/// Server (parent) side: client certificates required, TLS 1.3 only (TLS 1.2 as well with
/// `allow_tls12`).
pub fn server_config(
    trust: &Arc<TrustStore>,
    id: &Identity,
    allow_tls12: bool,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut hints = Vec::new();
    for ca in trust.cas() {
        let subject = x509_parser::parse_x509_certificate(&ca)
            .map_err(|e| TlsError::Rustls(format!("CA certificate: {e}")))?
            .1
            .subject()
            .as_raw()
            .to_vec();
        hints.push(DistinguishedName::from(subject));
    }
    let verifier = Arc::new(ChildCertVerifier {
        trust: trust.clone(),
        hints,
        provider: provider(),
    });
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(allow_tls12))
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(id.chain.clone(), id.key.clone_key())
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    cfg.alpn_protocols = vec![ALPN_H2.to_vec()];
    // No session resumption: every handshake checks the certificate against the CRL in force
    // (a resumed session would skip that). Links are long-lived; it costs nothing.
    cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    cfg.send_tls13_tickets = 0;
    Ok(Arc::new(cfg))
}

/// Client (child) side: presents `id`, accepts only a server certificate naming `parent`.
pub fn client_config(
    trust: Arc<TrustStore>,
    parent: AgencyCode,
    id: &Identity,
    allow_tls12: bool,
) -> Result<Arc<ClientConfig>, TlsError> {
    let verifier = Arc::new(AgencyServerVerifier {
        trust,
        expected: parent,
        provider: provider(),
    });
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(allow_tls12))
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    cfg.alpn_protocols = vec![ALPN_H2.to_vec()];
    // No session resumption, as on the server side.
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(cfg))
}

/// The local API's TLS (HTTPS, HTTP/1.1): the certificate and key of `tls`, and client
/// certificates accepted when they chain to `tls.client_ca` but not required (clients without
/// one authenticate by bearer token). TLS 1.2 is accepted as well as 1.3: the API's clients are
/// document management systems, not relays, and some can do no better.
pub fn api_server_config(tls: &crate::config::ApiTls) -> Result<Arc<ServerConfig>, TlsError> {
    let id = Identity::load(&tls.cert, &tls.key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(true))
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in trust::load_certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| TlsError::Rustls(format!("{}: {e}", ca.display())))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots.into(),
                provider(),
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::Rustls(format!("{}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder
        .with_single_cert(id.chain.clone(), id.key.clone_key())
        .map_err(|e| TlsError::Rustls(format!("{}: {e}", tls.cert.display())))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The common name (CN) in the subject of a certificate (the first, if several), if any.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, c) = x509_parser::parse_x509_certificate(cert).ok()?;
    let cn = c.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// The agency a TLS peer's (already chain-checked) certificate names.
pub fn peer_agency(certs: &[CertificateDer<'_>]) -> Result<AgencyCode, CertError> {
    let end = certs.first().ok_or(CertError::NoCertificate)?;
    Ok(trust::inspect(end)?.0)
}

/// A certificate error as rustls reports it, so the handshake alert and the log name the cause
/// (`UnknownIssuer`, `Expired`, `Revoked`, ...).
fn rustls_error(e: CertError) -> rustls::Error {
    let c = match e {
        CertError::UnknownIssuer => CertificateError::UnknownIssuer,
        CertError::Expired => CertificateError::Expired,
        CertError::NotYetValid => CertificateError::NotValidYet,
        CertError::Revoked => CertificateError::Revoked,
        CertError::WrongUsage(_) => CertificateError::InvalidPurpose,
        CertError::Malformed(_) => CertificateError::BadEncoding,
        other => return rustls::Error::General(format!("client certificate: {other}")),
    };
    rustls::Error::InvalidCertificate(c)
}

/// Checks a child's certificate with [`TrustStore::verify_chain`]: the one chain policy.
#[derive(Debug)]
struct ChildCertVerifier {
    trust: Arc<TrustStore>,
    hints: Vec<DistinguishedName>,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for ChildCertVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone()];
        chain.extend(intermediates.iter().cloned());
        self.trust
            .verify_chain(&chain, Usage::TlsClient, now)
            .map_err(rustls_error)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Checks the parent's certificate: chain, validity, EKU, CRL through the trust store, then the
/// agency it names.
#[derive(Debug)]
struct AgencyServerVerifier {
    trust: Arc<TrustStore>,
    expected: AgencyCode,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AgencyServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone()];
        chain.extend(intermediates.iter().cloned());
        let certified = self
            .trust
            .verify_chain(&chain, Usage::TlsServer, now)
            .map_err(|e| rustls::Error::General(format!("parent certificate: {e}")))?;
        if certified.agency != self.expected {
            return Err(rustls::Error::General(format!(
                "parent certificate: {}",
                CertError::AgencyMismatch {
                    expected: self.expected.clone(),
                    certificate: certified.agency,
                }
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
