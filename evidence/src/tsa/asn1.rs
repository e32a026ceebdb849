//! The RFC 3161 and RFC 2634/5035 structures, declared for `der`'s derive (which does the
//! encoding and decoding), field by field as the RFCs write them.
//!
//! RustCrypto's `x509-tsp` 0.1 declares the same structures on the same `der`/`cms`, but two of
//! them cannot read what real authorities send: its `TSTInfo` takes `der`'s `GeneralizedTime`,
//! which refuses the fractional seconds RFC 3161 allows (`20250102030405.123Z`), and its
//! `PKIStatusInfo` takes `cmpv2` 0.2's failure flags, which read bit *numbers* as bit *masks* and
//! fail on any failure bit above 15 (`systemFailure` is bit 25). Hence these declarations, and
//! [`GenTime`] for the time.

use const_oid::ObjectIdentifier;
use der::asn1::{Any, BitString, Int, OctetString};
use der::{
    DecodeValue, EncodeValue, ErrorKind, FixedTag, Header, Length, Reader, Sequence, Tag, Writer,
};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::Extensions;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;

/// `TimeStampReq` (RFC 3161 §2.4.1).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct TimeStampReq {
    /// Always 1.
    pub(crate) version: u8,
    pub(crate) message_imprint: MessageImprint,
    #[asn1(optional = "true")]
    pub(crate) req_policy: Option<ObjectIdentifier>,
    #[asn1(optional = "true")]
    pub(crate) nonce: Option<Int>,
    #[asn1(default = "Default::default")]
    pub(crate) cert_req: bool,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub(crate) extensions: Option<Extensions>,
}

/// `MessageImprint`: the hash algorithm and the hash time-stamped.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct MessageImprint {
    pub(crate) hash_algorithm: AlgorithmIdentifierOwned,
    pub(crate) hashed_message: OctetString,
}

/// `TimeStampResp` (RFC 3161 §2.4.2). The token is kept as it came (an `Any`), so that the
/// bytes stored and checked later are exactly the authority's.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct TimeStampResp {
    pub(crate) status: PkiStatusInfo,
    #[asn1(optional = "true")]
    pub(crate) time_stamp_token: Option<Any>,
}

/// `PKIStatusInfo` (RFC 3161 §2.4.2, from RFC 4210).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct PkiStatusInfo {
    /// `PKIStatus`: 0 granted, 1 grantedWithMods, 2 rejection, 3 waiting, 4 revocationWarning,
    /// 5 revocationNotification.
    pub(crate) status: u32,
    /// `PKIFreeText`: a sequence of UTF-8 strings.
    #[asn1(optional = "true")]
    pub(crate) status_string: Option<Vec<String>>,
    /// `PKIFailureInfo`, a named bit string.
    #[asn1(optional = "true")]
    pub(crate) fail_info: Option<BitString>,
}

/// `TSTInfo` (RFC 3161 §2.4.2): what the authority signs.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct TstInfo {
    pub(crate) version: u8,
    pub(crate) policy: ObjectIdentifier,
    pub(crate) message_imprint: MessageImprint,
    pub(crate) serial_number: Int,
    pub(crate) gen_time: GenTime,
    #[asn1(optional = "true")]
    pub(crate) accuracy: Option<Accuracy>,
    #[asn1(default = "Default::default")]
    pub(crate) ordering: bool,
    #[asn1(optional = "true")]
    pub(crate) nonce: Option<Int>,
    /// A CHOICE, so explicitly tagged although the module's default is implicit.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub(crate) tsa: Option<GeneralName>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub(crate) extensions: Option<Extensions>,
}

/// `Accuracy`: how far genTime may be from the true time.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct Accuracy {
    #[asn1(optional = "true")]
    pub(crate) seconds: Option<u64>,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub(crate) millis: Option<u16>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub(crate) micros: Option<u16>,
}

/// `SigningCertificate` (RFC 2634 §5.4): the signer's certificate, by SHA-1.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct SigningCertificate {
    pub(crate) certs: Vec<EssCertId>,
    #[asn1(optional = "true")]
    pub(crate) policies: Option<Vec<Any>>,
}

/// `ESSCertID`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct EssCertId {
    pub(crate) cert_hash: OctetString,
    #[asn1(optional = "true")]
    pub(crate) issuer_serial: Option<IssuerSerial>,
}

/// `SigningCertificateV2` (RFC 5035 §3): the signer's certificate, by a named hash.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct SigningCertificateV2 {
    pub(crate) certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    pub(crate) policies: Option<Vec<Any>>,
}

/// `ESSCertIDv2`; an absent hash algorithm means SHA-256.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct EssCertIdV2 {
    #[asn1(optional = "true")]
    pub(crate) hash_algorithm: Option<AlgorithmIdentifierOwned>,
    pub(crate) cert_hash: OctetString,
    #[asn1(optional = "true")]
    pub(crate) issuer_serial: Option<IssuerSerial>,
}

/// `IssuerSerial`: the issuer's names and the certificate's serial number.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub(crate) struct IssuerSerial {
    pub(crate) issuer: Vec<GeneralName>,
    pub(crate) serial_number: SerialNumber,
}

/// The longest GeneralizedTime read: `YYYYMMDDHHMMSS.fffffffffZ`.
const MAX_GEN_TIME_LEN: usize = 25;

/// A GeneralizedTime in DER form (UTC, `Z`), with optional fractional seconds; kept as written
/// and read to the millisecond.
#[derive(Clone, Debug, Eq, PartialEq)]
pub(crate) struct GenTime {
    /// The characters as encoded.
    text: Vec<u8>,
    /// The time, Unix milliseconds (fractions below the millisecond dropped).
    unix_ms: i64,
}

impl GenTime {
    /// The time, Unix milliseconds.
    pub(crate) fn unix_ms(&self) -> i64 {
        self.unix_ms
    }

    /// Reads `YYYYMMDDHHMMSS[.f…]Z` as DER wants it: no time zone other than `Z`, and a fraction
    /// with at least one digit and no trailing zero.
    fn parse(text: &[u8]) -> Option<i64> {
        let (body, fraction) = match text.strip_suffix(b"Z")? {
            t if t.len() == 14 => (t, &[][..]),
            t if t.len() > 15 && t[14] == b'.' => (&t[..14], &t[15..]),
            _ => return None,
        };
        if !body.iter().chain(fraction).all(u8::is_ascii_digit) || fraction.ends_with(b"0") {
            return None;
        }
        let num = |range: std::ops::Range<usize>| {
            body[range]
                .iter()
                .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
        };
        let year = u16::try_from(num(0..4)).ok()?;
        let [month, day, hour, minute, second] =
            [4..6, 6..8, 8..10, 10..12, 12..14].map(|r| u8::try_from(num(r)).unwrap_or(u8::MAX));
        let at = der::DateTime::new(year, month, day, hour, minute, second).ok()?;
        let secs = i64::try_from(at.unix_duration().as_secs()).ok()?;
        let millis = fraction
            .iter()
            .chain(std::iter::repeat(&b'0'))
            .take(3)
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
        secs.checked_mul(1000)?.checked_add(millis)
    }
}

impl FixedTag for GenTime {
    const TAG: Tag = Tag::GeneralizedTime;
}

impl<'a> DecodeValue<'a> for GenTime {
    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        let len = usize::try_from(header.length)?;
        if len > MAX_GEN_TIME_LEN {
            return Err(Self::TAG.length_error());
        }
        let text = reader.read_vec(header.length)?;
        let unix_ms = GenTime::parse(&text).ok_or(der::Error::from(ErrorKind::DateTime))?;
        Ok(GenTime { text, unix_ms })
    }
}

impl EncodeValue for GenTime {
    fn value_len(&self) -> der::Result<Length> {
        Length::try_from(self.text.len())
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        writer.write(&self.text)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use der::{Decode, Encode};

    fn gen_time(text: &str) -> der::Result<GenTime> {
        let mut bytes = vec![0x18, u8::try_from(text.len()).unwrap()];
        bytes.extend_from_slice(text.as_bytes());
        let t = GenTime::from_der(&bytes)?;
        assert_eq!(t.to_der().unwrap(), bytes);
        Ok(t)
    }

    #[test]
    fn generalized_time_with_and_without_fraction() {
        assert_eq!(
            gen_time("20230607112626Z").unwrap().unix_ms(),
            1_686_137_186_000
        );
        assert_eq!(
            gen_time("20230607112626.5Z").unwrap().unix_ms(),
            1_686_137_186_500
        );
        assert_eq!(
            gen_time("20230607112626.123456Z").unwrap().unix_ms(),
            1_686_137_186_123
        );
        for bad in [
            "20230607112626",
            "20230607112626.Z",
            "20230607112626.120Z",
            "20230607112626+0700",
            "2023060711262Z",
            "20231307112626Z",
            "2023060711262aZ",
            "20230607112626.1234567890Z",
        ] {
            assert!(gen_time(bad).is_err(), "{bad} accepted");
        }
    }

    /// The times PDF signatures' tokens carry, read to the second as the PDF report gives them.
    #[test]
    fn generalized_times_with_and_without_fractions() {
        let secs = |text: &str| gen_time(text).ok().map(|t| t.unix_ms().div_euclid(1000));
        assert_eq!(secs("20250301083000Z"), Some(1_740_817_800));
        assert_eq!(secs("20250301083000.123456Z"), Some(1_740_817_800));
        assert_eq!(secs("20250301083000"), None);
        assert_eq!(secs("20250301083000+0700"), None);
        assert_eq!(secs("2025030108300Z"), None);
        assert_eq!(secs("20251301083000Z"), None);
        assert_eq!(secs("20250301083000.xZ"), None);
    }

    #[test]
    fn a_tst_info_too_short_is_an_error() {
        let short = vec![Any::from(der::asn1::Null)].to_der().unwrap();
        assert!(TstInfo::from_der(&short).is_err());
        assert!(TstInfo::from_der(b"\x30").is_err());
    }

    #[test]
    fn failure_bits_above_fifteen_are_read() {
        // status rejection, failInfo systemFailure (bit 25).
        let der = hex_bytes("300c300a02010203050600000040");
        let resp = TimeStampResp::from_der(&der).unwrap();
        assert_eq!(resp.status.status, 2);
        let bits: Vec<usize> = resp
            .status
            .fail_info
            .unwrap()
            .bits()
            .enumerate()
            .filter_map(|(i, b)| b.then_some(i))
            .collect();
        assert_eq!(bits, vec![25]);
    }

    fn hex_bytes(h: &str) -> Vec<u8> {
        hex::decode(h).unwrap()
    }
}
