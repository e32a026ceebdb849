//! Downloads from the documents page: the envelope (JSON, or the edXML package with its
//! attachments inline) and each attachment, as the API's `GET /v1/documents/{id}` and
//! `…/attachments/{sha256}` give them. Documents are the agencies' correspondence: only a
//! client with the API's `inbox` scope (the one that reads documents) may download them; the
//! `operate` and `monitor` scopes see the track but not the contents.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lienthong_common::config::ApiScope;
use maud::html;

use super::{lang_of, page, require, respond, t, Console, Lang, Session};

impl Session {
    /// Whether the session may download documents and attachments.
    pub(super) fn may_read_documents(&self) -> bool {
        self.client
            .as_ref()
            .is_none_or(|c| c.scopes.contains(&ApiScope::Inbox))
    }
}

/// The session, if it may download; otherwise the refusal (logged and recorded).
fn reader(c: &Console, headers: &HeaderMap, what: &str) -> Result<(Session, Lang), Box<Response>> {
    let lang = lang_of(headers, None);
    let session = require(c, headers, lang)?;
    if session.may_read_documents() {
        return Ok((session, lang));
    }
    c.refuse(
        session.name(),
        format!(
            "console download of {what}: API client {} lacks the scope \"inbox\"",
            session.name()
        ),
    );
    Err(Box::new(respond(
        StatusCode::FORBIDDEN,
        None,
        page(
            c,
            lang,
            Some(&session),
            html! { p.error #forbidden { (t(lang, "no_download")) } },
        ),
    )))
}

/// `attachment; filename="…"` with only safe characters kept (the name comes from the sender).
fn disposition(name: &str) -> HeaderValue {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = if safe.trim_matches('_').is_empty() {
        "download".to_owned()
    } else {
        safe
    };
    HeaderValue::from_str(&format!("attachment; filename=\"{safe}\""))
        .unwrap_or(HeaderValue::from_static("attachment"))
}

fn api_failed(
    c: &Console,
    session: &Session,
    lang: Lang,
    e: crate::api_error::ApiError,
) -> Response {
    let status = e.status();
    respond(
        status,
        None,
        page(c, lang, Some(session), html! { p.error { (e.message()) } }),
    )
}

/// `GET /console/documents/{id}/envelope.json`
pub(super) async fn envelope_json(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (session, lang) = match reader(&c, &headers, &id) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match crate::api::document_of(&c.node, &id) {
        Ok(env) => {
            let mut resp = axum::Json(env).into_response();
            resp.headers_mut().insert(
                header::CONTENT_DISPOSITION,
                disposition(&format!("{id}.json")),
            );
            resp
        }
        Err(e) => api_failed(&c, &session, lang, e),
    }
}

/// `GET /console/documents/{id}/package.edxml`
pub(super) async fn package(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (session, lang) = match reader(&c, &headers, &id) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let mut accept = HeaderMap::new();
    accept.insert(
        header::ACCEPT,
        HeaderValue::from_static(lienthong_edxml::EDXML_CONTENT_TYPE),
    );
    match crate::edxml_api::document(State(c.node.clone()), Path(id.clone()), accept).await {
        Ok(mut resp) => {
            resp.headers_mut().insert(
                header::CONTENT_DISPOSITION,
                disposition(&format!("{id}.edxml")),
            );
            resp
        }
        Err(e) => api_failed(&c, &session, lang, e),
    }
}

/// `GET /console/documents/{id}/attachments/{sha256}`
pub(super) async fn attachment(
    State(c): State<Console>,
    headers: HeaderMap,
    Path((id, sha)): Path<(String, String)>,
) -> Response {
    let (session, lang) = match reader(&c, &headers, &format!("{id}/{sha}")) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let name = crate::api::document_of(&c.node, &id)
        .ok()
        .and_then(|env| {
            let want = hex::decode(&sha).ok()?;
            env.attachments
                .into_iter()
                .find(|a| a.sha256 == want)
                .map(|a| a.name)
        })
        .unwrap_or_else(|| sha.clone());
    match crate::api::attachment(State(c.node.clone()), Path((id, sha))).await {
        Ok(mut resp) => {
            resp.headers_mut()
                .insert(header::CONTENT_DISPOSITION, disposition(&name));
            resp
        }
        Err(e) => api_failed(&c, &session, lang, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_keep_only_safe_characters() {
        assert_eq!(
            disposition("Công văn 12.pdf").to_str().ok(),
            Some("attachment; filename=\"C_ng_v_n_12.pdf\"")
        );
        // Quotes, separators and line ends cannot break out of the header.
        assert_eq!(
            disposition("\"; x=\r\n").to_str().ok(),
            Some("attachment; filename=\"___x___\"")
        );
        assert_eq!(
            disposition("\"\r\n").to_str().ok(),
            Some("attachment; filename=\"download\"")
        );
    }
}
