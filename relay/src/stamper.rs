//! The stamper: with `[timestamp] url`, takes the documents waiting in the holding queues
//! (`lienthong_node::stamp`), asks the TSA for one token over the hash tree of a batch's
//! signatures, checks it, writes each envelope with its token and path, and lets the documents
//! go to their next hops. While the TSA cannot be reached the documents wait, durable; the
//! first failure of an outage is recorded as a `tsa_unreachable` security event, every one is
//! logged, and the requests are tried again, at most a minute apart. With `required = false`
//! a document that has waited `max_wait_secs` leaves without a stamp.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lienthong_common::config::TimestampSettings;
use lienthong_common::store::QueuedEntry;
use lienthong_evidence::chain::Anchors;
use lienthong_evidence::tsa::{http::post_query, BatchRequest};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::node::Node;
use crate::security_events::EventClass;
use crate::stamp;

/// Longest pause between two attempts while the TSA fails.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Runs until `shutdown`; returns at once on a node that does not stamp.
pub async fn run(node: Arc<Node>, shutdown: CancellationToken) {
    let (Some(cfg), Some(anchors)) = (node.config.timestamp.clone(), node.tsa_anchors.clone())
    else {
        return;
    };
    let Some(url) = cfg.url.clone() else {
        return;
    };
    info!(tsa = %url, required = cfg.required, "documents sent from here are time-stamped");
    let mut backoff = Duration::from_secs(1);
    let mut outage: Option<Instant> = None;
    loop {
        if stamp::waiting(&node) == 0 {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = node.stamp_wake.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(10)) => {}
            }
        }
        // Let a burst gather into one request.
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(cfg.batch_wait) => {}
        }
        let (n, u, c, a) = (node.clone(), url.clone(), cfg.clone(), anchors.clone());
        let outcome = tokio::task::spawn_blocking(move || stamp_batch(&n, &u, &c, &a))
            .await
            .unwrap_or_else(|e| Err(format!("stamper task: {e}")));
        match outcome {
            Ok(0) => {}
            Ok(count) => {
                if let Err(e) = node.store.commit().await {
                    warn!(cause = %e, "cannot make the stamps durable");
                }
                info!(documents = count, tsa = %url, "documents time-stamped and released");
                if let Some(since) = outage.take() {
                    info!(tsa = %url, after_secs = since.elapsed().as_secs(), "the TSA answers again");
                }
                backoff = Duration::from_secs(1);
            }
            Err(e) => {
                let waiting = stamp::waiting(&node);
                warn!(tsa = %url, cause = %e, waiting, "no time-stamp; the documents wait");
                if outage.is_none() {
                    outage = Some(Instant::now());
                    node.security_event(
                        EventClass::TsaUnreachable,
                        &url,
                        "",
                        &format!("{e}; {waiting} documents wait for their time-stamp"),
                    );
                }
                if !cfg.required {
                    let n = node.clone();
                    let max_wait = cfg.max_wait;
                    let released =
                        tokio::task::spawn_blocking(move || release_overdue(&n, max_wait))
                            .await
                            .unwrap_or_else(|e| Err(e.to_string()));
                    match released {
                        Ok(0) => {}
                        Ok(k) => {
                            let _ = node.store.commit().await;
                            warn!(documents = k, "sent without a time-stamp after waiting max_wait_secs ([timestamp] required = false)");
                        }
                        Err(e) => warn!(cause = %e, "cannot release documents unstamped"),
                    }
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// The held entries of up to `batch_max` documents, by envelope id.
fn batch_of(
    node: &Node,
    batch_max: usize,
) -> Result<BTreeMap<String, Vec<(String, QueuedEntry)>>, String> {
    let mut by_doc: BTreeMap<String, Vec<(String, QueuedEntry)>> = BTreeMap::new();
    // A document bound for several next hops has an entry in each holding queue.
    for (q, e) in stamp::held(node, batch_max.saturating_mul(4)).map_err(|e| e.to_string())? {
        let id = e.item.id().to_owned();
        if by_doc.len() >= batch_max && !by_doc.contains_key(&id) {
            continue;
        }
        by_doc.entry(id).or_default().push((q, e));
    }
    Ok(by_doc)
}

/// One round: stamps a batch of held documents and releases them. Returns how many.
fn stamp_batch(
    node: &Node,
    url: &str,
    cfg: &TimestampSettings,
    anchors: &Anchors,
) -> Result<usize, String> {
    let by_doc = batch_of(node, cfg.batch_max)?;
    if by_doc.is_empty() {
        return Ok(0);
    }
    let mut docs = Vec::new();
    let mut released = 0;
    for (id, entries) in by_doc {
        let env = node.store.envelope(&id).map_err(|e| e.to_string())?;
        match env {
            // Stamped before a crash that came before its release; or gone (the link then
            // reports the lost entry): either way it needs no stamp now.
            Some(env) if env.time_stamp.is_some() => {
                release_all(node, &entries)?;
                released += 1;
            }
            None => {
                release_all(node, &entries)?;
                released += 1;
            }
            Some(env) => match stamp::leaf_of(&env) {
                Some(leaf) => docs.push((env, leaf, entries)),
                None => {
                    warn!(envelope = %id, "a document without a signature cannot be time-stamped; sent as it is");
                    release_all(node, &entries)?;
                    released += 1;
                }
            },
        }
    }
    if docs.is_empty() {
        return Ok(released);
    }
    let policy = match &cfg.policy {
        Some(p) => Some(
            p.parse()
                .map_err(|e| format!("[timestamp] policy {p}: {e}"))?,
        ),
        None => None,
    };
    let leaves: Vec<_> = docs.iter().map(|d| d.1).collect();
    let request = BatchRequest::new(&leaves, policy).map_err(|e| e.to_string())?;
    let reply = post_query(url, request.der(), cfg.timeout).map_err(|e| e.to_string())?;
    let stamped = request
        .accept(&reply, anchors)
        .map_err(|e| format!("the TSA's answer was refused: {e}"))?;
    for (i, (mut env, _, entries)) in docs.into_iter().enumerate() {
        let Some(s) = stamped.stamp(i) else {
            return Err(format!("no path for document {i} of the batch"));
        };
        stamp::attach(node, &mut env, stamp::from_library(&s, url)).map_err(|e| e.to_string())?;
        release_all(node, &entries)?;
        released += 1;
    }
    Ok(released)
}

fn release_all(node: &Node, entries: &[(String, QueuedEntry)]) -> Result<(), String> {
    for (q, e) in entries {
        stamp::release(node, q, e).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Releases, unstamped, the held documents signed more than `max_wait` ago.
fn release_overdue(node: &Node, max_wait: Duration) -> Result<usize, String> {
    let now = node.clock.now_unix_ms();
    let limit = i64::try_from(max_wait.as_millis()).unwrap_or(i64::MAX);
    let mut released = 0;
    for (q, e) in stamp::held(node, 100_000).map_err(|e| e.to_string())? {
        let signed = node
            .store
            .envelope(e.item.id())
            .map_err(|e| e.to_string())?
            .and_then(|env| env.signature.map(|s| s.signing_unix_ms))
            .unwrap_or(0);
        if now.saturating_sub(signed) >= limit {
            stamp::release(node, &q, &e).map_err(|e| e.to_string())?;
            released += 1;
        }
    }
    Ok(released)
}

/// Meta key: the audit record up to which the chain's head was last stamped.
const AUDIT_STAMPED_META: &str = "timestamp/audit-seq";

/// Every `[timestamp] audit_interval_secs`, when records were added since the last time:
/// stamps the audit log's head (the hash of its last record) and appends the token to the log
/// as a record of kind `timestamp`, class `audit_head`, so that the chain up to that record is
/// shown to have existed at the TSA's time. Failures are logged and tried at the next round.
pub async fn audit_loop(node: Arc<Node>, shutdown: CancellationToken) {
    let (Some(cfg), Some(anchors)) = (node.config.timestamp.clone(), node.tsa_anchors.clone())
    else {
        return;
    };
    let Some(url) = cfg.url.clone() else {
        return;
    };
    if cfg.audit_interval.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(cfg.audit_interval) => {}
        }
        let (n, u, c, a) = (node.clone(), url.clone(), cfg.clone(), anchors.clone());
        match tokio::task::spawn_blocking(move || stamp_audit_head(&n, &u, &c, &a)).await {
            Ok(Ok(Some(seq))) => {
                if let Err(e) = node.store.commit().await {
                    warn!(cause = %e, "cannot make the audit head's stamp durable");
                } else {
                    info!(seq, tsa = %url, "audit log head time-stamped");
                }
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                warn!(tsa = %url, cause = %e, "audit log head not time-stamped; tried again later")
            }
            Err(e) => warn!(cause = %e, "audit stamping task failed"),
        }
    }
}

/// Stamps the audit head if records came since the last stamp; returns the stamp record's
/// sequence number.
fn stamp_audit_head(
    node: &Node,
    url: &str,
    cfg: &TimestampSettings,
    anchors: &Anchors,
) -> Result<Option<u64>, String> {
    use lienthong_common::audit;
    let (seq, hash) = audit::head(&node.store).map_err(|e| e.to_string())?;
    let stamped_to = node
        .store
        .get_meta(AUDIT_STAMPED_META)
        .map_err(|e| e.to_string())?
        .and_then(|v| String::from_utf8_lossy(&v).parse::<u64>().ok())
        .unwrap_or(0);
    if seq == 0 || seq <= stamped_to {
        return Ok(None);
    }
    let leaf = hex::decode(&hash)
        .ok()
        .and_then(|b| lienthong_evidence::batch::Digest::from_slice(&b))
        .ok_or_else(|| format!("audit record {seq}: its hash {hash} is not 32 bytes of hex"))?;
    let request = BatchRequest::new(&[leaf], None).map_err(|e| e.to_string())?;
    let reply = post_query(url, request.der(), cfg.timeout).map_err(|e| e.to_string())?;
    let stamped = request
        .accept(&reply, anchors)
        .map_err(|e| format!("the TSA's answer was refused: {e}"))?;
    let record = audit::append(
        &node.store,
        node.clock.now_unix_ms(),
        audit::TIMESTAMP_KIND,
        audit::HEAD_STAMP_CLASS,
        url,
        "",
        &format!(
            "seq {seq} hash {hash} token {}",
            hex::encode(stamped.token())
        ),
    )
    .map_err(|e| e.to_string())?;
    node.store
        .put_meta(AUDIT_STAMPED_META, record.seq.to_string().as_bytes())
        .map_err(|e| e.to_string())?;
    Ok(Some(record.seq))
}
