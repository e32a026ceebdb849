//! The signatures inside the PDF attachments of documents delivered here, checked against
//! `[pdf_signatures] ca` after delivery and reported, never a reason to refuse or delay one.
//!
//! [`Node::accept`](crate::node::Node::accept) records each newly delivered envelope with PDF
//! attachments as a check to run (`P/` in the store, committed with the delivery) and wakes
//! [`run`] (started by the relay), which takes them in order, one at a time, off the async
//! reactor: reads each PDF from the attachment store (at most [`MAX_PDF_BYTES`]), checks it
//! with `lienthong_evidence::pdf`, keeps the report in the store (`p/<envelope id>`) and removes
//! the check in the same update, logs every verdict, and records a `pdf_signature_invalid`
//! security event for each invalid signature. A check not run when the node stops runs after
//! it starts again; a crash between a check and its commit runs it again.

use std::sync::Arc;

use lienthong_common::store::{
    PdfAttachmentReport, PdfCheckWaiting, PdfReport, PdfSignatureKind, PdfSignatureReport,
    PdfTimeStampReport, PdfVerdict, StoreError,
};
use lienthong_evidence::chain::Anchors;
use lienthong_evidence::pdf::{self, PdfSignature, SignatureKind, TimeStampStatus, Verdict};
use lienthong_proto::v1::AttachmentManifest;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::node::Node;
use crate::pdf_queue::Job;
pub use crate::pdf_queue::{is_pdf, load_anchors, AnchorsError, PdfChecks, MAX_PDF_BYTES};
use crate::security_events::EventClass;

/// Checks taken from the store at a time.
const BATCH: usize = 16;

/// How long the checker waits after the store failed it before it tries again.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the waiting checks in order, one at a time, until `shutdown`; returns at once when the
/// node has no `[pdf_signatures]`. Each report, the removal of its check and its events are
/// committed after its check.
pub async fn run(node: Arc<Node>, shutdown: CancellationToken) {
    let Some(checks) = node.pdf_checks() else {
        return;
    };
    match node.store.pdf_checks_waiting_count() {
        Ok(0) => {}
        Ok(waiting) => info!(
            waiting,
            "PDF signature checks waiting from before the start"
        ),
        Err(e) => warn!(cause = %e, "cannot count the PDF checks waiting"),
    }
    loop {
        let waiting = match node.store.pdf_checks_waiting(BATCH) {
            Ok(w) => w,
            Err(e) => {
                warn!(cause = %e, "cannot read the PDF checks waiting; trying again");
                if pause(&shutdown, RETRY_AFTER).await {
                    return;
                }
                continue;
            }
        };
        if waiting.is_empty() {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = checks.wake.notified() => continue,
            }
        }
        for w in waiting {
            if shutdown.is_cancelled() {
                return;
            }
            let n = node.clone();
            let id = w.envelope_id.clone();
            let check = w.clone();
            let done = match tokio::task::spawn_blocking(move || check_and_keep(&n, &check)).await {
                Ok(Ok(())) => node.store.commit().await.map(|_| ()),
                Ok(Err(e)) => Err(e),
                Err(e) => {
                    // A check that failed this way would fail again: not run again.
                    warn!(envelope = %id, cause = %e, "PDF signature check failed; dropped");
                    match node.store.drop_pdf_check(&w) {
                        Ok(()) => node.store.commit().await.map(|_| ()),
                        Err(e) => Err(e),
                    }
                }
            };
            if let Err(e) = done {
                warn!(envelope = %id, cause = %e, "PDF signature report not kept; trying again");
                if pause(&shutdown, RETRY_AFTER).await {
                    return;
                }
                break;
            }
        }
    }
}

/// Waits `d`; true when `shutdown` came first.
async fn pause(shutdown: &CancellationToken, d: std::time::Duration) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(d) => false,
    }
}

/// Checks every PDF of a waiting check, keeps the report, removes the check and records the
/// events (not committed).
fn check_and_keep(node: &Node, waiting: &PdfCheckWaiting) -> Result<(), StoreError> {
    let Some(checks) = node.pdf_checks() else {
        return Ok(());
    };
    let job = node
        .store
        .envelope(&waiting.envelope_id)?
        .and_then(|env| Job::of(&env, waiting.recipients.clone()));
    let Some(job) = job else {
        warn!(envelope = %waiting.envelope_id, "PDF signature check dropped: the envelope is no longer held here");
        return node.store.drop_pdf_check(waiting);
    };
    let mut attachments = Vec::with_capacity(job.pdfs.len());
    for a in &job.pdfs {
        let report = check_attachment(node, &checks.anchors, a);
        log_and_raise(node, &job, &report);
        attachments.push(report);
    }
    let report = PdfReport {
        checked_unix_ms: node.clock.now_unix_ms(),
        attachments,
    };
    node.store.finish_pdf_check(waiting, &report)
}

/// The report of one attachment: read from the store, checked.
fn check_attachment(node: &Node, anchors: &Anchors, a: &AttachmentManifest) -> PdfAttachmentReport {
    let mut report = PdfAttachmentReport {
        name: a.name.clone(),
        sha256: hex::encode(&a.sha256),
        size: a.size,
        not_checked: None,
        signatures: Vec::new(),
    };
    match read_whole(node, a) {
        Err(why) => report.not_checked = Some(why),
        Ok(bytes) => match pdf::check_pdf(&bytes, anchors) {
            Err(e) => report.not_checked = Some(e.to_string()),
            Ok(sigs) => report.signatures = sigs.iter().map(summary).collect(),
        },
    }
    report
}

/// The bytes of attachment `a`, when held whole and not over [`MAX_PDF_BYTES`].
fn read_whole(node: &Node, a: &AttachmentManifest) -> Result<Vec<u8>, String> {
    if a.size > MAX_PDF_BYTES {
        return Err(format!(
            "{} bytes: larger than the {} MiB read for a signature check",
            a.size,
            MAX_PDF_BYTES >> 20
        ));
    }
    let cap = usize::try_from(a.size).map_err(|_| "too large for this machine".to_owned())?;
    let mut bytes = Vec::with_capacity(cap);
    node.store
        .for_each_chunk(&a.sha256, 0, |_, d| {
            let room = cap - bytes.len();
            bytes.extend_from_slice(&d[..d.len().min(room)]);
            bytes.len() < cap
        })
        .map_err(|e| format!("cannot read its bytes: {e}"))?;
    if (bytes.len() as u64) != a.size {
        return Err(format!(
            "only {} of its {} bytes are held here",
            bytes.len(),
            a.size
        ));
    }
    Ok(bytes)
}

/// The API's shape of one signature's check.
fn summary(s: &PdfSignature) -> PdfSignatureReport {
    let (verdict, why) = match &s.verdict {
        Verdict::Valid => (PdfVerdict::Valid, None),
        Verdict::Invalid { why } => (PdfVerdict::Invalid, Some(why.clone())),
        Verdict::UnknownSigner { why } => (PdfVerdict::UnknownSigner, Some(why.clone())),
    };
    PdfSignatureReport {
        field: s.field.clone(),
        kind: match s.kind {
            SignatureKind::Signature => PdfSignatureKind::Signature,
            SignatureKind::DocumentTimeStamp => PdfSignatureKind::DocumentTimeStamp,
        },
        verdict,
        why,
        signer: s.signer.clone(),
        signing_time: s.signing_time.clone(),
        covers_whole_file: s.covers_whole_file,
        changed_after_signing: s.changed_after_signing,
        time_stamp: s.time_stamp.as_ref().map(|t| {
            let (status, why) = match &t.status {
                TimeStampStatus::Valid => ("valid", None),
                TimeStampStatus::Invalid { why } => ("invalid", Some(why.clone())),
                TimeStampStatus::UnknownTsa { why } => ("unknown_tsa", Some(why.clone())),
            };
            PdfTimeStampReport {
                time: t.time.clone(),
                tsa: t.tsa.clone(),
                status: status.to_owned(),
                why,
            }
        }),
    }
}

/// Logs each verdict of one attachment; an invalid signature is also a security event, once
/// per recipient served here.
fn log_and_raise(node: &Node, job: &Job, a: &PdfAttachmentReport) {
    let envelope = job.envelope_id.as_str();
    let document = job.document_id.as_str();
    if let Some(why) = &a.not_checked {
        info!(envelope, document, attachment = %a.name, why = %why, "PDF attachment not checked");
        return;
    }
    if a.signatures.is_empty() {
        info!(envelope, document, attachment = %a.name, "PDF attachment without signature");
    }
    for s in &a.signatures {
        let field = s.field.as_deref().unwrap_or("?");
        let signer = s.signer.as_deref().unwrap_or("?");
        let why = s.why.as_deref().unwrap_or_default();
        match s.verdict {
            PdfVerdict::Valid => info!(
                envelope, document, attachment = %a.name, field, signer,
                changed_after_signing = s.changed_after_signing,
                "PDF signature valid"
            ),
            PdfVerdict::UnknownSigner => info!(
                envelope, document, attachment = %a.name, field, signer, why,
                "PDF signature by a signer outside [pdf_signatures] ca"
            ),
            PdfVerdict::Invalid => {
                warn!(
                    envelope, document, attachment = %a.name, field, signer, why,
                    "PDF signature INVALID (the document was delivered)"
                );
                let reason = format!(
                    "document {document} (envelope {envelope}), attachment {:?}, field {field}, signer {signer}: {why}",
                    a.name
                );
                for r in &job.recipients {
                    node.security_event(EventClass::PdfSignatureInvalid, &job.sender, r, &reason);
                }
            }
        }
    }
}
