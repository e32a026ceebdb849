//! The queue of PDF signature checks a node holds when `[pdf_signatures]` is set, and its trust
//! anchors: what [`Node::accept`](crate::node::Node::accept) records for each delivery, in the
//! store and in the same commit as the delivery, so that no check is skipped by a burst or lost
//! by a stop. The checks themselves run in `crate::pdf_check`.

use std::path::PathBuf;

use lienthong_common::agency::AgencyCode;
use lienthong_common::config::PdfSignatureSettings;
use lienthong_common::store::{Store, StoreError};
use lienthong_evidence::chain::{self, Anchors, ChainError};
use lienthong_proto::v1::{AttachmentManifest, Envelope};
use tokio::sync::Notify;

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

/// One delivered envelope to check: what the check needs, from the envelope and its record.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) envelope_id: String,
    pub(crate) document_id: String,
    pub(crate) sender: String,
    pub(crate) recipients: Vec<String>,
    pub(crate) pdfs: Vec<AttachmentManifest>,
}

impl Job {
    /// The check of `env`'s PDF attachments for `recipients` (none: nothing to check).
    pub(crate) fn of(env: &Envelope, recipients: Vec<String>) -> Option<Self> {
        let pdfs = pdfs_of(env);
        if pdfs.is_empty() || recipients.is_empty() {
            return None;
        }
        Some(Self {
            envelope_id: env.id.clone(),
            document_id: env.document_id.clone(),
            sender: env
                .from
                .as_ref()
                .map(|f| f.code.clone())
                .unwrap_or_default(),
            recipients,
            pdfs,
        })
    }
}

/// The PDF attachments of `env`, in its order.
fn pdfs_of(env: &Envelope) -> Vec<AttachmentManifest> {
    env.attachments
        .iter()
        .filter(|a| is_pdf(a))
        .cloned()
        .collect()
}

/// The anchors, and the wake-up of the checker; held by the node when `[pdf_signatures]` is
/// set. The checks waiting are in the store (`P/`).
#[derive(Debug)]
pub struct PdfChecks {
    pub(crate) anchors: Anchors,
    pub(crate) wake: Notify,
}

/// Whether an attachment is a PDF: by its content type or its name.
pub fn is_pdf(a: &AttachmentManifest) -> bool {
    let ct = a.content_type.split(';').next().unwrap_or_default().trim();
    ct.eq_ignore_ascii_case("application/pdf") || a.name.to_ascii_lowercase().ends_with(".pdf")
}

impl PdfChecks {
    /// Checks against `anchors`.
    pub fn new(anchors: Anchors) -> Self {
        Self {
            anchors,
            wake: Notify::new(),
        }
    }

    /// Records the check of `env`, just delivered to `recipients`, if it has PDF attachments
    /// (durable with the delivery's commit), and wakes the checker. Never waits for a check.
    pub(crate) fn offer(
        &self,
        store: &Store,
        env: &Envelope,
        recipients: &[AgencyCode],
    ) -> Result<(), StoreError> {
        if recipients.is_empty() || !env.attachments.iter().any(is_pdf) {
            return Ok(());
        }
        let to: Vec<&str> = recipients.iter().map(AgencyCode::as_str).collect();
        store.queue_pdf_check(&env.id, &to)?;
        self.wake.notify_one();
        Ok(())
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
    fn a_check_is_recorded_only_for_pdfs_delivered_here() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let checks = PdfChecks::new(Anchors::default());
        let to = [AgencyCode::parse("000.00.00.H53").unwrap()];
        let env = Envelope {
            id: "e1".into(),
            attachments: vec![manifest("a.txt", "text/plain"), manifest("a.pdf", "")],
            ..Default::default()
        };
        checks.offer(&store, &env, &to).unwrap();
        // Nothing to check: no PDF, or no recipient here.
        let plain = Envelope {
            id: "e2".into(),
            attachments: vec![manifest("a.txt", "text/plain")],
            ..Default::default()
        };
        checks.offer(&store, &plain, &to).unwrap();
        checks.offer(&store, &env, &[]).unwrap();
        let waiting = store.pdf_checks_waiting(10).unwrap();
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].envelope_id, "e1");
        assert_eq!(waiting[0].recipients, vec!["000.00.00.H53".to_owned()]);
        let job = Job::of(&env, waiting[0].recipients.clone()).unwrap();
        assert_eq!(job.pdfs.len(), 1);
        assert_eq!(job.pdfs[0].name, "a.pdf");
    }
}
