//! Local API routes for registers, reports and tracking by document id (docs/api.md).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use lienthong_common::agency::AgencyCode;
use lienthong_common::clock::Clock;
use lienthong_common::envelope;
use serde::Deserialize;

use crate::api::{blocking, track_view, ApiError, ApiResult, TrackView};
use crate::api_auth::Caller;
use crate::node::Node;
use crate::register::{self, Direction, Register};
use crate::report::{Report, ReportError};
use axum::Extension;

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::Bad(m) => ApiError::bad(m),
            ReportError::Store(s) => s.into(),
            other => ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                other.to_string(),
            ),
        }
    }
}

fn check_date(field: &'static str, v: &str) -> ApiResult<()> {
    envelope::parse_date(field, v)
        .map(|_| ())
        .map_err(|e| ApiError::bad(e.to_string()))
}

fn parse_agency(s: &str) -> ApiResult<AgencyCode> {
    AgencyCode::parse(s).map_err(|e| ApiError::bad(format!("agency: {e}")))
}

/// The current year and today's date in Vietnam, by the node's clock.
pub fn today(clock: &Clock) -> (i32, String) {
    let d = envelope::today_in_vietnam(clock.now_utc());
    (d.year(), envelope::format_date(d))
}

/// Query of `GET /v1/registers/{agency}`.
#[derive(Debug, Deserialize)]
pub struct RegisterQuery {
    /// Year (default: this year).
    pub year: Option<i32>,
    /// `in` or `out` (default `in`).
    pub direction: Option<String>,
    /// First date, YYYY-MM-DD.
    pub from: Option<String>,
    /// Last date, inclusive.
    pub to: Option<String>,
}

pub(crate) async fn register(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    Path(agency): Path<String>,
    Query(q): Query<RegisterQuery>,
) -> ApiResult<Json<Register>> {
    let agency = parse_agency(&agency)?;
    caller.may_act_for(&node, &agency)?;
    let name = node.agency_name(&agency).ok_or_else(|| {
        ApiError::not_found(format!(
            "agency: {agency} keeps no registers on this node (it serves {})",
            node.local_agencies()
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let direction = match q.direction.as_deref() {
        None => Direction::In,
        Some(d) => Direction::parse(d)
            .ok_or_else(|| ApiError::bad(format!("direction: {d:?} is not one of: in, out")))?,
    };
    for (f, v) in [("from", &q.from), ("to", &q.to)] {
        if let Some(v) = v {
            check_date(f, v)?;
        }
    }
    let year = q.year.unwrap_or_else(|| today(&node.clock).0);
    let book = blocking("register", move || {
        register::read(
            &node.store,
            direction,
            agency.as_str(),
            &name,
            year,
            q.from.as_deref(),
            q.to.as_deref(),
        )
    })
    .await?;
    Ok(Json(book))
}

/// Query of `GET /v1/reports/{agency}`.
#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    /// First day (default: the first of this month).
    pub from: Option<String>,
    /// Last day, inclusive (default: today).
    pub to: Option<String>,
    /// Include every agency below.
    #[serde(default)]
    pub subtree: bool,
}

pub(crate) async fn report(
    State(node): State<Arc<Node>>,
    Extension(caller): Extension<Caller>,
    Path(agency): Path<String>,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Json<Report>> {
    let agency = parse_agency(&agency)?;
    caller.may_act_for(&node, &agency)?;
    let (_, today) = today(&node.clock);
    let from = q
        .from
        .unwrap_or_else(|| format!("{}-01", today.get(0..7).unwrap_or("1970-01")));
    let to = q.to.unwrap_or(today);
    check_date("from", &from)?;
    check_date("to", &to)?;
    let subtree = q.subtree;
    let r = blocking("report", move || {
        node.books()
            .report(&agency, subtree, &from, &to, node.clock.now_unix_ms())
    })
    .await?;
    Ok(Json(r))
}

pub(crate) async fn push(State(node): State<Arc<Node>>) -> ApiResult<Json<serde_json::Value>> {
    let n2 = node.clone();
    let days = node.config.reports.summary_days;
    let n = blocking("summary", move || crate::report::push_summaries(&n2, days)).await?;
    let _durable = node.store.commit().await?;
    Ok(Json(serde_json::json!({ "sent": n })))
}

/// Query of `GET /v1/track`.
#[derive(Debug, Deserialize)]
pub struct TrackQuery {
    /// Envelope id or document id.
    pub id: String,
}

pub(crate) async fn track(
    State(node): State<Arc<Node>>,
    Query(q): Query<TrackQuery>,
) -> ApiResult<Json<TrackView>> {
    let env =
        register::find_envelope(&node.store, &node.local_agencies(), &q.id)?.ok_or_else(|| {
            ApiError::not_found(format!(
                "id: no document with envelope id or document id {:?} on this node",
                q.id
            ))
        })?;
    Ok(Json(track_view(&node.store, &env, &node.clock)?))
}

impl From<crate::monitor::MonitorError> for ApiError {
    fn from(e: crate::monitor::MonitorError) -> Self {
        match e {
            crate::monitor::MonitorError::Store(s) => s.into(),
            other => ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                other.to_string(),
            ),
        }
    }
}

pub(crate) async fn security_report(
    State(node): State<Arc<Node>>,
) -> ApiResult<Json<Vec<crate::monitor::NodeStatus>>> {
    let n = node.clone();
    let r = blocking("report", move || crate::monitor::report(&n)).await?;
    Ok(Json(r))
}

/// Query of `GET /v1/security/events`.
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    /// Only nodes within this agency's subtree (default: this node and everything below it).
    pub subtree: Option<String>,
    /// Only events at or after this time, unix ms.
    pub since: Option<i64>,
}

pub(crate) async fn security_events(
    State(node): State<Arc<Node>>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<Vec<crate::monitor::NodeEvent>>> {
    let subtree = match q.subtree.as_deref() {
        Some(s) => parse_agency(s)?,
        None => node.agency().clone(),
    };
    let since = q.since.unwrap_or(0);
    let n = node.clone();
    let r = blocking("events", move || {
        crate::monitor::subtree_events(&n.books(), &subtree, since)
    })
    .await?;
    Ok(Json(r))
}

pub(crate) async fn security_push(
    State(node): State<Arc<Node>>,
) -> ApiResult<Json<serde_json::Value>> {
    let n = node.clone();
    let events = blocking("attestation", move || crate::monitor::push(&n)).await?;
    let _durable = node.store.commit().await?;
    Ok(Json(serde_json::json!({ "events": events })))
}
