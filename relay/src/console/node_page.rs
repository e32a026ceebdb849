//! A node's own page (`/console/node/{code}`): what its newest attestation and node detail say
//! (name, link, versions, queues, certificate dates), its assessment requirement by requirement
//! with the evidence it reported, and its security events of the last 24 hours.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use lienthong_common::agency::AgencyCode;
use maud::html;
use serde::Deserialize;

use super::{
    error_page, health_of, lang_of, minutes_ago, page, require, requirements_table, respond, t,
    time_text, Console, Requirement,
};

#[derive(Debug, Deserialize)]
pub(super) struct NodeQuery {
    lang: Option<String>,
}

pub(super) async fn node_page(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(code): Path<String>,
    Query(q): Query<NodeQuery>,
) -> Response {
    let lang = lang_of(&headers, q.lang.as_deref());
    let session = match require(&c, &headers, lang) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let node = c.node.clone();
    let wanted = code.clone();
    let data = tokio::task::spawn_blocking(move || {
        let status = crate::monitor::node_report(&node, &wanted)?;
        let since = lienthong_common::now_unix_ms() - 24 * 3600 * 1000;
        let mut events = crate::monitor::events_of(&node, &wanted, since)?;
        events.reverse();
        Ok::<_, crate::monitor::MonitorError>((status, events))
    })
    .await;
    let (status, events) = match data {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return error_page(&c, lang, &session, e.to_string()),
        Err(e) => return error_page(&c, lang, &session, e.to_string()),
    };
    let Some(s) = status else {
        return respond(
            StatusCode::NOT_FOUND,
            q.lang.as_deref(),
            page(
                &c,
                lang,
                Some(&session),
                html! { h1 { (t(lang, "node")) " " code { (code) } } p.error #no-node { (t(lang, "no_node")) } },
            ),
        );
    };
    let now = lienthong_common::now_unix_ms();
    let link_up = AgencyCode::parse(&s.node)
        .ok()
        .filter(|child| c.node.routes().announcements().contains_key(child))
        .map(|child| crate::api::link_up(&c.node, &child));
    let health = health_of(&c.node, &s, link_up, events.len() as u64, now);
    let body = html! {
        h1 #node-title {
            span.(health.class()) { (health.icon()) } " "
            @if !s.name.is_empty() { (s.name) " " }
            "(" code { (s.node) } ")"
        }
        table.facts #node-facts {
            tbody {
                tr { th { (t(lang, "state")) } td.(health.class()) { (t(lang, health.class())) } }
                tr { th { (t(lang, "name")) } td #node-name { @if s.name.is_empty() { "—" } @else { (s.name) } } }
                tr { th { (t(lang, "link")) } td #node-link {
                    @match link_up {
                        Some(up) => { (t(lang, if up { "up" } else { "down" })) " " (t(lang, "since")) " " (time_text(c.node.metrics.link_since(&s.node))) },
                        None => "—",
                    }
                    @if s.parent_last_up_unix_ms > 0 { br; small { (t(lang, "parent_up")) " " (time_text(s.parent_last_up_unix_ms)) } }
                } }
                tr { th { (t(lang, "last_seen")) } td { @if s.last_seen_unix_ms > 0 { (time_text(s.last_seen_unix_ms)) } @else { (t(lang, "never")) } } }
                tr { th { (t(lang, "version")) } td { (s.version) } }
                tr { th { (t(lang, "cert")) } td.num { (s.certificate_days_left) } }
                tr { th { (t(lang, "ca")) } td.num { (s.ca_days_left) } }
                tr { th { (t(lang, "crl")) } td.num { @if let Some(d) = s.crl_days_left { (d) } @else { "—" } } }
                tr { th { (t(lang, "backlog")) } td {
                    @if s.queue_depths.is_empty() { "0" }
                    @for (peer, depth) in &s.queue_depths {
                        code { (peer) } ": " (depth)
                        @if let Some(at) = s.oldest_queued_unix_ms.get(peer) { " — " (t(lang, "oldest")) " " (time_text(*at)) " (" (minutes_ago(lang, now, *at)) ")" }
                        br;
                    }
                } }
            }
        }
        h2 { (t(lang, "level")) }
        @if s.assessment_total == 0 {
            p { (t(lang, "no_level")) }
        } @else {
            p #node-assessment-summary { (t(lang, "level_word")) " " (s.assessed_level) ": " (s.assessment_met) "/" (s.assessment_total) " " (t(lang, "met")) }
            @if s.requirements.is_empty() {
                p.warning #no-detail { (t(lang, "no_detail")) }
                ul.unmet { @for id in &s.assessment_not_met { li { code { (id) } " — " (t(lang, "unmet")) } } }
            } @else {
                p { (t(lang, "detail_made")) " " (time_text(s.detail_unix_ms)) }
                (requirements_table(lang, "node-requirements", s.requirements.iter().map(|r| Requirement {
                    id: &r.id,
                    met: r.met,
                    en: &r.requirement,
                    vi: &r.requirement_vi,
                    evidence: &r.evidence,
                })))
            }
        }
        h2 { (t(lang, "events24")) }
        @if events.is_empty() {
            p #node-no-events { (t(lang, "no_events")) }
        } @else {
            table.events #node-events {
                thead { tr { th { (t(lang, "time")) } th { (t(lang, "class")) } th { (t(lang, "peer")) } th { (t(lang, "agency")) } th { (t(lang, "reason")) } } }
                tbody {
                    @for e in events.iter().take(500) {
                        tr data-class=(e.class) {
                            td { (time_text(e.at_unix_ms)) } td { (e.class) } td { (e.peer) } td { (e.agency) } td { (e.reason) }
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
