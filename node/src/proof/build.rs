//! A bundle from what a node holds: the envelope, its receipts, transport events and register
//! entries, and the files derived from them (the same derivation `check` recomputes).

use std::fmt::Write as _;

use base64::Engine as _;
use lienthong_common::agency::AgencyCode;
use lienthong_common::signing::{envelope_signing_message, receipt_signing_message};
use lienthong_common::store::Store;
use lienthong_proto::v1::{
    receipt_frame, Envelope, ReceiptFrame, Signature, StatusReceipt, TimeStamp, TransportEvent,
    TransportState,
};
use prost::Message;
use serde_json::json;

use super::text::{self, Facts, StampFact};
use super::{Bundle, Manifest, ProofError, FORMAT, MAX_FILES};
use crate::register::{self, Direction, RegisterEntry};

pub(super) const ENVELOPE_PB: &str = "envelope/envelope.pb";
pub(super) const RECEIPT_PB: &str = "receipt.pb";
pub(super) const RECEIPTS_DIR: &str = "receipts/";
pub(super) const STAMP_TOKEN: &str = "timestamp/token.der";
pub(super) const STAMP_PATH: &str = "timestamp/path.txt";
pub(super) const STAMP_SIGNATURE: &str = "timestamp/signature.bin";
/// The signatures inside the PDF attachments, as this node checked them on delivery.
pub(super) const PDF_SIGNATURES: &str = "pdf-signatures.json";
/// Files that are the node's own record, covered by the manifest only.
pub(super) const RECORDS: [&str; 4] = [
    "summary.txt",
    "trace.json",
    "registers.json",
    PDF_SIGNATURES,
];

/// What a node holds about one document.
#[derive(Debug, Clone, Default)]
pub struct Held {
    /// The envelope as stored (trace and time-stamp included).
    pub envelope: Envelope,
    /// Its status receipts, in arrival order.
    pub receipts: Vec<StatusReceipt>,
    /// Its transport events, in arrival order.
    pub events: Vec<TransportEvent>,
    /// Its entries in this node's books.
    pub registers: Vec<(Direction, RegisterEntry)>,
    /// What checking the signatures inside its PDF attachments found on delivery here.
    pub pdf_signatures: Option<lienthong_common::store::PdfReport>,
}

/// Reads what `store` holds about the document `id` (an envelope id, or a document id in the
/// books of `agencies`) and makes its bundle, exported by `node` at `now_unix_ms`.
pub fn export(
    store: &Store,
    agencies: &[AgencyCode],
    node: &AgencyCode,
    id: &str,
    now_unix_ms: i64,
) -> Result<Bundle, ProofError> {
    let envelope_id = register::find_envelope(store, agencies, id)?
        .ok_or_else(|| ProofError::NotFound(id.to_owned()))?;
    let envelope = store
        .envelope(&envelope_id)?
        .ok_or_else(|| ProofError::NotFound(id.to_owned()))?;
    let mut held = Held {
        registers: register::entries_of_document(store, agencies, &envelope)?,
        pdf_signatures: store.pdf_report(&envelope_id)?,
        envelope,
        ..Held::default()
    };
    for (i, bytes) in store.receipts_for(&envelope_id)?.iter().enumerate() {
        let frame = ReceiptFrame::decode(bytes.as_slice()).map_err(|e| ProofError::Corrupt {
            what: format!("receipt {} of envelope {envelope_id}", i + 1),
            reason: e.to_string(),
        })?;
        match frame.item {
            Some(receipt_frame::Item::Status(s)) => held.receipts.push(s),
            Some(receipt_frame::Item::Transport(t)) => held.events.push(t),
            _ => {}
        }
    }
    assemble(&held, node, now_unix_ms)
}

/// Makes the bundle of `held`, exported by `node` at `now_unix_ms`, sealed.
pub fn assemble(held: &Held, node: &AgencyCode, now_unix_ms: i64) -> Result<Bundle, ProofError> {
    let env = &held.envelope;
    let per_receipt = 6;
    if held.receipts.len().saturating_mul(per_receipt) + 20 > MAX_FILES {
        return Err(ProofError::TooLarge {
            what: format!("{} receipts", held.receipts.len()),
            limit: (MAX_FILES / per_receipt) as u64,
        });
    }
    let mut b = Bundle::default();
    b.put("summary.txt", summary(held).into_bytes());
    b.put(ENVELOPE_PB, env.encode_to_vec());
    for (name, bytes) in envelope_derived(env) {
        b.put(&name, bytes);
    }
    for (i, r) in held.receipts.iter().enumerate() {
        let dir = receipt_dir(i, r);
        b.put(&format!("{dir}/{RECEIPT_PB}"), r.encode_to_vec());
        for (name, bytes) in receipt_derived(&dir, r) {
            b.put(&name, bytes);
        }
    }
    let trace = json!({
        "note": "not signed: the hop trace carried by the envelope as this node holds it, and the transport events it received",
        "trace": env.trace,
        "transport_events": held.events,
    });
    b.put("trace.json", pretty(&trace)?);
    let registers: Vec<_> = held
        .registers
        .iter()
        .map(|(d, e)| json!({ "book": d.as_str(), "entry": e }))
        .collect();
    b.put(
        "registers.json",
        pretty(&json!({
            "note": "not signed: the document's entries in this node's registers",
            "entries": registers,
        }))?,
    );
    if let Some(report) = &held.pdf_signatures {
        let report = serde_json::to_value(report).map_err(|e| ProofError::Write(e.to_string()))?;
        b.put(
            PDF_SIGNATURES,
            pretty(&json!({
                "note": "not signed: the signatures inside the PDF attachments, as this node checked them on delivery against its [pdf_signatures] ca",
                "report": report,
            }))?,
        );
    }
    b.seal(Manifest {
        format: FORMAT.to_owned(),
        envelope_id: env.id.clone(),
        document_id: env.document_id.clone(),
        exported_by: node.to_string(),
        exported_unix_ms: now_unix_ms,
        files: Vec::new(),
    })?;
    Ok(b)
}

fn pretty(v: &serde_json::Value) -> Result<Vec<u8>, ProofError> {
    let mut out = serde_json::to_vec_pretty(v).map_err(|e| ProofError::Write(e.to_string()))?;
    out.push(b'\n');
    Ok(out)
}

/// A receipt's folder: arrival order, status, reporter.
fn receipt_dir(i: usize, r: &StatusReceipt) -> String {
    let reporter: String = r
        .from
        .as_ref()
        .map(|f| f.code.as_str())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{RECEIPTS_DIR}{:02}-{:02}-{}",
        i + 1,
        r.status,
        if reporter.is_empty() {
            "unknown"
        } else {
            &reporter
        }
    )
}

/// Certificates (DER) as PEM.
pub(super) fn pem(certs: &[Vec<u8>]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = String::new();
    for c in certs {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let body = b64.encode(c);
        for line in body.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out.into_bytes()
}

/// `H` of an envelope: what its signature's digest is over.
pub(super) fn envelope_signed_content(env: &Envelope) -> Vec<u8> {
    let mut cleared = env.clone();
    cleared.signature = None;
    cleared.trace.clear();
    cleared.time_stamp = None;
    cleared.encode_to_vec()
}

/// `H` of a receipt.
pub(super) fn receipt_signed_content(r: &StatusReceipt) -> Vec<u8> {
    let mut cleared = r.clone();
    cleared.signature = None;
    cleared.encode_to_vec()
}

/// The time-stamp as the evidence library takes it; None when a sibling is not 32 bytes.
pub(super) fn stamp_of(ts: &TimeStamp) -> Option<lienthong_evidence::tsa::TimeStamp> {
    use lienthong_evidence::batch::{Digest, Path, Side, Step};
    let steps = ts
        .path
        .iter()
        .map(|s| {
            Some(Step {
                side: if s.left { Side::Left } else { Side::Right },
                sibling: Digest::from_slice(&s.sibling)?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(lienthong_evidence::tsa::TimeStamp {
        token: ts.token.clone(),
        path: Path { steps },
    })
}

/// The envelope as JSON for people, in the local API's form (binary fields in hex).
fn envelope_json(env: &Envelope) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(env).unwrap_or_default();
    out.push(b'\n');
    out
}

fn signature_files(dir: &str, sig: &Signature, message: Vec<u8>, out: &mut Vec<(String, Vec<u8>)>) {
    out.push((format!("{dir}/signed-message.bin"), message));
    out.push((format!("{dir}/signature.bin"), sig.value.clone()));
    out.push((format!("{dir}/chain.pem"), pem(&sig.certificate_chain)));
    if let Some(signer) = sig.certificate_chain.first() {
        out.push((
            format!("{dir}/signer.pem"),
            pem(std::slice::from_ref(signer)),
        ));
    }
}

fn signing_note(
    kind: &str,
    domain: &str,
    cleared: &str,
    sig: Option<&Signature>,
    h: &[u8],
) -> Vec<u8> {
    let mut t = format!(
        "What the {kind}'s signature covers (docs/protocol.md, section 4):\n\n\
         M = \"{domain}\" 0x00 || algorithm name || 0x00 || signing time (i64, big-endian, unix ms) || SHA-256(H)\n\n\
         H is the protobuf encoding of the {kind} with {cleared} cleared: signed-content.pb here.\n\
         M is signed-message.bin; the signature value is signature.bin; the signer's certificate\n\
         is signer.pem, its chain (signer first) chain.pem.\n\n"
    );
    if let Some(s) = sig {
        let _ = writeln!(t, "algorithm: {}", s.algorithm);
        let _ = writeln!(
            t,
            "signing time: {} ms ({})",
            s.signing_unix_ms,
            text::vn_time(s.signing_unix_ms)
        );
    }
    let _ = writeln!(t, "SHA-256(H): {}", super::sha256_hex(h));
    t.into_bytes()
}

/// Everything under `envelope/` but `envelope.pb`, and `timestamp/` when stamped.
pub(super) fn envelope_derived(env: &Envelope) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![("envelope/envelope.json".to_owned(), envelope_json(env))];
    let h = envelope_signed_content(env);
    out.push((
        "envelope/SIGNING.txt".to_owned(),
        signing_note(
            "envelope",
            "lienthong.v1.envelope",
            "`signature`, `trace` (each hop appends to it) and `time_stamp` (added after signing)",
            env.signature.as_ref(),
            &h,
        ),
    ));
    out.push(("envelope/signed-content.pb".to_owned(), h));
    if let Some(sig) = &env.signature {
        let m = envelope_signing_message(env, &sig.algorithm, sig.signing_unix_ms);
        signature_files("envelope", sig, m, &mut out);
    }
    if let Some(ts) = &env.time_stamp {
        out.push((STAMP_TOKEN.to_owned(), ts.token.clone()));
        let lines = match stamp_of(ts) {
            Some(s) => s.path.to_lines(),
            None => ts
                .path
                .iter()
                .map(|s| {
                    format!(
                        "{} {}\n",
                        if s.left { "left" } else { "right" },
                        hex::encode(&s.sibling)
                    )
                })
                .collect(),
        };
        out.push((STAMP_PATH.to_owned(), lines.into_bytes()));
        let value = env
            .signature
            .as_ref()
            .map(|s| s.value.clone())
            .unwrap_or_default();
        out.push((STAMP_SIGNATURE.to_owned(), value));
    }
    out
}

/// Everything in a receipt's folder but `receipt.pb`.
pub(super) fn receipt_derived(dir: &str, r: &StatusReceipt) -> Vec<(String, Vec<u8>)> {
    let mut json = serde_json::to_vec_pretty(r).unwrap_or_default();
    json.push(b'\n');
    let mut out = vec![(format!("{dir}/receipt.json"), json)];
    let h = receipt_signed_content(r);
    out.push((
        format!("{dir}/SIGNING.txt"),
        signing_note(
            "receipt",
            "lienthong.v1.receipt",
            "`signature`",
            r.signature.as_ref(),
            &h,
        ),
    ));
    out.push((format!("{dir}/signed-content.pb"), h));
    if let Some(sig) = &r.signature {
        let m = receipt_signing_message(r, &sig.algorithm, sig.signing_unix_ms);
        signature_files(dir, sig, m, &mut out);
    }
    out
}

/// genTime as a token states it, unchecked: for the summary only (`check` proves it).
pub(super) fn claimed_gen_time(token: &[u8]) -> Option<i64> {
    /// One DER element: tag, content, what follows.
    fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = b.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return None;
            }
            let (bytes, rest) = rest.split_at_checked(n)?;
            (
                bytes.iter().fold(0usize, |a, &b| (a << 8) | usize::from(b)),
                rest,
            )
        };
        let (content, rest) = rest.split_at_checked(len)?;
        Some((tag, content, rest))
    }
    fn expect(b: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (t, c, r) = tlv(b)?;
        (t == tag).then_some((c, r))
    }
    let (ci, _) = expect(token, 0x30)?;
    let (_, r) = expect(ci, 0x06)?;
    let (wrapped, _) = expect(r, 0xa0)?;
    let (sd, _) = expect(wrapped, 0x30)?;
    let (_, r) = expect(sd, 0x02)?;
    let (_, r) = expect(r, 0x31)?;
    let (encap, _) = expect(r, 0x30)?;
    let (_, r) = expect(encap, 0x06)?;
    let (wrapped, _) = expect(r, 0xa0)?;
    let (octets, _) = expect(wrapped, 0x04)?;
    let (tst, _) = expect(octets, 0x30)?;
    let (_, r) = expect(tst, 0x02)?;
    let (_, r) = expect(r, 0x06)?;
    let (_, r) = expect(r, 0x30)?;
    let (_, r) = expect(r, 0x02)?;
    let (gen_time, _) = expect(r, 0x18)?;
    let text = std::str::from_utf8(gen_time).ok()?;
    let body = text.strip_suffix('Z')?;
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |a: usize, b: usize| whole.get(a..b)?.parse::<u32>().ok();
    let month = time::Month::try_from(u8::try_from(num(4, 6)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(num(0, 4)?).ok()?,
        month,
        u8::try_from(num(6, 8)?).ok()?,
    )
    .ok()?;
    let at = date
        .with_hms(
            u8::try_from(num(8, 10)?).ok()?,
            u8::try_from(num(10, 12)?).ok()?,
            u8::try_from(num(12, 14)?).ok()?,
        )
        .ok()?
        .assume_utc();
    let ms: i64 = format!("{fraction:0<3}").get(0..3)?.parse().ok()?;
    Some(at.unix_timestamp() * 1000 + ms)
}

fn summary(held: &Held) -> String {
    let env = &held.envelope;
    let stamp = match &env.time_stamp {
        None => StampFact::None,
        Some(ts) => StampFact::Unchecked {
            claimed_unix_ms: claimed_gen_time(&ts.token),
        },
    };
    let mut out = String::from(
        "Hồ sơ chứng cứ của văn bản (lienthong) / Proof bundle of a document (lienthong)\n\
         Kiểm tra / Check: lt-relay proof verify FILE --ca ROOT.pem [--tsa-ca TSA-ROOT.pem]\n\
         Giờ Việt Nam (UTC+7) / Vietnam time (UTC+7). Đây là những gì nút lưu giữ; chỉ chữ ký số\n\
         và dấu thời gian là bằng chứng. / This is what the node holds; only the signatures and\n\
         the time-stamp are proof.\n\n",
    );
    out.push_str(&text::render(&Facts::of(env, &held.receipts, stamp)));
    out.push_str("\nSổ đăng ký / Registers (not signed):\n");
    if held.registers.is_empty() {
        out.push_str("  -\n");
    }
    for (d, e) in &held.registers {
        let book = match d {
            Direction::In => "sổ văn bản đến / incoming",
            Direction::Out => "sổ văn bản đi / outgoing",
        };
        let _ = writeln!(
            out,
            "  {} {}: số / no. {} ({}), {}",
            e.agency,
            book,
            e.number,
            e.date,
            text::vn_time(e.at_unix_ms)
        );
    }
    out.push_str("\nĐường đi / Hop trace (not signed):\n");
    for t in &env.trace {
        let _ = writeln!(
            out,
            "  {} nhận / received {}{}",
            t.agency,
            text::vn_time(t.received_unix_ms),
            if t.forwarded_unix_ms > 0 {
                format!(
                    ", chuyển / forwarded {}",
                    text::vn_time(t.forwarded_unix_ms)
                )
            } else {
                String::new()
            }
        );
    }
    for e in held
        .events
        .iter()
        .filter(|e| e.state == TransportState::TransportDelivered as i32)
    {
        let hops: Vec<&str> = e.trace.iter().map(|t| t.agency.as_str()).collect();
        let _ = writeln!(
            out,
            "  {} đã nhận vào hộp thư / delivered to its inbox {} (via {})",
            e.recipient,
            text::vn_time(e.at_unix_ms),
            hops.join(" > ")
        );
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn no_time_is_read_from_bytes_that_are_not_a_token() {
        assert_eq!(claimed_gen_time(&[]), None);
        assert_eq!(
            claimed_gen_time(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            None
        );
        assert_eq!(claimed_gen_time(&[0x30, 0x03, 0x06, 0x01, 0x00]), None);
    }
}
