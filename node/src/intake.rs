//! The local side's intake: a document or a status update from this node's own DMS or staff,
//! whichever adapter brought it (the HTTP API in JSON or edXML, the RabbitMQ queues). Each is
//! checked, signed with the agency's key, stored and queued here, once; the adapters only decode
//! their format and answer in it.

use std::sync::Arc;

use lienthong_common::agency::AgencyCode;
use lienthong_common::envelope::{self, EnvelopeError, STATUS_CODES_TEXT};
use lienthong_common::input;
use lienthong_common::store::{Persisted, StoreError};
use lienthong_proto::v1::{
    Envelope, StaffInfo, StatusCode as Status, StatusReceipt, TransportState,
};
use prost::Message;
use rustls_pki_types::UnixTime;
use serde::Deserialize;
use tracing::info;

use crate::node::{Node, NodeError};

/// Why the intake did not take a document or a status. The adapters map it once each: to an
/// HTTP status in `api.rs`, to a dead-letter (refusals) or a retry (the rest) in `amqp.rs`.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The input is refused: sent again unchanged, it would be refused again. The message
    /// names the field.
    #[error("{0}")]
    Refused(String),
    /// An id (envelope or status) already used for different content.
    #[error("{0}")]
    Conflict(String),
    /// What the input is about is not on this node.
    #[error("{0}")]
    NotFound(String),
    /// The store failed; the input was not taken and may be sent again.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A local failure (a signing key, this node's own signature).
    #[error("{0}")]
    Internal(String),
}

impl IntakeError {
    fn refused(m: impl Into<String>) -> Self {
        Self::Refused(m.into())
    }
    fn conflict(m: impl Into<String>) -> Self {
        Self::Conflict(m.into())
    }
    fn not_found(m: impl Into<String>) -> Self {
        Self::NotFound(m.into())
    }
    fn internal(m: impl Into<String>) -> Self {
        Self::Internal(m.into())
    }
    /// True when the input itself is at fault: retrying it cannot succeed.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Refused(_) | Self::Conflict(_) | Self::NotFound(_)
        )
    }
}

impl From<EnvelopeError> for IntakeError {
    fn from(e: EnvelopeError) -> Self {
        Self::Refused(e.to_string())
    }
}

impl From<NodeError> for IntakeError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Refused(r) => Self::Refused(r.reason),
            NodeError::Store(s) => Self::Store(s),
            NodeError::Signing(s) => Self::Internal(s),
        }
    }
}

/// An agency served on this node: `q`, or the node's own when absent.
pub fn served_agency(node: &Node, q: Option<&str>) -> Result<AgencyCode, IntakeError> {
    let a = match q {
        None | Some("") => node.agency().clone(),
        Some(s) => {
            AgencyCode::parse(s).map_err(|e| IntakeError::refused(format!("agency: {e}")))?
        }
    };
    if node.signer(&a).is_none() {
        return Err(IntakeError::refused(format!(
            "agency: {a} is not served on this node (it serves {})",
            join(&node.local_agencies())
        )));
    }
    Ok(a)
}

/// Accepts a document from the local side: fills id and document id, checks it, signs it with
/// the sending agency's key (or, if the DMS signed it itself, verifies that signature), stores
/// and queues it, and returns once it is durable, with the proof.
pub async fn submit_envelope(
    node: &Arc<Node>,
    mut env: Envelope,
) -> Result<(String, String, Persisted), IntakeError> {
    let from = env.from.get_or_insert_with(Default::default);
    if from.code.is_empty() {
        from.code = node.agency().to_string();
    }
    let sender = AgencyCode::parse(&from.code)
        .map_err(|e| IntakeError::refused(format!("from.code: {e}")))?;
    let signer = node.signer(&sender).cloned().ok_or_else(|| {
        IntakeError::refused(format!(
            "from.code: {sender} is not served on this node (it serves {})",
            join(&node.local_agencies())
        ))
    })?;
    if from.name.is_empty() {
        from.name = if &sender == node.agency() {
            node.config.name.clone()
        } else {
            sender.to_string()
        };
    }
    if env.id.is_empty() {
        env.id = uuid::Uuid::new_v4().to_string();
    }
    if env.document_id.is_empty() {
        env.document_id = envelope::document_id_for(&env);
    }
    env.trace.clear();
    if let Some(existing) = node.store.envelope(&env.id)? {
        // A DMS retrying a submit with the same id gets the same answer; a different document
        // under a used id is refused.
        let mut a = existing.clone();
        let mut b = env.clone();
        for e in [&mut a, &mut b] {
            e.signature = None;
            e.trace.clear();
        }
        if a == b {
            let persisted = node.store.commit().await?;
            return Ok((existing.id, existing.document_id, persisted));
        }
        return Err(IntakeError::conflict(format!(
            "id: envelope id {} is already used by another document",
            env.id
        )));
    }
    envelope::validate_envelope(&env, envelope::today_in_vietnam(node.clock.now_utc()))?;
    for a in &env.attachments {
        if !node.store.has_attachment(&a.sha256, a.size) {
            let held = node.store.attachment_held(&a.sha256)?;
            return Err(IntakeError::refused(format!(
                "attachments: {} ({}) is not uploaded: the node holds {held} of its {} bytes; POST it to /v1/attachments first",
                a.name,
                hex::encode(&a.sha256),
                a.size
            )));
        }
    }
    let verified = if env.signature.is_some() {
        // Signed by the DMS itself with the agency's key: checked like at any hop.
        node.verifier
            .verify_envelope(env, UnixTime::now())
            .map_err(|e| IntakeError::refused(format!("signature: {e}")))?
    } else {
        signer
            .sign_envelope(&mut env, node.clock.now_unix_ms())
            .map_err(|e| IntakeError::internal(e.to_string()))?;
        node.verifier
            .verify_envelope(env, UnixTime::now())
            .map_err(|e| IntakeError::internal(format!("own signature does not verify: {e}")))?
    };
    // A stamp given with the document (a DMS that stamps itself) is checked like at any hop.
    crate::stamp::check(node, &verified).map_err(|r| IntakeError::refused(r.reason.clone()))?;
    let recipients: Vec<AgencyCode> = verified
        .to
        .iter()
        .filter_map(|t| AgencyCode::parse(&t.code).ok())
        .collect();
    let recips: Vec<String> = recipients.iter().map(|r| r.to_string()).collect();
    let id = verified.id.clone();
    let doc = verified.document_id.clone();
    let copy: Envelope = (*verified).clone();
    node.accept(verified, &recipients, None)?;
    node.record_local_event(
        crate::node::About::from(&copy),
        &recips,
        TransportState::TransportQueued,
        None,
    )?;
    let (number, _) = crate::register::register(
        &node.store,
        crate::register::Direction::Out,
        &sender,
        &copy,
        node.clock.now_unix_ms(),
    )?;
    let persisted = node.store.commit().await?;
    node.metrics.submitted.inc();
    node.metrics.traffic.document_in(crate::traffic::LOCAL);
    info!(envelope = %id, document = %doc, recipients = recips.len(), outgoing_number = number, "document accepted from local side");
    Ok((id, doc, persisted))
}

pub(crate) fn join(codes: &[AgencyCode]) -> String {
    codes
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Body of a status post.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StatusPost {
    /// Reporting agency (default: the local recipient of the document; for 13 its sender).
    pub agency: Option<String>,
    /// Status code: 2–6, 13, 15, 16.
    pub status: i32,
    /// Reason (required for 02 and 16).
    pub description: String,
    /// Who handles it.
    pub staff: Option<StaffInfo>,
    /// The DMS's own id for this status update (an identifier: at most 64 of ASCII letters,
    /// digits and `-_.:`; or the `Idempotency-Key` header). A repeat with the same id and the
    /// same content is answered as the first was and sent nowhere; the same id with different
    /// content is refused with 409.
    pub id: Option<String>,
    /// What an edXML status package carried beyond these fields (set by the edXML intake).
    #[serde(skip)]
    pub edxml: Option<lienthong_proto::v1::EdxmlExtras>,
}

/// Statuses that can be posted through the API (01 is sent automatically on arrival).
pub const POSTABLE_STATUSES: &str = "02, 03, 04, 05, 06, 13, 15, 16";

/// Checks a status a local DMS or clerk reports about document `id`, signs and routes it, and
/// returns once it is durable, with the receipt ids and the proof.
pub async fn post_status_checked(
    node: &Arc<Node>,
    id: &str,
    p: &StatusPost,
) -> Result<(Vec<String>, Persisted), IntakeError> {
    let id = id.to_owned();
    let status = match Status::try_from(p.status) {
        Ok(Status::StatusUnspecified | Status::StatusArrived) | Err(_) => {
            return Err(IntakeError::refused(format!(
                "status: {} is not a status that can be posted; valid: {POSTABLE_STATUSES} (of {STATUS_CODES_TEXT}; 01 is sent automatically on arrival)",
                p.status
            )))
        }
        Ok(s) => s,
    };
    let env = node.store.envelope(&id)?.ok_or_else(|| {
        IntakeError::not_found(format!("no document with envelope id {id} on this node"))
    })?;
    let claim = match p.id.as_deref().filter(|i| !i.is_empty()) {
        Some(given) => {
            input::identifier("id", given).map_err(|e| IntakeError::refused(e.to_string()))?;
            let name = format!("status-id/{id}/{given}");
            let digest = status_digest(p);
            if let Some(prev) = node.store.get_meta(&name)? {
                let (d, ids) = prev.split_at(prev.len().min(digest.len()));
                if d != digest.as_slice() {
                    return Err(IntakeError::conflict(format!(
                        "id: status id {given} was already used for a different status about {id}"
                    )));
                }
                let ids = String::from_utf8_lossy(ids)
                    .split('\n')
                    .filter(|i| !i.is_empty())
                    .map(str::to_owned)
                    .collect();
                let persisted = node.store.commit().await?;
                info!(envelope = %id, status_id = given, "status repeated; answered as before");
                return Ok((ids, persisted));
            }
            Some((name, digest))
        }
        None => None,
    };
    let sender = env
        .from
        .as_ref()
        .map(|f| f.code.clone())
        .unwrap_or_default();
    let mut ids = Vec::new();
    if status == Status::StatusRecallRequested {
        let agency = served_agency(node, Some(p.agency.as_deref().unwrap_or(&sender)))?;
        if agency.as_str() != sender {
            return Err(IntakeError::refused(format!(
                "status 13 (recall) is sent by the document's sender {sender}, not {agency}"
            )));
        }
        for to in &env.to {
            let r = receipt(
                &env,
                &agency,
                &to.code,
                &to.code,
                status,
                p,
                node.clock.now_unix_ms(),
            );
            ids.push(r.id.clone());
            node.post_receipt(r)?;
        }
    } else {
        let agency = match p.agency.as_deref() {
            Some(a) => served_agency(node, Some(a))?,
            None => env
                .to
                .iter()
                .filter_map(|t| AgencyCode::parse(&t.code).ok())
                .find(|c| node.signer(c).is_some())
                .ok_or_else(|| {
                    IntakeError::refused(format!(
                        "agency: no recipient of {id} is served on this node"
                    ))
                })?,
        };
        if !node
            .store
            .inbox(agency.as_str())?
            .iter()
            .any(|e| e.envelope_id == id)
        {
            return Err(IntakeError::refused(format!(
                "agency: {id} is not in the inbox of {agency}"
            )));
        }
        // The recipient has the document: its 01 goes first (a no-op if already sent), so the
        // sender never sees a later status before the arrival.
        node.confirm_delivered(&env, &agency)?;
        let r = receipt(
            &env,
            &agency,
            &sender,
            agency.as_str(),
            status,
            p,
            node.clock.now_unix_ms(),
        );
        ids.push(r.id.clone());
        node.post_receipt(r)?;
    }
    if let Some((name, mut record)) = claim {
        record.extend_from_slice(ids.join("\n").as_bytes());
        node.store.put_meta(&name, &record)?;
    }
    let persisted = node.store.commit().await?;
    info!(envelope = %id, status = p.status, "status posted");
    Ok((ids, persisted))
}

/// What a status post says, as a digest: a repeat under the same id must say the same.
fn status_digest(p: &StatusPost) -> Vec<u8> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [
        p.agency.as_deref().unwrap_or_default().as_bytes(),
        &p.status.to_be_bytes(),
        p.description.as_bytes(),
        &p.staff
            .as_ref()
            .map(|s| s.encode_to_vec())
            .unwrap_or_default(),
        &p.edxml
            .as_ref()
            .map(|e| e.encode_to_vec())
            .unwrap_or_default(),
    ] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    ctx.finish().as_ref().to_vec()
}

fn receipt(
    env: &Envelope,
    reporter: &AgencyCode,
    to: &str,
    recipient: &str,
    status: Status,
    p: &StatusPost,
    at_unix_ms: i64,
) -> StatusReceipt {
    let id = match p.id.as_deref().filter(|i| !i.is_empty()) {
        // One receipt per recipient for a recall: derive each id from the DMS's id.
        Some(given) => {
            let d = ring::digest::digest(
                &ring::digest::SHA256,
                format!("{given}\0{}\0{recipient}", env.id).as_bytes(),
            );
            hex::encode(&d.as_ref()[..16])
        }
        None => uuid::Uuid::new_v4().simple().to_string(),
    };
    StatusReceipt {
        id,
        from: Some(lienthong_proto::v1::Organization {
            code: reporter.to_string(),
            name: reporter.to_string(),
            ..Default::default()
        }),
        response_for: Some(crate::node::response_for(env)),
        staff: p.staff.clone(),
        edxml: p.edxml.clone(),
        status: status as i32,
        description: p.description.clone(),
        timestamp_unix_ms: at_unix_ms,
        signature: None,
        to: to.to_owned(),
        recipient: recipient.to_owned(),
    }
}
