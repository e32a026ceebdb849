//! RFC 3161 time-stamp tokens met inside PDF signatures: the token embedded in a signature
//! (unsigned attribute id-aa-timeStampToken, over the signature value) and a document
//! time-stamp (`/SubFilter /ETSI.RFC3161`, over the signed byte ranges).

use const_oid::ObjectIdentifier;
use der::asn1::OctetString;
use der::{Any, Decode, Tag, Tagged};
use x509_cert::spki::AlgorithmIdentifierOwned;

use super::signer::{self, CmsError};
use super::{TimeStamp, TimeStampStatus};
use crate::chain::{self, Anchors, ChainError};

/// id-ct-TSTInfo: the content type of a time-stamp token.
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");

/// id-aa-timeStampToken: the unsigned attribute holding a signature's time-stamp token.
const ID_AA_TIME_STAMP_TOKEN: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.14");

/// id-kp-timeStamping: the purpose a TSA's certificate must carry.
const ID_KP_TIME_STAMPING: ObjectIdentifier = const_oid::db::rfc5280::ID_KP_TIME_STAMPING;

/// `MessageImprint ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, hashedMessage OCTET STRING }`
#[derive(Debug, der::Sequence)]
struct MessageImprint {
    hash_algorithm: AlgorithmIdentifierOwned,
    hashed_message: OctetString,
}

/// Why a token's own content is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum TokenError {
    #[error(transparent)]
    Cms(#[from] CmsError),
    #[error("the token's content is {0}, not TSTInfo")]
    NotTstInfo(ObjectIdentifier),
    #[error("the TSTInfo is malformed: {0}")]
    BadTstInfo(String),
    #[error("the time-stamp is over other data than this signature (its message imprint differs)")]
    ImprintMismatch,
}

/// Checks a time-stamp token over the data whose digest `imprinted` gives: the TSA's CMS
/// signature over the TSTInfo, the imprint, then the TSA's chain to `anchors` at the
/// time-stamp's time, with the time-stamping purpose.
pub(crate) fn check_token(
    token: &[u8],
    imprinted: &dyn Fn(&'static ring::digest::Algorithm) -> Vec<u8>,
    anchors: &Anchors,
) -> TimeStamp {
    let mut out = TimeStamp {
        time_unix: None,
        time: None,
        tsa: None,
        status: TimeStampStatus::Valid,
    };
    let signed = match verify_token(token, imprinted) {
        Ok(v) => v,
        Err((e, tsa)) => {
            out.tsa = tsa;
            out.status = TimeStampStatus::Invalid { why: e.to_string() };
            return out;
        }
    };
    out.time_unix = Some(signed.gen_time);
    out.time = Some(chain::utc(signed.gen_time));
    out.tsa = chain::subject_of(&signed.signer.cert_der);
    match chain::verify_chain(
        &signed.signer.cert_der,
        &signed.signer.other_certs,
        anchors,
        signed.gen_time,
        Some(&ID_KP_TIME_STAMPING),
    ) {
        Ok(_) => {}
        Err(e @ ChainError::UnknownIssuer { .. }) => {
            out.status = TimeStampStatus::UnknownTsa { why: e.to_string() };
        }
        Err(e) => {
            out.status = TimeStampStatus::Invalid {
                why: format!("the TSA's certificate: {e}"),
            };
        }
    }
    out
}

struct SignedToken {
    signer: signer::VerifiedSigner,
    gen_time: i64,
}

/// The token's CMS and imprint; on failure, the error and the TSA's name when it can be told.
fn verify_token(
    token: &[u8],
    imprinted: &dyn Fn(&'static ring::digest::Algorithm) -> Vec<u8>,
) -> Result<SignedToken, (TokenError, Option<String>)> {
    let sd = signer::parse_signed_data(token).map_err(|e| (e.into(), None))?;
    let tsa = signer::signer_certificate(&sd).and_then(|c| chain::subject_of(&c));
    let fail = |e: TokenError| (e, tsa.clone());
    let content_type = sd.encap_content_info.econtent_type;
    if content_type != ID_CT_TST_INFO {
        return Err(fail(TokenError::NotTstInfo(content_type)));
    }
    let tst_der = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| fail(TokenError::BadTstInfo("no content".into())))?
        .decode_as::<OctetString>()
        .map_err(|e| fail(TokenError::BadTstInfo(e.to_string())))?
        .into_bytes();
    let signer = signer::verify_signer(&sd, &|alg| {
        ring::digest::digest(alg, &tst_der).as_ref().to_vec()
    })
    .map_err(|e| fail(e.into()))?;
    let (imprint, gen_time) = read_tst_info(&tst_der).map_err(&fail)?;
    let alg = signer::digest_algorithm(&imprint.hash_algorithm.oid).map_err(|e| fail(e.into()))?;
    if imprint.hashed_message.as_bytes() != imprinted(alg).as_slice() {
        return Err(fail(TokenError::ImprintMismatch));
    }
    Ok(SignedToken { signer, gen_time })
}

/// The imprint and the time (`genTime`, Unix seconds) of a DER TSTInfo.
fn read_tst_info(der: &[u8]) -> Result<(MessageImprint, i64), TokenError> {
    let bad = |e: String| TokenError::BadTstInfo(e);
    // TSTInfo ::= SEQUENCE { version, policy, messageImprint, serialNumber, genTime, ... }:
    // read as a sequence of elements, the first five by position.
    let fields = Vec::<Any>::from_der(der).map_err(|e| bad(e.to_string()))?;
    let [_version, _policy, imprint, _serial, gen_time, ..] = fields.as_slice() else {
        return Err(bad("fewer than five fields".into()));
    };
    let imprint = imprint
        .decode_as::<MessageImprint>()
        .map_err(|e| bad(format!("messageImprint: {e}")))?;
    if gen_time.tag() != Tag::GeneralizedTime {
        return Err(bad("genTime is not a GeneralizedTime".into()));
    }
    let gen_time = generalized_time(gen_time.value())
        .ok_or_else(|| bad("genTime is not a UTC time (YYYYMMDDHHMMSS[.f]Z)".into()))?;
    Ok((imprint, gen_time))
}

/// `YYYYMMDDHHMMSS[.fraction]Z` as Unix seconds (the fraction dropped). der's own
/// GeneralizedTime refuses fractions, which TSAs write.
fn generalized_time(value: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(value).ok()?;
    let s = s.strip_suffix('Z')?;
    let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
    if whole.len() != 14
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| whole.get(r).and_then(|d| d.parse::<u32>().ok());
    let month = time::Month::try_from(u8::try_from(n(4..6)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(n(0..4)?).ok()?,
        month,
        u8::try_from(n(6..8)?).ok()?,
    )
    .ok()?;
    let at = date
        .with_hms(
            u8::try_from(n(8..10)?).ok()?,
            u8::try_from(n(10..12)?).ok()?,
            u8::try_from(n(12..14)?).ok()?,
        )
        .ok()?;
    Some(at.assume_utc().unix_timestamp())
}

/// The time-stamp token among a signer's unsigned attributes, DER, if there is one.
pub(crate) fn embedded_token(si: &cms::signed_data::SignerInfo) -> Option<Vec<u8>> {
    let attrs = si.unsigned_attrs.as_ref()?;
    let value = signer::attribute(attrs, ID_AA_TIME_STAMP_TOKEN)?;
    der::Encode::to_der(value).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn generalized_times_with_and_without_fractions() {
        assert_eq!(generalized_time(b"20250301083000Z"), Some(1_740_817_800));
        assert_eq!(
            generalized_time(b"20250301083000.123456Z"),
            Some(1_740_817_800)
        );
        assert_eq!(generalized_time(b"20250301083000"), None);
        assert_eq!(generalized_time(b"20250301083000+0700"), None);
        assert_eq!(generalized_time(b"2025030108300Z"), None);
        assert_eq!(generalized_time(b"20251301083000Z"), None);
        assert_eq!(generalized_time(b"20250301083000.xZ"), None);
    }

    #[test]
    fn a_tst_info_too_short_is_an_error() {
        let short = der::Encode::to_der(&vec![Any::from(der::asn1::Null)]).unwrap();
        assert!(matches!(
            read_tst_info(&short),
            Err(TokenError::BadTstInfo(_))
        ));
        assert!(read_tst_info(b"\x30").is_err());
    }
}
