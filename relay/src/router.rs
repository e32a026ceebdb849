//! The local HTTP API's routes: which handler answers which path, and the body limits. The
//! handlers live in `api` (documents, inbox, statuses, health, metrics), `edxml_api`,
//! `books_api` and `upkeep`; this file is the only one that names them all, so none of them
//! imports another's routes.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::api::{self, MAX_JSON_BODY};
use crate::node::Node;
use crate::{books_api, edxml_api, proof_api, upkeep};

/// The router for `node`.
pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/metrics", get(api::metrics))
        .route(
            "/v1/attachments",
            post(api::upload).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/v1/documents",
            post(edxml_api::submit).layer(DefaultBodyLimit::max(lienthong_edxml::MAX_EDXML_BYTES)),
        )
        .route("/v1/documents/{id}", get(edxml_api::document))
        .route(
            "/v1/status",
            post(edxml_api::status).layer(DefaultBodyLimit::max(lienthong_edxml::MAX_EDXML_BYTES)),
        )
        .route(
            "/v1/documents/{id}/attachments/{sha256}",
            get(api::attachment),
        )
        .route("/v1/documents/{id}/status", post(api::post_status))
        .route("/v1/documents/{id}/track", get(api::track))
        .route("/v1/documents/{id}/proof", get(proof_api::proof))
        .route("/v1/inbox", get(api::inbox))
        .route("/v1/audit/verify", get(api::audit_verify))
        .route("/v1/audit/records", get(api::audit_records))
        .route("/v1/backup", post(upkeep::api_backup))
        .route("/v1/inbox/{id}/ack", post(api::ack))
        .route("/v1/registers/{agency}", get(books_api::register))
        .route("/v1/reports/{agency}", get(books_api::report))
        .route("/v1/reports/push", post(books_api::push))
        .route("/v1/track", get(books_api::track))
        .route("/v1/security/report", get(books_api::security_report))
        .route("/v1/security/events", get(books_api::security_events))
        .route("/v1/security/push", post(books_api::security_push))
        .nest_service("/console", crate::console::router(node.clone()))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(axum::middleware::from_fn_with_state(
            crate::api_limits::ApiLimits::new(node.clone()),
            crate::api_limits::limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            node.clone(),
            crate::api_auth::authenticate,
        ))
        .with_state(node)
}
