//! edXML through the gateways, with real processes: `lt-gateway send --edxml` at one end,
//! `lt-gateway fetch --edxml` at the other; the package's fields, attachment bytes, unmapped
//! elements and its own Signature arrive intact; an edXML status package posted to `/v1/status`
//! reaches the sender.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use lienthong_edxml::{self as edxml, Imported};
use lienthong_harness::Network;
use lienthong_proto::v1::{
    AttachmentManifest, DocumentCode, DocumentType, EdxmlExtras, EdxmlField, Envelope,
    Organization, PromulgationInfo, ReceiptResponseFor, StatusReceipt,
};
use serde_json::Value;
use support::{code, gateway_exe, two_gateways, wait_for};

const A: &str = "000.00.21.H53";
const B: &str = "000.00.07.H49";

fn gw(net: &Network, agency: &str, args: &[&str]) -> Value {
    let api = format!("http://{}", net.nodes[&code(agency)].api);
    let out = Command::new(gateway_exe())
        .args(["--api", &api, "--json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lt-gateway {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn package() -> (String, Vec<u8>) {
    let today = lienthong_common::envelope::format_date(
        lienthong_common::envelope::today_in_vietnam(lienthong_common::now_utc()),
    );
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let env = Envelope {
        from: Some(Organization {
            code: A.into(),
            name: "UBND xã A".into(),
            ..Default::default()
        }),
        to: vec![Organization {
            code: B.into(),
            name: "UBND xã B".into(),
            ..Default::default()
        }],
        code: Some(DocumentCode {
            number: "15".into(),
            notation: "UBND-VP".into(),
        }),
        promulgation: Some(PromulgationInfo {
            place: "Tây Ninh".into(),
            date: today,
        }),
        document_type: Some(DocumentType {
            r#type: 1,
            type_detail: 0,
            type_name: "Công văn".into(),
        }),
        subject: "Về việc thử nghiệm gói tin edXML".into(),
        edxml: Some(EdxmlExtras {
            unmapped: vec![EdxmlField {
                path: "edXMLEnvelope/edXMLHeader/MessageHeader/OtherInfo/Direction".into(),
                value: "false".into(),
            }],
            original_signature: "<Signature><SignatureValue>dGVzdA==</SignatureValue></Signature>"
                .into(),
        }),
        ..Default::default()
    };
    let sha = ring::digest::digest(&ring::digest::SHA256, &bytes)
        .as_ref()
        .to_vec();
    let manifest = AttachmentManifest {
        name: "bien-ban.pdf".into(),
        content_type: "application/pdf".into(),
        description: "Biên bản".into(),
        size: bytes.len() as u64,
        sha256: sha,
    };
    (
        edxml::export_document(&env, &[(manifest, bytes.clone())]),
        bytes,
    )
}

#[test]
fn an_edxml_package_crosses_the_network_intact() {
    let (dir, mut net) = two_gateways(A, B);

    let (pkg, bytes) = package();
    let file = dir.path().join("out.edxml");
    std::fs::write(&file, &pkg).unwrap();
    let sent = gw(&net, A, &["send", "--edxml", file.to_str().unwrap()]);
    let id = sent["envelope_id"].as_str().unwrap().to_owned();
    let doc = sent["document_id"].as_str().unwrap().to_owned();
    let b = net.client(&code(B)).unwrap();
    wait_for(Duration::from_secs(30), "delivery to B", || {
        b.inbox(&code(B))
            .ok()
            .filter(|i| i.iter().any(|e| e.envelope.id == id))
    });

    let out = dir.path().join("fetched");
    let fetched = gw(
        &net,
        B,
        &["fetch", &id, "--out", out.to_str().unwrap(), "--edxml"],
    );
    let text = std::fs::read(fetched["edxml"].as_str().unwrap()).unwrap();
    let Imported::Document(d) = edxml::import(&text).unwrap() else {
        panic!("not a document package")
    };
    assert_eq!(d.envelope.subject, "Về việc thử nghiệm gói tin edXML");
    assert_eq!(d.envelope.from.as_ref().unwrap().code, A);
    assert_eq!(d.envelope.to[0].code, B);
    assert_eq!(d.envelope.code.as_ref().unwrap().number, "15");
    assert_eq!(d.envelope.document_id, doc);
    assert_eq!(d.attachments.len(), 1);
    assert_eq!(d.attachments[0].0.name, "bien-ban.pdf");
    assert_eq!(d.attachments[0].1, bytes, "attachment bytes intact");
    assert!(
        d.unmapped
            .iter()
            .any(|(p, v)| p.ends_with("OtherInfo/Direction") && v == "false"),
        "{:?}",
        d.unmapped
    );
    assert_eq!(
        d.original_signature.as_deref(),
        Some("<Signature><SignatureValue>dGVzdA==</SignatureValue></Signature>")
    );

    // B answers with an edXML status package (accepted, 03), found by its document id.
    let status = StatusReceipt {
        from: Some(Organization {
            code: B.into(),
            name: "UBND xã B".into(),
            ..Default::default()
        }),
        response_for: Some(ReceiptResponseFor {
            organ_id: A.into(),
            code: "15/UBND-VP".into(),
            document_id: doc.clone(),
            envelope_id: String::new(),
        }),
        status: 3,
        timestamp_unix_ms: lienthong_common::now_unix_ms(),
        ..Default::default()
    };
    let r = b
        .post_bytes(
            "/v1/status",
            edxml::EDXML_CONTENT_TYPE,
            edxml::export_status(&status).as_bytes(),
        )
        .unwrap();
    assert_eq!(r["envelope_id"], id.as_str());
    let a = net.client(&code(A)).unwrap();
    wait_for(Duration::from_secs(30), "03 at A", || {
        a.track(&id)
            .ok()
            .filter(|t| t.recipients.iter().any(|x| x.status == 3))
    });
    // A status package where a document is expected, and garbage, are refused with a reason.
    let err = a
        .post_bytes(
            "/v1/documents",
            edxml::EDXML_CONTENT_TYPE,
            edxml::export_status(&status).as_bytes(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("status package"), "{err}");
    let err = a
        .post_bytes("/v1/documents", edxml::EDXML_CONTENT_TYPE, b"<edXML")
        .unwrap_err()
        .to_string();
    assert!(err.contains("HTTP 400") && err.contains("edXML"), "{err}");
    net.stop_all();
}
