//! The node's core driven in-process, without listeners or processes: a generated PKI, a real
//! sled store in a temporary folder, and the calls every adapter makes (`check_incoming`,
//! `accept`, the queues and receipts they leave). Fast: the whole file runs in about a second.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use lienthong_common::agency::AgencyCode;
use lienthong_common::clock::Clock;
use lienthong_common::config::NodeConfig;
use lienthong_common::envelope::{document_id_for, format_date, today_in_vietnam};
use lienthong_common::pki::{self, IssueRequest};
use lienthong_common::signing::AgencySigner;
use lienthong_common::store::{Offer, QueueItem};
use lienthong_node::node::{Node, NodeError, Refusal};
use lienthong_proto::v1::{
    receipt_frame, DocumentCode, Envelope, Organization, PromulgationInfo, ReceiptFrame,
    RefusalCode, StatusCode,
};
use prost::Message;

const ROOT: &str = "000.00.00.G22";
const PROVINCE: &str = "000.00.00.H53";
const DISTRICT: &str = "000.00.31.H53";
const COMMUNE: &str = "000.21.31.H53";

fn code(s: &str) -> AgencyCode {
    AgencyCode::parse(s).unwrap()
}

/// A PKI in `dir/pki` with certificates for `agencies`.
fn pki_for(dir: &Path, agencies: &[&str]) {
    let p = dir.join("pki");
    pki::init(&p).unwrap();
    for a in agencies {
        pki::issue(&p, &IssueRequest::new(code(a))).unwrap();
    }
}

/// The province's node, its parent the root, with a store in `dir/node`.
fn province(dir: &Path, clock: Clock) -> Arc<Node> {
    let p = dir.join("pki");
    let cfg = dir.join("node.toml");
    std::fs::write(
        &cfg,
        format!(
            "[node]\nagency = \"{PROVINCE}\"\nname = \"UBND tỉnh\"\ndata_dir = {data:?}\n\n\
             [tls]\nca = {ca:?}\ncert = {cert:?}\nkey = {key:?}\ncrl = {crl:?}\n\n\
             [parent]\nendpoint = \"https://127.0.0.1:1\"\nagency = \"{ROOT}\"\n",
            data = dir.join("node").display().to_string(),
            ca = pki::ca_cert_path(&p).display().to_string(),
            cert = pki::node_cert_path(&p, &code(PROVINCE))
                .display()
                .to_string(),
            key = pki::node_key_path(&p, &code(PROVINCE))
                .display()
                .to_string(),
            crl = pki::crl_path(&p).display().to_string(),
        ),
    )
    .unwrap();
    Node::open(NodeConfig::load(&cfg).unwrap(), clock).unwrap()
}

fn signer(dir: &Path, agency: &str) -> AgencySigner {
    let p = dir.join("pki");
    AgencySigner::load(
        &pki::node_cert_path(&p, &code(agency)),
        &pki::node_key_path(&p, &code(agency)),
    )
    .unwrap()
}

fn org(c: &str) -> Organization {
    Organization {
        code: c.into(),
        name: format!("Cơ quan {c}"),
        ..Default::default()
    }
}

/// A document from `from` to `to`, signed by `by`.
fn document(dir: &Path, id: &str, from: &str, to: &[&str], subject: &str) -> Envelope {
    numbered(dir, id, "7", from, to, subject)
}

/// [`document`] with its number.
fn numbered(
    dir: &Path,
    id: &str,
    number: &str,
    from: &str,
    to: &[&str],
    subject: &str,
) -> Envelope {
    let mut env = Envelope {
        id: id.into(),
        from: Some(org(from)),
        to: to.iter().map(|t| org(t)).collect(),
        code: Some(DocumentCode {
            number: number.into(),
            notation: "VP".into(),
        }),
        promulgation: Some(PromulgationInfo {
            place: "Hà Nội".into(),
            date: format_date(today_in_vietnam(lienthong_common::now_utc())),
        }),
        subject: subject.into(),
        ..Default::default()
    };
    env.document_id = document_id_for(&env);
    signer(dir, from)
        .sign_envelope(&mut env, lienthong_common::now_unix_ms())
        .unwrap();
    env
}

fn setup() -> (tempfile::TempDir, Arc<Node>) {
    let dir = tempfile::tempdir().unwrap();
    pki_for(dir.path(), &[ROOT, PROVINCE, DISTRICT, "000.00.00.G14"]);
    let node = province(dir.path(), Clock::System);
    (dir, node)
}

trait Parts {
    fn parts(self) -> (RefusalCode, String);
}

impl Parts for Refusal {
    fn parts(self) -> (RefusalCode, String) {
        (self.code, self.reason)
    }
}

fn refusal(e: NodeError) -> (RefusalCode, String) {
    match e {
        NodeError::Refused(r) => (r.code, r.reason),
        other => panic!("not a refusal: {other}"),
    }
}

#[test]
fn accept_is_idempotent_and_a_replay_with_other_content_is_refused() {
    let (dir, node) = setup();
    let root = code(ROOT);
    let env = document(dir.path(), "e-1", ROOT, &[PROVINCE], "Công văn");
    let v = node.check_incoming(env.clone(), &root, false).unwrap();
    assert_eq!(
        node.accept(v, &[code(PROVINCE)], Some(&root)).unwrap(),
        Offer::New
    );
    let v = node.check_incoming(env.clone(), &root, false).unwrap();
    assert_eq!(
        node.accept(v, &[code(PROVINCE)], Some(&root)).unwrap(),
        Offer::Duplicate
    );
    let inbox = node.store.inbox(PROVINCE).unwrap();
    assert_eq!(inbox.len(), 1, "delivered once");
    assert_eq!(inbox[0].envelope_id, "e-1");

    // The same id, other (validly signed) content: a replay.
    let other = document(dir.path(), "e-1", ROOT, &[PROVINCE], "Công văn khác");
    let v = node.check_incoming(other, &root, false).unwrap();
    let (c, reason) = refusal(node.accept(v, &[code(PROVINCE)], Some(&root)).unwrap_err());
    assert_eq!(c, RefusalCode::RefusalReplay);
    assert!(reason.contains("e-1"), "{reason}");
}

#[test]
fn delivery_sends_01_toward_the_sender_through_the_parent() {
    let (dir, node) = setup();
    let root = code(ROOT);
    let env = document(dir.path(), "e-2", ROOT, &[PROVINCE], "Báo cáo");
    let v = node.check_incoming(env, &root, false).unwrap();
    node.accept(v, &[code(PROVINCE)], Some(&root)).unwrap();
    let statuses: Vec<i32> = node
        .store
        .receipts_for("e-2")
        .unwrap()
        .iter()
        .filter_map(|b| match ReceiptFrame::decode(b.as_slice()).ok()?.item? {
            receipt_frame::Item::Status(s) => Some(s.status),
            _ => None,
        })
        .collect();
    assert_eq!(statuses, vec![StatusCode::StatusArrived as i32]);
    let queued = node.store.outbound(ROOT, 10).unwrap();
    assert!(
        queued
            .iter()
            .any(|e| matches!(e.item, QueueItem::Receipt { .. })),
        "the 01 waits in the parent's queue: {queued:?}"
    );
}

#[test]
fn a_recipient_below_an_unlinked_child_waits_in_its_queue_with_the_sender_recorded() {
    let (dir, node) = setup();
    let root = code(ROOT);
    let env = document(dir.path(), "e-3", ROOT, &[COMMUNE], "Cho xã");
    let v = node.check_incoming(env, &root, false).unwrap();
    node.accept(v, &[code(COMMUNE)], Some(&root)).unwrap();
    let queued = node.store.outbound(DISTRICT, 10).unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(
        queued[0].item,
        QueueItem::Envelope {
            id: "e-3".into(),
            recipients: vec![COMMUNE.into()],
            origin: ROOT.into(),
        }
    );
    // Nothing was answered with "no route".
    assert!(node.store.receipts_for("e-3").unwrap().is_empty());
}

#[test]
fn a_child_may_not_speak_for_others_nor_send_what_the_api_refuses() {
    let (dir, node) = setup();
    let district = code(DISTRICT);
    let spoofed = document(dir.path(), "e-4", "000.00.00.G14", &[ROOT], "Giả mạo");
    let (c, reason) = node
        .check_incoming(spoofed, &district, true)
        .unwrap_err()
        .parts();
    assert_eq!(c, RefusalCode::RefusalSpoofedSender, "{reason}");

    let control = document(dir.path(), "e-5", DISTRICT, &[ROOT], "Trích yếu\u{7}");
    let (c, reason) = node
        .check_incoming(control, &district, true)
        .unwrap_err()
        .parts();
    assert_eq!(c, RefusalCode::RefusalInvalid);
    assert!(
        reason.starts_with("subject:") && reason.contains("U+0007 (BEL)"),
        "{reason}"
    );

    let mut tampered = document(dir.path(), "e-6", DISTRICT, &[ROOT], "Đã ký");
    tampered.subject.push_str(" rồi sửa");
    let (c, _) = node
        .check_incoming(tampered, &district, true)
        .unwrap_err()
        .parts();
    assert_eq!(c, RefusalCode::RefusalBadSignature);

    // A document that already passed this node is a loop.
    let mut looped = document(dir.path(), "e-7", DISTRICT, &[ROOT], "Vòng lặp");
    looped.trace.push(lienthong_proto::v1::TraceEntry {
        agency: PROVINCE.into(),
        received_unix_ms: 1,
        forwarded_unix_ms: 2,
    });
    let (c, reason) = node
        .check_incoming(looped, &district, true)
        .unwrap_err()
        .parts();
    assert_eq!(c, RefusalCode::RefusalInvalid);
    assert!(reason.contains("loop"), "{reason}");
}

#[test]
fn the_injected_clock_dates_the_register_the_01_and_the_audit_log() {
    // 2027-03-05 10:00 in Vietnam (03:00 UTC); the system clock is not consulted for it.
    const T: i64 = 1_804_215_600_000;
    const DAY: i64 = 86_400_000;
    let dir = tempfile::tempdir().unwrap();
    pki_for(dir.path(), &[ROOT, PROVINCE, DISTRICT]);
    let clock = Clock::fixed(T);
    let node = province(dir.path(), clock.clone());
    let root = code(ROOT);
    for (i, id) in ["e-c1", "e-c2"].iter().enumerate() {
        clock.set(T + i as i64 * DAY);
        let env = numbered(
            dir.path(),
            id,
            &format!("{}", 10 + i),
            ROOT,
            &[PROVINCE],
            "Công văn",
        );
        let v = node.check_incoming(env, &root, false).unwrap();
        node.accept(v, &[code(PROVINCE)], Some(&root)).unwrap();
    }
    let book = lienthong_node::register::entries(
        &node.store,
        lienthong_node::register::Direction::In,
        PROVINCE,
        2027,
    )
    .unwrap();
    let got: Vec<(u64, &str, i64)> = book
        .iter()
        .map(|e| (e.number, e.date.as_str(), e.at_unix_ms))
        .collect();
    assert_eq!(
        got,
        vec![(1, "2027-03-05", T), (2, "2027-03-06", T + DAY)],
        "numbers and dates follow the node's clock"
    );
    let times: Vec<i64> = node
        .store
        .receipts_for("e-c2")
        .unwrap()
        .iter()
        .filter_map(|b| match ReceiptFrame::decode(b.as_slice()).ok()?.item? {
            receipt_frame::Item::Status(s) => Some(s.timestamp_unix_ms),
            _ => None,
        })
        .collect();
    assert_eq!(
        times,
        vec![T + DAY],
        "the 01 is stamped by the node's clock"
    );
    let audit = lienthong_common::audit::records(&node.store).unwrap();
    let register_times: Vec<i64> = audit
        .into_iter()
        .flatten()
        .filter(|r| r.kind == "register")
        .map(|r| r.at_unix_ms)
        .collect();
    assert_eq!(register_times, vec![T, T + DAY]);
}
