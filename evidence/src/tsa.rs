//! RFC 3161 time-stamps over batches of documents: the request, the response, the token, and
//! the check of one document's stamp long after.
//!
//! The sending relay stamps many documents with one request: it builds the hash tree of their
//! signatures ([`crate::batch`]), asks the time-stamping authority (TSA) to stamp the root, and
//! gives each document the token and its own path to the root:
//!
//! 1. [`BatchRequest::new`] builds the tree and the `TimeStampReq`: SHA-256 imprint of the root,
//!    a random 127-bit nonce, `certReq` true, an optional policy.
//! 2. The caller posts [`BatchRequest::der`] to the TSA. The transport is not in this module:
//!    `tsa::http::post_query` (cargo feature `http`) is a blocking client for it, and any other
//!    that sends [`CONTENT_TYPE_QUERY`] and reads [`CONTENT_TYPE_REPLY`] will do.
//! 3. [`BatchRequest::accept`] reads the `TimeStampResp` and checks its token against this
//!    request (root, nonce, policy) and the trust anchors; only then does it give a
//!    [`StampedBatch`], whose [`StampedBatch::stamp`] is each document's [`TimeStamp`].
//! 4. Anyone holding a document's signature, its [`TimeStamp`] and the TSA's trust anchors
//!    checks it with [`verify_document_stamp`]: leaf, path, root, token.
//!
//! What checking a token means here ([`verify_token`]): a CMS SignedData whose eContentType is
//! id-ct-TSTInfo, whose one signer passes the crate's one CMS signer check (`cms_sig`: RFC 5652
//! form, signed attributes, content-type naming TSTInfo, messageDigest of the eContent, the
//! signature with the TSA certificate found in the token or given, by the signer's issuer and
//! serial or subject key identifier); the ESSCertID or ESSCertIDv2 of the signing-certificate
//! attribute, when there is one, names that certificate; the imprint is the one expected (for
//! a batch: SHA-256 and the root itself); the nonce and policy, when expected, are the ones
//! asked for; the certificate chains to the anchors at genTime with the timeStamping extended
//! key usage.
//!
//! The same check serves the time-stamps inside PDF signatures ([`crate::pdf`]), whose imprint
//! is a hash of the signature value or of the signed byte ranges, with whichever of SHA-256,
//! SHA-384 or SHA-512 the token names.

mod asn1;
#[cfg(feature = "http")]
pub mod http;

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedAttributes, SignedData};
use const_oid::db::rfc5911::{
    ID_AA_SIGNING_CERTIFICATE, ID_AA_SIGNING_CERTIFICATE_V_2, ID_SIGNED_DATA,
};
use const_oid::db::rfc5912::{ID_KP_TIME_STAMPING, ID_SHA_1, ID_SHA_256};
use const_oid::ObjectIdentifier;
use der::asn1::{Any, Int, OctetString};
use der::{Decode, Encode};
use serde::{Deserialize, Serialize};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

use crate::batch::{leaf_digest, BatchError, Digest, Path, Tree};
use crate::chain::{self, Anchors, ChainError, Revocation, VerifiedChain};
use crate::cms_sig::{self, FormPart, Hash, SignerError};

use self::asn1::{
    EssCertIdV2, IssuerSerial, MessageImprint, SigningCertificate, SigningCertificateV2,
    TimeStampReq, TimeStampResp, TstInfo,
};

/// The MIME type of a request posted to a TSA (RFC 3161 §3.4).
pub const CONTENT_TYPE_QUERY: &str = "application/timestamp-query";
/// The MIME type of a TSA's answer.
pub const CONTENT_TYPE_REPLY: &str = "application/timestamp-reply";

/// The largest response read: a token with a chain of a few RSA-4096 certificates stays far
/// below.
pub const MAX_RESPONSE_BYTES: usize = 64 << 10;
/// The largest token taken (a token is the response less a few bytes).
pub const MAX_TOKEN_BYTES: usize = MAX_RESPONSE_BYTES;

/// `id-ct-TSTInfo` (RFC 3161 §2.4.2), the eContentType of a token.
pub const ID_CT_TST_INFO: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");

/// Length of the nonce sent, in bytes.
const NONCE_LEN: usize = 16;

/// Why a request could not be made or a response, token or stamp was not accepted: each
/// variant names what did not match.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TsaError {
    /// The request could not be encoded.
    #[error("cannot encode the time-stamp request: {0}")]
    Encode(der::Error),
    /// The system's random generator failed (for the nonce).
    #[error("the system random generator failed")]
    Random,
    /// Bytes longer than their limit.
    #[error("{what} is {len} bytes, more than the {limit} allowed")]
    TooLarge {
        /// What was too long.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Bytes that are not the structure expected.
    #[error("{what} is not readable: {reason}")]
    Malformed {
        /// What was read.
        what: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// The TSA answered with a status other than granted or grantedWithMods.
    #[error(
        "the TSA refused the request: status {} ({}), failure info [{}]{}",
        .status,
        status_name(*.status),
        .failures.join(", "),
        free_text(.text)
    )]
    Refused {
        /// PKIStatus.
        status: u32,
        /// The PKIFailureInfo bits set, by name (`bit N` for one RFC 3161 does not name).
        failures: Vec<String>,
        /// The status strings, as the TSA wrote them.
        text: Vec<String>,
    },
    /// A granted response without a token.
    #[error("the TSA granted the request but sent no time-stamp token")]
    NoToken,
    /// The token is not a CMS SignedData.
    #[error("the token is not a CMS SignedData: its content type is {found}")]
    NotSignedData {
        /// The content type found.
        found: String,
    },
    /// The signed content is not a TSTInfo.
    #[error("the token's signed content is not a TSTInfo: its eContentType is {found}")]
    NotTstInfo {
        /// The eContentType found.
        found: String,
    },
    /// The token's content is detached.
    #[error("the token carries no TSTInfo (detached content)")]
    NoContent,
    /// Not exactly one signer.
    #[error("the token has {count} signers, not one")]
    SignerCount {
        /// How many.
        count: usize,
    },
    /// The signer has no signed attributes (RFC 3161 requires them).
    #[error("the token's signer has no signed attributes")]
    NoSignedAttributes,
    /// A required signed attribute is absent.
    #[error("the token's signed attributes lack {name}")]
    MissingAttribute {
        /// The attribute.
        name: &'static str,
    },
    /// A signed attribute appears more than once, or with other than one value.
    #[error("the token's {name} attribute must appear once with one value")]
    AttributeNotSingle {
        /// The attribute.
        name: &'static str,
    },
    /// The content-type attribute does not name TSTInfo.
    #[error("the token's content-type attribute is {found}, not id-ct-TSTInfo")]
    ContentTypeAttribute {
        /// The content type the attribute holds.
        found: String,
    },
    /// The messageDigest attribute is not the digest of the TSTInfo.
    #[error(
        "the token's messageDigest attribute {attribute} is not the digest of its TSTInfo \
         ({computed})"
    )]
    MessageDigestMismatch {
        /// The attribute's value, hex.
        attribute: String,
        /// The digest computed, hex.
        computed: String,
    },
    /// A digest algorithm that is not taken.
    #[error("{what} uses an unsupported digest algorithm {algorithm}")]
    UnsupportedDigest {
        /// Where it was met.
        what: &'static str,
        /// Its OID.
        algorithm: String,
    },
    /// A signature algorithm or key that is not taken.
    #[error("unsupported signature algorithm {algorithm} with a key of type {key}")]
    UnsupportedSignature {
        /// The signature algorithm's OID.
        algorithm: String,
        /// The key's algorithm OID.
        key: String,
    },
    /// Neither the token nor the certificates given hold the signer's certificate.
    #[error("no certificate of the token or given matches the signer ({sid})")]
    SignerCertificateMissing {
        /// How the signer names its certificate.
        sid: String,
    },
    /// The signature over the signed attributes does not verify.
    #[error("the token's signature does not verify with the key of \"{signer}\"")]
    BadSignature {
        /// The certificate tried.
        signer: String,
    },
    /// The signing-certificate attribute names another certificate than the signer's.
    #[error(
        "the token's {attribute} names certificate hash {in_token}, but the signer's \
         certificate hashes to {certificate}"
    )]
    EssCertIdMismatch {
        /// `ESSCertID` or `ESSCertIDv2`.
        attribute: &'static str,
        /// The hash the attribute holds, hex.
        in_token: String,
        /// The hash of the signer's certificate, hex.
        certificate: String,
    },
    /// The signing-certificate attribute's issuer and serial are not the certificate's.
    #[error("the token's {attribute} names another issuer or serial number than the signer's certificate")]
    EssIssuerSerialMismatch {
        /// `ESSCertID` or `ESSCertIDv2`.
        attribute: &'static str,
    },
    /// The TSA certificate does not chain to the anchors at genTime, or lacks the EKU.
    #[error("the TSA certificate does not verify at the stamp's time: {0}")]
    Chain(#[from] ChainError),
    /// The imprint's hash algorithm is not SHA-256.
    #[error("the token's imprint uses {found}, not SHA-256")]
    ImprintAlgorithm {
        /// The algorithm's OID.
        found: String,
    },
    /// The token stamps another value than the expected root.
    #[error("the token stamps {in_token}, not the root {expected}")]
    ImprintMismatch {
        /// The value the token stamps, hex.
        in_token: String,
        /// The root expected.
        expected: Digest,
    },
    /// The token stamps another value than the hash of the data it should be over.
    #[error(
        "the token's message imprint {in_token} is not the {algorithm} of the data it should \
         stamp ({computed}): the time-stamp is over other data"
    )]
    ImprintNotOfData {
        /// The imprint's hash algorithm.
        algorithm: &'static str,
        /// The value the token stamps, hex.
        in_token: String,
        /// The hash of the data, hex.
        computed: String,
    },
    /// The token has no nonce although the request had one.
    #[error("the token has no nonce, the request sent {expected}")]
    NonceMissing {
        /// The nonce sent, hex.
        expected: String,
    },
    /// The token's nonce is not the request's.
    #[error("the token's nonce {in_token} is not the request's {expected}")]
    NonceMismatch {
        /// The token's, hex.
        in_token: String,
        /// The request's, hex.
        expected: String,
    },
    /// The token's policy is not the one asked for.
    #[error("the token's policy {in_token} is not the one asked for ({expected})")]
    PolicyMismatch {
        /// The token's.
        in_token: String,
        /// The request's.
        expected: String,
    },
    /// The document's path is unusable.
    #[error("the document's path: {0}")]
    Path(#[from] BatchError),
}

/// The CMS signer check's findings, in the token's words.
impl From<SignerError> for TsaError {
    fn from(e: SignerError) -> Self {
        match e {
            SignerError::SignerCount { count } => TsaError::SignerCount { count },
            SignerError::Form { part, reason } => TsaError::Malformed {
                what: match part {
                    FormPart::SignedData => "the token's SignedData",
                    FormPart::SignerInfo => "the token's SignerInfo",
                    FormPart::DigestAlgorithms => "the token's digest algorithms",
                },
                reason,
            },
            SignerError::NoSignedAttributes => TsaError::NoSignedAttributes,
            SignerError::MissingAttribute { name } => TsaError::MissingAttribute { name },
            SignerError::AttributeNotSingle { name } => TsaError::AttributeNotSingle { name },
            SignerError::BadAttribute { name, reason } => TsaError::Malformed {
                what: match name {
                    "content-type" => "the token's content-type attribute",
                    "messageDigest" => "the token's messageDigest attribute",
                    _ => "a signed attribute of the token",
                },
                reason,
            },
            SignerError::ContentTypeMismatch { attribute, .. } => TsaError::ContentTypeAttribute {
                found: attribute.to_string(),
            },
            SignerError::MessageDigestMismatch {
                attribute,
                computed,
            } => TsaError::MessageDigestMismatch {
                attribute,
                computed,
            },
            SignerError::UnsupportedDigest { what, algorithm } => TsaError::UnsupportedDigest {
                what,
                algorithm: algorithm.to_string(),
            },
            SignerError::UnsupportedSignature { algorithm, key } => {
                TsaError::UnsupportedSignature {
                    algorithm: algorithm.to_string(),
                    key: key.to_string(),
                }
            }
            SignerError::SignerCertificateMissing { sid } => {
                TsaError::SignerCertificateMissing { sid }
            }
            SignerError::Encode { what, reason } => TsaError::Malformed { what, reason },
            SignerError::BadSignature { signer } => TsaError::BadSignature { signer },
        }
    }
}

/// Names of PKIStatus values (RFC 3161 §2.4.2).
fn status_name(status: u32) -> &'static str {
    match status {
        0 => "granted",
        1 => "grantedWithMods",
        2 => "rejection",
        3 => "waiting",
        4 => "revocationWarning",
        5 => "revocationNotification",
        _ => "unknown",
    }
}

/// The names of PKIFailureInfo bits that RFC 3161 defines.
fn failure_name(bit: usize) -> Option<&'static str> {
    Some(match bit {
        0 => "badAlg",
        2 => "badRequest",
        5 => "badDataFormat",
        14 => "timeNotAvailable",
        15 => "unacceptedPolicy",
        16 => "unacceptedExtension",
        17 => "addInfoNotAvailable",
        25 => "systemFailure",
        _ => return None,
    })
}

/// The status strings, for the refusal's message.
fn free_text(text: &[String]) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": \"{}\"", text.join("; "))
    }
}

/// What a verified token says, and who said it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StampTime {
    /// genTime, Unix milliseconds.
    pub unix_ms: i64,
    /// The accuracy the TSA claims, milliseconds, when it states one.
    pub accuracy_ms: Option<u64>,
    /// The token's serial number, hex.
    pub serial: String,
    /// The TSA's name as the token states it (the `tsa` field), when it does.
    pub tsa_name: Option<String>,
    /// The subject of the certificate whose signature verified.
    pub signer: String,
    /// The TSA policy under which the token was issued (an OID).
    pub policy: String,
    /// The root the token stamps.
    pub root: Digest,
    /// What the anchors' CRLs say about the TSA's chain at genTime.
    pub revocation: Revocation,
}

/// One document's stamp, stored with it: the batch's token and the document's path to the
/// token's root. In JSON the token is hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeStamp {
    /// The time-stamp token as the TSA sent it: a CMS ContentInfo, DER (what
    /// `openssl ts -verify -token_in` reads).
    #[serde(with = "hex_bytes")]
    pub token: Vec<u8>,
    /// From the document's leaf to the root.
    pub path: Path,
}

/// `Vec<u8>` as a hex string.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        hex::decode(text.as_bytes()).map_err(serde::de::Error::custom)
    }
}

/// What a token must stamp, and what else it is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The value the imprint must hold (the batch root).
    pub root: Digest,
    /// The nonce the request sent (known only when the response comes in).
    pub nonce: Option<&'a [u8]>,
    /// The policy the request asked for.
    pub policy: Option<&'a ObjectIdentifier>,
    /// Certificates given besides the token's (the TSA's, its intermediates), DER.
    pub certificates: &'a [Vec<u8>],
}

impl Expected<'_> {
    /// Only the root, with the token's own certificates.
    pub fn root(root: Digest) -> Expected<'static> {
        Expected {
            root,
            nonce: None,
            policy: None,
            certificates: &[],
        }
    }
}

/// A request for one batch, kept until its response comes in.
#[derive(Debug, Clone)]
pub struct BatchRequest {
    tree: Tree,
    nonce: [u8; NONCE_LEN],
    policy: Option<ObjectIdentifier>,
    der: Vec<u8>,
}

impl BatchRequest {
    /// Builds the tree over the documents' leaf digests ([`leaf_digest`] of each signature, in
    /// the order that [`StampedBatch::stamp`] will use) and the request for its root.
    pub fn new(leaves: &[Digest], policy: Option<ObjectIdentifier>) -> Result<Self, TsaError> {
        let tree = Tree::build(leaves)?;
        let mut nonce = [0u8; NONCE_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| TsaError::Random)?;
        // A positive INTEGER in its shortest form: first byte 0x01..=0x7f.
        nonce[0] = (nonce[0] & 0x7f).max(1);
        let req = TimeStampReq {
            version: 1,
            message_imprint: MessageImprint {
                hash_algorithm: AlgorithmIdentifierOwned {
                    oid: ID_SHA_256,
                    parameters: Some(Any::null()),
                },
                hashed_message: OctetString::new(tree.root().as_bytes().to_vec())
                    .map_err(TsaError::Encode)?,
            },
            req_policy: policy,
            nonce: Some(Int::new(&nonce).map_err(TsaError::Encode)?),
            cert_req: true,
            extensions: None,
        };
        let der = req.to_der().map_err(TsaError::Encode)?;
        Ok(BatchRequest {
            tree,
            nonce,
            policy,
            der,
        })
    }

    /// The `TimeStampReq`, DER: the body to post.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The root the request asks to stamp.
    pub fn root(&self) -> Digest {
        self.tree.root()
    }

    /// How many documents the batch holds.
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Always false: a batch has at least one document.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Reads the TSA's `TimeStampResp` and checks its token against this request and `anchors`
    /// (see the module's documentation). The request stays usable after a refusal, e.g. to
    /// ask another TSA.
    pub fn accept(&self, response: &[u8], anchors: &Anchors) -> Result<StampedBatch<'_>, TsaError> {
        let token = token_from_response(response)?;
        let time = verify_token(
            &token,
            &Expected {
                root: self.tree.root(),
                nonce: Some(&self.nonce),
                policy: self.policy.as_ref(),
                certificates: &[],
            },
            anchors,
        )?;
        Ok(StampedBatch {
            request: self,
            token,
            time,
        })
    }
}

/// A batch whose token verified: made only by [`BatchRequest::accept`].
#[derive(Debug, Clone)]
pub struct StampedBatch<'a> {
    request: &'a BatchRequest,
    token: Vec<u8>,
    time: StampTime,
}

impl StampedBatch<'_> {
    /// What the token says.
    pub fn time(&self) -> &StampTime {
        &self.time
    }

    /// The token, DER.
    pub fn token(&self) -> &[u8] {
        &self.token
    }

    /// The stamp of the document at `index` (its place among the leaves given to
    /// [`BatchRequest::new`]), or None past the end.
    pub fn stamp(&self, index: usize) -> Option<TimeStamp> {
        Some(TimeStamp {
            token: self.token.clone(),
            path: self.request.tree.path(index)?,
        })
    }
}

/// Reads a `TimeStampResp` and returns its token, DER, when the TSA granted the request;
/// the token is not checked here.
pub fn token_from_response(response: &[u8]) -> Result<Vec<u8>, TsaError> {
    if response.len() > MAX_RESPONSE_BYTES {
        return Err(TsaError::TooLarge {
            what: "the time-stamp response",
            len: response.len(),
            limit: MAX_RESPONSE_BYTES,
        });
    }
    let resp = TimeStampResp::from_der(response).map_err(|e| TsaError::Malformed {
        what: "the time-stamp response",
        reason: e.to_string(),
    })?;
    if resp.status.status > 1 {
        let failures = resp
            .status
            .fail_info
            .iter()
            .flat_map(|bits| bits.bits().enumerate().filter(|(_, set)| *set))
            .map(|(bit, _)| failure_name(bit).map_or_else(|| format!("bit {bit}"), String::from))
            .collect();
        return Err(TsaError::Refused {
            status: resp.status.status,
            failures,
            text: resp.status.status_string.unwrap_or_default(),
        });
    }
    let token = resp.time_stamp_token.ok_or(TsaError::NoToken)?;
    token.to_der().map_err(|e| TsaError::Malformed {
        what: "the time-stamp token",
        reason: e.to_string(),
    })
}

/// Checks one document's stored stamp: its leaf from `signature`, the path to the root, and
/// the token over that root, with the TSA certificates the token carries.
pub fn verify_document_stamp(
    signature: &[u8],
    stamp: &TimeStamp,
    anchors: &Anchors,
) -> Result<StampTime, TsaError> {
    verify_document_stamp_with(signature, stamp, &[], anchors)
}

/// [`verify_document_stamp`] with TSA certificates (DER) given besides the token's, for a token
/// issued without them.
pub fn verify_document_stamp_with(
    signature: &[u8],
    stamp: &TimeStamp,
    certificates: &[Vec<u8>],
    anchors: &Anchors,
) -> Result<StampTime, TsaError> {
    let root = stamp.path.root_from(&leaf_digest(signature))?;
    verify_token(
        &stamp.token,
        &Expected {
            certificates,
            ..Expected::root(root)
        },
        anchors,
    )
}

/// Checks a token (a CMS ContentInfo, DER) against what is expected and the anchors; see the
/// module's documentation for the list.
pub fn verify_token(
    token: &[u8],
    expected: &Expected<'_>,
    anchors: &Anchors,
) -> Result<StampTime, TsaError> {
    let signed = verify_signed(token, Imprint::Root(expected.root), expected.certificates)?;
    let tst = &signed.tst;
    if let Some(nonce) = expected.nonce {
        let in_token = tst.nonce.as_ref().ok_or_else(|| TsaError::NonceMissing {
            expected: hex::encode(nonce),
        })?;
        if in_token.as_bytes() != nonce {
            return Err(TsaError::NonceMismatch {
                in_token: hex::encode(in_token.as_bytes()),
                expected: hex::encode(nonce),
            });
        }
    }
    if let Some(policy) = expected.policy {
        if tst.policy != *policy {
            return Err(TsaError::PolicyMismatch {
                in_token: tst.policy.to_string(),
                expected: policy.to_string(),
            });
        }
    }
    let verified = signed.verify_chain(anchors)?;
    Ok(StampTime {
        unix_ms: signed.unix_ms(),
        accuracy_ms: tst.accuracy.as_ref().map(|a| {
            a.seconds.unwrap_or(0).saturating_mul(1000)
                + u64::from(a.millis.unwrap_or(0))
                // Microseconds round up to the next millisecond.
                + u64::from(a.micros.unwrap_or(0) > 0)
        }),
        serial: hex::encode(tst.serial_number.as_bytes()),
        tsa_name: tst.tsa.as_ref().map(general_name),
        signer: verified.subject,
        policy: tst.policy.to_string(),
        root: expected.root,
        revocation: verified.revocation,
    })
}

/// What a token's imprint must hold, with its hash algorithm.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Imprint<'a> {
    /// SHA-256, and this value itself: a batch root (the root is what is stamped, not a hash
    /// of it).
    Root(Digest),
    /// The hash of these bytes, one part after the other, with whichever of SHA-256, SHA-384
    /// or SHA-512 the token names: a PDF signature's value, or the byte ranges a document
    /// time-stamp covers.
    HashOf(&'a [&'a [u8]]),
}

/// A token whose CMS signature, signing-certificate attribute and imprint hold, its TSA's
/// chain not yet checked: made only by [`verify_signed`].
#[derive(Debug)]
pub(crate) struct SignedToken {
    tst: TstInfo,
    /// The TSA's certificate, DER.
    tsa_der: Vec<u8>,
    /// The other certificates of the token and those given, DER.
    intermediates: Vec<Vec<u8>>,
}

impl SignedToken {
    /// genTime, Unix milliseconds.
    pub(crate) fn unix_ms(&self) -> i64 {
        self.tst.gen_time.unix_ms()
    }

    /// The certificate whose signature verified, DER.
    pub(crate) fn tsa_certificate(&self) -> &[u8] {
        &self.tsa_der
    }

    /// The TSA's certificate chained to `anchors` at genTime, with the timeStamping extended
    /// key usage.
    pub(crate) fn verify_chain(&self, anchors: &Anchors) -> Result<VerifiedChain, ChainError> {
        chain::verify_chain(
            &self.tsa_der,
            &self.intermediates,
            anchors,
            self.unix_ms().div_euclid(1000),
            Some(&ID_KP_TIME_STAMPING),
        )
    }
}

/// Everything [`verify_token`] checks but the nonce, the policy and the chain: the token's
/// form, its signer, its signing-certificate attribute, and that its imprint is `imprint`.
pub(crate) fn verify_signed(
    token: &[u8],
    imprint: Imprint<'_>,
    certificates: &[Vec<u8>],
) -> Result<SignedToken, TsaError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TsaError::TooLarge {
            what: "the time-stamp token",
            len: token.len(),
            limit: MAX_TOKEN_BYTES,
        });
    }
    let malformed = |what: &'static str| {
        move |e: der::Error| TsaError::Malformed {
            what,
            reason: e.to_string(),
        }
    };
    let info = ContentInfo::from_der(token).map_err(malformed("the time-stamp token"))?;
    if info.content_type != ID_SIGNED_DATA {
        return Err(TsaError::NotSignedData {
            found: info.content_type.to_string(),
        });
    }
    let signed: SignedData = info
        .content
        .decode_as()
        .map_err(malformed("the token's SignedData"))?;
    let encap = &signed.encap_content_info;
    if encap.econtent_type != ID_CT_TST_INFO {
        return Err(TsaError::NotTstInfo {
            found: encap.econtent_type.to_string(),
        });
    }
    let content: OctetString = encap
        .econtent
        .as_ref()
        .ok_or(TsaError::NoContent)?
        .decode_as()
        .map_err(malformed("the token's eContent"))?;
    let tst_der = content.as_bytes();
    let tst = TstInfo::from_der(tst_der).map_err(malformed("the token's TSTInfo"))?;
    if tst.version != 1 {
        return Err(TsaError::Malformed {
            what: "the token's TSTInfo",
            reason: format!("version {}, not 1", tst.version),
        });
    }

    let certs = token_certificates(&signed, certificates)?;
    let signer = cms_sig::verify_signer(&signed, &certs, &[tst_der])?;
    check_signing_certificate(signer.attrs, signer.cert, &signer.cert_der)?;
    check_imprint(&tst.message_imprint, imprint)?;
    Ok(SignedToken {
        tst,
        tsa_der: signer.cert_der,
        intermediates: signer.other_certs,
    })
}

/// The token's certificates, then those given.
fn token_certificates(
    signed: &SignedData,
    given: &[Vec<u8>],
) -> Result<Vec<Certificate>, TsaError> {
    let mut out: Vec<Certificate> = cms_sig::certificates(signed).cloned().collect();
    for der in given {
        out.push(Certificate::from_der(der).map_err(|e| TsaError::Malformed {
            what: "a TSA certificate given",
            reason: e.to_string(),
        })?);
    }
    Ok(out)
}

/// When the token carries a signing-certificate attribute (v2 or v1), its first certificate
/// identifier must be the signer's certificate.
fn check_signing_certificate(
    attrs: &SignedAttributes,
    cert: &Certificate,
    cert_der: &[u8],
) -> Result<(), TsaError> {
    if let Some(value) =
        cms_sig::single_attribute(attrs, ID_AA_SIGNING_CERTIFICATE_V_2, "signingCertificateV2")?
    {
        let attribute = "ESSCertIDv2";
        let v2: SigningCertificateV2 = value.decode_as().map_err(|e| TsaError::Malformed {
            what: "the token's signingCertificateV2 attribute",
            reason: e.to_string(),
        })?;
        let id: &EssCertIdV2 = v2.certs.first().ok_or(TsaError::Malformed {
            what: "the token's signingCertificateV2 attribute",
            reason: "no ESSCertIDv2".into(),
        })?;
        let hash = match &id.hash_algorithm {
            None => Hash::Sha256,
            Some(alg) => Hash::from_oid(&alg.oid, "the ESSCertIDv2")?,
        };
        same_hash(
            attribute,
            id.cert_hash.as_bytes(),
            hash.digest(cert_der).as_ref(),
        )?;
        return check_issuer_serial(attribute, id.issuer_serial.as_ref(), cert);
    }
    if let Some(value) =
        cms_sig::single_attribute(attrs, ID_AA_SIGNING_CERTIFICATE, "signingCertificate")?
    {
        let attribute = "ESSCertID";
        let v1: SigningCertificate = value.decode_as().map_err(|e| TsaError::Malformed {
            what: "the token's signingCertificate attribute",
            reason: e.to_string(),
        })?;
        let id = v1.certs.first().ok_or(TsaError::Malformed {
            what: "the token's signingCertificate attribute",
            reason: "no ESSCertID".into(),
        })?;
        // ESSCertID is SHA-1 by definition; it only names the certificate (the signature and
        // the chain are what is trusted), so SHA-1 is no weakness here.
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, cert_der);
        same_hash(attribute, id.cert_hash.as_bytes(), sha1.as_ref())?;
        return check_issuer_serial(attribute, id.issuer_serial.as_ref(), cert);
    }
    Ok(())
}

/// The attribute's certificate hash must equal the certificate's.
fn same_hash(attribute: &'static str, in_token: &[u8], certificate: &[u8]) -> Result<(), TsaError> {
    if in_token == certificate {
        Ok(())
    } else {
        Err(TsaError::EssCertIdMismatch {
            attribute,
            in_token: hex::encode(in_token),
            certificate: hex::encode(certificate),
        })
    }
}

/// When given, the issuer and serial must be the certificate's.
fn check_issuer_serial(
    attribute: &'static str,
    issuer_serial: Option<&IssuerSerial>,
    cert: &Certificate,
) -> Result<(), TsaError> {
    let Some(is) = issuer_serial else {
        return Ok(());
    };
    let tbs = &cert.tbs_certificate;
    let issuer_named = is
        .issuer
        .iter()
        .any(|n| matches!(n, GeneralName::DirectoryName(name) if *name == tbs.issuer));
    if issuer_named && is.serial_number == tbs.serial_number {
        Ok(())
    } else {
        Err(TsaError::EssIssuerSerialMismatch { attribute })
    }
}

/// The imprint must be the one expected: for a root, SHA-256 and the root itself; for data,
/// its hash with the token's algorithm.
fn check_imprint(imprint: &MessageImprint, expected: Imprint<'_>) -> Result<(), TsaError> {
    let algorithm = &imprint.hash_algorithm.oid;
    let in_token = imprint.hashed_message.as_bytes();
    match expected {
        Imprint::Root(root) => {
            if *algorithm != ID_SHA_256 {
                return Err(TsaError::ImprintAlgorithm {
                    found: if *algorithm == ID_SHA_1 {
                        "SHA-1".into()
                    } else {
                        algorithm.to_string()
                    },
                });
            }
            if in_token == root.as_bytes() {
                Ok(())
            } else {
                Err(TsaError::ImprintMismatch {
                    in_token: hex::encode(in_token),
                    expected: root,
                })
            }
        }
        Imprint::HashOf(parts) => {
            let hash = Hash::from_oid(algorithm, "the token's imprint")?;
            let computed = hash.digest_parts(parts);
            if in_token == computed.as_ref() {
                Ok(())
            } else {
                Err(TsaError::ImprintNotOfData {
                    algorithm: hash.name(),
                    in_token: hex::encode(in_token),
                    computed: hex::encode(computed.as_ref()),
                })
            }
        }
    }
}

/// A GeneralName, readable.
fn general_name(name: &GeneralName) -> String {
    match name {
        GeneralName::DirectoryName(n) => n.to_string(),
        GeneralName::DnsName(d) => d.to_string(),
        GeneralName::UniformResourceIdentifier(u) => u.to_string(),
        GeneralName::Rfc822Name(m) => m.to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn request_is_sha256_of_the_root_with_nonce_and_cert_req() {
        let leaves = [leaf_digest(b"a"), leaf_digest(b"b")];
        let policy = ObjectIdentifier::new_unwrap("1.2.3.4.1");
        let req = BatchRequest::new(&leaves, Some(policy)).unwrap();
        let back = TimeStampReq::from_der(req.der()).unwrap();
        assert_eq!(back.version, 1);
        assert_eq!(back.message_imprint.hash_algorithm.oid, ID_SHA_256);
        assert_eq!(
            back.message_imprint.hashed_message.as_bytes(),
            req.root().as_bytes()
        );
        assert!(back.cert_req);
        assert_eq!(back.req_policy, Some(policy));
        assert_eq!(back.nonce.unwrap().as_bytes(), req.nonce);
        let other = BatchRequest::new(&leaves, None).unwrap();
        assert_ne!(other.nonce, req.nonce);
        assert_eq!(other.root(), req.root());
    }

    #[test]
    fn a_refusal_names_status_failure_and_text() {
        // rejection, statusString "no", failInfo badAlg (bit 0) and timeNotAvailable (bit 14).
        let response = asn1::TimeStampResp {
            status: asn1::PkiStatusInfo {
                status: 2,
                status_string: Some(vec!["no".into()]),
                fail_info: Some(der::asn1::BitString::from_bytes(&[0x80, 0x02]).unwrap()),
            },
            time_stamp_token: None,
        }
        .to_der()
        .unwrap();
        let err = token_from_response(&response).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the TSA refused the request: status 2 (rejection), failure info \
             [badAlg, timeNotAvailable]: \"no\""
        );
    }

    #[test]
    fn the_signing_certificate_attribute_must_name_the_signer() {
        use der::asn1::SetOfVec;
        use x509_cert::attr::Attribute;

        let make = |name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let params = rcgen::CertificateParams::new(vec![name.into()]).unwrap();
            params.self_signed(&key).unwrap().der().to_vec()
        };
        let (der, other_der) = (make("tsa.test"), make("other.test"));
        let cert = Certificate::from_der(&der).unwrap();
        let other = Certificate::from_der(&other_der).unwrap();
        let attrs = |oid, value: Any| -> SignedAttributes {
            SetOfVec::try_from(vec![Attribute {
                oid,
                values: SetOfVec::try_from(vec![value]).unwrap(),
            }])
            .unwrap()
        };
        let v2 = |hash: &[u8], serial: Option<&Certificate>| {
            let id = EssCertIdV2 {
                hash_algorithm: None,
                cert_hash: OctetString::new(hash).unwrap(),
                issuer_serial: serial.map(|c| IssuerSerial {
                    issuer: vec![GeneralName::DirectoryName(c.tbs_certificate.issuer.clone())],
                    serial_number: c.tbs_certificate.serial_number.clone(),
                }),
            };
            let value = SigningCertificateV2 {
                certs: vec![id],
                policies: None,
            };
            attrs(
                ID_AA_SIGNING_CERTIFICATE_V_2,
                Any::encode_from(&value).unwrap(),
            )
        };
        let sha256 = |d: &[u8]| Hash::Sha256.digest(d).as_ref().to_vec();

        check_signing_certificate(&v2(&sha256(&der), Some(&cert)), &cert, &der).unwrap();
        let err = check_signing_certificate(&v2(&sha256(&other_der), None), &cert, &der);
        assert!(
            matches!(
                err,
                Err(TsaError::EssCertIdMismatch {
                    attribute: "ESSCertIDv2",
                    ..
                })
            ),
            "{err:?}"
        );
        let err = check_signing_certificate(&v2(&sha256(&der), Some(&other)), &cert, &der);
        assert!(
            matches!(err, Err(TsaError::EssIssuerSerialMismatch { .. })),
            "{err:?}"
        );

        let v1 = |hash: &[u8]| {
            let value = SigningCertificate {
                certs: vec![asn1::EssCertId {
                    cert_hash: OctetString::new(hash).unwrap(),
                    issuer_serial: None,
                }],
                policies: None,
            };
            attrs(ID_AA_SIGNING_CERTIFICATE, Any::encode_from(&value).unwrap())
        };
        let sha1 = |d: &[u8]| {
            ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, d)
                .as_ref()
                .to_vec()
        };
        check_signing_certificate(&v1(&sha1(&der)), &cert, &der).unwrap();
        let err = check_signing_certificate(&v1(&sha1(&other_der)), &cert, &der);
        assert!(
            matches!(
                err,
                Err(TsaError::EssCertIdMismatch {
                    attribute: "ESSCertID",
                    ..
                })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn stamp_json_is_hex_token_and_path() {
        let stamp = TimeStamp {
            token: vec![0x30, 0x00],
            path: Path::default(),
        };
        let json = serde_json::to_string(&stamp).unwrap();
        assert_eq!(json, r#"{"token":"3000","path":[]}"#);
        assert_eq!(serde_json::from_str::<TimeStamp>(&json).unwrap(), stamp);
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for bytes in [&b""[..], b"\x30", b"\x30\x03\x02\x01", &[0xff; 40]] {
            assert!(matches!(
                token_from_response(bytes),
                Err(TsaError::Malformed { .. })
            ));
            assert!(matches!(
                verify_token(
                    bytes,
                    &Expected::root(leaf_digest(b"x")),
                    &Anchors::default()
                ),
                Err(TsaError::Malformed { .. })
            ));
        }
    }
}
