//! The account of a document a bundle gives, in Vietnamese then English: who sent what, when
//! (by the sender's signature, by the TSA), who received it and what each recipient said.
//! `summary.txt` is it as the node holds it; `proof verify` prints it for what verified.

use std::fmt::Write as _;

use lienthong_proto::v1::{Envelope, StatusReceipt};

/// What is known of the time-stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StampFact {
    /// The envelope carries none.
    None,
    /// It carries one that was not checked; the time is what the token states, if readable.
    Unchecked {
        /// genTime as the token states it, unix ms.
        claimed_unix_ms: Option<i64>,
    },
    /// It verified against the TSA's anchors.
    Verified {
        /// genTime, unix ms.
        unix_ms: i64,
        /// The TSA certificate's subject.
        tsa: String,
    },
}

/// One status receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptFact {
    /// The agency that signed it.
    pub reporter: String,
    /// The recipient it is about.
    pub recipient: String,
    /// The status code.
    pub status: i32,
    /// The reason or note.
    pub description: String,
    /// When the status took effect, by the reporter (unix ms).
    pub at_unix_ms: i64,
}

impl ReceiptFact {
    /// The facts of `r`.
    pub fn of(r: &StatusReceipt) -> Self {
        Self {
            reporter: r.from.as_ref().map(|f| f.code.clone()).unwrap_or_default(),
            recipient: r.recipient.clone(),
            status: r.status,
            description: r.description.clone(),
            at_unix_ms: r.timestamp_unix_ms,
        }
    }
}

/// What the account says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// Envelope id.
    pub envelope_id: String,
    /// Document id.
    pub document_id: String,
    /// Number/notation.
    pub code: String,
    /// Subject (trích yếu).
    pub subject: String,
    /// Sender code and name.
    pub sender: (String, String),
    /// The signer's claimed signing time, unix ms.
    pub signed_unix_ms: i64,
    /// The time-stamp.
    pub stamp: StampFact,
    /// Recipients, code and name.
    pub recipients: Vec<(String, String)>,
    /// Receipts, oldest first.
    pub receipts: Vec<ReceiptFact>,
}

impl Facts {
    /// The facts of `env` and `receipts`, with `stamp`.
    pub fn of(env: &Envelope, receipts: &[StatusReceipt], stamp: StampFact) -> Self {
        let mut receipts: Vec<ReceiptFact> = receipts.iter().map(ReceiptFact::of).collect();
        receipts.sort_by_key(|r| (r.at_unix_ms, r.status));
        Self {
            envelope_id: env.id.clone(),
            document_id: env.document_id.clone(),
            code: crate::register::code_text(env),
            subject: env.subject.clone(),
            sender: env
                .from
                .as_ref()
                .map(|f| (f.code.clone(), f.name.clone()))
                .unwrap_or_default(),
            signed_unix_ms: env
                .signature
                .as_ref()
                .map(|s| s.signing_unix_ms)
                .unwrap_or(0),
            stamp,
            recipients: env
                .to
                .iter()
                .map(|t| (t.code.clone(), t.name.clone()))
                .collect(),
            receipts,
        }
    }
}

pub(crate) use lienthong_common::envelope::status_names;

/// A unix-ms time in Vietnam (UTC+7), to the millisecond.
pub(crate) fn vn_time(unix_ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(time::macros::offset!(+7));
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3] +07:00"
    );
    t.format(&fmt).unwrap_or_else(|_| unix_ms.to_string())
}

fn named(code: &str, name: &str) -> String {
    if name.is_empty() || name == code {
        code.to_owned()
    } else {
        format!("{code} ({name})")
    }
}

/// The account in one language.
struct Words {
    document: &'static str,
    envelope: &'static str,
    subject: &'static str,
    sent_by: &'static str,
    signed_at: &'static str,
    signer_claim: &'static str,
    stamped_at: &'static str,
    stamp_unchecked: &'static str,
    stamp_unreadable: &'static str,
    no_stamp: &'static str,
    recipients: &'static str,
    no_receipt: &'static str,
    reported_by: &'static str,
    sender_said: &'static str,
    reason: &'static str,
}

const VI: Words = Words {
    document: "Văn bản",
    envelope: "mã gói tin",
    subject: "Trích yếu",
    sent_by: "Cơ quan gửi",
    signed_at: "Ký số lúc",
    signer_claim: "theo chữ ký của bên gửi",
    stamped_at: "Dấu thời gian (TSA; chữ ký đã có từ thời điểm này)",
    stamp_unchecked: "có dấu thời gian, chưa kiểm tra; theo token",
    stamp_unreadable: "có dấu thời gian, chưa kiểm tra",
    no_stamp: "không có dấu thời gian",
    recipients: "Nơi nhận và trạng thái (mỗi trạng thái do cơ quan báo ký số)",
    no_receipt: "chưa có trạng thái nào",
    reported_by: "do",
    sender_said: "Bên gửi",
    reason: "ghi chú",
};

const EN: Words = Words {
    document: "Document",
    envelope: "envelope",
    subject: "Subject",
    sent_by: "Sent by",
    signed_at: "Signed at",
    signer_claim: "the sender's own claim, in its signature",
    stamped_at: "Time-stamp (TSA; the signature existed by then)",
    stamp_unchecked: "present, not checked; the token states",
    stamp_unreadable: "present, not checked",
    no_stamp: "none",
    recipients: "Recipients and statuses (each signed by the agency reporting it)",
    no_receipt: "no status held",
    reported_by: "reported by",
    sender_said: "The sender",
    reason: "note",
};

fn account(out: &mut String, f: &Facts, w: &Words, vi: bool) {
    let _ = writeln!(
        out,
        "{}: {} {} ({} {})",
        w.document, f.code, f.document_id, w.envelope, f.envelope_id
    );
    let _ = writeln!(out, "{}: {}", w.subject, f.subject);
    let _ = writeln!(out, "{}: {}", w.sent_by, named(&f.sender.0, &f.sender.1));
    let _ = writeln!(
        out,
        "{}: {} ({})",
        w.signed_at,
        vn_time(f.signed_unix_ms),
        w.signer_claim
    );
    let stamp = match &f.stamp {
        StampFact::None => w.no_stamp.to_owned(),
        StampFact::Unchecked {
            claimed_unix_ms: Some(t),
        } => format!("{} {}", w.stamp_unchecked, vn_time(*t)),
        StampFact::Unchecked {
            claimed_unix_ms: None,
        } => w.stamp_unreadable.to_owned(),
        StampFact::Verified { unix_ms, tsa } => format!("{} ({tsa})", vn_time(*unix_ms)),
    };
    let _ = writeln!(out, "{}: {stamp}", w.stamped_at);
    let _ = writeln!(out, "{}:", w.recipients);
    for (code, name) in &f.recipients {
        let _ = writeln!(out, "  - {}", named(code, name));
        let mine: Vec<&ReceiptFact> = f
            .receipts
            .iter()
            .filter(|r| r.recipient == *code && r.status != 13)
            .collect();
        if mine.is_empty() {
            let _ = writeln!(out, "      {}", w.no_receipt);
        }
        for r in mine {
            let (sv, se) = status_names(r.status);
            let mut line = format!(
                "      {} {:02} {}",
                vn_time(r.at_unix_ms),
                r.status,
                if vi { sv } else { se }
            );
            if r.reporter != *code {
                let _ = write!(line, " ({} {})", w.reported_by, r.reporter);
            }
            if !r.description.is_empty() {
                let _ = write!(line, "; {}: {}", w.reason, r.description);
            }
            let _ = writeln!(out, "{line}");
        }
    }
    for r in f.receipts.iter().filter(|r| r.status == 13) {
        let (sv, se) = status_names(r.status);
        let _ = writeln!(
            out,
            "{}: {} 13 {}{}",
            w.sender_said,
            vn_time(r.at_unix_ms),
            if vi { sv } else { se },
            if r.description.is_empty() {
                String::new()
            } else {
                format!("; {}: {}", w.reason, r.description)
            }
        );
    }
}

/// The account, Vietnamese first, then English. Times are Vietnam time (UTC+7).
pub fn render(f: &Facts) -> String {
    let mut out = String::new();
    account(&mut out, f, &VI, true);
    out.push('\n');
    account(&mut out, f, &EN, false);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_in_vietnam_time() {
        assert_eq!(vn_time(0), "1970-01-01 07:00:00.000 +07:00");
        assert_eq!(vn_time(1_500), "1970-01-01 07:00:01.500 +07:00");
    }

    #[test]
    fn the_account_names_each_recipient_and_what_it_said() {
        let f = Facts {
            envelope_id: "e1".into(),
            document_id: "000.00.00.H53,2026/12/30,1/VP".into(),
            code: "1/VP".into(),
            subject: "Về việc thử".into(),
            sender: ("000.00.00.H53".into(), "UBND tỉnh".into()),
            signed_unix_ms: 0,
            stamp: StampFact::None,
            recipients: vec![
                ("000.00.00.H49".into(), String::new()),
                ("000.00.00.H50".into(), String::new()),
            ],
            receipts: vec![ReceiptFact {
                reporter: "000.00.00.H49".into(),
                recipient: "000.00.00.H49".into(),
                status: 6,
                description: String::new(),
                at_unix_ms: 1000,
            }],
        };
        let t = render(&f);
        assert!(t.contains("06 hoàn thành"), "{t}");
        assert!(t.contains("06 done"), "{t}");
        assert!(t.contains("no status held"), "{t}");
        assert!(t.contains("chưa có trạng thái nào"), "{t}");
    }
}
