//! `GET /v1/documents/{id}/proof`: a document's proof bundle (one ZIP) from the local API, for
//! clients with the `books` scope (docs/api.md).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::info;

use crate::api::{blocking, ApiError, ApiResult};
use crate::node::Node;
use crate::proof::{self, ProofError};

impl From<ProofError> for ApiError {
    fn from(e: ProofError) -> Self {
        match e {
            ProofError::NotFound(_) => ApiError::not_found(e.to_string()),
            ProofError::Store(s) => s.into(),
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        }
    }
}

/// The proof bundle of the document with envelope id or document id `id`.
pub(crate) async fn proof(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let n = node.clone();
    let (envelope_id, zip) = blocking("proof bundle", move || {
        let bundle = proof::export(
            &n.store,
            &n.local_agencies(),
            n.agency(),
            &id,
            n.clock.now_unix_ms(),
        )?;
        let envelope_id = bundle.manifest()?.envelope_id;
        Ok::<_, ProofError>((envelope_id, bundle.to_zip()?))
    })
    .await?;
    info!(envelope = %envelope_id, bytes = zip.len(), "proof bundle exported");
    let file: String = envelope_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"proof-{file}.zip\""),
            ),
        ],
        zip,
    )
        .into_response())
}
