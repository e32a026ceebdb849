//! The traffic page (`/console/traffic`): documents in and out per link and per minute, queue
//! depths, hop-ack latency and refusals by reason, over the last hours (up to a day), from the
//! node's minute records ([`crate::traffic`]). The charts part is fetched again every few
//! seconds by the console's one script, so the page refreshes without reloading.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::charts::{time_chart, Line};
use super::{error_page, lang_of, page, require, respond, t, Console, Lang};
use crate::traffic::Minute;

/// How many links a chart draws (the busiest); the table lists them all.
const LINES_PER_CHART: usize = 8;

#[derive(Debug, Deserialize)]
pub(super) struct TrafficQuery {
    lang: Option<String>,
    /// Hours shown, 1 to 24 (default 6).
    hours: Option<u64>,
    /// Seconds between refreshes, 2 to 600 (default 30).
    every: Option<u64>,
    /// `charts`: only the part that refreshes.
    part: Option<String>,
}

/// One link's totals over the period.
#[derive(Default)]
struct Totals {
    docs_in: u64,
    docs_out: u64,
    depth_now: u64,
    depth_max: u64,
}

pub(super) async fn traffic(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<TrafficQuery>,
) -> Response {
    let lang = lang_of(&headers, q.lang.as_deref());
    let session = match require(&c, &headers, lang) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let hours = q.hours.unwrap_or(6).clamp(1, 24);
    let every = q.every.unwrap_or(30).clamp(2, 600);
    let node = c.node.clone();
    let minutes = match tokio::task::spawn_blocking(move || {
        crate::traffic::last_day(
            &node.store,
            &node.metrics.traffic,
            node.clock.now_unix_ms(),
            &node.neighbours(),
        )
    })
    .await
    {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => return error_page(&c, lang, &session, e.to_string()),
        Err(e) => return error_page(&c, lang, &session, e.to_string()),
    };
    let to = minutes.last().map_or(0, |m| m.minute);
    let earliest = to.saturating_sub(hours * 60);
    let shown: Vec<&Minute> = minutes.iter().filter(|m| m.minute >= earliest).collect();
    // The time axis starts at the first minute kept (a node started a moment ago has a short
    // history), showing at least a quarter of an hour.
    let first = shown.first().map_or(to, |m| m.minute);
    let from = first.min(to.saturating_sub(15)).max(earliest);
    let charts = charts(lang, &shown, from, to);
    if q.part.as_deref() == Some("charts") {
        return (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            charts.into_string(),
        )
            .into_response();
    }
    let refresh = format!("/console/traffic?part=charts&hours={hours}");
    let body = html! {
        h1 { (t(lang, "traffic")) }
        form.search method="get" action="/console/traffic" {
            select name="hours" {
                @for h in [1u64, 3, 6, 12, 24] {
                    option value=(h) selected[h == hours] { (h) " " (t(lang, "hours")) }
                }
            }
            input type="hidden" name="every" value=(every);
            button type="submit" { (t(lang, "show")) }
        }
        p.refresh { (t(lang, "refresh_note")) " " (every) " s." }
        div #traffic-charts data-refresh=(refresh) data-every=(every) { (charts) }
        script src="/console/console.js" {}
    };
    respond(
        StatusCode::OK,
        q.lang.as_deref(),
        page(&c, lang, Some(&session), body),
    )
}

/// The links ordered by what they carried, busiest first.
fn busiest(totals: &BTreeMap<String, Totals>, by: impl Fn(&Totals) -> u64) -> Vec<String> {
    let mut v: Vec<(&String, u64)> = totals.iter().map(|(k, t)| (k, by(t))).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    v.into_iter()
        .filter(|(_, n)| *n > 0)
        .take(LINES_PER_CHART)
        .map(|(k, _)| k.clone())
        .collect()
}

fn per_link(
    shown: &[&Minute],
    links: &[String],
    value: impl Fn(&Minute, &str) -> u64,
) -> Vec<Line> {
    links
        .iter()
        .map(|l| Line {
            label: l.clone(),
            points: shown
                .iter()
                .map(|m| (m.minute, value(m, l) as f64))
                .collect(),
        })
        .collect()
}

fn link_name(lang: Lang, l: &str) -> String {
    if l == crate::traffic::LOCAL {
        t(lang, "local").to_owned()
    } else {
        l.to_owned()
    }
}

fn charts(lang: Lang, shown: &[&Minute], from: u64, to: u64) -> Markup {
    let mut totals: BTreeMap<String, Totals> = BTreeMap::new();
    let mut refused: BTreeMap<String, u64> = BTreeMap::new();
    for m in shown {
        for (l, lm) in &m.links {
            let tot = totals.entry(l.clone()).or_default();
            tot.docs_in += lm.docs_in;
            tot.docs_out += lm.docs_out;
            tot.depth_max = tot.depth_max.max(lm.depth);
        }
        for (r, n) in &m.refused {
            *refused.entry(r.clone()).or_default() += n;
        }
    }
    if let Some(last) = shown.last() {
        for (l, lm) in &last.links {
            if let Some(tot) = totals.get_mut(l) {
                tot.depth_now = lm.depth;
            }
        }
    }
    let links_in = busiest(&totals, |t| t.docs_in);
    let links_out = busiest(&totals, |t| t.docs_out);
    let links_depth = busiest(&totals, |t| t.depth_max);
    let named = |mut lines: Vec<Line>| {
        for l in &mut lines {
            l.label = link_name(lang, &l.label);
        }
        lines
    };
    let docs_in = named(per_link(shown, &links_in, |m, l| {
        m.links.get(l).map_or(0, |x| x.docs_in)
    }));
    let docs_out = named(per_link(shown, &links_out, |m, l| {
        m.links.get(l).map_or(0, |x| x.docs_out)
    }));
    let depth = named(per_link(shown, &links_depth, |m, l| {
        m.links.get(l).map_or(0, |x| x.depth)
    }));
    let acked: Vec<&&Minute> = shown.iter().filter(|m| m.ack_count() > 0).collect();
    let latency = ["p50", "p99"]
        .iter()
        .zip([50u64, 99])
        .map(|(label, p)| Line {
            label: (*label).to_owned(),
            points: acked
                .iter()
                .filter_map(|m| {
                    m.ack_percentile_ms(p)
                        .filter(|ms| *ms != u32::MAX)
                        .map(|ms| (m.minute, f64::from(ms)))
                })
                .collect(),
        })
        .collect::<Vec<_>>();
    let reasons: Vec<String> = {
        let mut v: Vec<(&String, &u64)> = refused.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1));
        v.into_iter()
            .take(LINES_PER_CHART)
            .map(|(r, _)| r.clone())
            .collect()
    };
    let refusals: Vec<Line> = reasons
        .iter()
        .map(|r| Line {
            label: r.clone(),
            points: shown
                .iter()
                .map(|m| (m.minute, m.refused.get(r).copied().unwrap_or(0) as f64))
                .collect(),
        })
        .collect();
    let acks: u64 = shown.iter().map(|m| m.ack_count()).sum();
    let mut all_acks = vec![0u64; crate::traffic::ACK_BOUNDS_MS.len() + 1];
    for m in shown {
        for (i, n) in m.acks.iter().enumerate() {
            if let Some(slot) = all_acks.get_mut(i) {
                *slot += n;
            }
        }
    }
    let bound = |p| match crate::traffic::percentile(&all_acks, p) {
        None => "—".to_owned(),
        Some(u32::MAX) => "> 30000".to_owned(),
        Some(ms) => format!("≤ {ms}"),
    };
    html! {
        (time_chart("chart-in", t(lang, "docs_in"), t(lang, "per_minute"), from, to, &docs_in))
        (time_chart("chart-out", t(lang, "docs_out"), t(lang, "per_minute"), from, to, &docs_out))
        (time_chart("chart-depth", t(lang, "queue_depth"), t(lang, "items"), from, to, &depth))
        (time_chart("chart-latency", t(lang, "ack_latency"), "ms", from, to, &latency))
        (time_chart("chart-refused", t(lang, "refusals"), t(lang, "per_minute"), from, to, &refusals))
        h2 { (t(lang, "links")) }
        @if totals.is_empty() {
            p #no-traffic { (t(lang, "no_traffic")) }
        } @else {
            table #traffic-links {
                thead { tr {
                    th { (t(lang, "link")) } th { (t(lang, "total_in")) } th { (t(lang, "total_out")) }
                    th { (t(lang, "depth_now")) } th { (t(lang, "depth_max")) }
                } }
                tbody {
                    @for (l, tot) in &totals {
                        tr data-link=(l) {
                            td { code { (link_name(lang, l)) } }
                            td.num.in { (tot.docs_in) } td.num.out { (tot.docs_out) }
                            td.num { (tot.depth_now) } td.num { (tot.depth_max) }
                        }
                    }
                }
            }
        }
        p #acks { (t(lang, "acks")) ": " (acks) " · p50 " (bound(50)) " ms · p99 " (bound(99)) " ms" }
        h2 { (t(lang, "refusals")) }
        @if refused.is_empty() {
            p { (t(lang, "none_refused")) }
        } @else {
            table #traffic-refused {
                thead { tr { th { (t(lang, "reason")) } th { (t(lang, "count")) } } }
                tbody {
                    @for (r, n) in &refused {
                        tr data-reason=(r) { td { (r) } td.num { (n) } }
                    }
                }
            }
        }
    }
}
