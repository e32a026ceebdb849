//! edXML import/export against the public sample packages (../shared/testdata/edxml) and hostile
//! inputs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use lienthong_edxml::{
    self as edxml, EdxmlError, Imported, ImportedDocument, ImportedStatus, MAX_DEPTH,
    MAX_TEXT_BYTES,
};
use lienthong_proto::v1::{BusinessDocType, Priority, StatusCode, StatusReceipt, SteeringType};

fn samples_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/edxml");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("../shared/testdata/edxml is missing and CI=true");
    }
    println!("skipped: ../shared/testdata not present");
    None
}

const MALFORMED: &str = "all4u1089__truclienthong-example/edoc.edxml";

fn sample_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in std::fs::read_dir(dir).unwrap() {
        let sub = sub.unwrap().path();
        if !sub.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&sub).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "edxml") {
                out.push(f);
            }
        }
    }
    out.sort();
    out
}

fn load(dir: &Path, rel: &str) -> Imported {
    let bytes = std::fs::read(dir.join(rel)).unwrap();
    edxml::import(&bytes).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn document(dir: &Path, rel: &str) -> ImportedDocument {
    match load(dir, rel) {
        Imported::Document(d) => d,
        Imported::Status(_) => panic!("{rel} imported as a status"),
    }
}

fn status(dir: &Path, rel: &str) -> ImportedStatus {
    match load(dir, rel) {
        Imported::Status(s) => s,
        Imported::Document(_) => panic!("{rel} imported as a document"),
    }
}

fn unmapped<'a>(list: &'a [(String, String)], path: &str) -> Option<&'a str> {
    list.iter()
        .find(|(p, _)| p == path)
        .map(|(_, v)| v.as_str())
}

#[test]
fn every_well_formed_sample_imports_and_round_trips() {
    let Some(dir) = samples_dir() else { return };
    let files = sample_files(&dir);
    assert!(files.len() >= 16, "found only {} samples", files.len());
    for f in files {
        let rel = f.strip_prefix(&dir).unwrap().to_string_lossy().into_owned();
        if rel == MALFORMED {
            continue;
        }
        let first =
            edxml::import(&std::fs::read(&f).unwrap()).unwrap_or_else(|e| panic!("{rel}: {e}"));

        // The strict form with everything kept reproduces the whole import.
        let written = edxml::export(&first);
        let again = edxml::import(written.as_bytes())
            .unwrap_or_else(|e| panic!("{rel}: re-import failed: {e}\n{written}"));
        assert_eq!(first, again, "{rel}: full round trip differs\n{written}");
        assert!(written.contains("<edXML:edXMLEnvelope>"), "{rel}");
        assert!(written.contains("<edXML:MessageHeader>"), "{rel}");

        // The model-only writers give back the same model.
        match &first {
            Imported::Document(d) => {
                let xml = edxml::export_document(&d.envelope, &d.attachments);
                let Imported::Document(d2) = edxml::import(xml.as_bytes()).unwrap() else {
                    panic!("{rel}: document became a status");
                };
                assert_eq!(d.envelope, d2.envelope, "{rel}");
                assert_eq!(d.attachments, d2.attachments, "{rel}");
            }
            Imported::Status(s) => {
                let xml = edxml::export_status(&s.receipt);
                let Imported::Status(s2) = edxml::import(xml.as_bytes()).unwrap() else {
                    panic!("{rel}: status became a document");
                };
                assert_eq!(s.receipt, s2.receipt, "{rel}");
            }
        }

        // JSON form (lt-relay edxml to-json / from-json) is lossless too.
        let json = serde_json::to_string(&first).unwrap();
        let back: Imported = serde_json::from_str(&json).unwrap();
        assert_eq!(first, back, "{rel}: JSON round trip");
    }
}

#[test]
fn malformed_sample_is_refused_with_element_and_line() {
    let Some(dir) = samples_dir() else { return };
    let bytes = std::fs::read(dir.join(MALFORMED)).unwrap();
    let err = edxml::import(&bytes).unwrap_err();
    assert!(
        matches!(err, EdxmlError::Malformed { .. }),
        "unexpected error {err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("line "), "{msg}");
    assert!(err.line().unwrap() > 1, "{msg}");
    assert_eq!(err.element(), Some("edXML:From"), "{msg}");
    assert!(msg.contains("opened on line 7"), "{msg}");
}

#[test]
fn new_document_fields() {
    let Some(dir) = samples_dir() else { return };
    let d = document(&dir, "QuangChuIT__edoc-integrator/edoc_new.edxml");
    let e = &d.envelope;
    assert_eq!(e.id, "");
    let from = e.from.as_ref().unwrap();
    assert_eq!(from.code, "000.00.11.H53");
    assert_eq!(from.name, "Sở Tính");
    assert_eq!(from.address, "");
    assert_eq!(from.email, "stc@tayninh.gov.vn");
    assert_eq!(e.to.len(), 1);
    assert_eq!(e.to[0].code, "000.00.01.A53");
    assert_eq!(e.to[0].name, "Văn phòng tỉnh ủy");
    assert_eq!(e.to[0].address, "Tỉnh Tây Ninh");
    assert_eq!(e.document_id, "000.00.11.H53,2020/10/30,2491/STC-BCTC");
    let code = e.code.as_ref().unwrap();
    assert_eq!(
        (code.number.as_str(), code.notation.as_str()),
        ("2491", "STC-BCTC")
    );
    let prom = e.promulgation.as_ref().unwrap();
    assert_eq!(prom.place, "Tây Ninh");
    // Written 30/10/2020 (dd/MM/yyyy) in the package.
    assert_eq!(prom.date, "2020-10-30");
    let t = e.document_type.as_ref().unwrap();
    assert_eq!(
        (t.r#type, t.type_detail, t.type_name.as_str()),
        (1, 0, "Công văn")
    );
    assert_eq!(e.subject, "Báo cáo tài chính tỉnh");
    assert_eq!(e.content, "Báo cáo tài chính tỉnh");
    let signer = e.signer.as_ref().unwrap();
    assert_eq!(signer.full_name, "");
    assert_eq!(e.due_date, "");
    let other = e.other_info.as_ref().unwrap();
    assert_eq!(other.priority, Priority::Normal as i32);
    assert_eq!(other.sphere_of_promulgation, "Liên thông văn bản");
    assert_eq!(other.promulgation_amount, 2);
    assert_eq!(other.page_amount, 22);
    assert_eq!(other.appendixes, vec![String::new()]);
    assert_eq!(e.steering_type, SteeringType::Steering as i32);
    assert_eq!(
        e.to_places,
        vec!["Cac bo va co quan ngang bo", "Uy ban nhan dan cac tinh, TP"]
    );
    assert_eq!(e.trace.len(), 1);
    assert_eq!(e.trace[0].agency, "000.00.00.G22");
    // 2018/09/28 00:00:00 in Vietnam (UTC+7).
    assert_eq!(e.trace[0].received_unix_ms, 1_538_067_600_000);
    let b = e.business.as_ref().unwrap();
    assert_eq!(b.doc_type, BusinessDocType::BusinessNew as i32);
    assert_eq!(b.reason, "Văn bản điện tử mới");
    // An impossible date inside a document id is kept as text: ids are opaque.
    assert_eq!(
        b.target_document_id,
        "000.00.00.G22,2014/02/30,7806/VPCP-TTĐT"
    );
    assert!(!b.paper);
    let staff = b.staff.as_ref().unwrap();
    assert_eq!(staff.staff, "Nguyễn Thị Ngọc Trâm");
    assert_eq!(staff.mobile, "84912000001");

    assert_eq!(d.attachments.len(), 1);
    let (m, bytes) = &d.attachments[0];
    assert_eq!(m.name, "1896_QD-TTg_m_294779.doc");
    assert_eq!(m.content_type, "application/zip");
    assert_eq!(m.description, "1896_QD-TTg_m_294779.doc");
    assert_eq!(m.size, bytes.len() as u64);
    assert!(bytes.starts_with(b"PK"), "a zip, kept zipped");
    assert_eq!(
        m.sha256,
        ring_digest(bytes),
        "sha256 is computed from the decoded bytes"
    );
    assert_eq!(e.attachments, vec![m.clone()]);

    assert_eq!(
        unmapped(
            &d.unmapped,
            "edXMLEnvelope/edXMLHeader/MessageHeader/From/OrganizationInCharge"
        ),
        Some("Tỉnh Tây Ninh")
    );
    assert_eq!(
        unmapped(
            &d.unmapped,
            "edXMLEnvelope/edXMLHeader/MessageHeader/OtherInfo/Direction"
        ),
        Some("false")
    );
    let sig = d.original_signature.as_deref().unwrap();
    assert!(
        sig.starts_with("<Signature>") && sig.ends_with("</Signature>"),
        "{sig}"
    );
    assert!(sig.contains("<DigestValue>FwgIqsSYJshUS2+wlOM61L+q7Aw=</DigestValue>"));
}

fn ring_digest(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

#[test]
fn update_document_fields() {
    let Some(dir) = samples_dir() else { return };
    let d = document(&dir, "QuangChuIT__edoc-integrator/edoc_update.edxml");
    let e = &d.envelope;
    assert_eq!(e.from.as_ref().unwrap().code, "000.00.00.G22");
    assert_eq!(e.from.as_ref().unwrap().phone, "8043100");
    assert_eq!(e.from.as_ref().unwrap().fax, "048989898789");
    assert_eq!(e.from.as_ref().unwrap().website, "vpcp.vn");
    let codes: Vec<&str> = e.to.iter().map(|t| t.code.as_str()).collect();
    assert_eq!(codes, ["000.00.00.H53", "000.00.12.H53", "000.00.00.G17"]);
    assert_eq!(e.promulgation.as_ref().unwrap().date, "2018-09-28");
    assert_eq!(e.due_date, "2018-09-28");
    let signer = e.signer.as_ref().unwrap();
    assert_eq!(signer.competence, "TL. BO TRUONG");
    assert_eq!(
        signer.position,
        "Cuc truong cuc ung dung cong nghe thong tin"
    );
    assert_eq!(signer.full_name, "Nguyen Thanh Phuc");
    let b = e.business.as_ref().unwrap();
    assert_eq!(b.doc_type, BusinessDocType::BusinessUpdate as i32);
    assert_eq!(b.reason, "Cập nhật văn bản điện tử");
    assert_eq!(
        b.target_document_id,
        "000.00.00.G22,2014/02/30,7806/VPCP-TTĐT"
    );
    // BussinessDocumentInfo has no field in the model: kept, receivers in order.
    let base = "edXMLEnvelope/edXMLHeader/TraceHeaderList/Bussiness/BussinessDocumentInfo";
    assert_eq!(
        unmapped(&d.unmapped, &format!("{base}/DocumentInfo")),
        Some("1")
    );
    assert_eq!(
        unmapped(
            &d.unmapped,
            &format!("{base}/ReceiverList/Receiver/OrganId")
        ),
        Some("000.00.00.H41")
    );
    assert_eq!(
        unmapped(
            &d.unmapped,
            &format!("{base}/ReceiverList/Receiver[2]/OrganId")
        ),
        Some("000.00.00.H14")
    );
    assert_eq!(
        unmapped(
            &d.unmapped,
            "edXMLEnvelope/edXMLHeader/MessageHeader/To[3]/OrganizationInCharge"
        ),
        Some("Sở Thông tin truyền thông Hải Phòng")
    );
}

#[test]
fn revoke_document_fields() {
    let Some(dir) = samples_dir() else { return };
    let d = document(
        &dir,
        "all4u1089__truclienthong-example/edoc_revocation.edxml",
    );
    let e = &d.envelope;
    let b = e.business.as_ref().unwrap();
    assert_eq!(b.doc_type, BusinessDocType::BusinessRevoke as i32);
    assert_eq!(b.reason, "Thu hồi văn bản điện tử");
    assert_eq!(b.target_document_id, "");
    assert_eq!(e.response_for.len(), 1);
    let r = &e.response_for[0];
    assert_eq!(r.organ_id, "000.00.00.H14");
    assert_eq!(r.code, "267/VPCP-TTĐT");
    assert_eq!(r.document_id, "000.00.04.G14,2012/08/06,267/VPCP-TTĐT");
    assert_eq!(r.promulgation_date, "2018-09-28");
    assert_eq!(e.to.len(), 3);
    assert_eq!(d.attachments.len(), 1);
}

#[test]
fn trace_and_business_in_either_order() {
    let Some(dir) = samples_dir() else { return };
    let d = document(
        &dir,
        "all4u1089__truclienthong-example/dc0bdef0-c7a3-4aaf-b717-777303442973.edxml",
    );
    assert_eq!(d.envelope.trace.len(), 1);
    assert_eq!(d.envelope.trace[0].agency, "000.00.00.G22");
    assert_eq!(
        d.envelope.business.as_ref().unwrap().doc_type,
        BusinessDocType::BusinessNew as i32
    );
}

fn check_status(s: &StatusReceipt, code: StatusCode, description: &str) {
    assert_eq!(s.status, code as i32);
    assert_eq!(s.description, description);
}

#[test]
fn status_fields() {
    let Some(dir) = samples_dir() else { return };
    let s = status(
        &dir,
        "QuangChuIT__edoc-integrator/status_processing_05.edxml",
    );
    let r = &s.receipt;
    assert_eq!(r.id, "");
    let from = r.from.as_ref().unwrap();
    assert_eq!(from.code, "000.00.00.H41");
    assert_eq!(from.name, "UBND Tỉnh Nghệ An");
    assert_eq!(from.phone, "0383 840418");
    let rf = r.response_for.as_ref().unwrap();
    assert_eq!(rf.organ_id, "000.00.00.G22");
    assert_eq!(rf.code, "7816/VPCP-TTĐT");
    assert_eq!(rf.document_id, "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT");
    assert_eq!(rf.envelope_id, "");
    let staff = r.staff.as_ref().unwrap();
    assert_eq!(staff.department, "Phong hanh chinh");
    assert_eq!(staff.staff, "Nguyen thi ngoc tram");
    assert_eq!(staff.mobile, "84912000001");
    assert_eq!(staff.email, "ngoctram@nghean.vn");
    check_status(r, StatusCode::StatusProcessing, "Đang xử lý văn bản đến");
    // 2015/09/20 11:08:36 at UTC+7.
    assert_eq!(r.timestamp_unix_ms, 1_442_722_116_000);
    assert_eq!(r.to, "000.00.00.G22");
    assert_eq!(r.recipient, "000.00.00.H41");
    assert_eq!(
        unmapped(
            &s.unmapped,
            "edXMLEnvelope/edXMLHeader/MessageHeader/ResponseFor/PromulgationDate"
        ),
        Some("2015/09/30")
    );

    let ex = "all4u1089__truclienthong-example";
    let cases = [
        ("status.edxml", StatusCode::StatusArrived),
        ("status_inbox_ 01.edxml", StatusCode::StatusArrived),
        ("status_rejection_02.edxml", StatusCode::StatusRejected),
        ("status_acceptance_03.edxml", StatusCode::StatusAccepted),
        ("status_assignment_04.edxml", StatusCode::StatusAssigned),
        ("status_processing_05.edxml", StatusCode::StatusProcessing),
        ("status_finish_06.edxml", StatusCode::StatusDone),
        (
            "status_cancellation_13.edxml",
            StatusCode::StatusRecallRequested,
        ),
        (
            "status_change-acceptance_15.edxml",
            StatusCode::StatusRecallAgreed,
        ),
    ];
    for (file, code) in cases {
        let s = status(&dir, &format!("{ex}/{file}"));
        assert_eq!(s.receipt.status, code as i32, "{file}");
    }
    let s = status(&dir, &format!("{ex}/status_rejection_02.edxml"));
    assert_eq!(
        s.receipt.description,
        "Văn thư - Phòng Văn thư - Lưu trữ: Từ chối không tiếp nhận văn bản điện tử"
    );
    // 13 is sent by the document's sender to a recipient.
    let s = status(&dir, &format!("{ex}/status_cancellation_13.edxml"));
    assert_eq!(s.receipt.from.as_ref().unwrap().code, "000.00.00.G22");
    assert_eq!(s.receipt.to, "000.00.00.H41");
    assert_eq!(s.receipt.recipient, "000.00.00.H41");
}

// ------------------------------------------------------------------------------------------
// Synthetic packages.

const NS: &str = "http://www.mic.gov.vn/TBT/QCVN_102_2016";

fn status_package(inner: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<edXML xmlns=\"{NS}\">\n<edXMLEnvelope>\n<edXMLHeader>\n\
         <MessageHeader>\n{inner}\n</MessageHeader>\n</edXMLHeader>\n</edXMLEnvelope>\n</edXML>\n"
    )
}

#[test]
fn status_fields_under_a_status_element() {
    let xml = status_package(
        "<From><OrganId>000.00.00.H41</OrganId><OrganName>X</OrganName></From>\n\
         <Status><StatusCode>02</StatusCode><Description>sai địa chỉ</Description>\
         <Timestamp>20/09/2015 11:08:36</Timestamp></Status>",
    );
    let Imported::Status(s) = edxml::import(xml.as_bytes()).unwrap() else {
        panic!("not a status")
    };
    check_status(&s.receipt, StatusCode::StatusRejected, "sai địa chỉ");
    assert_eq!(s.receipt.timestamp_unix_ms, 1_442_722_116_000);
}

#[test]
fn impossible_date_is_refused_with_element_and_line() {
    let xml = format!(
        "<edXML:edXMLEnvelope xmlns:edXML=\"{NS}\">\n<edXML:edXMLHeader>\n\
         <edXML:MessageHeader>\n<edXML:PromulgationInfo>\n\
         <edXML:PromulgationDate>2014/02/30</edXML:PromulgationDate>\n\
         </edXML:PromulgationInfo>\n</edXML:MessageHeader>\n</edXML:edXMLHeader>\n\
         </edXML:edXMLEnvelope>\n"
    );
    let err = edxml::import(xml.as_bytes()).unwrap_err();
    assert_eq!(err.element(), Some("edXML:PromulgationDate"), "{err}");
    assert_eq!(err.line(), Some(5), "{err}");
    assert!(err.to_string().contains("2014/02/30"), "{err}");
}

#[test]
fn doctype_with_entity_is_refused() {
    let xml = format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE edXML [\n<!ENTITY a \"aaaaaaaaaa\">\n\
         <!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\n]>\n<edXML xmlns=\"{NS}\"><x>&b;</x></edXML>\n"
    );
    let err = edxml::import(xml.as_bytes()).unwrap_err();
    assert!(matches!(err, EdxmlError::Refused { .. }), "{err:?}");
    assert_eq!(err.element(), Some("!DOCTYPE"));
    assert_eq!(err.line(), Some(2));

    // An entity reference without a DTD is refused too, naming the element it is in.
    let xml = format!("<edXML xmlns=\"{NS}\">\n<Subject>&lol;</Subject></edXML>");
    let err = edxml::import(xml.as_bytes()).unwrap_err();
    assert!(matches!(err, EdxmlError::Refused { .. }), "{err:?}");
    assert_eq!(err.element(), Some("Subject"));
    assert_eq!(err.line(), Some(2));
}

#[test]
fn deep_nesting_is_refused() {
    let depth = 10_000;
    let mut xml = format!("<edXML xmlns=\"{NS}\">\n");
    for _ in 0..depth {
        xml.push_str("<a>");
    }
    for _ in 0..depth {
        xml.push_str("</a>");
    }
    xml.push_str("</edXML>");
    let err = edxml::import(xml.as_bytes()).unwrap_err();
    assert!(
        matches!(err, EdxmlError::Limit { max, .. } if max == MAX_DEPTH),
        "{err:?}"
    );
    assert_eq!(err.element(), Some("a"));
    assert_eq!(err.line(), Some(2));
}

#[test]
fn huge_text_and_attribute_are_refused() {
    let big = "x".repeat(MAX_TEXT_BYTES + 1);
    let xml = format!("<edXML xmlns=\"{NS}\">\n<edXMLEnvelope>\n<Subject>{big}</Subject>");
    let err = edxml::import(xml.as_bytes()).unwrap_err();
    assert!(
        matches!(err, EdxmlError::Limit { max, .. } if max == MAX_TEXT_BYTES),
        "{err:?}"
    );
    assert_eq!(err.element(), Some("Subject"));
    assert_eq!(err.line(), Some(3));

    let big = "y".repeat(100 * 1024 * 1024);
    let xml = format!("<edXML xmlns=\"{NS}\">\n<a b=\"{big}\"/></edXML>");
    let started = std::time::Instant::now();
    let err = edxml::import(xml.as_bytes()).unwrap_err();
    assert!(matches!(err, EdxmlError::Limit { .. }), "{err:?}");
    assert_eq!(err.element(), Some("a"));
    assert_eq!(err.line(), Some(2));
    assert!(
        started.elapsed().as_secs() < 10,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn undeclared_prefix_and_second_root_are_refused() {
    let err = edxml::import(b"<edXML>\n<foo:bar/></edXML>").unwrap_err();
    assert!(matches!(err, EdxmlError::Refused { .. }), "{err:?}");
    assert_eq!(err.element(), Some("foo:bar"));
    assert_eq!(err.line(), Some(2));
    let err = edxml::import(b"<edXML/>\n<edXML/>").unwrap_err();
    assert!(matches!(err, EdxmlError::Malformed { .. }), "{err:?}");
}

#[test]
fn too_many_elements_are_refused() {
    let mut xml = format!("<edXML xmlns=\"{NS}\">\n");
    for _ in 0..=edxml::MAX_ELEMENTS {
        xml.push_str("<a/>");
    }
    xml.push_str("</edXML>");
    let err = edxml::import(xml.as_bytes()).unwrap_err();
    assert!(
        matches!(err, EdxmlError::Limit { max, .. } if max == edxml::MAX_ELEMENTS),
        "{err:?}"
    );
    assert_eq!(err.element(), Some("a"));
    assert_eq!(err.line(), Some(2));
}

// ------------------------------------------------------------------------------------------
// Attachments decoded from the input in pieces (issue 8: large packages).

/// A document package with one manifest reference `cid:1` and `attachment` as the body of
/// `AttachmentEncoded/Attachment` (after its ContentId), starting on line 9.
fn document_package(header_extra: &str, attachment: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<edXML:edXML xmlns:edXML=\"{NS}\">\n<edXML:edXMLEnvelope>\n\
         <edXML:edXMLHeader><edXML:MessageHeader><edXML:DocumentId>1</edXML:DocumentId>\
         {header_extra}</edXML:MessageHeader></edXML:edXMLHeader>\n\
         <edXML:edXMLBody><edXML:edXMLManifest><edXML:Reference><edXML:ContentId>cid:1\
         </edXML:ContentId><edXML:AttachmentName>a.bin</edXML:AttachmentName>\
         </edXML:Reference></edXML:edXMLManifest></edXML:edXMLBody>\n</edXML:edXMLEnvelope>\n\
         <edXML:AttachmentEncoded>\n<edXML:Attachment><edXML:ContentId>cid:1</edXML:ContentId>\n\
         {attachment}\n</edXML:Attachment></edXML:AttachmentEncoded>\n</edXML:edXML>\n"
    )
}

fn only_attachment(xml: &str) -> Vec<u8> {
    let Imported::Document(d) = edxml::import(xml.as_bytes()).unwrap() else {
        panic!("not a document")
    };
    assert_eq!(d.attachments.len(), 1);
    d.attachments.into_iter().next().unwrap().1
}

#[test]
fn issue8_attachment_text_in_any_form_decodes() {
    // "Hello, edXML!" in base64 is SGVsbG8sIGVkWE1MIQ==: split by CRLF and LF line ends, a
    // comment, a CDATA section, character references (one of them a line feed) and no padding.
    let text = "<edXML:ContentTransferEncoded>\r\n  SGVs\r\nbG8s<!-- cut -->IGVk\
                <![CDATA[WE1M]]>&#73;&#x51;&#10;\t\n</edXML:ContentTransferEncoded>";
    assert_eq!(
        only_attachment(&document_package("", text)),
        b"Hello, edXML!"
    );
}

#[test]
fn issue8_invalid_base64_names_element_line_and_offset() {
    let text = format!(
        "<edXML:ContentTransferEncoded>\n{}\nQUJD!\n</edXML:ContentTransferEncoded>",
        "QUJD".repeat(30)
    );
    let err = edxml::import(document_package("", &text).as_bytes()).unwrap_err();
    assert!(matches!(err, EdxmlError::BadValue { .. }), "{err:?}");
    assert_eq!(err.element(), Some("edXML:ContentTransferEncoded"));
    assert_eq!(err.line(), Some(9));
    let msg = err.to_string();
    // The value is the start of the text, shortened as for any element; the offset counts
    // base64 symbols, whitespace excluded.
    assert!(
        msg.contains(&format!("\"{}…\"", &"QUJD".repeat(20))),
        "{msg}"
    );
    assert!(
        msg.ends_with("is not base64: Invalid symbol 33, offset 124."),
        "{msg}"
    );
}

#[test]
fn issue8_attachment_text_kept_as_unmapped_round_trips() {
    // A ContentTransferEncoded where the model has no field for it is kept with its text, read
    // back from the input (line ends normalized, trimmed).
    let xml = document_package(
        "<edXML:ContentTransferEncoded>\r\n QUJD\r\nREVG&amp; \r\n</edXML:ContentTransferEncoded>",
        "<edXML:ContentTransferEncoded>QUJD</edXML:ContentTransferEncoded>",
    );
    let first = edxml::import(xml.as_bytes()).unwrap();
    let Imported::Document(d) = &first else {
        panic!("not a document")
    };
    assert_eq!(
        unmapped(
            &d.unmapped,
            "edXMLEnvelope/edXMLHeader/MessageHeader/ContentTransferEncoded"
        ),
        Some("QUJD\nREVG&")
    );
    assert_eq!(d.attachments[0].1, b"ABC");
    let again = edxml::import(edxml::export(&first).as_bytes()).unwrap();
    assert_eq!(first, again);
}

/// xorshift64 bytes: reproducible and not compressible by accident.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn issue8_64_mib_attachment_decodes_to_the_same_sha256() {
    use base64::Engine as _;
    const SIZE: usize = 64 * 1024 * 1024;
    // The raw bytes are dropped before the import, so that only the package and what the
    // import makes are held while it runs.
    let (sha, xml) = {
        let data = pseudo_random(SIZE);
        let sha = ring_digest(&data);
        // MIME-style lines of 76 characters with CRLF: line breaks fall inside and across the
        // decoder's chunks.
        let mut text = String::with_capacity(SIZE / 57 * 78 + 100);
        text.push_str("<edXML:ContentTransferEncoded>");
        let mut line = String::with_capacity(80);
        for raw in data.chunks(57) {
            line.clear();
            base64::engine::general_purpose::STANDARD.encode_string(raw, &mut line);
            text.push_str(&line);
            text.push_str("\r\n");
        }
        text.push_str("</edXML:ContentTransferEncoded>");
        (sha, document_package("", &text))
    };
    assert!(xml.len() < edxml::MAX_EDXML_BYTES);
    let Imported::Document(d) = edxml::import(xml.as_bytes()).unwrap() else {
        panic!("not a document")
    };
    drop(xml);
    let [(manifest, bytes)] = d.attachments.as_slice() else {
        panic!("{} attachments", d.attachments.len())
    };
    assert_eq!(bytes.len(), SIZE);
    assert_eq!(manifest.size, SIZE as u64);
    assert_eq!(ring_digest(bytes), sha, "decoded bytes' SHA-256");
    assert_eq!(manifest.sha256, sha, "manifest SHA-256");
}

#[test]
fn fuzz_seeds_import_and_round_trip() {
    // The project's own seed packages for fuzz/ (the samples are copied in by
    // fuzz/seed-corpus.sh): each must import and survive export → import, as the fuzz target
    // checks.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/edxml_import");
    let mut seen = 0;
    for f in std::fs::read_dir(&dir).unwrap() {
        let f = f.unwrap().path();
        let first = edxml::import(&std::fs::read(&f).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let written = edxml::export(&first);
        let again = edxml::import(written.as_bytes())
            .unwrap_or_else(|e| panic!("{}: re-import: {e}\n{written}", f.display()));
        assert_eq!(first, again, "{}", f.display());
        seen += 1;
    }
    assert!(seen >= 2, "seeds missing in {}", dir.display());
}

#[test]
fn issue8_signature_keeps_namespaces_declared_above_it() {
    // Found by fuzz/edxml_import: a Signature relying on a prefix declared on the root (the usual
    // place for `ds:`) was written back without it, and the exported package was refused.
    let xml = format!(
        "<edXML:edXML xmlns:edXML=\"{NS}\" xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" \
         xmlns:unused=\"urn:u\">\n<edXML:edXMLEnvelope><edXML:edXMLHeader><edXML:MessageHeader>\
         <edXML:DocumentId>1</edXML:DocumentId></edXML:MessageHeader>\n\
         <ds:Signature><ds:SignedInfo ds:Id='a'><edXML:X>1</edXML:X></ds:SignedInfo>\
         </ds:Signature></edXML:edXMLHeader></edXML:edXMLEnvelope></edXML:edXML>"
    );
    let first = edxml::import(xml.as_bytes()).unwrap();
    let Imported::Document(d) = &first else {
        panic!("not a document")
    };
    assert_eq!(
        d.original_signature.as_deref(),
        Some(
            "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" \
             xmlns:edXML=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\"><ds:SignedInfo ds:Id='a'>\
             <edXML:X>1</edXML:X></ds:SignedInfo></ds:Signature>"
        )
    );
    let written = edxml::export(&first);
    let again = edxml::import(written.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{written}"));
    assert_eq!(first, again);

    // A signature that declares what it uses, or uses no prefix, is kept byte for byte.
    let own = "<Signature xmlns:ds=\"urn:x\"><ds:X>1</ds:X></Signature>";
    let xml = format!(
        "<edXMLEnvelope xmlns=\"{NS}\" xmlns:ds=\"urn:other\"><edXMLHeader><MessageHeader>\
         <DocumentId>1</DocumentId></MessageHeader>{own}</edXMLHeader></edXMLEnvelope>"
    );
    let Imported::Document(d) = edxml::import(xml.as_bytes()).unwrap() else {
        panic!("not a document")
    };
    assert_eq!(d.original_signature.as_deref(), Some(own));
}

#[test]
fn issue8_elements_inside_a_mapped_field_round_trip() {
    // Found by fuzz/edxml_import: an element inside a field that also has text is kept under the
    // field's path, and was written back after the field, as a second element of its name.
    let xml = format!(
        "<edXMLEnvelope xmlns=\"{NS}\"><edXMLHeader><MessageHeader><DocumentId>1</DocumentId>\
         <Subject>x<Foo>y</Foo></Subject><OtherInfo><Appendixes><Appendix>a</Appendix>\
         <Appendix>b<Note>n<Deep>d</Deep></Note></Appendix></Appendixes></OtherInfo>\
         </MessageHeader></edXMLHeader></edXMLEnvelope>"
    );
    let first = edxml::import(xml.as_bytes()).unwrap();
    let Imported::Document(d) = &first else {
        panic!("not a document")
    };
    assert_eq!(d.envelope.subject, "x");
    let mh = "edXMLEnvelope/edXMLHeader/MessageHeader";
    assert_eq!(
        unmapped(&d.unmapped, &format!("{mh}/Subject/Foo")),
        Some("y")
    );
    assert_eq!(
        unmapped(
            &d.unmapped,
            &format!("{mh}/OtherInfo/Appendixes/Appendix[2]/Note/Deep")
        ),
        Some("d")
    );
    let written = edxml::export(&first);
    let again = edxml::import(written.as_bytes()).unwrap();
    assert_eq!(first, again, "{written}");
}

#[test]
fn issue8_element_names_that_are_not_xml_names_are_refused() {
    // Found by fuzz/edxml_import: the parser let `<F]]>` through; it was kept as unmapped and
    // could not be written back. `[` and `/` would also break the unmapped path syntax.
    for (bad, element) in [
        ("<F]]>x</F]]>", "F]]"),
        ("<Foo[2]/>", "Foo[2]"),
        ("<a:b:c xmlns:a=\"urn:a\"/>", "a:b:c"),
        ("<1st/>", "1st"),
    ] {
        let xml = format!(
            "<edXMLEnvelope xmlns=\"{NS}\"><edXMLHeader><MessageHeader>\n{bad}\
             </MessageHeader></edXMLHeader></edXMLEnvelope>"
        );
        let err = edxml::import(xml.as_bytes()).unwrap_err();
        assert!(
            matches!(err, EdxmlError::Malformed { .. }),
            "{bad}: {err:?}"
        );
        assert_eq!(err.element(), Some(element), "{bad}: {err}");
        assert_eq!(err.line(), Some(2), "{bad}: {err}");
        assert!(err.to_string().contains("not an XML element name"), "{err}");
    }

    // Unusual but valid names are kept and written back.
    let xml = format!(
        "<edXMLEnvelope xmlns=\"{NS}\"><edXMLHeader><MessageHeader><DocumentId>1</DocumentId>\
         <Tiêu·đề_1.a-b>v</Tiêu·đề_1.a-b></MessageHeader></edXMLHeader></edXMLEnvelope>"
    );
    let first = edxml::import(xml.as_bytes()).unwrap();
    let again = edxml::import(edxml::export(&first).as_bytes()).unwrap();
    assert_eq!(first, again);
}
