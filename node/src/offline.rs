//! Documents waiting for a child that is not linked: a district or commune office may be
//! offline for days, and a child that has never linked has a queue all the same (the routing
//! table's rule 5). Once a document has waited `[link] offline_child_max_age_hours` while that
//! child is down, its sender gets a FAILED event and 02 with the reason, and it leaves the queue.

use std::sync::Arc;
use std::time::Duration;

use lienthong_common::agency::AgencyCode;
use lienthong_common::store::QueueItem;
use lienthong_proto::v1::RefusalCode;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::node::{Node, NodeError, Refusal};

/// How often the queues of unlinked children are looked at.
pub const EXPIRY_CHECK_EVERY: Duration = Duration::from_secs(5);
/// Entries looked at per queue and check (the oldest first: a queue is in arrival order).
const EXPIRY_BATCH: usize = 256;

/// Runs [`expire`] every [`EXPIRY_CHECK_EVERY`] until `stop`; nothing when waiting is off.
pub async fn expiry_loop(node: Arc<Node>, stop: CancellationToken) {
    let max = node.config.link.offline_child_max_age;
    if max.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(EXPIRY_CHECK_EVERY) => {}
        }
        let n = node.clone();
        match tokio::task::spawn_blocking(move || expire(&n, max)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(count)) => match node.store.commit().await {
                Ok(_persisted) => info!(
                    count,
                    "documents for offline children expired; senders told"
                ),
                Err(e) => error!(cause = %e, "cannot commit expired documents"),
            },
            Ok(Err(e)) => warn!(cause = %e, "cannot expire documents for offline children"),
            Err(e) => warn!(cause = %e, "expiry task failed"),
        }
    }
}

/// Forgets, every few seconds, the announcements of children that have not linked for
/// `[link] announce_expiry_secs` ([`Node::expire_announcements`]), until `stop`.
pub async fn announce_expiry_loop(node: Arc<Node>, stop: CancellationToken) {
    let max = node.config.link.announce_expiry;
    if max.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(EXPIRY_CHECK_EVERY) => {}
        }
        match node.expire_announcements(max) {
            Ok(gone) if gone.is_empty() => {}
            Ok(_) => {
                if let Err(e) = node.store.commit().await {
                    error!(cause = %e, "cannot commit expired announcements");
                }
            }
            Err(e) => warn!(cause = %e, "cannot expire announcements"),
        }
    }
}

/// Answers and removes the documents that waited longer than `max` for a child whose link is
/// down. Returns how many (document, child) entries it removed. The caller commits.
pub fn expire(node: &Node, max: Duration) -> Result<usize, NodeError> {
    let now = node.clock.now_unix_ms();
    let max_ms = i64::try_from(max.as_millis()).unwrap_or(i64::MAX);
    let routes = node.routes();
    let mut count = 0;
    for name in node.store.queue_names()? {
        let Ok(child) = AgencyCode::parse(&name) else {
            continue; // a local delivery queue (`amqp/...`), not a neighbour
        };
        if Some(&child) == routes.parent() || node.link_is_up(&child) {
            continue;
        }
        for e in node.store.outbound(child.as_str(), EXPIRY_BATCH)? {
            let QueueItem::Envelope { id, recipients, .. } = &e.item else {
                continue; // receipts wait for the child however long it takes
            };
            let Some(env) = node.store.envelope(id)? else {
                node.drop_queued(
                    child.as_str(),
                    &e,
                    "the queued envelope is missing from the store",
                );
                continue;
            };
            let since = env
                .trace
                .iter()
                .rev()
                .find(|t| t.agency == node.agency().as_str())
                .map_or(0, |t| t.received_unix_ms);
            let waited = now.saturating_sub(since);
            if waited < max_ms {
                continue;
            }
            let reason = format!(
                "{child} has not linked to {} for the {} hours a document may wait for it",
                node.agency(),
                max.as_secs() / 3600
            );
            warn!(envelope = %env.id, %child, waited_ms = waited, "document expired waiting for an offline child");
            node.metrics.refuse("offline_child_expired");
            node.answer_refusal(
                &env,
                recipients,
                &Refusal::new(RefusalCode::RefusalNoRoute, reason),
            )?;
            node.store.dequeue(&e.key)?;
            count += 1;
        }
    }
    Ok(count)
}
