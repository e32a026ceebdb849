//! Statistics reports for a period, per agency and over a subtree, and the signed daily
//! summaries they are built from.
//!
//! A node computes a [`DailySummary`] per day and agency it serves from its registers and the
//! receipts it holds. It signs each one with the agency's key and sends it to its parent, which
//! keeps the latest per (agency, day) and passes it on, so a province holds its subtree's days
//! and the root the nation's without holding their documents. A report sums the days of its
//! period: the node's own agencies computed live, the agencies below from their summaries.
//! Time lists are kept whole in the summaries so medians and the 90th percentile of a subtree
//! are exact (nearest-rank).

use std::collections::{BTreeMap, BTreeSet};

use lienthong_common::agency::AgencyCode;
use lienthong_common::envelope;
use lienthong_common::store::{Store, StoreError};
use lienthong_proto::v1::{DailySummary, SignedSummary, StatusCode};
use prost::Message;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::register::{self, date_of, Direction, NodeView};
use crate::upward::store_summary;

/// How many past days a node re-summarises and re-sends when their figures change (statuses
/// keep arriving for documents sent earlier).
pub const DEFAULT_SUMMARY_DAYS: u32 = 62;

/// How often a node sends its changed daily summaries upward, by default.
pub const DEFAULT_SUMMARY_INTERVAL_SECS: u64 = 3600;

/// Entries in the top senders / recipients lists.
pub const TOP_N: usize = 10;

/// Report errors.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bad request (dates, agency).
    #[error("{0}")]
    Bad(String),
    /// Signing a summary failed.
    #[error("signing the daily summary of {agency}: {reason}")]
    Signing {
        /// Agency.
        agency: String,
        /// Why.
        reason: String,
    },
}

fn code_key(status: i32) -> String {
    if status == 0 {
        "none".to_owned()
    } else {
        format!("{status:02}")
    }
}

fn secs_between(from_ms: i64, to_ms: i64) -> u32 {
    u32::try_from((to_ms - from_ms).max(0) / 1000).unwrap_or(u32::MAX)
}

fn year_of(day: &str) -> Result<i32, ReportError> {
    envelope::parse_date("date", day)
        .map(|d| d.year())
        .map_err(|e| ReportError::Bad(e.to_string()))
}

/// Computes the daily summaries of a local agency for the days `from..=to` (YYYY-MM-DD), from
/// its registers and the receipts held, with statuses as of `now_ms`. Days without documents
/// are left out.
pub fn day_summaries(
    store: &Store,
    agency: &str,
    from: &str,
    to: &str,
    now_ms: i64,
) -> Result<BTreeMap<String, DailySummary>, ReportError> {
    let today = date_of(now_ms);
    let mut days: BTreeMap<String, DailySummary> = BTreeMap::new();
    for year in year_of(from)?..=year_of(to)? {
        for direction in [Direction::Out, Direction::In] {
            for e in register::entries(store, direction, agency, year)? {
                if e.date.as_str() < from || e.date.as_str() > to {
                    continue;
                }
                let d = days.entry(e.date.clone()).or_insert_with(|| DailySummary {
                    agency: agency.to_owned(),
                    day: e.date.clone(),
                    ..Default::default()
                });
                let statuses = register::statuses_for(store, &e.envelope_id)?;
                match direction {
                    Direction::Out => {
                        d.sent += 1;
                        d.sent_with_paper += u64::from(e.paper);
                        d.amendments_sent += u64::from(e.business != "new");
                        for r in &e.recipients {
                            *d.recipients.entry(r.clone()).or_default() += 1;
                            let mine: Vec<_> = register::statuses_of(&statuses, r)
                                .into_iter()
                                .filter(|s| s.to == agency)
                                .collect();
                            let latest = mine.last().map(|s| s.status).unwrap_or(0);
                            *d.sent_by_status.entry(latest as u32).or_default() += 1;
                            let first = |code: StatusCode| {
                                mine.iter()
                                    .find(|s| s.status == code as i32)
                                    .map(|s| secs_between(e.at_unix_ms, s.timestamp_unix_ms))
                            };
                            if let Some(s) = first(StatusCode::StatusArrived) {
                                d.seconds_to_arrived.push(s);
                            }
                            if let Some(s) = first(StatusCode::StatusAccepted) {
                                d.seconds_to_accepted.push(s);
                            }
                            if let Some(s) = first(StatusCode::StatusDone) {
                                d.seconds_to_done.push(s);
                            }
                            if let Some(rej) = mine
                                .iter()
                                .find(|s| s.status == StatusCode::StatusRejected as i32)
                            {
                                *d.rejections.entry(rej.description.clone()).or_default() += 1;
                            }
                        }
                    }
                    Direction::In => {
                        d.received += 1;
                        d.received_with_paper += u64::from(e.paper);
                        d.amendments_received += u64::from(e.business != "new");
                        *d.senders.entry(e.from.clone()).or_default() += 1;
                        let mine: Vec<_> = register::statuses_of(&statuses, agency)
                            .into_iter()
                            .filter(|s| s.from.as_ref().map(|f| f.code.as_str()) == Some(agency))
                            .collect();
                        let latest = mine.last().map(|s| s.status).unwrap_or(0);
                        *d.received_by_status.entry(latest as u32).or_default() += 1;
                        if !e.due_date.is_empty() {
                            let done = mine
                                .iter()
                                .find(|s| s.status == StatusCode::StatusDone as i32)
                                .map(|s| date_of(s.timestamp_unix_ms));
                            match done {
                                Some(day) if day <= e.due_date => d.handled_on_time += 1,
                                Some(_) => d.handled_late += 1,
                                None if today > e.due_date
                                    && !register::closes_without_done(latest) =>
                                {
                                    d.overdue_open += 1
                                }
                                None => {}
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(days)
}

/// Median and 90th percentile (nearest rank) of a list of durations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// How many (document, recipient) pairs reached the status.
    pub count: u64,
    /// Median seconds (the lower middle value for an even count).
    pub median_secs: Option<u32>,
    /// 90th percentile seconds.
    pub p90_secs: Option<u32>,
    /// How many took at most each of [`TIMING_BOUNDS_SECS`] (and more than the last, at the
    /// end): the distribution, for charts.
    #[serde(default)]
    pub classes: Vec<u64>,
}

/// Upper bounds of the classes of [`Timing::classes`]: a minute, 10 minutes, an hour, 4 hours,
/// a day, 3 days, a week.
pub const TIMING_BOUNDS_SECS: [u32; 7] = [60, 600, 3_600, 14_400, 86_400, 259_200, 604_800];

/// The value at percentile `p` (0 < p ≤ 100) of sorted `v`, nearest rank.
pub fn nearest_rank(v: &[u32], p: u32) -> Option<u32> {
    if v.is_empty() {
        return None;
    }
    let rank = (u64::from(p) * v.len() as u64).div_ceil(100).max(1);
    v.get(usize::try_from(rank - 1).unwrap_or(0)).copied()
}

fn timing(mut v: Vec<u32>) -> Timing {
    v.sort_unstable();
    let mut classes = vec![0; TIMING_BOUNDS_SECS.len() + 1];
    for secs in &v {
        let i = TIMING_BOUNDS_SECS
            .iter()
            .position(|b| secs <= b)
            .unwrap_or(TIMING_BOUNDS_SECS.len());
        if let Some(n) = classes.get_mut(i) {
            *n += 1;
        }
    }
    Timing {
        count: v.len() as u64,
        median_secs: nearest_rank(&v, 50),
        p90_secs: nearest_rank(&v, 90),
        classes,
    }
}

/// An agency and a count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// Agency code.
    pub agency: String,
    /// Documents.
    pub documents: u64,
}

/// A report for a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Report {
    /// The agency reported on.
    pub agency: String,
    /// Whether the agencies below it are included.
    pub subtree: bool,
    /// First day, YYYY-MM-DD.
    pub from: String,
    /// Last day, inclusive.
    pub to: String,
    /// Agencies whose figures are included.
    pub agencies: Vec<String>,
    /// Documents sent.
    pub sent: u64,
    /// Documents received.
    pub received: u64,
    /// Sent with a paper copy as well (the rest electronically only).
    pub sent_with_paper: u64,
    /// Received with a paper copy as well.
    pub received_with_paper: u64,
    /// Sent documents revoking, updating or replacing another.
    pub amendments_sent: u64,
    /// Received ones.
    pub amendments_received: u64,
    /// (Document, recipient) pairs of sent documents by latest status ("01"…, "none").
    pub sent_by_status: BTreeMap<String, u64>,
    /// Received documents by the latest status the agency reported.
    pub received_by_status: BTreeMap<String, u64>,
    /// Received with a due date and done (06) on or before it.
    pub handled_on_time: u64,
    /// Done after the due date.
    pub handled_late: u64,
    /// Due date passed, not done.
    pub overdue_open: u64,
    /// From sending to 01 (arrived).
    pub time_to_arrived: Timing,
    /// From sending to 03 (accepted).
    pub time_to_accepted: Timing,
    /// From sending to 06 (done).
    pub time_to_done: Timing,
    /// Rejections (02) of sent documents by reason.
    pub rejections: BTreeMap<String, u64>,
    /// Who sent the most documents received.
    pub top_senders: Vec<Count>,
    /// Who received the most documents sent.
    pub top_recipients: Vec<Count>,
}

fn top(m: BTreeMap<String, u64>) -> Vec<Count> {
    let mut v: Vec<Count> = m
        .into_iter()
        .map(|(agency, documents)| Count { agency, documents })
        .collect();
    v.sort_by(|a, b| b.documents.cmp(&a.documents).then(a.agency.cmp(&b.agency)));
    v.truncate(TOP_N);
    v
}

/// Sums daily summaries into a report.
pub fn aggregate<'a>(
    agency: &str,
    subtree: bool,
    from: &str,
    to: &str,
    days: impl IntoIterator<Item = &'a DailySummary>,
) -> Report {
    let mut r = Report {
        agency: agency.to_owned(),
        subtree,
        from: from.to_owned(),
        to: to.to_owned(),
        ..Default::default()
    };
    let mut agencies = BTreeSet::new();
    let (mut arrived, mut accepted, mut done) = (Vec::new(), Vec::new(), Vec::new());
    let (mut senders, mut recipients) = (BTreeMap::new(), BTreeMap::new());
    for d in days {
        agencies.insert(d.agency.clone());
        r.sent += d.sent;
        r.received += d.received;
        r.sent_with_paper += d.sent_with_paper;
        r.received_with_paper += d.received_with_paper;
        r.amendments_sent += d.amendments_sent;
        r.amendments_received += d.amendments_received;
        for (k, v) in &d.sent_by_status {
            *r.sent_by_status.entry(code_key(*k as i32)).or_default() += v;
        }
        for (k, v) in &d.received_by_status {
            *r.received_by_status.entry(code_key(*k as i32)).or_default() += v;
        }
        r.handled_on_time += d.handled_on_time;
        r.handled_late += d.handled_late;
        r.overdue_open += d.overdue_open;
        arrived.extend_from_slice(&d.seconds_to_arrived);
        accepted.extend_from_slice(&d.seconds_to_accepted);
        done.extend_from_slice(&d.seconds_to_done);
        for (k, v) in &d.rejections {
            *r.rejections.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &d.senders {
            *senders.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &d.recipients {
            *recipients.entry(k.clone()).or_default() += v;
        }
    }
    r.agencies = agencies.into_iter().collect();
    r.time_to_arrived = timing(arrived);
    r.time_to_accepted = timing(accepted);
    r.time_to_done = timing(done);
    r.top_senders = top(senders);
    r.top_recipients = top(recipients);
    r
}

impl NodeView<'_> {
    /// Whether `x` is `top` or below it: administratively (agency code), announced by the
    /// child `top`, or anything reported to this node when `top` is the node itself.
    fn in_subtree(&self, top: &AgencyCode, x: &AgencyCode) -> bool {
        x == top
            || x.is_within(top)
            || top == &self.agency
            || self.announcements.get(top).is_some_and(|s| s.contains(x))
    }

    /// The report of `agency` (and, with `subtree`, every agency below it) for `from..=to`.
    pub fn report(
        &self,
        agency: &AgencyCode,
        subtree: bool,
        from: &str,
        to: &str,
        now_ms: i64,
    ) -> Result<Report, ReportError> {
        if from > to {
            return Err(ReportError::Bad(format!("from: {from} is after to: {to}")));
        }
        let member = |x: &AgencyCode| x == agency || (subtree && self.in_subtree(agency, x));
        let mut days: Vec<DailySummary> = Vec::new();
        let mut known = self.locals.contains(agency);
        for a in &self.locals {
            if member(a) {
                days.extend(day_summaries(self.store, a.as_str(), from, to, now_ms)?.into_values());
            }
        }
        for (a, day, bytes) in self.store.summaries()? {
            let Ok(code) = AgencyCode::parse(&a) else {
                continue;
            };
            if self.locals.contains(&code) {
                continue;
            }
            known |= &code == agency;
            if day.as_str() < from || day.as_str() > to || !member(&code) {
                continue;
            }
            match SignedSummary::decode(bytes.as_slice()) {
                Ok(s) => days.extend(s.summary),
                Err(e) => warn!(agency = %a, day = %day, cause = %e, "unreadable stored summary"),
            }
        }
        if !known && !self.announcements.values().any(|s| s.contains(agency)) {
            return Err(ReportError::Bad(format!(
                "agency: {agency} is not served here and no summary of it reached this node"
            )));
        }
        Ok(aggregate(agency.as_str(), subtree, from, to, &days))
    }
}

/// A summary's dedup id.
fn summary_id(agency: &str, day: &str, generated_ms: i64, encoded: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in [
        agency.as_bytes(),
        day.as_bytes(),
        &generated_ms.to_be_bytes(),
        encoded,
    ] {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    format!("sum-{}", hex::encode(&ctx.finish().as_ref()[..15]))
}

/// Signs and sends upward the daily summaries of the node's agencies whose figures changed
/// since they were last sent, over the last `days` days. Returns how many were sent. The
/// caller commits.
pub fn push_summaries(node: &crate::node::Node, days: u32) -> Result<usize, ReportError> {
    let now = node.clock.now_unix_ms();
    let to = date_of(now);
    let from = date_of(now - i64::from(days) * 86_400_000);
    let parent = node.config.parent.as_ref().map(|p| p.agency.to_string());
    let mut sent = 0;
    for agency in node.local_agencies() {
        let Some(signer) = node.signer(&agency) else {
            continue;
        };
        for (day, summary) in day_summaries(&node.store, agency.as_str(), &from, &to, now)? {
            let encoded = summary.encode_to_vec();
            let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, &encoded));
            let meta = format!("summary-sent/{agency}/{day}");
            if node.store.get_meta(&meta)?.as_deref() == Some(digest.as_bytes()) {
                continue;
            }
            let mut signed = SignedSummary {
                id: summary_id(agency.as_str(), &day, now, &encoded),
                summary: Some(summary),
                generated_unix_ms: now,
                node: node.agency().to_string(),
                signature: None,
            };
            signer
                .sign_item(&mut signed, now)
                .map_err(|e| ReportError::Signing {
                    agency: agency.to_string(),
                    reason: e.to_string(),
                })?;
            store_summary(&node.store, &signed, parent.as_deref())?;
            node.store.put_meta(&meta, digest.as_bytes())?;
            sent += 1;
        }
        if let Some(p) = &node.config.parent {
            if sent > 0 {
                node.wake(&p.agency);
            }
        }
    }
    if sent > 0 {
        info!(summaries = sent, "daily summaries queued upward");
    }
    Ok(sent)
}

/// Sends changed daily summaries upward at start and then every `[reports]
/// summary_interval_secs`, until shutdown.
pub async fn summary_loop(
    node: std::sync::Arc<crate::node::Node>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let every = node.config.reports.summary_interval;
    crate::node::repeat_and_commit(node, every, "daily summaries", shutdown, |n| {
        push_summaries(n, n.config.reports.summary_days)
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(nearest_rank(&[], 50), None);
        assert_eq!(nearest_rank(&[7], 50), Some(7));
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(nearest_rank(&[1, 2, 3, 4, 5], 50), Some(3));
        let v: Vec<u32> = (1..=20).collect();
        assert_eq!(nearest_rank(&v, 90), Some(18));
        assert_eq!(nearest_rank(&v, 100), Some(20));
    }

    #[test]
    fn timing_counts_each_duration_in_its_class() {
        // 30 s and 60 s: within a minute; 61 s: within 10 minutes; 2 hours; 30 days: beyond.
        let t = timing(vec![7_200, 30, 61, 2_592_000, 60]);
        assert_eq!(t.count, 5);
        assert_eq!(t.classes, vec![2, 1, 0, 1, 0, 0, 0, 1]);
        assert_eq!(t.classes.iter().sum::<u64>(), t.count);
        assert_eq!(timing(Vec::new()).classes, vec![0; 8]);
    }

    #[test]
    fn aggregate_sums_days_and_merges_times() {
        let a = DailySummary {
            agency: "000.00.00.H53".into(),
            day: "2026-11-02".into(),
            sent: 2,
            sent_by_status: [(6, 1), (2, 1)].into_iter().collect(),
            seconds_to_arrived: vec![10, 30],
            rejections: [("wrong recipient".to_owned(), 1)].into_iter().collect(),
            recipients: [("000.00.00.H49".to_owned(), 2)].into_iter().collect(),
            ..Default::default()
        };
        let b = DailySummary {
            agency: "000.00.31.H53".into(),
            day: "2026-11-03".into(),
            sent: 1,
            received: 4,
            sent_by_status: [(6, 1)].into_iter().collect(),
            seconds_to_arrived: vec![20],
            recipients: [("000.00.00.H49".to_owned(), 1)].into_iter().collect(),
            ..Default::default()
        };
        let r = aggregate("000.00.00.H53", true, "2026-11-01", "2026-11-30", [&a, &b]);
        assert_eq!(r.sent, 3);
        assert_eq!(r.received, 4);
        assert_eq!(r.sent_by_status.get("06"), Some(&2));
        assert_eq!(r.sent_by_status.get("02"), Some(&1));
        assert_eq!(r.time_to_arrived.count, 3);
        assert_eq!(r.time_to_arrived.median_secs, Some(20));
        assert_eq!(r.time_to_arrived.p90_secs, Some(30));
        assert_eq!(r.rejections.get("wrong recipient"), Some(&1));
        assert_eq!(
            r.top_recipients,
            vec![Count {
                agency: "000.00.00.H49".into(),
                documents: 3
            }]
        );
        assert_eq!(r.agencies.len(), 2);
    }
}
