//! Structural validation of envelopes and status receipts against the edXML rules (EDXML.md),
//! and the size limits every node enforces before it allocates for foreign bytes.
//!
//! Validation never looks at signatures (see [`crate::signing`]); it answers "is this a
//! well-formed document", naming the offending field in a typed error.

use std::collections::HashSet;

use lienthong_proto::v1::{
    BusinessDocType, Envelope, Priority, StatusCode, StatusReceipt, SteeringType,
};
use prost::Message;
use time::{Date, OffsetDateTime};

use crate::agency::{AgencyCode, AgencyCodeError};
use crate::input::{self, InputError, Lines};

/// Largest encoded envelope header (the `Envelope` message without attachment bytes).
pub const MAX_ENVELOPE_HEADER_BYTES: usize = 1024 * 1024;
/// Largest encoded status receipt or transport event.
pub const MAX_RECEIPT_BYTES: usize = 64 * 1024;
/// Largest attachment chunk on a link.
pub const MAX_CHUNK_BYTES: usize = 256 * 1024;
/// Largest single attachment.
pub const MAX_ATTACHMENT_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Most attachments on one envelope.
pub const MAX_ATTACHMENTS: usize = 100;
/// Most recipients on one envelope (a ministry writing to every commune of a province fits).
pub const MAX_RECIPIENTS: usize = 5000;
/// Longest envelope or receipt id (the rule itself is [`input::identifier`]).
pub const MAX_ID_LEN: usize = input::MAX_IDENTIFIER_CHARS;
/// Document number (số), characters.
pub const MAX_NUMBER_CHARS: usize = 11;
/// Notation (ký hiệu), characters.
pub const MAX_NOTATION_CHARS: usize = 30;
/// Subject (trích yếu), characters.
pub const MAX_SUBJECT_CHARS: usize = 500;
/// Short content, characters.
pub const MAX_CONTENT_CHARS: usize = 500;
/// Any other free-text field, characters.
pub const MAX_TEXT_CHARS: usize = 1000;

/// Why an envelope or receipt is not acceptable. Every variant names the field concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The encoded message is larger than its limit.
    #[error("{what} is {size} bytes; the limit is {max}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A list has more items than its limit.
    #[error("{what} has {count} items; at most {max} are allowed")]
    TooMany {
        /// Which list.
        what: &'static str,
        /// How many it has.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A field's value breaks the rules of [`crate::input`] (characters, length, file names).
    #[error(transparent)]
    Input(#[from] InputError),
    /// The bytes are not a valid protobuf message.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which message.
        what: &'static str,
        /// Decoder's explanation.
        reason: String,
    },
    /// A required field is empty.
    #[error("{field} is required")]
    Missing {
        /// The field.
        field: &'static str,
    },
    /// An agency code field does not parse.
    #[error("{field}: {source}")]
    BadAgencyCode {
        /// The field.
        field: &'static str,
        /// The parse error.
        source: AgencyCodeError,
    },
    /// The same recipient appears twice.
    #[error("to: recipient {code} appears more than once")]
    DuplicateRecipient {
        /// The repeated code.
        code: String,
    },
    /// A date field does not parse as YYYY-MM-DD.
    #[error("{field}: {value:?} is not a date in YYYY-MM-DD form")]
    BadDate {
        /// The field.
        field: &'static str,
        /// The text found.
        value: String,
    },
    /// A date that must not be in the future is.
    #[error("{field}: {value} is in the future")]
    FutureDate {
        /// The field.
        field: &'static str,
        /// The date.
        value: String,
    },
    /// A numeric or enum field is outside its allowed set.
    #[error("{field}: {value} is not allowed; allowed: {allowed}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value found.
        value: i64,
        /// The allowed values, for the message.
        allowed: &'static str,
    },
    /// Some other rule on a field.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Decodes an envelope header after checking its size against [`MAX_ENVELOPE_HEADER_BYTES`].
pub fn decode_envelope(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
    check_size("envelope header", bytes.len(), MAX_ENVELOPE_HEADER_BYTES)?;
    Envelope::decode(bytes).map_err(|e| EnvelopeError::Malformed {
        what: "envelope",
        reason: e.to_string(),
    })
}

/// Decodes a status receipt after checking its size against [`MAX_RECEIPT_BYTES`].
pub fn decode_receipt(bytes: &[u8]) -> Result<StatusReceipt, EnvelopeError> {
    check_size("status receipt", bytes.len(), MAX_RECEIPT_BYTES)?;
    StatusReceipt::decode(bytes).map_err(|e| EnvelopeError::Malformed {
        what: "status receipt",
        reason: e.to_string(),
    })
}

fn check_size(what: &'static str, size: usize, max: usize) -> Result<(), EnvelopeError> {
    if size > max {
        return Err(EnvelopeError::TooLarge {
            what,
            size: size as u64,
            max: max as u64,
        });
    }
    Ok(())
}

fn required(field: &'static str, value: &str) -> Result<(), EnvelopeError> {
    if value.trim().is_empty() {
        return Err(EnvelopeError::Missing { field });
    }
    Ok(())
}

/// A one-line text field of at most `max` characters.
fn line(field: &'static str, value: &str, max: usize) -> Result<(), EnvelopeError> {
    Ok(input::text(field, value, Lines::One, max)?)
}

/// A text field that may span lines, of at most `max` characters.
fn para(field: &'static str, value: &str, max: usize) -> Result<(), EnvelopeError> {
    Ok(input::text(field, value, Lines::Many, max)?)
}

/// An organisation: its code, its name (required) and its contact fields.
fn organization(
    code_field: &'static str,
    name_field: &'static str,
    contact_field: &'static str,
    org: &lienthong_proto::v1::Organization,
) -> Result<AgencyCode, EnvelopeError> {
    let code = agency(code_field, &org.code)?;
    required(name_field, &org.name)?;
    line(name_field, &org.name, MAX_TEXT_CHARS)?;
    for v in [&org.address, &org.email, &org.phone, &org.fax, &org.website] {
        line(contact_field, v, MAX_TEXT_CHARS)?;
    }
    Ok(code)
}

fn staff(
    field: &'static str,
    s: Option<&lienthong_proto::v1::StaffInfo>,
) -> Result<(), EnvelopeError> {
    if let Some(s) = s {
        for v in [&s.department, &s.staff, &s.mobile, &s.email] {
            line(field, v, MAX_TEXT_CHARS)?;
        }
    }
    Ok(())
}

fn extras(e: Option<&lienthong_proto::v1::EdxmlExtras>) -> Result<(), EnvelopeError> {
    if let Some(e) = e {
        for f in &e.unmapped {
            line("edxml.unmapped.path", &f.path, MAX_TEXT_CHARS)?;
            para("edxml.unmapped.value", &f.value, usize::MAX)?;
        }
        para(
            "edxml.original_signature",
            &e.original_signature,
            usize::MAX,
        )?;
    }
    Ok(())
}

fn agency(field: &'static str, value: &str) -> Result<AgencyCode, EnvelopeError> {
    if value.is_empty() {
        return Err(EnvelopeError::Missing { field });
    }
    AgencyCode::parse(value).map_err(|source| EnvelopeError::BadAgencyCode { field, source })
}

const DATE_FORMAT: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// Parses a `YYYY-MM-DD` date field.
pub fn parse_date(field: &'static str, value: &str) -> Result<Date, EnvelopeError> {
    Date::parse(value, DATE_FORMAT).map_err(|_| EnvelopeError::BadDate {
        field,
        value: value.to_owned(),
    })
}

/// Formats a date as `YYYY-MM-DD`.
pub fn format_date(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// The edXML document id `<sender code>,<yyyy/MM/dd>,<number>/<notation>` for an envelope whose
/// header fields are set.
pub fn document_id_for(env: &Envelope) -> String {
    let from = env
        .from
        .as_ref()
        .map(|f| f.code.as_str())
        .unwrap_or_default();
    let date = env
        .promulgation
        .as_ref()
        .map(|p| p.date.replace('-', "/"))
        .unwrap_or_default();
    let (number, notation) = env
        .code
        .as_ref()
        .map(|c| (c.number.as_str(), c.notation.as_str()))
        .unwrap_or_default();
    format!("{from},{date},{number}/{notation}")
}

/// Checks every structural rule of an envelope header. `today` is the date against which
/// "not in the future" is judged (the node's clock, passed in so tests can control it).
pub fn validate_envelope(env: &Envelope, today: Date) -> Result<(), EnvelopeError> {
    check_size(
        "envelope header",
        env.encoded_len(),
        MAX_ENVELOPE_HEADER_BYTES,
    )?;
    input::identifier("id", &env.id)?;

    let from = env
        .from
        .as_ref()
        .ok_or(EnvelopeError::Missing { field: "from" })?;
    organization("from.code", "from.name", "from.contact", from)?;

    if env.to.is_empty() {
        return Err(EnvelopeError::Missing { field: "to" });
    }
    if env.to.len() > MAX_RECIPIENTS {
        return Err(EnvelopeError::TooMany {
            what: "recipient list",
            count: env.to.len(),
            max: MAX_RECIPIENTS,
        });
    }
    let mut seen = HashSet::with_capacity(env.to.len());
    for to in &env.to {
        organization("to.code", "to.name", "to.contact", to)?;
        if !seen.insert(to.code.as_str()) {
            return Err(EnvelopeError::DuplicateRecipient {
                code: to.code.clone(),
            });
        }
    }

    let code = env
        .code
        .as_ref()
        .ok_or(EnvelopeError::Missing { field: "code" })?;
    required("code.number", &code.number)?;
    line("code.number", &code.number, MAX_NUMBER_CHARS)?;
    line("code.notation", &code.notation, MAX_NOTATION_CHARS)?;

    let prom = env.promulgation.as_ref().ok_or(EnvelopeError::Missing {
        field: "promulgation",
    })?;
    required("promulgation.date", &prom.date)?;
    let date = parse_date("promulgation.date", &prom.date)?;
    if date > today {
        return Err(EnvelopeError::FutureDate {
            field: "promulgation.date",
            value: prom.date.clone(),
        });
    }
    line("promulgation.place", &prom.place, MAX_TEXT_CHARS)?;
    if let Some(t) = &env.document_type {
        line("document_type.type_name", &t.type_name, MAX_TEXT_CHARS)?;
    }

    required("subject", &env.subject)?;
    para("subject", &env.subject, MAX_SUBJECT_CHARS)?;
    para("content", &env.content, MAX_CONTENT_CHARS)?;
    if let Some(s) = &env.signer {
        for v in [&s.competence, &s.position, &s.full_name] {
            line("signer", v, MAX_TEXT_CHARS)?;
        }
    }
    for p in &env.to_places {
        para("to_places", p, MAX_TEXT_CHARS)?;
    }
    line("document_id", &env.document_id, MAX_TEXT_CHARS)?;
    extras(env.edxml.as_ref())?;
    if !env.due_date.is_empty() {
        parse_date("due_date", &env.due_date)?;
    }

    if let Some(other) = &env.other_info {
        line(
            "other_info.sphere_of_promulgation",
            &other.sphere_of_promulgation,
            MAX_TEXT_CHARS,
        )?;
        for a in &other.appendixes {
            para("other_info.appendixes", a, MAX_TEXT_CHARS)?;
        }
        if Priority::try_from(other.priority).is_err() {
            return Err(EnvelopeError::OutOfRange {
                field: "other_info.priority",
                value: i64::from(other.priority),
                allowed: "0 normal, 1 urgent, 2 very urgent, 3 express, 4 express at a set time",
            });
        }
    }
    if SteeringType::try_from(env.steering_type).is_err() {
        return Err(EnvelopeError::OutOfRange {
            field: "steering_type",
            value: i64::from(env.steering_type),
            allowed: "0 none, 1 steering, 2 steering with report",
        });
    }
    for r in &env.response_for {
        agency("response_for.organ_id", &r.organ_id)?;
        line("response_for.code", &r.code, MAX_TEXT_CHARS)?;
        line(
            "response_for.promulgation_date",
            &r.promulgation_date,
            MAX_TEXT_CHARS,
        )?;
        line("response_for.document_id", &r.document_id, MAX_TEXT_CHARS)?;
    }
    for t in &env.trace {
        agency("trace.agency", &t.agency)?;
    }
    if let Some(b) = &env.business {
        let kind =
            BusinessDocType::try_from(b.doc_type).map_err(|_| EnvelopeError::OutOfRange {
                field: "business.doc_type",
                value: i64::from(b.doc_type),
                allowed: "0 new, 1 revoke, 2 update, 3 replace",
            })?;
        if kind != BusinessDocType::BusinessNew {
            required("business.target_document_id", &b.target_document_id)?;
        }
        para("business.reason", &b.reason, MAX_TEXT_CHARS)?;
        line(
            "business.target_document_id",
            &b.target_document_id,
            MAX_TEXT_CHARS,
        )?;
        staff("business.staff", b.staff.as_ref())?;
        for r in &b.replacements {
            line(
                "business.replacements.document_id",
                &r.document_id,
                MAX_TEXT_CHARS,
            )?;
            for o in &r.organ_ids {
                line("business.replacements.organ_ids", o, MAX_TEXT_CHARS)?;
            }
        }
    }

    if !env.document_id.is_empty() && env.document_id != document_id_for(env) {
        return Err(EnvelopeError::Invalid {
            field: "document_id",
            reason: format!(
                "{:?} does not match the header; expected {:?}",
                env.document_id,
                document_id_for(env)
            ),
        });
    }

    if env.attachments.len() > MAX_ATTACHMENTS {
        return Err(EnvelopeError::TooMany {
            what: "attachment list",
            count: env.attachments.len(),
            max: MAX_ATTACHMENTS,
        });
    }
    for a in &env.attachments {
        input::file_name("attachments.name", &a.name)?;
        line("attachments.content_type", &a.content_type, MAX_TEXT_CHARS)?;
        para("attachments.description", &a.description, MAX_TEXT_CHARS)?;
        if a.size > MAX_ATTACHMENT_BYTES {
            return Err(EnvelopeError::TooLarge {
                what: "attachment",
                size: a.size,
                max: MAX_ATTACHMENT_BYTES,
            });
        }
        if a.sha256.len() != 32 {
            return Err(EnvelopeError::Invalid {
                field: "attachments.sha256",
                reason: format!("must be 32 bytes, found {}", a.sha256.len()),
            });
        }
    }
    Ok(())
}

/// Statuses a recipient may post about a document it received.
pub const RECIPIENT_STATUSES: &[StatusCode] = &[
    StatusCode::StatusArrived,
    StatusCode::StatusRejected,
    StatusCode::StatusAccepted,
    StatusCode::StatusAssigned,
    StatusCode::StatusProcessing,
    StatusCode::StatusDone,
    StatusCode::StatusRecallAgreed,
    StatusCode::StatusRecallRefused,
];

/// The valid status codes, as text for error messages.
pub const STATUS_CODES_TEXT: &str = "01, 02, 03, 04, 05, 06, 13, 15, 16";

/// Checks every structural rule of a status receipt.
pub fn validate_receipt(r: &StatusReceipt) -> Result<(), EnvelopeError> {
    check_size("status receipt", r.encoded_len(), MAX_RECEIPT_BYTES)?;
    input::identifier("id", &r.id)?;
    let from = r
        .from
        .as_ref()
        .ok_or(EnvelopeError::Missing { field: "from" })?;
    agency("from.code", &from.code)?;
    line("from.name", &from.name, MAX_TEXT_CHARS)?;
    staff("staff", r.staff.as_ref())?;
    extras(r.edxml.as_ref())?;
    line("to", &r.to, MAX_TEXT_CHARS)?;
    line("recipient", &r.recipient, MAX_TEXT_CHARS)?;
    let rf = r.response_for.as_ref().ok_or(EnvelopeError::Missing {
        field: "response_for",
    })?;
    agency("response_for.organ_id", &rf.organ_id)?;
    if rf.envelope_id.is_empty() && rf.document_id.is_empty() {
        return Err(EnvelopeError::Missing {
            field: "response_for.envelope_id",
        });
    }
    if !rf.envelope_id.is_empty() {
        input::identifier("response_for.envelope_id", &rf.envelope_id)?;
    }
    line("response_for.code", &rf.code, MAX_TEXT_CHARS)?;
    line("response_for.document_id", &rf.document_id, MAX_TEXT_CHARS)?;
    let status = match StatusCode::try_from(r.status) {
        Ok(StatusCode::StatusUnspecified) | Err(_) => {
            return Err(EnvelopeError::OutOfRange {
                field: "status",
                value: i64::from(r.status),
                allowed: STATUS_CODES_TEXT,
            })
        }
        Ok(s) => s,
    };
    if matches!(
        status,
        StatusCode::StatusRejected | StatusCode::StatusRecallRefused
    ) {
        required("description", &r.description)?;
    }
    para("description", &r.description, MAX_TEXT_CHARS)?;
    if r.timestamp_unix_ms <= 0 {
        return Err(EnvelopeError::Missing {
            field: "timestamp_unix_ms",
        });
    }
    Ok(())
}

/// A business status code's names, Vietnamese and English, as EDXML.md gives them (0: no status
/// yet). Every text, page and table that names a status takes it from here.
pub fn status_names(code: i32) -> (&'static str, &'static str) {
    match code {
        0 => ("chưa có", "no status yet"),
        1 => ("đã đến", "arrived"),
        2 => ("từ chối tiếp nhận", "rejected"),
        3 => ("đã tiếp nhận", "accepted"),
        4 => ("phân công", "assigned"),
        5 => ("đang xử lý", "processing"),
        6 => ("hoàn thành", "done"),
        13 => ("yêu cầu lấy lại", "recall requested"),
        15 => ("đồng ý lấy lại", "recall agreed"),
        16 => ("từ chối lấy lại", "recall refused"),
        _ => ("không rõ", "unknown"),
    }
}

/// Today's date in UTC+7 (Vietnam), the calendar the documents are dated in.
pub fn today_in_vietnam(now: OffsetDateTime) -> Date {
    now.to_offset(time::macros::offset!(+7)).date()
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use lienthong_proto::v1::{
        AttachmentManifest, Business, DocumentCode, Organization, OtherInfo, PromulgationInfo,
        ReceiptResponseFor,
    };
    use time::macros::date;

    pub(crate) fn org(code: &str, name: &str) -> Organization {
        Organization {
            code: code.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    pub(crate) fn sample() -> Envelope {
        let mut e = Envelope {
            id: "8f2c0c1e-6a0b-4b8e-9d0e-000000000001".into(),
            from: Some(org("000.21.31.H53", "UBND xã An Thạnh")),
            to: vec![
                org("000.00.00.G14", "Bộ Nội vụ"),
                org("000.11.22.H49", "UBND xã B"),
            ],
            code: Some(DocumentCode {
                number: "7816".into(),
                notation: "UBND-VP".into(),
            }),
            promulgation: Some(PromulgationInfo {
                place: "Bến Cầu".into(),
                date: "2026-11-20".into(),
            }),
            subject: "V/v báo cáo tình hình".into(),
            other_info: Some(OtherInfo {
                priority: 1,
                ..Default::default()
            }),
            attachments: vec![AttachmentManifest {
                name: "a.pdf".into(),
                content_type: "application/pdf".into(),
                size: 3,
                sha256: vec![7; 32],
                ..Default::default()
            }],
            ..Default::default()
        };
        e.document_id = document_id_for(&e);
        e
    }

    const TODAY: Date = date!(2026 - 11 - 27);

    #[test]
    fn sample_is_valid() {
        validate_envelope(&sample(), TODAY).unwrap();
        assert_eq!(
            sample().document_id,
            "000.21.31.H53,2026/11/20,7816/UBND-VP"
        );
    }

    #[test]
    fn each_rule_names_its_field() {
        type Mutation = Box<dyn Fn(&mut Envelope)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|e| e.from = None), "from"),
            (
                Box::new(|e| e.from.as_mut().unwrap().code = "bad code".into()),
                "from.code",
            ),
            (Box::new(|e| e.to.clear()), "to"),
            (
                Box::new(|e| {
                    let t = e.to[0].clone();
                    e.to.push(t)
                }),
                "to: recipient",
            ),
            (
                Box::new(|e| e.code.as_mut().unwrap().number = "123456789012".into()),
                "code.number",
            ),
            (
                Box::new(|e| e.code.as_mut().unwrap().notation = "x".repeat(31)),
                "code.notation",
            ),
            (
                Box::new(|e| e.promulgation.as_mut().unwrap().date = "2026-11-28".into()),
                "promulgation.date",
            ),
            (
                Box::new(|e| e.promulgation.as_mut().unwrap().date = "2014-02-30".into()),
                "promulgation.date",
            ),
            (Box::new(|e| e.subject = String::new()), "subject"),
            (Box::new(|e| e.subject = "đ".repeat(501)), "subject"),
            (
                Box::new(|e| e.other_info.as_mut().unwrap().priority = 5),
                "other_info.priority",
            ),
            (Box::new(|e| e.steering_type = 3), "steering_type"),
            (
                Box::new(|e| {
                    e.business = Some(Business {
                        doc_type: 1,
                        ..Default::default()
                    })
                }),
                "business.target_document_id",
            ),
            (
                Box::new(|e| {
                    e.business = Some(Business {
                        doc_type: 9,
                        ..Default::default()
                    })
                }),
                "business.doc_type",
            ),
            (
                Box::new(|e| e.attachments[0].sha256 = vec![1]),
                "attachments.sha256",
            ),
            (
                Box::new(|e| e.attachments[0].size = MAX_ATTACHMENT_BYTES + 1),
                "attachment is",
            ),
            (Box::new(|e| e.document_id = "x,y,z".into()), "document_id"),
        ];
        for (mutate, field) in cases {
            let mut e = sample();
            mutate(&mut e);
            let err = validate_envelope(&e, TODAY).unwrap_err();
            assert!(err.to_string().starts_with(field), "{field}: got {err}");
        }
    }

    #[test]
    fn oversize_bytes_refused_before_decoding() {
        let bytes = vec![0u8; MAX_ENVELOPE_HEADER_BYTES + 1];
        assert!(matches!(
            decode_envelope(&bytes),
            Err(EnvelopeError::TooLarge { .. })
        ));
        assert!(matches!(
            decode_envelope(&[0xff, 0xff]),
            Err(EnvelopeError::Malformed { .. })
        ));
    }

    #[test]
    fn receipts() {
        let mut r = StatusReceipt {
            id: "r1".into(),
            from: Some(org("000.00.00.G14", "Bộ Nội vụ")),
            response_for: Some(ReceiptResponseFor {
                organ_id: "000.21.31.H53".into(),
                envelope_id: "e1".into(),
                ..Default::default()
            }),
            status: 3,
            timestamp_unix_ms: 1,
            ..Default::default()
        };
        validate_receipt(&r).unwrap();
        for bad in [0, 7, 12, 14, 17] {
            r.status = bad;
            let err = validate_receipt(&r).unwrap_err();
            assert!(err.to_string().contains(STATUS_CODES_TEXT), "{err}");
        }
        r.status = 2;
        assert_eq!(
            validate_receipt(&r).unwrap_err(),
            EnvelopeError::Missing {
                field: "description"
            }
        );
        r.description = "sai địa chỉ".into();
        validate_receipt(&r).unwrap();
    }
}
