//! The local HTTP API of a node (docs/api.md, docs/openapi.yaml): how a DMS or staff tool on
//! the embedded default submits documents, reads its inbox, posts statuses and tracks what it
//! sent; plus `/healthz` and `/metrics`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lienthong_common::agency::AgencyCode;
use lienthong_common::envelope::{self, EnvelopeError, STATUS_CODES_TEXT};
use lienthong_common::input;
use lienthong_common::now_unix_ms;
use lienthong_common::store::{Persisted, StoreError};
use lienthong_proto::v1::{
    receipt_frame, AttachmentManifest, Envelope, ReceiptFrame, ReceiptResponseFor, StaffInfo,
    StatusCode as Status, StatusReceipt, SubmitRequest, SubmitResponse, TransportState,
};
use prost::Message;
use rustls_pki_types::UnixTime;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio_stream::StreamExt;
use tracing::{info, warn};

use crate::node::{Node, NodeError};

// The answers' JSON shapes are shared with the HTTP client of the local API.
pub use lienthong_client::types::{InboxItem, InboxRef, RecipientView, TrackView, Uploaded};

/// Largest JSON request body (a submit with inline attachments).
pub const MAX_JSON_BODY: usize = 64 * 1024 * 1024;

/// An API error: HTTP status and a message naming the problem.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    /// True when the request itself is at fault (4xx): retrying it cannot succeed.
    pub fn is_client_error(&self) -> bool {
        self.status.is_client_error()
    }
    /// The message naming the problem.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            warn!(status = %self.status, cause = %self.message, "API request failed");
        } else {
            info!(status = %self.status, cause = %self.message, "API request refused");
        }
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}"))
    }
}

impl From<EnvelopeError> for ApiError {
    fn from(e: EnvelopeError) -> Self {
        Self::bad(e.to_string())
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Refused(r) => Self::bad(r.reason),
            NodeError::Store(s) => s.into(),
            NodeError::Signing(s) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, s),
        }
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// The router for `node`.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            "/v1/attachments",
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/v1/documents",
            post(crate::edxml_api::submit)
                .layer(DefaultBodyLimit::max(lienthong_edxml::MAX_EDXML_BYTES)),
        )
        .route("/v1/documents/{id}", get(crate::edxml_api::document))
        .route(
            "/v1/status",
            post(crate::edxml_api::status)
                .layer(DefaultBodyLimit::max(lienthong_edxml::MAX_EDXML_BYTES)),
        )
        .route("/v1/documents/{id}/attachments/{sha256}", get(attachment))
        .route("/v1/documents/{id}/status", post(post_status))
        .route("/v1/documents/{id}/track", get(track))
        .route("/v1/inbox", get(inbox))
        .route("/v1/audit/verify", get(audit_verify))
        .route("/v1/audit/records", get(audit_records))
        .route("/v1/backup", post(crate::upkeep::api_backup))
        .route("/v1/inbox/{id}/ack", post(ack))
        .route("/v1/registers/{agency}", get(crate::books_api::register))
        .route("/v1/reports/{agency}", get(crate::books_api::report))
        .route("/v1/reports/push", post(crate::books_api::push))
        .route("/v1/track", get(crate::books_api::track))
        .route(
            "/v1/security/report",
            get(crate::books_api::security_report),
        )
        .route(
            "/v1/security/events",
            get(crate::books_api::security_events),
        )
        .route("/v1/security/push", post(crate::books_api::security_push))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .with_state(node)
}

/// 200 while the node runs; 503 (same body, `status: degraded`) while `[amqp]` is configured and
/// the broker is not connected, since the DMS side is then cut off (docs/api.md).
async fn healthz(State(node): State<Arc<Node>>) -> (StatusCode, Json<serde_json::Value>) {
    let amqp = node
        .config
        .amqp
        .as_ref()
        .map(|_| node.amqp_state.snapshot());
    let broker_down = amqp
        .as_ref()
        .is_some_and(|a| a.state != crate::amqp::LinkState::Connected);
    let routes = node.routes();
    let children: Vec<String> = routes
        .announcements()
        .keys()
        .map(|c| c.to_string())
        .collect();
    let link_up = |n: &AgencyCode| {
        node.metrics
            .link_up
            .get_or_create(&crate::metrics::NeighbourLabel {
                neighbour: n.to_string(),
            })
            .get()
            == 1
    };
    let parent = routes
        .parent()
        .map(|p| serde_json::json!({ "agency": p.to_string(), "up": link_up(p) }));
    let linked: Vec<String> = routes
        .announcements()
        .keys()
        .filter(|c| link_up(c))
        .map(|c| c.to_string())
        .collect();
    let code = if broker_down {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = Json(serde_json::json!({
        "status": if broker_down { "degraded" } else { "ok" },
        "agency": node.agency().to_string(),
        "serves": routes.serves().iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        "parent": parent,
        "children": children,
        "children_up": linked,
        "amqp": amqp,
    }));
    (code, body)
}

/// Time window of an audit query (unix ms; both optional).
#[derive(Debug, Deserialize)]
struct Window {
    from: Option<i64>,
    to: Option<i64>,
    kind: Option<String>,
}

async fn audit_verify(State(node): State<Arc<Node>>) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(match lienthong_common::audit::verify(&node.store)? {
        Ok(n) => serde_json::json!({ "ok": true, "records": n }),
        Err(b) => serde_json::json!({ "ok": false, "error": b.to_string() }),
    }))
}

async fn audit_records(
    State(node): State<Arc<Node>>,
    Query(w): Query<Window>,
) -> ApiResult<Json<Vec<lienthong_common::audit::AuditRecord>>> {
    let out = lienthong_common::audit::records(&node.store)?
        .into_iter()
        .filter_map(Result::ok)
        .filter(|r| w.from.is_none_or(|f| r.at_unix_ms >= f))
        .filter(|r| w.to.is_none_or(|t| r.at_unix_ms < t))
        .filter(|r| w.kind.as_deref().is_none_or(|k| r.kind == k))
        .collect();
    Ok(Json(out))
}

async fn metrics(State(node): State<Arc<Node>>) -> impl IntoResponse {
    for n in node.neighbours() {
        let depth = node.store.queue_depth(n.as_str());
        node.metrics
            .queue_depth
            .get_or_create(&crate::metrics::NeighbourLabel {
                neighbour: n.to_string(),
            })
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        node.metrics.encode(),
    )
}

/// Streams a request body into the store as content-addressed chunks. Memory use is one chunk.
async fn upload(State(node): State<Arc<Node>>, body: Body) -> ApiResult<Json<Uploaded>> {
    let dir = node.config.data_dir.join("uploads");
    tokio::fs::create_dir_all(&dir).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}: {e}", dir.display()),
        )
    })?;
    let path = dir.join(uuid::Uuid::new_v4().simple().to_string());
    let result = async {
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut size = 0u64;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ApiError::bad(format!("upload interrupted: {e}")))?;
            size += chunk.len() as u64;
            if size > envelope::MAX_ATTACHMENT_BYTES {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "attachment exceeds {} bytes",
                        envelope::MAX_ATTACHMENT_BYTES
                    ),
                ));
            }
            ctx.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        }
        file.sync_all()
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let sha = ctx.finish().as_ref().to_vec();
        drop(file);
        let store = node.store.clone();
        let p = path.clone();
        let sha2 = sha.clone();
        tokio::task::spawn_blocking(move || store.adopt_file(&p, &sha2))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
        Ok(Uploaded {
            sha256: hex::encode(sha),
            size,
        })
    }
    .await;
    let _ = tokio::fs::remove_file(&path).await;
    let up = result?;
    info!(sha256 = %up.sha256, size = up.size, "attachment uploaded");
    Ok(Json(up))
}

/// Submits a JSON `SubmitRequest`: inline attachment bytes are stored first.
pub(crate) async fn submit_request(
    node: &Arc<Node>,
    req: SubmitRequest,
) -> ApiResult<Json<SubmitResponse>> {
    let mut env = req
        .envelope
        .ok_or_else(|| ApiError::bad("envelope is required"))?;
    for a in req.attachments {
        let mut m = a.manifest.unwrap_or_default();
        if !a.data.is_empty() {
            m.sha256 = node.store.put_attachment(&a.data)?;
            m.size = a.data.len() as u64;
        }
        env.attachments.push(m);
    }
    let span = tracing::info_span!("envelope", id = %env.id, from = %env.from.as_ref().map(|f| f.code.as_str()).unwrap_or_default());
    let (envelope_id, document_id, _persisted) =
        tracing::Instrument::instrument(submit_envelope(node, env), span).await?;
    Ok(Json(SubmitResponse {
        envelope_id,
        document_id,
    }))
}

/// Accepts a document from the local side: fills id and document id, checks it, signs it with
/// the sending agency's key (or, if the DMS signed it itself, verifies that signature), stores
/// and queues it, and returns once it is durable, with the proof.
pub async fn submit_envelope(
    node: &Arc<Node>,
    mut env: Envelope,
) -> ApiResult<(String, String, Persisted)> {
    let from = env.from.get_or_insert_with(Default::default);
    if from.code.is_empty() {
        from.code = node.agency().to_string();
    }
    let sender =
        AgencyCode::parse(&from.code).map_err(|e| ApiError::bad(format!("from.code: {e}")))?;
    let signer = node.signer(&sender).cloned().ok_or_else(|| {
        ApiError::bad(format!(
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
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "id: envelope id {} is already used by another document",
                env.id
            ),
        ));
    }
    envelope::validate_envelope(
        &env,
        envelope::today_in_vietnam(lienthong_common::now_utc()),
    )?;
    for a in &env.attachments {
        if !node.store.has_attachment(&a.sha256, a.size) {
            let held = node.store.attachment_held(&a.sha256)?;
            return Err(ApiError::bad(format!(
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
            .map_err(|e| ApiError::bad(format!("signature: {e}")))?
    } else {
        signer
            .sign_envelope(&mut env, now_unix_ms())
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        node.verifier
            .verify_envelope(env, UnixTime::now())
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("own signature does not verify: {e}"),
                )
            })?
    };
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
    node.record_local_event(&copy, &recips, TransportState::TransportQueued, None)?;
    let (number, _) = crate::register::register(
        &node.store,
        crate::register::Direction::Out,
        &sender,
        &copy,
        now_unix_ms(),
    )?;
    let persisted = node.store.commit().await?;
    node.metrics.submitted.inc();
    info!(envelope = %id, document = %doc, recipients = recips.len(), outgoing_number = number, "document accepted from local side");
    Ok((id, doc, persisted))
}

fn join(codes: &[AgencyCode]) -> String {
    codes
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs store scans and other blocking work of a request off the async runtime; `what` names
/// it in the error if the task itself fails.
pub(crate) async fn blocking<T, E>(
    what: &str,
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> ApiResult<T>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(Into::into),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{what} task: {e}"),
        )),
    }
}

/// The envelope held under `id`, or 404.
pub(crate) fn document_of(node: &Node, id: &str) -> ApiResult<Envelope> {
    node.store.envelope(id)?.ok_or_else(|| {
        ApiError::not_found(format!("no document with envelope id {id} on this node"))
    })
}

async fn attachment(
    State(node): State<Arc<Node>>,
    Path((id, sha)): Path<(String, String)>,
) -> ApiResult<Response> {
    let env = node
        .store
        .envelope(&id)?
        .ok_or_else(|| ApiError::not_found(format!("no document {id}")))?;
    let sha_bytes = hex::decode(&sha).map_err(|_| ApiError::bad("sha256 must be hex"))?;
    let m: AttachmentManifest = env
        .attachments
        .iter()
        .find(|a| a.sha256 == sha_bytes)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("document {id} has no attachment {sha}")))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let store = node.store.clone();
    tokio::task::spawn_blocking(move || {
        let res = store.for_each_chunk(&sha_bytes, 0, |_, d| {
            tx.blocking_send(Ok(d.to_vec())).is_ok()
        });
        if let Err(e) = res {
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                if m.content_type.is_empty() {
                    "application/octet-stream".to_owned()
                } else {
                    m.content_type.clone()
                },
            ),
            (header::CONTENT_LENGTH, m.size.to_string()),
        ],
        body,
    )
        .into_response())
}

/// Which agency's inbox.
#[derive(Debug, Deserialize)]
struct AgencyQuery {
    agency: Option<String>,
}

fn agency_param(node: &Node, q: Option<&str>) -> ApiResult<AgencyCode> {
    let a = match q {
        None | Some("") => node.agency().clone(),
        Some(s) => AgencyCode::parse(s).map_err(|e| ApiError::bad(format!("agency: {e}")))?,
    };
    if node.signer(&a).is_none() {
        return Err(ApiError::bad(format!(
            "agency: {a} is not served on this node (it serves {})",
            join(&node.local_agencies())
        )));
    }
    Ok(a)
}

/// An inbox page: whole entries, or references only.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum InboxPage {
    Items(Vec<InboxItem>),
    Refs(Vec<InboxRef>),
}

/// Inbox entries listed when the request names no `limit`.
pub const INBOX_DEFAULT_LIMIT: usize = 1000;
/// Most inbox entries one request may list.
pub const INBOX_MAX_LIMIT: usize = 5000;

#[derive(Debug, Deserialize)]
struct InboxQuery {
    agency: Option<String>,
    #[serde(default)]
    all: bool,
    limit: Option<usize>,
    after: Option<u64>,
    bodies: Option<bool>,
}

/// `GET /v1/inbox`: one page of an agency's inbox in arrival order, entries after `after`.
async fn inbox(
    State(node): State<Arc<Node>>,
    Query(q): Query<InboxQuery>,
) -> ApiResult<Json<InboxPage>> {
    let agency = agency_param(&node, q.agency.as_deref())?;
    let limit = q.limit.unwrap_or(INBOX_DEFAULT_LIMIT);
    if limit == 0 || limit > INBOX_MAX_LIMIT {
        return Err(ApiError::bad(format!(
            "limit: {limit} entries is not allowed; ask for 1 to {INBOX_MAX_LIMIT} entries"
        )));
    }
    let bodies = q.bodies.unwrap_or(true);
    blocking("inbox", move || {
        let mut items = Vec::new();
        let mut refs = Vec::new();
        for e in node.store.inbox(agency.as_str())? {
            if q.after.is_some_and(|a| e.seq <= a) || (e.acknowledged && !q.all) {
                continue;
            }
            if bodies {
                let Some(envelope) = node.store.envelope(&e.envelope_id)? else {
                    continue;
                };
                items.push(InboxItem {
                    seq: e.seq,
                    acknowledged: e.acknowledged,
                    envelope_id: e.envelope_id,
                    envelope,
                });
            } else {
                refs.push(InboxRef {
                    seq: e.seq,
                    acknowledged: e.acknowledged,
                    envelope_id: e.envelope_id,
                });
            }
            if items.len() + refs.len() >= limit {
                break;
            }
        }
        let out = if bodies {
            InboxPage::Items(items)
        } else {
            InboxPage::Refs(refs)
        };
        Ok::<_, ApiError>(Json(out))
    })
    .await
}

async fn ack(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    Query(q): Query<AgencyQuery>,
) -> ApiResult<StatusCode> {
    let agency = agency_param(&node, q.agency.as_deref())?;
    if !node.store.acknowledge(agency.as_str(), &id)? {
        return Err(ApiError::not_found(format!(
            "{id} is not in the inbox of {agency}"
        )));
    }
    let _persisted = node.store.commit().await?;
    Ok(StatusCode::NO_CONTENT)
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

/// The `Idempotency-Key` header, if the request has one.
pub(crate) fn idempotency_key(headers: &axum::http::HeaderMap) -> ApiResult<Option<String>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim().to_owned()))
            .map_err(|_| ApiError::bad("Idempotency-Key: not visible ASCII")),
    }
}

async fn post_status(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    Json(mut p): Json<StatusPost>,
) -> ApiResult<Json<serde_json::Value>> {
    if let Some(key) = idempotency_key(&headers)? {
        match &p.id {
            Some(given) if !given.is_empty() && *given != key => {
                return Err(ApiError::bad(format!(
                    "id: the body's id {given} and the Idempotency-Key {key} differ"
                )))
            }
            _ => p.id = Some(key),
        }
    }
    let (ids, _persisted) = post_status_checked(&node, &id, &p).await?;
    Ok(Json(serde_json::json!({ "receipt_ids": ids })))
}

/// Checks a status a local DMS or clerk reports about document `id`, signs and routes it, and
/// returns once it is durable, with the receipt ids and the proof.
pub async fn post_status_checked(
    node: &Arc<Node>,
    id: &str,
    p: &StatusPost,
) -> ApiResult<(Vec<String>, Persisted)> {
    let id = id.to_owned();
    let status = match Status::try_from(p.status) {
        Ok(Status::StatusUnspecified | Status::StatusArrived) | Err(_) => {
            return Err(ApiError::bad(format!(
                "status: {} is not a status that can be posted; valid: {POSTABLE_STATUSES} (of {STATUS_CODES_TEXT}; 01 is sent automatically on arrival)",
                p.status
            )))
        }
        Ok(s) => s,
    };
    let env = node.store.envelope(&id)?.ok_or_else(|| {
        ApiError::not_found(format!("no document with envelope id {id} on this node"))
    })?;
    let claim = match p.id.as_deref().filter(|i| !i.is_empty()) {
        Some(given) => {
            input::identifier("id", given).map_err(|e| ApiError::bad(e.to_string()))?;
            let name = format!("status-id/{id}/{given}");
            let digest = status_digest(p);
            if let Some(prev) = node.store.get_meta(&name)? {
                let (d, ids) = prev.split_at(prev.len().min(digest.len()));
                if d != digest.as_slice() {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        format!("id: status id {given} was already used for a different status about {id}"),
                    ));
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
        let agency = agency_param(node, Some(p.agency.as_deref().unwrap_or(&sender)))?;
        if agency.as_str() != sender {
            return Err(ApiError::bad(format!(
                "status 13 (recall) is sent by the document's sender {sender}, not {agency}"
            )));
        }
        for to in &env.to {
            let r = receipt(&env, &agency, &to.code, &to.code, status, p);
            ids.push(r.id.clone());
            node.post_receipt(r)?;
        }
    } else {
        let agency = match p.agency.as_deref() {
            Some(a) => agency_param(node, Some(a))?,
            None => env
                .to
                .iter()
                .filter_map(|t| AgencyCode::parse(&t.code).ok())
                .find(|c| node.signer(c).is_some())
                .ok_or_else(|| {
                    ApiError::bad(format!(
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
            return Err(ApiError::bad(format!(
                "agency: {id} is not in the inbox of {agency}"
            )));
        }
        // The recipient has the document: its 01 goes first (a no-op if already sent), so the
        // sender never sees a later status before the arrival.
        node.confirm_delivered(&env, &agency)?;
        let r = receipt(&env, &agency, &sender, agency.as_str(), status, p);
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
        response_for: Some(ReceiptResponseFor {
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
        }),
        staff: p.staff.clone(),
        edxml: p.edxml.clone(),
        status: status as i32,
        description: p.description.clone(),
        timestamp_unix_ms: now_unix_ms(),
        signature: None,
        to: to.to_owned(),
        recipient: recipient.to_owned(),
    }
}

/// Builds the track view of a document from this node's store.
pub fn track_view(store: &lienthong_common::store::Store, id: &str) -> ApiResult<TrackView> {
    let env = store.envelope(id)?.ok_or_else(|| {
        ApiError::not_found(format!("no document with envelope id {id} on this node"))
    })?;
    let mut statuses: Vec<StatusReceipt> = Vec::new();
    let mut events = Vec::new();
    for bytes in store.receipts_for(id)? {
        match ReceiptFrame::decode(bytes.as_slice())
            .ok()
            .and_then(|f| f.item)
        {
            Some(receipt_frame::Item::Status(s)) => statuses.push(s),
            Some(receipt_frame::Item::Transport(t)) => events.push(t),
            Some(receipt_frame::Item::Summary(_) | receipt_frame::Item::Attestation(_)) | None => {}
        }
    }
    let today = envelope::format_date(envelope::today_in_vietnam(lienthong_common::now_utc()));
    let recipients = env
        .to
        .iter()
        .map(|to| {
            let mut mine: Vec<&StatusReceipt> = statuses
                .iter()
                .filter(|s| {
                    s.recipient == to.code && s.status != Status::StatusRecallRequested as i32
                })
                .collect();
            mine.sort_by_key(|s| s.timestamp_unix_ms);
            let latest = mine.last();
            let status = latest.map(|s| s.status).unwrap_or(0);
            let trace = events
                .iter()
                .find(|e| {
                    e.recipient == to.code && e.state == TransportState::TransportDelivered as i32
                })
                .map(|e| e.trace.clone())
                .unwrap_or_default();
            RecipientView {
                recipient: to.code.clone(),
                status,
                status_at: latest.map(|s| s.timestamp_unix_ms).unwrap_or(0),
                description: latest.map(|s| s.description.clone()).unwrap_or_default(),
                history: mine
                    .iter()
                    .map(|s| (s.status, s.timestamp_unix_ms))
                    .collect(),
                overdue: !env.due_date.is_empty()
                    && env.due_date < today
                    && status != Status::StatusDone as i32
                    && !crate::register::closes_without_done(status),
                trace,
            }
        })
        .collect();
    Ok(TrackView {
        envelope_id: env.id.clone(),
        document_id: env.document_id.clone(),
        subject: env.subject.clone(),
        from: env
            .from
            .as_ref()
            .map(|f| f.code.clone())
            .unwrap_or_default(),
        due_date: env.due_date.clone(),
        recipients,
        events,
        statuses,
    })
}

async fn track(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> ApiResult<Json<TrackView>> {
    Ok(Json(track_view(&node.store, &id)?))
}
