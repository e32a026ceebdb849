//! The security page (`/console/security`): the audit chain's state, certificates, CAs and
//! CRLs near their dates across the subtree, and the security events with filters.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::{
    error_page, lang_of, page, require, requirement_text, requirements_table, respond, t,
    time_text, Console, Requirement,
};
use crate::monitor::NodeStatus;

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
        let mut report = crate::monitor::report_list(&node)?;
        // The requirements (with their evidence) only of the nodes below that miss some.
        for s in report.iter_mut().skip(1) {
            if !s.assessment_not_met.is_empty() {
                s.requirements = crate::monitor::requirements_of(&node.store, &s.node)?;
            }
        }
        let audit = match lienthong_common::audit::verify(&node.store) {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(broken)) => Err(broken.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let assessments = assessments(&node, &report, &audit);
        Ok::<_, crate::monitor::MonitorError>((events, report, audit, assessments))
    })
    .await;
    let (mut events, report, audit, (own, requirements)) = match data {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return error_page(&c, lang, &session, e.to_string()),
        Err(e) => return error_page(&c, lang, &session, e.to_string()),
    };
    let unmet: Vec<&NodeStatus> = report
        .iter()
        .filter(|s| s.node != c.node.agency().as_str() && !s.assessment_not_met.is_empty())
        .collect();
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
            h2 { (t(lang, "own_assessment")) }
            @match &own {
                None => p #own-assessment-none { (t(lang, "no_level")) },
                Some(a) => {
                    p #own-assessment-summary { (t(lang, "level_word")) " " (a.level) ": " (a.met) "/" (a.total) " " (t(lang, "met")) }
                    (requirements_table(lang, "own-assessment", a.checks.iter().map(|c| Requirement {
                        id: &c.id,
                        met: c.met,
                        en: &c.requirement,
                        vi: &c.requirement_vi,
                        evidence: &c.evidence,
                    })))
                }
            }
            h2 { (t(lang, "below_unmet")) }
            @if unmet.is_empty() {
                p #below-unmet-none { (t(lang, "none")) }
            } @else {
                table #below-unmet {
                    thead { tr { th { (t(lang, "node")) } th { (t(lang, "level_word")) } th { (t(lang, "met")) } th { (t(lang, "unmet")) } } }
                    tbody {
                        @for s in &unmet {
                            tr data-node=(s.node) {
                                td { a href={ "/console/node/" (s.node) } {
                                    @if !s.name.is_empty() && s.name != s.node { (s.name) br; }
                                    code { (s.node) }
                                } }
                                td.num { (s.assessed_level) }
                                td.num { (s.assessment_met) "/" (s.assessment_total) }
                                td { ul.unmet {
                                    @for id in &s.assessment_not_met {
                                        // The node's own words when its detail came (with what it
                                        // found); else this node's text for that requirement.
                                        @if let Some(r) = s.requirements.iter().find(|r| &r.id == id) {
                                            li data-requirement=(id) {
                                                code { (id) } " — " (requirement_text(lang, &r.requirement, &r.requirement_vi))
                                                br; small.evidence { (t(lang, "evidence")) ": " (r.evidence) }
                                            }
                                        } @else {
                                            li data-requirement=(id) { code { (id) } @if let Some((en, vi)) = requirements.get(&(s.assessed_level, id.clone())) { " — " (requirement_text(lang, en, vi)) } }
                                        }
                                    }
                                } }
                            }
                        }
                    }
                }
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

/// This node's own assessment at its level (none without a level), and the text of each
/// requirement at the levels the nodes below assessed themselves against, by (level, id): their
/// attestations carry the ids of the requirements not met, not their evidence (nodes of older
/// versions send no node detail with it), as (English, Vietnamese).
type Assessments = (
    Option<crate::assess::Assessment>,
    BTreeMap<(u32, String), (String, String)>,
);

fn assessments(
    node: &crate::node::Node,
    report: &[NodeStatus],
    audit: &Result<u64, String>,
) -> Assessments {
    let state = match audit {
        Ok(n) => crate::assess::AuditState::Intact(*n),
        Err(e) => crate::assess::AuditState::Broken(e.clone()),
    };
    let now = node.clock.now_unix_ms().div_euclid(1000);
    let cfg = &node.config;
    let own = (cfg.security.level > 0)
        .then(|| crate::assess::assess(cfg, cfg.security.level, &state, now));
    let levels: BTreeSet<u32> = report
        .iter()
        .filter(|s| !s.assessment_not_met.is_empty())
        .map(|s| s.assessed_level)
        .filter(|l| (1..=5).contains(l))
        .collect();
    let mut texts = BTreeMap::new();
    for level in levels {
        let Ok(l) = u8::try_from(level) else {
            continue;
        };
        for check in crate::assess::assess(cfg, l, &state, now).checks {
            texts.insert((level, check.id), (check.requirement, check.requirement_vi));
        }
    }
    (own, texts)
}
