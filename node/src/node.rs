//! A node's shared state and the operations every entry point uses: accepting an envelope
//! (from the local side or a link), delivering it locally, emitting receipts and transport
//! events, and routing them back toward the original sender.
//!
//! Every operation here is idempotent by id, so a resend after a crash or a cut link replays
//! it harmlessly; callers commit the store (`Persisted`) before they acknowledge anything.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use lienthong_common::agency::AgencyCode;
use lienthong_common::clock::Clock;
use lienthong_common::config::NodeConfig;
use lienthong_common::envelope::{self, EnvelopeError};
use lienthong_common::signing::{AgencySigner, Verified, Verifier, VerifyError};
use lienthong_common::store::{Offer, QueueItem, QueuedEntry, Store, StoreError};
use lienthong_proto::v1::{
    receipt_frame, Envelope, Organization, ReceiptFrame, ReceiptResponseFor, RefusalCode,
    StatusCode, StatusReceipt, TraceEntry, TransportEvent, TransportState,
};
use prost::Message;
use tokio::sync::Notify;
use tracing::{error, info, warn};

use crate::metrics::Metrics;
use crate::register::NodeView;
use crate::register::{self, Direction};
use crate::route::{NextHop, RouteTable};
use crate::security_events::EventClass;
use crate::upward;

/// Why an item is refused at this node. Sent to the neighbour as a hop refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    /// Class of the refusal.
    pub code: RefusalCode,
    /// Human-readable reason.
    pub reason: String,
}

impl Refusal {
    /// A refusal of class `code`.
    pub fn new(code: RefusalCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }

    /// Snake-case name of the class, for metrics and logs.
    pub fn class(&self) -> &'static str {
        crate::security_events::refusal_class(self.code)
    }
}

impl From<EnvelopeError> for Refusal {
    fn from(e: EnvelopeError) -> Self {
        let code = match e {
            EnvelopeError::TooLarge { .. } | EnvelopeError::TooMany { .. } => {
                RefusalCode::RefusalTooLarge
            }
            EnvelopeError::Malformed { .. } => RefusalCode::RefusalMalformed,
            _ => RefusalCode::RefusalInvalid,
        };
        Refusal::new(code, e.to_string())
    }
}

impl From<VerifyError> for Refusal {
    fn from(e: VerifyError) -> Self {
        let code = match e {
            VerifyError::Certificate(_) | VerifyError::ChainTooLong(_) => {
                RefusalCode::RefusalBadCertificate
            }
            VerifyError::SignerMismatch { .. } => RefusalCode::RefusalSpoofedSender,
            _ => RefusalCode::RefusalBadSignature,
        };
        Refusal::new(code, e.to_string())
    }
}

/// Errors of node operations: a refusal of the input, or a local failure.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The input is refused; nothing was stored.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The store failed; the input was not accepted and may be resent.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A signing key failed.
    #[error("signing: {0}")]
    Signing(String),
}

/// Errors building a node from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Certificates, keys, CRL.
    #[error("{0}")]
    Trust(String),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A node.
pub struct Node {
    /// Its configuration.
    pub config: NodeConfig,
    /// Its store.
    pub store: Store,
    /// Signature verification against the interchange CA.
    pub verifier: Verifier,
    /// Metrics.
    pub metrics: Metrics,
    /// The business clock (arrival dates, status and trace times, due dates, audit times).
    pub clock: Clock,
    /// The TSA's trust anchors (`[timestamp] ca`): envelopes' time-stamps are checked against
    /// them; without them, stamps pass unchecked.
    pub tsa_anchors: Option<lienthong_evidence::chain::Anchors>,
    /// Woken when a document waits for its time-stamp (`crate::stamp`).
    pub stamp_wake: Notify,
    /// `[pdf_signatures]`: its anchors and the queue of checks after delivery.
    pdf_checks: Option<crate::pdf_queue::PdfChecks>,
    signers: BTreeMap<AgencyCode, Arc<AgencySigner>>,
    names: BTreeMap<AgencyCode, String>,
    /// Read on every routing decision, written when a child announces: RwLock, never held
    /// across an await.
    routes: RwLock<RouteTable>,
    /// One wake-up per neighbour, signalled when something is queued for it.
    wakers: Mutex<HashMap<AgencyCode, Arc<Notify>>>,
    /// Signalled when what this node serves changes, so the parent link re-announces.
    pub serves_changed: Notify,
    /// The trust store's generation, sent each time a new CRL is put in force: the links
    /// check their peer's certificate again.
    pub crl_generation: tokio::sync::watch::Sender<u64>,
    /// Signalled when something is queued for the local DMS on RabbitMQ.
    pub amqp_wake: Notify,
    /// Counts reloads (SIGHUP): the CRL loops read their files and URLs again at once.
    pub reloads: tokio::sync::watch::Sender<u64>,
    /// Limits in force: the configuration's at start, replaced by a reload.
    limits: RwLock<Arc<LimitsInForce>>,
    /// The RabbitMQ connection state, for `/healthz` (meaningful only with `[amqp]`).
    pub amqp_state: crate::broker_state::BrokerState,
    /// Where security events go for the webhook; set once by the relay when `[security] webhook_url` is set.
    pub webhook: std::sync::OnceLock<crate::security_events::Sink>,
    /// The sequence of this node's own claims: when it last linked to its parent (unix ms).
    pub claim_seq: std::sync::atomic::AtomicI64,
    /// Claims each child lost to a newer one, to tell it on its link (see [`Node::announce`]).
    moved_notices: Mutex<HashMap<AgencyCode, BTreeMap<AgencyCode, i64>>>,
    /// When each announcing child was last seen linked (unix ms; at start: the start).
    last_linked: Mutex<HashMap<AgencyCode, i64>>,
}

/// The store queue holding what is to be published to an agency's DMS over AMQP.
pub fn amqp_queue(agency: &AgencyCode) -> String {
    format!("amqp/{agency}")
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("agency", &self.config.agency)
            .finish()
    }
}

fn digest_hex(parts: &[&[u8]]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    hex::encode(&ctx.finish().as_ref()[..16])
}

const ANNOUNCE_META: &str = "announce/";
/// Store meta prefix of the agencies the parent said moved (value: the sequence, big-endian).
const MOVED_META: &str = "moved/";

/// The parts of an envelope that [`Node::answer_refusal`] uses (id, document id, sender, code,
/// date), copied before the envelope is handed on: far cheaper than copying it whole, which
/// would be done on every hop for the rare refusal.
pub fn refusal_copy(env: &Envelope) -> Envelope {
    Envelope {
        id: env.id.clone(),
        document_id: env.document_id.clone(),
        from: env.from.clone(),
        code: env.code.clone(),
        promulgation: env.promulgation.clone(),
        ..Default::default()
    }
}

/// What a status receipt about `env` says it answers: the sender, number/notation, document
/// id and envelope id.
pub fn response_for(env: &Envelope) -> ReceiptResponseFor {
    ReceiptResponseFor {
        organ_id: env
            .from
            .as_ref()
            .map(|f| f.code.clone())
            .unwrap_or_default(),
        code: env
            .code
            .as_ref()
            .map(|c| format!("{}/{}", c.number, c.notation))
            .unwrap_or_default(),
        document_id: env.document_id.clone(),
        envelope_id: env.id.clone(),
    }
}

/// The rate limits a node applies, replaced as a whole by a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsInForce {
    /// `[limits]`: for addresses (without API clients) and child links.
    pub node: lienthong_common::config::Limits,
    /// Per API client by name: requests and MiB per minute (its own, else `[limits]`'s).
    pub clients: HashMap<String, (u32, u32)>,
}

impl LimitsInForce {
    fn of(config: &NodeConfig) -> Self {
        Self {
            node: config.limits,
            clients: config
                .api_clients
                .iter()
                .map(|c| (c.name.clone(), (c.requests_per_minute, c.mib_per_minute)))
                .collect(),
        }
    }
}

impl Node {
    /// Builds a node: loads the trust store and signing keys, opens the store, restores the
    /// routes children announced before a restart.
    pub fn open(config: NodeConfig, clock: Clock) -> Result<Arc<Self>, StartError> {
        let trust = config
            .tls
            .trust_store()
            .map_err(|e| StartError::Trust(e.to_string()))?;
        let mut signers = BTreeMap::new();
        let mut names = BTreeMap::new();
        let own = AgencySigner::load_with(&config.tls.cert, &config.tls.key, &config.tls.agency_in)
            .map_err(|e| StartError::Trust(format!("{}: {e}", config.tls.cert.display())))?;
        if own.agency() != &config.agency {
            return Err(StartError::Trust(format!(
                "{}: the certificate names {} but node.agency is {}",
                config.tls.cert.display(),
                own.agency(),
                config.agency
            )));
        }
        signers.insert(config.agency.clone(), Arc::new(own));
        names.insert(config.agency.clone(), config.name.clone());
        for l in &config.local {
            let s = AgencySigner::load_with(&l.cert, &l.key, &config.tls.agency_in)
                .map_err(|e| StartError::Trust(format!("{}: {e}", l.cert.display())))?;
            if s.agency() != &l.agency {
                return Err(StartError::Trust(format!(
                    "{}: the certificate names {} but the [[local]] entry is {}",
                    l.cert.display(),
                    s.agency(),
                    l.agency
                )));
            }
            signers.insert(l.agency.clone(), Arc::new(s));
            names.insert(l.agency.clone(), l.name.clone());
        }
        std::fs::create_dir_all(&config.data_dir).map_err(|e| StoreError::Sled {
            path: config.data_dir.clone(),
            reason: e.to_string(),
        })?;
        let tsa_anchors = match &config.timestamp {
            Some(t) => Some(
                lienthong_evidence::chain::Anchors::from_pem_files(&t.ca)
                    .map_err(|e| StartError::Trust(format!("timestamp.ca: {e}")))?,
            ),
            None => None,
        };
        let pdf_checks = match &config.pdf_signatures {
            Some(p) => Some(crate::pdf_queue::PdfChecks::new(
                crate::pdf_queue::load_anchors(p).map_err(|e| StartError::Trust(e.to_string()))?,
            )),
            None => None,
        };
        let store = Store::open(&config.data_dir.join("store"))?;
        let mut routes = RouteTable::new(
            config.agency.clone(),
            config.local.iter().map(|l| l.agency.clone()),
            config.parent.as_ref().map(|p| p.agency.clone()),
            config.children.iter().cloned(),
            config.routes.clone(),
        )
        .wait_for_offline_children(!config.link.offline_child_max_age.is_zero());
        restore_announcements(&store, &mut routes)?;
        let metrics = Metrics::new().started_at(clock.now_unix_ms());
        restore_link_changes(&store, &metrics)?;
        Ok(Arc::new(Self {
            verifier: Verifier::new(Arc::new(trust)),
            tsa_anchors,
            stamp_wake: Notify::new(),
            pdf_checks,
            store,
            metrics,
            clock,
            signers,
            names,
            routes: RwLock::new(routes),
            wakers: Mutex::new(HashMap::new()),
            serves_changed: Notify::new(),
            amqp_wake: Notify::new(),
            crl_generation: tokio::sync::watch::Sender::new(0),
            reloads: tokio::sync::watch::Sender::new(0),
            limits: RwLock::new(Arc::new(LimitsInForce::of(&config))),
            amqp_state: crate::broker_state::BrokerState::default(),
            webhook: std::sync::OnceLock::new(),
            claim_seq: std::sync::atomic::AtomicI64::new(0),
            moved_notices: Mutex::new(HashMap::new()),
            last_linked: Mutex::new(HashMap::new()),
            config,
        }))
    }

    /// The check of signatures inside delivered PDFs, when `[pdf_signatures]` is set.
    pub fn pdf_checks(&self) -> Option<&crate::pdf_queue::PdfChecks> {
        self.pdf_checks.as_ref()
    }

    /// The limits in force.
    pub fn limits(&self) -> Arc<LimitsInForce> {
        self.limits
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Puts the limits of `config` in force (a reload); true when they differ from the old.
    pub fn set_limits(&self, config: &NodeConfig) -> bool {
        let new = LimitsInForce::of(config);
        let mut held = self
            .limits
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = **held != new;
        *held = Arc::new(new);
        changed
    }

    /// This node's agency.
    pub fn agency(&self) -> &AgencyCode {
        &self.config.agency
    }

    /// A snapshot of the routing table.
    pub fn routes(&self) -> RouteTable {
        match self.routes.read() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub(crate) fn with_routes<T>(&self, f: impl FnOnce(&RouteTable) -> T) -> T {
        match self.routes.read() {
            Ok(r) => f(&r),
            Err(p) => f(&p.into_inner()),
        }
    }

    /// Records a child's announcement, with the sequence of each claim (persisted, so routes
    /// survive a restart). Claims it takes from another child, or that it makes too late, are
    /// kept to tell that child on its link ([`Node::take_moved_notices`]).
    pub fn announce(
        &self,
        child: &AgencyCode,
        serves: std::collections::BTreeSet<AgencyCode>,
        seqs: &BTreeMap<AgencyCode, i64>,
    ) -> Result<(), StoreError> {
        let outcome = match self.routes.write() {
            Ok(mut r) => r.announce_claims(child.clone(), serves, seqs),
            Err(p) => p.into_inner().announce_claims(child.clone(), serves, seqs),
        };
        for (loser, agency, seq) in &outcome.superseded {
            info!(child = %loser, agency = %agency, seq, "a newer claim for this agency came through another path; the child is told");
            self.notice_moved(loser, agency, *seq);
        }
        if outcome.changed {
            let mut touched = vec![child.clone()];
            touched.extend(outcome.superseded.iter().map(|(loser, _, _)| loser.clone()));
            self.persist_announcements(&touched)?;
            info!(child = %child, "routes updated from announcement");
            self.serves_changed.notify_waiters();
        }
        Ok(())
    }

    fn notice_moved(&self, child: &AgencyCode, agency: &AgencyCode, seq: i64) {
        let mut n = match self.moved_notices.lock() {
            Ok(n) => n,
            Err(p) => p.into_inner(),
        };
        let e = n
            .entry(child.clone())
            .or_default()
            .entry(agency.clone())
            .or_insert(seq);
        *e = (*e).max(seq);
    }

    /// The claims `child` lost since it was last told, to send it as a Moved frame.
    pub fn take_moved_notices(&self, child: &AgencyCode) -> BTreeMap<AgencyCode, i64> {
        let mut n = match self.moved_notices.lock() {
            Ok(n) => n,
            Err(p) => p.into_inner(),
        };
        n.remove(child).unwrap_or_default()
    }

    /// The parent says these agencies are now reached another way: they are routed to the
    /// parent from now on, the children that announced them lose them (and are told in turn),
    /// and what was queued for a moved agency that was itself a child goes to the parent.
    pub fn learn_moved(&self, claims: &BTreeMap<AgencyCode, i64>) -> Result<(), NodeError> {
        let parent = self.routes().parent().cloned();
        let mut any = false;
        let mut touched = Vec::new();
        for (agency, seq) in claims {
            let (losers, changed) = match self.routes.write() {
                Ok(mut r) => r.mark_moved(agency, *seq),
                Err(p) => p.into_inner().mark_moved(agency, *seq),
            };
            if !changed {
                continue;
            }
            any = true;
            self.store
                .put_meta(&format!("{MOVED_META}{agency}"), &seq.to_be_bytes())?;
            info!(agency = %agency, seq, "agency moved to another path; routed to the parent from now on");
            for loser in losers {
                if &loser != agency {
                    self.notice_moved(&loser, agency, *seq);
                }
                touched.push(loser);
            }
            if let Some(p) = &parent {
                let moved = self.store.requeue(agency.as_str(), p.as_str())?;
                if moved > 0 {
                    info!(agency = %agency, items = moved, parent = %p, "items queued for the moved agency sent to the parent instead");
                    self.wake(p);
                }
            }
        }
        if any {
            self.persist_announcements(&touched)?;
            self.serves_changed.notify_waiters();
        }
        Ok(())
    }

    /// Records the link to `neighbour` going up or down now, in the metrics and in the store: a
    /// restarted node knows since when a link it has not had again has been down.
    pub fn link_changed(&self, neighbour: &AgencyCode, up: bool) {
        let now = self.clock.now_unix_ms();
        self.metrics.link_changed(neighbour.as_str(), up, now);
        let state = if up { "up" } else { "down" };
        let record = format!("{state} {now}");
        if let Err(e) = self
            .store
            .put_meta(&format!("{LINK_META}{neighbour}"), record.as_bytes())
        {
            warn!(%neighbour, cause = %e, "cannot record the link's change in the store");
        }
    }

    /// Forgets the announcements of children that have not been linked for `max` (counted
    /// from the node's start for a child not seen since): their agencies are routed by the
    /// other rules again, and this node's parent learns it with the next announcement.
    /// Returns the children forgotten.
    pub fn expire_announcements(
        &self,
        max: std::time::Duration,
    ) -> Result<Vec<AgencyCode>, StoreError> {
        if max.is_zero() {
            return Ok(Vec::new());
        }
        let now = self.clock.now_unix_ms();
        let max_ms = i64::try_from(max.as_millis()).unwrap_or(i64::MAX);
        let children: Vec<AgencyCode> =
            self.with_routes(|r| r.announcements().keys().cloned().collect());
        let mut gone = Vec::new();
        {
            let mut seen = match self.last_linked.lock() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            for c in children {
                if self.link_is_up(&c) {
                    seen.insert(c, now);
                    continue;
                }
                let last = *seen.entry(c.clone()).or_insert(now);
                if now.saturating_sub(last) > max_ms {
                    seen.remove(&c);
                    gone.push(c);
                }
            }
        }
        for c in &gone {
            let forgot = match self.routes.write() {
                Ok(mut r) => r.forget(c),
                Err(p) => p.into_inner().forget(c),
            };
            if forgot {
                self.store.delete_meta(&format!("{ANNOUNCE_META}{c}"))?;
                info!(child = %c, after_secs = max.as_secs(), "announcement expired: the child has not linked for that long; its agencies are routed by the other rules again");
            }
        }
        if !gone.is_empty() {
            self.serves_changed.notify_waiters();
        }
        Ok(gone)
    }

    /// Writes the announcements (codes and sequences) of `children` to the store.
    fn persist_announcements(&self, children: &[AgencyCode]) -> Result<(), StoreError> {
        let all = self.with_routes(|r| {
            r.announcements()
                .iter()
                .filter(|(child, _)| children.contains(child))
                .map(|(child, set)| {
                    let seqs = r.claims_of(child);
                    let text = set
                        .iter()
                        .map(|a| match seqs.get(a) {
                            Some(s) => format!("{a} {s}"),
                            None => a.to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join("\n");
                    (child.clone(), text)
                })
                .collect::<Vec<_>>()
        });
        for (child, text) in all {
            self.store
                .put_meta(&format!("{ANNOUNCE_META}{child}"), text.as_bytes())?;
        }
        Ok(())
    }

    /// The wake-up for a neighbour's sender loop.
    pub fn waker(&self, neighbour: &AgencyCode) -> Arc<Notify> {
        let mut w = match self.wakers.lock() {
            Ok(w) => w,
            Err(p) => p.into_inner(),
        };
        w.entry(neighbour.clone()).or_default().clone()
    }

    pub(crate) fn wake(&self, neighbour: &AgencyCode) {
        self.waker(neighbour).notify_one();
    }

    /// The signer of a locally served agency.
    pub fn signer(&self, agency: &AgencyCode) -> Option<&Arc<AgencySigner>> {
        self.signers.get(agency)
    }

    /// Agencies served on this node.
    pub fn local_agencies(&self) -> Vec<AgencyCode> {
        self.signers.keys().cloned().collect()
    }

    fn org(&self, agency: &AgencyCode) -> Organization {
        Organization {
            code: agency.to_string(),
            name: self
                .names
                .get(agency)
                .cloned()
                .unwrap_or_else(|| agency.to_string()),
            ..Default::default()
        }
    }

    /// Accepts a verified envelope for `recipients` (the subset routed to this node), arriving
    /// through neighbour `via` (none for the local side): stores it, queues it toward each
    /// next hop, delivers locally, answers unknown recipients with a rejection. Idempotent.
    /// The caller commits before acknowledging.
    pub fn accept(
        &self,
        mut env: Verified<Envelope>,
        recipients: &[AgencyCode],
        via: Option<&AgencyCode>,
    ) -> Result<Offer, NodeError> {
        let now = self.clock.now_unix_ms();
        // Passed here before: a document sent back by a child it moved away from (the gate
        // let it in as such); it is queued again toward where its recipients are now.
        let returned = env.trace.iter().any(|t| t.agency == self.agency().as_str());
        env.unsigned_fields_mut().trace.push(TraceEntry {
            agency: self.agency().to_string(),
            received_unix_ms: now,
            forwarded_unix_ms: 0,
        });
        let mut local = Vec::new();
        let mut no_route = Vec::new();
        let mut by_hop: BTreeMap<AgencyCode, Vec<String>> = BTreeMap::new();
        self.with_routes(|routes| {
            for r in recipients {
                match routes.next_hop(r) {
                    NextHop::Local => local.push(r.clone()),
                    NextHop::Neighbour(n) if Some(&n) == via => no_route.push(r.clone()),
                    NextHop::Neighbour(n) => by_hop.entry(n).or_default().push(r.to_string()),
                    NextHop::NoRoute => no_route.push(r.clone()),
                }
            }
        });
        // The signing message's digest, from the verification: not built a second time.
        let content = *env.signed_sha256();
        // A document sent from here waits for its time-stamp in a holding queue per next hop
        // (`crate::stamp`), when this node stamps.
        let hold = via.is_none() && env.time_stamp.is_none() && self.stamps();
        let queue_for: Vec<(String, Vec<String>)> = by_hop
            .iter()
            .map(|(n, r)| {
                let q = if hold {
                    lienthong_common::store::holding_queue(n.as_str())
                } else {
                    n.to_string()
                };
                (q, r.clone())
            })
            .collect();
        if hold && !queue_for.is_empty() {
            self.stamp_wake.notify_one();
        }
        let offer = self.store.offer_envelope(&env, &content, &queue_for)?;
        if offer == Offer::Duplicate && returned {
            self.store.queue_again(&env, &queue_for)?;
            for (n, _) in &queue_for {
                info!(envelope = %env.id, next = %n, "document sent back by a child its recipients moved away from; queued toward their new path");
            }
        }
        if offer == Offer::Conflict {
            return Err(Refusal::new(
                RefusalCode::RefusalReplay,
                format!(
                    "envelope id {} was already used for different content",
                    env.id
                ),
            )
            .into());
        }
        let env = env.into_inner();
        let amqp = self.config.amqp.is_some();
        let mut newly_delivered = Vec::new();
        for r in &local {
            // With RabbitMQ the document counts as delivered once the broker confirmed it on the
            // agency's inbox queue: the publisher then sends 01. Without, the inbox is the DMS.
            let queue = amqp.then(|| amqp_queue(r));
            if self.store.add_to_inbox(
                r.as_str(),
                &env.id,
                queue.as_deref(),
                env.from.as_ref().map_or("", |f| f.code.as_str()),
            )? {
                self.metrics.delivered.inc();
                self.metrics.traffic.document_out(crate::traffic::LOCAL);
                info!(envelope = %env.id, recipient = %r, document = %env.document_id, "delivered to local inbox");
                newly_delivered.push(r.clone());
            }
            // Every time, not only when new: numbering is idempotent, and a redelivery after a
            // crash between the two writes fills the gap.
            let (number, new) = register::register(&self.store, Direction::In, r, &env, now)?;
            if new {
                info!(envelope = %env.id, recipient = %r, number, "entered in the incoming register");
            }
            if amqp {
                self.amqp_wake.notify_one();
            } else {
                self.confirm_delivered(&env, r)?;
            }
        }
        if let Some(checks) = &self.pdf_checks {
            // Recorded with the delivery; the check runs after it (`crate::pdf_check`).
            checks.offer(&self.store, &env, &newly_delivered)?;
        }
        for r in &no_route {
            let reason = format!("no route to {r}");
            warn!(envelope = %env.id, recipient = %r, "no route");
            self.metrics.refuse("no_route");
            self.emit_transport(&env, r, TransportState::TransportFailed, &reason, None)?;
            self.emit_status(&env, self.agency(), r, StatusCode::StatusRejected, &reason)?;
        }
        for n in by_hop.keys() {
            self.wake(n);
        }
        Ok(offer)
    }

    /// Records a security event: counted by class, appended to the audit chain (made durable
    /// with the next commit) and queued for the webhook, if any, without waiting. The caller
    /// logs it, with its context.
    pub fn security_event(&self, class: EventClass, peer: &str, agency: &str, reason: &str) {
        let class = class.as_str();
        self.metrics.refuse(class);
        let record = lienthong_common::audit::append(
            &self.store,
            self.clock.now_unix_ms(),
            "security",
            class,
            peer,
            agency,
            reason,
        );
        if let Err(e) = &record {
            warn!(class, cause = %e, "cannot append security event to the audit log");
        }
        if let Some(hook) = self.webhook.get() {
            let event = crate::security_events::Event {
                class,
                peer,
                agency,
                reason,
                record: record.as_ref().ok(),
            };
            hook.offer(self.agency().as_str(), event, &self.metrics);
        }
    }

    /// Records that `recipient`'s DMS has the document: a DELIVERED transport event and status
    /// 01 toward the sender. Idempotent.
    pub fn confirm_delivered(
        &self,
        env: &Envelope,
        recipient: &AgencyCode,
    ) -> Result<(), NodeError> {
        self.emit_transport(env, recipient, TransportState::TransportDelivered, "", None)?;
        self.emit_status(env, recipient, recipient, StatusCode::StatusArrived, "")
    }

    /// Answers a refused envelope: a rejection receipt and a failed transport event for each
    /// recipient concerned, sent toward the original sender.
    pub fn answer_refusal(
        &self,
        env: &Envelope,
        recipients: &[String],
        refusal: &Refusal,
    ) -> Result<(), NodeError> {
        if AgencyCode::parse(
            env.from
                .as_ref()
                .map(|f| f.code.as_str())
                .unwrap_or_default(),
        )
        .is_err()
            || refusal.code == RefusalCode::RefusalSpoofedSender
        {
            return Ok(());
        }
        for r in recipients {
            let Ok(r) = AgencyCode::parse(r) else {
                continue;
            };
            self.emit_transport(
                env,
                &r,
                TransportState::TransportFailed,
                &refusal.reason,
                None,
            )?;
            self.emit_status(
                env,
                self.agency(),
                &r,
                StatusCode::StatusRejected,
                &refusal.reason,
            )?;
        }
        Ok(())
    }

    /// Builds, signs and routes a status receipt about `env` reported by `reporter` (a local
    /// agency) concerning `recipient`, toward the envelope's sender. Deterministic id: a
    /// repeat is a no-op.
    pub fn emit_status(
        &self,
        env: &Envelope,
        reporter: &AgencyCode,
        recipient: &AgencyCode,
        status: StatusCode,
        description: &str,
    ) -> Result<(), NodeError> {
        let sender = env
            .from
            .as_ref()
            .map(|f| f.code.clone())
            .unwrap_or_default();
        let id = digest_hex(&[
            b"status",
            env.id.as_bytes(),
            reporter.as_str().as_bytes(),
            recipient.as_str().as_bytes(),
            &(status as i32).to_be_bytes(),
        ]);
        let receipt = StatusReceipt {
            id,
            from: Some(self.org(reporter)),
            response_for: Some(response_for(env)),
            staff: None,
            status: status as i32,
            description: description.to_owned(),
            timestamp_unix_ms: self.clock.now_unix_ms(),
            signature: None,
            to: sender,
            recipient: recipient.to_string(),
            edxml: None,
        };
        self.post_receipt(receipt)
    }

    /// Signs (with the reporter's key) and routes a receipt built on this node.
    pub fn post_receipt(&self, mut receipt: StatusReceipt) -> Result<(), NodeError> {
        if self.store.receipt(&receipt.id)?.is_some() {
            return Ok(());
        }
        let reporter = AgencyCode::parse(
            receipt
                .from
                .as_ref()
                .map(|f| f.code.as_str())
                .unwrap_or_default(),
        )
        .map_err(|e| Refusal::new(RefusalCode::RefusalInvalid, format!("from.code: {e}")))?;
        let signer = self.signer(&reporter).ok_or_else(|| {
            Refusal::new(
                RefusalCode::RefusalInvalid,
                format!("{reporter} is not served on this node"),
            )
        })?;
        let at = receipt.timestamp_unix_ms;
        signer
            .sign_receipt(&mut receipt, at)
            .map_err(|e| NodeError::Signing(e.to_string()))?;
        envelope::validate_receipt(&receipt).map_err(Refusal::from)?;
        self.route_receipt(ReceiptFrame {
            item: Some(receipt_frame::Item::Status(receipt)),
        })
    }

    fn emit_transport(
        &self,
        env: &Envelope,
        recipient: &AgencyCode,
        state: TransportState,
        reason: &str,
        next_hop: Option<&AgencyCode>,
    ) -> Result<(), NodeError> {
        let id = digest_hex(&[
            b"transport",
            env.id.as_bytes(),
            recipient.as_str().as_bytes(),
            self.agency().as_str().as_bytes(),
            &(state as i32).to_be_bytes(),
        ]);
        let mut ev =
            self.transport_event(id, About::from(env), recipient.as_str(), state, next_hop);
        ev.reason = reason.to_owned();
        if state == TransportState::TransportDelivered {
            ev.trace = env.trace.clone();
        }
        self.route_receipt(ReceiptFrame {
            item: Some(receipt_frame::Item::Transport(ev)),
        })
    }

    fn transport_event(
        &self,
        id: String,
        about: About<'_>,
        recipient: &str,
        state: TransportState,
        next_hop: Option<&AgencyCode>,
    ) -> TransportEvent {
        TransportEvent {
            id,
            envelope_id: about.envelope_id.to_owned(),
            document_id: about.document_id.to_owned(),
            origin: about.origin.to_owned(),
            recipient: recipient.to_owned(),
            state: state as i32,
            node: self.agency().to_string(),
            next_hop: next_hop.map(|n| n.to_string()).unwrap_or_default(),
            reason: String::new(),
            at_unix_ms: self.clock.now_unix_ms(),
            trace: vec![],
        }
    }

    /// Discards a queue entry that cannot be sent (`reason` says why) without losing track of
    /// it: logged, counted in `lienthong_dropped`, recorded as a `queue_item_lost` security
    /// event and, for a document whose sender this node still knows from its transport
    /// events, answered to the sender with a FAILED event and 02 per recipient concerned.
    /// The caller commits.
    pub fn drop_queued(&self, queue: &str, entry: &QueuedEntry, reason: &str) {
        let (kind, id) = match &entry.item {
            QueueItem::Envelope { id, .. } => ("envelope", id.as_str()),
            QueueItem::Receipt { id } => ("receipt", id.as_str()),
        };
        error!(queue, kind, item = id, reason, "queue entry dropped");
        self.metrics.drop_item(kind);
        self.security_event(
            EventClass::QueueItemLost,
            queue,
            "",
            &format!("{kind} {id} dropped from the queue for {queue}: {reason}"),
        );
        if let QueueItem::Envelope {
            id,
            recipients,
            origin,
        } = &entry.item
        {
            if let Err(e) = self.answer_lost(id, origin, recipients, reason) {
                warn!(envelope = %id, cause = %e, "cannot tell the sender of a dropped document");
            }
        }
        if let Err(e) = self.store.dequeue(&entry.key) {
            warn!(queue, item = id, cause = %e, "cannot remove a dropped queue entry");
        }
    }

    /// Sends FAILED and 02 about envelope `id` for `recipients` to its sender: `origin` from
    /// the queue entry or, for an entry queued before entries recorded it, found from the
    /// transport events this node holds about it (the envelope itself is gone).
    fn answer_lost(
        &self,
        id: &str,
        origin: &str,
        recipients: &[String],
        reason: &str,
    ) -> Result<(), NodeError> {
        let known = if origin.is_empty() {
            self.store.receipts_for(id)?.into_iter().find_map(|bytes| {
                match ReceiptFrame::decode(bytes.as_slice()).ok()?.item? {
                    receipt_frame::Item::Transport(ev) if !ev.origin.is_empty() => {
                        Some((ev.origin, ev.document_id))
                    }
                    _ => None,
                }
            })
        } else {
            Some((origin.to_owned(), String::new()))
        };
        let Some((origin, document_id)) = known else {
            warn!(envelope = %id, "dropped document's sender is unknown here; no 02 sent");
            return Ok(());
        };
        let env = Envelope {
            id: id.to_owned(),
            from: Some(Organization {
                code: origin,
                ..Default::default()
            }),
            document_id,
            ..Default::default()
        };
        let reason = format!("lost at {}: {reason}", self.agency());
        for r in recipients {
            let Ok(r) = AgencyCode::parse(r) else {
                continue;
            };
            self.emit_transport(&env, &r, TransportState::TransportFailed, &reason, None)?;
            self.emit_status(&env, self.agency(), &r, StatusCode::StatusRejected, &reason)?;
        }
        Ok(())
    }

    /// Records a local transport event (QUEUED at the origin, FORWARDED by this node): kept in
    /// this node's store for the track view, not sent anywhere.
    pub fn record_local_event(
        &self,
        about: About<'_>,
        recipients: &[String],
        state: TransportState,
        next_hop: Option<&AgencyCode>,
    ) -> Result<(), StoreError> {
        for r in recipients {
            let id = digest_hex(&[
                b"local",
                about.envelope_id.as_bytes(),
                r.as_bytes(),
                &(state as i32).to_be_bytes(),
            ]);
            let ev = self.transport_event(id.clone(), about, r, state, next_hop);
            let frame = ReceiptFrame {
                item: Some(receipt_frame::Item::Transport(ev)),
            };
            self.store
                .put_receipt(&id, about.envelope_id, &frame.encode_to_vec(), None)?;
        }
        Ok(())
    }

    /// Keeps an upward item with `store` (given the parent's queue, if any) and wakes the
    /// parent's sender when it was new.
    fn keep_upward(
        &self,
        store: impl FnOnce(Option<&str>) -> Result<bool, StoreError>,
    ) -> Result<(), NodeError> {
        let parent = self.config.parent.as_ref().map(|p| p.agency.clone());
        if store(parent.as_ref().map(AgencyCode::as_str))? {
            if let Some(p) = parent {
                self.wake(&p);
            }
        }
        Ok(())
    }

    /// Stores a receipt frame and queues it toward its destination (or keeps it, if the
    /// destination is served here). Idempotent by receipt id. Receipts from neighbours come
    /// through [`Node::route_incoming_receipt`] (the trust gate).
    pub(crate) fn route_receipt(&self, frame: ReceiptFrame) -> Result<(), NodeError> {
        let (id, envelope_id, dest) = match &frame.item {
            Some(receipt_frame::Item::Status(r)) => (
                r.id.clone(),
                r.response_for
                    .as_ref()
                    .map(|f| f.envelope_id.clone())
                    .unwrap_or_default(),
                r.to.clone(),
            ),
            Some(receipt_frame::Item::Transport(t)) => {
                (t.id.clone(), t.envelope_id.clone(), t.origin.clone())
            }
            // Summaries, attestations and details only go up: kept here and passed to the parent, if any.
            Some(receipt_frame::Item::Summary(s)) => {
                return self.keep_upward(|to| upward::store_summary(&self.store, s, to));
            }
            Some(receipt_frame::Item::Attestation(a)) => {
                return self.keep_upward(|to| upward::store_attestation(&self.store, a, to));
            }
            Some(receipt_frame::Item::Detail(d)) => {
                return self.keep_upward(|to| upward::store_detail(&self.store, d, to));
            }
            None => {
                return Err(
                    Refusal::new(RefusalCode::RefusalMalformed, "empty receipt frame").into(),
                )
            }
        };
        let dest = AgencyCode::parse(&dest).map_err(|e| {
            Refusal::new(
                RefusalCode::RefusalInvalid,
                format!("receipt destination: {e}"),
            )
        })?;
        let hop = self.with_routes(|r| r.next_hop(&dest));
        let bytes = frame.encode_to_vec();
        match hop {
            NextHop::Local => {
                let queue = self.config.amqp.is_some().then(|| amqp_queue(&dest));
                if self
                    .store
                    .put_receipt(&id, &envelope_id, &bytes, queue.as_deref())?
                    && queue.is_some()
                {
                    self.amqp_wake.notify_one();
                }
            }
            NextHop::Neighbour(n) => {
                if self
                    .store
                    .put_receipt(&id, &envelope_id, &bytes, Some(n.as_str()))?
                {
                    self.wake(&n);
                }
            }
            NextHop::NoRoute => {
                warn!(receipt = %id, destination = %dest, "no route for receipt; kept locally");
                self.store.put_receipt(&id, &envelope_id, &bytes, None)?;
            }
        }
        Ok(())
    }

    /// Whether this node stamps the documents sent from it (`[timestamp] url`).
    pub fn stamps(&self) -> bool {
        self.config
            .timestamp
            .as_ref()
            .is_some_and(|t| t.url.is_some())
    }

    /// The configured name of an agency this node serves.
    pub fn agency_name(&self, agency: &AgencyCode) -> Option<String> {
        self.names.get(agency).cloned()
    }

    /// What the registers and reports need to know about this node.
    pub fn books(&self) -> NodeView<'_> {
        NodeView {
            store: &self.store,
            agency: self.agency().clone(),
            locals: self.local_agencies(),
            announcements: self.with_routes(|r| r.announcements().clone()),
        }
    }

    /// Every neighbour this node knows (parent and known children), for metrics.
    pub fn neighbours(&self) -> Vec<AgencyCode> {
        self.with_routes(|r| {
            let mut v: Vec<AgencyCode> = r.announcements().keys().cloned().collect();
            v.extend(self.config.children.iter().cloned());
            if let Some(p) = r.parent() {
                v.push(p.clone());
            }
            v.sort();
            v.dedup();
            v
        })
    }

    /// Whether the link to neighbour `n` is up now.
    pub fn link_is_up(&self, n: &AgencyCode) -> bool {
        self.metrics
            .link_up
            .get_or_create(&crate::metrics::NeighbourLabel {
                neighbour: n.to_string(),
            })
            .get()
            == 1
    }
}

/// Runs `job` (store work that queues items for the parent) at start and every `every` until
/// `shutdown`, off the async runtime, and commits after each run; failures are logged with
/// `what` and tried again at the next round.
pub async fn repeat_and_commit<E: std::fmt::Display + Send + 'static>(
    node: Arc<Node>,
    every: std::time::Duration,
    what: &'static str,
    shutdown: tokio_util::sync::CancellationToken,
    job: fn(&Node) -> Result<usize, E>,
) {
    loop {
        let n = node.clone();
        match tokio::task::spawn_blocking(move || job(&n)).await {
            Ok(Ok(_)) => {
                if let Err(e) = node.store.commit().await {
                    warn!(cause = %e, what, "cannot make it durable");
                }
            }
            Ok(Err(e)) => warn!(cause = %e, what, "not sent"),
            Err(e) => warn!(cause = %e, what, "task failed"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// What each child announced before the last stop, as kept in the store.
pub fn stored_announcements(
    store: &Store,
) -> Result<BTreeMap<AgencyCode, std::collections::BTreeSet<AgencyCode>>, StoreError> {
    Ok(stored_claims(store)?
        .into_iter()
        .map(|(child, claims)| (child, claims.into_keys().collect()))
        .collect())
}

/// The same with the sequence of each claim (0: none), as lines `code [seq]`.
fn stored_claims(
    store: &Store,
) -> Result<BTreeMap<AgencyCode, BTreeMap<AgencyCode, i64>>, StoreError> {
    let mut out = BTreeMap::new();
    for child in store_meta_children(store)? {
        if let Some(v) = store.get_meta(&format!("{ANNOUNCE_META}{child}"))? {
            let claims = String::from_utf8_lossy(&v)
                .lines()
                .filter_map(|l| {
                    let mut parts = l.split_whitespace();
                    let code = AgencyCode::parse(parts.next()?).ok()?;
                    let seq = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                    Some((code, seq))
                })
                .collect();
            out.insert(child, claims);
        }
    }
    Ok(out)
}

/// Prefix of the metadata that records each link's last change (`up <ms>` or `down <ms>`).
const LINK_META: &str = "link/";

/// Puts the link changes recorded before a restart back into the metrics. Only a link that went
/// down is taken: one recorded as up was cut by the stop itself, at a time not recorded, and
/// counts from this start.
fn restore_link_changes(store: &Store, metrics: &Metrics) -> Result<(), StoreError> {
    for neighbour in store.meta_names(LINK_META)? {
        let Some(record) = store.get_meta(&format!("{LINK_META}{neighbour}"))? else {
            continue;
        };
        let text = String::from_utf8_lossy(&record);
        match text.split_once(' ') {
            Some(("down", at)) => match at.parse::<i64>() {
                Ok(at) => metrics.link_changed(&neighbour, false, at),
                Err(_) => warn!(%neighbour, record = %text, "unreadable link record ignored"),
            },
            Some(("up", _)) => {}
            _ => warn!(%neighbour, record = %text, "unreadable link record ignored"),
        }
    }
    Ok(())
}

fn restore_announcements(store: &Store, routes: &mut RouteTable) -> Result<(), StoreError> {
    // Children known before a restart keep their routes until they announce again.
    for (child, claims) in stored_claims(store)? {
        let set = claims.keys().cloned().collect();
        let seqs = claims.into_iter().filter(|(_, s)| *s > 0).collect();
        routes.announce_claims(child, set, &seqs);
    }
    for name in store.meta_names(MOVED_META)? {
        let Ok(agency) = AgencyCode::parse(&name) else {
            continue;
        };
        if let Some(v) = store.get_meta(&format!("{MOVED_META}{name}"))? {
            if let Ok(b) = <[u8; 8]>::try_from(v.as_slice()) {
                routes.mark_moved(&agency, i64::from_be_bytes(b));
            }
        }
    }
    Ok(())
}

fn store_meta_children(store: &Store) -> Result<Vec<AgencyCode>, StoreError> {
    Ok(store
        .meta_names(ANNOUNCE_META)?
        .into_iter()
        .filter_map(|n| AgencyCode::parse(&n).ok())
        .collect())
}

/// What a transport event says about a document: enough to describe it without the envelope
/// (so that recording one needs no read of the envelope).
#[derive(Debug, Clone, Copy)]
pub struct About<'a> {
    /// Envelope id.
    pub envelope_id: &'a str,
    /// Document id (the envelope's `document_id`).
    pub document_id: &'a str,
    /// Sending agency code.
    pub origin: &'a str,
}

impl<'a> From<&'a Envelope> for About<'a> {
    fn from(env: &'a Envelope) -> Self {
        Self {
            envelope_id: &env.id,
            document_id: &env.document_id,
            origin: env.from.as_ref().map_or("", |f| f.code.as_str()),
        }
    }
}
