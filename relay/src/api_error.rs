//! The local API's error: an HTTP status and a message naming the problem, and the one mapping
//! of the core's errors (store, envelope, intake, node) to it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lienthong_common::envelope::EnvelopeError;
use lienthong_common::store::StoreError;
use tracing::{info, warn};

use crate::intake::IntakeError;
use crate::node::NodeError;

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
    /// The HTTP status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
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

/// The one mapping of an intake error to HTTP.
impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> Self {
        match e {
            IntakeError::Refused(m) => Self::bad(m),
            IntakeError::Conflict(m) => Self::new(StatusCode::CONFLICT, m),
            IntakeError::NotFound(m) => Self::not_found(m),
            IntakeError::Store(s) => s.into(),
            IntakeError::Internal(m) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, m),
        }
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
