//! The signatures inside a document's PDF attachments, as checked on delivery
//! (`lienthong_node::pdf_check`): one row per signature under the document on the documents
//! page, with its verdict, signer, time and what its time-stamp says.

use lienthong_common::store::{PdfReport, PdfVerdict};
use maud::{html, Markup};

use super::{t, time_text, Lang};

/// The CSS class of a verdict's cell (the console's colours for ok / warning / failing).
fn class(v: PdfVerdict) -> &'static str {
    match v {
        PdfVerdict::Valid => "ok",
        PdfVerdict::UnknownSigner => "warning",
        PdfVerdict::Invalid => "failing",
    }
}

fn verdict_text(lang: Lang, v: PdfVerdict) -> &'static str {
    match v {
        PdfVerdict::Valid => t(lang, "pdf_valid"),
        PdfVerdict::Invalid => t(lang, "pdf_invalid"),
        PdfVerdict::UnknownSigner => t(lang, "pdf_unknown_signer"),
    }
}

/// The table of `report`: attachment, field, verdict (and why), signer, signing time.
pub(super) fn signatures(lang: Lang, report: &PdfReport) -> Markup {
    html! {
        h2 { (t(lang, "pdf_signatures")) }
        p.note { (t(lang, "pdf_checked")) " " (time_text(report.checked_unix_ms)) }
        table #pdf-signatures {
            tr {
                th { (t(lang, "pdf_attachment")) }
                th { (t(lang, "pdf_field")) }
                th { (t(lang, "pdf_verdict")) }
                th { (t(lang, "pdf_signer")) }
                th { (t(lang, "pdf_signed_at")) }
            }
            @for a in &report.attachments {
                @if let Some(why) = &a.not_checked {
                    tr { td { (a.name) } td { "—" } td.warning colspan="3" { (t(lang, "pdf_not_checked")) ": " (why) } }
                } @else if a.signatures.is_empty() {
                    tr { td { (a.name) } td { "—" } td colspan="3" { (t(lang, "pdf_unsigned")) } }
                }
                @for s in &a.signatures {
                    tr.pdf-signature data-verdict=(s.verdict.as_str()) {
                        td { (a.name) }
                        td { (s.field.as_deref().unwrap_or("—")) }
                        td class=(class(s.verdict)) {
                            (verdict_text(lang, s.verdict))
                            @if let Some(why) = &s.why { br; small { (why) } }
                            @if s.changed_after_signing { br; small { (t(lang, "pdf_changed")) } }
                            @if let Some(ts) = &s.time_stamp {
                                br; small { (t(lang, "pdf_time_stamp")) ": " (ts.status)
                                    @if let Some(time) = &ts.time { " " (time) } }
                            }
                        }
                        td { (s.signer.as_deref().unwrap_or("—")) }
                        td { (s.signing_time.as_deref().unwrap_or("—")) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use lienthong_common::store::{PdfAttachmentReport, PdfSignatureKind, PdfSignatureReport};

    use super::*;

    fn sig(verdict: PdfVerdict, why: Option<&str>) -> PdfSignatureReport {
        PdfSignatureReport {
            field: Some("Signature1".into()),
            kind: PdfSignatureKind::Signature,
            verdict,
            why: why.map(Into::into),
            signer: Some("Nguyễn Văn An".into()),
            signing_time: Some("2025-01-02 03:04:05 UTC".into()),
            covers_whole_file: true,
            changed_after_signing: false,
            time_stamp: None,
        }
    }

    #[test]
    fn each_signature_is_a_row_with_its_verdict_in_both_languages() {
        let attachment = |name: &str, signatures| PdfAttachmentReport {
            name: name.into(),
            sha256: "ab".into(),
            size: 1,
            not_checked: None,
            signatures,
        };
        let report = PdfReport {
            checked_unix_ms: 0,
            attachments: vec![
                attachment("qd.pdf", vec![sig(PdfVerdict::Valid, None)]),
                attachment(
                    "sua.pdf",
                    vec![sig(PdfVerdict::Invalid, Some("messageDigest differs"))],
                ),
                attachment("trang.pdf", vec![]),
            ],
        };
        let en = signatures(Lang::En, &report).into_string();
        assert_eq!(en.matches("class=\"pdf-signature\"").count(), 2, "{en}");
        assert!(en.contains("data-verdict=\"invalid\""));
        assert!(en.contains("class=\"failing\""));
        assert!(en.contains("messageDigest differs"));
        assert!(en.contains("no signature"));
        let vi = signatures(Lang::Vi, &report).into_string();
        assert!(
            vi.contains("KHÔNG hợp lệ") && vi.contains("Nguyễn Văn An"),
            "{vi}"
        );
    }
}
