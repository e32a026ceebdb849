//! Signing envelopes and receipts with an agency's key, and verifying them.
//!
//! # Signing bytes
//! The signature covers the message
//! `DOMAIN || algorithm name || 0x00 || signing time (i64 big-endian, unix ms) || SHA-256(H)`
//! where `DOMAIN` is `b"lienthong.v1.envelope\0"` (or `receipt`, `summary`, `attestation` in
//! place of `envelope`) and `H` is the
//! protobuf encoding (prost, fields in number order) of the message with its `signature` cleared
//! and, for envelopes, its `trace` (each hop appends to it) and `time_stamp` (added after
//! signing, over the signature) cleared. The attachment
//! manifest, with each attachment's SHA-256, is part of `H`, so the attachment bytes are covered.
//!
//! # Verification
//! [`Verifier::verify_envelope`] checks the certificate chain through [`TrustStore`], that the
//! certificate names the header's sender, and the signature. Only it makes a [`Verified`], so code
//! that takes a `Verified<Envelope>` cannot be handed an unchecked one.

use std::path::Path;
use std::sync::Arc;

use lienthong_proto::v1::{
    Envelope, NodeAttestation, NodeDetail, Signature, SignedSummary, StatusReceipt,
};
use prost::Message;
use ring::rand::SystemRandom;
use ring::signature::{self as rsig, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use crate::agency::AgencyCode;
use crate::trust::{self, CertError, TrustStore, Usage};

/// Algorithm name for ECDSA P-256 with SHA-256 (ASN.1 DER signature).
pub const ALG_ECDSA_P256_SHA256: &str = "ECDSA_P256_SHA256";
/// Algorithm name for RSA PKCS#1 v1.5 with SHA-256.
pub const ALG_RSA_PKCS1_SHA256: &str = "RSA_PKCS1_SHA256";
/// Most certificates accepted in a signature's chain.
pub const MAX_CHAIN_CERTS: usize = 4;

const ENVELOPE_DOMAIN: &[u8] = b"lienthong.v1.envelope\0";
const RECEIPT_DOMAIN: &[u8] = b"lienthong.v1.receipt\0";
const SUMMARY_DOMAIN: &[u8] = b"lienthong.v1.summary\0";
const ATTESTATION_DOMAIN: &[u8] = b"lienthong.v1.attestation\0";
const DETAIL_DOMAIN: &[u8] = b"lienthong.v1.node_detail\0";

/// A message signed as a whole by one agency, its signature in one of its fields: daily
/// summaries (signed by the agency described) and node attestations (signed by the node).
pub trait SignedItem: Message + Clone {
    /// The domain that starts its signing bytes.
    const DOMAIN: &'static [u8];
    /// Its signature field.
    fn signature_slot(&mut self) -> &mut Option<Signature>;
    /// Its signature.
    fn signature_ref(&self) -> Option<&Signature>;
    /// The agency whose certificate must sign it.
    fn signing_agency(&self) -> String;
}

impl SignedItem for SignedSummary {
    const DOMAIN: &'static [u8] = SUMMARY_DOMAIN;
    fn signature_slot(&mut self) -> &mut Option<Signature> {
        &mut self.signature
    }
    fn signature_ref(&self) -> Option<&Signature> {
        self.signature.as_ref()
    }
    fn signing_agency(&self) -> String {
        self.summary
            .as_ref()
            .map(|d| d.agency.clone())
            .unwrap_or_default()
    }
}

impl SignedItem for NodeAttestation {
    const DOMAIN: &'static [u8] = ATTESTATION_DOMAIN;
    fn signature_slot(&mut self) -> &mut Option<Signature> {
        &mut self.signature
    }
    fn signature_ref(&self) -> Option<&Signature> {
        self.signature.as_ref()
    }
    fn signing_agency(&self) -> String {
        self.node.clone()
    }
}

impl SignedItem for NodeDetail {
    const DOMAIN: &'static [u8] = DETAIL_DOMAIN;
    fn signature_slot(&mut self) -> &mut Option<Signature> {
        &mut self.signature
    }
    fn signature_ref(&self) -> Option<&Signature> {
        self.signature.as_ref()
    }
    fn signing_agency(&self) -> String {
        self.node.clone()
    }
}

/// Errors loading a signing key or signing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigningError {
    /// Certificate problem.
    #[error(transparent)]
    Trust(#[from] trust::TrustError),
    /// The certificate does not name an agency.
    #[error("{0}")]
    Certificate(#[from] CertError),
    /// Key file unreadable or not PKCS#8.
    #[error("{path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The key does not belong to the certificate.
    #[error("the private key does not match the certificate")]
    KeyMismatch,
    /// The crypto library failed to sign.
    #[error("signing failed")]
    Sign,
}

/// Why a signed envelope or receipt is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No signature block, or an empty value or chain.
    #[error("unsigned: {0}")]
    Unsigned(&'static str),
    /// Unknown algorithm name.
    #[error("unsupported signature algorithm {0:?}")]
    UnknownAlgorithm(String),
    /// Too many certificates in the chain.
    #[error("signature chain has {0} certificates; at most {MAX_CHAIN_CERTS} are allowed")]
    ChainTooLong(usize),
    /// The signer's certificate failed the chain check.
    #[error("signer certificate: {0}")]
    Certificate(CertError),
    /// The certificate names another agency than the header's sender.
    #[error("signed by {certificate} but the header's sender is {header}")]
    SignerMismatch {
        /// The header's From code.
        header: String,
        /// The agency the certificate names.
        certificate: AgencyCode,
    },
    /// The signature value does not verify over the signing bytes (tampered or wrong key).
    #[error("signature does not verify: the document was altered or signed with another key")]
    BadSignature,
}

enum Key {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// An agency's signing key and certificate chain.
pub struct AgencySigner {
    agency: AgencyCode,
    chain: Vec<CertificateDer<'static>>,
    key: Key,
    rng: SystemRandom,
}

impl std::fmt::Debug for AgencySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgencySigner")
            .field("agency", &self.agency)
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl AgencySigner {
    /// Loads a certificate chain (PEM) and its PKCS#8 private key (PEM).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, SigningError> {
        Self::load_with(cert_path, key_path, &trust::AgencyField::SanUri)
    }

    /// The same, for certificates that name their agency where `field` says.
    pub fn load_with(
        cert_path: &Path,
        key_path: &Path,
        field: &trust::AgencyField,
    ) -> Result<Self, SigningError> {
        let chain = trust::load_certs(cert_path)?;
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| SigningError::Key {
            path: key_path.display().to_string(),
            reason: e.to_string(),
        })?;
        let PrivateKeyDer::Pkcs8(pkcs8) = key else {
            return Err(SigningError::Key {
                path: key_path.display().to_string(),
                reason: "not a PKCS#8 key (BEGIN PRIVATE KEY)".into(),
            });
        };
        Self::from_der_with(chain, pkcs8.secret_pkcs8_der(), field).map_err(|e| match e {
            SigningError::Key { reason, .. } => SigningError::Key {
                path: key_path.display().to_string(),
                reason,
            },
            other => other,
        })
    }

    /// Builds a signer from a DER chain and a PKCS#8 DER key.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        pkcs8: &[u8],
    ) -> Result<Self, SigningError> {
        Self::from_der_with(chain, pkcs8, &trust::AgencyField::SanUri)
    }

    /// The same, for a certificate that names its agency where `field` says.
    pub fn from_der_with(
        chain: Vec<CertificateDer<'static>>,
        pkcs8: &[u8],
        field: &trust::AgencyField,
    ) -> Result<Self, SigningError> {
        let end = chain.first().ok_or(CertError::NoCertificate)?;
        let (agency, _, _) = trust::inspect_with(end, field)?;
        let rng = SystemRandom::new();
        let key = if let Ok(k) =
            EcdsaKeyPair::from_pkcs8(&rsig::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &rng)
        {
            Key::Ecdsa(k)
        } else {
            let k = RsaKeyPair::from_pkcs8(pkcs8).map_err(|e| SigningError::Key {
                path: String::new(),
                reason: format!("neither an ECDSA P-256 nor an RSA PKCS#8 key ({e})"),
            })?;
            Key::Rsa(k)
        };
        let public = match &key {
            Key::Ecdsa(k) => k.public_key().as_ref().to_vec(),
            Key::Rsa(k) => k.public_key().as_ref().to_vec(),
        };
        let (_, cert) = x509_parser::parse_x509_certificate(end)
            .map_err(|e| CertError::Malformed(e.to_string()))?;
        if cert.public_key().subject_public_key.data.as_ref() != public.as_slice() {
            return Err(SigningError::KeyMismatch);
        }
        Ok(Self {
            agency,
            chain,
            key,
            rng,
        })
    }

    /// The agency this signer signs for.
    pub fn agency(&self) -> &AgencyCode {
        &self.agency
    }

    /// The key size in bits (256 for ECDSA P-256, the modulus length for RSA).
    pub fn key_bits(&self) -> usize {
        match &self.key {
            Key::Ecdsa(_) => 256,
            Key::Rsa(k) => k.public().modulus_len() * 8,
        }
    }

    /// The algorithm name written into signatures.
    pub fn algorithm(&self) -> &'static str {
        match self.key {
            Key::Ecdsa(_) => ALG_ECDSA_P256_SHA256,
            Key::Rsa(_) => ALG_RSA_PKCS1_SHA256,
        }
    }

    fn sign_message(&self, msg: &[u8]) -> Result<Vec<u8>, SigningError> {
        match &self.key {
            Key::Ecdsa(k) => k
                .sign(&self.rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SigningError::Sign),
            Key::Rsa(k) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(&rsig::RSA_PKCS1_SHA256, &self.rng, msg, &mut sig)
                    .map_err(|_| SigningError::Sign)?;
                Ok(sig)
            }
        }
    }

    fn signature_block(&self, msg: &[u8], signing_unix_ms: i64) -> Result<Signature, SigningError> {
        Ok(Signature {
            algorithm: self.algorithm().to_owned(),
            certificate_chain: self.chain.iter().map(|c| c.as_ref().to_vec()).collect(),
            value: self.sign_message(msg)?,
            signing_unix_ms,
        })
    }

    /// Signs `env` in place (replacing any previous signature).
    pub fn sign_envelope(
        &self,
        env: &mut Envelope,
        signing_unix_ms: i64,
    ) -> Result<(), SigningError> {
        let msg = envelope_signing_message(env, self.algorithm(), signing_unix_ms);
        env.signature = Some(self.signature_block(&msg, signing_unix_ms)?);
        Ok(())
    }

    /// Signs a daily summary or a node attestation in place.
    pub fn sign_item<T: SignedItem>(
        &self,
        item: &mut T,
        signing_unix_ms: i64,
    ) -> Result<(), SigningError> {
        let msg = item_signing_message(item, self.algorithm(), signing_unix_ms);
        *item.signature_slot() = Some(self.signature_block(&msg, signing_unix_ms)?);
        Ok(())
    }

    /// Signs a receipt in place.
    pub fn sign_receipt(
        &self,
        r: &mut StatusReceipt,
        signing_unix_ms: i64,
    ) -> Result<(), SigningError> {
        let msg = receipt_signing_message(r, self.algorithm(), signing_unix_ms);
        r.signature = Some(self.signature_block(&msg, signing_unix_ms)?);
        Ok(())
    }
}

fn message(domain: &[u8], algorithm: &str, signing_unix_ms: i64, encoded: &[u8]) -> Vec<u8> {
    let digest = ring::digest::digest(&ring::digest::SHA256, encoded);
    let mut msg = Vec::with_capacity(domain.len() + algorithm.len() + 1 + 8 + 32);
    msg.extend_from_slice(domain);
    msg.extend_from_slice(algorithm.as_bytes());
    msg.push(0);
    msg.extend_from_slice(&signing_unix_ms.to_be_bytes());
    msg.extend_from_slice(digest.as_ref());
    msg
}

/// The bytes an envelope signature covers (module doc, "Signing bytes").
pub fn envelope_signing_message(env: &Envelope, algorithm: &str, signing_unix_ms: i64) -> Vec<u8> {
    let mut cleared = env.clone();
    cleared.signature = None;
    cleared.trace.clear();
    cleared.time_stamp = None;
    message(
        ENVELOPE_DOMAIN,
        algorithm,
        signing_unix_ms,
        &cleared.encode_to_vec(),
    )
}

/// The bytes a receipt signature covers.
pub fn receipt_signing_message(
    r: &StatusReceipt,
    algorithm: &str,
    signing_unix_ms: i64,
) -> Vec<u8> {
    let mut cleared = r.clone();
    cleared.signature = None;
    message(
        RECEIPT_DOMAIN,
        algorithm,
        signing_unix_ms,
        &cleared.encode_to_vec(),
    )
}

/// The bytes the signature of a [`SignedItem`] covers (the message without its signature).
pub fn item_signing_message<T: SignedItem>(
    item: &T,
    algorithm: &str,
    signing_unix_ms: i64,
) -> Vec<u8> {
    let mut cleared = item.clone();
    *cleared.signature_slot() = None;
    message(
        T::DOMAIN,
        algorithm,
        signing_unix_ms,
        &cleared.encode_to_vec(),
    )
}

/// Proof that a value's signature was verified. Only this module constructs it.
#[derive(Debug, Clone)]
pub struct Verified<T> {
    inner: T,
    signer: AgencyCode,
    signed_sha256: [u8; 32],
}

impl<T> Verified<T> {
    /// The agency whose certificate signed it.
    pub fn signer(&self) -> &AgencyCode {
        &self.signer
    }
    /// SHA-256 of the signed message (the canonical signing message the signature covers):
    /// what identifies its signed content, for duplicate and replay detection.
    pub fn signed_sha256(&self) -> &[u8; 32] {
        &self.signed_sha256
    }
    /// Gives up the proof.
    pub fn into_inner(self) -> T {
        self.inner
    }
    /// Mutable access for fields outside the signature (the trace). Changing signed fields
    /// through it would make the next hop refuse the envelope.
    pub fn unsigned_fields_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T> std::ops::Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

/// How long a verified certificate chain is remembered.
pub const CHAIN_CACHE_TTL_SECS: u64 = 300;
/// Most chains remembered (the cache is cleared when full).
pub const CHAIN_CACHE_ENTRIES: usize = 10_000;

/// Verified chains by digest: the agency they name, when they were checked (unix s) and the
/// trust store's generation (its CRL) they were checked against.
type ChainCache = std::collections::HashMap<[u8; 32], (crate::trust::CertifiedAgency, u64, u64)>;

/// Verifies signatures against the interchange trust store.
///
/// A chain that passed the full check is remembered (by the SHA-256 of its DER) for
/// [`CHAIN_CACHE_TTL_SECS`], never past its notAfter and never past a change of the CRL in
/// force, so the per-document cost is one signature check.
#[derive(Debug, Clone)]
pub struct Verifier {
    trust: Arc<TrustStore>,
    /// Looked up and filled for microseconds per document: a std Mutex.
    chains: Arc<std::sync::Mutex<ChainCache>>,
}

impl Verifier {
    /// A verifier over `trust`.
    pub fn new(trust: Arc<TrustStore>) -> Self {
        Self {
            trust,
            chains: Arc::default(),
        }
    }

    fn verify_chain_cached(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<crate::trust::CertifiedAgency, CertError> {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for c in chain {
            ctx.update(&(c.len() as u64).to_be_bytes());
            ctx.update(c);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        let secs = now.as_secs();
        let generation = self.trust.generation();
        {
            let cache = match self.chains.lock() {
                Ok(c) => c,
                Err(p) => p.into_inner(),
            };
            if let Some((certified, checked, r#gen)) = cache.get(&key) {
                let fresh = secs >= *checked
                    && secs - checked < CHAIN_CACHE_TTL_SECS
                    && *r#gen == generation;
                if fresh && i64::try_from(secs).unwrap_or(i64::MAX) < certified.not_after {
                    return Ok(certified.clone());
                }
            }
        }
        let certified = self
            .trust
            .verify_chain(chain, Usage::DocumentSigning, now)?;
        let mut cache = match self.chains.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        if cache.len() >= CHAIN_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, (certified.clone(), secs, generation));
        Ok(certified)
    }

    /// The trust store.
    pub fn trust(&self) -> &Arc<TrustStore> {
        &self.trust
    }

    fn check(
        &self,
        sig: Option<&Signature>,
        sender: &str,
        msg: impl FnOnce(&str, i64) -> Vec<u8>,
        now: UnixTime,
    ) -> Result<(AgencyCode, [u8; 32]), VerifyError> {
        let sig = sig.ok_or(VerifyError::Unsigned("no signature block"))?;
        if sig.value.is_empty() {
            return Err(VerifyError::Unsigned("empty signature value"));
        }
        if sig.certificate_chain.is_empty() {
            return Err(VerifyError::Unsigned("no certificate chain"));
        }
        if sig.certificate_chain.len() > MAX_CHAIN_CERTS {
            return Err(VerifyError::ChainTooLong(sig.certificate_chain.len()));
        }
        let alg: &dyn rustls_pki_types::SignatureVerificationAlgorithm =
            match sig.algorithm.as_str() {
                ALG_ECDSA_P256_SHA256 => webpki::ring::ECDSA_P256_SHA256,
                ALG_RSA_PKCS1_SHA256 => webpki::ring::RSA_PKCS1_2048_8192_SHA256,
                other => return Err(VerifyError::UnknownAlgorithm(other.to_owned())),
            };
        let chain: Vec<CertificateDer<'_>> = sig
            .certificate_chain
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        let certified = self
            .verify_chain_cached(&chain, now)
            .map_err(VerifyError::Certificate)?;
        if certified.agency.as_str() != sender {
            return Err(VerifyError::SignerMismatch {
                header: sender.to_owned(),
                certificate: certified.agency,
            });
        }
        let ee = webpki::EndEntityCert::try_from(&chain[0])
            .map_err(|e| VerifyError::Certificate(CertError::Malformed(format!("{e:?}"))))?;
        let m = msg(&sig.algorithm, sig.signing_unix_ms);
        ee.verify_signature(alg, &m, &sig.value)
            .map_err(|_| VerifyError::BadSignature)?;
        let mut digest = [0u8; 32];
        digest.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, &m).as_ref());
        Ok((certified.agency, digest))
    }

    /// Verifies an envelope's signature, chain and signer agency.
    pub fn verify_envelope(
        &self,
        env: Envelope,
        now: UnixTime,
    ) -> Result<Verified<Envelope>, VerifyError> {
        let sender = env
            .from
            .as_ref()
            .map(|f| f.code.clone())
            .unwrap_or_default();
        let (signer, signed_sha256) = self.check(
            env.signature.as_ref(),
            &sender,
            |alg, t| envelope_signing_message(&env, alg, t),
            now,
        )?;
        Ok(Verified {
            inner: env,
            signer,
            signed_sha256,
        })
    }

    /// Verifies a daily summary or node attestation: signed by the agency it names.
    pub fn verify_item<T: SignedItem>(
        &self,
        item: T,
        now: UnixTime,
    ) -> Result<Verified<T>, VerifyError> {
        let agency = item.signing_agency();
        let (signer, signed_sha256) = self.check(
            item.signature_ref(),
            &agency,
            |alg, t| item_signing_message(&item, alg, t),
            now,
        )?;
        Ok(Verified {
            inner: item,
            signer,
            signed_sha256,
        })
    }

    /// Verifies a receipt's signature, chain and signer agency.
    pub fn verify_receipt(
        &self,
        r: StatusReceipt,
        now: UnixTime,
    ) -> Result<Verified<StatusReceipt>, VerifyError> {
        let sender = r.from.as_ref().map(|f| f.code.clone()).unwrap_or_default();
        let (signer, signed_sha256) = self.check(
            r.signature.as_ref(),
            &sender,
            |alg, t| receipt_signing_message(&r, alg, t),
            now,
        )?;
        Ok(Verified {
            inner: r,
            signer,
            signed_sha256,
        })
    }
}
