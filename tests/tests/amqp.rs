//! RabbitMQ as the DMS integration point, against the real broker on 127.0.0.1:5672 and its TLS
//! listener on 127.0.0.1:5671 (both set up by deploy/rabbitmq.sh; a test that cannot reach them,
//! or finds no test CA, fails). Each test uses its own agency codes, so its queues are its own,
//! and declares them afresh first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use lienthong_common::pki;
use lienthong_common::signing::AgencySigner;
use lienthong_harness::{Network, NodeSpec};
use lienthong_proto::v1::{
    receipt_frame, AttachmentManifest, DocumentCode, Envelope, Organization, PromulgationInfo,
    ReceiptFrame, ReceiptResponseFor, StatusReceipt, SubmitAttachment, SubmitRequest,
};
use lienthong_relay::amqp::{queue_arguments, DELIVERY_LIMIT};
use prost::Message;
use support::{code, org, relay_exe};
use tokio_stream::StreamExt;

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The broker's TLS listener; guest may log in only from localhost, and the certificate names
/// DNS:localhost and IP:127.0.0.1.
const TLS_URL: &str = "amqps://guest:guest@localhost:5671/%2f";
/// The test CA deploy/rabbitmq.sh made for the TLS listener.
const TLS_CA: &str = "/etc/rabbitmq/lienthong-test-tls/ca.pem";

/// The broker-restart test stops the broker: the tests of this file take turns.
static BROKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn q(agency: &str, kind: &str) -> String {
    format!("lienthong.{agency}.{kind}")
}

async fn channel() -> (Connection, Channel) {
    let conn = Connection::connect(URL, ConnectionProperties::default())
        .await
        .expect("RabbitMQ must answer on 127.0.0.1:5672 (run deploy/rabbitmq.sh)");
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    (conn, ch)
}

/// Deletes the queues of `agencies` and declares them empty, with the node's arguments (or,
/// with `legacy`, only the queue type, as nodes before dead-lettering did).
async fn fresh_queues_as(ch: &Channel, agencies: &[&str], legacy: bool) {
    for a in agencies {
        for kind in ["outbox", "status", "inbox", "receipts", "dead"] {
            ch.queue_delete(q(a, kind).as_str().into(), QueueDeleteOptions::default())
                .await
                .unwrap();
            let args = if legacy {
                let mut t = FieldTable::default();
                t.insert(
                    "x-queue-type".into(),
                    AMQPValue::LongString("quorum".into()),
                );
                t
            } else {
                queue_arguments(&code(a), kind, true)
            };
            ch.queue_declare(
                q(a, kind).as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                args,
            )
            .await
            .unwrap();
        }
    }
}

async fn fresh_queues(ch: &Channel, agencies: &[&str]) {
    fresh_queues_as(ch, agencies, false).await;
}

async fn publish(ch: &Channel, queue: &str, body: &[u8]) {
    let props = BasicProperties::default()
        .with_content_type("application/x-protobuf".into())
        .with_delivery_mode(2);
    let c = ch
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            props,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(c.is_ack());
}

fn envelope(id: &str, from: &str, to: &str, subject: &str) -> Envelope {
    let today = lienthong_common::envelope::format_date(
        lienthong_common::envelope::today_in_vietnam(time::OffsetDateTime::now_utc()),
    );
    Envelope {
        id: id.into(),
        from: Some(org(from)),
        to: vec![org(to)],
        code: Some(DocumentCode {
            number: "1".into(),
            notation: "DMS".into(),
        }),
        promulgation: Some(PromulgationInfo {
            place: String::new(),
            date: today,
        }),
        subject: subject.into(),
        ..Default::default()
    }
}

/// Consumes up to `until` returns true, acking each message; returns what it saw.
async fn drain(
    queue: &str,
    timeout: Duration,
    mut until: impl FnMut(&lapin::message::Delivery) -> bool,
) -> Vec<lapin::message::Delivery> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let Ok(conn) = Connection::connect(URL, ConnectionProperties::default()).await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let Ok(ch) = conn.create_channel().await else {
            continue;
        };
        let Ok(mut consumer) = ch
            .basic_consume(
                queue.into(),
                "test".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
        else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, consumer.next()).await {
                Ok(Some(Ok(d))) => {
                    let _ = d.ack(BasicAckOptions::default()).await;
                    let done = until(&d);
                    seen.push(d);
                    if done {
                        return seen;
                    }
                }
                Ok(_) => break, // connection lost: reconnect
                Err(_) => return seen,
            }
        }
    }
    seen
}

fn start_net(dir: &Path, a: &str, b: &str) -> Network {
    start_net_on(dir, a, b, URL, None)
}

/// Root, two provinces, and under them A and B, whose DMS side is the broker at `url`.
fn start_net_on(dir: &Path, a: &str, b: &str, url: &str, ca: Option<&Path>) -> Network {
    let mut na = NodeSpec::new(a, "DMS A", Some("000.00.00.H53")).unwrap();
    na.amqp = Some(url.into());
    na.amqp_ca = ca.map(Path::to_owned);
    let mut nb = NodeSpec::new(b, "DMS B", Some("000.00.00.H49")).unwrap();
    nb.amqp = Some(url.into());
    nb.amqp_ca = ca.map(Path::to_owned);
    let specs = vec![
        NodeSpec::new("000.00.00.G22", "Root", None).unwrap(),
        NodeSpec::new("000.00.00.H53", "Tỉnh A", Some("000.00.00.G22")).unwrap(),
        na,
        {
            // Unknown districts get "no route" at once, not a wait for them to link.
            let mut p = NodeSpec::new("000.00.00.H49", "Tỉnh B", Some("000.00.00.G22")).unwrap();
            p.offline_child_max_age_hours = Some(0);
            p
        },
        nb,
    ];
    let mut net = Network::create(dir, &relay_exe(), &specs).unwrap();
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();
    net
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dms_to_dms_with_statuses_and_refusals() {
    let _turn = BROKER.lock().await;
    let (a, b) = ("000.00.23.H53", "000.00.13.H49");
    let (_conn, ch) = channel().await;
    fresh_queues(&ch, &[a, b]).await;
    let dir = tempfile::tempdir().unwrap();
    let net = start_net(dir.path(), a, b);

    // 1. A's DMS publishes; B's DMS consumes it from its inbox and answers 03, 04, 05, 06.
    let id = uuid::Uuid::new_v4().to_string();
    let req = SubmitRequest {
        envelope: Some(envelope(&id, a, b, "Công văn qua RabbitMQ")),
        attachments: vec![SubmitAttachment {
            manifest: Some(AttachmentManifest {
                name: "a.txt".into(),
                content_type: "text/plain".into(),
                ..Default::default()
            }),
            data: b"noi dung dinh kem".to_vec(),
        }],
    };
    publish(&ch, &q(a, "outbox"), &req.encode_to_vec()).await;
    let got = drain(&q(b, "inbox"), Duration::from_secs(30), |d| {
        SubmitRequest::decode(d.data.as_slice())
            .ok()
            .and_then(|r| r.envelope)
            .is_some_and(|e| e.id == id)
    })
    .await;
    let msg = SubmitRequest::decode(
        got.last()
            .expect("document in B's inbox queue")
            .data
            .as_slice(),
    )
    .unwrap();
    assert_eq!(msg.attachments.len(), 1);
    assert_eq!(msg.attachments[0].data, b"noi dung dinh kem");
    for s in [3, 4, 5, 6] {
        let r = StatusReceipt {
            response_for: Some(ReceiptResponseFor {
                envelope_id: id.clone(),
                ..Default::default()
            }),
            status: s,
            ..Default::default()
        };
        publish(&ch, &q(b, "status"), &r.encode_to_vec()).await;
    }
    let mut seen = Vec::new();
    drain(&q(a, "receipts"), Duration::from_secs(30), |d| {
        seen.push(d.data.clone());
        statuses_from_bytes(&seen, &id).len() >= 5
    })
    .await;
    assert_eq!(
        statuses_from_bytes(&seen, &id),
        vec![1, 3, 4, 5, 6],
        "A's receipts queue, in order"
    );

    // 3. Malformed, oversize, unknown recipient, bad signature: each refused with its reason,
    // and the consumer keeps going.
    publish(&ch, &q(a, "outbox"), b"\xff\xff\xff not protobuf").await;
    publish(&ch, &q(a, "outbox"), &vec![0u8; 9 * 1024 * 1024]).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    publish(
        &ch,
        &q(a, "outbox"),
        &SubmitRequest {
            envelope: Some(envelope(&unknown, a, "000.00.99.H49", "không có nơi nhận")),
            attachments: vec![],
        }
        .encode_to_vec(),
    )
    .await;
    let pki_dir = net.pki_dir();
    let signer = AgencySigner::load(
        &pki::node_cert_path(&pki_dir, &code(a)),
        &pki::node_key_path(&pki_dir, &code(a)),
    )
    .unwrap();
    let mut tampered = envelope(&uuid::Uuid::new_v4().to_string(), a, b, "đã ký");
    tampered.document_id = lienthong_common::envelope::document_id_for(&tampered);
    signer
        .sign_envelope(&mut tampered, lienthong_common::now_unix_ms())
        .unwrap();
    tampered.subject = "đã ký rồi sửa".into();
    let (tampered_id, tampered_doc) = (tampered.id.clone(), tampered.document_id.clone());
    publish(
        &ch,
        &q(a, "outbox"),
        &SubmitRequest {
            envelope: Some(tampered),
            attachments: vec![],
        }
        .encode_to_vec(),
    )
    .await;
    let after = uuid::Uuid::new_v4().to_string();
    publish(
        &ch,
        &q(a, "outbox"),
        &SubmitRequest {
            envelope: Some(envelope(&after, a, b, "sau các lỗi")),
            attachments: vec![],
        }
        .encode_to_vec(),
    )
    .await;

    let dead = drain(&q(a, "dead"), Duration::from_secs(30), |_| false).await;
    let reasons: Vec<String> = dead
        .iter()
        .map(|d| {
            let h = d.properties.headers().as_ref().unwrap();
            match h.inner().get("x-lienthong-error") {
                Some(AMQPValue::LongString(s)) => s.to_string(),
                other => format!("{other:?}"),
            }
        })
        .collect();
    if reasons.len() != 3 {
        support::dump_logs(&net);
    }
    // Taken in concurrently: the three refusals may be dead-lettered in any order.
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("malformed protobuf")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("limit")), "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("signature") && r.contains("does not verify")),
        "{reasons:?}"
    );
    // The document after the bad ones still went through.
    let got = drain(&q(b, "inbox"), Duration::from_secs(30), |d| {
        SubmitRequest::decode(d.data.as_slice())
            .ok()
            .and_then(|r| r.envelope)
            .is_some_and(|e| e.id == after)
    })
    .await;
    assert!(!got.is_empty());
    // The unknown recipient is answered with a rejection naming it, on A's receipts queue;
    // error events for the refused messages are there too.
    let mut seen = Vec::new();
    // Documents are taken in concurrently: the rejection and the error events come in any order.
    let failure_reasons = |seen: &[Vec<u8>]| -> Vec<String> {
        seen.iter()
            .filter_map(|b| ReceiptFrame::decode(b.as_slice()).ok())
            .filter_map(|f| match f.item {
                Some(receipt_frame::Item::Transport(t)) if t.state == 4 => Some(t.reason),
                _ => None,
            })
            .collect()
    };
    drain(&q(a, "receipts"), Duration::from_secs(30), |d| {
        seen.push(d.data.clone());
        let reasons = failure_reasons(&seen);
        statuses_from_bytes(&seen, &unknown).contains(&2)
            && ["malformed protobuf", "limit", "does not verify"]
                .iter()
                .all(|k| reasons.iter().any(|r| r.contains(k)))
    })
    .await;
    let rejection = seen
        .iter()
        .filter_map(|b| ReceiptFrame::decode(b.as_slice()).ok())
        .find_map(|f| match f.item {
            Some(receipt_frame::Item::Status(s)) if s.status == 2 => Some(s.description),
            _ => None,
        });
    assert_eq!(rejection.as_deref(), Some("no route to 000.00.99.H49"));
    let errors = seen
        .iter()
        .filter_map(|b| ReceiptFrame::decode(b.as_slice()).ok())
        .filter(|f| matches!(&f.item, Some(receipt_frame::Item::Transport(t)) if t.state == 4))
        .count();
    assert!(
        errors >= 3,
        "error events for the refused messages: {errors}"
    );
    // Issue 4: an error event names the document of the refused message when it had one; the
    // malformed message had none.
    let events: Vec<_> = seen
        .iter()
        .filter_map(|b| ReceiptFrame::decode(b.as_slice()).ok())
        .filter_map(|f| match f.item {
            Some(receipt_frame::Item::Transport(t)) if t.state == 4 => Some(t),
            _ => None,
        })
        .collect();
    let signature = events
        .iter()
        .find(|t| t.reason.contains("does not verify"))
        .expect("error event for the bad signature");
    assert_eq!(signature.envelope_id, tampered_id);
    assert_eq!(signature.document_id, tampered_doc);
    let malformed = events
        .iter()
        .find(|t| t.reason.contains("malformed protobuf"))
        .expect("error event for the malformed message");
    assert_eq!(malformed.envelope_id, "");
}

fn statuses_from_bytes(bodies: &[Vec<u8>], envelope_id: &str) -> Vec<i32> {
    bodies
        .iter()
        .filter_map(|b| ReceiptFrame::decode(b.as_slice()).ok())
        .filter_map(|f| match f.item {
            Some(receipt_frame::Item::Status(s))
                if s.response_for
                    .as_ref()
                    .is_some_and(|r| r.envelope_id == envelope_id) =>
            {
                Some(s.status)
            }
            _ => None,
        })
        .collect()
}

fn rabbitmqctl(arg: &str) {
    let ok = std::process::Command::new("rabbitmqctl")
        .arg(arg)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "rabbitmqctl {arg} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_in_the_middle_of_2000_documents_loses_none() {
    let _turn = BROKER.lock().await;
    let (a, b) = ("000.00.24.H53", "000.00.14.H49");
    let (_conn, ch) = channel().await;
    fresh_queues(&ch, &[a, b]).await;
    let dir = tempfile::tempdir().unwrap();
    let _net = start_net(dir.path(), a, b);
    let mut ids = Vec::new();
    for i in 0..2000 {
        let id = uuid::Uuid::new_v4().to_string();
        let env = envelope(&id, a, b, &format!("văn bản {i}"));
        publish(
            &ch,
            &q(a, "outbox"),
            &SubmitRequest {
                envelope: Some(env),
                attachments: vec![],
            }
            .encode_to_vec(),
        )
        .await;
        ids.push(id);
    }
    drop(ch);
    // Let intake and delivery get going, then take the broker away and back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::spawn_blocking(|| {
        rabbitmqctl("stop_app");
        std::thread::sleep(Duration::from_secs(3));
        rabbitmqctl("start_app");
    })
    .await
    .unwrap();
    let want: HashSet<String> = ids.into_iter().collect();
    let mut have = HashSet::new();
    drain(&q(b, "inbox"), Duration::from_secs(240), |d| {
        if let Some(e) = SubmitRequest::decode(d.data.as_slice())
            .ok()
            .and_then(|r| r.envelope)
        {
            have.insert(e.id);
        }
        want.iter().all(|w| have.contains(w))
    })
    .await;
    let missing = want.iter().filter(|w| !have.contains(*w)).count();
    assert_eq!(
        missing, 0,
        "{missing} of 2000 documents never reached B's inbox queue"
    );
}

/// Waits until the node's `/healthz` shows the broker connection in `state`; returns the HTTP
/// status and the body.
fn wait_broker_state(
    net: &Network,
    agency: &str,
    state: &str,
    timeout: Duration,
) -> (u16, serde_json::Value) {
    let client = net.client(&code(agency)).unwrap();
    let deadline = Instant::now() + timeout;
    loop {
        let (status, h) = client.health_with_status().unwrap();
        if h["amqp"]["state"] == state {
            return (status, h);
        }
        if Instant::now() > deadline {
            support::dump_logs(net);
            panic!("{agency}: broker connection not {state} within {timeout:?}: {h}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_with_the_brokers_ca_carries_a_document() {
    let _turn = BROKER.lock().await;
    let ca = PathBuf::from(TLS_CA);
    assert!(
        ca.is_file(),
        "{TLS_CA} is missing: run deploy/rabbitmq.sh (as root) to give the broker its TLS listener"
    );
    let (a, b) = ("000.00.25.H53", "000.00.15.H49");
    let (_conn, ch) = channel().await;
    fresh_queues(&ch, &[a, b]).await;
    let dir = tempfile::tempdir().unwrap();
    let net = start_net_on(dir.path(), a, b, TLS_URL, Some(&ca));
    for agency in [a, b] {
        let (status, h) = wait_broker_state(&net, agency, "connected", Duration::from_secs(30));
        assert_eq!(status, 200, "{h}");
        assert_eq!(h["status"], "ok", "{h}");
    }

    let id = uuid::Uuid::new_v4().to_string();
    let req = SubmitRequest {
        envelope: Some(envelope(&id, a, b, "Công văn qua amqps")),
        attachments: vec![],
    };
    publish(&ch, &q(a, "outbox"), &req.encode_to_vec()).await;
    let got = drain(&q(b, "inbox"), Duration::from_secs(30), |d| {
        SubmitRequest::decode(d.data.as_slice())
            .ok()
            .and_then(|r| r.envelope)
            .is_some_and(|e| e.id == id)
    })
    .await;
    if got.is_empty() {
        support::dump_logs(&net);
    }
    assert!(
        got.iter()
            .any(|d| d.properties.message_id().as_ref().map(|m| m.as_str()) == Some(id.as_str())),
        "the document reached B's inbox queue over amqps"
    );
    let mut seen = Vec::new();
    drain(&q(a, "receipts"), Duration::from_secs(30), |d| {
        seen.push(d.data.clone());
        statuses_from_bytes(&seen, &id).contains(&1)
    })
    .await;
    assert_eq!(
        statuses_from_bytes(&seen, &id),
        vec![1],
        "01 back to A over amqps"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_a_broker_it_cannot_connect_to() {
    let _turn = BROKER.lock().await;
    assert!(
        Path::new(TLS_CA).is_file(),
        "{TLS_CA} is missing: run deploy/rabbitmq.sh"
    );
    let dir = tempfile::tempdir().unwrap();
    // The root trusts the wrong CA for the broker's certificate (the interchange CA); the
    // province has a wrong password.
    let mut root = NodeSpec::new("000.00.00.G22", "Root", None).unwrap();
    root.amqp = Some(TLS_URL.into());
    root.amqp_ca = Some(dir.path().join("pki").join("ca.pem"));
    let mut province = NodeSpec::new("000.00.00.H53", "Tỉnh A", Some("000.00.00.G22")).unwrap();
    province.amqp = Some("amqp://guest:not-the-password@127.0.0.1:5672/%2f".into());
    let mut net = Network::create(dir.path(), &relay_exe(), &[root, province]).unwrap();
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();

    let (status, h) = wait_broker_state(
        &net,
        "000.00.00.G22",
        "reconnecting",
        Duration::from_secs(30),
    );
    assert_eq!(status, 503, "{h}");
    assert_eq!(h["status"], "degraded", "{h}");
    let cause = h["amqp"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        cause.contains("certificate") || cause.contains("issuer"),
        "{h}"
    );

    let (status, h) = wait_broker_state(
        &net,
        "000.00.00.H53",
        "reconnecting",
        Duration::from_secs(30),
    );
    assert_eq!(status, 503, "{h}");
    let cause = h["amqp"]["last_error"].as_str().unwrap_or_default();
    assert!(
        cause.contains("ACCESS_REFUSED") || cause.to_lowercase().contains("auth"),
        "{h}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_handed_out_too_often_is_dead_lettered_not_dropped() {
    let _turn = BROKER.lock().await;
    let (a, b) = ("000.00.26.H53", "000.00.16.H49");
    let (_conn, ch) = channel().await;
    fresh_queues(&ch, &[a]).await;
    // B's queues as an older node declared them: the node must still connect and serve B.
    fresh_queues_as(&ch, &[b], true).await;
    let dir = tempfile::tempdir().unwrap();
    let mut net = start_net(dir.path(), a, b);
    wait_broker_state(&net, a, "connected", Duration::from_secs(30));
    wait_broker_state(&net, b, "connected", Duration::from_secs(30));
    let id = uuid::Uuid::new_v4().to_string();
    publish(
        &ch,
        &q(a, "outbox"),
        &SubmitRequest {
            envelope: Some(envelope(&id, a, b, "tới hàng đợi cũ")),
            attachments: vec![],
        }
        .encode_to_vec(),
    )
    .await;
    let got = drain(&q(b, "inbox"), Duration::from_secs(30), |d| {
        SubmitRequest::decode(d.data.as_slice())
            .ok()
            .and_then(|r| r.envelope)
            .is_some_and(|e| e.id == id)
    })
    .await;
    assert!(
        !got.is_empty(),
        "document delivered to B's queues declared the old way"
    );

    // With A's node stopped, a consumer returns a message on A's outbox again and again: after
    // DELIVERY_LIMIT returns the broker moves it to A's dead-letter queue.
    net.stop(&code(a), libc::SIGTERM).unwrap();
    publish(&ch, &q(a, "outbox"), b"returned again and again").await;
    let mut deliveries = 0;
    let mut empty_polls = 0;
    while empty_polls < 20 {
        match ch
            .basic_get(q(a, "outbox").as_str().into(), BasicGetOptions::default())
            .await
            .unwrap()
        {
            Some(m) => {
                deliveries += 1;
                empty_polls = 0;
                m.delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
            }
            None => {
                empty_polls += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        assert!(
            deliveries <= DELIVERY_LIMIT + 1,
            "handed out more than the limit"
        );
    }
    assert_eq!(deliveries, DELIVERY_LIMIT + 1);
    let dead = drain(&q(a, "dead"), Duration::from_secs(10), |_| true).await;
    let m = dead
        .first()
        .expect("the message is in A's dead-letter queue");
    assert_eq!(m.data, b"returned again and again");
    let reason = m
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-first-death-reason").cloned());
    assert_eq!(
        reason,
        Some(AMQPValue::LongString("delivery_limit".into())),
        "{:?}",
        m.properties.headers()
    );
}

async fn publish_as(ch: &Channel, queue: &str, body: &[u8], content_type: &str) {
    let props = BasicProperties::default()
        .with_content_type(content_type.into())
        .with_delivery_mode(2);
    let c = ch
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            props,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(c.is_ack());
}

fn is_edxml(d: &lapin::message::Delivery) -> bool {
    d.properties
        .content_type()
        .as_ref()
        .is_some_and(|c| c.as_str() == lienthong_edxml::EDXML_CONTENT_TYPE)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edxml_on_the_outbox_arrives_as_edxml_on_the_inbox() {
    use lienthong_edxml::{self as edxml, Imported};
    let _turn = BROKER.lock().await;
    let (a, b) = ("000.00.26.H53", "000.00.16.H49");
    let (_conn, ch) = channel().await;
    fresh_queues(&ch, &[a, b]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut na = NodeSpec::new(a, "DMS A", Some("000.00.00.H53")).unwrap();
    na.amqp = Some(URL.into());
    let mut nb = NodeSpec::new(b, "DMS B", Some("000.00.00.H49")).unwrap();
    nb.amqp = Some(URL.into());
    let specs = vec![
        NodeSpec::new("000.00.00.G22", "Root", None).unwrap(),
        NodeSpec::new("000.00.00.H53", "Tỉnh A", Some("000.00.00.G22")).unwrap(),
        na,
        {
            // Unknown districts get "no route" at once, not a wait for them to link.
            let mut p = NodeSpec::new("000.00.00.H49", "Tỉnh B", Some("000.00.00.G22")).unwrap();
            p.offline_child_max_age_hours = Some(0);
            p
        },
        nb,
    ];
    let mut net = Network::create(dir.path(), &relay_exe(), &specs).unwrap();
    // Both DMSs speak edXML: [amqp] format = "edxml".
    for agency in [a, b] {
        let cfg = &net.nodes[&code(agency)].config;
        let text = std::fs::read_to_string(cfg).unwrap();
        assert!(text.contains("prefetch = 64\n"));
        std::fs::write(
            cfg,
            text.replace("prefetch = 64\n", "prefetch = 64\nformat = \"edxml\"\n"),
        )
        .unwrap();
    }
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();

    let mut env = envelope("", a, b, "Gói tin edXML qua hàng đợi");
    env.edxml = Some(lienthong_proto::v1::EdxmlExtras {
        unmapped: vec![lienthong_proto::v1::EdxmlField {
            path: "edXMLEnvelope/edXMLHeader/MessageHeader/OtherInfo/Direction".into(),
            value: "false".into(),
        }],
        original_signature: "<Signature><SignatureValue>YQ==</SignatureValue></Signature>".into(),
    });
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let manifest = AttachmentManifest {
        name: "to-trinh.pdf".into(),
        content_type: "application/pdf".into(),
        size: bytes.len() as u64,
        sha256: ring::digest::digest(&ring::digest::SHA256, &bytes)
            .as_ref()
            .to_vec(),
        ..Default::default()
    };
    let package = edxml::export_document(&env, &[(manifest, bytes.clone())]);
    publish_as(
        &ch,
        &q(a, "outbox"),
        package.as_bytes(),
        edxml::EDXML_CONTENT_TYPE,
    )
    .await;

    let got = drain(&q(b, "inbox"), Duration::from_secs(30), is_edxml).await;
    if got.is_empty() {
        support::dump_logs(&net);
    }
    let d = got
        .iter()
        .find(|d| is_edxml(d))
        .expect("an edXML package on B's inbox");
    let Imported::Document(doc) = edxml::import(&d.data).unwrap() else {
        panic!("not a document package")
    };
    assert_eq!(doc.envelope.subject, "Gói tin edXML qua hàng đợi");
    assert_eq!(doc.envelope.from.as_ref().unwrap().code, a);
    assert_eq!(doc.attachments.len(), 1);
    assert_eq!(doc.attachments[0].1, bytes, "attachment bytes intact");
    assert!(doc
        .unmapped
        .iter()
        .any(|(p, v)| p.ends_with("OtherInfo/Direction") && v == "false"));
    assert_eq!(
        doc.original_signature.as_deref(),
        Some("<Signature><SignatureValue>YQ==</SignatureValue></Signature>")
    );

    // B's DMS answers 03 with an edXML status package naming the document id only.
    let status = StatusReceipt {
        from: Some(Organization {
            code: b.into(),
            name: "DMS B".into(),
            ..Default::default()
        }),
        response_for: Some(ReceiptResponseFor {
            organ_id: a.into(),
            document_id: doc.envelope.document_id.clone(),
            ..Default::default()
        }),
        status: 3,
        timestamp_unix_ms: lienthong_common::now_unix_ms(),
        ..Default::default()
    };
    publish_as(
        &ch,
        &q(b, "status"),
        edxml::export_status(&status).as_bytes(),
        edxml::EDXML_CONTENT_TYPE,
    )
    .await;
    // A's DMS gets 01 and 03 as edXML status packages.
    let mut codes = Vec::new();
    drain(&q(a, "receipts"), Duration::from_secs(30), |d| {
        if is_edxml(d) {
            if let Ok(Imported::Status(s)) = edxml::import(&d.data) {
                codes.push(s.receipt.status);
            }
        }
        codes.contains(&3)
    })
    .await;
    if !codes.contains(&3) {
        support::dump_logs(&net);
    }
    assert_eq!(codes, vec![1, 3], "01 and 03 reach A as edXML");
    net.stop_all();
}

/// The queues check fields by the same rules as the HTTP API (issue: one definition of valid
/// input): a NUL in an envelope id, a control character in a subject, an attachment named with
/// a path and a status id with a space are each dead-lettered naming the field, and the
/// document after them still goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_the_api_would_refuse_are_dead_lettered_naming_them() {
    let _turn = BROKER.lock().await;
    let (a, b) = ("000.00.27.H53", "000.00.17.H49");
    let (_conn, ch) = channel().await;
    fresh_queues(&ch, &[a, b]).await;
    let dir = tempfile::tempdir().unwrap();
    let net = start_net(dir.path(), a, b);

    let nul_id = envelope("ab\0cd", a, b, "định danh có NUL");
    let esc = envelope(
        &uuid::Uuid::new_v4().to_string(),
        a,
        b,
        "trích yếu\u{1b}[31m",
    );
    for env in [nul_id, esc] {
        let req = SubmitRequest {
            envelope: Some(env),
            attachments: vec![],
        };
        publish(&ch, &q(a, "outbox"), &req.encode_to_vec()).await;
    }
    let path_name = SubmitRequest {
        envelope: Some(envelope(
            &uuid::Uuid::new_v4().to_string(),
            a,
            b,
            "tên tệp là đường dẫn",
        )),
        attachments: vec![SubmitAttachment {
            manifest: Some(AttachmentManifest {
                name: "../../etc/passwd".into(),
                content_type: "text/plain".into(),
                ..Default::default()
            }),
            data: b"root:x:0:0".to_vec(),
        }],
    };
    publish(&ch, &q(a, "outbox"), &path_name.encode_to_vec()).await;
    let after = uuid::Uuid::new_v4().to_string();
    let req = SubmitRequest {
        envelope: Some(envelope(&after, a, b, "sau các lỗi")),
        attachments: vec![],
    };
    publish(&ch, &q(a, "outbox"), &req.encode_to_vec()).await;
    let got = drain(&q(b, "inbox"), Duration::from_secs(30), |d| {
        SubmitRequest::decode(d.data.as_slice())
            .ok()
            .and_then(|r| r.envelope)
            .is_some_and(|e| e.id == after)
    })
    .await;
    assert!(!got.is_empty(), "the good document after the bad ones");

    // B's DMS reports a status whose id is not an identifier: dead-lettered too.
    let bad_status = StatusReceipt {
        id: "my status 1".into(),
        response_for: Some(ReceiptResponseFor {
            envelope_id: after.clone(),
            ..Default::default()
        }),
        status: 3,
        ..Default::default()
    };
    publish(&ch, &q(b, "status"), &bad_status.encode_to_vec()).await;

    let reasons_of = |dead: &[lapin::message::Delivery]| -> Vec<String> {
        dead.iter()
            .map(|d| {
                match d
                    .properties
                    .headers()
                    .as_ref()
                    .and_then(|h| h.inner().get("x-lienthong-error").cloned())
                {
                    Some(AMQPValue::LongString(s)) => s.to_string(),
                    other => format!("{other:?}"),
                }
            })
            .collect()
    };
    let dead_a = reasons_of(&drain(&q(a, "dead"), Duration::from_secs(10), |_| false).await);
    let dead_b = reasons_of(&drain(&q(b, "dead"), Duration::from_secs(10), |_| false).await);
    if dead_a.len() != 3 || dead_b.len() != 1 {
        support::dump_logs(&net);
    }
    assert_eq!(dead_a.len(), 3, "{dead_a:?}");
    for (field, detail) in [
        ("id:", "U+0000 (NUL)"),
        ("subject:", "U+001B (ESC)"),
        ("attachments.name:", "folder separator"),
    ] {
        assert!(
            dead_a
                .iter()
                .any(|r| r.starts_with(field) && r.contains(detail)),
            "{field} {detail}: {dead_a:?}"
        );
    }
    assert_eq!(dead_b.len(), 1, "{dead_b:?}");
    assert!(
        dead_b[0].starts_with("id:") && dead_b[0].contains("U+0020"),
        "{dead_b:?}"
    );
}

/// No silent drop on the RabbitMQ side: a delivery waiting for a broker the node cannot reach,
/// whose envelope record is then lost from the node's real sled store (removed while the node is
/// stopped: a damaged store cannot be made otherwise), is counted and answered to the sender
/// with 02 once the broker is reachable, and nothing is published for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_gone_from_the_store_is_answered_not_dropped_silently() {
    let _turn = BROKER.lock().await;
    let (a, b) = ("000.00.28.H53", "000.00.18.H49");
    let (_conn, ch) = channel().await;
    fresh_queues(&ch, &[b]).await;
    let dir = tempfile::tempdir().unwrap();
    const NOWHERE: &str = "amqp://guest:guest@127.0.0.1:1/%2f";
    let mut nb = NodeSpec::new(b, "DMS B", Some("000.00.00.H49")).unwrap();
    nb.amqp = Some(NOWHERE.into());
    let specs = vec![
        NodeSpec::new("000.00.00.G22", "Root", None).unwrap(),
        NodeSpec::new("000.00.00.H53", "Tỉnh A", Some("000.00.00.G22")).unwrap(),
        NodeSpec::new(a, "Huyện A", Some("000.00.00.H53")).unwrap(),
        NodeSpec::new("000.00.00.H49", "Tỉnh B", Some("000.00.00.G22")).unwrap(),
        nb,
    ];
    let mut net = Network::create(dir.path(), &relay_exe(), &specs).unwrap();
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();

    let sender = net.client(&code(a)).unwrap();
    let (id, _) = sender
        .submit(lienthong_harness::sample_envelope(
            &code(a),
            &[&code(b)],
            "31",
            "Mất khi chờ RabbitMQ",
        ))
        .unwrap();
    let at_b = net.client(&code(b)).unwrap();
    support::wait_for(Duration::from_secs(30), "the document at B", || {
        at_b.get_json(&format!("/v1/documents/{id}")).ok()
    });
    // And a receipt waiting for B's DMS: the 01 for a document B sent to A.
    let (from_b, _) = at_b
        .submit(lienthong_harness::sample_envelope(
            &code(b),
            &[&code(a)],
            "32",
            "Gửi từ B",
        ))
        .unwrap();
    let arrived = support::wait_for(Duration::from_secs(30), "01 from A at B", || {
        at_b.track(&from_b)
            .ok()?
            .statuses
            .iter()
            .find(|s| s.status == 1)
            .map(|s| s.id.clone())
    });

    net.stop(&code(b), libc::SIGTERM).unwrap();
    let config = net.nodes[&code(b)].config.clone();
    {
        let store = lienthong_common::store::Store::open(
            &config.parent().unwrap().join("data").join("store"),
        )
        .unwrap();
        let key = [b"e/".as_slice(), id.as_bytes()].concat();
        assert!(store.get_raw(&key).unwrap().is_some(), "envelope record");
        store.remove_raw(&key).unwrap();
        let key = [b"r/".as_slice(), arrived.as_bytes()].concat();
        assert!(store.get_raw(&key).unwrap().is_some(), "receipt record");
        store.remove_raw(&key).unwrap();
        let _persisted = store.commit().await.unwrap();
    }
    let toml = std::fs::read_to_string(&config)
        .unwrap()
        .replace(NOWHERE, URL);
    std::fs::write(&config, toml).unwrap();
    net.start(&code(b)).unwrap();

    let reason = support::wait_for(Duration::from_secs(60), "02 back at the sender", || {
        let t = sender.track(&id).ok()?;
        t.recipients
            .iter()
            .find(|r| r.recipient == b && r.status == 2)
            .map(|r| r.description.clone())
    });
    assert!(
        reason.contains("lost at 000.00.18.H49") && reason.contains("missing from the store"),
        "{reason}"
    );
    let metrics = at_b.get_text("/metrics").unwrap();
    assert!(
        metrics.contains("lienthong_dropped_total{reason=\"envelope\"} 1"),
        "{metrics}"
    );
    let metrics = support::wait_for(Duration::from_secs(30), "the lost receipt counted", || {
        let m = at_b.get_text("/metrics").ok()?;
        m.contains("lienthong_dropped_total{reason=\"receipt\"} 1")
            .then_some(m)
    });
    assert!(
        support::security_events(&net, b)
            .iter()
            .any(|e| e["class"] == "queue_item_lost"
                && e["reason"].as_str().is_some_and(|r| r.contains(&arrived))),
        "{metrics}"
    );
    let published = drain(&q(b, "inbox"), Duration::from_secs(3), |_| false).await;
    assert!(
        published.is_empty(),
        "nothing published for a lost document"
    );
}
