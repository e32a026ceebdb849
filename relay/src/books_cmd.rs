//! `lt-relay register`, `lt-relay report` and `lt-relay track`: a node's registers, statistics
//! and document tracking, read through its local API when the node runs (its store is locked
//! then) and directly from its store when it does not.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{anyhow, bail};
use clap::{Args, ValueEnum};
use lienthong_common::agency::AgencyCode;
use lienthong_common::clock::Clock;
use lienthong_common::envelope;

use crate::api::TrackView;
use crate::node_source::{source, stored_view, Source};
use crate::register::{self, vn_date, Direction, Register, RegisterRow};
use crate::report::Report;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned text for a terminal.
    Table,
    /// Comma-separated values with a header row.
    Csv,
    /// JSON (the local API's form).
    Json,
    /// A printable HTML page in the official layout (Vietnamese headings).
    Html,
}

/// `lt-relay register`
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The node's configuration.
    #[arg(long, env = "LT_CONFIG")]
    pub config: PathBuf,
    /// The agency whose book to print (served by this node).
    #[arg(long)]
    pub agency: String,
    /// Year of the book (default: this year).
    #[arg(long)]
    pub year: Option<i32>,
    /// Incoming (in) or outgoing (out) book.
    #[arg(long, value_enum)]
    pub direction: BookArg,
    /// Only entries on or after this date (YYYY-MM-DD).
    #[arg(long)]
    pub from: Option<String>,
    /// Only entries on or before this date (YYYY-MM-DD).
    #[arg(long)]
    pub to: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Which book, as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BookArg {
    /// Incoming documents (văn bản đến).
    In,
    /// Outgoing documents (văn bản đi).
    Out,
}

impl From<BookArg> for Direction {
    fn from(b: BookArg) -> Self {
        match b {
            BookArg::In => Direction::In,
            BookArg::Out => Direction::Out,
        }
    }
}

/// `lt-relay report`
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The node's configuration.
    #[arg(long, env = "LT_CONFIG")]
    pub config: PathBuf,
    /// The agency reported on.
    #[arg(long)]
    pub agency: String,
    /// Include every agency below it (from the daily summaries sent up to this node).
    #[arg(long)]
    pub subtree: bool,
    /// First day (YYYY-MM-DD; default: the first of this month).
    #[arg(long)]
    pub from: Option<String>,
    /// Last day, inclusive (default: today).
    #[arg(long)]
    pub to: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// `lt-relay track`
#[derive(Debug, Args)]
pub struct TrackArgs {
    /// The node's configuration.
    #[arg(long, env = "LT_CONFIG")]
    pub config: PathBuf,
    /// Envelope id or document id.
    pub id: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

fn check_date(field: &'static str, v: Option<&str>) -> anyhow::Result<()> {
    if let Some(v) = v {
        envelope::parse_date(field, v).map_err(|e| anyhow!("--{field}: {e}"))?;
    }
    Ok(())
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", percent_encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Runs `lt-relay register`.
pub fn run_register(a: RegisterArgs) -> anyhow::Result<()> {
    let agency = AgencyCode::parse(&a.agency).map_err(|e| anyhow!("--agency: {e}"))?;
    check_date("from", a.from.as_deref())?;
    check_date("to", a.to.as_deref())?;
    let book: Register = match source(&a.config)? {
        Source::Api(c) => {
            let path = format!(
                "/v1/registers/{agency}{}",
                query(&[
                    ("year", a.year.map(|y| y.to_string())),
                    (
                        "direction",
                        Some(Direction::from(a.direction).as_str().to_owned())
                    ),
                    ("from", a.from.clone()),
                    ("to", a.to.clone()),
                ])
            );
            serde_json::from_value(c.get_json(&path)?)?
        }
        Source::Store(cfg, store) => {
            let name = if agency == cfg.agency {
                cfg.name.clone()
            } else {
                cfg.local
                    .iter()
                    .find(|l| l.agency == agency)
                    .map(|l| l.name.clone())
                    .ok_or_else(|| anyhow!("--agency: {agency} keeps no registers on this node"))?
            };
            let year = a
                .year
                .unwrap_or_else(|| crate::books_api::today(&Clock::from_env()).0);
            register::read(
                &store,
                a.direction.into(),
                agency.as_str(),
                &name,
                year,
                a.from.as_deref(),
                a.to.as_deref(),
            )?
        }
    };
    print!("{}", render_register(&book, a.format)?);
    Ok(())
}

/// Runs `lt-relay report`.
pub fn run_report(a: ReportArgs) -> anyhow::Result<()> {
    let agency = AgencyCode::parse(&a.agency).map_err(|e| anyhow!("--agency: {e}"))?;
    check_date("from", a.from.as_deref())?;
    check_date("to", a.to.as_deref())?;
    let report: Report = match source(&a.config)? {
        Source::Api(c) => {
            let path = format!(
                "/v1/reports/{agency}{}",
                query(&[
                    ("from", a.from.clone()),
                    ("to", a.to.clone()),
                    ("subtree", a.subtree.then(|| "true".to_owned())),
                ])
            );
            serde_json::from_value(c.get_json(&path)?)?
        }
        Source::Store(cfg, store) => {
            let (_, today) = crate::books_api::today(&Clock::from_env());
            let from = a
                .from
                .clone()
                .unwrap_or_else(|| format!("{}-01", today.get(0..7).unwrap_or("1970-01")));
            let to = a.to.clone().unwrap_or(today);
            stored_view(&cfg, &store)?.report(
                &agency,
                a.subtree,
                &from,
                &to,
                Clock::from_env().now_unix_ms(),
            )?
        }
    };
    print!("{}", render_report(&report, a.format)?);
    Ok(())
}

/// Runs `lt-relay track`.
pub fn run_track(a: TrackArgs) -> anyhow::Result<()> {
    let view: TrackView = match source(&a.config)? {
        Source::Api(c) => {
            serde_json::from_value(c.get_json(&format!("/v1/track?id={}", percent_encode(&a.id)))?)?
        }
        Source::Store(cfg, store) => {
            let Some(env) = register::find_envelope(&store, &cfg.served_agencies(), &a.id)? else {
                bail!(
                    "no document with envelope id or document id {:?} on this node",
                    a.id
                );
            };
            crate::api::track_view(&store, &env, &Clock::from_env())
                .map_err(|e| anyhow!("{}", e.message()))?
        }
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", track_text(&view));
    }
    Ok(())
}

/// A unix-ms time in Vietnam, `YYYY-MM-DD HH:MM:SS`.
pub fn time_text(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.to_offset(time::macros::offset!(+7))
                .format(time::macros::format_description!(
                    "[year]-[month]-[day] [hour]:[minute]:[second]"
                ))
                .ok()
        })
        .unwrap_or_default()
}

/// The text form of a track view: per recipient the latest status with its time and the hop
/// trace, overdue flagged, then every transport event.
pub fn track_text(view: &TrackView) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{}  \"{}\"  from {}",
        view.document_id, view.subject, view.from
    );
    if !view.due_date.is_empty() {
        let _ = writeln!(o, "due {}", view.due_date);
    }
    let _ = writeln!(
        o,
        "\n{:<16} {:<4} {:<18} {:<20} {:<8} description",
        "recipient", "code", "status", "at", "overdue"
    );
    for r in &view.recipients {
        let _ = writeln!(
            o,
            "{:<16} {:<4} {:<18} {:<20} {:<8} {}",
            r.recipient,
            format!("{:02}", r.status),
            lienthong_common::envelope::status_names(r.status).1,
            if r.status_at > 0 {
                time_text(r.status_at)
            } else {
                String::new()
            },
            if r.overdue { "OVERDUE" } else { "" },
            r.description
        );
        if !r.trace.is_empty() {
            let hops: Vec<String> = r
                .trace
                .iter()
                .map(|t| format!("{} {}", t.agency, time_text(t.received_unix_ms)))
                .collect();
            let _ = writeln!(o, "    hops: {}", hops.join(" → "));
        }
    }
    let _ = writeln!(o, "\ntransport events:");
    for e in &view.events {
        let state = match e.state {
            1 => "queued",
            2 => "forwarded",
            3 => "delivered",
            4 => "failed",
            _ => "unknown",
        };
        let extra = if !e.next_hop.is_empty() {
            format!("→ {}", e.next_hop)
        } else {
            e.reason.clone()
        };
        let _ = writeln!(
            o,
            "  {}  {:<9} at {:<15} for {:<15} {}",
            time_text(e.at_unix_ms),
            state,
            e.node,
            e.recipient,
            extra
        );
    }
    o
}

/// Columns of a book: (English heading, Vietnamese heading, cell).
type Column = (&'static str, &'static str, fn(&RegisterRow) -> String);

fn columns(direction: Direction) -> Vec<Column> {
    match direction {
        Direction::In => vec![
            ("Arrived", "Ngày đến", |r| vn_date(&r.entry.date)),
            ("No.", "Số đến", |r| r.entry.number.to_string()),
            ("Issuing agency", "Tác giả", |r| {
                if r.entry.from_name.is_empty() || r.entry.from_name == r.entry.from {
                    r.entry.from.clone()
                } else {
                    format!("{} ({})", r.entry.from_name, r.entry.from)
                }
            }),
            ("Number/notation", "Số, ký hiệu", |r| {
                r.entry.code.clone()
            }),
            ("Document date", "Ngày tháng văn bản", |r| {
                vn_date(&r.entry.document_date)
            }),
            (
                "Type and summary",
                "Tên loại và trích yếu nội dung",
                |r| type_and_summary(r),
            ),
            ("Handled by", "Đơn vị hoặc người nhận", |r| {
                r.handler.clone()
            }),
            ("Passed on", "Ngày chuyển", |r| vn_date(&r.passed_on)),
            ("Receipt", "Ký nhận", |r| r.receipts.join("; ")),
            ("Notes", "Ghi chú", |r| notes(r, false)),
        ],
        Direction::Out => vec![
            ("No.", "Số thứ tự", |r| r.entry.number.to_string()),
            ("Number/notation", "Số, ký hiệu văn bản", |r| {
                r.entry.code.clone()
            }),
            ("Document date", "Ngày tháng văn bản", |r| {
                vn_date(&r.entry.document_date)
            }),
            (
                "Type and summary",
                "Tên loại và trích yếu nội dung",
                |r| type_and_summary(r),
            ),
            ("Signer", "Người ký", |r| r.entry.signer.clone()),
            ("Recipients", "Nơi nhận văn bản", |r| {
                r.entry.recipients.join(", ")
            }),
            (
                "File copy kept by",
                "Đơn vị, người nhận bản lưu",
                |r| r.entry.file_unit.clone(),
            ),
            ("Copies", "Số lượng bản", |r| {
                if r.entry.copies == 0 {
                    String::new()
                } else {
                    r.entry.copies.to_string()
                }
            }),
            ("Sent", "Ngày chuyển", |r| vn_date(&r.entry.date)),
            ("Receipt", "Ký nhận", |r| r.receipts.join("; ")),
            ("Notes", "Ghi chú", |r| notes(r, false)),
        ],
    }
}

fn type_and_summary(r: &RegisterRow) -> String {
    if r.entry.type_name.is_empty() {
        r.entry.subject.clone()
    } else {
        format!("{}: {}", r.entry.type_name, r.entry.subject)
    }
}

fn notes(r: &RegisterRow, vietnamese: bool) -> String {
    r.notes
        .iter()
        .map(|n| {
            if vietnamese {
                n.vietnamese()
            } else {
                n.english()
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut c: String = s.chars().take(max.saturating_sub(1)).collect();
        c.push('…');
        c
    }
}

fn text_table(headings: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headings.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            let pad = w.saturating_sub(c.chars().count());
            l.push_str(c);
            if i + 1 < cells.len() {
                l.push_str(&" ".repeat(pad + 2));
            }
        }
        l.trim_end().to_owned()
    };
    let mut o = line(headings.to_vec());
    o.push('\n');
    for r in rows {
        o.push_str(&line(r.iter().map(String::as_str).collect()));
        o.push('\n');
    }
    o
}

const PRINT_CSS: &str = "body{font-family:'Times New Roman',serif;margin:1.5cm}\
h1{text-align:center;font-size:16pt;margin:0}\
p.sub{text-align:center;margin:.2em 0 1em}\
table{border-collapse:collapse;width:100%;font-size:11pt}\
th,td{border:1px solid #000;padding:3px 5px;vertical-align:top}\
th{font-weight:bold;text-align:center}\
td.n{text-align:center}\
@page{size:A4 landscape;margin:1.5cm}\
@media print{thead{display:table-header-group}tr{page-break-inside:avoid}}";

/// A register in the asked format.
pub fn render_register(book: &Register, format: Format) -> anyhow::Result<String> {
    let cols = columns(book.direction);
    Ok(match format {
        Format::Json => format!("{}\n", serde_json::to_string_pretty(book)?),
        Format::Csv => {
            let mut o = cols
                .iter()
                .map(|(h, _, _)| csv_cell(h))
                .collect::<Vec<_>>()
                .join(",");
            o.push('\n');
            for r in &book.rows {
                o.push_str(
                    &cols
                        .iter()
                        .map(|(_, _, f)| csv_cell(&f(r)))
                        .collect::<Vec<_>>()
                        .join(","),
                );
                o.push('\n');
            }
            o
        }
        Format::Table => {
            let title = match book.direction {
                Direction::In => "Incoming register",
                Direction::Out => "Outgoing register",
            };
            let headings: Vec<&str> = cols.iter().map(|(h, _, _)| *h).collect();
            let rows: Vec<Vec<String>> = book
                .rows
                .iter()
                .map(|r| cols.iter().map(|(_, _, f)| clip(&f(r), 48)).collect())
                .collect();
            format!(
                "{title} of {} ({}), {}: {} entries\n\n{}",
                book.agency_name,
                book.agency,
                book.year,
                book.rows.len(),
                text_table(&headings, &rows)
            )
        }
        Format::Html => {
            let title = match book.direction {
                Direction::In => "SỔ ĐĂNG KÝ VĂN BẢN ĐẾN",
                Direction::Out => "SỔ ĐĂNG KÝ VĂN BẢN ĐI",
            };
            let mut o = String::new();
            let _ = write!(
                o,
                "<!DOCTYPE html>\n<html lang=\"vi\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t} {y} – {a}</title>\n<style>{PRINT_CSS}</style>\n</head>\n<body>\n<p class=\"sub\">{name}</p>\n<h1>{t}</h1>\n<p class=\"sub\">Năm {y} · Mã định danh {a}</p>\n<table>\n<thead><tr>",
                t = title,
                y = book.year,
                a = html_escape(&book.agency),
                name = html_escape(&book.agency_name).to_uppercase(),
            );
            for (_, vi, _) in &cols {
                let _ = write!(o, "<th>{}</th>", html_escape(vi));
            }
            o.push_str("</tr>\n<tr>");
            for i in 1..=cols.len() {
                let _ = write!(o, "<th>({i})</th>");
            }
            o.push_str("</tr></thead>\n<tbody>\n");
            for r in &book.rows {
                o.push_str("<tr>");
                for (h, _, f) in &cols {
                    let cell = if *h == "Notes" { notes(r, true) } else { f(r) };
                    let class = if matches!(*h, "No." | "Arrived" | "Sent" | "Copies") {
                        " class=\"n\""
                    } else {
                        ""
                    };
                    let _ = write!(o, "<td{class}>{}</td>", html_escape(&cell));
                }
                o.push_str("</tr>\n");
            }
            o.push_str("</tbody>\n</table>\n</body>\n</html>\n");
            o
        }
    })
}

fn timing_text(t: &crate::report::Timing) -> String {
    match (t.median_secs, t.p90_secs) {
        (Some(m), Some(p)) => format!(
            "median {}, p90 {} (over {})",
            duration_text(m),
            duration_text(p),
            t.count
        ),
        _ => "no data".to_owned(),
    }
}

pub(crate) fn duration_text(secs: u32) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h {m}m")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// The report's figures as (metric, value) lines, in a fixed order.
pub fn report_lines(r: &Report) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = vec![
        ("sent".into(), r.sent.to_string()),
        ("received".into(), r.received.to_string()),
        ("sent_with_paper".into(), r.sent_with_paper.to_string()),
        (
            "received_with_paper".into(),
            r.received_with_paper.to_string(),
        ),
        ("amendments_sent".into(), r.amendments_sent.to_string()),
        (
            "amendments_received".into(),
            r.amendments_received.to_string(),
        ),
        ("handled_on_time".into(), r.handled_on_time.to_string()),
        ("handled_late".into(), r.handled_late.to_string()),
        ("overdue_open".into(), r.overdue_open.to_string()),
    ];
    let mut status = |prefix: &str, m: &BTreeMap<String, u64>| {
        for (k, n) in m {
            v.push((format!("{prefix}.{k}"), n.to_string()));
        }
    };
    status("sent_by_status", &r.sent_by_status);
    status("received_by_status", &r.received_by_status);
    for (name, t) in [
        ("time_to_01", &r.time_to_arrived),
        ("time_to_03", &r.time_to_accepted),
        ("time_to_06", &r.time_to_done),
    ] {
        v.push((format!("{name}.count"), t.count.to_string()));
        v.push((
            format!("{name}.median_secs"),
            t.median_secs.map(|s| s.to_string()).unwrap_or_default(),
        ));
        v.push((
            format!("{name}.p90_secs"),
            t.p90_secs.map(|s| s.to_string()).unwrap_or_default(),
        ));
    }
    for (reason, n) in &r.rejections {
        v.push((format!("rejections.{reason}"), n.to_string()));
    }
    for c in &r.top_senders {
        v.push((format!("top_senders.{}", c.agency), c.documents.to_string()));
    }
    for c in &r.top_recipients {
        v.push((
            format!("top_recipients.{}", c.agency),
            c.documents.to_string(),
        ));
    }
    v
}

/// A report in the asked format.
pub fn render_report(r: &Report, format: Format) -> anyhow::Result<String> {
    let scope = if r.subtree {
        format!("{} and every agency below it", r.agency)
    } else {
        r.agency.clone()
    };
    Ok(match format {
        Format::Json => format!("{}\n", serde_json::to_string_pretty(r)?),
        Format::Csv => {
            let mut o = String::from("metric,value\n");
            for (k, v) in report_lines(r) {
                let _ = writeln!(o, "{},{}", csv_cell(&k), csv_cell(&v));
            }
            o
        }
        Format::Table => {
            let mut o = String::new();
            let _ = writeln!(o, "Report for {scope}, {} to {}", r.from, r.to);
            let _ = writeln!(o, "agencies included: {}\n", r.agencies.len());
            let _ = writeln!(
                o,
                "documents sent      {:>8}   (with a paper copy {})",
                r.sent, r.sent_with_paper
            );
            let _ = writeln!(
                o,
                "documents received  {:>8}   (with a paper copy {})",
                r.received, r.received_with_paper
            );
            let _ = writeln!(
                o,
                "revoke/update/replace sent {}, received {}",
                r.amendments_sent, r.amendments_received
            );
            let _ = writeln!(
                o,
                "handled on time {}, late {}, overdue and open {}",
                r.handled_on_time, r.handled_late, r.overdue_open
            );
            let by = |m: &BTreeMap<String, u64>| {
                m.iter()
                    .map(|(k, n)| format!("{k}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                o,
                "sent, latest status per recipient: {}",
                by(&r.sent_by_status)
            );
            let _ = writeln!(o, "received, latest status: {}", by(&r.received_by_status));
            let _ = writeln!(
                o,
                "time to 01 (arrived):  {}",
                timing_text(&r.time_to_arrived)
            );
            let _ = writeln!(
                o,
                "time to 03 (accepted): {}",
                timing_text(&r.time_to_accepted)
            );
            let _ = writeln!(o, "time to 06 (done):     {}", timing_text(&r.time_to_done));
            if !r.rejections.is_empty() {
                let _ = writeln!(o, "rejections: {}", by(&r.rejections));
            }
            let top = |v: &[crate::report::Count]| {
                v.iter()
                    .map(|c| format!("{} ({})", c.agency, c.documents))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(o, "top senders: {}", top(&r.top_senders));
            let _ = writeln!(o, "top recipients: {}", top(&r.top_recipients));
            o
        }
        Format::Html => {
            let mut o = String::new();
            let _ = write!(
                o,
                "<!DOCTYPE html>\n<html lang=\"vi\">\n<head>\n<meta charset=\"utf-8\">\n<title>Báo cáo thống kê {a}</title>\n<style>{PRINT_CSS}</style>\n</head>\n<body>\n<h1>BÁO CÁO THỐNG KÊ VĂN BẢN ĐIỆN TỬ</h1>\n<p class=\"sub\">{s} · từ {f} đến {t}</p>\n<table>\n<thead><tr><th>Chỉ tiêu</th><th>Giá trị</th></tr></thead>\n<tbody>\n",
                a = html_escape(&r.agency),
                s = html_escape(&scope),
                f = vn_date(&r.from),
                t = vn_date(&r.to),
            );
            for (k, v) in report_lines(r) {
                let _ = writeln!(
                    o,
                    "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
                    html_escape(&k),
                    html_escape(&v)
                );
            }
            o.push_str("</tbody>\n</table>\n</body>\n</html>\n");
            o
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_html_escape() {
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"x\""), "\"say \"\"x\"\"\"");
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(
            html_escape("<a href='x'>&</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn query_strings_are_encoded() {
        assert_eq!(
            query(&[
                ("id", Some("000.00.00.H53,2026/11/27,12/QĐ".into())),
                ("x", None)
            ]),
            "?id=000.00.00.H53%2C2026%2F11%2F27%2C12%2FQ%C4%90"
        );
    }
}
