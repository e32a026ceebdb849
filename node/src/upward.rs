//! Items that travel upward only (signed daily summaries, node attestations and node details):
//! kept as the newest of their subject and queued for the parent. Used when this node makes one
//! and when a child's arrives.

use lienthong_common::store::{self, Store, StoreError, Upward, UpwardSubject};
use lienthong_proto::v1::{
    receipt_frame, NodeAttestation, NodeDetail, ReceiptFrame, SignedSummary,
};
use prost::Message;

/// Events carried by one attestation at most; the rest go with the next one.
pub const MAX_EVENTS_PER_ATTESTATION: usize = 500;

/// Requirements one node detail may carry (the checklist has fewer than 20).
pub const MAX_REQUIREMENTS_PER_DETAIL: usize = 100;

/// Bytes of one node detail's texts (name, requirements, evidence) at most.
pub const MAX_DETAIL_TEXT_BYTES: usize = 64 * 1024;

/// Keeps a signed summary as the latest of its (agency, day) and queues it for `queue_to`.
/// Returns false if it was already held.
pub fn store_summary(
    store: &Store,
    signed: &SignedSummary,
    queue_to: Option<&str>,
) -> Result<bool, StoreError> {
    let (agency, day) = signed
        .summary
        .as_ref()
        .map(|s| (s.agency.as_str(), s.day.as_str()))
        .unwrap_or_default();
    let frame = ReceiptFrame {
        item: Some(receipt_frame::Item::Summary(signed.clone())),
    };
    let frame = frame.encode_to_vec();
    let latest = signed.encode_to_vec();
    store.put_upward(
        &Upward {
            id: &signed.id,
            subject: UpwardSubject::Summary {
                agency: agency.to_owned(),
                day: day.to_owned(),
            },
            generated_unix_ms: signed.generated_unix_ms,
            frame: &frame,
            latest: &latest,
            rows: Vec::new(),
        },
        queue_to,
    )
}

/// Keeps an attestation as its node's newest, its events beside it, and queues it for
/// `queue_to`. Returns false if it was already held.
pub fn store_attestation(
    store: &Store,
    a: &NodeAttestation,
    queue_to: Option<&str>,
) -> Result<bool, StoreError> {
    let frame = ReceiptFrame {
        item: Some(receipt_frame::Item::Attestation(a.clone())),
    }
    .encode_to_vec();
    let mut latest = a.clone();
    latest.events.clear();
    let latest = latest.encode_to_vec();
    let rows = a
        .events
        .iter()
        .map(|e| (store::remote_event_key(&a.node, e.seq), e.encode_to_vec()))
        .collect();
    store.put_upward(
        &Upward {
            id: &a.id,
            subject: UpwardSubject::Attestation {
                node: a.node.clone(),
            },
            generated_unix_ms: a.generated_unix_ms,
            frame: &frame,
            latest: &latest,
            rows,
        },
        queue_to,
    )
}

/// Keeps a node detail as its node's newest and queues it for `queue_to`. Returns false if it
/// was already held.
pub fn store_detail(
    store: &Store,
    d: &NodeDetail,
    queue_to: Option<&str>,
) -> Result<bool, StoreError> {
    let frame = ReceiptFrame {
        item: Some(receipt_frame::Item::Detail(d.clone())),
    }
    .encode_to_vec();
    let latest = d.encode_to_vec();
    store.put_upward(
        &Upward {
            id: &d.id,
            subject: UpwardSubject::Detail {
                node: d.node.clone(),
            },
            generated_unix_ms: d.generated_unix_ms,
            frame: &frame,
            latest: &latest,
            rows: Vec::new(),
        },
        queue_to,
    )
}
