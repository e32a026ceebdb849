//! The JSON shapes of the local API's answers, shared by the node that writes them and the
//! clients that read them.

use lienthong_proto::v1::{Envelope, StatusReceipt, TraceEntry, TransportEvent};
use serde::{Deserialize, Serialize};

pub use lienthong_common::store::{
    PdfAttachmentReport, PdfReport, PdfSignatureKind, PdfSignatureReport, PdfTimeStampReport,
    PdfVerdict,
};

/// Answer of an upload.
#[derive(Debug, Serialize, Deserialize)]
pub struct Uploaded {
    /// SHA-256 of the bytes, hex: put it in the attachment manifest.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// One inbox entry in JSON.
#[derive(Debug, Serialize, Deserialize)]
pub struct InboxItem {
    /// Arrival order: pass the last one seen as `after` for the next page.
    pub seq: u64,
    /// Acknowledged by the DMS or staff.
    pub acknowledged: bool,
    /// The envelope id (also inside `envelope`).
    #[serde(default)]
    pub envelope_id: String,
    /// The document.
    pub envelope: Envelope,
    /// The signatures inside its PDF attachments, as checked on delivery here against
    /// `[pdf_signatures] ca`; absent when they were not checked (no such section, no PDF
    /// attachment, or the check has not run yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdf_signatures: Option<PdfReport>,
}

/// One inbox entry listed with `bodies=false`: what to fetch, not the document.
#[derive(Debug, Serialize, Deserialize)]
pub struct InboxRef {
    /// Arrival order.
    pub seq: u64,
    /// Acknowledged by the DMS or staff.
    pub acknowledged: bool,
    /// The envelope id: `GET /v1/documents/{id}` reads the document.
    pub envelope_id: String,
}

/// Per-recipient view of a sent document.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecipientView {
    /// Recipient agency.
    pub recipient: String,
    /// Latest business status code (0: none yet).
    pub status: i32,
    /// When it was reported (unix ms).
    pub status_at: i64,
    /// Its description.
    pub description: String,
    /// Every business status received for this recipient, in order: (code, unix ms).
    pub history: Vec<(i32, i64)>,
    /// Due date passed and not done.
    pub overdue: bool,
    /// Hop trace as it reached the recipient.
    pub trace: Vec<TraceEntry>,
}

/// Track view of a document.
#[derive(Debug, Serialize, Deserialize)]
pub struct TrackView {
    /// Envelope id.
    pub envelope_id: String,
    /// Document id.
    pub document_id: String,
    /// Subject.
    pub subject: String,
    /// Sender.
    pub from: String,
    /// Due date.
    pub due_date: String,
    /// Per recipient.
    pub recipients: Vec<RecipientView>,
    /// Transport events, in arrival order.
    pub events: Vec<TransportEvent>,
    /// Every business status receipt held for this document, in arrival order (includes
    /// recall requests, 13, which a recipient sees here).
    pub statuses: Vec<StatusReceipt>,
    /// The signatures inside its PDF attachments, per attachment, when this node delivered it
    /// and checked them (as in the inbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdf_signatures: Option<PdfReport>,
}
