//! The security page (`/console/security`): the audit chain's state, certificates, CAs and
//! CRLs near their dates across the subtree, and the security events with filters.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::{error_page, lang_of, page, require, respond, t, time_text, Console};
use crate::monitor::{NodeEvent, NodeStatus};

#[derive(Debug, Deserialize)]
pub(super) struct SecurityQuery {
    lang: Option<String>,
    class: Option<String>,
    node: Option<String>,
    hours: Option<i64>,
}

pub(super) async fn security(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<SecurityQuery>,
) -> Response {
    let lang = lang_of(&headers, q.lang.as_deref());
    let session = match require(&c, &headers, lang) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let hours = q.hours.unwrap_or(24).clamp(1, 24 * 366);
    let node = c.node.clone();
    let since = lienthong_common::now_unix_ms() - hours * 3600 * 1000;
    let data = tokio::task::spawn_blocking(move || {
        let events = crate::monitor::subtree_events(&node.books(), node.agency(), since)?;
        let report = crate::monitor::report(&node)?;
        let audit = match lienthong_common::audit::verify(&node.store) {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(broken)) => Err(broken.to_string()),
            Err(e) => Err(e.to_string()),
        };
        Ok::<_, crate::monitor::MonitorError>((events, report, audit))
    })
    .await;
    let (mut events, report, audit): (Vec<NodeEvent>, Vec<NodeStatus>, Result<u64, String>) =
        match data {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => return error_page(&c, lang, &session, e.to_string()),
            Err(e) => return error_page(&c, lang, &session, e.to_string()),
        };
    let margin = i64::from(c.node.config.security.expiry_warning_days);
    let expiring: Vec<&NodeStatus> = report
        .iter()
        .filter(|s| {
            s.certificate_days_left < margin
                || s.ca_days_left < margin
                || s.crl_days_left.is_some_and(|d| d < 2)
        })
        .collect();
    let classes: Vec<String> = {
        let mut v: Vec<String> = events.iter().map(|e| e.class.clone()).collect();
        v.sort();
        v.dedup();
        v
    };
    let class = q.class.as_deref().filter(|s| !s.is_empty());
    let node_filter = q.node.as_deref().filter(|s| !s.is_empty());
    events
        .retain(|e| class.is_none_or(|k| e.class == k) && node_filter.is_none_or(|n| e.node == n));
    events.sort_by_key(|e| std::cmp::Reverse(e.at_unix_ms));
    let body = html! {
        h1 { (t(lang, "security")) }
        section.posture {
            h2 { (t(lang, "audit")) }
            @match &audit {
                Ok(n) => p.done #audit-ok { (t(lang, "audit_ok")) " (" (n) ")" },
                Err(e) => p.error #audit-broken { (t(lang, "audit_broken")) ": " (e) },
            }
            h2 { (t(lang, "expiring")) " (" (margin) ")" }
            @if expiring.is_empty() {
                p #expiring-none { (t(lang, "none_expiring")) }
            } @else {
                table.expiring {
                    thead { tr { th { (t(lang, "node")) } th { (t(lang, "cert")) } th { (t(lang, "ca")) } th { (t(lang, "crl")) } } }
                    tbody {
                        @for s in &expiring {
                            tr { td { code { (s.node) } } td.num { (s.certificate_days_left) } td.num { (s.ca_days_left) }
                                 td.num { @if let Some(d) = s.crl_days_left { (d) } @else { "—" } } }
                        }
                    }
                }
            }
            h2 { (t(lang, "events")) }
        }
        form.search method="get" action="/console/security" {
            select name="class" {
                option value="" { (t(lang, "all")) }
                @for k in &classes { option value=(k) selected[class == Some(k.as_str())] { (k) } }
            }
            input type="text" name="node" value=(node_filter.unwrap_or("")) placeholder=(t(lang, "node"));
            input type="number" name="hours" value=(hours) min="1";
            button type="submit" { (t(lang, "filter")) }
        }
        @if events.is_empty() {
            p { (t(lang, "no_events")) }
        } @else {
            table.events {
                thead { tr {
                    th { (t(lang, "time")) } th { (t(lang, "node")) } th { (t(lang, "class")) }
                    th { (t(lang, "peer")) } th { (t(lang, "agency")) } th { (t(lang, "reason")) }
                } }
                tbody {
                    @for e in events.iter().take(1000) {
                        tr data-class=(e.class) {
                            td { (time_text(e.at_unix_ms)) }
                            td { code { (e.node) } }
                            td { (e.class) }
                            td { (e.peer) }
                            td { (e.agency) }
                            td { (e.reason) }
                        }
                    }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        q.lang.as_deref(),
        page(&c, lang, Some(&session), body),
    )
}
