//! Upward security monitoring: every node sends its parent a signed [`NodeAttestation`] — the
//! security events it recorded since its previous one and its state (version, certificate and
//! CA expiry, CRL, queue depths, parent link, its own assessment) — every `[security]
//! report_interval_secs`. A parent keeps the newest attestation of each node below it and the
//! events they carried, and passes them on, so a province sees its subtree and the root the
//! nation (`lt-relay security events --subtree`, `lt-relay security report`).
//!
//! With the attestation goes a signed [`NodeDetail`] when it changed (or a day passed): the
//! node's name and its assessment requirement by requirement, with the evidence. It is a separate
//! item because older parents re-encode attestations without fields they do not know, and it is
//! sent only to parents that take it (link feature `node_detail`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use lienthong_common::agency::AgencyCode;
use lienthong_common::audit;
use lienthong_common::store::{QueueItem, Store, StoreError};
use lienthong_proto::v1::{NodeAttestation, NodeDetail, RequirementCheck, SecurityEventRecord};
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::node::Node;
use crate::upward::{store_attestation, store_detail, MAX_EVENTS_PER_ATTESTATION};

const SENT_SEQ_META: &str = "monitor/sent-seq";
/// The digest of the last node detail made (its content, times and signature left out) and
/// when it was made.
const DETAIL_META: &str = "monitor/detail";
/// A node detail is made again after this long even when nothing changed.
const DETAIL_REFRESH_MS: i64 = 24 * 3600 * 1000;
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
    let assessment = own_assessment(node, now)?;
    build_with(node, after_seq, now, assessment.as_ref())
}

/// This node's attestation and detail, both from one assessment (which verifies the whole
/// audit chain: once is enough).
fn build_both(node: &Node) -> Result<(NodeAttestation, NodeDetail), MonitorError> {
    let now = node.clock.now_unix_ms();
    let assessment = own_assessment(node, now)?;
    Ok((
        build_with(node, u64::MAX, now, assessment.as_ref())?,
        build_detail_with(node, now, assessment),
    ))
}

/// [`build`] with the assessment made at `now`.
fn build_with(
    node: &Node,
    after_seq: u64,
    now: i64,
    assessment: Option<&crate::assess::Assessment>,
) -> Result<NodeAttestation, MonitorError> {
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
    let (level, met, total, not_met) = match assessment {
        Some(a) => {
            let not_met = a
                .checks
                .iter()
                .filter(|c| !c.met)
                .map(|c| c.id.clone())
                .collect();
            (u32::from(a.level), a.met as u32, a.total as u32, not_met)
        }
        None => (0, 0, 0, Vec::new()),
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

/// This node's assessment at its `[security] level` (none without a level), at `now` (unix ms).
fn own_assessment(
    node: &Node,
    now: i64,
) -> Result<Option<crate::assess::Assessment>, MonitorError> {
    let cfg = &node.config;
    if cfg.security.level == 0 {
        return Ok(None);
    }
    let state = match audit::verify(&node.store)? {
        Ok(n) => crate::assess::AuditState::Intact(n),
        Err(b) => crate::assess::AuditState::Broken(b.to_string()),
    };
    Ok(Some(crate::assess::assess(
        cfg,
        cfg.security.level,
        &state,
        now.div_euclid(1000),
    )))
}

/// Builds this node's detail (unsigned, without id): its name and its assessment.
pub fn build_detail(node: &Node) -> Result<NodeDetail, MonitorError> {
    let now = node.clock.now_unix_ms();
    let a = own_assessment(node, now)?;
    Ok(build_detail_with(node, now, a))
}

/// [`build_detail`] with the assessment made at `now`.
fn build_detail_with(node: &Node, now: i64, a: Option<crate::assess::Assessment>) -> NodeDetail {
    NodeDetail {
        id: String::new(),
        node: node.agency().to_string(),
        generated_unix_ms: now,
        name: node.config.name.clone(),
        assessed_level: a.as_ref().map_or(0, |a| u32::from(a.level)),
        requirements: a
            .map(|a| {
                a.checks
                    .into_iter()
                    .map(|c| RequirementCheck {
                        id: c.id,
                        met: c.met,
                        requirement: c.requirement,
                        requirement_vi: c.requirement_vi,
                        evidence: c.evidence,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        signature: None,
        oldest_queued_unix_ms: oldest_queued(node),
    }
}

/// Queue entries looked at in each priority class of a queue for its first document (receipts
/// share a class with very urgent documents and are skipped over).
const OLDEST_LOOKED_AT: usize = 64;

/// Per neighbour with documents waiting (a child no longer announced included): when the
/// oldest of them arrived at this node.
pub fn oldest_queued(node: &Node) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    let Ok(names) = node.store.queue_names() else {
        return out;
    };
    for n in names {
        if AgencyCode::parse(&n).is_err() {
            continue; // a local delivery queue (`amqp/...`), not a neighbour
        }
        let Ok(entries) = node.store.first_envelopes(&n, OLDEST_LOOKED_AT) else {
            continue;
        };
        let oldest = entries
            .iter()
            .filter_map(|e| match &e.item {
                QueueItem::Envelope { id, .. } => node.store.envelope(id).ok().flatten(),
                QueueItem::Receipt { .. } => None,
            })
            .filter_map(|env| {
                env.trace
                    .iter()
                    .rev()
                    .find(|t| t.agency == node.agency().as_str())
                    .map(|t| t.received_unix_ms)
            })
            .min();
        if let Some(at) = oldest {
            out.insert(n, at);
        }
    }
    out
}

/// The digest of what a detail says (its id, time and signature left out).
fn detail_digest(d: &NodeDetail) -> [u8; 32] {
    let content = NodeDetail {
        id: String::new(),
        generated_unix_ms: 0,
        signature: None,
        ..d.clone()
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, &content.encode_to_vec());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Signs this node's detail and queues it for the parent when it differs from the last one
/// made or that one is a day old. Returns whether one was made. The caller commits.
pub fn push_detail(node: &Node) -> Result<bool, MonitorError> {
    let mut d = build_detail(node)?;
    let digest = detail_digest(&d);
    let last = node.store.get_meta(DETAIL_META)?;
    if let Some(last) = last.as_deref().filter(|l| l.len() == 40) {
        let made = <[u8; 8]>::try_from(&last[32..]).map_or(0, i64::from_be_bytes);
        if last[..32] == digest && d.generated_unix_ms - made < DETAIL_REFRESH_MS {
            return Ok(false);
        }
    }
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(d.node.as_bytes());
    ctx.update(&[0]);
    ctx.update(&d.generated_unix_ms.to_be_bytes());
    ctx.update(&digest);
    d.id = format!("det-{}", hex::encode(&ctx.finish().as_ref()[..15]));
    let signer = node
        .signer(node.agency())
        .ok_or_else(|| MonitorError::Signing("no key for the node's own agency".into()))?;
    let at = d.generated_unix_ms;
    signer
        .sign_item(&mut d, at)
        .map_err(|e| MonitorError::Signing(e.to_string()))?;
    let parent = node.config.parent.as_ref().map(|p| p.agency.clone());
    store_detail(&node.store, &d, parent.as_ref().map(AgencyCode::as_str))?;
    let mut meta = digest.to_vec();
    meta.extend_from_slice(&at.to_be_bytes());
    node.store.put_meta(DETAIL_META, &meta)?;
    info!(
        requirements = d.requirements.len(),
        "node detail queued upward"
    );
    Ok(true)
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
    push_detail(node)?;
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
    /// Its name (`[node] name`), from its newest node detail; empty when none is held.
    #[serde(default)]
    pub name: String,
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
    /// Its assessment requirement by requirement, with the evidence, from its newest node
    /// detail; empty when none is held (or the node has no level).
    #[serde(default)]
    pub requirements: Vec<RequirementState>,
    /// When that node detail was made (unix ms; 0: none held).
    #[serde(default)]
    pub detail_unix_ms: i64,
    /// Per neighbour with documents waiting, when the oldest arrived (unix ms), from that node
    /// detail.
    #[serde(default)]
    pub oldest_queued_unix_ms: BTreeMap<String, i64>,
}

/// One requirement of a node's assessment, as its node detail reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequirementState {
    /// Stable id (docs/security-levels.md).
    pub id: String,
    /// Whether the node meets it.
    pub met: bool,
    /// The requirement, in English.
    pub requirement: String,
    /// The requirement, in Vietnamese.
    pub requirement_vi: String,
    /// What the node found.
    pub evidence: String,
}

/// What the lists of nodes show of a node detail: read without its requirements, which a
/// decoder then skips without allocating them (the console's network page reads thousands).
#[derive(Clone, PartialEq, prost::Message)]
struct DetailHead {
    #[prost(int64, tag = "3")]
    generated_unix_ms: i64,
    #[prost(string, tag = "4")]
    name: String,
    #[prost(btree_map = "string, int64", tag = "8")]
    oldest_queued_unix_ms: BTreeMap<String, i64>,
}

/// A node detail as a report carries it: whole, or without its requirements.
fn detail_parts(d: &NodeDetail, with_requirements: bool) -> (DetailHead, Vec<RequirementState>) {
    let head = DetailHead {
        generated_unix_ms: d.generated_unix_ms,
        name: d.name.clone(),
        oldest_queued_unix_ms: d.oldest_queued_unix_ms.clone(),
    };
    let requirements = if with_requirements {
        requirement_states(d)
    } else {
        Vec::new()
    };
    (head, requirements)
}

fn requirement_states(d: &NodeDetail) -> Vec<RequirementState> {
    d.requirements
        .iter()
        .map(|r| RequirementState {
            id: r.id.clone(),
            met: r.met,
            requirement: r.requirement.clone(),
            requirement_vi: r.requirement_vi.clone(),
            evidence: r.evidence.clone(),
        })
        .collect()
}

fn status_of(
    a: &NodeAttestation,
    detail: Option<(DetailHead, Vec<RequirementState>)>,
    now_ms: i64,
) -> NodeStatus {
    let days = |unix: i64| (unix * 1000 - now_ms).div_euclid(86_400_000);
    let (head, requirements) = detail.unwrap_or_default();
    NodeStatus {
        node: a.node.clone(),
        name: head.name,
        requirements,
        detail_unix_ms: head.generated_unix_ms,
        oldest_queued_unix_ms: head.oldest_queued_unix_ms,
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
/// Every node's requirements are in it; [`report_list`] leaves those of the nodes below out.
pub fn report(node: &Node) -> Result<Vec<NodeStatus>, MonitorError> {
    report_with(node, true)
}

/// [`report`] without the requirements of the nodes below (this node's own are in it), for
/// lists of thousands of nodes; [`node_report`] gives one node whole.
pub fn report_list(node: &Node) -> Result<Vec<NodeStatus>, MonitorError> {
    report_with(node, false)
}

fn report_with(node: &Node, with_requirements: bool) -> Result<Vec<NodeStatus>, MonitorError> {
    let now = node.clock.now_unix_ms();
    let (attestation, own) = build_both(node)?;
    let mut out = vec![status_of(&attestation, Some(detail_parts(&own, true)), now)];
    let mut details = stored_details(&node.store, with_requirements)?;
    for (n, bytes) in node.store.attestations()? {
        if n == node.agency().as_str() {
            continue;
        }
        match NodeAttestation::decode(bytes.as_slice()) {
            Ok(a) => {
                out.push(status_of(&a, details.remove(&n), now));
            }
            Err(e) => warn!(node = %n, cause = %e, "unreadable stored attestation"),
        }
    }
    Ok(out)
}

/// One node's line of [`report`], whole: this node's own, or the newest attestation and node
/// detail held of a node below (none when no attestation of it is held).
pub fn node_report(node: &Node, code: &str) -> Result<Option<NodeStatus>, MonitorError> {
    let now = node.clock.now_unix_ms();
    if code == node.agency().as_str() {
        let (attestation, own) = build_both(node)?;
        return Ok(Some(status_of(
            &attestation,
            Some(detail_parts(&own, true)),
            now,
        )));
    }
    let Some(bytes) = node.store.attestation_of(code)? else {
        return Ok(None);
    };
    let a = match NodeAttestation::decode(bytes.as_slice()) {
        Ok(a) => a,
        Err(e) => {
            warn!(node = %code, cause = %e, "unreadable stored attestation");
            return Ok(None);
        }
    };
    let detail = node
        .store
        .node_detail_of(code)?
        .and_then(|b| NodeDetail::decode(b.as_slice()).ok())
        .map(|d| detail_parts(&d, true));
    Ok(Some(status_of(&a, detail, now)))
}

/// The requirements in the newest node detail held of `code` (empty when none is held).
pub fn requirements_of(store: &Store, code: &str) -> Result<Vec<RequirementState>, MonitorError> {
    Ok(store
        .node_detail_of(code)?
        .and_then(|b| NodeDetail::decode(b.as_slice()).ok())
        .map(|d| requirement_states(&d))
        .unwrap_or_default())
}

/// The newest node detail held of every node, by node: whole, or only what lists show.
fn stored_details(
    store: &Store,
    with_requirements: bool,
) -> Result<BTreeMap<String, (DetailHead, Vec<RequirementState>)>, MonitorError> {
    let mut out = BTreeMap::new();
    for (n, bytes) in store.node_details()? {
        let parts = if with_requirements {
            NodeDetail::decode(bytes.as_slice()).map(|d| detail_parts(&d, true))
        } else {
            DetailHead::decode(bytes.as_slice()).map(|h| (h, Vec::new()))
        };
        match parts {
            Ok(p) => {
                out.insert(n, p);
            }
            Err(e) => warn!(node = %n, cause = %e, "unreadable stored node detail"),
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
    let mut details = stored_details(store, true)?;
    Ok(store
        .attestations()?
        .into_iter()
        .filter_map(|(_, b)| NodeAttestation::decode(b.as_slice()).ok())
        .map(|a| {
            let d = details.remove(&a.node);
            status_of(&a, d, now)
        })
        .collect())
}

/// The security events recorded by one node (this one, or one below that reported them), on or
/// after `since_ms`, oldest first.
pub fn events_of(node: &Node, code: &str, since_ms: i64) -> Result<Vec<NodeEvent>, MonitorError> {
    if code == node.agency().as_str() {
        return own_events(&node.store, code, since_ms);
    }
    let mut out: Vec<NodeEvent> = node
        .store
        .remote_events_of(code)?
        .iter()
        .filter_map(|bytes| remote_event(code, bytes, since_ms))
        .collect();
    out.sort_by_key(|e| e.at_unix_ms);
    Ok(out)
}

/// The security events in this node's own audit log (its agency `code`) from `since_ms` on.
fn own_events(store: &Store, code: &str, since_ms: i64) -> Result<Vec<NodeEvent>, MonitorError> {
    Ok(audit::records(store)?
        .into_iter()
        .flatten()
        .filter(|r| r.kind == "security" && r.at_unix_ms >= since_ms)
        .map(|r| NodeEvent {
            node: code.to_owned(),
            seq: r.seq,
            at_unix_ms: r.at_unix_ms,
            class: r.class,
            peer: r.peer,
            agency: r.agency,
            reason: r.reason,
        })
        .collect())
}

/// A security event `node` reported (encoded), if readable and from `since_ms` on.
fn remote_event(node: &str, bytes: &[u8], since_ms: i64) -> Option<NodeEvent> {
    let e = SecurityEventRecord::decode(bytes).ok()?;
    (e.at_unix_ms >= since_ms).then(|| NodeEvent {
        node: node.to_owned(),
        seq: e.seq,
        at_unix_ms: e.at_unix_ms,
        class: e.class,
        peer: e.peer,
        agency: e.agency,
        reason: e.reason,
    })
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
    let mut out = if within(own.as_str()) {
        own_events(view.store, own.as_str(), since_ms)?
    } else {
        Vec::new()
    };
    for (n, bytes) in view.store.remote_events()? {
        if n == own.as_str() || !within(&n) {
            continue;
        }
        out.extend(remote_event(&n, &bytes, since_ms));
    }
    out.sort_by(|a, b| a.at_unix_ms.cmp(&b.at_unix_ms).then(a.node.cmp(&b.node)));
    Ok(out)
}
