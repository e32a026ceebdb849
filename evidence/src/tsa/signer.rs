//! The signature of a token's signer over its signed attributes, checked with ring: which
//! digest and signature algorithms are taken, and with which key.
//!
//! Taken: ECDSA on P-256 or P-384 with SHA-256 or SHA-384, and RSA PKCS#1 v1.5 (2048 to 8192
//! bits) with SHA-256, SHA-384 or SHA-512; the signature algorithm may be written either as the
//! combined OID (`ecdsa-with-SHA256`, `sha256WithRSAEncryption`) or as the key's OID
//! (`id-ecPublicKey`, `rsaEncryption`) with the hash taken from the signer's digest algorithm.
//! Not taken (a clear refusal, not a failed check): RSA-PSS, Ed25519, SHA-1.

use cms::signed_data::SignerInfo;
use const_oid::db::rfc5912::{
    ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, ECDSA_WITH_SHA_512, ID_EC_PUBLIC_KEY, ID_SHA_256,
    ID_SHA_384, ID_SHA_512, RSA_ENCRYPTION, SECP_256_R_1, SECP_384_R_1,
    SHA_256_WITH_RSA_ENCRYPTION, SHA_384_WITH_RSA_ENCRYPTION, SHA_512_WITH_RSA_ENCRYPTION,
};
use const_oid::ObjectIdentifier;
use ring::{digest, signature};
use x509_cert::Certificate;

use super::TsaError;

/// A hash taken for message digests and signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    /// The hash an OID names, or an error naming `what` used it.
    pub(crate) fn from_oid(oid: &ObjectIdentifier, what: &'static str) -> Result<Hash, TsaError> {
        match *oid {
            ID_SHA_256 => Ok(Hash::Sha256),
            ID_SHA_384 => Ok(Hash::Sha384),
            ID_SHA_512 => Ok(Hash::Sha512),
            _ => Err(TsaError::UnsupportedDigest {
                what,
                algorithm: oid.to_string(),
            }),
        }
    }

    /// The digest of `data`.
    pub(crate) fn digest(self, data: &[u8]) -> digest::Digest {
        let alg = match self {
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha384 => &digest::SHA384,
            Hash::Sha512 => &digest::SHA512,
        };
        digest::digest(alg, data)
    }
}

/// The kind of key a signature algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Ec,
    Rsa,
}

/// Verifies the signer's signature over `signed_attrs` (the DER of the signed attributes as a
/// SET) with the public key of `cert`.
pub(crate) fn verify(
    signer: &SignerInfo,
    cert: &Certificate,
    signed_attrs: &[u8],
    signer_name: &str,
) -> Result<(), TsaError> {
    let sig_oid = signer.signature_algorithm.oid;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let unsupported = || TsaError::UnsupportedSignature {
        algorithm: sig_oid.to_string(),
        key: spki.algorithm.oid.to_string(),
    };
    let (kind, hash) = match sig_oid {
        ECDSA_WITH_SHA_256 => (KeyKind::Ec, Hash::Sha256),
        ECDSA_WITH_SHA_384 => (KeyKind::Ec, Hash::Sha384),
        ECDSA_WITH_SHA_512 => (KeyKind::Ec, Hash::Sha512),
        SHA_256_WITH_RSA_ENCRYPTION => (KeyKind::Rsa, Hash::Sha256),
        SHA_384_WITH_RSA_ENCRYPTION => (KeyKind::Rsa, Hash::Sha384),
        SHA_512_WITH_RSA_ENCRYPTION => (KeyKind::Rsa, Hash::Sha512),
        ID_EC_PUBLIC_KEY => (
            KeyKind::Ec,
            Hash::from_oid(&signer.digest_alg.oid, "the signer's digest")?,
        ),
        RSA_ENCRYPTION => (
            KeyKind::Rsa,
            Hash::from_oid(&signer.digest_alg.oid, "the signer's digest")?,
        ),
        _ => return Err(unsupported()),
    };
    let algorithm: &'static dyn signature::VerificationAlgorithm = match (kind, spki.algorithm.oid)
    {
        (KeyKind::Rsa, RSA_ENCRYPTION) => match hash {
            Hash::Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Hash::Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Hash::Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        },
        (KeyKind::Ec, ID_EC_PUBLIC_KEY) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            match (curve, hash) {
                (Some(SECP_256_R_1), Hash::Sha256) => &signature::ECDSA_P256_SHA256_ASN1,
                (Some(SECP_256_R_1), Hash::Sha384) => &signature::ECDSA_P256_SHA384_ASN1,
                (Some(SECP_384_R_1), Hash::Sha256) => &signature::ECDSA_P384_SHA256_ASN1,
                (Some(SECP_384_R_1), Hash::Sha384) => &signature::ECDSA_P384_SHA384_ASN1,
                _ => return Err(unsupported()),
            }
        }
        _ => return Err(unsupported()),
    };
    let key = spki.subject_public_key.as_bytes().ok_or_else(unsupported)?;
    signature::UnparsedPublicKey::new(algorithm, key)
        .verify(signed_attrs, signer.signature.as_bytes())
        .map_err(|_| TsaError::BadSignature {
            signer: signer_name.to_owned(),
        })
}
