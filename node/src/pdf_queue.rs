//! The queue of PDF signature checks a node holds when `[pdf_signatures]` is set, and its trust
//! anchors: what [`Node::accept`](crate::node::Node::accept) offers each delivery to, without
//! waiting. The checks themselves run in `crate::pdf_check`.

use std::path::PathBuf;
use std::sync::Mutex;

use lienthong_common::agency::AgencyCode;
use lienthong_common::config::PdfSignatureSettings;
use lienthong_evidence::chain::{self, Anchors, ChainError};
use lienthong_proto::v1::{AttachmentManifest, Envelope};
use tokio::sync::mpsc;
use tracing::warn;

/// Deliveries waiting for their check. Each entry is a few hundred bytes (ids and manifests,
/// never attachment bytes); a burst beyond this skips checks rather than holding memory.
pub const PDF_QUEUE: usize = 1024;

/// Largest attachment whose signatures are checked: it is read whole into memory.
pub const MAX_PDF_BYTES: u64 = 256 * 1024 * 1024;

/// The anchors of `[pdf_signatures]` could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnchorsError {
    /// A `ca` file is unreadable or holds no usable certificate.
    #[error("pdf_signatures.ca: {0}")]
    Ca(#[source] ChainError),
    /// A `crl` file is unreadable or holds a CRL that does not parse.
    #[error("pdf_signatures.crl: {path}: {source}")]
    Crl {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: ChainError,
    },
}

/// Reads the trust anchors and CRLs `settings` name (once, at the node's start).
pub fn load_anchors(settings: &PdfSignatureSettings) -> Result<Anchors, AnchorsError> {
    let mut crls = Vec::new();
    for path in &settings.crl {
        let crl_error = |source| AnchorsError::Crl {
            path: path.clone(),
            source,
        };
        let these = chain::crls_from_file(path).map_err(crl_error)?;
        // Parsed here, file by file, so that a bad CRL is named by its file.
        Anchors::default()
            .with_crls_der(these.clone())
            .map_err(crl_error)?;
        crls.extend(these);
    }
    let anchors = Anchors::from_pem_files(&settings.ca).map_err(AnchorsError::Ca)?;
    anchors
        .with_crls_der(crls)
        .map_err(|source| AnchorsError::Crl {
            path: PathBuf::from("(all files)"),
            source,
        })
}

/// One delivered envelope to check: what the check needs, copied from the envelope so that
/// nothing is read from the store twice.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) envelope_id: String,
    pub(crate) document_id: String,
    pub(crate) sender: String,
    pub(crate) recipients: Vec<AgencyCode>,
    pub(crate) pdfs: Vec<AttachmentManifest>,
}

/// The anchors and the queue of checks; held by the node when `[pdf_signatures]` is set.
#[derive(Debug)]
pub struct PdfChecks {
    pub(crate) anchors: Anchors,
    tx: mpsc::Sender<Job>,
    /// Taken once by `crate::pdf_check::run`; a Mutex only so that the node can hand it out through `&self`.
    rx: Mutex<Option<mpsc::Receiver<Job>>>,
}

/// Whether an attachment is a PDF: by its content type or its name.
pub fn is_pdf(a: &AttachmentManifest) -> bool {
    let ct = a.content_type.split(';').next().unwrap_or_default().trim();
    ct.eq_ignore_ascii_case("application/pdf") || a.name.to_ascii_lowercase().ends_with(".pdf")
}

impl PdfChecks {
    /// Checks against `anchors`, with an empty queue.
    pub fn new(anchors: Anchors) -> Self {
        let (tx, rx) = mpsc::channel(PDF_QUEUE);
        Self {
            anchors,
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }

    /// Queues the check of `env`, just delivered to `recipients`, if it has PDF attachments.
    /// Never waits: with the queue full the check is skipped, and logged.
    pub(crate) fn offer(&self, env: &Envelope, recipients: &[AgencyCode]) {
        let pdfs: Vec<AttachmentManifest> = env
            .attachments
            .iter()
            .filter(|a| is_pdf(a))
            .cloned()
            .collect();
        if pdfs.is_empty() || recipients.is_empty() {
            return;
        }
        let job = Job {
            envelope_id: env.id.clone(),
            document_id: env.document_id.clone(),
            sender: env
                .from
                .as_ref()
                .map(|f| f.code.clone())
                .unwrap_or_default(),
            recipients: recipients.to_vec(),
            pdfs,
        };
        if let Err(e) = self.tx.try_send(job) {
            let (reason, job) = match e {
                mpsc::error::TrySendError::Full(j) => ("the queue of checks is full", j),
                mpsc::error::TrySendError::Closed(j) => ("the checker has stopped", j),
            };
            warn!(envelope = %job.envelope_id, reason, "signatures in PDF attachments not checked");
        }
    }

    pub(crate) fn take_receiver(&self) -> Option<mpsc::Receiver<Job>> {
        self.rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn manifest(name: &str, ct: &str) -> AttachmentManifest {
        AttachmentManifest {
            name: name.into(),
            content_type: ct.into(),
            ..Default::default()
        }
    }

    #[test]
    fn pdfs_are_known_by_content_type_or_name() {
        assert!(is_pdf(&manifest("a.bin", "application/pdf")));
        assert!(is_pdf(&manifest("a.bin", "Application/PDF; name=x")));
        assert!(is_pdf(&manifest("QD-12.PDF", "application/octet-stream")));
        assert!(!is_pdf(&manifest("a.docx", "application/msword")));
        assert!(!is_pdf(&manifest("pdf", "")));
    }

    #[test]
    fn a_full_queue_skips_without_waiting() {
        let (tx, mut rx) = mpsc::channel(1);
        let checks = PdfChecks {
            anchors: Anchors::default(),
            tx,
            rx: Mutex::new(None),
        };
        let env = Envelope {
            id: "e1".into(),
            attachments: vec![manifest("a.pdf", "")],
            ..Default::default()
        };
        let to = [AgencyCode::parse("000.00.00.H53").unwrap()];
        checks.offer(&env, &to);
        checks.offer(&env, &to);
        assert_eq!(rx.try_recv().unwrap().envelope_id, "e1");
        assert!(rx.try_recv().is_err());
        // Nothing to check: not queued.
        let plain = Envelope {
            attachments: vec![manifest("a.txt", "text/plain")],
            ..Default::default()
        };
        checks.offer(&plain, &to);
        assert!(rx.try_recv().is_err());
    }
}
