//! RabbitMQ as the DMS integration point (docs/integration.md).
//!
//! Per agency served by the node, five durable queues:
//! - `lienthong.<agency>.outbox`: DMS → relay, new documents (`SubmitRequest`);
//! - `lienthong.<agency>.status`: DMS → relay, status updates (`StatusReceipt`);
//! - `lienthong.<agency>.inbox`: relay → DMS, received documents (`SubmitRequest`);
//! - `lienthong.<agency>.receipts`: relay → DMS, receipts and transport events (`ReceiptFrame`);
//! - `lienthong.<agency>.dead`: messages refused from outbox/status, reason in the
//!   `x-lienthong-error` header, and messages the broker handed out too often
//!   ([`DELIVERY_LIMIT`]).
//!
//! Intake acks a message only with the store's [`Persisted`] proof in hand; delivery counts a
//! document as delivered (and sends 01) only after the broker confirmed the publish.
//!
//! Submodules: [`broker`] connects (TLS trust for `amqps://`) and keeps the connection state
//! `/healthz` reports; [`queues`] names and declares the queues.

pub mod broker;
pub mod queues;

pub use crate::broker_state::{BrokerHealth, BrokerState, LinkState};
pub use queues::{queue_arguments, queue_name, DELIVERY_LIMIT};

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use lienthong_common::agency::AgencyCode;
use lienthong_common::config::AmqpConfig;
use lienthong_common::store::{Persisted, QueueItem};
use lienthong_edxml as edxml;
use lienthong_proto::v1::{
    receipt_frame, AttachmentManifest, ReceiptFrame, StatusReceipt, SubmitAttachment,
    SubmitRequest, TransportEvent, TransportState,
};
use prost::Message;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::intake::StatusPost;
use crate::node::{amqp_queue, Node};
use crate::security_events::EventClass;

/// Largest message accepted from a DMS queue (checked before decoding).
pub const MAX_AMQP_MESSAGE_BYTES: usize = 8 * 1024 * 1024;
/// Attachments up to this total size travel inside the inbox message; larger ones are left for
/// the DMS to fetch from the local HTTP API (the manifest is always in the message).
pub const INLINE_ATTACHMENT_BYTES: u64 = 4 * 1024 * 1024;
/// Content type of protobuf messages.
pub const CONTENT_PROTOBUF: &str = "application/x-protobuf";
/// Content type of JSON messages.
pub const CONTENT_JSON: &str = "application/json";

/// First pause of intake while the store cannot take a message; doubles up to
/// [`STORE_RETRY_MAX`].
const STORE_RETRY_FIRST: Duration = Duration::from_secs(2);
/// Longest pause between two attempts to store a held message.
const STORE_RETRY_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
enum AmqpError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error(transparent)]
    Connect(#[from] broker::ConnectError),
    #[error(transparent)]
    Declare(#[from] queues::DeclareError),
    #[error("store: {0}")]
    Store(String),
    #[error("broker refused to confirm a publish to {0}")]
    Nacked(String),
}

/// Runs the integration until `shutdown`, reconnecting with backoff when the broker goes away.
pub async fn run(node: Arc<Node>, cfg: AmqpConfig, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(250);
    loop {
        let started = std::time::Instant::now();
        match session(&node, &cfg, &shutdown).await {
            Ok(()) => return,
            Err(e) => {
                warn!(cause = %e, "AMQP connection lost; reconnecting");
                node.amqp_state.lost(&e.to_string());
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_millis(250);
        }
        let wait = backoff.mul_f64(0.75 + fastrand::f64() * 0.5);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn session(
    node: &Arc<Node>,
    cfg: &AmqpConfig,
    shutdown: &CancellationToken,
) -> Result<(), AmqpError> {
    let conn = broker::connect(&cfg.url, cfg.ca.as_deref()).await?;
    let agencies = node.local_agencies();
    let legacy = queues::declare_all(&conn, &agencies, cfg.quorum).await?;
    let publisher = conn.create_channel().await?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    info!(
        agencies = agencies.len(),
        without_dead_letter_arguments = legacy.len(),
        "AMQP connected; queues declared"
    );
    let stop = shutdown.child_token();
    let mut tasks = tokio::task::JoinSet::new();
    for a in &agencies {
        for kind in [Kind::Outbox, Kind::Status] {
            let ch = conn.create_channel().await?;
            ch.basic_qos(cfg.prefetch, BasicQosOptions::default())
                .await?;
            let dead = conn.create_channel().await?;
            dead.confirm_select(ConfirmSelectOptions::default()).await?;
            tasks.spawn(consume(
                node.clone(),
                cfg.clone(),
                a.clone(),
                kind,
                ch,
                dead,
                stop.clone(),
            ));
        }
    }
    tasks.spawn(publish_loop(
        node.clone(),
        cfg.clone(),
        agencies,
        publisher,
        stop.clone(),
    ));
    node.amqp_state.connected();
    let res = tokio::select! {
        _ = shutdown.cancelled() => Ok(()),
        r = tasks.join_next() => match r {
            Some(Ok(Err(e))) => Err(e),
            _ => Err(AmqpError::Store("an AMQP task ended".into())),
        },
    };
    stop.cancel();
    tasks.shutdown().await;
    let _ = conn.close(200, "closing".into()).await;
    res
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Outbox,
    Status,
}

impl Kind {
    fn queue(self) -> &'static str {
        match self {
            Kind::Outbox => "outbox",
            Kind::Status => "status",
        }
    }
}

/// Why an intake message was refused: goes to the dead-letter queue and, with the ids of the
/// document it was about when the message had them, to the receipts queue.
#[derive(Debug)]
struct Refused {
    reason: String,
    /// The envelope id the message carried (outbox) or named (status); empty if none.
    envelope_id: String,
    /// The document id it carried or named; empty if none.
    document_id: String,
}

impl Refused {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            envelope_id: String::new(),
            document_id: String::new(),
        }
    }

    fn about(mut self, envelope_id: &str, document_id: &str) -> Self {
        envelope_id.clone_into(&mut self.envelope_id);
        document_id.clone_into(&mut self.document_id);
        self
    }
}

/// Acknowledges a delivery. Takes the store's proof, so acking before the write is durable
/// cannot be written.
async fn ack(d: &lapin::message::Delivery, _proof: Persisted) -> Result<(), lapin::Error> {
    d.ack(BasicAckOptions::default()).await.map(|_| ())
}

fn is_edxml(d: &lapin::message::Delivery) -> bool {
    d.properties
        .content_type()
        .as_ref()
        .is_some_and(|c| c.as_str().starts_with(edxml::EDXML_CONTENT_TYPE))
}

/// An edXML package from an intake queue, size-checked and imported.
fn import_edxml(d: &lapin::message::Delivery) -> Result<edxml::Imported, Refused> {
    if d.data.len() > MAX_AMQP_MESSAGE_BYTES {
        return Err(Refused::new(format!(
            "message is {} bytes; the limit is {MAX_AMQP_MESSAGE_BYTES} (post large edXML packages to the local HTTP API instead)",
            d.data.len()
        )));
    }
    edxml::import(&d.data).map_err(|e| Refused::new(format!("edXML: {e}")))
}

/// Whether `agency`'s DMS takes documents and statuses as edXML.
fn wants_edxml(node: &Node, cfg: &AmqpConfig, agency: &AgencyCode) -> bool {
    cfg.edxml
        || node
            .config
            .local
            .iter()
            .any(|l| &l.agency == agency && l.edxml)
}

fn is_json(d: &lapin::message::Delivery) -> bool {
    d.properties
        .content_type()
        .as_ref()
        .is_some_and(|c| c.as_str().starts_with(CONTENT_JSON))
}

fn decode<T: Message + Default + serde::de::DeserializeOwned>(
    d: &lapin::message::Delivery,
) -> Result<T, Refused> {
    if d.data.len() > MAX_AMQP_MESSAGE_BYTES {
        return Err(Refused::new(format!(
            "message is {} bytes; the limit is {MAX_AMQP_MESSAGE_BYTES} (upload large attachments to the local HTTP API and reference them)",
            d.data.len()
        )));
    }
    if is_json(d) {
        serde_json::from_slice(&d.data).map_err(|e| Refused::new(format!("malformed JSON: {e}")))
    } else {
        T::decode(d.data.as_slice()).map_err(|e| Refused::new(format!("malformed protobuf: {e}")))
    }
}

async fn consume(
    node: Arc<Node>,
    cfg: AmqpConfig,
    agency: AgencyCode,
    kind: Kind,
    ch: Channel,
    dead: Channel,
    stop: CancellationToken,
) -> Result<(), AmqpError> {
    let queue = queue_name(&agency, kind.queue());
    let mut consumer = ch
        .basic_consume(
            queue.as_str().into(),
            format!("lt-{}", kind.queue()).into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    // Documents are independent: up to `prefetch` are taken in at once, so their store
    // flushes are grouped. Statuses stay one at a time: the order of a document's statuses
    // (03 before 04) is the order the DMS published them.
    let parallel = match kind {
        Kind::Outbox => usize::from(cfg.prefetch).max(1),
        Kind::Status => 1,
    };
    let mut tasks: tokio::task::JoinSet<Result<(), AmqpError>> = tokio::task::JoinSet::new();
    let result = loop {
        let mut failed = None;
        while let Some(done) = tasks.try_join_next() {
            if let Err(e) = flatten(done) {
                failed = Some(e);
                break;
            }
        }
        if let Some(e) = failed {
            break Err(e);
        }
        if tasks.len() >= parallel {
            if let Some(done) = tasks.join_next().await {
                if let Err(e) = flatten(done) {
                    break Err(e);
                }
            }
            continue;
        }
        let next = tokio::select! {
            _ = stop.cancelled() => break Ok(()),
            n = consumer.next() => n,
        };
        let Some(delivery) = next else {
            break Err(AmqpError::Store(format!("consumer of {queue} ended")));
        };
        let d = match delivery {
            Ok(d) => d,
            Err(e) => break Err(e.into()),
        };
        tasks.spawn(handle(
            node.clone(),
            cfg.clone(),
            agency.clone(),
            kind,
            ch.clone(),
            dead.clone(),
            stop.clone(),
            d,
        ));
    };
    // Messages being taken in finish (or are held and given back with the channel): none is
    // cut off between its store write and its acknowledgement.
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = flatten(done) {
            warn!(queue = %queue, cause = %e, "intake task failed while stopping");
        }
    }
    result
}

fn flatten(r: Result<Result<(), AmqpError>, tokio::task::JoinError>) -> Result<(), AmqpError> {
    match r {
        Ok(r) => r,
        Err(e) => Err(AmqpError::Store(format!("intake task: {e}"))),
    }
}

/// Takes in one message: stored and acknowledged, or refused into the dead-letter queue.
#[allow(clippy::too_many_arguments)]
async fn handle(
    node: Arc<Node>,
    cfg: AmqpConfig,
    agency: AgencyCode,
    kind: Kind,
    ch: Channel,
    dead: Channel,
    stop: CancellationToken,
    d: lapin::message::Delivery,
) -> Result<(), AmqpError> {
    let queue = queue_name(&agency, kind.queue());
    // A store failure is not the message's fault: hold the message (unacknowledged, so the
    // broker neither counts a redelivery nor hands it to anyone else) and try it again until
    // the store takes it.
    let mut pause = STORE_RETRY_FIRST;
    loop {
        let outcome = match kind {
            Kind::Outbox => intake_document(&node, &agency, &d).await,
            Kind::Status => intake_status(&node, &agency, &d).await,
        };
        match outcome {
            Ok(Ok(proof)) => ack(&d, proof).await?,
            Ok(Err(refused)) => {
                warn!(
                    queue = %queue,
                    envelope_id = %refused.envelope_id,
                    cause = %refused.reason,
                    "message refused; dead-lettered"
                );
                node.security_event(
                    EventClass::AmqpInvalid,
                    &queue,
                    agency.as_str(),
                    &refused.reason,
                );
                dead_letter(&dead, &agency, &queue, &d, &refused.reason).await?;
                error_event(&dead, &cfg, &agency, &refused, node.clock.now_unix_ms()).await?;
                d.ack(BasicAckOptions::default()).await?;
            }
            Err(store_problem) => {
                error!(
                    queue = %queue,
                    cause = %store_problem,
                    retry_in_ms = pause.as_millis() as u64,
                    "store unavailable; message held, intake paused"
                );
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(STORE_RETRY_MAX);
                if !ch.status().connected() {
                    // The broker took the message back (connection lost, consumer timeout):
                    // it comes again on the next connection.
                    return Err(AmqpError::Store(format!(
                        "channel of {queue} closed while a message was held: {store_problem}"
                    )));
                }
                continue;
            }
        }
        return Ok(());
    }
}

async fn intake_document(
    node: &Arc<Node>,
    agency: &AgencyCode,
    d: &lapin::message::Delivery,
) -> Result<Result<Persisted, Refused>, String> {
    let req: SubmitRequest =
        if is_edxml(d) {
            match import_edxml(d) {
                Ok(edxml::Imported::Document(doc)) => {
                    let (mut envelope, attachments) = doc.into_parts();
                    envelope.attachments.clear();
                    SubmitRequest {
                        envelope: Some(envelope),
                        attachments: attachments
                            .into_iter()
                            .map(|(m, data)| SubmitAttachment {
                                manifest: Some(m),
                                data,
                            })
                            .collect(),
                    }
                }
                Ok(edxml::Imported::Status(_)) => return Ok(Err(Refused::new(
                    "edXML: a status package on the outbox queue; publish it on the status queue",
                ))),
                Err(r) => return Ok(Err(r)),
            }
        } else {
            match decode(d) {
                Ok(r) => r,
                Err(r) => return Ok(Err(r)),
            }
        };
    let Some(mut env) = req.envelope else {
        return Ok(Err(Refused::new("envelope is required")));
    };
    let (envelope_id, document_id) = (env.id.clone(), env.document_id.clone());
    let refused = |reason: String| Ok(Err(Refused::new(reason).about(&envelope_id, &document_id)));
    match env.from.as_ref().map(|f| f.code.as_str()) {
        None | Some("") => {
            env.from.get_or_insert_with(Default::default).code = agency.to_string();
        }
        Some(c) if c == agency.as_str() => {}
        Some(c) => {
            return refused(format!(
                "from.code: {c} may not publish on the queue of {agency}"
            ))
        }
    }
    for a in req.attachments {
        let mut m = a.manifest.unwrap_or_default();
        if !a.data.is_empty() {
            m.sha256 = node
                .store
                .put_attachment(&a.data)
                .map_err(|e| e.to_string())?;
            m.size = a.data.len() as u64;
        }
        env.attachments.push(m);
    }
    match crate::intake::submit_envelope(node, env).await {
        Ok((_, _, proof)) => Ok(Ok(proof)),
        Err(e) if e.is_refusal() => refused(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

async fn intake_status(
    node: &Arc<Node>,
    agency: &AgencyCode,
    d: &lapin::message::Delivery,
) -> Result<Result<Persisted, Refused>, String> {
    let r: StatusReceipt =
        if is_edxml(d) {
            match import_edxml(d) {
                Ok(edxml::Imported::Status(st)) => {
                    let mut r = st.into_receipt();
                    // edXML has no envelope id: find the document by its id in the agency's books.
                    let rf = r.response_for.get_or_insert_with(Default::default);
                    if rf.envelope_id.is_empty() && !rf.document_id.is_empty() {
                        let found = crate::register::find_envelope(
                            &node.store,
                            std::slice::from_ref(agency),
                            &rf.document_id,
                        )
                        .map_err(|e| e.to_string())?;
                        rf.envelope_id = found.unwrap_or_default();
                    }
                    r
                }
                Ok(edxml::Imported::Document(_)) => return Ok(Err(Refused::new(
                    "edXML: a document package on the status queue; publish it on the outbox queue",
                ))),
                Err(r) => return Ok(Err(r)),
            }
        } else {
            match decode(d) {
                Ok(r) => r,
                Err(r) => return Ok(Err(r)),
            }
        };
    let document_id = r
        .response_for
        .as_ref()
        .map(|f| f.document_id.clone())
        .unwrap_or_default();
    let Some(envelope_id) = r
        .response_for
        .as_ref()
        .map(|f| f.envelope_id.clone())
        .filter(|s| !s.is_empty())
    else {
        return Ok(Err(
            Refused::new("response_for.envelope_id is required").about("", &document_id)
        ));
    };
    let refused = |reason: String| Ok(Err(Refused::new(reason).about(&envelope_id, &document_id)));
    let reporter = r
        .from
        .as_ref()
        .map(|f| f.code.clone())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| agency.to_string());
    if reporter != agency.as_str() {
        return refused(format!(
            "from.code: {reporter} may not publish on the status queue of {agency}"
        ));
    }
    let post = StatusPost {
        agency: Some(reporter),
        status: r.status,
        description: r.description,
        staff: r.staff,
        // The message's own id; an edXML status package has none in its body, so its AMQP
        // message id, or failing that a digest of the package, makes a redelivery harmless.
        id: Some(r.id).filter(|i| !i.is_empty()).or_else(|| {
            d.properties
                .message_id()
                .as_ref()
                .map(|m| m.as_str().to_owned())
                .filter(|m| lienthong_common::input::identifier("id", m).is_ok())
                .or_else(|| {
                    Some(hex::encode(
                        &ring::digest::digest(&ring::digest::SHA256, &d.data).as_ref()[..16],
                    ))
                })
        }),
        edxml: r.edxml,
    };
    match crate::intake::post_status_checked(node, &envelope_id, &post).await {
        Ok((_, proof)) => Ok(Ok(proof)),
        Err(e) if e.is_refusal() => refused(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

async fn publish_confirmed(
    ch: &Channel,
    queue: &str,
    body: &[u8],
    props: BasicProperties,
) -> Result<(), AmqpError> {
    // Mandatory: a publish to a queue that no longer exists comes back instead of being
    // confirmed and dropped, so nothing counts as delivered that the broker did not store.
    let confirm = ch
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            props.with_delivery_mode(2),
        )
        .await?
        .await?;
    match confirm {
        lapin::Confirmation::Ack(None) => Ok(()),
        lapin::Confirmation::Ack(Some(_)) => Err(AmqpError::Nacked(format!(
            "{queue} (no such queue: the message was returned)"
        ))),
        _ => Err(AmqpError::Nacked(queue.to_owned())),
    }
}

async fn dead_letter(
    ch: &Channel,
    agency: &AgencyCode,
    from_queue: &str,
    d: &lapin::message::Delivery,
    reason: &str,
) -> Result<(), AmqpError> {
    let mut headers = FieldTable::default();
    headers.insert(
        "x-lienthong-error".into(),
        AMQPValue::LongString(reason.into()),
    );
    headers.insert(
        "x-lienthong-queue".into(),
        AMQPValue::LongString(from_queue.into()),
    );
    let mut props = BasicProperties::default().with_headers(headers);
    if let Some(ct) = d.properties.content_type() {
        props = props.with_content_type(ct.clone());
    }
    publish_confirmed(ch, &queue_name(agency, "dead"), &d.data, props).await
}

fn encode_request(cfg: &AmqpConfig, msg: &SubmitRequest) -> (Vec<u8>, &'static str) {
    if cfg.json {
        (serde_json::to_vec(msg).unwrap_or_default(), CONTENT_JSON)
    } else {
        (msg.encode_to_vec(), CONTENT_PROTOBUF)
    }
}

fn encode_frame(cfg: &AmqpConfig, frame: &ReceiptFrame) -> (Vec<u8>, &'static str) {
    if cfg.json {
        (serde_json::to_vec(frame).unwrap_or_default(), CONTENT_JSON)
    } else {
        (frame.encode_to_vec(), CONTENT_PROTOBUF)
    }
}

async fn error_event(
    ch: &Channel,
    cfg: &AmqpConfig,
    agency: &AgencyCode,
    refused: &Refused,
    at_unix_ms: i64,
) -> Result<(), AmqpError> {
    let ev = TransportEvent {
        id: uuid::Uuid::new_v4().simple().to_string(),
        envelope_id: refused.envelope_id.clone(),
        document_id: refused.document_id.clone(),
        origin: agency.to_string(),
        state: TransportState::TransportFailed as i32,
        node: agency.to_string(),
        reason: refused.reason.clone(),
        at_unix_ms,
        ..Default::default()
    };
    let frame = ReceiptFrame {
        item: Some(receipt_frame::Item::Transport(ev)),
    };
    let (body, ct) = encode_frame(cfg, &frame);
    let props = BasicProperties::default()
        .with_content_type(ct.into())
        .with_type("error".into());
    publish_confirmed(ch, &queue_name(agency, "receipts"), &body, props).await
}

async fn publish_loop(
    node: Arc<Node>,
    cfg: AmqpConfig,
    agencies: Vec<AgencyCode>,
    ch: Channel,
    stop: CancellationToken,
) -> Result<(), AmqpError> {
    loop {
        let mut sent = 0usize;
        for agency in &agencies {
            let entries = node
                .store
                .outbound(&amqp_queue(agency), 64)
                .map_err(|e| AmqpError::Store(e.to_string()))?;
            for e in entries {
                match &e.item {
                    QueueItem::Envelope { id, .. } => {
                        let Some(env) = node
                            .store
                            .envelope(id)
                            .map_err(|e| AmqpError::Store(e.to_string()))?
                        else {
                            node.drop_queued(
                                &amqp_queue(agency),
                                &e,
                                "the queued envelope is missing from the store",
                            );
                            continue;
                        };
                        let total: u64 = env.attachments.iter().map(|a| a.size).sum();
                        let mut attachments = Vec::new();
                        if total <= INLINE_ATTACHMENT_BYTES {
                            for a in &env.attachments {
                                let mut data =
                                    Vec::with_capacity(usize::try_from(a.size).unwrap_or(0));
                                node.store
                                    .for_each_chunk(&a.sha256, 0, |_, d| {
                                        data.extend_from_slice(d);
                                        true
                                    })
                                    .map_err(|e| AmqpError::Store(e.to_string()))?;
                                attachments.push(SubmitAttachment {
                                    manifest: Some(a.clone()),
                                    data,
                                });
                            }
                        }
                        let edxml_out = wants_edxml(&node, &cfg, agency);
                        let (body, ct) = if edxml_out {
                            // Attachments inline when small enough; otherwise the package lists
                            // none and the DMS downloads them over HTTP (docs/integration.md).
                            let inline: Vec<(AttachmentManifest, Vec<u8>)> = attachments
                                .into_iter()
                                .filter_map(|a| a.manifest.map(|m| (m, a.data)))
                                .collect();
                            (
                                edxml::export_document(&env, &inline).into_bytes(),
                                edxml::EDXML_CONTENT_TYPE,
                            )
                        } else {
                            let msg = SubmitRequest {
                                envelope: Some(env.clone()),
                                attachments,
                            };
                            encode_request(&cfg, &msg)
                        };
                        let mut props = BasicProperties::default()
                            .with_content_type(ct.into())
                            .with_message_id(id.as_str().into())
                            .with_type("document".into());
                        if edxml_out && total > INLINE_ATTACHMENT_BYTES {
                            // Not inline: name them, for the download over the local API.
                            let mut h = FieldTable::default();
                            let list: Vec<String> = env
                                .attachments
                                .iter()
                                .map(|a| {
                                    format!("{} {} {}", hex::encode(&a.sha256), a.size, a.name)
                                })
                                .collect();
                            h.insert(
                                "x-lienthong-attachments".into(),
                                AMQPValue::LongString(list.join("\n").into()),
                            );
                            props = props.with_headers(h);
                        }
                        publish_confirmed(&ch, &queue_name(agency, "inbox"), &body, props).await?;
                        node.store
                            .dequeue(&e.key)
                            .map_err(|e| AmqpError::Store(e.to_string()))?;
                        node.confirm_delivered(&env, agency)
                            .map_err(|e| AmqpError::Store(e.to_string()))?;
                    }
                    QueueItem::Receipt { id } => {
                        let Some(bytes) = node
                            .store
                            .receipt(id)
                            .map_err(|e| AmqpError::Store(e.to_string()))?
                        else {
                            node.drop_queued(
                                &amqp_queue(agency),
                                &e,
                                "the queued receipt is missing from the store",
                            );
                            continue;
                        };
                        let frame = ReceiptFrame::decode(bytes.as_slice())
                            .map_err(|e| AmqpError::Store(e.to_string()))?;
                        let kind = match &frame.item {
                            Some(receipt_frame::Item::Status(_)) => "status",
                            _ => "transport",
                        };
                        let (body, ct) = match &frame.item {
                            Some(receipt_frame::Item::Status(st))
                                if wants_edxml(&node, &cfg, agency) =>
                            {
                                (
                                    edxml::export_status(st).into_bytes(),
                                    edxml::EDXML_CONTENT_TYPE,
                                )
                            }
                            _ => encode_frame(&cfg, &frame),
                        };
                        let props = BasicProperties::default()
                            .with_content_type(ct.into())
                            .with_message_id(id.as_str().into())
                            .with_type(kind.into());
                        publish_confirmed(&ch, &queue_name(agency, "receipts"), &body, props)
                            .await?;
                        node.store
                            .dequeue(&e.key)
                            .map_err(|e| AmqpError::Store(e.to_string()))?;
                    }
                }
                sent += 1;
            }
        }
        if sent > 0 {
            let _persisted = node
                .store
                .commit()
                .await
                .map_err(|e| AmqpError::Store(e.to_string()))?;
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = node.amqp_wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}
