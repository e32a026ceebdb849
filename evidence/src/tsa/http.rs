//! Posting a time-stamp query to a TSA over HTTP (RFC 3161 §3.4), blocking, with a time-out;
//! only with the cargo feature `http`.
//!
//! The boundary: this module moves bytes and says why it could not; it reads nothing of them.
//! What comes back goes to [`BatchRequest::accept`](super::BatchRequest::accept), which decides
//! whether it is a stamp. An `https://` URL needs a rustls crypto provider installed for the
//! process (the relay's `main` installs ring's).

use std::time::Duration;

use super::{CONTENT_TYPE_QUERY, CONTENT_TYPE_REPLY, MAX_RESPONSE_BYTES};

/// Why a query got no usable answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No connection, or it broke (refused, unknown host, reset, TLS).
    #[error("TSA {url} unreachable: {reason}")]
    Unreachable {
        /// The TSA's URL.
        url: String,
        /// What the client said.
        reason: String,
    },
    /// No complete answer within the time allowed.
    #[error("TSA {url} did not answer within {after:?}")]
    TimedOut {
        /// The TSA's URL.
        url: String,
        /// The time allowed.
        after: Duration,
    },
    /// An HTTP status other than 200.
    #[error("TSA {url} answered HTTP {status}")]
    Status {
        /// The TSA's URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// An answer that is not a time-stamp reply.
    #[error("TSA {url} answered with content type {found:?}, not {CONTENT_TYPE_REPLY}")]
    ContentType {
        /// The TSA's URL.
        url: String,
        /// The content type sent, if any.
        found: Option<String>,
    },
    /// An answer longer than [`MAX_RESPONSE_BYTES`].
    #[error("TSA {url} sent more than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge {
        /// The TSA's URL.
        url: String,
    },
}

/// Posts `query` (a `TimeStampReq`, DER) to `url` and returns the body of a 200 answer whose
/// content type is `application/timestamp-reply`, within `timeout` for the whole exchange.
/// Redirects are not followed: a TSA's URL is configured, not discovered.
pub fn post_query(url: &str, query: &[u8], timeout: Duration) -> Result<Vec<u8>, TransportError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let unreachable = |e: ureq::Error| match e {
        ureq::Error::Timeout(_) => TransportError::TimedOut {
            url: url.to_owned(),
            after: timeout,
        },
        ureq::Error::BodyExceedsLimit(_) => TransportError::TooLarge {
            url: url.to_owned(),
        },
        other => TransportError::Unreachable {
            url: url.to_owned(),
            reason: other.to_string(),
        },
    };
    let mut resp = agent
        .post(url)
        .header("Content-Type", CONTENT_TYPE_QUERY)
        .header("Accept", CONTENT_TYPE_REPLY)
        .send(query)
        .map_err(unreachable)?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(TransportError::Status {
            url: url.to_owned(),
            status,
        });
    }
    let found = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let is_reply = found.as_deref().is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case(CONTENT_TYPE_REPLY))
    });
    if !is_reply {
        return Err(TransportError::ContentType {
            url: url.to_owned(),
            found,
        });
    }
    resp.body_mut()
        .with_config()
        .limit(MAX_RESPONSE_BYTES as u64)
        .read_to_vec()
        .map_err(unreachable)
}
