//! The relay link: one long-lived bidirectional gRPC stream per parent–child pair.
//!
//! Both ends run the same [`Session`]: a sender loop drains this node's outbound queue for the
//! peer (bounded in-flight window; an item leaves the queue only on the peer's hop ack or hop
//! refusal), and a receiver loop handles the peer's frames (envelopes, attachment chunks,
//! receipts, acks). Attachment bytes move only when the receiver asks for them with a
//! `ChunkRequest` from the offset it already holds, so a cut transfer resumes where it stopped.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lienthong_common::agency::AgencyCode;
use lienthong_common::envelope::MAX_CHUNK_BYTES;
use lienthong_common::now_unix_ms;
use lienthong_common::signing::Verified;
use lienthong_common::store::{Persisted, QueueItem, QueuedEntry};
use lienthong_common::tls::{self, Identity};
use lienthong_proto::v1::relay_link_client::RelayLinkClient;
use lienthong_proto::v1::relay_link_server::RelayLink;
use lienthong_proto::v1::{
    link_frame::Frame, AttachmentChunk, ChunkRequest, Claim, Envelope, EnvelopeHeader, FrameBatch,
    Heartbeat, Hello, HopAck, HopAcks, HopRefusal, LinkFrame, Moved, ProbeRequest, ProbeResponse,
    ReceiptFrame, RefusalCode, TransportState,
};
use prost::Message;
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, error, info, warn, Instrument};

use crate::gate::PeerRefusal;
use crate::metrics::NeighbourLabel;
use crate::node::{refusal_copy, About, Node, NodeError, Refusal};
use crate::security_events::EventClass;

/// Frames buffered toward a peer before the sender waits.
pub const OUTBOUND_FRAMES: usize = 64;
/// Largest gRPC message accepted on a link (an envelope header plus framing).
pub const MAX_FRAME_BYTES: usize =
    lienthong_common::envelope::MAX_ENVELOPE_HEADER_BYTES + 64 * 1024;
/// The Hello feature that says a peer takes [`FrameBatch`] and [`HopAcks`].
pub const FEATURE_BATCH: &str = "batch";

/// Hello feature: claims carry sequences and the parent sends Moved frames.
pub const FEATURE_ROUTES: &str = "routes";

/// Hello feature: the peer takes node details (`NodeDetail` receipt frames).
pub const FEATURE_NODE_DETAIL: &str = "node_detail";
/// Most items put in one batch frame; also at most a quarter of the window, so that several
/// batches are in flight and the peer's acks of one overlap the sending of the next.
pub const BATCH_ITEMS: usize = 64;
/// A batch frame is sent once it holds this many bytes (so it stays far below
/// [`MAX_FRAME_BYTES`] with one more item of the largest size).
const BATCH_BYTES: usize = 512 * 1024;
/// How long the first frame (Hello) may take.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors that end a link session.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Transport or gRPC failure.
    #[error("{0}")]
    Transport(String),
    /// The peer broke the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// No frame for too long.
    #[error("peer silent for {0:?}")]
    Idle(Duration),
    /// Local store failure.
    #[error("store: {0}")]
    Store(String),
}

struct InFlight {
    key: Vec<u8>,
    item: QueueItem,
    sent_at: Instant,
    /// Its share of the byte window.
    kib: u32,
    /// For an envelope: its document id and sender, to record FORWARDED without reading it
    /// back.
    document_id: String,
    origin: String,
}

struct Pending {
    env: Verified<Envelope>,
    recipients: Vec<AgencyCode>,
    missing: HashSet<Vec<u8>>,
}

/// One side of a link.
pub struct Session {
    node: Arc<Node>,
    peer: AgencyCode,
    peer_is_child: bool,
    out: mpsc::Sender<LinkFrame>,
    /// Touched by both loops for microseconds at a time, never across an await: std Mutex.
    inflight: Mutex<HashMap<String, InFlight>>,
    pending: Mutex<HashMap<String, Pending>>,
    window: Semaphore,
    /// Bytes of the frames in flight, in KiB: the window counted in bytes too.
    window_kib: Semaphore,
    window_kib_total: u32,
    /// The peer takes batch frames and acks ([`FEATURE_BATCH`]).
    batches: bool,
    /// The peer sends claim sequences and takes Moved frames ([`FEATURE_ROUTES`]).
    routes: bool,
    /// The peer takes node details ([`FEATURE_NODE_DETAIL`]).
    node_details: bool,
    /// Items stored, to acknowledge after the next commit (see [`Session::ack_loop`]).
    to_ack: Mutex<Vec<String>>,
    ack_wake: tokio::sync::Notify,
    cancel: CancellationToken,
}

fn frame(f: Frame) -> LinkFrame {
    LinkFrame { frame: Some(f) }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Session {
    /// Runs a session until the peer goes away, falls silent, or `cancel` fires.
    pub async fn run(
        node: Arc<Node>,
        peer: AgencyCode,
        peer_is_child: bool,
        mut inbound: Streaming<LinkFrame>,
        out: mpsc::Sender<LinkFrame>,
        peer_hello: &Hello,
        cancel: CancellationToken,
    ) -> Result<(), LinkError> {
        let label = NeighbourLabel {
            neighbour: peer.to_string(),
        };
        node.link_changed(&peer, true);
        node.metrics.link_sessions.get_or_create(&label).inc();
        let window = node.config.link.window;
        let window_kib_total = node.config.link.window_kib;
        let heartbeat = agreed_heartbeat(node.config.link.heartbeat, peer_hello.heartbeat_secs);
        if heartbeat != node.config.link.heartbeat {
            info!(
                own_secs = node.config.link.heartbeat.as_secs(),
                peer_secs = peer_hello.heartbeat_secs,
                "heartbeat: the peer's longer interval is used on this link"
            );
        }
        let batches = peer_hello.features.iter().any(|f| f == FEATURE_BATCH);
        let routes = peer_hello.features.iter().any(|f| f == FEATURE_ROUTES);
        let node_details = peer_hello.features.iter().any(|f| f == FEATURE_NODE_DETAIL);
        let s = Arc::new(Session {
            node: node.clone(),
            peer: peer.clone(),
            peer_is_child,
            out,
            inflight: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            window: Semaphore::new(window),
            window_kib: Semaphore::new(window_kib_total as usize),
            window_kib_total,
            batches,
            routes,
            node_details,
            to_ack: Mutex::new(Vec::new()),
            ack_wake: tokio::sync::Notify::new(),
            cancel: cancel.clone(),
        });
        let sender = tokio::spawn(s.clone().send_loop().in_current_span());
        let acker = tokio::spawn(s.clone().ack_loop().in_current_span());
        let beats = tokio::spawn(s.clone().heartbeat_loop(heartbeat).in_current_span());
        let idle = heartbeat * 3;
        let mut burst =
            crate::security::BurstCounter::new(node.config.security.burst_items_per_minute);
        let mut limit = peer_is_child.then(|| LinkLimit::new(&node));
        let result = loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => break Ok(()),
                n = tokio::time::timeout(idle, inbound.message()) => n,
            };
            match next {
                Err(_) => break Err(LinkError::Idle(idle)),
                Ok(Err(status)) => break Err(LinkError::Transport(status.to_string())),
                Ok(Ok(None)) => break Ok(()),
                Ok(Ok(Some(f))) => {
                    let items = match &f.frame {
                        Some(Frame::Envelope(_) | Frame::Receipt(_)) => 1,
                        Some(Frame::Batch(b)) => b
                            .frames
                            .iter()
                            .filter(|f| {
                                matches!(f.frame, Some(Frame::Envelope(_) | Frame::Receipt(_)))
                            })
                            .count(),
                        _ => 0,
                    };
                    for _ in 0..items {
                        if let Some(count) = burst.hit(Instant::now()) {
                            s.on_burst(count);
                        }
                    }
                    // Flow control: past its limit, the child's next frames wait unread.
                    if let Some(wait) = limit.as_mut().and_then(|l| l.charge(&s, items, &f)) {
                        tokio::select! {
                            _ = cancel.cancelled() => break Ok(()),
                            _ = tokio::time::sleep(wait) => {}
                        }
                    }
                    if let Err(e) = s.handle(f).await {
                        break Err(e);
                    }
                }
            }
        };
        cancel.cancel();
        sender.abort();
        acker.abort();
        beats.abort();
        node.link_changed(&peer, false);
        result
    }

    async fn send(&self, f: Frame) -> Result<(), LinkError> {
        self.out
            .send(frame(f))
            .await
            .map_err(|_| LinkError::Transport("link closed".into()))
    }

    /// Sends a heartbeat every `every`; to a child that takes them, also the claims it lost
    /// since it was last told ([`Node::take_moved_notices`]), at once and then with each beat.
    async fn heartbeat_loop(self: Arc<Self>, every: Duration) {
        let mut first = true;
        loop {
            if self.peer_is_child && self.routes {
                let lost = self.node.take_moved_notices(&self.peer);
                if !lost.is_empty() {
                    info!(peer = %self.peer, agencies = ?lost.keys().collect::<Vec<_>>(), "telling the child these agencies moved");
                    let claims = to_claims(lost);
                    if self.send(Frame::Moved(Moved { claims })).await.is_err() {
                        return;
                    }
                }
            }
            let wait = if first {
                Duration::from_millis(200)
            } else {
                every
            };
            first = false;
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            if self
                .send(Frame::Heartbeat(Heartbeat {
                    at_unix_ms: now_unix_ms(),
                }))
                .await
                .is_err()
            {
                return;
            }
        }
    }

    async fn send_loop(self: Arc<Self>) {
        let waker = self.node.waker(&self.peer);
        let batch = self.node.config.link.window * 2;
        let batch_items = (self.node.config.link.window / 4).clamp(1, BATCH_ITEMS);
        loop {
            if self.cancel.is_cancelled() {
                return;
            }
            let entries = match self.node.store.outbound(self.peer.as_str(), batch) {
                Ok(e) => e,
                Err(e) => {
                    error!(cause = %e, "cannot read outbound queue");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let mut sent = 0usize;
            // Frames gathered for one batch frame (to a peer that takes them).
            let mut gathered: Vec<LinkFrame> = Vec::new();
            let mut gathered_bytes = 0usize;
            for e in entries {
                if lock(&self.inflight).contains_key(e.item.id()) {
                    continue;
                }
                if !self
                    .take_room(&self.window, 1, &mut gathered, &mut gathered_bytes)
                    .await
                {
                    return;
                }
                let (f, kib) = match self.next_frame(e).await {
                    Ok(Some(f)) => f,
                    Ok(None) => continue,
                    Err(err) => {
                        debug!(cause = %err, "sender stopping");
                        return;
                    }
                };
                if !self
                    .take_room(&self.window_kib, kib, &mut gathered, &mut gathered_bytes)
                    .await
                {
                    return;
                }
                sent += 1;
                if !self.batches {
                    if self.send_frame(f).await.is_err() {
                        return;
                    }
                    continue;
                }
                gathered_bytes += f.encoded_len();
                gathered.push(f);
                if (gathered.len() >= batch_items || gathered_bytes >= BATCH_BYTES)
                    && self
                        .flush(&mut gathered, &mut gathered_bytes)
                        .await
                        .is_err()
                {
                    return;
                }
            }
            if self
                .flush(&mut gathered, &mut gathered_bytes)
                .await
                .is_err()
            {
                return;
            }
            if sent == 0 {
                tokio::select! {
                    _ = self.cancel.cancelled() => return,
                    _ = waker.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }

    /// Takes `n` permits of a window (items or KiB) for the next item. Before waiting for
    /// room, what is gathered is sent: the items it holds are what frees the room. False when
    /// the sender should stop (link closed or cancelled).
    async fn take_room(
        &self,
        window: &Semaphore,
        n: u32,
        gathered: &mut Vec<LinkFrame>,
        bytes: &mut usize,
    ) -> bool {
        if window.available_permits() < n as usize
            && !gathered.is_empty()
            && self.flush(gathered, bytes).await.is_err()
        {
            return false;
        }
        let permit = tokio::select! {
            _ = self.cancel.cancelled() => return false,
            p = window.acquire_many(n) => p,
        };
        match permit {
            Ok(p) => {
                p.forget();
                true
            }
            Err(_) => false,
        }
    }

    /// Sends the gathered frames: one alone as it is, several as one batch frame.
    async fn flush(
        &self,
        gathered: &mut Vec<LinkFrame>,
        bytes: &mut usize,
    ) -> Result<(), LinkError> {
        *bytes = 0;
        match gathered.len() {
            0 => Ok(()),
            1 => {
                let f = gathered.remove(0);
                self.send_frame(f).await
            }
            _ => {
                let frames = std::mem::take(gathered);
                self.send(Frame::Batch(FrameBatch { frames })).await
            }
        }
    }

    async fn send_frame(&self, f: LinkFrame) -> Result<(), LinkError> {
        self.out
            .send(f)
            .await
            .map_err(|_| LinkError::Transport("link closed".into()))
    }

    /// The frame that sends a queue entry and its share of the byte window, in KiB (none if
    /// the entry points at nothing and was dropped). The entry counts as in flight from here.
    async fn next_frame(&self, e: QueuedEntry) -> Result<Option<(LinkFrame, u32)>, LinkError> {
        let id = e.item.id().to_owned();
        let mut about = (String::new(), String::new());
        let f = match &e.item {
            QueueItem::Envelope { id, recipients, .. } => {
                let found = self.node.store.envelope(id);
                let Some(mut env) = self.present(found, &e, "envelope")? else {
                    return Ok(None);
                };
                let now = self.node.clock.now_unix_ms();
                if let Some(t) = env
                    .trace
                    .iter_mut()
                    .rev()
                    .find(|t| t.agency == self.node.agency().as_str())
                {
                    t.forwarded_unix_ms = now;
                }
                about = (
                    env.document_id.clone(),
                    env.from
                        .as_ref()
                        .map(|f| f.code.clone())
                        .unwrap_or_default(),
                );
                Frame::Envelope(EnvelopeHeader {
                    envelope: Some(env),
                    recipients: recipients.clone(),
                })
            }
            QueueItem::Receipt { id } => {
                let found = self.node.store.receipt(id);
                let Some(bytes) = self.present(found, &e, "receipt")? else {
                    return Ok(None);
                };
                let rf = ReceiptFrame::decode(bytes.as_slice())
                    .map_err(|e| LinkError::Store(e.to_string()))?;
                if !self.node_details
                    && matches!(
                        rf.item,
                        Some(lienthong_proto::v1::receipt_frame::Item::Detail(_))
                    )
                {
                    // A peer that did not list the feature would refuse the frame: the detail
                    // stays here only (this node keeps its copy as the newest detail).
                    info!(peer = %self.peer, item = %id, "node detail not sent: the peer does not take node details");
                    if let Err(err) = self.node.store.dequeue(&e.key) {
                        warn!(item = %id, cause = %err, "cannot remove a queue entry");
                    }
                    self.window.add_permits(1);
                    return Ok(None);
                }
                Frame::Receipt(rf)
            }
        };
        let f = frame(f);
        // An item larger than the whole byte window still goes, alone.
        let kib = u32::try_from(f.encoded_len().div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.window_kib_total.max(1));
        lock(&self.inflight).insert(
            id,
            InFlight {
                key: e.key,
                item: e.item,
                sent_at: Instant::now(),
                kib,
                document_id: about.0,
                origin: about.1,
            },
        );
        Ok(Some((f, kib)))
    }

    /// Acknowledges stored items after a commit that began after they were written: every
    /// item stored while the previous commit ran shares the next one, and their acks go in
    /// one frame to a peer that takes batches.
    async fn ack_loop(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = self.ack_wake.notified() => {}
            }
            let ids = std::mem::take(&mut *lock(&self.to_ack));
            if ids.is_empty() {
                continue;
            }
            let proof = match self.node.store.commit().await {
                Ok(p) => p,
                Err(e) => {
                    error!(cause = %e, "store commit failed; dropping link so the peer resends");
                    self.cancel.cancel();
                    return;
                }
            };
            if self.ack_all(ids, proof).await.is_err() {
                return;
            }
        }
    }

    async fn ack_all(&self, ids: Vec<String>, _proof: Persisted) -> Result<(), LinkError> {
        if self.batches && ids.len() > 1 {
            return self.send(Frame::Acks(HopAcks { item_ids: ids })).await;
        }
        for id in ids {
            self.send(Frame::Ack(HopAck { item_id: id })).await?;
        }
        Ok(())
    }

    /// Acknowledges `id` once what was written for it is durable (see [`Session::ack_loop`]).
    fn ack_after_commit(&self, id: String) {
        lock(&self.to_ack).push(id);
        self.ack_wake.notify_one();
    }

    async fn handle(self: &Arc<Self>, f: LinkFrame) -> Result<(), LinkError> {
        match f.frame {
            Some(Frame::Batch(b)) => {
                for f in b.frames {
                    if matches!(f.frame, Some(Frame::Batch(_))) {
                        return Err(LinkError::Protocol("batch inside a batch".into()));
                    }
                    self.handle_one(f).await?;
                }
                Ok(())
            }
            frame => self.handle_one(LinkFrame { frame }).await,
        }
    }

    async fn handle_one(self: &Arc<Self>, f: LinkFrame) -> Result<(), LinkError> {
        match f.frame {
            Some(Frame::Batch(_)) => Err(LinkError::Protocol("nested batch".into())),
            Some(Frame::Acks(a)) => {
                for id in &a.item_ids {
                    self.on_settled(id, None);
                }
                Ok(())
            }
            Some(Frame::Envelope(h)) => {
                // One span per envelope handled on this link, inside the link's span.
                let span = tracing::info_span!(
                    "envelope",
                    id = %h.envelope.as_ref().map(|e| e.id.as_str()).unwrap_or_default(),
                    from = %h
                        .envelope
                        .as_ref()
                        .and_then(|e| e.from.as_ref())
                        .map(|f| f.code.as_str())
                        .unwrap_or_default(),
                );
                self.on_envelope(h).instrument(span).await
            }
            Some(Frame::Chunk(c)) => self.on_chunk(c).await,
            Some(Frame::ChunkRequest(r)) => {
                self.on_chunk_request(r);
                Ok(())
            }
            Some(Frame::Ack(a)) => {
                self.on_settled(&a.item_id, None);
                Ok(())
            }
            Some(Frame::Refusal(r)) => {
                self.on_settled(&r.item_id.clone(), Some(r));
                Ok(())
            }
            Some(Frame::Receipt(r)) => self.on_receipt(r).await,
            Some(Frame::Hello(h)) => {
                if self.peer_is_child {
                    apply_hello(&self.node, &self.peer, &h);
                }
                Ok(())
            }
            Some(Frame::Moved(m)) => {
                if self.peer_is_child {
                    warn!(peer = %self.peer, "a child sent a Moved frame; ignored (only a parent may)");
                    return Ok(());
                }
                let claims = claims_of(&m.claims);
                self.node
                    .learn_moved(&claims)
                    .map_err(|e| LinkError::Store(e.to_string()))?;
                let _ = self
                    .node
                    .store
                    .commit()
                    .await
                    .map_err(|e| LinkError::Store(e.to_string()))?;
                Ok(())
            }
            Some(Frame::Heartbeat(_)) => Ok(()),
            None => Err(LinkError::Protocol("empty frame".into())),
        }
    }

    /// Records that the child passed a `[limits] link_*` limit: its frames wait `wait`.
    fn on_rate_limit(&self, what: &str, wait: Duration, record: Option<u64>) {
        let reason = format!(
            "{what}; its next frames wait {} ms unread",
            wait.as_millis()
        );
        info!(peer = %self.peer, wait_ms = wait.as_millis() as u64, cause = %reason, "child link slowed: rate limit");
        let class = EventClass::LinkRateLimit;
        match record {
            Some(n) => self.node.security_event(
                class,
                self.peer.as_str(),
                self.peer.as_str(),
                &format!("{reason} ({n} times since the last event)"),
            ),
            None => self.node.metrics.refuse(class.as_str()),
        }
    }

    /// Records that the peer passed `[security] burst_items_per_minute`; its items are still
    /// taken (the event is for monitoring).
    fn on_burst(&self, count: u32) {
        let limit = self.node.config.security.burst_items_per_minute;
        let reason = format!(
            "{count} items (envelopes and receipts) within one minute, over the limit of {limit} per minute; items still accepted"
        );
        warn!(peer = %self.peer, count, limit, "burst of items from a peer");
        self.node.security_event(
            EventClass::Burst,
            self.peer.as_str(),
            self.peer.as_str(),
            &reason,
        );
    }

    async fn refuse(&self, item_id: &str, r: &Refusal) -> Result<(), LinkError> {
        warn!(peer = %self.peer, item = %item_id, reason = r.class(), cause = %r.reason, "refused");
        self.node.security_event(
            EventClass::Refused(r.code),
            self.peer.as_str(),
            "",
            &format!("item {item_id}: {}", r.reason),
        );
        self.send(Frame::Refusal(HopRefusal {
            item_id: item_id.to_owned(),
            code: r.code as i32,
            reason: r.reason.clone(),
        }))
        .await
    }

    async fn on_envelope(self: &Arc<Self>, h: EnvelopeHeader) -> Result<(), LinkError> {
        let Some(env) = h.envelope else {
            return self
                .refuse(
                    "",
                    &Refusal::new(
                        RefusalCode::RefusalMalformed,
                        "envelope frame without envelope",
                    ),
                )
                .await;
        };
        let id = env.id.clone();
        let copy = refusal_copy(&env);
        let mut recipients = Vec::with_capacity(h.recipients.len());
        for r in &h.recipients {
            match AgencyCode::parse(r) {
                Ok(c) if env.to.iter().any(|t| &t.code == r) => recipients.push(c),
                _ => {
                    return self
                        .refuse(
                            &id,
                            &Refusal::new(
                                RefusalCode::RefusalInvalid,
                                format!(
                                    "link recipient {r:?} is not among the envelope's recipients"
                                ),
                            ),
                        )
                        .await
                }
            }
        }
        if recipients.is_empty() {
            return self
                .refuse(
                    &id,
                    &Refusal::new(RefusalCode::RefusalInvalid, "no recipients for this hop"),
                )
                .await;
        }
        let returned = self.peer_is_child && self.node.is_return(&self.peer, &env, &recipients);
        let verified =
            match self
                .node
                .check_incoming_as(env, &self.peer, self.peer_is_child, returned)
            {
                Ok(v) => v,
                Err(r) => {
                    if let Err(e) = self.node.answer_refusal(&copy, &h.recipients, &r) {
                        warn!(cause = %e, "could not answer refusal");
                    }
                    self.refuse(&id, &r).await?;
                    return self.commit_quietly().await;
                }
            };
        let mut missing = HashSet::new();
        let mut requests = Vec::new();
        for a in &verified.attachments {
            let store = &self.node.store;
            if store.has_attachment(&a.sha256, a.size) {
                continue;
            }
            let mut held = store
                .attachment_held(&a.sha256)
                .map_err(|e| LinkError::Store(e.to_string()))?;
            if held >= a.size {
                // Fully received before a crash but not yet verified: verify now.
                if held == a.size
                    && store
                        .complete_attachment(&a.sha256)
                        .map_err(|e| LinkError::Store(e.to_string()))?
                {
                    continue;
                }
                store
                    .discard_attachment(&a.sha256)
                    .map_err(|e| LinkError::Store(e.to_string()))?;
                held = 0;
            }
            if missing.insert(a.sha256.clone()) {
                requests.push(ChunkRequest {
                    envelope_id: id.clone(),
                    sha256: a.sha256.clone(),
                    offset: held,
                });
            }
        }
        if missing.is_empty() {
            return self.complete(verified, recipients).await;
        }
        lock(&self.pending).insert(
            id,
            Pending {
                env: verified,
                recipients,
                missing,
            },
        );
        for r in requests {
            self.send(Frame::ChunkRequest(r)).await?;
        }
        Ok(())
    }

    /// What a queue entry points at, if the store still has it; an entry that points at
    /// nothing is dropped (logged, counted, answered) and its window slot freed.
    fn present<T>(
        &self,
        found: Result<Option<T>, lienthong_common::store::StoreError>,
        entry: &QueuedEntry,
        what: &str,
    ) -> Result<Option<T>, LinkError> {
        let found = found.map_err(|e| LinkError::Store(e.to_string()))?;
        if found.is_none() {
            self.node.drop_queued(
                self.peer.as_str(),
                entry,
                &format!("the queued {what} is missing from the store"),
            );
            self.window.add_permits(1);
        }
        Ok(found)
    }

    /// Acknowledges item `id` to the peer: only with the proof that it is on disk, which the
    /// acknowledgement consumes.
    async fn commit_quietly(&self) -> Result<(), LinkError> {
        self.node
            .store
            .commit()
            .await
            .map(|_| ())
            .map_err(|e| LinkError::Store(e.to_string()))
    }

    async fn complete(
        self: &Arc<Self>,
        env: Verified<Envelope>,
        recipients: Vec<AgencyCode>,
    ) -> Result<(), LinkError> {
        let id = env.id.clone();
        let copy = refusal_copy(&env);
        match self.node.accept(env, &recipients, Some(&self.peer)) {
            Ok(_) => {
                self.node.metrics.traffic.document_in(self.peer.as_str());
                // Committed and acked off the receive loop, so many items share one flush.
                self.ack_after_commit(id);
                Ok(())
            }
            Err(NodeError::Refused(r)) => {
                let recips: Vec<String> = recipients.iter().map(|r| r.to_string()).collect();
                if let Err(e) = self.node.answer_refusal(&copy, &recips, &r) {
                    warn!(cause = %e, "could not answer refusal");
                }
                self.refuse(&id, &r).await?;
                self.commit_quietly().await
            }
            Err(e) => Err(LinkError::Store(e.to_string())),
        }
    }

    async fn on_chunk(self: &Arc<Self>, c: AttachmentChunk) -> Result<(), LinkError> {
        if c.data.len() > MAX_CHUNK_BYTES {
            return self
                .refuse(
                    &c.envelope_id,
                    &Refusal::new(
                        RefusalCode::RefusalTooLarge,
                        format!("chunk of {} bytes exceeds {MAX_CHUNK_BYTES}", c.data.len()),
                    ),
                )
                .await;
        }
        let size = {
            let pending = lock(&self.pending);
            let Some(p) = pending.get(&c.envelope_id) else {
                debug!(envelope = %c.envelope_id, "chunk for no pending envelope ignored");
                return Ok(());
            };
            if !p.missing.contains(&c.sha256) {
                return Ok(());
            }
            p.env
                .attachments
                .iter()
                .find(|a| a.sha256 == c.sha256)
                .map(|a| a.size)
                .unwrap_or(0)
        };
        let held = match self.node.store.append_chunk(&c.sha256, c.offset, &c.data) {
            Ok(h) => h,
            Err(_) => {
                // A gap (a chunk was lost in a cut): ask again from what is held.
                let held = self
                    .node
                    .store
                    .attachment_held(&c.sha256)
                    .map_err(|e| LinkError::Store(e.to_string()))?;
                return self
                    .send(Frame::ChunkRequest(ChunkRequest {
                        envelope_id: c.envelope_id,
                        sha256: c.sha256,
                        offset: held,
                    }))
                    .await;
            }
        };
        if held > size {
            lock(&self.pending).remove(&c.envelope_id);
            return self
                .refuse(
                    &c.envelope_id,
                    &Refusal::new(
                        RefusalCode::RefusalTooLarge,
                        format!("attachment larger than its declared {size} bytes"),
                    ),
                )
                .await;
        }
        if held < size {
            return Ok(());
        }
        let store = self.node.store.clone();
        let sha = c.sha256.clone();
        let ok = tokio::task::spawn_blocking(move || store.complete_attachment(&sha))
            .await
            .map_err(|e| LinkError::Store(e.to_string()))?
            .map_err(|e| LinkError::Store(e.to_string()))?;
        let done = {
            let mut pending = lock(&self.pending);
            if !ok {
                pending.remove(&c.envelope_id);
                None
            } else if let Some(p) = pending.get_mut(&c.envelope_id) {
                p.missing.remove(&c.sha256);
                if p.missing.is_empty() {
                    pending.remove(&c.envelope_id)
                } else {
                    None
                }
            } else {
                None
            }
        };
        if !ok {
            return self
                .refuse(
                    &c.envelope_id,
                    &Refusal::new(
                        RefusalCode::RefusalInvalid,
                        format!(
                            "attachment {} does not match its SHA-256",
                            hex::encode(&c.sha256)
                        ),
                    ),
                )
                .await;
        }
        match done {
            Some(p) => self.complete(p.env, p.recipients).await,
            None => Ok(()),
        }
    }

    fn on_chunk_request(self: &Arc<Self>, r: ChunkRequest) {
        let s = self.clone();
        tokio::task::spawn_blocking(move || {
            let out = s.out.clone();
            let sent = s
                .node
                .metrics
                .chunk_bytes_sent
                .get_or_create(&NeighbourLabel {
                    neighbour: s.peer.to_string(),
                })
                .clone();
            let res = s
                .node
                .store
                .for_each_chunk(&r.sha256, r.offset, |off, data| {
                    let skip = r.offset.saturating_sub(off) as usize;
                    let chunk = AttachmentChunk {
                        envelope_id: r.envelope_id.clone(),
                        sha256: r.sha256.clone(),
                        offset: off + skip as u64,
                        data: data[skip.min(data.len())..].to_vec(),
                    };
                    sent.inc_by(chunk.data.len() as u64);
                    !s.cancel.is_cancelled()
                        && out.blocking_send(frame(Frame::Chunk(chunk))).is_ok()
                });
            if let Err(e) = res {
                warn!(cause = %e, "cannot read attachment chunks");
            }
        });
    }

    fn on_settled(&self, item_id: &str, refusal: Option<HopRefusal>) {
        let Some(f) = lock(&self.inflight).remove(item_id) else {
            return;
        };
        if let Err(e) = self.node.store.dequeue(&f.key) {
            warn!(cause = %e, "cannot remove settled item from queue");
        }
        self.window.add_permits(1);
        self.window_kib.add_permits(f.kib as usize);
        self.node.waker(&self.peer).notify_one();
        match refusal {
            None => {
                self.node
                    .metrics
                    .forwarded
                    .get_or_create(&NeighbourLabel {
                        neighbour: self.peer.to_string(),
                    })
                    .inc();
                let waited = f.sent_at.elapsed().as_secs_f64();
                self.node.metrics.hop_ack_seconds.observe(waited);
                self.node.metrics.traffic.acked(waited);
                if let QueueItem::Envelope { id, recipients, .. } = &f.item {
                    self.node.metrics.traffic.document_out(self.peer.as_str());
                    debug!(envelope = %id, next_hop = %self.peer, "forwarded");
                    let about = About {
                        envelope_id: id,
                        document_id: &f.document_id,
                        origin: &f.origin,
                    };
                    if let Err(e) = self.node.record_local_event(
                        about,
                        recipients,
                        TransportState::TransportForwarded,
                        Some(&self.peer),
                    ) {
                        warn!(envelope = %id, cause = %e, "cannot record the FORWARDED event");
                    }
                }
            }
            Some(r) => {
                // The refusing node answers the sender itself (02 and FAILED, unless the
                // sender is forged); here the item leaves the queue, counted and logged.
                self.node.metrics.drop_item("refused_by_next_hop");
                warn!(peer = %self.peer, item = %item_id, code = r.code, reason = %r.reason, "next hop refused item");
            }
        }
    }

    async fn on_receipt(self: &Arc<Self>, r: ReceiptFrame) -> Result<(), LinkError> {
        let id = match &r.item {
            Some(lienthong_proto::v1::receipt_frame::Item::Status(s)) => s.id.clone(),
            Some(lienthong_proto::v1::receipt_frame::Item::Transport(t)) => t.id.clone(),
            Some(lienthong_proto::v1::receipt_frame::Item::Summary(s)) => s.id.clone(),
            Some(lienthong_proto::v1::receipt_frame::Item::Attestation(a)) => a.id.clone(),
            Some(lienthong_proto::v1::receipt_frame::Item::Detail(d)) => d.id.clone(),
            None => String::new(),
        };
        let checked = match self
            .node
            .check_incoming_receipt(r, &self.peer, self.peer_is_child)
        {
            Ok(c) => c,
            Err(refusal) => return self.refuse(&id, &refusal).await,
        };
        match self.node.route_incoming_receipt(checked) {
            Ok(()) => {
                self.ack_after_commit(id);
                Ok(())
            }
            Err(NodeError::Refused(refusal)) => self.refuse(&id, &refusal).await,
            Err(e) => Err(LinkError::Store(e.to_string())),
        }
    }
}

/// Applies a child's Hello: keeps the codes it may serve, logs the others.
fn apply_hello(node: &Node, child: &AgencyCode, h: &Hello) {
    let set = node.check_announcement(child, &h.serves);
    if let Err(e) = node.announce(child, set, &claims_of(&h.claims)) {
        error!(cause = %e, "cannot persist announcement");
    }
}

/// Claims as the link carries them; those without a sequence (0) are left out.
fn to_claims(claims: std::collections::BTreeMap<AgencyCode, i64>) -> Vec<Claim> {
    claims
        .into_iter()
        .filter(|(_, seq)| *seq > 0)
        .map(|(a, seq)| Claim {
            agency: a.to_string(),
            seq,
        })
        .collect()
}

/// Claims with a usable code and a sequence (others count as claims without one).
fn claims_of(claims: &[Claim]) -> std::collections::BTreeMap<AgencyCode, i64> {
    claims
        .iter()
        .filter(|c| c.seq > 0)
        .filter_map(|c| AgencyCode::parse(&c.agency).ok().map(|a| (a, c.seq)))
        .collect()
}

fn hello(node: &Node) -> LinkFrame {
    frame(Frame::Hello(Hello {
        agency: node.agency().to_string(),
        serves: node
            .routes()
            .serves()
            .iter()
            .map(|c| c.to_string())
            .collect(),
        software_version: env!("CARGO_PKG_VERSION").to_owned(),
        features: vec![
            FEATURE_BATCH.to_owned(),
            FEATURE_ROUTES.to_owned(),
            FEATURE_NODE_DETAIL.to_owned(),
        ],
        claims: to_claims(
            node.routes()
                .claims(node.claim_seq.load(std::sync::atomic::Ordering::Relaxed)),
        ),
        heartbeat_secs: u32::try_from(node.config.link.heartbeat.as_secs()).unwrap_or(u32::MAX),
    }))
}

/// The heartbeat interval both ends of a link use: the larger of the two settings (a peer that
/// sends none, 0, leaves `own`).
fn agreed_heartbeat(own: Duration, peer_secs: u32) -> Duration {
    own.max(Duration::from_secs(u64::from(peer_secs)))
}

/// Why a child's link is not opened: the one place the link service's refusals become gRPC
/// statuses.
#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error(transparent)]
    Peer(PeerRefusal),
    #[error("no Hello within {} s", HELLO_TIMEOUT.as_secs())]
    NoHello,
    #[error("the first frame must be Hello")]
    NotHello,
    #[error("link closed")]
    Closed,
}

impl From<OpenError> for Status {
    fn from(e: OpenError) -> Self {
        let m = e.to_string();
        match e {
            OpenError::Peer(PeerRefusal::NoCertificate | PeerRefusal::BadCertificate(_)) => {
                Status::unauthenticated(m)
            }
            OpenError::Peer(PeerRefusal::NotAChild { .. } | PeerRefusal::AgencyMismatch { .. }) => {
                Status::permission_denied(m)
            }
            OpenError::NoHello => Status::deadline_exceeded(m),
            OpenError::NotHello => Status::invalid_argument(m),
            OpenError::Closed => Status::internal(m),
        }
    }
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<LinkFrame, Status>> + Send>>;

/// The parent side of the link service.
#[derive(Debug, Clone)]
pub struct LinkService {
    node: Arc<Node>,
    sessions: Arc<Mutex<HashMap<AgencyCode, CancellationToken>>>,
    shutdown: CancellationToken,
}

impl LinkService {
    /// A service for `node`; sessions end when `shutdown` fires.
    pub fn new(node: Arc<Node>, shutdown: CancellationToken) -> Self {
        Self {
            node,
            sessions: Arc::default(),
            shutdown,
        }
    }
}

#[tonic::async_trait]
impl RelayLink for LinkService {
    type OpenStream = FrameStream;

    async fn open(
        &self,
        req: Request<Streaming<LinkFrame>>,
    ) -> Result<Response<FrameStream>, Status> {
        let (certs, remote) = peer_of(&req);
        let child = self
            .node
            .admit_child(certs.as_deref().map(|c| c.as_slice()), &remote)
            .map_err(OpenError::Peer)?;
        let mut inbound = req.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| OpenError::NoHello)??;
        let Some(LinkFrame {
            frame: Some(Frame::Hello(h)),
        }) = first
        else {
            return Err(OpenError::NotHello.into());
        };
        self.node
            .check_hello(&child, &remote, &h.agency)
            .map_err(OpenError::Peer)?;
        apply_hello(&self.node, &child, &h);
        if let Some(end) = certs.as_ref().and_then(|c| c.first()) {
            crate::security::check_expiry(
                &self.node,
                EventClass::PeerCertificateExpiring,
                child.as_str(),
                end,
            );
        }
        let (tx, rx) = mpsc::channel(OUTBOUND_FRAMES);
        tx.send(hello(&self.node))
            .await
            .map_err(|_| OpenError::Closed)?;
        let cancel = self.shutdown.child_token();
        if let Some(old) = lock(&self.sessions).insert(child.clone(), cancel.clone()) {
            old.cancel();
        }
        info!(peer = %child, remote = %remote, "child linked");
        if let Some(chain) = certs.clone() {
            tokio::spawn(close_when_revoked(
                self.node.clone(),
                child.clone(),
                chain,
                false,
                cancel.clone(),
            ));
        }
        let node = self.node.clone();
        let sessions = self.sessions.clone();
        let span = tracing::info_span!("link", peer = %child);
        tokio::spawn(
            async move {
                let res =
                    Session::run(node, child.clone(), true, inbound, tx, &h, cancel.clone()).await;
                match res {
                    Ok(()) => info!("child link closed"),
                    Err(e) => warn!(cause = %e, "child link ended"),
                }
                let mut s = lock(&sessions);
                if s.get(&child).is_some_and(|t| t.is_cancelled()) {
                    s.remove(&child);
                }
            }
            .instrument(span),
        );
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn probe(&self, req: Request<ProbeRequest>) -> Result<Response<ProbeResponse>, Status> {
        let (certs, remote) = peer_of(&req);
        let child = self
            .node
            .admit_child(certs.as_deref().map(|c| c.as_slice()), &remote)
            .map_err(OpenError::Peer)?;
        info!(peer = %child, remote = %remote, "probe answered");
        Ok(Response::new(ProbeResponse {
            time_unix_ms: self.node.clock.now_unix_ms(),
            agency: self.node.agency().to_string(),
            software_version: env!("CARGO_PKG_VERSION").to_owned(),
            child: child.to_string(),
        }))
    }
}

/// The certificates a caller presented in its TLS handshake, and its address.
fn peer_of<T>(
    req: &Request<T>,
) -> (
    Option<Arc<Vec<rustls_pki_types::CertificateDer<'static>>>>,
    String,
) {
    let info = req.extensions().get::<TlsConnectInfo<TcpConnectInfo>>();
    let remote = info
        .and_then(|i| i.get_ref().remote_addr())
        .map(|a| a.to_string())
        .unwrap_or_default();
    (info.and_then(|i| i.peer_certs()), remote)
}

/// Ends a link as soon as a new CRL makes the certificate its peer presented untrusted (a
/// child's, or, with `peer_is_parent`, the parent's).
async fn close_when_revoked(
    node: Arc<Node>,
    peer: AgencyCode,
    chain: Arc<Vec<rustls_pki_types::CertificateDer<'static>>>,
    peer_is_parent: bool,
    cancel: CancellationToken,
) {
    let mut crl = node.crl_generation.subscribe();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = crl.changed() => if changed.is_err() { return },
        }
        let trusted = if peer_is_parent {
            node.parent_still_trusted(&peer, &chain)
        } else {
            node.still_trusted(&peer, &chain)
        };
        if trusted.is_err() {
            let _ = node.store.commit().await;
            cancel.cancel();
            return;
        }
    }
}

/// Keeps the link to the parent up: connect, run a session, back off with jitter on failure,
/// until `shutdown`.
pub async fn parent_loop(node: Arc<Node>, identity: Identity, shutdown: CancellationToken) {
    let Some(parent) = node.config.parent.clone() else {
        return;
    };
    let cfg = match tls::client_config(
        node.verifier.trust().clone(),
        parent.agency.clone(),
        &identity,
        node.config.tls.allow_tls12,
    ) {
        Ok(c) => c,
        Err(e) => {
            error!(cause = %e, "cannot build TLS client configuration; parent link disabled");
            return;
        }
    };
    let max = node.config.link.max_backoff;
    let mut backoff = Duration::from_millis(250);
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let started = Instant::now();
        let span = tracing::info_span!("link", peer = %parent.agency);
        match connect_and_run(&node, &parent, cfg.clone(), &shutdown)
            .instrument(span)
            .await
        {
            Ok(()) => info!(peer = %parent.agency, "parent link closed"),
            Err(e) => {
                warn!(peer = %parent.agency, endpoint = %parent.endpoint, cause = %e, "parent link down")
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_millis(250);
        }
        let jitter = fastrand::f64() * 0.5 + 0.75;
        let wait = backoff.mul_f64(jitter).min(max);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        backoff = (backoff * 2).min(max);
    }
}

async fn connect_and_run(
    node: &Arc<Node>,
    parent: &lienthong_common::config::ParentConfig,
    cfg: Arc<rustls::ClientConfig>,
    shutdown: &CancellationToken,
) -> Result<(), LinkError> {
    let sent_serves = node.routes().serves();
    // This link is the newest path to this node's agencies.
    node.claim_seq
        .store(now_unix_ms(), std::sync::atomic::Ordering::Relaxed);
    let seen = PeerChain::default();
    let (tx, mut inbound) = open_link_seen(
        &parent.address,
        cfg,
        node.config.link.heartbeat,
        hello(node),
        seen.clone(),
    )
    .await?;
    let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
        .await
        .map_err(|_| LinkError::Protocol("no Hello from parent".into()))?
        .map_err(|s| LinkError::Transport(s.to_string()))?;
    let parent_hello = match first {
        Some(LinkFrame {
            frame: Some(Frame::Hello(h)),
        }) if h.agency == parent.agency.as_str() => h,
        _ => {
            return Err(LinkError::Protocol(
                "parent did not answer with its Hello".into(),
            ))
        }
    };
    info!(peer = %parent.agency, "linked to parent");
    let cancel = shutdown.child_token();
    let chain = std::mem::take(&mut *lock(&seen));
    // The handshake checked the chain; checked again here against the CRLs in force now.
    if node.parent_still_trusted(&parent.agency, &chain).is_err() {
        return Err(LinkError::Protocol(
            "the parent's certificate is no longer trusted".into(),
        ));
    }
    tokio::spawn(close_when_revoked(
        node.clone(),
        parent.agency.clone(),
        Arc::new(chain),
        true,
        cancel.clone(),
    ));
    // Re-announce upward whenever what this node serves changes. The set sent is compared
    // with the current one on every change notice and once a second, so a change that happens
    // while the link is being set up is not lost.
    let announcer = {
        let node = node.clone();
        let tx = tx.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let mut sent = sent_serves;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = node.serves_changed.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                let now = node.routes().serves();
                if now != sent {
                    if tx.send(hello(&node)).await.is_err() {
                        return;
                    }
                    sent = now;
                }
            }
        })
    };
    let res = Session::run(
        node.clone(),
        parent.agency.clone(),
        false,
        inbound,
        tx,
        &parent_hello,
        cancel,
    )
    .await;
    announcer.abort();
    res
}

/// The certificates a parent presented on the TLS connection [`open_link_seen`] made.
type PeerChain = Arc<Mutex<Vec<rustls_pki_types::CertificateDer<'static>>>>;

/// Opens a link to a parent at `address` ("host:port") over mutual TLS and sends `first`
/// (the Hello). Returns the frame sender and the parent's frame stream.
pub async fn open_link(
    address: &str,
    cfg: Arc<rustls::ClientConfig>,
    heartbeat: Duration,
    first: LinkFrame,
) -> Result<(mpsc::Sender<LinkFrame>, Streaming<LinkFrame>), LinkError> {
    open_link_seen(address, cfg, heartbeat, first, PeerChain::default()).await
}

/// [`open_link`], keeping the certificates the parent presented in `seen`.
async fn open_link_seen(
    address: &str,
    cfg: Arc<rustls::ClientConfig>,
    heartbeat: Duration,
    first: LinkFrame,
    seen: PeerChain,
) -> Result<(mpsc::Sender<LinkFrame>, Streaming<LinkFrame>), LinkError> {
    let mut client = connect(address, cfg, heartbeat, seen).await?;
    let (tx, rx) = mpsc::channel(OUTBOUND_FRAMES);
    tx.send(first)
        .await
        .map_err(|_| LinkError::Transport("closed".into()))?;
    let resp = client
        .open(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| LinkError::Transport(format!("{}: {}", s.code(), s.message())))?;
    Ok((tx, resp.into_inner()))
}

/// What a parent answered to [`probe_parent`].
#[derive(Debug, Clone)]
pub struct ProbeAnswer {
    /// The parent's answer.
    pub response: ProbeResponse,
    /// This machine's clock halfway through the round trip, unix ms.
    pub local_mid_unix_ms: i64,
    /// The round trip, TLS handshake excluded.
    pub round_trip: Duration,
    /// The certificates the parent presented.
    pub chain: Vec<rustls_pki_types::CertificateDer<'static>>,
}

/// Connects to a parent as a link would (same TLS configuration and identity) and asks for its
/// clock and its view of this node, without opening a session. `None`: the parent took the
/// TLS handshake but its release does not answer probes.
pub async fn probe_parent(
    address: &str,
    cfg: Arc<rustls::ClientConfig>,
) -> Result<Option<ProbeAnswer>, LinkError> {
    let seen = PeerChain::default();
    let mut client = connect(address, cfg, Duration::from_secs(10), seen.clone()).await?;
    let started = std::time::Instant::now();
    let before = now_unix_ms();
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        client.probe(ProbeRequest::default()),
    )
    .await
    .map_err(|_| LinkError::Transport("no answer within 10 s".into()))?;
    let response = match response {
        Ok(r) => r.into_inner(),
        Err(s) if s.code() == tonic::Code::Unimplemented => return Ok(None),
        Err(s) => {
            return Err(LinkError::Transport(format!(
                "{}: {}",
                s.code(),
                s.message()
            )))
        }
    };
    let round_trip = started.elapsed();
    let chain = std::mem::take(&mut *lock(&seen));
    Ok(Some(ProbeAnswer {
        response,
        local_mid_unix_ms: before + i64::try_from(round_trip.as_millis() / 2).unwrap_or(0),
        round_trip,
        chain,
    }))
}

/// A link client on a new mutual-TLS connection to `address`, keeping the certificates the
/// peer presented in `seen`.
async fn connect(
    address: &str,
    cfg: Arc<rustls::ClientConfig>,
    heartbeat: Duration,
    seen: PeerChain,
) -> Result<RelayLinkClient<tonic::transport::Channel>, LinkError> {
    let target = address.to_owned();
    let host = target
        .rsplit_once(':')
        .map(|(h, _)| h.trim_matches(['[', ']']))
        .unwrap_or(&target)
        .to_owned();
    let connector = tower::service_fn(move |_uri: tonic::transport::Uri| {
        let cfg = cfg.clone();
        let target = target.clone();
        let host = host.clone();
        let seen = seen.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(&target).await?;
            tcp.set_nodelay(true)?;
            let name = rustls::pki_types::ServerName::try_from(host)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let tls = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await?;
            if let Some(certs) = tls.get_ref().1.peer_certificates() {
                *lock(&seen) = certs.iter().map(|c| c.clone().into_owned()).collect();
            }
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| LinkError::Transport(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(heartbeat)
        .keep_alive_timeout(heartbeat * 2)
        .connect_with_connector(connector)
        .await
        .map_err(|e| LinkError::Transport(format!("connect: {}", source_chain(&e))))?;
    Ok(RelayLinkClient::new(channel)
        .max_decoding_message_size(MAX_FRAME_BYTES)
        .max_encoding_message_size(MAX_FRAME_BYTES))
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A child link's `[limits] link_items_per_minute` and `link_mib_per_minute`.
struct LinkLimit {
    items: lienthong_node::limits::Bucket,
    bytes: lienthong_node::limits::Bucket,
    items_per_minute: u32,
    mib_per_minute: u32,
    events: lienthong_node::limits::EventGate,
    /// Tells when a reload may have changed the limits, so they are read only then.
    reloads: tokio::sync::watch::Receiver<u64>,
}

impl LinkLimit {
    fn new(node: &Node) -> Self {
        let now = Instant::now();
        // Subscribed before reading, so a reload between the two is not missed.
        let reloads = node.reloads.subscribe();
        let limits = &node.limits().node;
        Self {
            reloads,
            items: lienthong_node::limits::Bucket::new(
                u64::from(limits.link_items_per_minute),
                now,
            ),
            bytes: lienthong_node::limits::Bucket::new(
                u64::from(limits.link_mib_per_minute) << 20,
                now,
            ),
            items_per_minute: limits.link_items_per_minute,
            mib_per_minute: limits.link_mib_per_minute,
            events: lienthong_node::limits::EventGate::default(),
        }
    }

    /// Charges a received frame of `items` items; how long to wait before reading on, if the
    /// child is past a limit (then also logged, counted, and an event at most once a minute).
    fn charge(&mut self, s: &Session, items: usize, f: &LinkFrame) -> Option<Duration> {
        let now = Instant::now();
        if self.reloads.has_changed().unwrap_or(false) {
            self.reloads.mark_unchanged();
            let limits = s.node.limits().node;
            // A reload may have changed them: the link goes on at the rates in force.
            self.items
                .set_rate(u64::from(limits.link_items_per_minute), now);
            self.bytes
                .set_rate(u64::from(limits.link_mib_per_minute) << 20, now);
            self.items_per_minute = limits.link_items_per_minute;
            self.mib_per_minute = limits.link_mib_per_minute;
        }
        let by_items = self.items.debit(items as u64, now);
        let by_bytes = if self.bytes.limited() {
            self.bytes.debit(f.encoded_len() as u64, now)
        } else {
            Duration::ZERO
        };
        let wait = by_items.max(by_bytes);
        if wait.is_zero() {
            return None;
        }
        let what = if by_items >= by_bytes {
            format!("more than {} items per minute", self.items_per_minute)
        } else {
            format!("more than {} MiB per minute", self.mib_per_minute)
        };
        s.on_rate_limit(&what, wait, self.events.hit(now));
        Some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longer_heartbeat_wins_and_an_old_peer_changes_nothing() {
        let s = Duration::from_secs;
        assert_eq!(agreed_heartbeat(s(2), 30), s(30));
        assert_eq!(agreed_heartbeat(s(30), 2), s(30));
        assert_eq!(agreed_heartbeat(s(10), 0), s(10));
    }
}
