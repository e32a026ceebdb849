//! RabbitMQ intake benchmark (prints figures; `cargo bench -p lienthong-relay --bench amqp`),
//! against the broker on 127.0.0.1:5672 (deploy/rabbitmq.sh).
//!
//! In one run, with the same payload (a `SubmitRequest` of about 4 KiB) on the same broker:
//! - plain RabbitMQ: publish with confirms to a durable quorum queue, up to [`WINDOW`]
//!   publishes awaiting their confirm;
//! - the relay: the same publishing on a relay's outbox queue, measured until the relay has
//!   taken every document (signed, stored durably, acked) and its next hop has acknowledged it
//!   (`lienthong_forwarded_total` of the relay), in documents/s;
//!
//! and the ratio of the two.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use lienthong_common::agency::AgencyCode;
use lienthong_harness::{ApiClient, Network, NodeSpec};
use lienthong_proto::v1::SubmitRequest;

mod support;
use lienthong_relay::amqp::{queue_arguments, queue_name};
use prost::Message;
use support::{bench_envelope, metric, today};

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Publishes awaiting their confirm, for both measurements.
const WINDOW: usize = 256;

fn documents() -> usize {
    std::env::var("LT_BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

/// A 4 KiB document from `from` to `to`, numbered `n`.
fn payload(from: &str, to: &str, n: usize) -> Vec<u8> {
    let mut env = bench_envelope(from, to, n, &today());
    env.to_places = vec!["Nơi nhận: các sở, ban, ngành tỉnh".into(); 80];
    SubmitRequest {
        envelope: Some(env),
        attachments: vec![],
    }
    .encode_to_vec()
}

/// Publishes every body on `queue` with confirms, at most [`WINDOW`] unconfirmed.
async fn publish_all(ch: &Channel, queue: &str, bodies: &[Vec<u8>]) {
    let mut pending = VecDeque::with_capacity(WINDOW);
    for body in bodies {
        if pending.len() == WINDOW {
            let confirm: lapin::PublisherConfirm = pending.pop_front().unwrap();
            assert!(confirm.await.unwrap().is_ack());
        }
        let props = BasicProperties::default()
            .with_content_type("application/x-protobuf".into())
            .with_delivery_mode(2);
        pending.push_back(
            ch.basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .unwrap(),
        );
    }
    for confirm in pending {
        assert!(confirm.await.unwrap().is_ack());
    }
}

async fn fresh_queue(ch: &Channel, name: &str, args: lapin::types::FieldTable) {
    ch.queue_delete(name.into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap();
}

/// Documents the relay has taken from its outbox (`submitted`) and items its next hop has
/// acknowledged (`forwarded`).
fn progress(c: &ApiClient, neighbour: &str) -> (u64, u64) {
    let text = c.get_text("/metrics").unwrap_or_default();
    (
        metric(&text, "lienthong_submitted_total"),
        metric(
            &text,
            &format!("lienthong_forwarded_total{{neighbour=\"{neighbour}\"}}"),
        ),
    )
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("amqp bench: run with `cargo bench -p lienthong-relay --bench amqp` for figures");
        return;
    }
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_lt-relay"));
    std::env::set_var("LT_LOG", "warn");
    let n = documents();
    let (root, province, sender) = ("000.00.00.G22", "000.00.00.H53", "000.00.27.H53");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let conn = rt
        .block_on(Connection::connect(URL, ConnectionProperties::default()))
        .expect("RabbitMQ must answer on 127.0.0.1:5672 (run deploy/rabbitmq.sh)");
    let ch = rt.block_on(conn.create_channel()).unwrap();
    rt.block_on(ch.confirm_select(ConfirmSelectOptions::default()))
        .unwrap();
    let bodies: Vec<Vec<u8>> = (0..n).map(|i| payload(sender, root, i)).collect();
    let size = bodies.iter().map(Vec::len).sum::<usize>() / n;

    // 1. Plain RabbitMQ: the same bodies, to a quorum queue, with confirms.
    let baseline_queue = "lienthong.bench.baseline";
    let mut quorum = lapin::types::FieldTable::default();
    quorum.insert(
        "x-queue-type".into(),
        lapin::types::AMQPValue::LongString("quorum".into()),
    );
    rt.block_on(fresh_queue(&ch, baseline_queue, quorum));
    let t0 = Instant::now();
    rt.block_on(publish_all(&ch, baseline_queue, &bodies));
    let plain = n as f64 / t0.elapsed().as_secs_f64();
    rt.block_on(ch.queue_delete(baseline_queue.into(), QueueDeleteOptions::default()))
        .unwrap();

    // 2. The relay: its outbox queue → signed, stored, acked → acknowledged by its parent.
    let agency = AgencyCode::parse(sender).unwrap();
    for kind in ["dead", "inbox", "receipts", "outbox", "status"] {
        rt.block_on(fresh_queue(
            &ch,
            &queue_name(&agency, kind),
            queue_arguments(&agency, kind, true),
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut dms = NodeSpec::new(sender, "Xã đo hiệu năng", Some(province)).unwrap();
    dms.amqp = Some(URL.into());
    let specs = vec![
        NodeSpec::new(root, "Văn phòng Chính phủ", None).unwrap(),
        NodeSpec::new(province, "Tỉnh", Some(root)).unwrap(),
        dms,
    ];
    let mut net = Network::create(dir.path(), &exe, &specs).unwrap();
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();
    let client = net.client(&agency).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.health().unwrap()["amqp"]["state"] != "connected" {
        assert!(
            Instant::now() < deadline,
            "the relay did not connect to RabbitMQ"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (taken_before, before) = progress(&client, province);
    let outbox = queue_name(&agency, "outbox");
    let t0 = Instant::now();
    let publisher = {
        let ch = ch.clone();
        rt.spawn(async move {
            publish_all(&ch, &outbox, &bodies).await;
            Instant::now()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut intake_time = None;
    loop {
        let (taken, forwarded) = progress(&client, province);
        if intake_time.is_none() && taken >= taken_before + n as u64 {
            intake_time = Some(t0.elapsed().as_secs_f64());
        }
        if forwarded >= before + n as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the relay did not forward {n} documents within 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let relay_time = t0.elapsed().as_secs_f64();
    let intake_time = intake_time.unwrap_or(relay_time);
    let published = rt.block_on(publisher).unwrap().duration_since(t0);
    let relay = n as f64 / relay_time;
    net.stop_all();

    println!("{n} documents of {size} bytes (protobuf SubmitRequest), RabbitMQ on 127.0.0.1, 2 cores shared by everything");
    println!("plain RabbitMQ publish with confirms (quorum queue, {WINDOW} in flight): {plain:.0} documents/s");
    println!(
        "relay: AMQP intake -> signed, stored durably, acked -> acknowledged by the next hop: {relay:.0} documents/s (the DMS's publishing alone took {:.2} s of {relay_time:.2} s)",
        published.as_secs_f64()
    );
    println!(
        "  of which intake alone (taken from the outbox, stored durably, acked): {:.0} documents/s",
        n as f64 / intake_time
    );
    println!("ratio relay / plain publish: {:.3}", relay / plain);
}
