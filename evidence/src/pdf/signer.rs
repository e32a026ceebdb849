//! The CMS side of a PDF signature: the SignedData in a `/Contents` string, and its signer checked
//! over the signed byte ranges by the shared CMS signer check ([`crate::cms_sig`]).

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerInfo};
use const_oid::db::rfc5911;
use const_oid::ObjectIdentifier;
use der::asn1::AnyRef;
use der::{Decode, Encode, Reader, SliceReader};
use x509_cert::Certificate;

use crate::cms_sig::{self, SignerError};

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
    #[error(transparent)]
    Signer(#[from] SignerError),
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
    let si = first_signer(sd)?;
    cms_sig::certificates(sd)
        .find(|c| cms_sig::names_signer(&si.sid, c))
        .and_then(|c| c.to_der().ok())
}

/// The DER structure at the start of `bytes`, without the zero bytes after it (the padding of
/// a PDF `/Contents` string); anything else after it is refused.
pub(crate) fn without_padding(bytes: &[u8]) -> Result<&[u8], CmsError> {
    let mut reader = SliceReader::new(bytes).map_err(|e| CmsError::Parse(e.to_string()))?;
    AnyRef::decode(&mut reader).map_err(|e| CmsError::Parse(e.to_string()))?;
    let rest = reader
        .read_slice(reader.remaining_len())
        .map_err(|e| CmsError::Parse(e.to_string()))?;
    if rest.iter().any(|&b| b != 0) {
        return Err(CmsError::TrailingBytes);
    }
    Ok(bytes.get(..bytes.len() - rest.len()).unwrap_or_default())
}

/// Reads a ContentInfo holding SignedData; zero bytes after it (the padding of a PDF
/// `/Contents` string) are allowed, anything else is not.
pub(crate) fn parse_signed_data(bytes: &[u8]) -> Result<SignedData, CmsError> {
    let ci = ContentInfo::from_der(without_padding(bytes)?)
        .map_err(|e| CmsError::Parse(e.to_string()))?;
    if ci.content_type != rfc5911::ID_SIGNED_DATA {
        return Err(CmsError::NotSignedData(ci.content_type));
    }
    ci.content
        .decode_as::<SignedData>()
        .map_err(|e| CmsError::Parse(e.to_string()))
}

/// The first signer's SignerInfo (a PDF signature has one).
pub(crate) fn first_signer(sd: &SignedData) -> Option<&SignerInfo> {
    sd.signer_infos.0.iter().next()
}

/// Checks the one signer of `sd` over `content` (the signed byte ranges, in order) with the
/// shared CMS signer check, and reads its signingTime. The certificate's chain is the caller's
/// business.
pub(crate) fn verify_signer(
    sd: &SignedData,
    content: &[&[u8]],
) -> Result<VerifiedSigner, CmsError> {
    let certs: Vec<Certificate> = cms_sig::certificates(sd).cloned().collect();
    let signer = cms_sig::verify_signer(sd, &certs, content)?;
    let name = "signingTime";
    let signing_time =
        match cms_sig::single_attribute(signer.attrs, rfc5911::ID_SIGNING_TIME, name)? {
            Some(t) => {
                let t = t
                    .to_der()
                    .and_then(|d| x509_cert::time::Time::from_der(&d))
                    .map_err(|e| SignerError::BadAttribute {
                        name,
                        reason: e.to_string(),
                    })?;
                i64::try_from(t.to_unix_duration().as_secs()).ok()
            }
            None => None,
        };
    Ok(VerifiedSigner {
        cert_der: signer.cert_der,
        other_certs: signer.other_certs,
        signing_time,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use der::asn1::OctetString;

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
}
