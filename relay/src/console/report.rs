//! The statistics report page (`/console/report`): for an agency (and, asked, every agency
//! below it) and a period, the figures `lt-relay report` prints, with charts: handled on time,
//! late or overdue; how long documents took to arrive (01), be accepted (03) and be done (06);
//! rejections by reason.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use lienthong_common::agency::AgencyCode;
use lienthong_common::envelope;
use maud::{html, Markup};
use serde::Deserialize;

use super::charts::bar_chart;
use super::{lang_of, page, require, respond, status_name, t, Console, Lang};
use crate::books_cmd::duration_text;
use crate::report::{Report, Timing, TIMING_BOUNDS_SECS};

#[derive(Debug, Deserialize)]
pub(super) struct ReportQuery {
    lang: Option<String>,
    agency: Option<String>,
    /// `1`: the agencies below too.
    subtree: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// What the form asked for, checked; or why not.
struct Asked {
    agency: AgencyCode,
    subtree: bool,
    from: String,
    to: String,
}

fn asked(c: &Console, q: &ReportQuery) -> Result<Asked, String> {
    let agency = match q.agency.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(a) => AgencyCode::parse(a).map_err(|e| format!("agency: {e}"))?,
        None => c.node.agency().clone(),
    };
    let (_, today) = crate::books_api::today(&c.node.clock);
    let from = q
        .from
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("{}-01", today.get(0..7).unwrap_or("1970-01")));
    let to = q.to.clone().filter(|s| !s.is_empty()).unwrap_or(today);
    envelope::parse_date("from", &from).map_err(|e| e.to_string())?;
    envelope::parse_date("to", &to).map_err(|e| e.to_string())?;
    Ok(Asked {
        agency,
        subtree: q.subtree.as_deref() == Some("1"),
        from,
        to,
    })
}

pub(super) async fn report(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<ReportQuery>,
) -> Response {
    let lang = lang_of(&headers, q.lang.as_deref());
    let session = match require(&c, &headers, lang) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let result = match asked(&c, &q) {
        Ok(a) => {
            let node = c.node.clone();
            let (agency, subtree, from, to) =
                (a.agency.clone(), a.subtree, a.from.clone(), a.to.clone());
            let r = tokio::task::spawn_blocking(move || {
                node.books()
                    .report(&agency, subtree, &from, &to, node.clock.now_unix_ms())
            })
            .await;
            match r {
                Ok(Ok(r)) => Ok((a, r)),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
        Err(e) => Err(e),
    };
    let status = if result.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let body = html! {
        h1 { (t(lang, "report")) }
        (form(c.node.agency(), lang, &q))
        @match &result {
            Ok((a, r)) => (figures(lang, a, r)),
            Err(e) => p.error #report-error { (e) },
        }
    };
    respond(
        status,
        q.lang.as_deref(),
        page(&c, lang, Some(&session), body),
    )
}

fn form(own: &AgencyCode, lang: Lang, q: &ReportQuery) -> Markup {
    html! {
        form.search method="get" action="/console/report" {
            input type="text" name="agency" placeholder=(own.as_str())
                value=(q.agency.as_deref().unwrap_or(""));
            label { input type="checkbox" name="subtree" value="1" checked[q.subtree.as_deref() == Some("1")]; " " (t(lang, "subtree")) }
            input type="date" name="from" value=(q.from.as_deref().unwrap_or(""));
            input type="date" name="to" value=(q.to.as_deref().unwrap_or(""));
            button type="submit" { (t(lang, "show")) }
        }
    }
}

fn class_label(i: usize) -> String {
    let text = |secs: u32| match secs {
        60 => "1m".to_owned(),
        600 => "10m".to_owned(),
        3_600 => "1h".to_owned(),
        14_400 => "4h".to_owned(),
        86_400 => "1d".to_owned(),
        259_200 => "3d".to_owned(),
        604_800 => "7d".to_owned(),
        s => duration_text(s),
    };
    match TIMING_BOUNDS_SECS.get(i) {
        Some(b) => format!("≤ {}", text(*b)),
        None => format!(
            "> {}",
            TIMING_BOUNDS_SECS
                .last()
                .map_or_else(String::new, |b| text(*b))
        ),
    }
}

fn timing_cell(t: &Timing) -> Markup {
    html! {
        @match (t.median_secs, t.p90_secs) {
            (Some(m), Some(p)) => { (duration_text(m)) " / " (duration_text(p)) " (" (t.count) ")" },
            _ => "—",
        }
    }
}

fn status_label(lang: Lang, key: &str) -> String {
    match key.parse::<i32>() {
        Ok(code) => status_name(lang, code),
        Err(_) => status_name(lang, 0),
    }
}

fn figures(lang: Lang, a: &Asked, r: &Report) -> Markup {
    let timeliness = vec![
        (t(lang, "on_time").to_owned(), r.handled_on_time as f64),
        (t(lang, "late").to_owned(), r.handled_late as f64),
        (t(lang, "overdue").to_owned(), r.overdue_open as f64),
    ];
    let distribution = |timing: &Timing| -> Vec<(String, f64)> {
        (0..=TIMING_BOUNDS_SECS.len())
            .map(|i| {
                (
                    class_label(i),
                    timing.classes.get(i).copied().unwrap_or(0) as f64,
                )
            })
            .collect()
    };
    let mut rejections: Vec<(String, f64)> = r
        .rejections
        .iter()
        .map(|(k, v)| (k.clone(), *v as f64))
        .collect();
    rejections.sort_by(|x, y| y.1.total_cmp(&x.1));
    rejections.truncate(10);
    html! {
        p #report-scope {
            code { (a.agency) } @if a.subtree { " " (t(lang, "and_below")) }
            " · " (a.from) " → " (a.to) " · " (r.agencies.len()) " " (t(lang, "agencies"))
        }
        table #report-figures {
            tbody {
                tr { th { (t(lang, "sent")) } td.num #sent { (r.sent) } }
                tr { th { (t(lang, "received")) } td.num #received { (r.received) } }
                tr { th { (t(lang, "with_paper")) } td.num { (r.sent_with_paper) " / " (r.received_with_paper) } }
                tr { th { (t(lang, "amendments")) } td.num { (r.amendments_sent) " / " (r.amendments_received) } }
                tr { th { (t(lang, "to_01")) } td.num { (timing_cell(&r.time_to_arrived)) } }
                tr { th { (t(lang, "to_03")) } td.num { (timing_cell(&r.time_to_accepted)) } }
                tr { th { (t(lang, "to_06")) } td.num { (timing_cell(&r.time_to_done)) } }
            }
        }
        (bar_chart("chart-timeliness", t(lang, "timeliness"), t(lang, "documents_n"), &timeliness))
        @for (id, key, timing) in [("chart-to-01", "to_01", &r.time_to_arrived), ("chart-to-03", "to_03", &r.time_to_accepted), ("chart-to-06", "to_06", &r.time_to_done)] {
            (bar_chart(id, t(lang, key), t(lang, "documents_n"), &distribution(timing)))
        }
        (bar_chart("chart-rejections", t(lang, "rejections"), t(lang, "documents_n"), &rejections))
        h2 { (t(lang, "by_status")) }
        table #report-status {
            thead { tr { th { (t(lang, "status")) } th { (t(lang, "sent")) } th { (t(lang, "received")) } } }
            tbody {
                @for key in r.sent_by_status.keys().chain(r.received_by_status.keys()).collect::<std::collections::BTreeSet<_>>() {
                    tr {
                        td { (status_label(lang, key)) }
                        td.num { (r.sent_by_status.get(key).copied().unwrap_or(0)) }
                        td.num { (r.received_by_status.get(key).copied().unwrap_or(0)) }
                    }
                }
            }
        }
        @if !r.top_senders.is_empty() || !r.top_recipients.is_empty() {
            h2 { (t(lang, "top")) }
            table #report-top {
                thead { tr { th { (t(lang, "from")) } th { (t(lang, "documents_n")) } th { (t(lang, "recipient")) } th { (t(lang, "documents_n")) } } }
                tbody {
                    @for i in 0..r.top_senders.len().max(r.top_recipients.len()) {
                        tr {
                            @if let Some(s) = r.top_senders.get(i) { td { code { (s.agency) } } td.num { (s.documents) } } @else { td {} td {} }
                            @if let Some(s) = r.top_recipients.get(i) { td { code { (s.agency) } } td.num { (s.documents) } } @else { td {} td {} }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classes_are_labelled_by_their_bounds() {
        assert_eq!(class_label(0), "≤ 1m");
        assert_eq!(class_label(4), "≤ 1d");
        assert_eq!(class_label(TIMING_BOUNDS_SECS.len()), "> 7d");
    }
}
