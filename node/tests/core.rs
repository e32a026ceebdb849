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
    province_with(dir, clock, "")
}

/// [`province`] with `extra` appended to its configuration.
fn province_with(dir: &Path, clock: Clock, extra: &str) -> Arc<Node> {
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
        ) + extra,
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

/// A district's node detail as its node makes one, signed with the district's key.
fn district_detail(dir: &Path, name: &str) -> lienthong_proto::v1::NodeDetail {
    let mut d = lienthong_proto::v1::NodeDetail {
        id: format!("det-{name}"),
        node: DISTRICT.into(),
        generated_unix_ms: lienthong_common::now_unix_ms(),
        name: name.into(),
        assessed_level: 2,
        requirements: vec![lienthong_proto::v1::RequirementCheck {
            id: "backups".into(),
            met: false,
            requirement: "backups configured".into(),
            requirement_vi: "đã cấu hình sao lưu".into(),
            evidence: "[backup] dir is not set".into(),
        }],
        ..Default::default()
    };
    let at = d.generated_unix_ms;
    signer(dir, DISTRICT).sign_item(&mut d, at).unwrap();
    d
}

fn detail_frame(d: lienthong_proto::v1::NodeDetail) -> ReceiptFrame {
    ReceiptFrame {
        item: Some(receipt_frame::Item::Detail(d)),
    }
}

#[test]
fn a_node_detail_is_checked_kept_and_queued_upward() {
    let (dir, node) = setup();
    let district = code(DISTRICT);
    let root = code(ROOT);

    // Changed after signing: refused, as any signed item.
    let mut tampered = district_detail(dir.path(), "UBND huyện");
    tampered.requirements[0].met = true;
    let (c, _) = node
        .check_incoming_receipt(detail_frame(tampered), &district, true)
        .unwrap_err()
        .parts();
    assert_eq!(c, RefusalCode::RefusalBadSignature);

    // From the parent: details go up only.
    let (c, reason) = node
        .check_incoming_receipt(
            detail_frame(district_detail(dir.path(), "UBND huyện")),
            &root,
            false,
        )
        .unwrap_err()
        .parts();
    assert_eq!(c, RefusalCode::RefusalInvalid);
    assert!(reason.contains("upward only"), "{reason}");

    // Signed by the district but naming another node: its certificate does not name it.
    let mut other = district_detail(dir.path(), "UBND huyện");
    other.node = "000.00.00.G14".into();
    let (c, reason) = node
        .check_incoming_receipt(detail_frame(other), &district, true)
        .unwrap_err()
        .parts();
    assert_eq!(c, RefusalCode::RefusalSpoofedSender, "{reason}");

    // Too much text.
    let mut big = district_detail(dir.path(), "UBND huyện");
    big.requirements[0].evidence = "x".repeat(70 * 1024);
    let (c, _) = node
        .check_incoming_receipt(detail_frame(big), &district, true)
        .unwrap_err()
        .parts();
    assert_eq!(c, RefusalCode::RefusalTooLarge);

    // The right one: kept as the district's newest and queued for the root.
    let good = district_detail(dir.path(), "UBND huyện");
    let id = good.id.clone();
    let checked = node
        .check_incoming_receipt(detail_frame(good), &district, true)
        .unwrap();
    node.route_incoming_receipt(checked).unwrap();
    let held = node.store.node_details().unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    let d = lienthong_proto::v1::NodeDetail::decode(held[0].1.as_slice()).unwrap();
    assert_eq!(
        (held[0].0.as_str(), d.name.as_str()),
        (DISTRICT, "UBND huyện")
    );
    assert_eq!(d.requirements[0].evidence, "[backup] dir is not set");
    let queued = node.store.outbound(ROOT, 10).unwrap();
    assert!(
        queued
            .iter()
            .any(|e| matches!(&e.item, QueueItem::Receipt { id: q } if *q == id)),
        "the detail waits in the root's queue: {queued:?}"
    );
}

#[test]
fn a_node_makes_its_detail_again_only_when_it_changed_or_a_day_passed() {
    const HOUR: i64 = 3_600_000;
    let dir = tempfile::tempdir().unwrap();
    pki_for(dir.path(), &[ROOT, PROVINCE]);
    let start = lienthong_common::now_unix_ms();
    let clock = Clock::fixed(start);
    let node = province(dir.path(), clock.clone());
    assert!(lienthong_node::monitor::push_detail(&node).unwrap());
    // Nothing changed: no second one, even 23 hours later.
    clock.set(start + 23 * HOUR);
    assert!(!lienthong_node::monitor::push_detail(&node).unwrap());
    let held = node.store.node_details().unwrap();
    assert_eq!(held.len(), 1);
    let d = lienthong_proto::v1::NodeDetail::decode(held[0].1.as_slice()).unwrap();
    assert_eq!((d.node.as_str(), d.name.as_str()), (PROVINCE, "UBND tỉnh"));
    assert!(d.signature.is_some());
    let queued = node.store.outbound(ROOT, 10).unwrap();
    assert_eq!(
        queued
            .iter()
            .filter(|e| matches!(&e.item, QueueItem::Receipt { id } if *id == d.id))
            .count(),
        1,
        "{queued:?}"
    );
    // A day after the last one, another, though nothing changed.
    clock.set(start + 24 * HOUR);
    assert!(lienthong_node::monitor::push_detail(&node).unwrap());
    assert_eq!(node.store.outbound(ROOT, 10).unwrap().len(), 2);
}

#[test]
fn the_oldest_waiting_document_is_found_behind_many_of_a_higher_class() {
    const MINUTE: i64 = 60_000;
    let dir = tempfile::tempdir().unwrap();
    pki_for(dir.path(), &[ROOT, PROVINCE, DISTRICT]);
    let start = lienthong_common::now_unix_ms();
    let clock = Clock::fixed(start);
    let node = province(dir.path(), clock.clone());
    let root = code(ROOT);
    // A document of no priority for the unlinked district, then twelve express ones.
    let first = document(dir.path(), "e-slow", ROOT, &[COMMUNE], "Thường");
    let v = node.check_incoming(first, &root, false).unwrap();
    node.accept(v, &[code(COMMUNE)], Some(&root)).unwrap();
    clock.set(start + MINUTE);
    for i in 0..12 {
        let mut env = document(
            dir.path(),
            &format!("e-fast-{i}"),
            ROOT,
            &[COMMUNE],
            "Hỏa tốc",
        );
        env.other_info = Some(lienthong_proto::v1::OtherInfo {
            priority: lienthong_proto::v1::Priority::Express as i32,
            ..Default::default()
        });
        signer(dir.path(), ROOT)
            .sign_envelope(&mut env, lienthong_common::now_unix_ms())
            .unwrap();
        let v = node.check_incoming(env, &root, false).unwrap();
        node.accept(v, &[code(COMMUNE)], Some(&root)).unwrap();
    }
    // The express ones go first, and the one waiting longest is still the one reported.
    let queued = node.store.outbound(DISTRICT, 20).unwrap();
    assert_eq!(queued.len(), 13);
    assert_eq!(queued[12].item.id(), "e-slow");
    let oldest = lienthong_node::monitor::oldest_queued(&node);
    assert_eq!(oldest.get(DISTRICT), Some(&start), "{oldest:?}");
}

#[test]
fn a_restarted_node_knows_since_when_a_link_has_been_down() {
    const HOUR: i64 = 3_600_000;
    let dir = tempfile::tempdir().unwrap();
    pki_for(dir.path(), &[ROOT, PROVINCE, DISTRICT]);
    let start = lienthong_common::now_unix_ms();
    let clock = Clock::fixed(start);
    let district = code(DISTRICT);
    let node = province(dir.path(), clock.clone());
    node.link_changed(&district, true);
    clock.set(start + HOUR);
    node.link_changed(&district, false);
    // A link cut by a stop that recorded nothing more: counted from the next start.
    node.link_changed(&code(ROOT), true);
    assert_eq!(node.metrics.link_since(DISTRICT), start + HOUR);
    drop(node);

    clock.set(start + 3 * HOUR);
    let node = province(dir.path(), clock.clone());
    assert!(!node.link_is_up(&district));
    assert_eq!(node.metrics.link_since(DISTRICT), start + HOUR);
    let since_root = node.metrics.link_since(ROOT);
    assert!(since_root > start + HOUR, "{since_root}");
}

#[test]
fn a_pdf_check_not_run_before_a_stop_runs_after_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    pki_for(dir.path(), &[ROOT, PROVINCE]);
    let extra = format!(
        "\n[pdf_signatures]\nca = [{:?}]\n",
        pki::ca_cert_path(&dir.path().join("pki"))
            .display()
            .to_string()
    );
    let node = province_with(dir.path(), Clock::System, &extra);
    let mut env = document(dir.path(), "e-pdf", ROOT, &[PROVINCE], "Quyết định");
    env.attachments
        .push(lienthong_proto::v1::AttachmentManifest {
            name: "QD-12.pdf".into(),
            content_type: "application/pdf".into(),
            size: 1234,
            sha256: vec![7; 32],
            ..Default::default()
        });
    signer(dir.path(), ROOT)
        .sign_envelope(&mut env, lienthong_common::now_unix_ms())
        .unwrap();
    let v = node.check_incoming(env, &code(ROOT), false).unwrap();
    node.accept(v, &[code(PROVINCE)], Some(&code(ROOT)))
        .unwrap();
    // The node stops before its checker ran.
    assert_eq!(node.store.pdf_checks_waiting(10).unwrap().len(), 1);
    drop(node);

    let node = province_with(dir.path(), Clock::System, &extra);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    rt.spawn(lienthong_node::pdf_check::run(node.clone(), stop.clone()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let report = loop {
        if let Some(r) = node.store.pdf_report("e-pdf").unwrap() {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no report after the restart"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    stop.cancel();
    assert_eq!(report.attachments.len(), 1);
    let why = report.attachments[0]
        .not_checked
        .clone()
        .unwrap_or_default();
    assert!(why.contains("held here"), "{why}");
    assert!(node.store.pdf_checks_waiting(10).unwrap().is_empty());
}
