//! RFC 3161 time-stamps in the node (docs/evidence.md).
//!
//! **Sending.** When `[timestamp] url` is set, a document sent from here (the local API or
//! RabbitMQ) is stored at once, as always, but queued for its next hop in a holding queue
//! (`stamp><next hop>`) instead of the next hop's own. The relay's stamper takes a batch from
//! the holding queues, asks the TSA for one token over the hash tree of the batch's signatures,
//! writes each envelope again with its token and path ([`attach`]) and moves its entries to the
//! next hops' queues ([`release`]). While the TSA cannot be reached the documents wait there,
//! durable like any queued item; with `required = false` they leave without a stamp after
//! `max_wait_secs`.
//!
//! **Checking.** Every node with `[timestamp] ca` checks the stamp of each envelope that comes
//! in ([`check`]): the path from the signature's leaf to the root, the token over that root,
//! the TSA's chain to those anchors with the time-stamping usage, and a stamp time not before
//! the signature's own time. A stamp that fails is refused like a bad signature.

pub use lienthong_common::store::{holding_queue, next_hop_of, HOLD_PREFIX};
use lienthong_common::store::{QueuedEntry, StoreError};
use lienthong_evidence::batch::{Digest, Path, Side, Step};
use lienthong_evidence::tsa::{self, StampTime};
use lienthong_proto::v1::{Envelope, HashStep, RefusalCode, TimeStamp};

use crate::node::{Node, Refusal};

/// How far a stamp may seem to precede the signature it stamps (clocks differ): 5 minutes.
pub const CLOCK_SLACK_MS: i64 = 5 * 60 * 1000;

/// The stamp of an envelope in the library's terms, or why it cannot be one.
pub fn to_library(stamp: &TimeStamp) -> Result<tsa::TimeStamp, String> {
    let steps = stamp
        .path
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let sibling = Digest::from_slice(&s.sibling).ok_or_else(|| {
                format!(
                    "path step {i}: a sibling of {} bytes, not 32",
                    s.sibling.len()
                )
            })?;
            Ok(Step {
                side: if s.left { Side::Left } else { Side::Right },
                sibling,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(tsa::TimeStamp {
        token: stamp.token.clone(),
        path: Path { steps },
    })
}

/// The library's stamp as the envelope carries it.
pub fn from_library(stamp: &tsa::TimeStamp, tsa_url: &str) -> TimeStamp {
    TimeStamp {
        token: stamp.token.clone(),
        path: stamp
            .path
            .steps
            .iter()
            .map(|s| HashStep {
                left: s.side == Side::Left,
                sibling: s.sibling.as_bytes().to_vec(),
            })
            .collect(),
        tsa_url: tsa_url.to_owned(),
    }
}

/// Checks `env`'s stamp against the node's TSA anchors: `None` when it has no stamp or the
/// node has no anchors to check it with.
pub fn check(node: &Node, env: &Envelope) -> Result<Option<StampTime>, Refusal> {
    let (Some(stamp), Some(anchors)) = (&env.time_stamp, &node.tsa_anchors) else {
        return Ok(None);
    };
    let refuse = |why: String| {
        Refusal::new(
            RefusalCode::RefusalBadSignature,
            format!("time-stamp: {why}"),
        )
    };
    let sig = env
        .signature
        .as_ref()
        .ok_or_else(|| refuse("the envelope has no signature to stamp".into()))?;
    let library = to_library(stamp).map_err(refuse)?;
    let time = tsa::verify_document_stamp(&sig.value, &library, anchors)
        .map_err(|e| refuse(e.to_string()))?;
    if time.unix_ms + CLOCK_SLACK_MS < sig.signing_unix_ms {
        return Err(refuse(format!(
            "stamped at {} ms, before the signature's own time {} ms",
            time.unix_ms, sig.signing_unix_ms
        )));
    }
    Ok(Some(time))
}

/// The leaf each held document is stamped by: SHA-256 of its signature value.
pub fn leaf_of(env: &Envelope) -> Option<Digest> {
    env.signature
        .as_ref()
        .map(|s| lienthong_evidence::batch::leaf_digest(&s.value))
}

/// Writes `env` again with its stamp (not durable until the next commit).
pub fn attach(node: &Node, env: &mut Envelope, stamp: TimeStamp) -> Result<(), StoreError> {
    env.time_stamp = Some(stamp);
    node.store.update_envelope(env)
}

/// Moves a held entry of holding queue `queue` to its next hop's queue, and wakes that link.
pub fn release(node: &Node, queue: &str, entry: &QueuedEntry) -> Result<(), StoreError> {
    let Some(hop) = next_hop_of(queue) else {
        return Ok(());
    };
    node.store.move_queued(entry, queue, hop)?;
    if let Ok(code) = lienthong_common::agency::AgencyCode::parse(hop) {
        node.waker(&code).notify_one();
    }
    Ok(())
}

/// The holding queues with entries, and their entries (at most `limit` in all), oldest queue
/// entries first within each queue.
pub fn held(node: &Node, limit: usize) -> Result<Vec<(String, QueuedEntry)>, StoreError> {
    let mut out = Vec::new();
    for q in node.store.queue_names()? {
        if next_hop_of(&q).is_none() {
            continue;
        }
        let room = limit.saturating_sub(out.len());
        if room == 0 {
            break;
        }
        for e in node.store.outbound(&q, room)? {
            out.push((q.clone(), e));
        }
    }
    Ok(out)
}

/// Documents waiting for their stamp.
pub fn waiting(node: &Node) -> usize {
    node.store
        .queue_names()
        .map(|names| {
            names
                .iter()
                .filter(|q| next_hop_of(q).is_some())
                .map(|q| node.store.queue_depth(q))
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn holding_queues_name_their_next_hop() {
        let q = holding_queue("000.00.00.G22");
        assert_eq!(next_hop_of(&q), Some("000.00.00.G22"));
        assert_eq!(next_hop_of("000.00.00.G22"), None);
    }

    #[test]
    fn a_path_survives_the_envelope_form_and_a_bad_sibling_is_named() {
        let library = tsa::TimeStamp {
            token: vec![1, 2, 3],
            path: Path {
                steps: vec![
                    Step {
                        side: Side::Left,
                        sibling: Digest::from_slice(&[7; 32]).unwrap(),
                    },
                    Step {
                        side: Side::Right,
                        sibling: Digest::from_slice(&[9; 32]).unwrap(),
                    },
                ],
            },
        };
        let proto = from_library(&library, "http://tsa.example/");
        assert!(proto.path[0].left && !proto.path[1].left);
        assert_eq!(to_library(&proto).unwrap(), library);
        let mut bad = proto;
        bad.path[1].sibling.pop();
        assert!(to_library(&bad).unwrap_err().contains("path step 1"));
    }
}
