//! The local HTTP API of a node (docs/api.md, docs/openapi.yaml): how a DMS or staff tool on
//! the embedded default submits documents, reads its inbox, posts statuses and tracks what it
//! sent; plus `/healthz` and `/metrics`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lienthong_common::agency::AgencyCode;
use lienthong_common::envelope;
use lienthong_proto::v1::{
    receipt_frame, AttachmentManifest, Envelope, ReceiptFrame, StatusCode as Status, StatusReceipt,
    SubmitRequest, SubmitResponse, TransportState,
};
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio_stream::StreamExt;
use tracing::info;

use crate::api_auth::Caller;
pub use crate::api_error::ApiError;
pub(crate) use crate::api_error::ApiResult;
use crate::intake::{post_status_checked, served_agency, submit_envelope, StatusPost};
use crate::node::Node;
use axum::Extension;

// The answers' JSON shapes are shared with the HTTP client of the local API.
pub use lienthong_client::types::{InboxItem, InboxRef, RecipientView, TrackView, Uploaded};

/// Largest JSON request body (a submit with inline attachments).
pub const MAX_JSON_BODY: usize = 64 * 1024 * 1024;

/// 200 while the node runs; 503 (same body, `status: degraded`) while `[amqp]` is configured and
/// the broker is not connected, since the DMS side is then cut off (docs/api.md).
pub(crate) async fn healthz(
    State(node): State<Arc<Node>>,
) -> (StatusCode, Json<serde_json::Value>) {
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
    let link_up = |n: &AgencyCode| link_up(&node, n);
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
pub(crate) struct Window {
    from: Option<i64>,
    to: Option<i64>,
    kind: Option<String>,
}

pub(crate) async fn audit_verify(
    State(node): State<Arc<Node>>,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(match lienthong_common::audit::verify(&node.store)? {
        Ok(n) => serde_json::json!({ "ok": true, "records": n }),
        Err(b) => serde_json::json!({ "ok": false, "error": b.to_string() }),
    }))
}

pub(crate) async fn audit_records(
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

pub(crate) async fn metrics(State(node): State<Arc<Node>>) -> impl IntoResponse {
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
pub(crate) async fn upload(State(node): State<Arc<Node>>, body: Body) -> ApiResult<Json<Uploaded>> {
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
    caller: &Caller,
) -> ApiResult<Json<SubmitResponse>> {
    let mut env = req
        .envelope
        .ok_or_else(|| ApiError::bad("envelope is required"))?;
    caller.may_send(node, &env)?;
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

pub(crate) async fn attachment(
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
pub(crate) struct AgencyQuery {
    agency: Option<String>,
}

pub(crate) fn agency_param(node: &Node, q: Option<&str>) -> ApiResult<AgencyCode> {
    Ok(served_agency(node, q)?)
}

/// An inbox page: whole entries, or references only.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum InboxPage {
    Items(Vec<InboxItem>),
    Refs(Vec<InboxRef>),
}

/// Inbox entries listed when the request names no `limit`.
pub const INBOX_DEFAULT_LIMIT: usize = 1000;
/// Most inbox entries one request may list.
pub const INBOX_MAX_LIMIT: usize = 5000;

#[derive(Debug, Deserialize)]
pub(crate) struct InboxQuery {
    agency: Option<String>,
    #[serde(default)]
    all: bool,
    limit: Option<usize>,
    after: Option<u64>,
    bodies: Option<bool>,
}

/// `GET /v1/inbox`: one page of an agency's inbox in arrival order, entries after `after`.
pub(crate) async fn inbox(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<InboxQuery>,
) -> ApiResult<Json<InboxPage>> {
    let agency = agency_param(&node, q.agency.as_deref())?;
    caller.may_act_for(&node, &agency)?;
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
                let pdf_signatures = node.store.pdf_report(&e.envelope_id)?;
                items.push(InboxItem {
                    seq: e.seq,
                    acknowledged: e.acknowledged,
                    envelope_id: e.envelope_id,
                    envelope,
                    pdf_signatures,
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

pub(crate) async fn ack(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<AgencyQuery>,
) -> ApiResult<StatusCode> {
    let agency = agency_param(&node, q.agency.as_deref())?;
    caller.may_act_for(&node, &agency)?;
    if !node.store.acknowledge(agency.as_str(), &id)? {
        return Err(ApiError::not_found(format!(
            "{id} is not in the inbox of {agency}"
        )));
    }
    let _persisted = node.store.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

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

pub(crate) async fn post_status(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
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
    caller.status_agency(&node, &mut p.agency)?;
    let (ids, _persisted) = post_status_checked(&node, &id, &p).await?;
    Ok(Json(serde_json::json!({ "receipt_ids": ids })))
}

/// Builds the track view of a document from this node's store.
pub fn track_view(
    store: &lienthong_common::store::Store,
    id: &str,
    clock: &lienthong_common::clock::Clock,
) -> ApiResult<TrackView> {
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
            Some(
                receipt_frame::Item::Summary(_)
                | receipt_frame::Item::Attestation(_)
                | receipt_frame::Item::Detail(_),
            )
            | None => {}
        }
    }
    let today = envelope::format_date(envelope::today_in_vietnam(clock.now_utc()));
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
        pdf_signatures: store.pdf_report(id)?,
    })
}

pub(crate) async fn track(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> ApiResult<Json<TrackView>> {
    Ok(Json(track_view(&node.store, &id, &node.clock)?))
}

/// Whether this node's link to the neighbour `n` is up now.
pub(crate) fn link_up(node: &Node, n: &AgencyCode) -> bool {
    node.metrics
        .link_up
        .get_or_create(&crate::metrics::NeighbourLabel {
            neighbour: n.to_string(),
        })
        .get()
        == 1
}
