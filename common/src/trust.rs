//! The interchange trust anchor and revocation list, and the one place where a certificate chain
//! is checked (for TLS peers and for document signers alike): chain to the interchange CA,
//! validity period, key usage, revocation by CRL, and the agency the certificate names.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use webpki::{CertRevocationList, EndEntityCert, KeyUsage, OwnedCertRevocationList};
use x509_parser::extensions::GeneralName;

use crate::agency::AgencyCode;
use crate::pki::AGENCY_URI_PREFIX;

/// Signature algorithms accepted in certificate chains.
pub static CHAIN_ALGORITHMS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
];

/// Why a certificate is not trusted. Each refusal reason has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The peer or signature presented no certificate.
    #[error("no certificate presented")]
    NoCertificate,
    /// Not a parseable X.509 certificate.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// Not issued by the interchange CA (foreign CA or self-signed).
    #[error("certificate is not issued by the interchange CA")]
    UnknownIssuer,
    /// Past its notAfter.
    #[error("certificate has expired")]
    Expired,
    /// Before its notBefore.
    #[error("certificate is not valid yet")]
    NotYetValid,
    /// Listed on the CA's CRL.
    #[error("certificate is revoked")]
    Revoked,
    /// Lacks the key usage or extended key usage required.
    #[error("certificate may not be used for {0}")]
    WrongUsage(&'static str),
    /// Names no agency (no `urn:lienthong:agency:` SAN URI).
    #[error("certificate names no agency (SAN URI {AGENCY_URI_PREFIX}<code>)")]
    NoAgency,
    /// Names an agency whose code does not parse.
    #[error("certificate names a bad agency code: {0}")]
    BadAgency(String),
    /// Names another agency than the one expected.
    #[error("certificate names {certificate}, expected {expected}")]
    AgencyMismatch {
        /// The agency expected (configured parent, announced child, header sender).
        expected: AgencyCode,
        /// The agency the certificate names.
        certificate: AgencyCode,
    },
    /// Any other failure of the path check.
    #[error("certificate rejected: {0}")]
    Other(String),
}

impl From<webpki::Error> for CertError {
    fn from(e: webpki::Error) -> Self {
        use webpki::Error as E;
        match e {
            // A foreign CA with the same name as ours shows up as a bad issuer signature.
            E::UnknownIssuer | E::CaUsedAsEndEntity | E::InvalidSignatureForPublicKey => {
                CertError::UnknownIssuer
            }
            E::CertExpired { .. } => CertError::Expired,
            E::CertNotValidYet { .. } => CertError::NotYetValid,
            E::CertRevoked => CertError::Revoked,
            E::RequiredEkuNotFoundContext(_) => CertError::WrongUsage("this purpose"),
            E::BadDer | E::BadDerTime | E::TrailingData(_) => {
                CertError::Malformed(format!("{e:?}"))
            }
            other => CertError::Other(format!("{other:?}")),
        }
    }
}

/// Errors loading the trust configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// File missing or unreadable, or no PEM object of the right kind in it.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The CA certificate cannot be a trust anchor.
    #[error("{path}: not a usable CA certificate: {reason}")]
    BadCa {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The CRL does not parse.
    #[error("{path}: not a usable CRL: {reason}")]
    BadCrl {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The purpose a chain is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A TLS server (a parent, seen by its child).
    TlsServer,
    /// A TLS client (a child, seen by its parent).
    TlsClient,
    /// A document or receipt signature.
    DocumentSigning,
}

/// A chain that passed every check, and the agency it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertifiedAgency {
    /// The agency the end-entity certificate names.
    pub agency: AgencyCode,
    /// Its notAfter, unix seconds.
    pub not_after: i64,
}

/// The interchange CA and its CRL, loaded once and shared.
#[derive(Debug)]
pub struct TrustStore {
    ca: CertificateDer<'static>,
    crls: Vec<CertRevocationList<'static>>,
    crl_ders: Vec<CertificateRevocationListDer<'static>>,
}

impl TrustStore {
    /// Loads the CA certificate (PEM) and optionally a CRL (PEM or DER).
    pub fn load(ca_path: &Path, crl_path: Option<&Path>) -> Result<Self, TrustError> {
        let ca = CertificateDer::from_pem_file(ca_path).map_err(|e| TrustError::File {
            path: ca_path.to_owned(),
            reason: format!("no PEM certificate: {e}"),
        })?;
        let mut crl_ders = Vec::new();
        if let Some(p) = crl_path {
            let der = match CertificateRevocationListDer::from_pem_file(p) {
                Ok(d) => d,
                Err(_) => CertificateRevocationListDer::from(std::fs::read(p).map_err(|e| {
                    TrustError::File {
                        path: p.to_owned(),
                        reason: e.to_string(),
                    }
                })?),
            };
            crl_ders.push(der);
        }
        Self::from_der(ca, crl_ders).map_err(|(which, reason)| match which {
            Which::Ca => TrustError::BadCa {
                path: ca_path.to_owned(),
                reason,
            },
            Which::Crl => TrustError::BadCrl {
                path: crl_path.map(Path::to_owned).unwrap_or_default(),
                reason,
            },
        })
    }

    /// Builds a trust store from DER parts.
    fn from_der(
        ca: CertificateDer<'static>,
        crl_ders: Vec<CertificateRevocationListDer<'static>>,
    ) -> Result<Self, (Which, String)> {
        webpki::anchor_from_trusted_cert(&ca).map_err(|e| (Which::Ca, format!("{e:?}")))?;
        let mut crls = Vec::new();
        for d in &crl_ders {
            let owned =
                OwnedCertRevocationList::from_der(d).map_err(|e| (Which::Crl, format!("{e:?}")))?;
            crls.push(CertRevocationList::from(owned));
        }
        Ok(Self { ca, crls, crl_ders })
    }

    /// The CA certificate.
    pub fn ca(&self) -> &CertificateDer<'static> {
        &self.ca
    }

    /// The CRLs, DER.
    pub fn crl_ders(&self) -> &[CertificateRevocationListDer<'static>] {
        &self.crl_ders
    }

    /// Checks `chain` (end entity first) for `usage` at time `now` and returns the agency it
    /// names. This is the only chain check in the project.
    pub fn verify_chain(
        &self,
        chain: &[CertificateDer<'_>],
        usage: Usage,
        now: UnixTime,
    ) -> Result<CertifiedAgency, CertError> {
        let (end, intermediates) = chain.split_first().ok_or(CertError::NoCertificate)?;
        let ee =
            EndEntityCert::try_from(end).map_err(|e| CertError::Malformed(format!("{e:?}")))?;
        let anchor = webpki::anchor_from_trusted_cert(&self.ca)
            .map_err(|e| CertError::Other(format!("trust anchor: {e:?}")))?;
        let crl_refs: Vec<&CertRevocationList<'_>> = self.crls.iter().collect();
        let revocation = if crl_refs.is_empty() {
            None
        } else {
            Some(
                webpki::RevocationOptionsBuilder::new(&crl_refs)
                    .map_err(|_| CertError::Other("no CRL".into()))?
                    .with_depth(webpki::RevocationCheckDepth::Chain)
                    .with_status_policy(webpki::UnknownStatusPolicy::Allow)
                    .build(),
            )
        };
        let eku = match usage {
            Usage::TlsServer => KeyUsage::server_auth(),
            Usage::TlsClient | Usage::DocumentSigning => KeyUsage::client_auth(),
        };
        ee.verify_for_usage(
            CHAIN_ALGORITHMS,
            &[anchor],
            intermediates,
            now,
            eku,
            revocation,
            None,
        )
        .map_err(|e| match CertError::from(e) {
            CertError::WrongUsage(_) => CertError::WrongUsage(usage_name(usage)),
            other => other,
        })?;
        let (agency, not_after, digital_signature) = inspect(end)?;
        if !digital_signature {
            return Err(CertError::WrongUsage(usage_name(usage)));
        }
        Ok(CertifiedAgency { agency, not_after })
    }
}

#[derive(Debug)]
enum Which {
    Ca,
    Crl,
}

fn usage_name(u: Usage) -> &'static str {
    match u {
        Usage::TlsServer => "TLS server authentication",
        Usage::TlsClient => "TLS client authentication",
        Usage::DocumentSigning => "document signing",
    }
}

/// Reads the agency a certificate names, its notAfter, and whether its key usage allows
/// digital signatures (true when the extension is absent).
pub fn inspect(der: &[u8]) -> Result<(AgencyCode, i64, bool), CertError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CertError::Malformed(e.to_string()))?;
    let not_after = cert.validity().not_after.timestamp();
    let digital_signature = match cert.key_usage() {
        Ok(Some(ku)) => ku.value.digital_signature(),
        Ok(None) => true,
        Err(e) => return Err(CertError::Malformed(e.to_string())),
    };
    let san = cert
        .subject_alternative_name()
        .map_err(|e| CertError::Malformed(e.to_string()))?;
    let uri = san.and_then(|san| {
        san.value.general_names.iter().find_map(|n| match n {
            GeneralName::URI(u) => u.strip_prefix(AGENCY_URI_PREFIX),
            _ => None,
        })
    });
    let code = uri.ok_or(CertError::NoAgency)?;
    let agency = AgencyCode::parse(code).map_err(|e| CertError::BadAgency(e.to_string()))?;
    Ok((agency, not_after, digital_signature))
}

/// Reads every certificate of a PEM file (a chain, end entity first).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| TrustError::File {
            path: path.to_owned(),
            reason: e.to_string(),
        })?
        .collect();
    let certs = certs.map_err(|e| TrustError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(TrustError::File {
            path: path.to_owned(),
            reason: "no PEM certificate in file".into(),
        });
    }
    Ok(certs)
}
