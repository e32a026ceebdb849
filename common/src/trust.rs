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

/// The CRL in force: parsed, its DER, and what identifies the file it came from.
#[derive(Debug, Default)]
struct Crls {
    list: Vec<CertRevocationList<'static>>,
    ders: Vec<CertificateRevocationListDer<'static>>,
    /// thisUpdate of the CRL in force (unix s), to refuse an older one.
    this_update: Option<i64>,
    /// Modification time and length of the file when it was read.
    stamp: Option<(std::time::SystemTime, u64)>,
}

/// What [`TrustStore::reload_crl`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrlReload {
    /// No CRL is configured, or its file has not changed.
    Unchanged,
    /// A new CRL replaced the old one; it lists this many certificates.
    Replaced {
        /// Certificates it revokes.
        revoked: usize,
    },
}

/// The interchange CA and its CRL, shared by every check. The CRL is read at start and again
/// whenever [`TrustStore::reload_crl`] finds its file changed; a CRL that does not parse, is
/// not signed by the CA or is older than the one in force never replaces it.
#[derive(Debug)]
pub struct TrustStore {
    ca: CertificateDer<'static>,
    crl_path: Option<PathBuf>,
    crls: std::sync::RwLock<Crls>,
    /// Changes each time the CRL is replaced (caches of checked chains compare it).
    generation: std::sync::atomic::AtomicU64,
}

impl TrustStore {
    /// Loads the CA certificate (PEM) and optionally a CRL (PEM or DER), which must be signed
    /// by that CA.
    pub fn load(ca_path: &Path, crl_path: Option<&Path>) -> Result<Self, TrustError> {
        let ca = CertificateDer::from_pem_file(ca_path).map_err(|e| TrustError::File {
            path: ca_path.to_owned(),
            reason: format!("no PEM certificate: {e}"),
        })?;
        webpki::anchor_from_trusted_cert(&ca).map_err(|e| TrustError::BadCa {
            path: ca_path.to_owned(),
            reason: format!("{e:?}"),
        })?;
        let store = Self {
            ca,
            crl_path: crl_path.map(Path::to_owned),
            crls: std::sync::RwLock::default(),
            generation: std::sync::atomic::AtomicU64::new(0),
        };
        store.reload_crl()?;
        Ok(store)
    }

    /// Reads the CRL file again if it changed since it was read, and puts it in force when it
    /// parses, is signed by the CA and is not older than the CRL in force. On an error the
    /// CRL in force stays.
    pub fn reload_crl(&self) -> Result<CrlReload, TrustError> {
        let Some(path) = &self.crl_path else {
            return Ok(CrlReload::Unchanged);
        };
        let bad = |reason: String| TrustError::BadCrl {
            path: path.clone(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| TrustError::File {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let stamp = meta.modified().ok().map(|m| (m, meta.len()));
        if stamp.is_some() && self.read_crls().stamp == stamp {
            return Ok(CrlReload::Unchanged);
        }
        let bytes = std::fs::read(path).map_err(|e| TrustError::File {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let der = match CertificateRevocationListDer::from_pem_slice(&bytes) {
            Ok(d) => d,
            Err(_) => CertificateRevocationListDer::from(bytes),
        };
        let this_update = self.check_crl(&der).map_err(bad)?;
        let owned = OwnedCertRevocationList::from_der(&der).map_err(|e| bad(format!("{e:?}")))?;
        let revoked = x509_parser::parse_x509_crl(&der)
            .map(|(_, c)| c.iter_revoked_certificates().count())
            .unwrap_or(0);
        let mut crls = match self.crls.write() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        if let Some(held) = crls.this_update {
            if this_update < held {
                return Err(bad(format!(
                    "issued before the CRL in force (thisUpdate {this_update} < {held}); kept the newer one"
                )));
            }
        }
        *crls = Crls {
            list: vec![CertRevocationList::from(owned)],
            ders: vec![der],
            this_update: Some(this_update),
            stamp,
        };
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(CrlReload::Replaced { revoked })
    }

    /// Checks that `der` is a CRL signed by the CA; returns its thisUpdate (unix s).
    fn check_crl(&self, der: &[u8]) -> Result<i64, String> {
        let (_, crl) = x509_parser::parse_x509_crl(der).map_err(|e| e.to_string())?;
        let (_, ca) = x509_parser::parse_x509_certificate(&self.ca).map_err(|e| e.to_string())?;
        if crl.issuer() != ca.subject() {
            return Err(format!(
                "issued by {}, not by the CA ({})",
                crl.issuer(),
                ca.subject()
            ));
        }
        crl.verify_signature(ca.public_key())
            .map_err(|e| format!("signature does not verify with the CA's key: {e}"))?;
        Ok(crl.last_update().timestamp())
    }

    fn read_crls(&self) -> std::sync::RwLockReadGuard<'_, Crls> {
        match self.crls.read() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        }
    }

    /// Changes each time a new CRL is put in force.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The CA certificate.
    pub fn ca(&self) -> &CertificateDer<'static> {
        &self.ca
    }

    /// The CRLs in force, DER.
    pub fn crl_ders(&self) -> Vec<CertificateRevocationListDer<'static>> {
        self.read_crls().ders.clone()
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
        let crls = self.read_crls();
        let crl_refs: Vec<&CertRevocationList<'_>> = crls.list.iter().collect();
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
