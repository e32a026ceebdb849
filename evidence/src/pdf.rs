//! The signatures inside a PDF: found, checked, and reported one by one; a PDF is never
//! refused for what its signatures say.
//!
//! For each signature dictionary (`/ByteRange` and `/Contents`, in any revision) [`check_pdf`]
//! checks, in order, and stops at the first failure:
//! 1. the `/ByteRange`: four numbers, from the first byte, inside the file, its hole exactly
//!    this dictionary's `/Contents` string;
//! 2. the CMS SignedData in `/Contents` (`adbe.pkcs7.detached`, `ETSI.CAdES.detached`), by the
//!    CMS signer check time-stamp tokens use too: one signer in the form RFC 5652 fixes, the
//!    digest of the covered bytes against the signed `messageDigest`, and the signature over
//!    the signed attributes with the signer's certificate;
//! 3. an embedded time-stamp token (id-aa-timeStampToken), by the token check of
//!    [`crate::tsa`]: its TSA signature, its signing-certificate attribute, its imprint (the
//!    hash of the signature value), its TSA chain to the same anchors;
//! 4. the signer's chain to the anchors at the signing time (the time-stamp's when it
//!    verified, else the claimed signingTime, else `/M`), with CRLs when the anchors carry them.
//!
//! A document time-stamp (`/SubFilter /ETSI.RFC3161`) is checked as the token it is, over the
//! covered bytes. Then, separately from the verdict, whether the bytes after the signed range
//! are only later signatures' own incremental updates: anything else is a change after signing.
//!
//! Not checked: what a later signature's own update changes (it is vouched for by that later
//! signer, not compared object by object), the signer's ESS signing-certificate attribute (a
//! time-stamp token's is), OCSP responses and revocation data embedded in the PDF (`/DSS`).

mod signer;
mod syntax;
mod timestamp;

use std::collections::HashMap;
use std::ops::Range;

use serde::Serialize;

use crate::chain::{self, Anchors, ChainError, Revocation};
use syntax::{Dict, IndirectObject, Object};

/// The most signature dictionaries examined in one file; more are not reported.
pub const MAX_SIGNATURES: usize = 256;

/// Why bytes could not be examined at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PdfError {
    /// The bytes do not start like a PDF (no `%PDF-` header in the first KiB).
    #[error("not a PDF: no %PDF- header in the first KiB")]
    NotPdf,
}

/// One signature found in a PDF, and what came of checking it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PdfSignature {
    /// The signature field's name (`/T`, with its parents'), when a field points at it.
    pub field: Option<String>,
    /// `signature` or `document_time_stamp`.
    pub kind: SignatureKind,
    /// The dictionary's `/SubFilter`.
    pub sub_filter: Option<String>,
    /// The signer: the subject of the signing certificate (common name first), else the
    /// dictionary's `/Name`.
    pub signer: Option<String>,
    /// When it says it was signed (Unix seconds): CMS signingTime, else the dictionary's `/M`.
    pub signing_time_unix: Option<i64>,
    /// The same, readable (UTC).
    pub signing_time: Option<String>,
    /// Where the signing time comes from.
    pub signing_time_source: Option<TimeSource>,
    /// The verdict on this signature.
    pub verdict: Verdict,
    /// The `/ByteRange` as written (offset, length, offset, length), when readable.
    pub byte_range: Option<[u64; 4]>,
    /// The signature covers the whole file, up to its last byte.
    pub covers_whole_file: bool,
    /// Bytes after the signed range other than later signatures' own incremental updates.
    pub changed_after_signing: bool,
    /// What follows the signed range, update by update.
    pub later_updates: Vec<LaterUpdate>,
    /// The embedded time-stamp, when there is one (for a document time-stamp, itself).
    pub time_stamp: Option<SignatureTimeStamp>,
    /// What the anchors' CRLs say about the signer's chain, when it verified and the anchors
    /// carry CRLs.
    pub revocation: Option<Revocation>,
}

/// What a signature dictionary holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureKind {
    /// A signer's CMS signature.
    Signature,
    /// An RFC 3161 time-stamp over the document (`ETSI.RFC3161`).
    DocumentTimeStamp,
}

/// Where a signing time was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSource {
    /// The signer's signingTime attribute (the signer's claim).
    CmsSigningTime,
    /// The signature dictionary's `/M` (the signer's claim, not signed).
    DictionaryM,
    /// The time-stamp's genTime (a document time-stamp).
    TimeStamp,
}

/// The verdict on one signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Verdict {
    /// Everything checked holds.
    Valid,
    /// Something does not hold: the bytes, the signature, a certificate, a time-stamp.
    Invalid {
        /// What failed.
        why: String,
    },
    /// The signature verifies with its certificate, but the certificate does not chain to a
    /// trust anchor.
    UnknownSigner {
        /// What the chain check said.
        why: String,
    },
}

impl Verdict {
    /// Whether the verdict is [`Verdict::Valid`].
    pub fn is_valid(&self) -> bool {
        matches!(self, Verdict::Valid)
    }
}

/// An incremental update after a signature's range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaterUpdate {
    /// Its byte range in the file (start, end).
    pub bytes: [u64; 2],
    /// The later signature whose own update this is (its field name, or `?`), if any.
    pub signature: Option<String>,
}

/// A time-stamp token inside a PDF and what came of checking it (not to be confused with
/// [`crate::tsa::TimeStamp`], a batch token and a document's path, stored with the document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureTimeStamp {
    /// Its time (genTime), Unix seconds, when the token could be read.
    pub time_unix: Option<i64>,
    /// The same, readable (UTC).
    pub time: Option<String>,
    /// The TSA: the subject of its certificate.
    pub tsa: Option<String>,
    /// The verdict on the token.
    pub status: TimeStampStatus,
}

/// The verdict on a time-stamp token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TimeStampStatus {
    /// Signature, imprint and TSA chain hold.
    Valid,
    /// The token does not verify or is not over this signature.
    Invalid {
        /// What failed.
        why: String,
    },
    /// The token verifies but its TSA does not chain to a trust anchor.
    UnknownTsa {
        /// What the chain check said.
        why: String,
    },
}

/// Finds and checks every signature of `pdf` against `anchors`. `Err` only when the bytes are
/// not a PDF; a PDF without signatures gives an empty list. See the module's documentation.
pub fn check_pdf(pdf: &[u8], anchors: &Anchors) -> Result<Vec<PdfSignature>, PdfError> {
    if !syntax::looks_like_pdf(pdf) {
        return Err(PdfError::NotPdf);
    }
    let objects = syntax::indirect_objects(pdf);
    let fields = field_names(&objects);
    let mut found: Vec<(&IndirectObject, &Dict)> = Vec::new();
    for obj in &objects {
        let Object::Dict(d) = &obj.value else {
            continue;
        };
        if d.get("ByteRange").is_some() && d.get("Contents").is_some() {
            found.push((obj, d));
        }
        if found.len() == MAX_SIGNATURES {
            break;
        }
    }
    let ranges: Vec<Option<[u64; 4]>> = found.iter().map(|(_, d)| byte_range(d)).collect();
    let revisions = syntax::revision_ends(pdf);
    let mut out = Vec::new();
    for (i, (obj, dict)) in found.iter().enumerate() {
        // A dictionary written again by a later update (same object, same range) is the
        // same signature: only the copy whose /Contents is the hole is reported.
        let same = |j: &usize| {
            ranges[i].is_some() && ranges[*j] == ranges[i] && found[*j].0.num == obj.num
        };
        let kept = (0..found.len())
            .filter(same)
            .find(|&j| hole_matches(found[j].1, ranges[j]))
            .or_else(|| (0..found.len()).find(same))
            .unwrap_or(i);
        let repeated = kept != i;
        if repeated {
            continue;
        }
        let field = fields.get(&(obj.num, obj.gen)).cloned();
        let mut sig = check_one(pdf, dict, ranges[i], field, anchors);
        let others: Vec<(Option<String>, [u64; 4])> = found
            .iter()
            .zip(&ranges)
            .filter_map(|((o, _), r)| Some((fields.get(&(o.num, o.gen)).cloned(), (*r)?)))
            .collect();
        if let Some(range) = ranges[i] {
            after_signing(&mut sig, pdf, range, &revisions, &others);
        }
        out.push(sig);
    }
    Ok(out)
}

/// The field name of every signature value (`/V n g R` of a field), with its parents'
/// partial names; the last definition of an object counts.
fn field_names(objects: &[IndirectObject]) -> HashMap<(u32, u16), String> {
    let mut latest: HashMap<(u32, u16), &Dict> = HashMap::new();
    for obj in objects {
        if let Object::Dict(d) = &obj.value {
            latest.insert((obj.num, obj.gen), d);
        }
    }
    let mut names = HashMap::new();
    for d in latest.values() {
        let Some(Object::Ref(n, g)) = d.get("V") else {
            continue;
        };
        let Some(t) = d.string("T") else { continue };
        let mut name = syntax::text_string(t);
        let mut parent = d.get("Parent");
        for _ in 0..syntax::MAX_NESTING {
            let Some(Object::Ref(pn, pg)) = parent else {
                break;
            };
            let Some(p) = latest.get(&(*pn, *pg)) else {
                break;
            };
            if let Some(pt) = p.string("T") {
                name = format!("{}.{name}", syntax::text_string(pt));
            }
            parent = p.get("Parent");
        }
        names.insert((*n, *g), name);
    }
    names
}

fn byte_range(dict: &Dict) -> Option<[u64; 4]> {
    let Some(Object::Array(items)) = dict.get("ByteRange") else {
        return None;
    };
    let mut out = [0u64; 4];
    if items.len() != 4 {
        return None;
    }
    for (slot, item) in out.iter_mut().zip(items) {
        let Object::Int(n) = item else { return None };
        *slot = u64::try_from(*n).ok()?;
    }
    Some(out)
}

fn contents_span(dict: &Dict) -> Option<&Range<usize>> {
    match dict.get("Contents") {
        Some(Object::Str { span, .. }) => Some(span),
        _ => None,
    }
}

fn hole_matches(dict: &Dict, range: Option<[u64; 4]>) -> bool {
    let (Some([a, b, c, _]), Some(span)) = (range, contents_span(dict)) else {
        return false;
    };
    a == 0
        && usize::try_from(b).ok() == Some(span.start)
        && usize::try_from(c).ok() == Some(span.end)
}

/// The covered ranges of a sane `/ByteRange`, or why it is not.
fn covered(pdf: &[u8], dict: &Dict, range: Option<[u64; 4]>) -> Result<[Range<usize>; 2], String> {
    let [a, b, c, d] =
        range.ok_or("its /ByteRange is not four non-negative integers".to_string())?;
    let as_usize =
        |v: u64| usize::try_from(v).map_err(|_| "its /ByteRange is too large".to_string());
    let (a, b, c, d) = (as_usize(a)?, as_usize(b)?, as_usize(c)?, as_usize(d)?);
    if a != 0 {
        return Err("its /ByteRange does not start at the first byte".into());
    }
    let end = c
        .checked_add(d)
        .filter(|&e| e <= pdf.len() && b < c)
        .ok_or("its /ByteRange does not fit in the file".to_string())?;
    let span = contents_span(dict).ok_or("its /Contents is not a string".to_string())?;
    if span.start != b || span.end != c {
        return Err(format!(
            "the gap in its /ByteRange ({b}..{c}) is not its /Contents string ({}..{})",
            span.start, span.end
        ));
    }
    if pdf.get(b) != Some(&b'<') || pdf.get(c - 1) != Some(&b'>') {
        return Err("its /Contents is not a hexadecimal string".into());
    }
    Ok([0..b, c..end])
}

fn check_one(
    pdf: &[u8],
    dict: &Dict,
    range: Option<[u64; 4]>,
    field: Option<String>,
    anchors: &Anchors,
) -> PdfSignature {
    let sub_filter = dict
        .name("SubFilter")
        .map(|n| String::from_utf8_lossy(n).into_owned());
    let kind = if sub_filter.as_deref() == Some("ETSI.RFC3161") {
        SignatureKind::DocumentTimeStamp
    } else {
        SignatureKind::Signature
    };
    let m_time = dict.string("M").and_then(syntax::pdf_date);
    let mut sig = PdfSignature {
        field,
        kind,
        sub_filter: sub_filter.clone(),
        signer: dict.string("Name").map(syntax::text_string),
        signing_time_unix: m_time,
        signing_time: m_time.map(chain::utc),
        signing_time_source: m_time.map(|_| TimeSource::DictionaryM),
        verdict: Verdict::Valid,
        byte_range: range,
        covers_whole_file: false,
        changed_after_signing: false,
        later_updates: Vec::new(),
        time_stamp: None,
        revocation: None,
    };
    let invalid = |why: String| Verdict::Invalid { why };
    let ranges = match covered(pdf, dict, range) {
        Ok(r) => r,
        Err(why) => {
            sig.verdict = invalid(why);
            return sig;
        }
    };
    let signed_bytes = ranges.clone().map(|r| pdf.get(r).unwrap_or_default());
    let contents = dict.string("Contents").unwrap_or_default();
    match sub_filter.as_deref() {
        Some("ETSI.RFC3161") => {
            let ts = timestamp::check_token(contents, &signed_bytes, anchors);
            sig.signer.clone_from(&ts.tsa);
            if let Some(t) = ts.time_unix {
                sig.signing_time_unix = Some(t);
                sig.signing_time = Some(chain::utc(t));
                sig.signing_time_source = Some(TimeSource::TimeStamp);
            }
            sig.verdict = match &ts.status {
                TimeStampStatus::Valid => Verdict::Valid,
                TimeStampStatus::Invalid { why } => invalid(why.clone()),
                TimeStampStatus::UnknownTsa { why } => Verdict::UnknownSigner { why: why.clone() },
            };
            sig.time_stamp = Some(ts);
            return sig;
        }
        None | Some("adbe.pkcs7.detached" | "ETSI.CAdES.detached") => {}
        Some(other) => {
            sig.verdict = invalid(format!("its sub-filter {other} is not supported"));
            return sig;
        }
    }
    let sd = match signer::parse_signed_data(contents) {
        Ok(sd) => sd,
        Err(e) => {
            sig.verdict = invalid(e.to_string());
            return sig;
        }
    };
    if let Some(name) = signer::signer_certificate(&sd).and_then(|c| chain::subject_of(&c)) {
        sig.signer = Some(name);
    }
    if sd.encap_content_info.econtent.is_some() {
        sig.verdict =
            invalid("the CMS carries the content itself; a PDF signature is detached".into());
        return sig;
    }
    let verified = match signer::verify_signer(&sd, &signed_bytes) {
        Ok(v) => v,
        Err(e) => {
            sig.verdict = invalid(e.to_string());
            return sig;
        }
    };
    if let Some(t) = verified.signing_time {
        sig.signing_time_unix = Some(t);
        sig.signing_time = Some(chain::utc(t));
        sig.signing_time_source = Some(TimeSource::CmsSigningTime);
    }
    // The embedded time-stamp is over the signature value (RFC 3161 appendix A).
    let token = signer::first_signer(&sd)
        .and_then(|si| timestamp::embedded_token(si).map(|t| (t, si.signature.as_bytes())));
    if let Some((token, value)) = token {
        sig.time_stamp = Some(timestamp::check_token(&token, &[value], anchors));
    }
    let trusted_time = sig
        .time_stamp
        .as_ref()
        .filter(|ts| ts.status == TimeStampStatus::Valid)
        .and_then(|ts| ts.time_unix);
    let at = trusted_time
        .or(sig.signing_time_unix)
        .unwrap_or_else(now_unix);
    sig.verdict = match chain::verify_chain(
        &verified.cert_der,
        &verified.other_certs,
        anchors,
        at,
        None,
    ) {
        Ok(chain) => {
            sig.signer = Some(chain.subject);
            // Without CRLs there is nothing to say: "unknown" on every line would be noise.
            sig.revocation = anchors.has_crls().then_some(chain.revocation);
            match chain.revocation {
                Revocation::Revoked { at_unix } if trusted_time.is_none() => invalid(format!(
                    "the signer's certificate was revoked at {}; that it signed before is only its own claim (no valid time-stamp)",
                    chain::utc(at_unix)
                )),
                _ => Verdict::Valid,
            }
        }
        Err(e @ ChainError::UnknownIssuer { .. }) => Verdict::UnknownSigner { why: e.to_string() },
        Err(e) => invalid(format!("the signer's certificate: {e}")),
    };
    if sig.verdict.is_valid() {
        if let Some(TimeStampStatus::Invalid { why }) = sig.time_stamp.as_ref().map(|t| &t.status) {
            sig.verdict = invalid(format!("its time-stamp: {why}"));
        }
    }
    sig
}

/// Fills what follows the signed range: each later revision, a later signature's own update
/// or a change.
fn after_signing(
    sig: &mut PdfSignature,
    pdf: &[u8],
    range: [u64; 4],
    revisions: &[usize],
    signatures: &[(Option<String>, [u64; 4])],
) {
    let Some(end) = range[2]
        .checked_add(range[3])
        .and_then(|e| usize::try_from(e).ok())
    else {
        return;
    };
    if end >= pdf.len() {
        sig.covers_whole_file = end == pdf.len();
        return;
    }
    let mut start = end;
    let mut cuts: Vec<usize> = revisions.iter().copied().filter(|&r| r > end).collect();
    let tail_is_blank = pdf
        .get(cuts.last().copied().unwrap_or(end)..)
        .is_some_and(|t| t.iter().all(|c| c.is_ascii_whitespace() || *c == 0));
    if !tail_is_blank {
        cuts.push(pdf.len());
    }
    for cut in cuts {
        // A later signature's own update: its signed range ends where this revision ends and
        // its /Contents lies inside it.
        let own = signatures
            .iter()
            .find(|(_, r)| r[2].checked_add(r[3]) == Some(cut as u64) && r[1] >= start as u64);
        let signature = own.map(|(f, _)| f.clone().unwrap_or_else(|| "?".into()));
        if signature.is_none() {
            sig.changed_after_signing = true;
        }
        sig.later_updates.push(LaterUpdate {
            bytes: [start as u64, cut as u64],
            signature,
        });
        start = cut;
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use der::{Decode, Encode};

    const TWO: &[u8] = include_bytes!("../testdata/two-signatures.pdf");
    const UNSIGNED: &[u8] = include_bytes!("../testdata/unsigned.pdf");
    const ANCHORS: &[u8] = include_bytes!("../testdata/anchors.pem");

    fn anchors() -> Anchors {
        Anchors::from_pem(ANCHORS).unwrap()
    }

    fn invalid_why(s: &PdfSignature) -> &str {
        match &s.verdict {
            Verdict::Invalid { why } => why,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    /// `pdf` with one more incremental update that replaces the page's content stream.
    fn with_changed_page(pdf: &[u8]) -> Vec<u8> {
        let mut out = pdf.to_vec();
        let at = out.len();
        out.extend_from_slice(
            b"4 0 obj\n<< /Length 38 >>\nstream\nBT /F1 24 Tf 72 720 Td (Forged) Tj ET\nendstream\nendobj\n",
        );
        let xref = out.len();
        out.extend_from_slice(
            format!("xref\n4 1\n{at:010} 00000 n \ntrailer\n<< /Size 11 /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n")
                .as_bytes(),
        );
        out
    }

    #[test]
    fn two_incremental_signatures_verify() {
        let sigs = check_pdf(TWO, &anchors()).unwrap();
        assert_eq!(sigs.len(), 2);
        let (first, second) = (&sigs[0], &sigs[1]);
        assert_eq!(first.field.as_deref(), Some("Signature1"));
        assert_eq!(second.field.as_deref(), Some("Signature2"));
        assert_eq!(first.verdict, Verdict::Valid);
        assert_eq!(second.verdict, Verdict::Valid);
        assert_eq!(
            first.signer.as_deref(),
            Some("Nguyễn Văn An, O=UBND tỉnh Tây Ninh, C=VN")
        );
        assert_eq!(first.signing_time_source, Some(TimeSource::CmsSigningTime));
        assert_eq!(first.sub_filter.as_deref(), Some("adbe.pkcs7.detached"));
        let ts = first.time_stamp.as_ref().unwrap();
        assert_eq!(ts.status, TimeStampStatus::Valid);
        assert!(ts.tsa.as_deref().unwrap().starts_with("Test TSA"));
        assert!(second.time_stamp.is_none());
        // The first is followed only by the second's own update.
        assert!(!first.covers_whole_file);
        assert!(!first.changed_after_signing);
        assert_eq!(first.later_updates.len(), 1);
        assert_eq!(
            first.later_updates[0].signature.as_deref(),
            Some("Signature2")
        );
        assert!(second.covers_whole_file);
        assert!(!second.changed_after_signing);
        let json = serde_json::to_value(&sigs).unwrap();
        assert_eq!(json[0]["verdict"]["status"], "valid");
        assert_eq!(json[0]["time_stamp"]["status"]["status"], "valid");
    }

    #[test]
    fn not_a_pdf_is_the_only_error_and_no_signature_is_an_empty_list() {
        assert_eq!(
            check_pdf(b"PK\x03\x04 a zip", &anchors()),
            Err(PdfError::NotPdf)
        );
        assert_eq!(check_pdf(UNSIGNED, &anchors()), Ok(Vec::new()));
        assert_eq!(check_pdf(b"%PDF-1.7\n", &anchors()), Ok(Vec::new()));
    }

    #[test]
    fn a_byte_changed_inside_the_signed_range_is_invalid() {
        let mut pdf = TWO.to_vec();
        let at = syntax::find(&pdf, b"Cong van", 0).unwrap();
        pdf[at] = b'X';
        for s in check_pdf(&pdf, &anchors()).unwrap() {
            assert!(invalid_why(&s).contains("messageDigest"), "{s:?}");
        }
    }

    #[test]
    fn an_update_after_the_last_signature_is_a_change_after_signing() {
        let pdf = with_changed_page(TWO);
        let sigs = check_pdf(&pdf, &anchors()).unwrap();
        for s in &sigs {
            assert_eq!(s.verdict, Verdict::Valid);
            assert!(s.changed_after_signing, "{s:?}");
            assert!(!s.covers_whole_file);
            let last = s.later_updates.last().unwrap();
            assert_eq!(last.signature, None);
            assert_eq!(last.bytes[1], pdf.len() as u64);
        }
        // Bytes after the last %%EOF count too.
        let mut trailing = TWO.to_vec();
        trailing.extend_from_slice(b"garbage");
        let sigs = check_pdf(&trailing, &anchors()).unwrap();
        assert!(sigs[1].changed_after_signing);
        // White space does not.
        let mut blank = TWO.to_vec();
        blank.extend_from_slice(b"\r\n\n");
        let sigs = check_pdf(&blank, &anchors()).unwrap();
        assert!(!sigs[1].changed_after_signing);
    }

    #[test]
    fn a_byte_range_whose_hole_is_not_the_contents_is_invalid() {
        // Shift the first range's end by one, keeping the file's length.
        let text = String::from_utf8_lossy(TWO).into_owned();
        let br = text.find("/ByteRange [0 1218 12280 1029]").unwrap();
        let mut pdf = TWO.to_vec();
        pdf[br..br + 30].copy_from_slice(b"/ByteRange [0 1217 12280 1029]");
        let sigs = check_pdf(&pdf, &anchors()).unwrap();
        assert!(
            invalid_why(&sigs[0]).contains("not its /Contents"),
            "{:?}",
            sigs[0]
        );
        let mut pdf = TWO.to_vec();
        pdf[br..br + 30].copy_from_slice(b"/ByteRange [0 1218 12280 9999]");
        let sigs = check_pdf(&pdf, &anchors()).unwrap();
        assert!(
            invalid_why(&sigs[0]).contains("does not fit"),
            "{:?}",
            sigs[0]
        );
    }

    #[test]
    fn a_changed_signature_value_is_invalid() {
        let sigs = check_pdf(TWO, &anchors()).unwrap();
        let [_, hole_start, hole_end, _] = sigs[1].byte_range.unwrap();
        let (hole_start, hole_end) = (hole_start as usize, hole_end as usize);
        let mut sd = signed_data_at(TWO, hole_start, hole_end);
        let mut infos: Vec<_> = sd.signer_infos.0.iter().cloned().collect();
        let mut value = infos[0].signature.as_bytes().to_vec();
        let last = value.len() - 1;
        value[last] ^= 1;
        infos[0].signature = der::asn1::OctetString::new(value).unwrap();
        sd.signer_infos = cms::signed_data::SignerInfos(infos.try_into().unwrap());
        let pdf = replace_contents(TWO, hole_start, hole_end, &sd);
        let sigs = check_pdf(&pdf, &anchors()).unwrap();
        assert!(
            invalid_why(&sigs[1]).contains("does not verify"),
            "{:?}",
            sigs[1]
        );
    }

    #[test]
    fn a_time_stamp_over_other_data_is_invalid() {
        let sigs = check_pdf(TWO, &anchors()).unwrap();
        let [_, start, end, _] = sigs[0].byte_range.unwrap();
        let (start, end) = (start as usize, end as usize);
        let sd = signed_data_at(TWO, start, end);
        let si = sd.signer_infos.0.iter().next().unwrap();
        let token = timestamp::embedded_token(si).unwrap();
        let ts = timestamp::check_token(&token, &[b"another signature"], &anchors());
        assert!(
            matches!(&ts.status, TimeStampStatus::Invalid { why } if why.contains("imprint")),
            "{ts:?}"
        );
        // The imprint changed inside the token (outside what the signer signed): the TSA's
        // signature no longer holds, and the signature's verdict says so.
        let imprint = ring::digest::digest(&ring::digest::SHA256, si.signature.as_bytes());
        let mut bytes = sd_bytes(TWO, start);
        let at = syntax::find(&bytes, imprint.as_ref(), 0).unwrap();
        bytes[at] ^= 1;
        let mut pdf = TWO.to_vec();
        let hex = hex::encode(&bytes);
        pdf[start + 1..start + 1 + hex.len()].copy_from_slice(hex.as_bytes());
        let sigs = check_pdf(&pdf, &anchors()).unwrap();
        let ts = sigs[0].time_stamp.as_ref().unwrap();
        assert!(
            matches!(ts.status, TimeStampStatus::Invalid { .. }),
            "{ts:?}"
        );
        assert!(
            invalid_why(&sigs[0]).starts_with("its time-stamp"),
            "{:?}",
            sigs[0]
        );
    }

    fn sd_bytes(pdf: &[u8], start: usize) -> Vec<u8> {
        let Object::Str { bytes, .. } = syntax::Parser::new(pdf, start).object(0).unwrap() else {
            panic!("no string at {start}")
        };
        bytes
    }

    #[test]
    fn a_signer_outside_the_anchors_is_unknown_but_still_checked() {
        // An unrelated anchor: the issuing CA's name is known to no one.
        let other = rcgen::CertificateParams::new(vec!["other.invalid".to_string()])
            .unwrap()
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let anchors = Anchors::from_pem(other.pem().as_bytes()).unwrap();
        let sigs = check_pdf(TWO, &anchors).unwrap();
        for s in &sigs {
            assert!(matches!(s.verdict, Verdict::UnknownSigner { .. }), "{s:?}");
        }
        let ts = sigs[0].time_stamp.as_ref().unwrap();
        assert!(
            matches!(ts.status, TimeStampStatus::UnknownTsa { .. }),
            "{ts:?}"
        );
        // With a byte changed, the cryptography still decides: invalid, not unknown.
        let mut pdf = TWO.to_vec();
        let at = syntax::find(&pdf, b"Cong van", 0).unwrap();
        pdf[at] = b'X';
        let sigs = check_pdf(&pdf, &anchors).unwrap();
        assert!(matches!(sigs[0].verdict, Verdict::Invalid { .. }));
    }

    #[test]
    fn garbage_around_signature_dictionaries_does_not_panic() {
        let cases: [&[u8]; 5] = [
            b"%PDF-1.7\n1 0 obj << /ByteRange [0 5 10 5] /Contents <00> >> endobj\n%%EOF",
            b"%PDF-1.7\n1 0 obj << /ByteRange [0 9 30 99999999999999999999] /Contents (x) >> endobj",
            b"%PDF-1.7\n1 0 obj << /ByteRange [-1 2 3 4] /Contents <> >> endobj",
            b"%PDF-1.7\n1 0 obj << /ByteRange [0 9 12 1] /Contents <3000> /SubFilter /ETSI.RFC3161 >> endobj\n",
            b"%PDF-1.7\n1 0 obj << /ByteRange [0 9 12 1] /Contents <3000> /SubFilter /adbe.x509.rsa_sha1 >> endobj",
        ];
        for case in cases {
            let sigs = check_pdf(case, &anchors()).unwrap();
            assert_eq!(sigs.len(), 1);
            assert!(
                matches!(sigs[0].verdict, Verdict::Invalid { .. }),
                "{:?}",
                sigs[0]
            );
        }
        // Truncations of a signed file never panic.
        for len in (0..TWO.len()).step_by(97) {
            let _ = check_pdf(&TWO[..len], &anchors());
        }
    }

    fn signed_data_at(pdf: &[u8], start: usize, end: usize) -> cms::signed_data::SignedData {
        let bytes = sd_bytes(pdf, start);
        assert_eq!(end - start, 2 * bytes.len() + 2);
        signer::parse_signed_data(&bytes).unwrap()
    }

    /// `pdf` with the /Contents string at `start..end` holding `sd`, zero-padded to its size.
    fn replace_contents(
        pdf: &[u8],
        start: usize,
        end: usize,
        sd: &cms::signed_data::SignedData,
    ) -> Vec<u8> {
        let ci = cms::content_info::ContentInfo {
            content_type: const_oid::db::rfc5911::ID_SIGNED_DATA,
            content: der::Any::from_der(&sd.to_der().unwrap()).unwrap(),
        };
        let mut hex = hex::encode(ci.to_der().unwrap()).into_bytes();
        let room = end - start - 2;
        assert!(hex.len() <= room);
        hex.resize(room, b'0');
        let mut out = pdf.to_vec();
        out[start + 1..end - 1].copy_from_slice(&hex);
        out
    }
}
