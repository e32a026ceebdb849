//! `p/<envelope id>`: what checking the signatures inside a delivered document's PDF
//! attachments found, as JSON ([`PdfReport`]). Written once per delivery by
//! `lienthong_node::pdf_check`, off the delivery path; read by the local API, the console and
//! proof bundles. The shapes here are the API's (`pdf_signatures` in docs/api.md).
//!
//! `P/<seq>`: a check still to run (the envelope id, then the recipients it was delivered to),
//! written with the delivery and removed with the report: a check is never skipped, by a burst
//! or by a stop.

use serde::{Deserialize, Serialize};

use super::*;

const PREFIX: &[u8] = b"p/";
const WAITING: &[u8] = b"P/";

/// A PDF check still to run: the delivery it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdfCheckWaiting {
    /// The record's key (to remove it once the report is kept).
    pub key: Vec<u8>,
    /// The envelope delivered.
    pub envelope_id: String,
    /// The agencies here it was delivered to.
    pub recipients: Vec<String>,
}

/// The signatures found in a document's PDF attachments, attachment by attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdfReport {
    /// When the check ran (Unix ms).
    pub checked_unix_ms: i64,
    /// Each PDF attachment (by content type or `.pdf` name), in the envelope's order.
    pub attachments: Vec<PdfAttachmentReport>,
}

impl PdfReport {
    /// How many signatures, over every attachment, have `verdict`.
    pub fn count(&self, verdict: PdfVerdict) -> usize {
        self.attachments
            .iter()
            .flat_map(|a| &a.signatures)
            .filter(|s| s.verdict == verdict)
            .count()
    }
}

/// One PDF attachment and its signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdfAttachmentReport {
    /// Its name in the attachment manifest.
    pub name: String,
    /// SHA-256 of its bytes, hex (as in the manifest and the attachment URL).
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// Why its signatures could not be examined (not a PDF, too large, bytes not held);
    /// absent when they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_checked: Option<String>,
    /// Every signature found (none: the PDF is not signed).
    pub signatures: Vec<PdfSignatureReport>,
}

/// One signature inside a PDF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdfSignatureReport {
    /// The signature field's name, when a field points at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A signer's signature, or a document time-stamp.
    pub kind: PdfSignatureKind,
    /// The verdict.
    pub verdict: PdfVerdict,
    /// Why it is not valid (for `invalid` and `unknown_signer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The signer (the signing certificate's subject, common name first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// When it says it was signed (UTC, readable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_time: Option<String>,
    /// The signature covers the file up to its last byte.
    pub covers_whole_file: bool,
    /// Bytes after the signed range other than later signatures' own updates.
    pub changed_after_signing: bool,
    /// The embedded time-stamp, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_stamp: Option<PdfTimeStampReport>,
}

/// What a signature dictionary holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PdfSignatureKind {
    /// A signer's CMS signature.
    Signature,
    /// An RFC 3161 time-stamp over the document.
    DocumentTimeStamp,
}

/// The verdict on one signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PdfVerdict {
    /// Bytes, signature, chain to the anchors and time-stamp all hold.
    Valid,
    /// Something does not hold (`why` says what).
    Invalid,
    /// The signature verifies, but its certificate does not chain to `[pdf_signatures] ca`.
    UnknownSigner,
}

impl PdfVerdict {
    /// Its name in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::UnknownSigner => "unknown_signer",
        }
    }
}

/// A time-stamp embedded in a signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdfTimeStampReport {
    /// Its time (UTC, readable), when the token could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// The TSA (its certificate's subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsa: Option<String>,
    /// `valid`, `invalid` or `unknown_tsa`.
    pub status: String,
    /// Why it is not valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

fn report_key(envelope_id: &str) -> Vec<u8> {
    key(PREFIX, &[envelope_id.as_bytes()])
}

impl Store {
    /// Keeps the PDF report of envelope `envelope_id`, replacing any earlier one (a delivery
    /// checked again after a crash). Durable with the next commit.
    pub fn put_pdf_report(&self, envelope_id: &str, report: &PdfReport) -> Result<(), StoreError> {
        let k = report_key(envelope_id);
        let v = serde_json::to_vec(report).map_err(|e| StoreError::Corrupt {
            key: String::from_utf8_lossy(&k).into_owned(),
            reason: format!("cannot encode the PDF report: {e}"),
        })?;
        self.tree().insert(k, v).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records that the PDF attachments of `envelope_id`, just delivered to `recipients`, are
    /// to be checked. Durable with the delivery's commit.
    pub fn queue_pdf_check(
        &self,
        envelope_id: &str,
        recipients: &[&str],
    ) -> Result<(), StoreError> {
        let mut k = WAITING.to_vec();
        k.extend_from_slice(&self.next_seq()?.to_be_bytes());
        let mut v = envelope_id.as_bytes().to_vec();
        for r in recipients {
            v.push(0);
            v.extend_from_slice(r.as_bytes());
        }
        self.tree().insert(k, v).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The first `limit` PDF checks still to run, in the order of their deliveries.
    pub fn pdf_checks_waiting(&self, limit: usize) -> Result<Vec<PdfCheckWaiting>, StoreError> {
        let mut out = Vec::new();
        for kv in self.tree().scan_prefix(WAITING).take(limit) {
            let (k, v) = kv.map_err(|e| self.err(e))?;
            let mut parts = v
                .split(|b| *b == 0)
                .map(|p| String::from_utf8_lossy(p).into_owned());
            let envelope_id = parts.next().unwrap_or_default();
            out.push(PdfCheckWaiting {
                key: k.to_vec(),
                envelope_id,
                recipients: parts.collect(),
            });
        }
        Ok(out)
    }

    /// How many PDF checks are still to run.
    pub fn pdf_checks_waiting_count(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for kv in self.tree().scan_prefix(WAITING) {
            kv.map_err(|e| self.err(e))?;
            n += 1;
        }
        Ok(n)
    }

    /// Keeps the report of a waiting check and removes the check from the ones to run, in one
    /// atomic update. Durable with the next commit.
    pub fn finish_pdf_check(
        &self,
        waiting: &PdfCheckWaiting,
        report: &PdfReport,
    ) -> Result<(), StoreError> {
        let k = report_key(&waiting.envelope_id);
        let v = serde_json::to_vec(report).map_err(|e| StoreError::Corrupt {
            key: String::from_utf8_lossy(&k).into_owned(),
            reason: format!("cannot encode the PDF report: {e}"),
        })?;
        let mut batch = sled::Batch::default();
        batch.insert(k, v);
        batch.remove(waiting.key.as_slice());
        self.tree().apply_batch(batch).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Removes a waiting check without a report (its envelope is no longer held).
    pub fn drop_pdf_check(&self, waiting: &PdfCheckWaiting) -> Result<(), StoreError> {
        self.tree()
            .remove(waiting.key.as_slice())
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The PDF report of envelope `envelope_id`, if its attachments were checked here.
    pub fn pdf_report(&self, envelope_id: &str) -> Result<Option<PdfReport>, StoreError> {
        let k = report_key(envelope_id);
        let Some(v) = self.tree().get(&k).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        serde_json::from_slice(&v)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_report_reads_back_and_other_keyspaces_are_not_reports() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.pdf_report("e1").unwrap(), None);
        let report = PdfReport {
            checked_unix_ms: 7,
            attachments: vec![PdfAttachmentReport {
                name: "qd.pdf".into(),
                sha256: "ab".into(),
                size: 3,
                not_checked: None,
                signatures: vec![PdfSignatureReport {
                    field: Some("Signature1".into()),
                    kind: PdfSignatureKind::Signature,
                    verdict: PdfVerdict::Invalid,
                    why: Some("messageDigest differs".into()),
                    signer: None,
                    signing_time: None,
                    covers_whole_file: true,
                    changed_after_signing: false,
                    time_stamp: None,
                }],
            }],
        };
        s.put_pdf_report("e1", &report).unwrap();
        s.put_raw(b"p/e10", b"not json").unwrap();
        assert_eq!(s.pdf_report("e1").unwrap(), Some(report.clone()));
        assert_eq!(report.count(PdfVerdict::Invalid), 1);
        assert!(matches!(
            s.pdf_report("e10"),
            Err(StoreError::Corrupt { .. })
        ));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["attachments"][0]["signatures"][0]["verdict"],
            "invalid"
        );
        assert!(json["attachments"][0].get("not_checked").is_none());
    }
}
