//! The official registers of the agencies a node serves: the outgoing book (sổ đăng ký văn bản
//! đi) and the incoming book (sổ đăng ký văn bản đến), one of each per agency and year.
//!
//! A document is entered when it is accepted from the agency's own side (outgoing) or when it
//! reaches the agency's inbox (incoming). Numbers run 1, 2, … within a year per agency and book,
//! and a document is numbered exactly once: the number and the entry are written in one store
//! transaction keyed by the document, so a duplicate delivery, the same document sent again in a
//! new envelope, or a restart never gives it a second number. Entries are never rewritten; the
//! columns that change later (who handles it, receipt confirmations, notes on revocations and
//! recalls) are read from the document's receipts when the book is printed.

use std::collections::{BTreeMap, BTreeSet};

use lienthong_common::agency::AgencyCode;
use lienthong_common::envelope;
use lienthong_common::store::{Store, StoreError};
use lienthong_proto::v1::{
    receipt_frame, BusinessDocType, Envelope, ReceiptFrame, StatusCode, StatusReceipt,
};

/// Statuses that close a received document without a 06: rejected (02) or recalled (15). Such
/// a document is never overdue.
pub fn closes_without_done(status: i32) -> bool {
    status == StatusCode::StatusRejected as i32 || status == StatusCode::StatusRecallAgreed as i32
}
use prost::Message;
use serde::{Deserialize, Serialize};

/// What a report needs to know about the node it runs on.
#[derive(Debug, Clone)]
pub struct NodeView<'a> {
    /// The store.
    pub store: &'a Store,
    /// The node's own agency.
    pub agency: AgencyCode,
    /// Agencies it serves (its own and `[[local]]`).
    pub locals: Vec<AgencyCode>,
    /// What each child announced it serves.
    pub announcements: BTreeMap<AgencyCode, BTreeSet<AgencyCode>>,
}

/// Which book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Incoming documents (văn bản đến).
    In,
    /// Outgoing documents (văn bản đi).
    Out,
}

impl Direction {
    /// `in` or `out`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
        }
    }

    /// Parses `in` or `out`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "in" => Some(Self::In),
            "out" => Some(Self::Out),
            _ => None,
        }
    }
}

/// One entry as written when the document was registered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegisterEntry {
    /// Number in the book (the incoming number for the incoming book).
    pub number: u64,
    /// The agency whose book it is.
    pub agency: String,
    /// When the document arrived (incoming) or was sent (outgoing), unix ms.
    pub at_unix_ms: i64,
    /// The same as a date in Vietnam, YYYY-MM-DD.
    pub date: String,
    /// Envelope id.
    pub envelope_id: String,
    /// Document id.
    pub document_id: String,
    /// Number and notation (số, ký hiệu), `number/notation`.
    pub code: String,
    /// Date of the document (ngày tháng văn bản).
    pub document_date: String,
    /// Type name (loại văn bản).
    pub type_name: String,
    /// Summary (trích yếu).
    pub subject: String,
    /// Signer (người ký): competence, position, name.
    pub signer: String,
    /// Issuing agency code.
    pub from: String,
    /// Issuing agency name.
    pub from_name: String,
    /// Recipients (nơi nhận), codes.
    pub recipients: Vec<String>,
    /// Unit keeping the file copy (đơn vị lưu hồ sơ), from the business staff's department.
    pub file_unit: String,
    /// Number of copies (số lượng bản).
    pub copies: u32,
    /// Priority (0 normal … 4 express timed).
    pub priority: i32,
    /// Due date, YYYY-MM-DD or empty.
    pub due_date: String,
    /// `new`, `revoke`, `update` or `replace`.
    pub business: String,
    /// The document revoked, updated or replaced.
    pub target_document_id: String,
    /// A paper copy exists as well.
    pub paper: bool,
}

/// A note in the notes column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Note {
    /// This document revokes, updates or replaces another.
    Amends {
        /// `revoke`, `update` or `replace`.
        business: String,
        /// The other document.
        document_id: String,
    },
    /// Another document in this agency's books revokes, updates or replaces this one.
    AmendedBy {
        /// `revoke`, `update` or `replace`.
        business: String,
        /// The other document.
        document_id: String,
        /// Its date in the book.
        date: String,
    },
    /// A status concerning recall or rejection: 02, 13, 15, 16.
    Status {
        /// Status code.
        status: i32,
        /// Who reported it.
        agency: String,
        /// Date reported (Vietnam).
        date: String,
        /// Reason given.
        reason: String,
    },
}

impl Note {
    /// The note in English (table and CSV).
    pub fn english(&self) -> String {
        match self {
            Self::Amends {
                business,
                document_id,
            } => format!("{business}s {document_id}"),
            Self::AmendedBy {
                business,
                document_id,
                date,
            } => format!("{} by {document_id} on {date}", past(business)),
            Self::Status {
                status,
                agency,
                date,
                reason,
            } => {
                let what = match *status {
                    2 => "rejected",
                    13 => "recall requested",
                    15 => "recall/update agreed",
                    16 => "recall/update refused",
                    _ => "status",
                };
                let reason = if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {reason}")
                };
                format!("{what} ({status:02}) by {agency} on {date}{reason}")
            }
        }
    }

    /// The note in Vietnamese (the printed book).
    pub fn vietnamese(&self) -> String {
        match self {
            Self::Amends {
                business,
                document_id,
            } => format!("{} văn bản {document_id}", business_vi(business)),
            Self::AmendedBy {
                business,
                document_id,
                date,
            } => format!(
                "Bị {} bởi văn bản {document_id} ngày {}",
                business_vi(business).to_lowercase(),
                vn_date(date)
            ),
            Self::Status {
                status,
                agency,
                date,
                reason,
            } => {
                let what = match *status {
                    2 => "Từ chối tiếp nhận",
                    13 => "Yêu cầu lấy lại",
                    15 => "Đồng ý lấy lại/cập nhật",
                    16 => "Từ chối lấy lại/cập nhật",
                    _ => "Trạng thái",
                };
                let reason = if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {reason}")
                };
                format!("{what} ({status:02}), {agency}, {}{reason}", vn_date(date))
            }
        }
    }
}

fn past(business: &str) -> &'static str {
    match business {
        "revoke" => "revoked",
        "update" => "updated",
        "replace" => "replaced",
        _ => "amended",
    }
}

fn business_vi(business: &str) -> &'static str {
    match business {
        "revoke" => "Thu hồi",
        "update" => "Cập nhật",
        "replace" => "Thay thế",
        _ => "Sửa đổi",
    }
}

/// `YYYY-MM-DD` as `DD/MM/YYYY`, the way dates are written in the printed books.
pub fn vn_date(iso: &str) -> String {
    match (iso.get(0..4), iso.get(5..7), iso.get(8..10)) {
        (Some(y), Some(m), Some(d)) if iso.len() == 10 => format!("{d}/{m}/{y}"),
        _ => iso.to_owned(),
    }
}

/// A printed row: the entry plus the columns read from the document's receipts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterRow {
    /// The entry.
    #[serde(flatten)]
    pub entry: RegisterEntry,
    /// Incoming: the unit or person handling it (from the 04 this agency posted).
    pub handler: String,
    /// Incoming: the date it was passed on for handling (that 04's date).
    pub passed_on: String,
    /// Receipt confirmations (ký nhận): outgoing, each recipient's 01 with its date; incoming,
    /// this agency's 03.
    pub receipts: Vec<String>,
    /// Latest business status: incoming, this agency's; outgoing, per recipient.
    pub statuses: BTreeMap<String, i32>,
    /// Notes (ghi chú).
    pub notes: Vec<Note>,
}

/// The books of one agency and year, in the direction asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Register {
    /// Agency.
    pub agency: String,
    /// Its name, as configured.
    pub agency_name: String,
    /// Year.
    pub year: i32,
    /// Direction.
    pub direction: Direction,
    /// Rows, by number.
    pub rows: Vec<RegisterRow>,
}

/// The store scope in which a document is numbered once.
fn scope(direction: Direction, agency: &str) -> String {
    format!("{}/{agency}", direction.as_str())
}

/// A book's name in the store.
pub fn book(direction: Direction, agency: &str, year: i32) -> String {
    format!("{}/{agency}/{year}", direction.as_str())
}

/// What identifies a document for numbering: its document id and business type (so the same
/// document, or the same revocation, sent twice under new envelopes gets one number); the
/// envelope when it has no document id.
fn numbering_key(env: &Envelope) -> String {
    let business = business_name(env.business.as_ref().map(|b| b.doc_type).unwrap_or(0));
    if env.document_id.is_empty() {
        format!("env:{}", env.id)
    } else {
        document_key(business, &env.document_id)
    }
}

fn document_key(business: &str, document_id: &str) -> String {
    if business == "new" {
        format!("doc:{document_id}")
    } else {
        format!("doc:{business}:{document_id}")
    }
}

fn business_name(doc_type: i32) -> &'static str {
    match BusinessDocType::try_from(doc_type) {
        Ok(BusinessDocType::BusinessRevoke) => "revoke",
        Ok(BusinessDocType::BusinessUpdate) => "update",
        Ok(BusinessDocType::BusinessReplace) => "replace",
        _ => "new",
    }
}

/// The entry a document makes in `agency`'s book at `at_unix_ms` (number filled in later).
pub fn entry_for(env: &Envelope, agency: &str, at_unix_ms: i64) -> RegisterEntry {
    let date = date_of(at_unix_ms);
    let signer = env
        .signer
        .as_ref()
        .map(|s| {
            [&s.competence, &s.position, &s.full_name]
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let business = env.business.as_ref();
    RegisterEntry {
        number: 0,
        agency: agency.to_owned(),
        at_unix_ms,
        date,
        envelope_id: env.id.clone(),
        document_id: env.document_id.clone(),
        code: code_text(env),
        document_date: env
            .promulgation
            .as_ref()
            .map(|p| p.date.clone())
            .unwrap_or_default(),
        type_name: env
            .document_type
            .as_ref()
            .map(|t| t.type_name.clone())
            .unwrap_or_default(),
        subject: env.subject.clone(),
        signer,
        from: env
            .from
            .as_ref()
            .map(|f| f.code.clone())
            .unwrap_or_default(),
        from_name: env
            .from
            .as_ref()
            .map(|f| f.name.clone())
            .unwrap_or_default(),
        recipients: env.to.iter().map(|t| t.code.clone()).collect(),
        file_unit: business
            .and_then(|b| b.staff.as_ref())
            .map(|s| s.department.clone())
            .unwrap_or_default(),
        copies: env
            .other_info
            .as_ref()
            .map(|o| o.promulgation_amount)
            .unwrap_or(0),
        priority: env.other_info.as_ref().map(|o| o.priority).unwrap_or(0),
        due_date: env.due_date.clone(),
        business: business_name(business.map(|b| b.doc_type).unwrap_or(0)).to_owned(),
        target_document_id: business
            .map(|b| b.target_document_id.clone())
            .unwrap_or_default(),
        paper: business.is_some_and(|b| b.paper),
    }
}

/// A unix-ms time as a date in Vietnam, YYYY-MM-DD.
pub fn date_of(unix_ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix_ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    envelope::format_date(envelope::today_in_vietnam(t))
}

/// Enters `env` in `agency`'s book for `direction` unless it already has a number there.
/// Returns the entry's number and whether it was assigned now. Registered entries are also
/// appended to the audit log. Not durable until the caller commits.
pub fn register(
    store: &Store,
    direction: Direction,
    agency: &AgencyCode,
    env: &Envelope,
    at_unix_ms: i64,
) -> Result<(u64, bool), StoreError> {
    let entry = entry_for(env, agency.as_str(), at_unix_ms);
    let year = entry
        .date
        .get(0..4)
        .and_then(|y| y.parse().ok())
        .unwrap_or(0);
    let key = numbering_key(env);
    let (_, number, new) = store.number_once(
        &scope(direction, agency.as_str()),
        &book(direction, agency.as_str(), year),
        &key,
        |n| {
            let mut e = entry.clone();
            e.number = n;
            serde_json::to_vec(&e).unwrap_or_default()
        },
    )?;
    if new {
        let class = match direction {
            Direction::In => "incoming",
            Direction::Out => "outgoing",
        };
        lienthong_common::audit::append(
            store,
            at_unix_ms,
            "register",
            class,
            "",
            agency.as_str(),
            &format!("no. {number}/{year}: {} ({})", env.document_id, env.id),
        )?;
    }
    Ok((number, new))
}

/// The entries of one book, as written.
pub fn entries(
    store: &Store,
    direction: Direction,
    agency: &str,
    year: i32,
) -> Result<Vec<RegisterEntry>, StoreError> {
    Ok(store
        .book_entries(&book(direction, agency, year))?
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
        .collect())
}

/// The business status receipts held for an envelope, in the order they were stored.
pub fn statuses_for(store: &Store, envelope_id: &str) -> Result<Vec<StatusReceipt>, StoreError> {
    Ok(store
        .receipts_for(envelope_id)?
        .into_iter()
        .filter_map(|b| ReceiptFrame::decode(b.as_slice()).ok())
        .filter_map(|f| match f.item {
            Some(receipt_frame::Item::Status(s)) => Some(s),
            _ => None,
        })
        .collect())
}

/// The statuses concerning `recipient` (excluding 13, the sender's recall request), oldest
/// first.
pub fn statuses_of(all: &[StatusReceipt], recipient: &str) -> Vec<StatusReceipt> {
    let mut v: Vec<StatusReceipt> = all
        .iter()
        .filter(|s| {
            s.recipient == recipient && s.status != StatusCode::StatusRecallRequested as i32
        })
        .cloned()
        .collect();
    v.sort_by_key(|s| (s.timestamp_unix_ms, s.status));
    v
}

/// Reads a book for printing: rows with dates in `from..=to` (YYYY-MM-DD, either optional).
pub fn read(
    store: &Store,
    direction: Direction,
    agency: &str,
    agency_name: &str,
    year: i32,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Register, StoreError> {
    let all = entries(store, direction, agency, year)?;
    // Amendments of a document may be entered in either book of the agency, this year or next.
    let mut amending: Vec<RegisterEntry> = Vec::new();
    for d in [Direction::In, Direction::Out] {
        for y in [year, year + 1] {
            amending.extend(
                entries(store, d, agency, y)?
                    .into_iter()
                    .filter(|e| e.business != "new" && !e.target_document_id.is_empty()),
            );
        }
    }
    let mut rows = Vec::new();
    for entry in all {
        if from.is_some_and(|f| entry.date.as_str() < f)
            || to.is_some_and(|t| entry.date.as_str() > t)
        {
            continue;
        }
        let statuses = statuses_for(store, &entry.envelope_id)?;
        rows.push(row(entry, direction, &statuses, &amending));
    }
    Ok(Register {
        agency: agency.to_owned(),
        agency_name: agency_name.to_owned(),
        year,
        direction,
        rows,
    })
}

fn row(
    entry: RegisterEntry,
    direction: Direction,
    statuses: &[StatusReceipt],
    amending: &[RegisterEntry],
) -> RegisterRow {
    let mut notes = Vec::new();
    if entry.business != "new" && !entry.target_document_id.is_empty() {
        notes.push(Note::Amends {
            business: entry.business.clone(),
            document_id: entry.target_document_id.clone(),
        });
    }
    for a in amending {
        if a.target_document_id == entry.document_id && !entry.document_id.is_empty() {
            notes.push(Note::AmendedBy {
                business: a.business.clone(),
                document_id: a.document_id.clone(),
                date: a.date.clone(),
            });
        }
    }
    let mut ordered: Vec<&StatusReceipt> = statuses.iter().collect();
    ordered.sort_by_key(|s| (s.timestamp_unix_ms, s.status));
    let mut handler = String::new();
    let mut passed_on = String::new();
    let mut receipts = Vec::new();
    let mut latest = BTreeMap::new();
    let reporter = |s: &StatusReceipt| s.from.as_ref().map(|f| f.code.clone()).unwrap_or_default();
    for s in ordered {
        let date = date_of(s.timestamp_unix_ms);
        let relevant = match direction {
            // This agency's own statuses about the document, and the sender's recall requests.
            Direction::In => {
                s.recipient == entry.agency || s.status == StatusCode::StatusRecallRequested as i32
            }
            // What recipients (or relays on the way) reported to this agency.
            Direction::Out => {
                s.to == entry.agency && s.status != StatusCode::StatusRecallRequested as i32
                    || s.status == StatusCode::StatusRecallRequested as i32
                        && reporter(s) == entry.agency
            }
        };
        if !relevant {
            continue;
        }
        match (direction, s.status) {
            (Direction::In, 4) if handler.is_empty() => {
                handler = s
                    .staff
                    .as_ref()
                    .map(|st| {
                        [&st.department, &st.staff]
                            .iter()
                            .filter(|p| !p.is_empty())
                            .map(|p| p.as_str())
                            .collect::<Vec<_>>()
                            .join(" / ")
                    })
                    .unwrap_or_default();
                passed_on = date.clone();
            }
            (Direction::In, 3) => receipts.push(format!("03 {}", vn_date(&date))),
            (Direction::Out, 1) => receipts.push(format!("01 {} {}", s.recipient, vn_date(&date))),
            _ => {}
        }
        if matches!(s.status, 2 | 13 | 15 | 16) {
            let note = Note::Status {
                status: s.status,
                agency: reporter(s),
                date: date.clone(),
                reason: s.description.clone(),
            };
            if !notes.contains(&note) {
                notes.push(note);
            }
        }
        if s.status != StatusCode::StatusRecallRequested as i32 {
            latest.insert(s.recipient.clone(), s.status);
        }
    }
    RegisterRow {
        entry,
        handler,
        passed_on,
        receipts,
        statuses: latest,
        notes,
    }
}

/// The entries the books of `agencies` hold for the document `env` carries (found the way it
/// was numbered: by document id and business, or by envelope), each with its book's direction.
/// An entry may name an earlier envelope of the same document: it was numbered once.
pub fn entries_of_document(
    store: &Store,
    agencies: &[AgencyCode],
    env: &Envelope,
) -> Result<Vec<(Direction, RegisterEntry)>, StoreError> {
    let key = numbering_key(env);
    let mut out = Vec::new();
    for a in agencies {
        for d in [Direction::Out, Direction::In] {
            let Some((book, n)) = store.numbered(&scope(d, a.as_str()), &key)? else {
                continue;
            };
            if let Some(v) = store.book_entry(&book, n)? {
                if let Ok(e) = serde_json::from_slice::<RegisterEntry>(&v) {
                    out.push((d, e));
                }
            }
        }
    }
    Ok(out)
}

/// Finds a document held in any book of `agencies` by document id or envelope id: returns
/// its envelope id.
pub fn find_envelope(
    store: &Store,
    agencies: &[AgencyCode],
    id: &str,
) -> Result<Option<String>, StoreError> {
    if store.envelope(id)?.is_some() {
        return Ok(Some(id.to_owned()));
    }
    for a in agencies {
        for d in [Direction::In, Direction::Out] {
            for business in ["new", "revoke", "update", "replace"] {
                let key = document_key(business, id);
                if let Some((book, n)) = store.numbered(&scope(d, a.as_str()), &key)? {
                    if let Some(v) = store.book_entry(&book, n)? {
                        if let Ok(e) = serde_json::from_slice::<RegisterEntry>(&v) {
                            return Ok(Some(e.envelope_id));
                        }
                    }
                }
            }
        }
    }
    Ok(None)
}

/// A document's number and notation as registers print them: `12/UBND-VP`, or the number alone.
pub fn code_text(env: &Envelope) -> String {
    env.code
        .as_ref()
        .map(|c| {
            if c.notation.is_empty() {
                c.number.clone()
            } else {
                format!("{}/{}", c.number, c.notation)
            }
        })
        .unwrap_or_default()
}
