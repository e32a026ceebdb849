//! Certificate chains to trust anchors, at a given time: for the signer of a PDF signature and
//! for the authority of an RFC 3161 time-stamp.
//!
//! The promise of [`verify_chain`]: a [`VerifiedChain`] comes back only when every link, from the
//! leaf to a certificate among the [`Anchors`], carries a signature that verifies with the next
//! one's key, every certificate but the anchor was valid at the time asked, every issuer below
//! the anchor is a CA allowed to sign certificates, the leaf carries the extended key usage asked
//! for, and no certificate was revoked at that time by a CRL the anchors carry. Anchors are taken
//! as configured: their own dates and extensions are not checked (as TLS verifiers do).
//!
//! Parsing and signature checks are x509-parser's (with ring): ECDSA P-256/P-384, RSA PKCS#1
//! v1.5 and PSS with SHA-256/384/512, Ed25519.

use std::path::{Path, PathBuf};

use const_oid::ObjectIdentifier;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::{FromDer, X509Error};
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::x509::X509Name;

/// The longest chain followed, leaf and anchor included: deeper is refused, not searched.
pub const MAX_CHAIN_LENGTH: usize = 8;

/// Why a chain could not be read or did not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainError {
    /// An anchors file could not be read.
    #[error("cannot read trust anchors {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        reason: String,
    },
    /// Trust anchors were asked for but none was given.
    #[error("no CERTIFICATE block among the trust anchors")]
    NoAnchors,
    /// A PEM block or a certificate could not be parsed.
    #[error("{what} is not a readable certificate: {reason}")]
    BadCertificate {
        /// Which certificate (an anchor, the leaf, an intermediate).
        what: String,
        /// The parser's complaint.
        reason: String,
    },
    /// A revocation list could not be parsed.
    #[error("CRL {index} is not readable: {reason}")]
    BadCrl {
        /// Its position in the list given, from 1.
        index: usize,
        /// The parser's complaint.
        reason: String,
    },
    /// No anchor or intermediate is named as the issuer of a certificate of the chain.
    #[error("unknown issuer: no trusted or supplied certificate issued \"{subject}\" (issuer \"{issuer}\")")]
    UnknownIssuer {
        /// The certificate whose issuer is missing.
        subject: String,
        /// The issuer it names.
        issuer: String,
    },
    /// A certificate was not yet valid at the time asked.
    #[error("\"{subject}\" was not yet valid at {} (valid from {})", utc(*at), utc(*not_before))]
    NotYetValid {
        /// The certificate.
        subject: String,
        /// Its notBefore (Unix seconds).
        not_before: i64,
        /// The time asked (Unix seconds).
        at: i64,
    },
    /// A certificate had expired at the time asked.
    #[error("\"{subject}\" had expired at {} (valid until {})", utc(*at), utc(*not_after))]
    Expired {
        /// The certificate.
        subject: String,
        /// Its notAfter (Unix seconds).
        not_after: i64,
        /// The time asked (Unix seconds).
        at: i64,
    },
    /// A certificate's signature does not verify with its issuer's key.
    #[error("bad signature on \"{subject}\": it does not verify with the key of \"{issuer}\"")]
    BadSignature {
        /// The certificate.
        subject: String,
        /// The issuer tried.
        issuer: String,
    },
    /// A certificate is signed with an algorithm that is not supported.
    #[error("\"{subject}\" is signed with an unsupported algorithm {algorithm}")]
    UnsupportedAlgorithm {
        /// The certificate.
        subject: String,
        /// The signature algorithm's OID.
        algorithm: String,
    },
    /// An issuer below the anchor is not a CA (basicConstraints) or may not sign certificates
    /// (keyUsage), or its path length constraint is exceeded.
    #[error(
        "\"{subject}\" issued a certificate of the chain but is not a CA allowed to: {reason}"
    )]
    NotCa {
        /// The issuer.
        subject: String,
        /// Which constraint failed.
        reason: String,
    },
    /// The leaf lacks the extended key usage asked for.
    #[error("\"{subject}\" lacks the extended key usage {eku}")]
    EkuMissing {
        /// The leaf.
        subject: String,
        /// The purpose asked for.
        eku: String,
    },
    /// A certificate was revoked at or before the time asked.
    #[error("\"{subject}\" was revoked at {}, at or before {}", utc(*revoked_at), utc(*at))]
    Revoked {
        /// The certificate.
        subject: String,
        /// Its revocation date (Unix seconds).
        revoked_at: i64,
        /// The time asked (Unix seconds).
        at: i64,
    },
    /// The chain would be longer than [`MAX_CHAIN_LENGTH`].
    #[error("no chain of at most {MAX_CHAIN_LENGTH} certificates reaches a trust anchor")]
    TooLong,
}

/// Trust anchors (root or intermediate CA certificates), with the CRLs that may revoke the
/// certificates they and the intermediates issued.
#[derive(Debug, Clone, Default)]
pub struct Anchors {
    certs: Vec<Vec<u8>>,
    crls: Vec<Vec<u8>>,
}

impl Anchors {
    /// Reads one or more `CERTIFICATE` blocks; other PEM blocks are ignored.
    pub fn from_pem(pem: &[u8]) -> Result<Anchors, ChainError> {
        let certs = certificates_from_pem(pem, "a trust anchor")?;
        if certs.is_empty() {
            return Err(ChainError::NoAnchors);
        }
        Ok(Anchors {
            certs,
            crls: Vec::new(),
        })
    }

    /// Reads the `CERTIFICATE` blocks of every file; at least one in all.
    pub fn from_pem_files(paths: &[PathBuf]) -> Result<Anchors, ChainError> {
        let mut certs = Vec::new();
        for path in paths {
            let pem = std::fs::read(path).map_err(|e| ChainError::Read {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let what = format!("a trust anchor in {}", path.display());
            certs.extend(certificates_from_pem(&pem, &what)?);
        }
        if certs.is_empty() {
            return Err(ChainError::NoAnchors);
        }
        Ok(Anchors {
            certs,
            crls: Vec::new(),
        })
    }

    /// Adds revocation lists (DER). Each must parse; whether it applies is decided per
    /// certificate (its issuer's name and a signature by that issuer's key).
    pub fn with_crls_der(mut self, crls: Vec<Vec<u8>>) -> Result<Anchors, ChainError> {
        for (i, crl) in crls.iter().enumerate() {
            parse_crl(crl).map_err(|reason| ChainError::BadCrl {
                index: i + 1,
                reason,
            })?;
        }
        self.crls.extend(crls);
        Ok(self)
    }

    /// How many anchor certificates there are.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// Whether there is no anchor (never true for anchors built by the constructors).
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// Whether any CRL was added.
    pub fn has_crls(&self) -> bool {
        !self.crls.is_empty()
    }
}

/// Reads the CRLs of a file, PEM (`X509 CRL` blocks) or DER, as DER for
/// [`Anchors::with_crls_der`].
pub fn crls_from_file(path: &Path) -> Result<Vec<Vec<u8>>, ChainError> {
    let bytes = std::fs::read(path).map_err(|e| ChainError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if !bytes.starts_with(b"-----BEGIN") {
        return Ok(vec![bytes]);
    }
    let mut out = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(&bytes) {
        let block = block.map_err(|e| ChainError::BadCrl {
            index: out.len() + 1,
            reason: format!("{} (PEM): {e}", path.display()),
        })?;
        if block.label == "X509 CRL" {
            out.push(block.contents);
        }
    }
    Ok(out)
}

/// Whether the chain's certificates were revoked, as far as the anchors' CRLs tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Revocation {
    /// Every certificate below the anchor is covered by a CRL of its issuer and none lists it.
    Good,
    /// A certificate was revoked, but only after the time asked (Unix seconds of the
    /// revocation): a signature made before it still stands if that time can be trusted.
    Revoked {
        /// The revocation date.
        at_unix: i64,
    },
    /// Some certificate is covered by no CRL.
    Unknown,
}

/// A chain that verified: made only by [`verify_chain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedChain {
    /// The leaf's subject, readable: its common name first, then the other attributes.
    pub subject: String,
    /// The chain, DER, the leaf first and the anchor last.
    pub chain_der: Vec<Vec<u8>>,
    /// What the anchors' CRLs say.
    pub revocation: Revocation,
}

/// Verifies the chain of `leaf_der` to one of `anchors` at `at_unix`, using `intermediates`
/// (in any order, unrelated ones ignored) to bridge the gap, and requires the leaf's extended
/// key usage to list `required_eku` when given. See the module's documentation for what is
/// checked.
pub fn verify_chain(
    leaf_der: &[u8],
    intermediates: &[Vec<u8>],
    anchors: &Anchors,
    at_unix: i64,
    required_eku: Option<&ObjectIdentifier>,
) -> Result<VerifiedChain, ChainError> {
    let leaf = parse_cert(leaf_der, "the leaf")?;
    let subject = readable_name(leaf.subject());
    check_time(&leaf, at_unix)?;
    if let Some(eku) = required_eku {
        if !has_eku(&leaf, eku)? {
            return Err(ChainError::EkuMissing {
                subject,
                eku: eku.to_string(),
            });
        }
    }
    let anchor_certs = parse_all(&anchors.certs, "a trust anchor")?;
    let intermediate_certs = parse_all(intermediates, "an intermediate")?;
    let mut path = vec![leaf];
    extend_to_anchor(&mut path, &intermediate_certs, &anchor_certs, at_unix)?;
    let revocation = revocation(&path, anchors, at_unix)?;
    Ok(VerifiedChain {
        subject,
        chain_der: path.iter().map(|c| c.as_raw().to_vec()).collect(),
        revocation,
    })
}

/// The subject of a certificate given in DER, readable as in [`VerifiedChain::subject`]; for
/// naming a signer whose chain did not verify.
pub fn subject_of(cert_der: &[u8]) -> Option<String> {
    X509Certificate::from_der(cert_der)
        .ok()
        .map(|(_, c)| readable_name(c.subject()))
}

/// Depth-first search from the last certificate of `path` to an anchor; on failure, the most
/// telling error met (a bad signature or an expired CA says more than "unknown issuer").
fn extend_to_anchor<'a>(
    path: &mut Vec<X509Certificate<'a>>,
    intermediates: &[X509Certificate<'a>],
    anchors: &[X509Certificate<'a>],
    at: i64,
) -> Result<(), ChainError> {
    let Some(current) = path.last().cloned() else {
        return Err(ChainError::TooLong);
    };
    if anchors.iter().any(|a| a.as_raw() == current.as_raw()) {
        return Ok(());
    }
    if path.len() >= MAX_CHAIN_LENGTH {
        return Err(ChainError::TooLong);
    }
    let mut best: Option<ChainError> = None;
    for anchor in anchors.iter().filter(|a| issued(a, &current)) {
        match check_signature(&current, anchor) {
            Ok(()) => {
                path.push(anchor.clone());
                return Ok(());
            }
            Err(e) => best = Some(e),
        }
    }
    for ca in intermediates.iter().filter(|c| issued(c, &current)) {
        if path.iter().any(|p| p.as_raw() == ca.as_raw()) {
            continue;
        }
        let step = check_signature(&current, ca)
            .and_then(|()| check_time(ca, at))
            .and_then(|()| check_ca(ca, path.len() - 1));
        if let Err(e) = step {
            best = Some(e);
            continue;
        }
        path.push(ca.clone());
        match extend_to_anchor(path, intermediates, anchors, at) {
            Ok(()) => return Ok(()),
            Err(e) => {
                path.pop();
                if best.is_none() || !matches!(e, ChainError::UnknownIssuer { .. }) {
                    best = Some(e);
                }
            }
        }
    }
    Err(best.unwrap_or_else(|| ChainError::UnknownIssuer {
        subject: readable_name(current.subject()),
        issuer: readable_name(current.issuer()),
    }))
}

fn issued(issuer: &X509Certificate<'_>, cert: &X509Certificate<'_>) -> bool {
    issuer.subject().as_raw() == cert.issuer().as_raw()
}

fn check_signature(
    cert: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
) -> Result<(), ChainError> {
    match cert.verify_signature(Some(issuer.public_key())) {
        Ok(()) => Ok(()),
        Err(X509Error::SignatureUnsupportedAlgorithm) => Err(ChainError::UnsupportedAlgorithm {
            subject: readable_name(cert.subject()),
            algorithm: cert.signature_algorithm.algorithm.to_id_string(),
        }),
        Err(_) => Err(ChainError::BadSignature {
            subject: readable_name(cert.subject()),
            issuer: readable_name(issuer.subject()),
        }),
    }
}

fn check_time(cert: &X509Certificate<'_>, at: i64) -> Result<(), ChainError> {
    let validity = cert.validity();
    let not_before = validity.not_before.timestamp();
    let not_after = validity.not_after.timestamp();
    if at < not_before {
        return Err(ChainError::NotYetValid {
            subject: readable_name(cert.subject()),
            not_before,
            at,
        });
    }
    if at > not_after {
        return Err(ChainError::Expired {
            subject: readable_name(cert.subject()),
            not_after,
            at,
        });
    }
    Ok(())
}

/// `below`: how many intermediates the chain already holds under this CA.
fn check_ca(ca: &X509Certificate<'_>, below: usize) -> Result<(), ChainError> {
    let not_ca = |reason: &str| ChainError::NotCa {
        subject: readable_name(ca.subject()),
        reason: reason.to_string(),
    };
    match ca.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => {
            if let Some(max) = bc.value.path_len_constraint {
                if below > max as usize {
                    return Err(not_ca("its path length constraint is exceeded"));
                }
            }
        }
        Ok(_) => return Err(not_ca("basicConstraints does not say CA")),
        Err(_) => return Err(not_ca("its basicConstraints are unreadable")),
    }
    match ca.key_usage() {
        Ok(Some(ku)) if !ku.value.key_cert_sign() => Err(not_ca("its keyUsage lacks keyCertSign")),
        Ok(_) => Ok(()),
        Err(_) => Err(not_ca("its keyUsage is unreadable")),
    }
}

fn has_eku(cert: &X509Certificate<'_>, wanted: &ObjectIdentifier) -> Result<bool, ChainError> {
    use const_oid::db::rfc5280 as kp;
    let eku = match cert.extended_key_usage() {
        Ok(Some(e)) => e.value,
        Ok(None) => return Ok(false),
        Err(e) => {
            return Err(ChainError::BadCertificate {
                what: readable_name(cert.subject()),
                reason: format!("extended key usage: {e}"),
            })
        }
    };
    let named = [
        (eku.server_auth, kp::ID_KP_SERVER_AUTH),
        (eku.client_auth, kp::ID_KP_CLIENT_AUTH),
        (eku.code_signing, kp::ID_KP_CODE_SIGNING),
        (eku.email_protection, kp::ID_KP_EMAIL_PROTECTION),
        (eku.time_stamping, kp::ID_KP_TIME_STAMPING),
        (eku.ocsp_signing, kp::ID_KP_OCSP_SIGNING),
    ];
    Ok(named.iter().any(|(set, oid)| *set && oid == wanted)
        || eku.other.iter().any(|o| o.as_bytes() == wanted.as_bytes()))
}

/// What the anchors' CRLs say about each certificate under the anchor: one that applies is
/// named for the certificate's issuer and signed by the issuer's key in the chain.
fn revocation(
    path: &[X509Certificate<'_>],
    anchors: &Anchors,
    at: i64,
) -> Result<Revocation, ChainError> {
    let mut crls = Vec::with_capacity(anchors.crls.len());
    for (i, der) in anchors.crls.iter().enumerate() {
        let crl = CertificateRevocationList::from_der(der)
            .map(|(_, c)| c)
            .map_err(|e| ChainError::BadCrl {
                index: i + 1,
                reason: e.to_string(),
            })?;
        crls.push(crl);
    }
    let mut state = Revocation::Good;
    for pair in path.windows(2) {
        let [cert, issuer] = pair else { continue };
        let applicable: Vec<&CertificateRevocationList<'_>> = crls
            .iter()
            .filter(|crl| crl.issuer().as_raw() == cert.issuer().as_raw())
            .filter(|crl| crl.verify_signature(issuer.public_key()).is_ok())
            .collect();
        if applicable.is_empty() {
            state = Revocation::Unknown;
            continue;
        }
        let revoked_at = applicable
            .iter()
            .flat_map(|crl| crl.iter_revoked_certificates())
            .filter(|r| r.raw_serial() == cert.raw_serial())
            .map(|r| r.revocation_date.timestamp())
            .min();
        match revoked_at {
            Some(when) if when <= at => {
                return Err(ChainError::Revoked {
                    subject: readable_name(cert.subject()),
                    revoked_at: when,
                    at,
                })
            }
            Some(when) => {
                state = match state {
                    Revocation::Revoked { at_unix } => Revocation::Revoked {
                        at_unix: at_unix.min(when),
                    },
                    _ => Revocation::Revoked { at_unix: when },
                }
            }
            None => {}
        }
    }
    Ok(state)
}

fn certificates_from_pem(pem: &[u8], what: &str) -> Result<Vec<Vec<u8>>, ChainError> {
    let mut certs = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| ChainError::BadCertificate {
            what: what.to_string(),
            reason: format!("PEM: {e}"),
        })?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        parse_cert(&block.contents, what)?;
        certs.push(block.contents);
    }
    Ok(certs)
}

fn parse_cert<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>, ChainError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(ChainError::BadCertificate {
            what: what.to_string(),
            reason: "bytes after the certificate".into(),
        }),
        Err(e) => Err(ChainError::BadCertificate {
            what: what.to_string(),
            reason: e.to_string(),
        }),
    }
}

fn parse_all<'a>(ders: &'a [Vec<u8>], what: &str) -> Result<Vec<X509Certificate<'a>>, ChainError> {
    ders.iter().map(|d| parse_cert(d, what)).collect()
}

fn parse_crl(der: &[u8]) -> Result<(), String> {
    match CertificateRevocationList::from_der(der) {
        Ok(([], _)) => Ok(()),
        Ok(_) => Err("bytes after the CRL".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A Unix time as `2025-03-01 08:30:00 UTC`, for messages and reports.
pub fn utc(at: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| format!("{at} (Unix seconds)"))
}

/// `CN value, O=..., C=...`: the common name first, then the other attributes in order.
fn readable_name(name: &X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let mut cn = Vec::new();
    let mut rest = Vec::new();
    for atv in name.iter_rdn().flat_map(|rdn| rdn.iter()) {
        let value = match atv.as_str() {
            Ok(s) => s.to_string(),
            Err(_) => format!("#{}", hex::encode(atv.attr_value().data)),
        };
        if atv.attr_type() == &x509_parser::oid_registry::OID_X509_COMMON_NAME {
            cn.push(value);
        } else {
            let key = x509_parser::objects::oid2abbrev(atv.attr_type(), registry)
                .map(str::to_string)
                .unwrap_or_else(|_| atv.attr_type().to_id_string());
            rest.push(format!("{key}={value}"));
        }
    }
    cn.extend(rest);
    if cn.is_empty() {
        "(empty name)".into()
    } else {
        cn.join(", ")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
        DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose,
        RevokedCertParams, SerialNumber,
    };

    /// 2025-01-01, 2025-06-01 and 2026-01-01, Unix seconds.
    const JAN_2025: i64 = 1_735_689_600;
    const JUN_2025: i64 = 1_748_736_000;
    const JAN_2026: i64 = 1_767_225_600;

    fn params(cn: &str, ca: bool, serial: u64) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name.push(DnType::CountryName, "VN");
        p.not_before = rcgen::date_time_ymd(2024, 1, 1);
        p.not_after = rcgen::date_time_ymd(2030, 1, 1);
        p.serial_number = Some(SerialNumber::from(serial));
        if ca {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        }
        p
    }

    struct Pki {
        root: CertifiedIssuer<'static, KeyPair>,
        inter: CertifiedIssuer<'static, KeyPair>,
    }

    fn pki() -> Pki {
        let root =
            CertifiedIssuer::self_signed(params("Root", true, 1), KeyPair::generate().unwrap())
                .unwrap();
        let inter = CertifiedIssuer::signed_by(
            params("Inter", true, 2),
            KeyPair::generate().unwrap(),
            &root,
        )
        .unwrap();
        Pki { root, inter }
    }

    fn leaf(issuer: &CertifiedIssuer<'_, KeyPair>, p: CertificateParams) -> Vec<u8> {
        p.signed_by(&KeyPair::generate().unwrap(), issuer)
            .unwrap()
            .der()
            .to_vec()
    }

    fn anchors(pki: &Pki) -> Anchors {
        Anchors::from_pem(pki.root.pem().as_bytes()).unwrap()
    }

    fn crl(issuer: &CertifiedIssuer<'_, KeyPair>, revoked: &[(u64, i64)]) -> Vec<u8> {
        CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2025, 1, 1),
            next_update: rcgen::date_time_ymd(2027, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|&(serial, at)| RevokedCertParams {
                    serial_number: SerialNumber::from(serial),
                    revocation_time: time::OffsetDateTime::from_unix_timestamp(at).unwrap(),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(issuer)
        .unwrap()
        .der()
        .to_vec()
    }

    #[test]
    fn a_chain_through_an_intermediate_verifies() {
        let pki = pki();
        let leaf = leaf(&pki.inter, params("Nguyễn Văn An", false, 10));
        let inter = vec![pki.inter.der().to_vec()];
        let v = verify_chain(&leaf, &inter, &anchors(&pki), JUN_2025, None).unwrap();
        assert_eq!(v.subject, "Nguyễn Văn An, C=VN");
        assert_eq!(v.chain_der.len(), 3);
        assert_eq!(v.chain_der[2], pki.root.der().to_vec());
        assert_eq!(v.revocation, Revocation::Unknown);
        // An intermediate given as an anchor ends the chain there.
        let at_inter = Anchors::from_pem(pki.inter.pem().as_bytes()).unwrap();
        let v = verify_chain(&leaf, &[], &at_inter, JUN_2025, None).unwrap();
        assert_eq!(v.chain_der.len(), 2);
    }

    #[test]
    fn a_missing_intermediate_is_an_unknown_issuer() {
        let pki = pki();
        let leaf = leaf(&pki.inter, params("Leaf", false, 10));
        let e = verify_chain(&leaf, &[], &anchors(&pki), JUN_2025, None).unwrap_err();
        assert!(
            matches!(e, ChainError::UnknownIssuer { ref issuer, .. } if issuer == "Inter, C=VN"),
            "{e}"
        );
    }

    #[test]
    fn validity_is_judged_at_the_time_asked() {
        let pki = pki();
        let mut p = params("Leaf", false, 10);
        p.not_before = rcgen::date_time_ymd(2025, 1, 1);
        p.not_after = rcgen::date_time_ymd(2025, 12, 31);
        let leaf = leaf(&pki.inter, p);
        let inter = vec![pki.inter.der().to_vec()];
        let a = anchors(&pki);
        assert!(verify_chain(&leaf, &inter, &a, JUN_2025, None).is_ok());
        let e = verify_chain(&leaf, &inter, &a, JAN_2026, None).unwrap_err();
        assert!(matches!(e, ChainError::Expired { .. }), "{e}");
        assert!(e.to_string().contains("2026-01-01 00:00:00 UTC"), "{e}");
        let e = verify_chain(&leaf, &inter, &a, JAN_2025 - 1, None).unwrap_err();
        assert!(matches!(e, ChainError::NotYetValid { .. }), "{e}");
    }

    #[test]
    fn a_forged_issuer_of_the_same_name_is_a_bad_signature() {
        let pki = pki();
        let forged =
            CertifiedIssuer::self_signed(params("Inter", true, 2), KeyPair::generate().unwrap())
                .unwrap();
        let leaf = leaf(&forged, params("Leaf", false, 10));
        let inter = vec![pki.inter.der().to_vec()];
        let e = verify_chain(&leaf, &inter, &anchors(&pki), JUN_2025, None).unwrap_err();
        assert!(matches!(e, ChainError::BadSignature { .. }), "{e}");
    }

    #[test]
    fn an_issuer_that_is_not_a_ca_is_refused() {
        let pki = pki();
        let not_ca = CertifiedIssuer::signed_by(
            params("Clerk", false, 3),
            KeyPair::generate().unwrap(),
            &pki.inter,
        )
        .unwrap();
        let leaf = leaf(&not_ca, params("Leaf", false, 10));
        let inter = vec![pki.inter.der().to_vec(), not_ca.der().to_vec()];
        let e = verify_chain(&leaf, &inter, &anchors(&pki), JUN_2025, None).unwrap_err();
        assert!(matches!(e, ChainError::NotCa { .. }), "{e}");
    }

    #[test]
    fn the_extended_key_usage_asked_for_must_be_there() {
        let pki = pki();
        let tsp = const_oid::db::rfc5280::ID_KP_TIME_STAMPING;
        let mut p = params("TSA", false, 10);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::TimeStamping];
        let tsa = leaf(&pki.root, p);
        let plain = leaf(&pki.root, params("Leaf", false, 11));
        let a = anchors(&pki);
        assert!(verify_chain(&tsa, &[], &a, JUN_2025, Some(&tsp)).is_ok());
        let e = verify_chain(&plain, &[], &a, JUN_2025, Some(&tsp)).unwrap_err();
        assert!(matches!(e, ChainError::EkuMissing { .. }), "{e}");
        let mut p = params("Other", false, 12);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::Other(vec![1, 2, 3, 4])];
        let other = leaf(&pki.root, p);
        let wanted = ObjectIdentifier::new_unwrap("1.2.3.4");
        assert!(verify_chain(&other, &[], &a, JUN_2025, Some(&wanted)).is_ok());
    }

    #[test]
    fn crls_revoke_from_their_date_on() {
        let pki = pki();
        let leaf = leaf(&pki.inter, params("Leaf", false, 10));
        let inter = vec![pki.inter.der().to_vec()];
        let crls = vec![crl(&pki.inter, &[(10, JUN_2025)]), crl(&pki.root, &[])];
        let a = anchors(&pki).with_crls_der(crls).unwrap();
        let e = verify_chain(&leaf, &inter, &a, JAN_2026, None).unwrap_err();
        assert!(
            matches!(e, ChainError::Revoked { revoked_at, .. } if revoked_at == JUN_2025),
            "{e}"
        );
        let v = verify_chain(&leaf, &inter, &a, JAN_2025, None).unwrap();
        assert_eq!(v.revocation, Revocation::Revoked { at_unix: JUN_2025 });
        let other = leaf_with_serial(&pki, 11);
        let v = verify_chain(&other, &inter, &a, JAN_2026, None).unwrap();
        assert_eq!(v.revocation, Revocation::Good);
    }

    fn leaf_with_serial(pki: &Pki, serial: u64) -> Vec<u8> {
        leaf(&pki.inter, params("Other", false, serial))
    }

    #[test]
    fn a_crl_signed_by_another_key_does_not_count() {
        let pki = pki();
        let forged =
            CertifiedIssuer::self_signed(params("Inter", true, 2), KeyPair::generate().unwrap())
                .unwrap();
        let leaf = leaf(&pki.inter, params("Leaf", false, 10));
        let inter = vec![pki.inter.der().to_vec()];
        let a = anchors(&pki)
            .with_crls_der(vec![crl(&forged, &[(10, JAN_2025)])])
            .unwrap();
        let v = verify_chain(&leaf, &inter, &a, JAN_2026, None).unwrap();
        assert_eq!(v.revocation, Revocation::Unknown);
    }

    #[test]
    fn unusable_anchors_and_crls_are_errors() {
        assert_eq!(Anchors::from_pem(b"").unwrap_err(), ChainError::NoAnchors);
        let bad = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            Anchors::from_pem(bad).unwrap_err(),
            ChainError::BadCertificate { .. }
        ));
        let pki = pki();
        let e = anchors(&pki)
            .with_crls_der(vec![vec![0x30, 0x00]])
            .unwrap_err();
        assert!(matches!(e, ChainError::BadCrl { index: 1, .. }), "{e}");
        let e = Anchors::from_pem_files(&[PathBuf::from("/nonexistent/ca.pem")]).unwrap_err();
        assert!(matches!(e, ChainError::Read { .. }), "{e}");
        let e = verify_chain(b"junk", &[], &anchors(&pki), JUN_2025, None).unwrap_err();
        assert!(matches!(e, ChainError::BadCertificate { .. }), "{e}");
    }
}
