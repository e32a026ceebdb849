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
    /// Names no agency where the configuration looks for it (by default a
    /// `urn:lienthong:agency:` SAN URI).
    #[error("certificate names no agency ({0})")]
    NoAgency(String),
    /// A CA on the chain has a CRL past its nextUpdate and the grace (fail closed).
    #[error("the CRL of {0} is past its next update and the grace period: chains through it are refused until a fresh CRL arrives")]
    CrlStale(String),
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

/// Where a certificate names its agency (`[tls] agency_in`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AgencyField {
    /// A subjectAltName URI `urn:lienthong:agency:<code>` (the default; what `lt-relay pki`
    /// issues).
    #[default]
    SanUri,
    /// A subject attribute, by its OID in dotted form (UID, serialNumber, CN, or any other).
    /// Its value is the code, or ends with `:<code>` (as in `MNS:000.00.00.H53`).
    Subject(String),
}

impl AgencyField {
    /// Parses `san_uri`, `subject:UID`, `subject:serialNumber`, `subject:CN` or
    /// `subject:<dotted OID>`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "san_uri" {
            return Ok(Self::SanUri);
        }
        let Some(attr) = s.strip_prefix("subject:") else {
            return Err(format!(
                "{s:?}: use \"san_uri\", \"subject:UID\", \"subject:serialNumber\", \"subject:CN\" or \"subject:<OID>\""
            ));
        };
        let oid = match attr {
            "UID" => "0.9.2342.19200300.100.1.1",
            "serialNumber" => "2.5.4.5",
            "CN" => "2.5.4.3",
            other
                if !other.is_empty()
                    && other
                        .split('.')
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) =>
            {
                other
            }
            other => {
                return Err(format!(
                    "{other:?} is not UID, serialNumber, CN or a dotted OID"
                ))
            }
        };
        Ok(Self::Subject(oid.to_owned()))
    }

    /// How it is described in messages.
    pub fn describe(&self) -> String {
        match self {
            Self::SanUri => format!("SAN URI {AGENCY_URI_PREFIX}<code>"),
            Self::Subject(oid) => format!("subject attribute {oid}"),
        }
    }
}

/// One CA's CRL in force.
#[derive(Debug)]
struct HeldCrl {
    list: CertRevocationList<'static>,
    der: CertificateRevocationListDer<'static>,
    /// Its issuer's subject, DER.
    issuer: Vec<u8>,
    /// thisUpdate (unix s), to refuse an older one.
    this_update: i64,
    /// nextUpdate (unix s), if it has one.
    next_update: Option<i64>,
}

/// The CRLs in force, one per issuing CA, and what identifies the files they came from.
#[derive(Debug, Default)]
struct Crls {
    held: Vec<HeldCrl>,
    /// Modification time and length of each CRL file when it was read.
    stamps: Vec<Option<(std::time::SystemTime, u64)>>,
}

/// What [`TrustStore::reload_crl`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrlReload {
    /// No CRL is configured, or no file and no fetched CRL has changed.
    Unchanged,
    /// New CRLs replaced old ones; the CRLs in force list this many certificates.
    Replaced {
        /// Certificates they revoke.
        revoked: usize,
    },
}

/// A CA certificate of the trust bundle, with what CRL checks need of it.
#[derive(Debug)]
struct BundleCa {
    der: CertificateDer<'static>,
    subject: Vec<u8>,
    issuer: Vec<u8>,
}

/// The trust bundle (the root CA, and any intermediate CAs) and the CRLs of its CAs, shared by
/// every check. CRL files are read at start and again whenever [`TrustStore::reload_crl`] finds
/// one changed; CRLs fetched from the network are offered with [`TrustStore::offer_crl`]. A CRL
/// that does not parse, is not signed by a CA of the bundle, or is older than the one in force
/// for its CA never replaces it.
#[derive(Debug)]
pub struct TrustStore {
    /// Self-signed certificates of the bundle: the trust anchors.
    anchors: Vec<CertificateDer<'static>>,
    /// Every CA of the bundle, anchors first.
    cas: Vec<BundleCa>,
    /// Intermediate CAs of the bundle, added to every chain a peer presents.
    intermediates: Vec<CertificateDer<'static>>,
    crl_paths: Vec<PathBuf>,
    crls: std::sync::RwLock<Crls>,
    agency_field: AgencyField,
    /// A CRL this long past its nextUpdate makes chains through its CA fail (None: never).
    stale_after: Option<i64>,
    /// Changes each time a CRL is replaced (caches of checked chains compare it).
    generation: std::sync::atomic::AtomicU64,
}

fn is_self_signed(subject: &[u8], issuer: &[u8]) -> bool {
    subject == issuer
}

impl TrustStore {
    /// Loads the trust bundle (PEM: the root CA, and any intermediate CAs) and optionally a CRL
    /// file (PEM, one CRL or several, or DER), each signed by a CA of the bundle.
    pub fn load(ca_path: &Path, crl_path: Option<&Path>) -> Result<Self, TrustError> {
        Self::load_with(
            ca_path,
            crl_path.into_iter().map(Path::to_owned).collect(),
            AgencyField::SanUri,
            None,
        )
    }

    /// The same with several CRL files, the place of the agency code in certificates, and how
    /// long past its nextUpdate a CRL may be before chains through its CA fail (`stale_after`,
    /// seconds; None: never, the CRL in force is used however old).
    pub fn load_with(
        ca_path: &Path,
        crl_paths: Vec<PathBuf>,
        agency_field: AgencyField,
        stale_after: Option<i64>,
    ) -> Result<Self, TrustError> {
        let bad_ca = |reason: String| TrustError::BadCa {
            path: ca_path.to_owned(),
            reason,
        };
        let bundle = load_certs(ca_path)?;
        let mut anchors = Vec::new();
        let mut intermediates = Vec::new();
        let mut cas = Vec::new();
        for der in bundle {
            let (subject, issuer, is_ca) = {
                let (_, c) =
                    x509_parser::parse_x509_certificate(&der).map_err(|e| bad_ca(e.to_string()))?;
                (
                    c.subject().as_raw().to_vec(),
                    c.issuer().as_raw().to_vec(),
                    c.is_ca(),
                )
            };
            if !is_ca {
                return Err(bad_ca(format!(
                    "{} is not a CA certificate (basicConstraints CA:TRUE)",
                    subject_text(&der)
                )));
            }
            if is_self_signed(&subject, &issuer) {
                webpki::anchor_from_trusted_cert(&der).map_err(|e| bad_ca(format!("{e:?}")))?;
                anchors.push(der.clone());
                cas.insert(
                    anchors.len() - 1,
                    BundleCa {
                        der,
                        subject,
                        issuer,
                    },
                );
            } else {
                intermediates.push(der.clone());
                cas.push(BundleCa {
                    der,
                    subject,
                    issuer,
                });
            }
        }
        if anchors.is_empty() {
            return Err(bad_ca(
                "no root CA (a self-signed certificate) in the bundle".into(),
            ));
        }
        let stamps = vec![None; crl_paths.len()];
        let store = Self {
            anchors,
            cas,
            intermediates,
            crl_paths,
            crls: std::sync::RwLock::new(Crls {
                held: Vec::new(),
                stamps,
            }),
            agency_field,
            stale_after,
            generation: std::sync::atomic::AtomicU64::new(0),
        };
        store.reload_crl()?;
        Ok(store)
    }

    /// Reads again each CRL file that changed since it was read, and puts each CRL in it in
    /// force when it parses, is signed by a CA of the bundle and is not older than the CRL in
    /// force for that CA. On an error nothing of that file is used and the CRLs in force stay.
    pub fn reload_crl(&self) -> Result<CrlReload, TrustError> {
        let mut replaced = false;
        let mut first_error = None;
        for (i, path) in self.crl_paths.iter().enumerate() {
            let meta = match std::fs::metadata(path) {
                Ok(m) => m,
                Err(e) => {
                    first_error.get_or_insert(TrustError::File {
                        path: path.clone(),
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            let stamp = meta.modified().ok().map(|m| (m, meta.len()));
            if stamp.is_some() && self.read_crls().stamps.get(i).copied().flatten() == stamp {
                continue;
            }
            let result = std::fs::read(path)
                .map_err(|e| TrustError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                })
                .and_then(|bytes| {
                    self.put_in_force(&bytes)
                        .map_err(|reason| TrustError::BadCrl {
                            path: path.clone(),
                            reason,
                        })
                });
            // Read once per change, used or not: a bad file is reported once.
            if let Some(s) = self.write_crls().stamps.get_mut(i) {
                *s = stamp;
            }
            match result {
                Ok(r) => replaced |= r,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            if replaced {
                self.bump();
            }
            return Err(e);
        }
        Ok(self.finish(replaced))
    }

    /// Offers CRLs fetched from `source` (PEM or DER bytes): each is put in force when it is
    /// signed by a CA of the bundle and newer than the one held for that CA.
    pub fn offer_crl(&self, source: &str, bytes: &[u8]) -> Result<CrlReload, TrustError> {
        let replaced = self
            .put_in_force(bytes)
            .map_err(|reason| TrustError::BadCrl {
                path: PathBuf::from(source),
                reason,
            })?;
        Ok(self.finish(replaced))
    }

    fn finish(&self, replaced: bool) -> CrlReload {
        if !replaced {
            return CrlReload::Unchanged;
        }
        self.bump();
        let revoked = self
            .read_crls()
            .held
            .iter()
            .map(|h| {
                x509_parser::parse_x509_crl(&h.der)
                    .map(|(_, c)| c.iter_revoked_certificates().count())
                    .unwrap_or(0)
            })
            .sum();
        CrlReload::Replaced { revoked }
    }

    fn bump(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Checks every CRL in `bytes` and puts those newer than the held ones in force, all or
    /// none. True when one replaced another (or was new).
    fn put_in_force(&self, bytes: &[u8]) -> Result<bool, String> {
        let ders: Vec<CertificateRevocationListDer<'static>> =
            match CertificateRevocationListDer::pem_slice_iter(bytes).collect::<Result<Vec<_>, _>>()
            {
                Ok(v) if !v.is_empty() => v,
                _ => vec![CertificateRevocationListDer::from(bytes.to_vec())],
            };
        let mut checked = Vec::new();
        for der in ders {
            let (issuer, this_update, next_update) = self.check_crl(&der)?;
            let owned = OwnedCertRevocationList::from_der(&der).map_err(|e| format!("{e:?}"))?;
            checked.push(HeldCrl {
                list: CertRevocationList::from(owned),
                der,
                issuer,
                this_update,
                next_update,
            });
        }
        let mut crls = self.write_crls();
        for c in &checked {
            if let Some(held) = crls.held.iter().find(|h| h.issuer == c.issuer) {
                if c.this_update < held.this_update {
                    return Err(format!(
                        "the CRL of {} was issued before the one in force (thisUpdate {} < {}); kept the newer one",
                        name_text(&c.issuer),
                        c.this_update,
                        held.this_update
                    ));
                }
            }
        }
        let mut replaced = false;
        for c in checked {
            match crls.held.iter_mut().find(|h| h.issuer == c.issuer) {
                Some(h) if h.der == c.der => {}
                Some(h) => {
                    *h = c;
                    replaced = true;
                }
                None => {
                    crls.held.push(c);
                    replaced = true;
                }
            }
        }
        Ok(replaced)
    }

    /// Checks that `der` is a CRL signed by a CA of the bundle; returns its issuer (DER),
    /// thisUpdate and nextUpdate (unix s).
    fn check_crl(&self, der: &[u8]) -> Result<(Vec<u8>, i64, Option<i64>), String> {
        let (_, crl) = x509_parser::parse_x509_crl(der).map_err(|e| e.to_string())?;
        let issuer = crl.issuer().as_raw();
        let ca = self
            .cas
            .iter()
            .find(|c| c.subject == issuer)
            .ok_or_else(|| {
                format!(
                    "issued by {}, not by the CA (nor by any CA of the trust bundle)",
                    crl.issuer()
                )
            })?;
        let (_, ca_cert) =
            x509_parser::parse_x509_certificate(&ca.der).map_err(|e| e.to_string())?;
        crl.verify_signature(ca_cert.public_key()).map_err(|e| {
            format!(
                "signature does not verify with the CA's key ({}): {e}",
                crl.issuer()
            )
        })?;
        Ok((
            issuer.to_vec(),
            crl.last_update().timestamp(),
            crl.next_update().map(|t| t.timestamp()),
        ))
    }

    fn read_crls(&self) -> std::sync::RwLockReadGuard<'_, Crls> {
        match self.crls.read() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        }
    }

    fn write_crls(&self) -> std::sync::RwLockWriteGuard<'_, Crls> {
        match self.crls.write() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        }
    }

    /// Changes each time a new CRL is put in force.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The (first) root CA certificate.
    pub fn ca(&self) -> &CertificateDer<'static> {
        &self.anchors[0]
    }

    /// Every CA certificate of the bundle, roots first.
    pub fn cas(&self) -> Vec<CertificateDer<'static>> {
        self.cas.iter().map(|c| c.der.clone()).collect()
    }

    /// Where certificates name their agency.
    pub fn agency_field(&self) -> &AgencyField {
        &self.agency_field
    }

    /// The CRLs in force, DER.
    pub fn crl_ders(&self) -> Vec<CertificateRevocationListDer<'static>> {
        self.read_crls()
            .held
            .iter()
            .map(|h| h.der.clone())
            .collect()
    }

    /// The CAs (subject text) whose CRL is past its nextUpdate at `now` (unix s), with that
    /// date, and whether chains through them now fail (past the grace as well).
    pub fn stale_crls(&self, now: i64) -> Vec<(String, i64, bool)> {
        self.read_crls()
            .held
            .iter()
            .filter_map(|h| {
                let next = h.next_update?;
                (next < now).then(|| {
                    let closed = self
                        .stale_after
                        .is_some_and(|g| next.saturating_add(g) < now);
                    (name_text(&h.issuer), next, closed)
                })
            })
            .collect()
    }

    /// The subjects (DER) of the CAs on the way from `end` to a root of the bundle, following
    /// issuer names through `extra` (the certificates a peer presented) and the bundle.
    fn issuers_of(&self, end: &[u8], extra: &[CertificateDer<'_>]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let Ok((_, c)) = x509_parser::parse_x509_certificate(end) else {
            return out;
        };
        let mut issuer = c.issuer().as_raw().to_vec();
        for _ in 0..8 {
            if out.contains(&issuer) {
                break;
            }
            out.push(issuer.clone());
            let next = self
                .cas
                .iter()
                .find(|ca| ca.subject == issuer)
                .map(|ca| ca.issuer.clone())
                .or_else(|| {
                    extra.iter().find_map(|d| {
                        let (_, x) = x509_parser::parse_x509_certificate(d).ok()?;
                        (x.subject().as_raw() == issuer.as_slice())
                            .then(|| x.issuer().as_raw().to_vec())
                    })
                });
            match next {
                Some(n) if n != issuer => issuer = n,
                _ => break,
            }
        }
        out
    }

    /// Checks `chain` (end entity first) for `usage` at time `now` and returns the agency it
    /// names: the path to a root of the bundle (through the presented intermediates and the
    /// bundle's), validity, key usage and EKU, revocation of every certificate of the path by
    /// its CA's CRL, and, with a stale limit, that no CRL on the path is too far past its
    /// nextUpdate. This is the only chain check in the project.
    pub fn verify_chain(
        &self,
        chain: &[CertificateDer<'_>],
        usage: Usage,
        now: UnixTime,
    ) -> Result<CertifiedAgency, CertError> {
        let (end, presented) = chain.split_first().ok_or(CertError::NoCertificate)?;
        let ee =
            EndEntityCert::try_from(end).map_err(|e| CertError::Malformed(format!("{e:?}")))?;
        let anchors = self
            .anchors
            .iter()
            .map(|a| webpki::anchor_from_trusted_cert(a))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CertError::Other(format!("trust anchor: {e:?}")))?;
        let mut intermediates: Vec<CertificateDer<'_>> = presented.to_vec();
        intermediates.extend(self.intermediates.iter().cloned());
        let crls = self.read_crls();
        let crl_refs: Vec<&CertRevocationList<'_>> = crls.held.iter().map(|h| &h.list).collect();
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
            &anchors,
            &intermediates,
            now,
            eku,
            revocation,
            None,
        )
        .map_err(|e| match CertError::from(e) {
            CertError::WrongUsage(_) => CertError::WrongUsage(usage_name(usage)),
            other => other,
        })?;
        if let Some(grace) = self.stale_after {
            let now_s = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
            let path = self.issuers_of(end, presented);
            for h in &crls.held {
                let Some(next) = h.next_update else { continue };
                if next.saturating_add(grace) < now_s && path.contains(&h.issuer) {
                    return Err(CertError::CrlStale(name_text(&h.issuer)));
                }
            }
        }
        drop(crls);
        let (agency, not_after, digital_signature) = inspect_with(end, &self.agency_field)?;
        if !digital_signature {
            return Err(CertError::WrongUsage(usage_name(usage)));
        }
        Ok(CertifiedAgency { agency, not_after })
    }
}

/// A distinguished name (DER) as text, for messages.
fn name_text(der: &[u8]) -> String {
    <x509_parser::x509::X509Name<'_> as x509_parser::prelude::FromDer<
        x509_parser::error::X509Error,
    >>::from_der(der)
    .map(|(_, n)| n.to_string())
    .unwrap_or_else(|_| "an unreadable name".into())
}

/// A certificate's subject as text, for messages.
fn subject_text(der: &[u8]) -> String {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c.subject().to_string())
        .unwrap_or_else(|_| "an unreadable certificate".into())
}

fn usage_name(u: Usage) -> &'static str {
    match u {
        Usage::TlsServer => "TLS server authentication",
        Usage::TlsClient => "TLS client authentication",
        Usage::DocumentSigning => "document signing",
    }
}

/// The http:// URLs of a certificate's CRL distribution points.
pub fn distribution_points(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::{DistributionPointName, ParsedExtension};
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let mut urls = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() {
            for p in points.iter() {
                if let Some(DistributionPointName::FullName(names)) = &p.distribution_point {
                    for n in names {
                        if let GeneralName::URI(u) = n {
                            if u.starts_with("http://") && !urls.iter().any(|x| x == u) {
                                urls.push((*u).to_owned());
                            }
                        }
                    }
                }
            }
        }
    }
    urls
}

/// Reads the agency a certificate names (in its SAN URI), its notAfter, and whether its key
/// usage allows digital signatures (true when the extension is absent).
pub fn inspect(der: &[u8]) -> Result<(AgencyCode, i64, bool), CertError> {
    inspect_with(der, &AgencyField::SanUri)
}

/// The same, with the agency where `field` says.
pub fn inspect_with(der: &[u8], field: &AgencyField) -> Result<(AgencyCode, i64, bool), CertError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CertError::Malformed(e.to_string()))?;
    let not_after = cert.validity().not_after.timestamp();
    let digital_signature = match cert.key_usage() {
        Ok(Some(ku)) => ku.value.digital_signature(),
        Ok(None) => true,
        Err(e) => return Err(CertError::Malformed(e.to_string())),
    };
    let code = match field {
        AgencyField::SanUri => {
            let san = cert
                .subject_alternative_name()
                .map_err(|e| CertError::Malformed(e.to_string()))?;
            san.and_then(|san| {
                san.value.general_names.iter().find_map(|n| match n {
                    GeneralName::URI(u) => u.strip_prefix(AGENCY_URI_PREFIX).map(str::to_owned),
                    _ => None,
                })
            })
        }
        AgencyField::Subject(oid) => cert
            .subject()
            .iter_attributes()
            .find(|a| a.attr_type().to_id_string() == *oid)
            .and_then(|a| a.as_str().ok())
            .map(|v| v.rsplit(':').next().unwrap_or(v).trim().to_owned()),
    };
    let code = code.ok_or_else(|| CertError::NoAgency(field.describe()))?;
    let agency = AgencyCode::parse(&code).map_err(|e| CertError::BadAgency(e.to_string()))?;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn agency_field_names_and_oids() {
        assert_eq!(AgencyField::parse("san_uri"), Ok(AgencyField::SanUri));
        assert_eq!(
            AgencyField::parse("subject:UID"),
            Ok(AgencyField::Subject("0.9.2342.19200300.100.1.1".into()))
        );
        assert_eq!(
            AgencyField::parse("subject:serialNumber"),
            Ok(AgencyField::Subject("2.5.4.5".into()))
        );
        assert_eq!(
            AgencyField::parse("subject:1.3.6.1.4.1.99.1"),
            Ok(AgencyField::Subject("1.3.6.1.4.1.99.1".into()))
        );
        for bad in ["uid", "subject:", "subject:1..2", "subject:O=x", "san"] {
            assert!(AgencyField::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn distribution_points_are_the_http_uris_of_the_extension() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: vec![
                "http://ca.example.vn/issuing.crl".into(),
                "ldap://ca.example.vn/cn=issuing".into(),
            ],
        }];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            distribution_points(cert.der()),
            vec!["http://ca.example.vn/issuing.crl".to_owned()]
        );
        let plain = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert!(distribution_points(plain.der()).is_empty());
    }
}
