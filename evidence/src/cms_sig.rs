//! The one check of a CMS signer, shared by time-stamp tokens ([`crate::tsa`]) and the
//! signatures inside PDF files ([`crate::pdf`]): a SignedData with exactly one SignerInfo, in the
//! form RFC 5652 fixes, whose signed attributes name the content's type and hold its digest,
//! and whose signature over those attributes verifies with the signer's certificate.
//!
//! Taken: ECDSA on P-256 or P-384 with SHA-256 or SHA-384, and RSA PKCS#1 v1.5 (2048 to 8192
//! bits) with SHA-256, SHA-384 or SHA-512; the signature algorithm may be written either as the
//! combined OID (`ecdsa-with-SHA256`, `sha256WithRSAEncryption`) or as the key's OID
//! (`id-ecPublicKey`, `rsaEncryption`) with the hash taken from the signer's digest algorithm.
//! Not taken (a clear refusal, not a failed check): RSA-PSS, Ed25519, SHA-1, and a signer
//! without signed attributes (its signature would be over the content's digest itself, which
//! ring cannot take pre-hashed; every PDF signer and TSA writes signed attributes).
//!
//! What the signer's certificate is worth (its chain, its usage, the time) is the caller's
//! business.

use cms::cert::CertificateChoices;
use cms::content_info::CmsVersion;
use cms::signed_data::{SignedAttributes, SignedData, SignerIdentifier, SignerInfo};
use const_oid::db::rfc5911::{ID_CONTENT_TYPE, ID_DATA, ID_MESSAGE_DIGEST};
use const_oid::db::rfc5912::{
    ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, ECDSA_WITH_SHA_512, ID_EC_PUBLIC_KEY, ID_SHA_256,
    ID_SHA_384, ID_SHA_512, RSA_ENCRYPTION, SECP_256_R_1, SECP_384_R_1,
    SHA_256_WITH_RSA_ENCRYPTION, SHA_384_WITH_RSA_ENCRYPTION, SHA_512_WITH_RSA_ENCRYPTION,
};
use const_oid::ObjectIdentifier;
use der::asn1::{Any, OctetString};
use der::{Encode, Tagged};
use ring::{digest, signature};
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

use crate::chain;

/// Why a signer does not verify: each variant names what did not hold. The callers word it for
/// what the signer signed (a token, a PDF).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum SignerError {
    #[error("the SignedData has {count} signers, not one")]
    SignerCount { count: usize },
    #[error("{} is not in the form RFC 5652 fixes: {reason}", .part.name())]
    Form { part: FormPart, reason: String },
    #[error("the signer has no signed attributes")]
    NoSignedAttributes,
    #[error("the signed attributes lack {name}")]
    MissingAttribute { name: &'static str },
    #[error("the {name} attribute must appear once with one value")]
    AttributeNotSingle { name: &'static str },
    #[error("the {name} attribute is malformed: {reason}")]
    BadAttribute { name: &'static str, reason: String },
    #[error("the content-type attribute says {attribute}, the content is {content}")]
    ContentTypeMismatch {
        attribute: ObjectIdentifier,
        content: ObjectIdentifier,
    },
    #[error(
        "the digest of the signed content ({computed}) is not the one the signer signed \
         (messageDigest {attribute}): the content was changed"
    )]
    MessageDigestMismatch { attribute: String, computed: String },
    #[error("{what} uses digest algorithm {algorithm}, not SHA-256, SHA-384 or SHA-512")]
    UnsupportedDigest {
        what: &'static str,
        algorithm: ObjectIdentifier,
    },
    #[error("signature algorithm {algorithm} is not supported with a key of type {key}")]
    UnsupportedSignature {
        algorithm: ObjectIdentifier,
        key: ObjectIdentifier,
    },
    #[error("no certificate given matches the signer ({sid})")]
    SignerCertificateMissing { sid: String },
    #[error("{what} cannot be encoded again: {reason}")]
    Encode { what: &'static str, reason: String },
    #[error("the signature does not verify with the key of \"{signer}\"")]
    BadSignature { signer: String },
}

/// The part of a SignedData whose unsigned form is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FormPart {
    SignedData,
    SignerInfo,
    DigestAlgorithms,
}

impl FormPart {
    fn name(self) -> &'static str {
        match self {
            FormPart::SignedData => "the SignedData",
            FormPart::SignerInfo => "the SignerInfo",
            FormPart::DigestAlgorithms => "the digest algorithms",
        }
    }
}

/// A hash taken for message digests, imprints and signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    /// The hash an OID names, or an error naming `what` used it (SHA-1 is refused).
    pub(crate) fn from_oid(
        oid: &ObjectIdentifier,
        what: &'static str,
    ) -> Result<Hash, SignerError> {
        match *oid {
            ID_SHA_256 => Ok(Hash::Sha256),
            ID_SHA_384 => Ok(Hash::Sha384),
            ID_SHA_512 => Ok(Hash::Sha512),
            _ => Err(SignerError::UnsupportedDigest {
                what,
                algorithm: *oid,
            }),
        }
    }

    /// Its usual name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Hash::Sha256 => "SHA-256",
            Hash::Sha384 => "SHA-384",
            Hash::Sha512 => "SHA-512",
        }
    }

    /// The digest of `data`.
    pub(crate) fn digest(self, data: &[u8]) -> digest::Digest {
        self.digest_parts(&[data])
    }

    /// The digest of `parts`, one after the other (the ranges a PDF signature covers).
    pub(crate) fn digest_parts(self, parts: &[&[u8]]) -> digest::Digest {
        let alg = match self {
            Hash::Sha256 => &digest::SHA256,
            Hash::Sha384 => &digest::SHA384,
            Hash::Sha512 => &digest::SHA512,
        };
        let mut ctx = digest::Context::new(alg);
        for part in parts {
            ctx.update(part);
        }
        ctx.finish()
    }
}

/// A signer whose signature verified over the content given: made only by [`verify_signer`].
#[derive(Debug)]
pub(crate) struct VerifiedSigner<'a> {
    /// Its signed attributes.
    pub(crate) attrs: &'a SignedAttributes,
    /// Its certificate, among those given.
    pub(crate) cert: &'a Certificate,
    /// The same, DER.
    pub(crate) cert_der: Vec<u8>,
    /// The other certificates given, DER (candidate intermediates of its chain).
    pub(crate) other_certs: Vec<Vec<u8>>,
}

/// Checks the one signer of `signed` over `content` (its parts hashed one after the other):
/// the form of the SignedData and SignerInfo, the content-type attribute against the
/// eContentType, the messageDigest attribute against the content's digest, then the signature
/// over the signed attributes with the certificate among `certs` that the signer names.
pub(crate) fn verify_signer<'a>(
    signed: &'a SignedData,
    certs: &'a [Certificate],
    content: &[&[u8]],
) -> Result<VerifiedSigner<'a>, SignerError> {
    let signers = signed.signer_infos.0.as_slice();
    let [info] = signers else {
        return Err(SignerError::SignerCount {
            count: signers.len(),
        });
    };
    check_form(signed, info)?;
    let attrs = info
        .signed_attrs
        .as_ref()
        .ok_or(SignerError::NoSignedAttributes)?;
    check_content_type(attrs, signed.encap_content_info.econtent_type)?;
    check_message_digest(attrs, info, content)?;
    let cert = certs
        .iter()
        .find(|c| names_signer(&info.sid, c))
        .ok_or_else(|| SignerError::SignerCertificateMissing {
            sid: describe_sid(&info.sid),
        })?;
    let encode = |what: &'static str| {
        move |e: der::Error| SignerError::Encode {
            what,
            reason: e.to_string(),
        }
    };
    let cert_der = cert.to_der().map_err(encode("the signer's certificate"))?;
    let name =
        chain::subject_of(&cert_der).unwrap_or_else(|| cert.tbs_certificate.subject.to_string());
    // The signature covers the DER of the attributes as a SET OF (RFC 5652 §5.4).
    let attrs_der = attrs.to_der().map_err(encode("the signed attributes"))?;
    verify_signature(info, cert, &attrs_der, &name)?;
    let other_certs = certs
        .iter()
        .filter(|c| *c != cert)
        .filter_map(|c| c.to_der().ok())
        .collect();
    Ok(VerifiedSigner {
        attrs,
        cert,
        cert_der,
        other_certs,
    })
}

/// The certificates a SignedData carries (other formats left out).
pub(crate) fn certificates(signed: &SignedData) -> impl Iterator<Item = &Certificate> {
    signed
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|choice| match choice {
            CertificateChoices::Certificate(c) => Some(c),
            CertificateChoices::Other(_) => None,
        })
}

/// Whether `cert` is the one the signer identifier names.
pub(crate) fn names_signer(sid: &SignerIdentifier, cert: &Certificate) -> bool {
    let tbs = &cert.tbs_certificate;
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => {
            ias.issuer == tbs.issuer && ias.serial_number == tbs.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            matches!(tbs.get::<SubjectKeyIdentifier>(), Ok(Some((_, own))) if own == *ski)
        }
    }
}

/// The one value of the signed attribute `oid`, if present.
pub(crate) fn single_attribute<'a>(
    attrs: &'a SignedAttributes,
    oid: ObjectIdentifier,
    name: &'static str,
) -> Result<Option<&'a Any>, SignerError> {
    let mut found = attrs.iter().filter(|a| a.oid == oid);
    let Some(attr) = found.next() else {
        return Ok(None);
    };
    match (found.next(), attr.values.as_slice()) {
        (None, [value]) => Ok(Some(value)),
        _ => Err(SignerError::AttributeNotSingle { name }),
    }
}

/// The one value of the signed attribute `oid`, which must be present, decoded.
fn required_attribute<'a, T>(
    attrs: &'a SignedAttributes,
    oid: ObjectIdentifier,
    name: &'static str,
) -> Result<T, SignerError>
where
    T: der::Choice<'a> + der::DecodeValue<'a>,
{
    single_attribute(attrs, oid, name)?
        .ok_or(SignerError::MissingAttribute { name })?
        .decode_as()
        .map_err(|e| SignerError::BadAttribute {
            name,
            reason: e.to_string(),
        })
}

/// The unsigned fields RFC 5652 fixes: SignedData version 3 or more when the content is not
/// id-data or the signer is named by key identifier; SignerInfo version 1 with an issuer and
/// serial, 3 with a key identifier; digest algorithms without parameters or with NULL, and the
/// signer's among the SignedData's. None of them changes what is signed; they are checked so
/// that a signature is taken only in the one form the RFC allows.
fn check_form(signed: &SignedData, signer: &SignerInfo) -> Result<(), SignerError> {
    let form = |part, reason| SignerError::Form { part, reason };
    let want = match signer.sid {
        SignerIdentifier::IssuerAndSerialNumber(_) => CmsVersion::V1,
        SignerIdentifier::SubjectKeyIdentifier(_) => CmsVersion::V3,
    };
    if signer.version != want {
        return Err(form(
            FormPart::SignerInfo,
            format!(
                "version {} with this signer identifier, not {}",
                signer.version as u8, want as u8
            ),
        ));
    }
    let least = if signed.encap_content_info.econtent_type != ID_DATA || want == CmsVersion::V3 {
        CmsVersion::V3
    } else {
        CmsVersion::V1
    };
    if (signed.version as u8) < (least as u8) {
        return Err(form(
            FormPart::SignedData,
            format!(
                "version {}, not {} or more",
                signed.version as u8, least as u8
            ),
        ));
    }
    let null_or_absent = |alg: &AlgorithmIdentifierOwned| {
        alg.parameters
            .as_ref()
            .is_none_or(|p| p.tag() == der::Tag::Null && p.value().is_empty())
    };
    if !signed.digest_algorithms.iter().all(null_or_absent) || !null_or_absent(&signer.digest_alg) {
        return Err(form(
            FormPart::DigestAlgorithms,
            "parameters other than NULL".into(),
        ));
    }
    if !signed
        .digest_algorithms
        .iter()
        .any(|alg| alg.oid == signer.digest_alg.oid)
    {
        return Err(form(
            FormPart::DigestAlgorithms,
            format!(
                "the signer's {} is not among the SignedData's",
                signer.digest_alg.oid
            ),
        ));
    }
    Ok(())
}

/// The content-type attribute must be present and name the eContentType.
fn check_content_type(
    attrs: &SignedAttributes,
    content: ObjectIdentifier,
) -> Result<(), SignerError> {
    let attribute: ObjectIdentifier = required_attribute(attrs, ID_CONTENT_TYPE, "content-type")?;
    if attribute == content {
        Ok(())
    } else {
        Err(SignerError::ContentTypeMismatch { attribute, content })
    }
}

/// The messageDigest attribute must hold the digest of the content, with the signer's digest
/// algorithm.
fn check_message_digest(
    attrs: &SignedAttributes,
    signer: &SignerInfo,
    content: &[&[u8]],
) -> Result<(), SignerError> {
    let hash = Hash::from_oid(&signer.digest_alg.oid, "the signer's digest")?;
    let attribute: OctetString = required_attribute(attrs, ID_MESSAGE_DIGEST, "messageDigest")?;
    let computed = hash.digest_parts(content);
    if attribute.as_bytes() == computed.as_ref() {
        Ok(())
    } else {
        Err(SignerError::MessageDigestMismatch {
            attribute: hex::encode(attribute.as_bytes()),
            computed: hex::encode(computed.as_ref()),
        })
    }
}

/// A signer identifier, readable.
fn describe_sid(sid: &SignerIdentifier) -> String {
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => format!(
            "issuer \"{}\", serial {}",
            ias.issuer,
            hex::encode(ias.serial_number.as_bytes())
        ),
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            format!("subject key identifier {}", hex::encode(ski.0.as_bytes()))
        }
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
fn verify_signature(
    signer: &SignerInfo,
    cert: &Certificate,
    signed_attrs: &[u8],
    signer_name: &str,
) -> Result<(), SignerError> {
    let sig_oid = signer.signature_algorithm.oid;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let unsupported = || SignerError::UnsupportedSignature {
        algorithm: sig_oid,
        key: spki.algorithm.oid,
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
        .map_err(|_| SignerError::BadSignature {
            signer: signer_name.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use const_oid::db::rfc5912::ID_SHA_1;

    #[test]
    fn only_sha2_digests() {
        assert!(Hash::from_oid(&ID_SHA_256, "a digest").is_ok());
        assert_eq!(
            Hash::from_oid(&ID_SHA_1, "a digest").unwrap_err(),
            SignerError::UnsupportedDigest {
                what: "a digest",
                algorithm: ID_SHA_1
            }
        );
    }

    #[test]
    fn parts_hash_like_their_concatenation() {
        for hash in [Hash::Sha256, Hash::Sha384, Hash::Sha512] {
            assert_eq!(
                hash.digest_parts(&[b"ab", b"", b"c"]).as_ref(),
                hash.digest(b"abc").as_ref()
            );
        }
    }
}
