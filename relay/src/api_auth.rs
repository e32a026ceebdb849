//! Who may use the local API: `[[api_client]]` entries, each a bearer token (kept as its
//! SHA-256 only), the agencies it may act for and its scopes. Without any entry the API is
//! open, which the configuration allows on a loopback address only.
//!
//! [`authenticate`] runs before every handler: `/healthz` and `/metrics` stay open; anything
//! else needs a known token (401) whose client has the route's scope (403). The handlers then
//! check the agency a request acts for with [`Caller::may_act_for`] (403). Every refusal is
//! logged, recorded as an `api_auth` security event and counted.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lienthong_common::agency::AgencyCode;
use lienthong_common::config::{ApiClientConfig, ApiOpen, ApiScope};
use tracing::warn;

use crate::api_error::{ApiError, ApiResult};
use crate::api_server::Connection;
use crate::node::Node;
use crate::security_events::EventClass;

/// The client a request comes from: `None` when the API has no clients configured (open).
#[derive(Debug, Clone)]
pub struct Caller(pub Option<Arc<ApiClientConfig>>);

impl Caller {
    /// Refuses (403, recorded) a request that acts for an agency its client may not.
    pub fn may_act_for(&self, node: &Node, agency: &AgencyCode) -> ApiResult<()> {
        match &self.0 {
            Some(c) if !c.may_act_for(agency) => Err(refuse(
                node,
                StatusCode::FORBIDDEN,
                &c.name,
                agency.as_str(),
                format!("API client {} may not act for {agency}", c.name),
            )),
            _ => Ok(()),
        }
    }
}

impl Caller {
    /// Refuses a document whose sender its client may not act for.
    pub fn may_send(&self, node: &Node, env: &lienthong_proto::v1::Envelope) -> ApiResult<()> {
        let from = env
            .from
            .as_ref()
            .map(|f| f.code.as_str())
            .unwrap_or_default();
        match AgencyCode::parse(from) {
            Ok(a) => self.may_act_for(node, &a),
            // The intake refuses it, naming the field.
            Err(_) => Ok(()),
        }
    }

    /// The agency a status is posted for: refused if its client may not act for it; when the
    /// status names none and the client acts for exactly one agency, that one.
    pub fn status_agency(&self, node: &Node, agency: &mut Option<String>) -> ApiResult<()> {
        let Some(c) = &self.0 else { return Ok(()) };
        match agency.as_deref().filter(|a| !a.is_empty()) {
            Some(a) => match AgencyCode::parse(a) {
                Ok(a) => self.may_act_for(node, &a),
                Err(_) => Ok(()),
            },
            None => match c.agencies.as_slice() {
                [] => Ok(()),
                [only] => {
                    *agency = Some(only.to_string());
                    Ok(())
                }
                _ => Err(refuse(
                    node,
                    StatusCode::FORBIDDEN,
                    &c.name,
                    "",
                    format!(
                        "agency: API client {} acts for several agencies; say which one reports this status",
                        c.name
                    ),
                )),
            },
        }
    }
}

/// The scope a route needs; `None` for the open ones.
fn scope_of(method: &Method, path: &str, open: ApiOpen) -> Option<ApiScope> {
    let p = path.trim_end_matches('/');
    if p == "/healthz" {
        return (!open.health).then_some(ApiScope::Monitor);
    }
    if p == "/metrics" {
        return (!open.metrics).then_some(ApiScope::Monitor);
    }
    // The console logs its users in itself (a session cookie), with the same clients.
    if p == "/console" || p.starts_with("/console/") {
        return None;
    }
    // Asked for by every browser on its own; answered 404 without a refusal to record.
    if p == "/favicon.ico" {
        return None;
    }
    let post = method == Method::POST;
    Some(match p {
        "/v1/attachments" | "/v1/documents" if post => ApiScope::Submit,
        "/v1/status" => ApiScope::Status,
        _ if p.starts_with("/v1/documents/") && p.ends_with("/status") => ApiScope::Status,
        _ if p.starts_with("/v1/documents/")
            && (p.ends_with("/track") || p.ends_with("/proof")) =>
        {
            ApiScope::Books
        }
        _ if p.starts_with("/v1/documents/") || p.starts_with("/v1/inbox") => ApiScope::Inbox,
        _ if p.starts_with("/v1/registers/")
            || p.starts_with("/v1/reports/") && p != "/v1/reports/push"
            || p == "/v1/track" =>
        {
            ApiScope::Books
        }
        _ => ApiScope::Operate,
    })
}

fn refuse(node: &Node, status: StatusCode, who: &str, agency: &str, reason: String) -> ApiError {
    warn!(client = %who, status = %status, cause = %reason, "API request refused");
    node.security_event(EventClass::ApiAuth, who, agency, &reason);
    ApiError::new(status, reason)
}

/// The middleware: identifies the caller and checks the route's scope.
pub async fn authenticate(State(node): State<Arc<Node>>, mut req: Request, next: Next) -> Response {
    if node.config.api_clients.is_empty() {
        req.extensions_mut().insert(Caller(None));
        return next.run(req).await;
    }
    let Some(scope) = scope_of(req.method(), req.uri().path(), node.config.api_open) else {
        req.extensions_mut().insert(Caller(None));
        return next.run(req).await;
    };
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let cert_cn = req
        .extensions()
        .get::<Connection>()
        .and_then(|c| c.certificate_cn.clone());
    let what = format!("{} {}", req.method(), req.uri().path());
    let client = match (token, &cert_cn) {
        (Some(token), _) => {
            let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
            let found = node.config.api_clients.iter().find(|c| {
                c.token_sha256
                    .is_some_and(|h| h.as_slice() == digest.as_ref())
            });
            let Some(client) = found else {
                return unauthorized(
                    &node,
                    format!("{what}: the token is not known to this node"),
                );
            };
            client
        }
        (None, Some(cn)) => {
            let found = node
                .config
                .api_clients
                .iter()
                .find(|c| c.certificate_cn.as_deref() == Some(cn.as_str()));
            let Some(client) = found else {
                return unauthorized(
                    &node,
                    format!("{what}: the client certificate {cn:?} is not an [[api_client]] of this node"),
                );
            };
            client
        }
        (None, None) => {
            return unauthorized(
                &node,
                format!(
                    "{what}: an Authorization: Bearer token or a client certificate is required"
                ),
            );
        }
    };
    if !client.scopes.contains(&scope) {
        return refuse(
            &node,
            StatusCode::FORBIDDEN,
            &client.name,
            "",
            format!(
                "{what}: API client {} lacks the scope {:?}",
                client.name,
                scope.as_str()
            ),
        )
        .into_response();
    }
    req.extensions_mut()
        .insert(Caller(Some(Arc::new(client.clone()))));
    next.run(req).await
}

fn unauthorized(node: &Node, reason: String) -> Response {
    let mut r = refuse(node, StatusCode::UNAUTHORIZED, "", "", reason).into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_the_scope_it_should() {
        let get = Method::GET;
        let post = Method::POST;
        let open = ApiOpen {
            health: true,
            metrics: true,
        };
        for (m, p, s) in [
            (&get, "/healthz", None),
            (&get, "/metrics", None),
            (&post, "/v1/documents", Some(ApiScope::Submit)),
            (&post, "/v1/attachments", Some(ApiScope::Submit)),
            (&get, "/v1/documents/e1", Some(ApiScope::Inbox)),
            (
                &get,
                "/v1/documents/e1/attachments/ab",
                Some(ApiScope::Inbox),
            ),
            (&post, "/v1/documents/e1/status", Some(ApiScope::Status)),
            (&post, "/v1/status", Some(ApiScope::Status)),
            (&get, "/v1/documents/e1/track", Some(ApiScope::Books)),
            (&get, "/v1/documents/e1/proof", Some(ApiScope::Books)),
            (&get, "/v1/inbox", Some(ApiScope::Inbox)),
            (&post, "/v1/inbox/e1/ack", Some(ApiScope::Inbox)),
            (&get, "/v1/registers/000.00.00.H53", Some(ApiScope::Books)),
            (&get, "/v1/reports/000.00.00.H53", Some(ApiScope::Books)),
            (&get, "/v1/track", Some(ApiScope::Books)),
            (&post, "/v1/reports/push", Some(ApiScope::Operate)),
            (&post, "/v1/backup", Some(ApiScope::Operate)),
            (&get, "/v1/audit/records", Some(ApiScope::Operate)),
            (&get, "/v1/security/events", Some(ApiScope::Operate)),
            (&get, "/v1/anything-new", Some(ApiScope::Operate)),
        ] {
            assert_eq!(scope_of(m, p, open), s, "{m} {p}");
        }
        let closed = ApiOpen {
            health: false,
            metrics: false,
        };
        assert_eq!(scope_of(&get, "/healthz", closed), Some(ApiScope::Monitor));
        assert_eq!(scope_of(&get, "/metrics", closed), Some(ApiScope::Monitor));
    }
}
