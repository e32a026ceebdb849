//! Upward security monitoring: every node sends its parent a signed [`NodeAttestation`] — the
//! security events it recorded since its previous one and its state (version, certificate and
//! CA expiry, CRL, queue depths, parent link, its own assessment) — every `[security]
//! report_interval_secs`. A parent keeps the newest attestation of each node below it and the
//! events they carried, and passes them on, so a province sees its subtree and the root the
//! nation (`lt-relay security events --subtree`, `lt-relay security report`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use lienthong_common::agency::AgencyCode;
use lienthong_common::audit;
use lienthong_common::store::{Store, StoreError};
use lienthong_proto::v1::{NodeAttestation, SecurityEventRecord};
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::node::Node;
use crate::upward::{store_attestation, MAX_EVENTS_PER_ATTESTATION};

const SENT_SEQ_META: &str = "monitor/sent-seq";
const PARENT_UP_META: &str = "monitor/parent-up";

/// Monitoring errors.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing the attestation.
    #[error("signing the attestation: {0}")]
    Signing(String),
}

fn parent_up(node: &Node) -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = node.clock.now_unix_ms();
    let Some(p) = &node.config.parent else {
        return 0;
    };
    let up = node
        .metrics
        .link_up
        .get_or_create(&crate::metrics::NeighbourLabel {
            neighbour: p.agency.to_string(),
        })
        .get()
        == 1;
    if up {
        LAST.store(now, Ordering::Relaxed);
        let _ = node.store.put_meta(PARENT_UP_META, &now.to_be_bytes());
        return now;
    }
    let held = LAST.load(Ordering::Relaxed);
    if held > 0 {
        return held;
    }
    node.store
        .get_meta(PARENT_UP_META)
        .ok()
        .flatten()
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map(i64::from_be_bytes)
        .unwrap_or(0)
}

fn record_of(r: &audit::AuditRecord) -> SecurityEventRecord {
    SecurityEventRecord {
        seq: r.seq,
        at_unix_ms: r.at_unix_ms,
        class: r.class.clone(),
        peer: r.peer.clone(),
        agency: r.agency.clone(),
        reason: r.reason.clone(),
    }
}

/// Builds this node's attestation (unsigned) with the events after audit record `after_seq`.
pub fn build(node: &Node, after_seq: u64) -> Result<NodeAttestation, MonitorError> {
    let now = node.clock.now_unix_ms();
    let mut by_class: BTreeMap<String, u64> = BTreeMap::new();
    let mut events = Vec::new();
    for r in audit::records(&node.store)?.into_iter().flatten() {
        if r.kind != "security" {
            continue;
        }
        *by_class.entry(r.class.clone()).or_default() += 1;
        if r.seq > after_seq && events.len() < MAX_EVENTS_PER_ATTESTATION {
            events.push(record_of(&r));
        }
    }
    let cfg = &node.config;
    let not_after = |p: &std::path::Path| {
        crate::assess::certificate_validity(p)
            .map(|(_, n)| n)
            .unwrap_or(0)
    };
    let crl_next = cfg
        .tls
        .crl
        .as_deref()
        .and_then(|p| crate::assess::crl_dates(p).ok())
        .and_then(|(_, n)| n)
        .unwrap_or(0);
    let queue_depths = node
        .neighbours()
        .into_iter()
        .map(|n| {
            let d = node.store.queue_depth(n.as_str()) as u64;
            (n.to_string(), d)
        })
        .collect();
    let (level, met, total, not_met) = if cfg.security.level > 0 {
        let state = match audit::verify(&node.store)? {
            Ok(n) => crate::assess::AuditState::Intact(n),
            Err(b) => crate::assess::AuditState::Broken(b.to_string()),
        };
        let a = crate::assess::assess(cfg, cfg.security.level, &state, now.div_euclid(1000));
        let not_met = a
            .checks
            .iter()
            .filter(|c| !c.met)
            .map(|c| c.id.clone())
            .collect();
        (u32::from(a.level), a.met as u32, a.total as u32, not_met)
    } else {
        (0, 0, 0, Vec::new())
    };
    Ok(NodeAttestation {
        id: String::new(),
        node: node.agency().to_string(),
        generated_unix_ms: now,
        software_version: env!("CARGO_PKG_VERSION").to_owned(),
        certificate_not_after_unix: not_after(&cfg.tls.cert),
        ca_not_after_unix: not_after(&cfg.tls.ca),
        crl_next_update_unix: crl_next,
        queue_depths,
        parent_last_up_unix_ms: parent_up(node),
        assessed_level: level,
        assessment_met: met,
        assessment_total: total,
        assessment_not_met: not_met,
        events_by_class: by_class,
        events,
        signature: None,
    })
}

fn attestation_id(a: &NodeAttestation) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(a.node.as_bytes());
    ctx.update(&[0]);
    ctx.update(&a.generated_unix_ms.to_be_bytes());
    ctx.update(&a.encode_to_vec());
    format!("att-{}", hex::encode(&ctx.finish().as_ref()[..15]))
}

/// Signs this node's attestation and queues it for the parent (kept locally on the root);
/// when more events wait than one attestation carries, several are queued. Returns the events
/// sent. The caller commits.
pub fn push(node: &Node) -> Result<usize, MonitorError> {
    let mut after = node
        .store
        .get_meta(SENT_SEQ_META)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0);
    let signer = node
        .signer(node.agency())
        .ok_or_else(|| MonitorError::Signing("no key for the node's own agency".into()))?;
    let parent = node.config.parent.as_ref().map(|p| p.agency.clone());
    let mut sent = 0;
    loop {
        let mut a = build(node, after)?;
        a.id = attestation_id(&a);
        let at = a.generated_unix_ms;
        signer
            .sign_item(&mut a, at)
            .map_err(|e| MonitorError::Signing(e.to_string()))?;
        store_attestation(&node.store, &a, parent.as_ref().map(AgencyCode::as_str))?;
        sent += a.events.len();
        let full = a.events.len() == MAX_EVENTS_PER_ATTESTATION;
        if let Some(last) = a.events.iter().map(|e| e.seq).max() {
            node.store.put_meta(SENT_SEQ_META, &last.to_be_bytes())?;
            after = last;
        }
        if !full {
            break;
        }
    }
    if let Some(p) = &parent {
        node.wake(p);
    }
    info!(events = sent, "attestation queued upward");
    Ok(sent)
}

/// Sends an attestation at start and every `[security] report_interval_secs`.
pub async fn monitor_loop(node: Arc<Node>, shutdown: CancellationToken) {
    let every = node.config.security.report_interval;
    crate::node::repeat_and_commit(node, every, "attestation", shutdown, push).await;
}

/// One node's state in `security report`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node.
    pub node: String,
    /// When its newest attestation was made (unix ms); for this node, now.
    pub last_seen_unix_ms: i64,
    /// Software version.
    pub version: String,
    /// Days until its certificate expires.
    pub certificate_days_left: i64,
    /// Days until the CA certificate expires.
    pub ca_days_left: i64,
    /// Days until its CRL's next update (negative: stale); none without a CRL.
    pub crl_days_left: Option<i64>,
    /// Items waiting per neighbour.
    pub queue_depths: BTreeMap<String, u64>,
    /// Last time its parent link was up (unix ms, 0 never; the root has none).
    pub parent_last_up_unix_ms: i64,
    /// Level assessed (0: none).
    pub assessed_level: u32,
    /// Requirements met / checked.
    pub assessment_met: u32,
    /// Requirements checked.
    pub assessment_total: u32,
    /// Requirements not met.
    pub assessment_not_met: Vec<String>,
    /// Security events by class (refusals by reason and the other classes).
    pub events_by_class: BTreeMap<String, u64>,
}

fn status_of(a: &NodeAttestation, now_ms: i64) -> NodeStatus {
    let days = |unix: i64| (unix * 1000 - now_ms).div_euclid(86_400_000);
    NodeStatus {
        node: a.node.clone(),
        last_seen_unix_ms: a.generated_unix_ms,
        version: a.software_version.clone(),
        certificate_days_left: days(a.certificate_not_after_unix),
        ca_days_left: days(a.ca_not_after_unix),
        crl_days_left: (a.crl_next_update_unix > 0).then(|| days(a.crl_next_update_unix)),
        queue_depths: a.queue_depths.clone(),
        parent_last_up_unix_ms: a.parent_last_up_unix_ms,
        assessed_level: a.assessed_level,
        assessment_met: a.assessment_met,
        assessment_total: a.assessment_total,
        assessment_not_met: a.assessment_not_met.clone(),
        events_by_class: a.events_by_class.clone(),
    }
}

/// `security report`: this node (live) and every node below it (newest attestation).
pub fn report(node: &Node) -> Result<Vec<NodeStatus>, MonitorError> {
    let now = node.clock.now_unix_ms();
    let mut out = vec![status_of(&build(node, u64::MAX)?, now)];
    for (n, bytes) in node.store.attestations()? {
        if n == node.agency().as_str() {
            continue;
        }
        match NodeAttestation::decode(bytes.as_slice()) {
            Ok(a) => out.push(status_of(&a, now)),
            Err(e) => warn!(node = %n, cause = %e, "unreadable stored attestation"),
        }
    }
    Ok(out)
}

/// A security event with the node that recorded it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeEvent {
    /// The node that recorded it.
    pub node: String,
    /// Its sequence in that node's audit log.
    pub seq: u64,
    /// When (unix ms).
    pub at_unix_ms: i64,
    /// Class.
    pub class: String,
    /// Peer.
    pub peer: String,
    /// Agency concerned.
    pub agency: String,
    /// Reason.
    pub reason: String,
}

/// Every stored attestation (the node's own last one included), for a stopped node.
/// `now_unix_ms` is the time by the node's clock.
pub fn stored_report(store: &Store, now_unix_ms: i64) -> Result<Vec<NodeStatus>, MonitorError> {
    let now = now_unix_ms;
    Ok(store
        .attestations()?
        .into_iter()
        .filter_map(|(_, b)| NodeAttestation::decode(b.as_slice()).ok())
        .map(|a| status_of(&a, now))
        .collect())
}

/// The security events of this node and of every node within `subtree` (all below this node
/// when `subtree` is this node's agency), on or after `since_ms`, oldest first.
pub fn subtree_events(
    view: &crate::register::NodeView<'_>,
    subtree: &AgencyCode,
    since_ms: i64,
) -> Result<Vec<NodeEvent>, MonitorError> {
    let own = &view.agency;
    let within = |n: &str| {
        AgencyCode::parse(n).is_ok_and(|c| {
            &c == subtree
                || subtree == own
                || c.is_within(subtree)
                || view
                    .announcements
                    .get(subtree)
                    .is_some_and(|s| s.contains(&c))
        })
    };
    let mut out = Vec::new();
    if within(own.as_str()) {
        for r in audit::records(view.store)?.into_iter().flatten() {
            if r.kind == "security" && r.at_unix_ms >= since_ms {
                out.push(NodeEvent {
                    node: own.to_string(),
                    seq: r.seq,
                    at_unix_ms: r.at_unix_ms,
                    class: r.class,
                    peer: r.peer,
                    agency: r.agency,
                    reason: r.reason,
                });
            }
        }
    }
    for (n, bytes) in view.store.remote_events()? {
        if n == own.as_str() || !within(&n) {
            continue;
        }
        if let Ok(e) = SecurityEventRecord::decode(bytes.as_slice()) {
            if e.at_unix_ms >= since_ms {
                out.push(NodeEvent {
                    node: n,
                    seq: e.seq,
                    at_unix_ms: e.at_unix_ms,
                    class: e.class,
                    peer: e.peer,
                    agency: e.agency,
                    reason: e.reason,
                });
            }
        }
    }
    out.sort_by(|a, b| a.at_unix_ms.cmp(&b.at_unix_ms).then(a.node.cmp(&b.node)));
    Ok(out)
}
