//! The offline check of a bundle with nothing but trust anchors: the manifest's hashes, the
//! envelope's signature and chain, the time-stamp over it, each receipt's signature and chain
//! and that it is about this envelope, and that every derived file is what its signed message
//! gives. Each item gets a [`Finding`]; one failed finding fails the bundle.

use std::collections::BTreeSet;
use std::time::Duration;

use lienthong_common::signing::Verifier;
use lienthong_evidence::chain::Anchors;
use lienthong_proto::v1::{Envelope, StatusCode, StatusReceipt};
use prost::Message;
use rustls_pki_types::UnixTime;

use super::build::{
    envelope_derived, receipt_derived, stamp_of, ENVELOPE_PB, RECEIPTS_DIR, RECEIPT_PB, RECORDS,
};
use super::revocation::Revocations;
use super::text::{status_names, vn_time, Facts, StampFact};
use super::{sha256_hex, Bundle, FORMAT, MANIFEST};

/// What a bundle is checked against.
#[derive(Debug, Clone)]
pub struct TrustAnchors {
    /// The interchange's trust bundle (its root CA), for the envelope and receipt signatures.
    pub interchange: Verifier,
    /// The TSA's trust anchors; without them a time-stamp is reported as not checked.
    pub tsa: Option<Anchors>,
    /// The CRLs given; without them revocation is reported as not checked.
    pub revocations: Option<Revocations>,
}

impl TrustAnchors {
    /// The revocation remark for a signature by `chain` at `signed_unix_ms` (empty without
    /// CRLs), or why it does not count.
    fn revocation(&self, chain: &[Vec<u8>], signed_unix_ms: i64) -> Result<String, String> {
        match &self.revocations {
            None => Ok(String::new()),
            Some(r) => r.check(chain, signed_unix_ms),
        }
    }
}

/// How one item fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It holds; what it shows.
    Holds(String),
    /// It does not; why.
    Fails(String),
    /// Not checked (no anchors for it, or a record that carries no signature); why.
    NotChecked(String),
}

/// One item of a bundle and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The item: a file, `envelope`, `time-stamp`, `receipt NN-SS-AGENCY`, `manifest`.
    pub item: String,
    /// Its outcome.
    pub outcome: Outcome,
}

/// The result of a check.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Every finding, in the order checked.
    pub findings: Vec<Finding>,
    /// What the bundle proves: the envelope verified, with the receipts that verified and the
    /// time-stamp if it verified.
    pub proves: Option<Facts>,
}

impl Verdict {
    /// True when no finding failed.
    pub fn holds(&self) -> bool {
        !self
            .findings
            .iter()
            .any(|f| matches!(f.outcome, Outcome::Fails(_)))
    }

    /// The findings that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| matches!(f.outcome, Outcome::Fails(_)))
    }

    fn push(&mut self, item: impl Into<String>, outcome: Outcome) {
        self.findings.push(Finding {
            item: item.into(),
            outcome,
        });
    }

    fn fail(&mut self, item: impl Into<String>, why: impl Into<String>) {
        self.push(item, Outcome::Fails(why.into()));
    }
}

fn at(unix_ms: i64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_millis(u64::try_from(unix_ms).unwrap_or(0)))
}

fn subject(chain: &[Vec<u8>]) -> String {
    chain
        .first()
        .and_then(|c| x509_parser::parse_x509_certificate(c).ok())
        .map(|(_, c)| c.subject().to_string())
        .unwrap_or_else(|| "an unreadable certificate".into())
}

/// Checks the bundle in `zip` against `anchors`.
pub fn verify(zip: &[u8], anchors: &TrustAnchors) -> Verdict {
    let mut v = Verdict::default();
    let (bundle, unreadable) = match Bundle::from_zip(zip) {
        Ok(b) => b,
        Err(e) => {
            v.fail("bundle", e.to_string());
            return v;
        }
    };
    for (name, why) in &unreadable {
        v.fail(
            name.clone(),
            format!("cannot be read from the ZIP ({why}): its bytes were changed"),
        );
    }
    let unreadable: BTreeSet<&str> = unreadable.iter().map(|(n, _)| n.as_str()).collect();
    check_manifest(&bundle, &unreadable, &mut v);

    let Some(pb) = bundle.get(ENVELOPE_PB) else {
        if !unreadable.contains(ENVELOPE_PB) {
            v.fail(ENVELOPE_PB, "missing");
        }
        return v;
    };
    let env = match Envelope::decode(pb) {
        Ok(e) => e,
        Err(e) => {
            v.fail(ENVELOPE_PB, format!("not an envelope: {e}"));
            return v;
        }
    };
    if let Ok(m) = bundle.manifest() {
        if m.envelope_id != env.id || m.document_id != env.document_id {
            v.fail(
                MANIFEST,
                format!(
                    "names envelope {} / document {}, but envelope.pb holds {} / {}",
                    m.envelope_id, m.document_id, env.id, env.document_id
                ),
            );
        }
    }
    let mut known: BTreeSet<String> = BTreeSet::from([MANIFEST.to_owned(), ENVELOPE_PB.to_owned()]);
    known.extend(RECORDS.iter().map(|r| (*r).to_owned()));
    compare_derived(
        &bundle,
        envelope_derived(&env),
        &unreadable,
        &mut known,
        &mut v,
    );

    match &anchors.revocations {
        None => v.push(
            "revocation",
            Outcome::NotChecked(
                "no CRL given (--crl): a certificate revoked before it signed would not be seen"
                    .into(),
            ),
        ),
        Some(r) => v.push("revocation", Outcome::Holds(r.summary())),
    }
    let stamp = check_stamp(&env, anchors, &mut v);
    let envelope_ok = check_envelope(&env, &stamp, anchors, &mut v);

    let mut receipts = Vec::new();
    let dirs: BTreeSet<String> = bundle
        .files()
        .iter()
        .filter_map(|(n, _)| n.strip_prefix(RECEIPTS_DIR))
        .filter_map(|rest| rest.split_once('/').map(|(d, _)| d.to_owned()))
        .collect();
    for dir in dirs {
        let path = format!("{RECEIPTS_DIR}{dir}");
        let item = format!("receipt {dir}");
        let pb_name = format!("{path}/{RECEIPT_PB}");
        known.insert(pb_name.clone());
        let Some(pb) = bundle.get(&pb_name) else {
            if !unreadable.contains(pb_name.as_str()) {
                v.fail(item, format!("{pb_name} is missing"));
            }
            continue;
        };
        let r = match StatusReceipt::decode(pb) {
            Ok(r) => r,
            Err(e) => {
                v.fail(item, format!("{pb_name} is not a status receipt: {e}"));
                continue;
            }
        };
        compare_derived(
            &bundle,
            receipt_derived(&path, &r),
            &unreadable,
            &mut known,
            &mut v,
        );
        if let Some(r) = check_receipt(&item, r, &env, anchors, &mut v) {
            receipts.push(r);
        }
    }
    for (name, _) in bundle.files() {
        if !known.contains(name) && !unreadable.contains(name.as_str()) {
            v.fail(name.clone(), "not a file of a proof bundle");
        }
    }
    for r in RECORDS {
        if bundle.get(r).is_some() {
            v.push(
                r,
                Outcome::NotChecked(
                    "not signed: the exporting node's record (manifest hash only)".into(),
                ),
            );
        }
    }
    if envelope_ok {
        v.proves = Some(Facts::of(&env, &receipts, stamp));
    }
    v
}

fn check_manifest(bundle: &Bundle, unreadable: &BTreeSet<&str>, v: &mut Verdict) {
    let m = match bundle.manifest() {
        Ok(m) => m,
        Err(e) => {
            if !unreadable.contains(MANIFEST) {
                v.fail(MANIFEST, e.to_string());
            }
            return;
        }
    };
    let before = v.findings.len();
    if m.format != FORMAT {
        v.fail(MANIFEST, format!("format {:?}, not {FORMAT:?}", m.format));
    }
    let mut listed = BTreeSet::new();
    for f in &m.files {
        if !listed.insert(f.name.as_str()) {
            v.fail(MANIFEST, format!("lists {} twice", f.name));
            continue;
        }
        if unreadable.contains(f.name.as_str()) {
            continue;
        }
        match bundle.get(&f.name) {
            None => v.fail(f.name.clone(), "listed in the manifest but missing"),
            Some(bytes) => {
                let digest = sha256_hex(bytes);
                if digest != f.sha256.to_ascii_lowercase() || bytes.len() as u64 != f.size {
                    v.fail(
                        f.name.clone(),
                        format!(
                            "{} bytes with SHA-256 {digest}, but the manifest says {} bytes with SHA-256 {}",
                            bytes.len(),
                            f.size,
                            f.sha256
                        ),
                    );
                }
            }
        }
    }
    for (name, _) in bundle.files() {
        if name != MANIFEST && !listed.contains(name.as_str()) {
            v.fail(name.clone(), "not listed in the manifest");
        }
    }
    if v.findings.len() == before {
        v.push(
            MANIFEST,
            Outcome::Holds(format!(
                "{} files, each with the size and SHA-256 listed",
                m.files.len()
            )),
        );
    }
}

/// Each derived file must be in the bundle with exactly the bytes its signed message gives.
fn compare_derived(
    bundle: &Bundle,
    derived: Vec<(String, Vec<u8>)>,
    unreadable: &BTreeSet<&str>,
    known: &mut BTreeSet<String>,
    v: &mut Verdict,
) {
    for (name, expected) in derived {
        // An unreadable file was named already.
        if !unreadable.contains(name.as_str()) {
            match bundle.get(&name) {
                None => v.fail(name.clone(), "missing"),
                Some(b) if b != expected.as_slice() => v.fail(
                    name.clone(),
                    "differs from what the signed message beside it gives",
                ),
                Some(_) => {}
            }
        }
        known.insert(name);
    }
}

fn check_stamp(env: &Envelope, anchors: &TrustAnchors, v: &mut Verdict) -> StampFact {
    const ITEM: &str = "time-stamp";
    let Some(ts) = &env.time_stamp else {
        return StampFact::None;
    };
    let claimed = super::build::claimed_gen_time(&ts.token);
    let Some(tsa) = &anchors.tsa else {
        v.push(
            ITEM,
            Outcome::NotChecked(
                "the envelope carries one, but no TSA trust anchor was given (--tsa-ca)".into(),
            ),
        );
        return StampFact::Unchecked {
            claimed_unix_ms: claimed,
        };
    };
    let signature = env
        .signature
        .as_ref()
        .map(|s| s.value.as_slice())
        .unwrap_or_default();
    let Some(stamp) = stamp_of(ts) else {
        v.fail(
            ITEM,
            "a step of its hash path is not a 32-byte SHA-256 node",
        );
        return StampFact::Unchecked {
            claimed_unix_ms: claimed,
        };
    };
    match lienthong_evidence::tsa::verify_document_stamp(signature, &stamp, tsa) {
        Ok(t) => {
            let tsa_name = t.tsa_name.clone().unwrap_or_else(|| t.signer.clone());
            v.push(
                ITEM,
                Outcome::Holds(format!(
                    "stamped at {} by {tsa_name} (serial {}, policy {}): the token stamps root {}, \
                     reached from SHA-256 of this envelope's signature in {} steps",
                    vn_time(t.unix_ms),
                    t.serial,
                    t.policy,
                    t.root,
                    stamp.path.steps.len()
                )),
            );
            StampFact::Verified {
                unix_ms: t.unix_ms,
                tsa: tsa_name,
            }
        }
        Err(e) => {
            v.fail(ITEM, e.to_string());
            StampFact::Unchecked {
                claimed_unix_ms: claimed,
            }
        }
    }
}

fn check_envelope(
    env: &Envelope,
    stamp: &StampFact,
    anchors: &TrustAnchors,
    v: &mut Verdict,
) -> bool {
    const ITEM: &str = "envelope";
    let Some(sig) = &env.signature else {
        v.fail(ITEM, "unsigned: no signature block");
        return false;
    };
    let (when, which) = match stamp {
        StampFact::Verified { unix_ms, .. } => (*unix_ms, "the TSA's time"),
        _ => (sig.signing_unix_ms, "the signing time the sender states"),
    };
    match anchors.interchange.verify_envelope(env.clone(), at(when)) {
        Ok(ok) => match anchors.revocation(&sig.certificate_chain, when) {
            Ok(remark) => {
                v.push(
                    ITEM,
                    Outcome::Holds(format!(
                        "signed by {} ({}) with {} at {} (its own claim); its chain leads to the CA and \
                         was valid at {} ({which}){remark}",
                        ok.signer(),
                        subject(&sig.certificate_chain),
                        sig.algorithm,
                        vn_time(sig.signing_unix_ms),
                        vn_time(when),
                    )),
                );
                true
            }
            Err(why) => {
                v.fail(ITEM, format!("{why} ({which})"));
                false
            }
        },
        Err(e) => {
            v.fail(
                ITEM,
                format!("{e} (chain checked at {}, {which})", vn_time(when)),
            );
            false
        }
    }
}

fn check_receipt(
    item: &str,
    r: StatusReceipt,
    env: &Envelope,
    anchors: &TrustAnchors,
    v: &mut Verdict,
) -> Option<StatusReceipt> {
    let reporter = r.from.as_ref().map(|f| f.code.clone()).unwrap_or_default();
    let about = r
        .response_for
        .as_ref()
        .map(|f| f.envelope_id.clone())
        .unwrap_or_default();
    if about != env.id {
        v.fail(item, format!("is about envelope {about:?}, not {}", env.id));
        return None;
    }
    let sender = env
        .from
        .as_ref()
        .map(|f| f.code.as_str())
        .unwrap_or_default();
    if r.status == StatusCode::StatusRecallRequested as i32 {
        if reporter != sender {
            v.fail(
                item,
                format!("a recall request signed by {reporter}, not by the sender {sender}"),
            );
            return None;
        }
    } else {
        if !env.to.iter().any(|t| t.code == r.recipient) {
            v.fail(
                item,
                format!(
                    "is about {:?}, not a recipient of this envelope",
                    r.recipient
                ),
            );
            return None;
        }
        if reporter != r.recipient && r.status != StatusCode::StatusRejected as i32 {
            v.fail(
                item,
                format!(
                    "status {:02} about {} signed by {reporter}: only the recipient reports it",
                    r.status, r.recipient
                ),
            );
            return None;
        }
    }
    let signed_at = r.signature.as_ref().map(|s| s.signing_unix_ms).unwrap_or(0);
    let chain = r
        .signature
        .as_ref()
        .map(|s| s.certificate_chain.clone())
        .unwrap_or_default();
    match anchors.interchange.verify_receipt(r, at(signed_at)) {
        Ok(ok) => {
            let remark = match anchors.revocation(&chain, signed_at) {
                Ok(remark) => remark,
                Err(why) => {
                    v.fail(item, why);
                    return None;
                }
            };
            let (vi, en) = status_names(ok.status);
            v.push(
                item,
                Outcome::Holds(format!(
                    "{:02} {en} ({vi}) about {}, at {}, signed by {} ({}); chain valid at its signing time {}{remark}",
                    ok.status,
                    if ok.recipient.is_empty() { sender } else { &ok.recipient },
                    vn_time(ok.timestamp_unix_ms),
                    ok.signer(),
                    subject(&chain),
                    vn_time(signed_at),
                )),
            );
            Some(ok.into_inner())
        }
        Err(e) => {
            v.fail(item, e.to_string());
            None
        }
    }
}
