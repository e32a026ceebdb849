//! Revocation in the offline check of a bundle: the CRLs given (`proof verify --crl`), each
//! signed by a CA of the interchange's trust bundle, and for each certificate they list, the
//! time from which its signatures stop counting: its revocation, or the invalidity date it
//! gives (when the key was compromised), whichever is earlier. A signature made before that
//! time still holds; one made at it or after does not.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::text::vn_time;

/// A CRL file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationError {
    /// The file cannot be read, or holds no CRL.
    #[error("{path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A CRL in the file does not parse.
    #[error("{path}: not a CRL: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No CA of the trust bundle issued it, or its signature does not verify with the one that
    /// did.
    #[error("{path}: a CRL by {issuer}, which {reason}")]
    Issuer {
        /// The file.
        path: PathBuf,
        /// The CRL's issuer.
        issuer: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// One listed certificate: from when its signatures stop counting, and the CRL's issuer.
#[derive(Debug, Clone)]
struct Revoked {
    from_unix_ms: i64,
    issuer: String,
}

/// The certificates revoked by the CRLs given, by issuer and serial number.
#[derive(Debug, Clone, Default)]
pub struct Revocations {
    by_cert: HashMap<(Vec<u8>, Vec<u8>), Revoked>,
    /// Each CRL read: its issuer and when it was issued (unix ms).
    crls: Vec<(String, i64)>,
}

/// Unix ms of an ASN.1 time.
fn ms(t: x509_parser::time::ASN1Time) -> i64 {
    t.timestamp().saturating_mul(1000)
}

impl Revocations {
    /// Reads every CRL in `files` (PEM or DER) and checks each against the CA certificates
    /// `cas` (the trust bundle given with `--ca`).
    pub fn from_files(
        files: &[PathBuf],
        cas: &[CertificateDer<'_>],
    ) -> Result<Self, RevocationError> {
        let cas: Vec<_> = cas
            .iter()
            .filter_map(|c| x509_parser::parse_x509_certificate(c).ok().map(|(_, c)| c))
            .collect();
        let mut out = Self::default();
        for path in files {
            let ders = lienthong_evidence::chain::crls_from_file(path).map_err(|e| {
                RevocationError::Read {
                    path: path.clone(),
                    reason: e.to_string(),
                }
            })?;
            for der in ders {
                out.add(path, &der, &cas)?;
            }
        }
        Ok(out)
    }

    fn add(
        &mut self,
        path: &Path,
        der: &[u8],
        cas: &[x509_parser::certificate::X509Certificate<'_>],
    ) -> Result<(), RevocationError> {
        let (_, crl) =
            CertificateRevocationList::from_der(der).map_err(|e| RevocationError::Parse {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        let issuer = crl.issuer().to_string();
        let refused = |reason| RevocationError::Issuer {
            path: path.to_owned(),
            issuer: issuer.clone(),
            reason,
        };
        let ca = cas
            .iter()
            .find(|c| c.subject().as_raw() == crl.issuer().as_raw())
            .ok_or_else(|| refused("is not a CA of the trust bundle given with --ca"))?;
        crl.verify_signature(ca.public_key())
            .map_err(|_| refused("did not sign it: its signature does not verify"))?;
        for r in crl.iter_revoked_certificates() {
            let invalid_from = r
                .extensions()
                .iter()
                .find_map(|e| match e.parsed_extension() {
                    ParsedExtension::InvalidityDate(t) => Some(ms(*t)),
                    _ => None,
                });
            let from = invalid_from.map_or(ms(r.revocation_date), |i| i.min(ms(r.revocation_date)));
            let entry = self
                .by_cert
                .entry((crl.issuer().as_raw().to_vec(), r.raw_serial().to_vec()))
                .or_insert(Revoked {
                    from_unix_ms: from,
                    issuer: issuer.clone(),
                });
            entry.from_unix_ms = entry.from_unix_ms.min(from);
        }
        self.crls.push((issuer, ms(crl.last_update())));
        Ok(())
    }

    /// What the CRLs are: one line for the report.
    pub fn summary(&self) -> String {
        let crls: Vec<String> = self
            .crls
            .iter()
            .map(|(issuer, at)| format!("{issuer}, issued {}", vn_time(*at)))
            .collect();
        format!(
            "{} CRL(s) checked ({}), listing {} certificate(s)",
            self.crls.len(),
            crls.join("; "),
            self.by_cert.len()
        )
    }

    /// The check of a signature made at `signed_unix_ms` by the leaf of `chain` (DER, leaf
    /// first): `Err` naming the certificate when it, or a CA above it in the chain, was revoked
    /// by then; `Ok` with a remark when one was revoked only later.
    pub fn check(&self, chain: &[Vec<u8>], signed_unix_ms: i64) -> Result<String, String> {
        let mut later = Vec::new();
        for der in chain {
            let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
                continue;
            };
            let k = (cert.issuer().as_raw().to_vec(), cert.raw_serial().to_vec());
            let Some(r) = self.by_cert.get(&k) else {
                continue;
            };
            let who = format!(
                "the certificate {} (serial {})",
                cert.subject(),
                cert.raw_serial_as_string()
            );
            if r.from_unix_ms <= signed_unix_ms {
                return Err(format!(
                    "{who} was revoked by {} from {}, before it signed at {}",
                    r.issuer,
                    vn_time(r.from_unix_ms),
                    vn_time(signed_unix_ms)
                ));
            }
            later.push(format!(
                "{who} was revoked from {}, after it signed",
                vn_time(r.from_unix_ms)
            ));
        }
        Ok(if later.is_empty() {
            "; not revoked by the CRLs given".to_owned()
        } else {
            format!("; {}", later.join("; "))
        })
    }
}
