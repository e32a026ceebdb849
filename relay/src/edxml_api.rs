//! edXML on the local HTTP API (docs/api.md, docs/edxml.md): a document package posted with
//! `Content-Type: application/edxml+xml` is submitted like a JSON one; a document read with
//! `Accept: application/edxml+xml` comes back as a package with its attachments inline; a status
//! package posted to `/v1/status` is reported like a JSON status.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lienthong_edxml::{self as edxml, Imported, EDXML_CONTENT_TYPE};
use lienthong_proto::v1::{AttachmentManifest, SubmitRequest, SubmitResponse};
use tracing::{info, warn};

use crate::api::{document_of, ApiError, ApiResult, MAX_JSON_BODY};
use crate::api_auth::Caller;
use crate::intake::{post_status_checked, StatusPost};
use crate::node::Node;
use axum::Extension;

fn is_edxml(headers: &HeaderMap, name: header::HeaderName) -> bool {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains(EDXML_CONTENT_TYPE))
}

/// `application/json`, or a `+json` type, with or without parameters.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| {
            v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
        })
}

fn import(body: &[u8]) -> ApiResult<Imported> {
    edxml::import(body).map_err(|e| {
        warn!(cause = %e, "edXML package refused");
        ApiError::bad(format!("edXML: {e}"))
    })
}

/// `POST /v1/documents`: JSON `SubmitRequest`, or an edXML document package.
pub(crate) async fn submit(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<SubmitResponse>> {
    if !is_edxml(&headers, header::CONTENT_TYPE) {
        if !is_json(&headers) {
            let found = headers
                .get(header::CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            warn!(content_type = ?found, "document refused: unsupported Content-Type");
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Content-Type: POST /v1/documents takes application/json or {EDXML_CONTENT_TYPE}; the request has {}",
                    found.as_deref().unwrap_or("none")
                ),
            ));
        }
        if body.len() > MAX_JSON_BODY {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "body: {} bytes is over the {MAX_JSON_BODY} bytes of a JSON submit; upload large attachments to /v1/attachments",
                    body.len()
                ),
            ));
        }
        let req: SubmitRequest = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad(format!("body: not a JSON SubmitRequest: {e}")))?;
        return crate::api::submit_request(&node, req, &caller).await;
    }
    let doc = match import(&body)? {
        Imported::Document(d) => d,
        Imported::Status(_) => {
            return Err(ApiError::bad(
                "edXML: this is a status package; post it to /v1/status",
            ))
        }
    };
    drop(body);
    let (env, attachments) = doc.into_parts();
    caller.may_send(&node, &env)?;
    for (m, data) in &attachments {
        node.store.put_attachment(data)?;
        info!(name = %m.name, size = m.size, "edXML attachment stored");
    }
    drop(attachments);
    let span = tracing::info_span!("envelope", from = %env.from.as_ref().map(|f| f.code.as_str()).unwrap_or_default());
    let (envelope_id, document_id, _persisted) =
        tracing::Instrument::instrument(crate::intake::submit_envelope(&node, env), span).await?;
    info!(envelope = %envelope_id, document = %document_id, "edXML package accepted");
    Ok(Json(SubmitResponse {
        envelope_id,
        document_id,
    }))
}

/// Reads the attachments of an envelope from the store, whole.
pub fn attachments_of(
    node: &Node,
    manifests: &[AttachmentManifest],
) -> ApiResult<Vec<(AttachmentManifest, Vec<u8>)>> {
    let total: u64 = manifests.iter().map(|m| m.size).sum();
    // Base64 grows the bytes by a third; the package must stay importable at the other end.
    if total.saturating_mul(4) / 3 > edxml::MAX_EDXML_BYTES as u64 {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "the attachments ({total} bytes) are too large for one edXML package (at most {} bytes encoded); read the JSON form and download them one by one",
                edxml::MAX_EDXML_BYTES
            ),
        ));
    }
    let mut out = Vec::with_capacity(manifests.len());
    for m in manifests {
        let mut data = Vec::with_capacity(usize::try_from(m.size).unwrap_or(0));
        node.store.for_each_chunk(&m.sha256, 0, |_, chunk| {
            data.extend_from_slice(chunk);
            true
        })?;
        if data.len() as u64 != m.size {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "attachment {} is not complete on this node ({} of {} bytes)",
                    m.name,
                    data.len(),
                    m.size
                ),
            ));
        }
        out.push((m.clone(), data));
    }
    Ok(out)
}

/// `GET /v1/documents/{id}`: the envelope as JSON, or with `Accept: application/edxml+xml` the
/// edXML package with the attachments inline.
pub(crate) async fn document(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let env = document_of(&node, &id)?;
    if !is_edxml(&headers, header::ACCEPT) {
        return Ok(Json(env).into_response());
    }
    let n = node.clone();
    let package = crate::api::blocking("export", move || -> ApiResult<String> {
        let attachments = attachments_of(&n, &env.attachments)?;
        Ok(edxml::export_document(&env, &attachments))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, EDXML_CONTENT_TYPE)], package).into_response())
}

/// `POST /v1/status`: an edXML status package about a document this node holds.
pub(crate) async fn status(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    if !is_edxml(&headers, header::CONTENT_TYPE) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type: /v1/status takes {EDXML_CONTENT_TYPE}; JSON statuses go to /v1/documents/{{id}}/status"
            ),
        ));
    }
    let st = match import(&body)? {
        Imported::Status(s) => s,
        Imported::Document(_) => {
            return Err(ApiError::bad(
                "edXML: this is a document package; post it to /v1/documents",
            ))
        }
    };
    let r = st.into_receipt();
    let rf = r.response_for.clone().unwrap_or_default();
    let id = if !rf.envelope_id.is_empty() {
        rf.envelope_id.clone()
    } else {
        crate::register::find_envelope(&node.store, &node.local_agencies(), &rf.document_id)?
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "edXML: no document {:?} on this node (ResponseFor/DocumentId)",
                    rf.document_id
                ))
            })?
    };
    let mut post = StatusPost {
        agency: r
            .from
            .as_ref()
            .map(|f| f.code.clone())
            .filter(|c| !c.is_empty()),
        status: r.status,
        description: r.description.clone(),
        staff: r.staff.clone(),
        // Retry-safe without any effort from the DMS: the same package posted again is the
        // same status; a key of its own lets it say otherwise.
        id: Some(match crate::api::idempotency_key(&headers)? {
            Some(k) => k,
            None => hex::encode(&ring::digest::digest(&ring::digest::SHA256, &body).as_ref()[..16]),
        }),
        edxml: r.edxml.clone(),
    };
    caller.status_agency(&node, &mut post.agency)?;
    let (ids, _persisted) = post_status_checked(&node, &id, &post).await?;
    info!(envelope = %id, status = r.status, "edXML status accepted");
    Ok(Json(
        serde_json::json!({ "envelope_id": id, "receipt_ids": ids }),
    ))
}
