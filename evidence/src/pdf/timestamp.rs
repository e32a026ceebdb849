//! RFC 3161 time-stamp tokens met inside PDF signatures: the token embedded in a signature
//! (unsigned attribute id-aa-timeStampToken, over the signature value) and a document
//! time-stamp (`/SubFilter /ETSI.RFC3161`, over the signed byte ranges). Both are checked by
//! the time-stamp module's one token check ([`crate::tsa`]); what is here is only the report.

use cms::signed_data::SignerInfo;
use const_oid::ObjectIdentifier;

use super::signer;
use super::{SignatureTimeStamp, TimeStampStatus};
use crate::chain::{self, Anchors, ChainError};
use crate::tsa::{self, Imprint};

/// id-aa-timeStampToken: the unsigned attribute holding a signature's time-stamp token.
const ID_AA_TIME_STAMP_TOKEN: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.14");

/// Checks a time-stamp token (zero padding after it, as in a `/Contents` string, allowed) over
/// `stamped`, its parts hashed one after the other: the token's CMS signature, its imprint,
/// then the TSA's chain to `anchors` at the time-stamp's time, with the time-stamping purpose.
/// A TSA outside the anchors is reported apart from a token that does not verify.
pub(crate) fn check_token(
    token: &[u8],
    stamped: &[&[u8]],
    anchors: &Anchors,
) -> SignatureTimeStamp {
    let signed = signer::without_padding(token)
        .map_err(|e| e.to_string())
        .and_then(|t| {
            tsa::verify_signed(t, Imprint::HashOf(stamped), &[]).map_err(|e| e.to_string())
        });
    let signed = match signed {
        Ok(s) => s,
        Err(why) => {
            return SignatureTimeStamp {
                time_unix: None,
                time: None,
                // Who the token claims to be from, to say whose stamp failed.
                tsa: signer::parse_signed_data(token)
                    .ok()
                    .and_then(|sd| signer::signer_certificate(&sd))
                    .and_then(|c| chain::subject_of(&c)),
                status: TimeStampStatus::Invalid { why },
            };
        }
    };
    let at = signed.unix_ms().div_euclid(1000);
    let status = match signed.verify_chain(anchors) {
        Ok(_) => TimeStampStatus::Valid,
        Err(e @ ChainError::UnknownIssuer { .. }) => {
            TimeStampStatus::UnknownTsa { why: e.to_string() }
        }
        Err(e) => TimeStampStatus::Invalid {
            why: format!("the TSA's certificate: {e}"),
        },
    };
    SignatureTimeStamp {
        time_unix: Some(at),
        time: Some(chain::utc(at)),
        tsa: chain::subject_of(signed.tsa_certificate()),
        status,
    }
}

/// The time-stamp token among a signer's unsigned attributes, DER, if there is one.
pub(crate) fn embedded_token(si: &SignerInfo) -> Option<Vec<u8>> {
    let value = si
        .unsigned_attrs
        .as_ref()?
        .iter()
        .find(|a| a.oid == ID_AA_TIME_STAMP_TOKEN)?
        .values
        .iter()
        .next()?;
    der::Encode::to_der(value).ok()
}
