//! The CMS side of a signature (the signer): a SignedData's signer, its signed attributes and its
//! signature, checked with ring against the signer's certificate carried in the SignedData.

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use const_oid::db::{rfc5911, rfc5912};
use const_oid::ObjectIdentifier;
use der::asn1::OctetString;
use der::{Decode, Encode, Reader, SliceReader};
use ring::signature::{self, VerificationAlgorithm};
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::Certificate;

/// Why a CMS signature does not verify, or could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum CmsError {
    #[error("the signature is not DER CMS: {0}")]
    Parse(String),
    #[error("the CMS content is {0}, not SignedData")]
    NotSignedData(ObjectIdentifier),
    #[error("bytes other than zero padding follow the CMS structure")]
    TrailingBytes,
    #[error("the SignedData has no signer")]
    NoSigner,
    #[error("the signer's certificate is not among the SignedData's certificates")]
    SignerCertificateMissing,
    #[error("digest algorithm {0} is not accepted (SHA-256, SHA-384 or SHA-512)")]
    UnsupportedDigest(ObjectIdentifier),
    #[error("signature algorithm {0} is not supported with this key")]
    UnsupportedSignature(ObjectIdentifier),
    #[error("the signed attributes lack {0}")]
    MissingAttribute(&'static str),
    #[error("the signed attribute {0} is malformed")]
    BadAttribute(&'static str),
    #[error("the content-type attribute says {attribute}, the content is {content}")]
    ContentTypeMismatch {
        attribute: ObjectIdentifier,
        content: ObjectIdentifier,
    },
    #[error("the digest of the signed bytes differs from the one the signer signed (messageDigest): the bytes were changed")]
    DigestMismatch,
    #[error("the signature value does not verify with the signer's certificate")]
    BadSignature,
}

/// A signer whose signature verified over the content given: made only by [`verify_signer`].
#[derive(Debug, Clone)]
pub(crate) struct VerifiedSigner {
    /// The signer's certificate, DER.
    pub(crate) cert_der: Vec<u8>,
    /// Every other certificate the SignedData carries, DER (candidate intermediates).
    pub(crate) other_certs: Vec<Vec<u8>>,
    /// The signingTime attribute, Unix seconds.
    pub(crate) signing_time: Option<i64>,
}

/// The signer's certificate, when one can be found, even if the signature does not verify
/// (to name who the signature claims to be from).
pub(crate) fn signer_certificate(sd: &SignedData) -> Option<Vec<u8>> {
    let si = sd.signer_infos.0.iter().next()?;
    find_signer_cert(sd, si).and_then(|c| c.to_der().ok())
}

/// Reads a ContentInfo holding SignedData; zero bytes after it (the padding of a PDF
/// `/Contents` string) are allowed, anything else is not.
pub(crate) fn parse_signed_data(bytes: &[u8]) -> Result<SignedData, CmsError> {
    let mut reader = SliceReader::new(bytes).map_err(|e| CmsError::Parse(e.to_string()))?;
    let ci = ContentInfo::decode(&mut reader).map_err(|e| CmsError::Parse(e.to_string()))?;
    let rest = reader
        .read_slice(reader.remaining_len())
        .map_err(|e| CmsError::Parse(e.to_string()))?;
    if rest.iter().any(|&b| b != 0) {
        return Err(CmsError::TrailingBytes);
    }
    if ci.content_type != rfc5911::ID_SIGNED_DATA {
        return Err(CmsError::NotSignedData(ci.content_type));
    }
    ci.content
        .decode_as::<SignedData>()
        .map_err(|e| CmsError::Parse(e.to_string()))
}

/// The first signer's SignerInfo (PDF signatures and time-stamp tokens have one).
pub(crate) fn first_signer(sd: &SignedData) -> Result<&SignerInfo, CmsError> {
    sd.signer_infos.0.iter().next().ok_or(CmsError::NoSigner)
}

/// Checks the first signer of `sd` over the content whose digest `digest_of` gives for a
/// digest algorithm: the messageDigest and content-type attributes, then the signature over
/// the signed attributes with the signer's certificate. The certificate's chain is the
/// caller's business.
pub(crate) fn verify_signer(
    sd: &SignedData,
    digest_of: &dyn Fn(&'static ring::digest::Algorithm) -> Vec<u8>,
) -> Result<VerifiedSigner, CmsError> {
    let si = first_signer(sd)?;
    let digest_alg = digest_algorithm(&si.digest_alg.oid)?;
    let cert = find_signer_cert(sd, si).ok_or(CmsError::SignerCertificateMissing)?;
    let content_digest = digest_of(digest_alg);
    // Without signed attributes the signature would be over the content's digest itself, which
    // ring cannot take pre-hashed: every PDF signer and TSA writes signed attributes.
    let attrs = si
        .signed_attrs
        .as_ref()
        .ok_or(CmsError::MissingAttribute("signed attributes"))?;
    let digest = attribute(attrs, rfc5911::ID_MESSAGE_DIGEST)
        .ok_or(CmsError::MissingAttribute("messageDigest"))?
        .decode_as::<OctetString>()
        .map_err(|_| CmsError::BadAttribute("messageDigest"))?;
    if digest.as_bytes() != content_digest.as_slice() {
        return Err(CmsError::DigestMismatch);
    }
    let content_type = attribute(attrs, rfc5911::ID_CONTENT_TYPE)
        .ok_or(CmsError::MissingAttribute("content-type"))?
        .decode_as::<ObjectIdentifier>()
        .map_err(|_| CmsError::BadAttribute("content-type"))?;
    if content_type != sd.encap_content_info.econtent_type {
        return Err(CmsError::ContentTypeMismatch {
            attribute: content_type,
            content: sd.encap_content_info.econtent_type,
        });
    }
    let signing_time = match attribute(attrs, rfc5911::ID_SIGNING_TIME) {
        Some(t) => {
            let t = t
                .to_der()
                .and_then(|d| x509_cert::time::Time::from_der(&d))
                .map_err(|_| CmsError::BadAttribute("signingTime"))?;
            i64::try_from(t.to_unix_duration().as_secs()).ok()
        }
        None => None,
    };
    // The signature covers the DER of the attributes as a SET OF (RFC 5652 §5.4).
    let message = attrs
        .to_der()
        .map_err(|_| CmsError::BadAttribute("signed attributes"))?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let alg = verification_algorithm(&si.signature_algorithm.oid, digest_alg, spki)?;
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or(CmsError::UnsupportedSignature(si.signature_algorithm.oid))?;
    signature::UnparsedPublicKey::new(alg, key)
        .verify(&message, si.signature.as_bytes())
        .map_err(|_| CmsError::BadSignature)?;
    let cert_der = cert.to_der().map_err(|e| CmsError::Parse(e.to_string()))?;
    let other_certs = certificates(sd)
        .filter_map(|c| c.to_der().ok())
        .filter(|d| *d != cert_der)
        .collect();
    Ok(VerifiedSigner {
        cert_der,
        other_certs,
        signing_time,
    })
}

/// The value of an attribute (its first), if present.
pub(crate) fn attribute(
    attrs: &der::asn1::SetOfVec<x509_cert::attr::Attribute>,
    oid: ObjectIdentifier,
) -> Option<&der::Any> {
    attrs
        .iter()
        .find(|a| a.oid == oid)
        .and_then(|a| a.values.iter().next())
}

/// The hash function of an accepted digest algorithm (SHA-1 is not).
pub(crate) fn digest_algorithm(
    oid: &ObjectIdentifier,
) -> Result<&'static ring::digest::Algorithm, CmsError> {
    match *oid {
        rfc5912::ID_SHA_256 => Ok(&ring::digest::SHA256),
        rfc5912::ID_SHA_384 => Ok(&ring::digest::SHA384),
        rfc5912::ID_SHA_512 => Ok(&ring::digest::SHA512),
        other => Err(CmsError::UnsupportedDigest(other)),
    }
}

fn verification_algorithm(
    sig: &ObjectIdentifier,
    digest: &'static ring::digest::Algorithm,
    spki: &x509_cert::spki::SubjectPublicKeyInfoOwned,
) -> Result<&'static dyn VerificationAlgorithm, CmsError> {
    let unsupported = || CmsError::UnsupportedSignature(*sig);
    let bits = |d: &ring::digest::Algorithm| d.output_len() * 8;
    let hash = match *sig {
        rfc5912::SHA_256_WITH_RSA_ENCRYPTION | rfc5912::ECDSA_WITH_SHA_256 => 256,
        rfc5912::SHA_384_WITH_RSA_ENCRYPTION | rfc5912::ECDSA_WITH_SHA_384 => 384,
        rfc5912::SHA_512_WITH_RSA_ENCRYPTION | rfc5912::ECDSA_WITH_SHA_512 => 512,
        rfc5912::RSA_ENCRYPTION | rfc5912::ID_EC_PUBLIC_KEY => bits(digest),
        _ => return Err(unsupported()),
    };
    let key_alg = spki.algorithm.oid;
    if key_alg == rfc5912::RSA_ENCRYPTION {
        return match (*sig, hash) {
            (rfc5912::ECDSA_WITH_SHA_256 | rfc5912::ECDSA_WITH_SHA_384, _)
            | (rfc5912::ECDSA_WITH_SHA_512 | rfc5912::ID_EC_PUBLIC_KEY, _) => Err(unsupported()),
            (_, 256) => Ok(&signature::RSA_PKCS1_2048_8192_SHA256),
            (_, 384) => Ok(&signature::RSA_PKCS1_2048_8192_SHA384),
            (_, 512) => Ok(&signature::RSA_PKCS1_2048_8192_SHA512),
            _ => Err(unsupported()),
        };
    }
    if key_alg == rfc5912::ID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
            .ok_or_else(unsupported)?;
        let rsa_sig = matches!(
            *sig,
            rfc5912::SHA_256_WITH_RSA_ENCRYPTION
                | rfc5912::SHA_384_WITH_RSA_ENCRYPTION
                | rfc5912::SHA_512_WITH_RSA_ENCRYPTION
                | rfc5912::RSA_ENCRYPTION
        );
        if rsa_sig {
            return Err(unsupported());
        }
        return match (curve, hash) {
            (rfc5912::SECP_256_R_1, 256) => Ok(&signature::ECDSA_P256_SHA256_ASN1),
            (rfc5912::SECP_256_R_1, 384) => Ok(&signature::ECDSA_P256_SHA384_ASN1),
            (rfc5912::SECP_384_R_1, 256) => Ok(&signature::ECDSA_P384_SHA256_ASN1),
            (rfc5912::SECP_384_R_1, 384) => Ok(&signature::ECDSA_P384_SHA384_ASN1),
            _ => Err(unsupported()),
        };
    }
    Err(unsupported())
}

fn certificates(sd: &SignedData) -> impl Iterator<Item = &Certificate> {
    sd.certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|choice| match choice {
            cms::cert::CertificateChoices::Certificate(c) => Some(c),
            _ => None,
        })
}

fn find_signer_cert<'a>(sd: &'a SignedData, si: &SignerInfo) -> Option<&'a Certificate> {
    certificates(sd).find(|c| match &si.sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => {
            c.tbs_certificate.issuer == ias.issuer
                && c.tbs_certificate.serial_number == ias.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => subject_key_id(c).as_ref() == Some(ski),
    })
}

fn subject_key_id(cert: &Certificate) -> Option<SubjectKeyIdentifier> {
    cert.tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == rfc5912::ID_CE_SUBJECT_KEY_IDENTIFIER)
        .and_then(|e| SubjectKeyIdentifier::from_der(e.extn_value.as_bytes()).ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn refuses_what_is_not_cms() {
        assert!(matches!(parse_signed_data(b""), Err(CmsError::Parse(_))));
        assert!(matches!(
            parse_signed_data(&[0x30, 0x03, 0x02, 0x01, 0x00]),
            Err(CmsError::Parse(_))
        ));
        // A ContentInfo of id-data: well-formed, not SignedData.
        let data = ContentInfo {
            content_type: rfc5911::ID_DATA,
            content: der::Any::encode_from(&OctetString::new(vec![1u8]).unwrap()).unwrap(),
        }
        .to_der()
        .unwrap();
        assert_eq!(
            parse_signed_data(&data).unwrap_err(),
            CmsError::NotSignedData(rfc5911::ID_DATA)
        );
        let mut padded = data.clone();
        padded.extend([0, 0, 0]);
        assert_eq!(
            parse_signed_data(&padded).unwrap_err(),
            CmsError::NotSignedData(rfc5911::ID_DATA)
        );
        padded.push(1);
        assert_eq!(
            parse_signed_data(&padded).unwrap_err(),
            CmsError::TrailingBytes
        );
    }

    #[test]
    fn only_sha2_digests() {
        assert!(digest_algorithm(&rfc5912::ID_SHA_256).is_ok());
        assert_eq!(
            digest_algorithm(&rfc5912::ID_SHA_1).unwrap_err(),
            CmsError::UnsupportedDigest(rfc5912::ID_SHA_1)
        );
    }
}
