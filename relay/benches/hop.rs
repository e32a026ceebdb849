//! Hop benchmark (prints figures; `cargo bench -p lienthong-relay --bench hop`): the cost of a
//! relay hop against the cost of a RabbitMQ shovel hop, both measured in the same run on the same
//! machine and broker (127.0.0.1:5672, deploy/rabbitmq.sh; the bench enables the shovel plugin).
//!
//! - RabbitMQ: 7 quorum queues joined by 6 dynamic shovels (`ack-mode on-confirm`), 4 KiB
//!   persistent messages published with confirms on the first queue, consumed from the last;
//! - lienthong: the 7-relay chain commune→district→province→root→province→district→commune over
//!   mTLS, 4 KiB signed documents submitted on the first commune's API, every hop verifying
//!   documents and receipts, delivered at the other commune.
//!
//! Each side runs at full speed (`LT_BENCH_DOCS` documents, default 3000) and then paced at 200
//! per second for 10 s. Printed per side: throughput, p50/p99 end-to-end latency, and CPU time per
//! document per hop (utime + stime from /proc of the broker, or of the seven relays, divided by
//! documents and by the six hops); then the ratio lienthong / RabbitMQ of each figure.
//! Then one attachment of `LT_BENCH_ATTACHMENT_MIB` (default 2048) MiB across the six links:
//! MB/s and each relay's peak RSS.
//! Also printed: bytes written per document per hop (`wchar` of /proc/PID/io), and items
//! carried per document per hop: a shovel moves the message once; a relay link also carries
//! the receipts back toward the sender (the recipient's 01 and the DELIVERED event), counted
//! from the relays' `lienthong_forwarded_total`.
//! `LT_BENCH_SIDE=lienthong` measures the relays alone (to profile them).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::VecDeque;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use lienthong_common::agency::AgencyCode;
use lienthong_harness::{sample_envelope, ApiClient};

mod support;
use support::{chain_network, delivered, envelope_4k, metric_sum};
use tokio_stream::StreamExt;

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const WINDOW: usize = 256;
const HOPS: f64 = 6.0;
const PACED_RATE: f64 = 200.0;
const PACED_SECS: f64 = 10.0;

fn documents() -> usize {
    std::env::var("LT_BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

/// Figures of one side.
#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    throughput: f64,
    cpu_us_per_doc_hop: f64,
    paced_p50_ms: f64,
    paced_p99_ms: f64,
    paced_cpu_us_per_doc_hop: f64,
    written_per_doc_hop: f64,
    /// Items a hop carries per document: the document itself, and for lienthong the receipts
    /// that travel back (the recipient's 01 and the DELIVERED transport event).
    items_per_doc_hop: f64,
}

/// utime + stime of a process, in microseconds.
fn cpu_us(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| f.get(*i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    let hz = clock_ticks();
    ticks * 1_000_000.0 / hz
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Bytes a process asked the kernel to write (`wchar` of /proc/PID/io).
fn written(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn cpu_of(pids: &[u32]) -> f64 {
    pids.iter().map(|p| cpu_us(*p)).sum()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn rabbitmqctl(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl must be installed (deploy/rabbitmq.sh)");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn broker_pid() -> u32 {
    let text = rabbitmqctl(&["eval", "os:getpid()."]);
    text.trim()
        .trim_matches('"')
        .parse()
        .expect("broker pid from rabbitmqctl eval")
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The RabbitMQ side: 7 quorum queues, 6 on-confirm shovels.
struct ShovelChain {
    queues: Vec<String>,
    shovels: Vec<String>,
}

impl ShovelChain {
    async fn create(ch: &Channel) -> Self {
        let run = std::process::id();
        let queues: Vec<String> = (0..7).map(|i| format!("lt.hop.{run}.q{i}")).collect();
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        for q in &queues {
            ch.queue_declare(
                q.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                args.clone(),
            )
            .await
            .unwrap();
        }
        let mut shovels = Vec::new();
        for i in 0..6 {
            let name = format!("lt.hop.{run}.s{i}");
            let def = serde_json::json!({
                "src-protocol": "amqp091",
                "src-uri": "amqp://",
                "src-queue": queues[i],
                "src-prefetch-count": 1000,
                "dest-protocol": "amqp091",
                "dest-uri": "amqp://",
                "dest-queue": queues[i + 1],
                "dest-add-forward-headers": false,
                "ack-mode": "on-confirm",
            });
            rabbitmqctl(&["set_parameter", "shovel", &name, &def.to_string()]);
            shovels.push(name);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = rabbitmqctl(&["shovel_status", "--formatter", "json"]);
            let running = shovels
                .iter()
                .filter(|s| {
                    status.contains(&format!("\"name\":\"{s}\""))
                        && status
                            .split(&format!("\"name\":\"{s}\""))
                            .nth(1)
                            .is_some_and(|r| r.split('}').next().unwrap_or("").contains("running"))
                })
                .count();
            if running == shovels.len() {
                break;
            }
            assert!(Instant::now() < deadline, "shovels did not start: {status}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Self { queues, shovels }
    }

    async fn drop_all(self, ch: &Channel) {
        for s in &self.shovels {
            rabbitmqctl(&["clear_parameter", "shovel", s]);
        }
        for q in &self.queues {
            let _ = ch
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
    }
}

/// Publishes `count` 4 KiB messages (the first 8 bytes: send time) at `rate` per second (or as
/// fast as confirms allow), while `latencies` collects consume time − send time.
async fn shovel_run(
    publish: &Channel,
    chain: &ShovelChain,
    count: usize,
    rate: Option<f64>,
    seen: &Arc<Mutex<Vec<f64>>>,
) -> f64 {
    let first = chain.queues[0].clone();
    let before = seen.lock().unwrap().len();
    let started = Instant::now();
    let mut pending = VecDeque::with_capacity(WINDOW);
    for i in 0..count {
        if let Some(r) = rate {
            let due = started + Duration::from_secs_f64(i as f64 / r);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
        }
        if pending.len() == WINDOW {
            let c: lapin::PublisherConfirm = pending.pop_front().unwrap();
            assert!(c.await.unwrap().is_ack());
        }
        let mut body = vec![b'x'; 4096];
        body[..8].copy_from_slice(&now_ns().to_be_bytes());
        pending.push_back(
            publish
                .basic_publish(
                    "".into(),
                    first.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .unwrap(),
        );
    }
    for c in pending {
        assert!(c.await.unwrap().is_ack());
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen.lock().unwrap().len() < before + count {
        assert!(Instant::now() < deadline, "shovel chain stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed().as_secs_f64()
}

fn measure_rabbitmq(rt: &tokio::runtime::Runtime, n: usize) -> Figures {
    let enabled = Command::new("rabbitmq-plugins")
        .args(["enable", "rabbitmq_shovel"])
        .output()
        .expect("rabbitmq-plugins");
    assert!(
        enabled.status.success(),
        "cannot enable the shovel plugin: {}",
        String::from_utf8_lossy(&enabled.stderr)
    );
    let pid = broker_pid();
    rt.block_on(async {
        let conn = Connection::connect(URL, ConnectionProperties::default())
            .await
            .expect("RabbitMQ must answer on 127.0.0.1:5672 (run deploy/rabbitmq.sh)");
        let publish = conn.create_channel().await.unwrap();
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let chain = ShovelChain::create(&publish).await;
        let consume = conn.create_channel().await.unwrap();
        consume
            .basic_qos(1000, lapin::options::BasicQosOptions::default())
            .await
            .unwrap();
        let mut consumer = consume
            .basic_consume(
                chain.queues[6].as_str().into(),
                "hop-bench".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::<f64>::new()));
        let sink = seen.clone();
        tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                let sent = d
                    .data
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_be_bytes)
                    .unwrap_or(0);
                let lat = now_ns().saturating_sub(sent) as f64 / 1e6;
                sink.lock().unwrap().push(lat);
                let _ = d.acker.ack(BasicAckOptions::default()).await;
            }
        });
        // Warm-up, not counted.
        shovel_run(&publish, &chain, 200, None, &seen).await;
        seen.lock().unwrap().clear();

        let (c0, w0) = (cpu_us(pid), written(pid));
        let secs = shovel_run(&publish, &chain, n, None, &seen).await;
        let cpu = cpu_us(pid) - c0;
        let mut fig = Figures {
            throughput: n as f64 / secs,
            cpu_us_per_doc_hop: cpu / n as f64 / HOPS,
            written_per_doc_hop: (written(pid) - w0) / n as f64 / HOPS,
            // Each shovel moves each message once, and nothing travels back.
            items_per_doc_hop: 1.0,
            ..Default::default()
        };
        seen.lock().unwrap().clear();
        let paced = (PACED_RATE * PACED_SECS) as usize;
        let c0 = cpu_us(pid);
        shovel_run(&publish, &chain, paced, Some(PACED_RATE), &seen).await;
        fig.paced_cpu_us_per_doc_hop = (cpu_us(pid) - c0) / paced as f64 / HOPS;
        let mut lat = seen.lock().unwrap().clone();
        lat.sort_by(f64::total_cmp);
        fig.paced_p50_ms = percentile(&lat, 0.5);
        fig.paced_p99_ms = percentile(&lat, 0.99);
        chain.drop_all(&publish).await;
        fig
    })
}

/// Submits `count` documents on `threads` clients (or one, paced at `rate`), returns their ids.
fn submit(
    client: &ApiClient,
    from: &AgencyCode,
    to: &AgencyCode,
    count: usize,
    base: usize,
    rate: Option<f64>,
) -> Vec<String> {
    let threads = if rate.is_some() { 1 } else { 16 };
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let c = client.clone();
            let (from, to) = (from.clone(), to.clone());
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for i in (t..count).step_by(threads) {
                    if let Some(r) = rate {
                        let due = started + Duration::from_secs_f64(i as f64 / r);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                    ids.push(c.submit(envelope_4k(&from, &to, base + i)).unwrap().0);
                }
                ids
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect()
}

fn wait_delivered(receiver: &ApiClient, target: u64) {
    let deadline = Instant::now() + Duration::from_secs(900);
    while delivered(receiver) < target {
        assert!(Instant::now() < deadline, "relay chain stalled");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn measure_lienthong(n: usize) -> Figures {
    std::env::set_var("LT_LOG", "warn");
    let dir = tempfile::tempdir().unwrap();
    let (mut net, topology, a, b) = chain_network(dir.path());
    let sender = net.client(&a).unwrap();
    let receiver = net.client(&b).unwrap();
    let pids: Vec<u32> = topology.iter().filter_map(|s| net.pid(&s.agency)).collect();
    assert_eq!(pids.len(), 7);

    // Warm-up, not counted.
    submit(&sender, &a, &b, 200, 0, None);
    wait_delivered(&receiver, 200);

    let written_all = || pids.iter().map(|p| written(*p)).sum::<f64>();
    // Items each relay's links had acknowledged by the next hop (documents and receipts).
    let clients: Vec<ApiClient> = topology
        .iter()
        .filter_map(|s| net.client(&s.agency).ok())
        .collect();
    let forwarded_all = || {
        clients
            .iter()
            .map(|c| {
                metric_sum(
                    &c.get_text("/metrics").unwrap_or_default(),
                    "lienthong_forwarded_total{",
                )
            })
            .sum::<u64>() as f64
    };
    let f0 = forwarded_all();
    let (c0, w0) = (cpu_of(&pids), written_all());
    let t0 = Instant::now();
    submit(&sender, &a, &b, n, 1_000, None);
    wait_delivered(&receiver, 200 + n as u64);
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_of(&pids) - c0;
    let mut fig = Figures {
        throughput: n as f64 / secs,
        cpu_us_per_doc_hop: cpu / n as f64 / HOPS,
        written_per_doc_hop: (written_all() - w0) / n as f64 / HOPS,
        ..Default::default()
    };
    // Read once the last receipts have come back too (they follow the deliveries): when the
    // count stops moving.
    let mut last = forwarded_all();
    for _ in 0..60 {
        std::thread::sleep(Duration::from_millis(500));
        let now = forwarded_all();
        if now == last {
            break;
        }
        last = now;
    }
    fig.items_per_doc_hop = (last - f0) / n as f64 / HOPS;

    let paced = (PACED_RATE * PACED_SECS) as usize;
    let before = delivered(&receiver);
    let c0 = cpu_of(&pids);
    let ids = submit(&sender, &a, &b, paced, 1_000_000, Some(PACED_RATE));
    wait_delivered(&receiver, before + paced as u64);
    fig.paced_cpu_us_per_doc_hop = (cpu_of(&pids) - c0) / paced as f64 / HOPS;
    let mut lat: Vec<f64> = ids
        .iter()
        .filter_map(|id| {
            let env = receiver.get_json(&format!("/v1/documents/{id}")).ok()?;
            let trace = env["trace"].as_array()?;
            let first = trace.first()?["received_unix_ms"].as_i64()?;
            let last = trace.last()?["received_unix_ms"].as_i64()?;
            Some((last - first) as f64)
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    fig.paced_p50_ms = percentile(&lat, 0.5);
    fig.paced_p99_ms = percentile(&lat, 0.99);
    net.stop_all();
    fig
}

fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// One attachment of `mib` MiB from commune to commune across the six links: upload time,
/// MB/s from submit to arrival at the far commune, and every relay's peak RSS.
fn measure_attachment(mib: u64) {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (mut net, topology, a, b) = chain_network(dir.path());
    let src = dir.path().join("big.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&src).unwrap());
        let mut block = vec![0u8; 1 << 20];
        for i in 0..mib {
            for (j, x) in block.iter_mut().enumerate() {
                *x = (j as u64).wrapping_mul(2654435761).wrapping_add(i) as u8;
            }
            f.write_all(&block).unwrap();
        }
    }
    let bytes = mib << 20;
    let sender = net.client(&a).unwrap();
    let t0 = Instant::now();
    let up = sender.upload_file(&src).unwrap();
    let upload = t0.elapsed().as_secs_f64();
    std::fs::remove_file(&src).unwrap();
    let mut env = sample_envelope(&a, &[&b], "1", "Hồ sơ dung lượng lớn");
    env["attachments"] = serde_json::json!([{ "name": "hoso.bin", "content_type": "application/octet-stream", "size": bytes, "sha256": up.sha256 }]);
    let t1 = Instant::now();
    let (id, _) = sender.submit(env).unwrap();
    let far = net.client(&b).unwrap();
    let deadline = t1 + Duration::from_secs(1800);
    while !far.inbox(&b).unwrap().iter().any(|e| e.envelope.id == id) {
        assert!(Instant::now() < deadline, "attachment did not arrive");
        std::thread::sleep(Duration::from_millis(50));
    }
    let across = t1.elapsed().as_secs_f64();
    println!(
        "{mib} MiB attachment: upload {:.1} s; across 6 links {:.1} s = {:.0} MB/s",
        upload,
        across,
        bytes as f64 / 1e6 / across
    );
    for s in &topology {
        if let Some(pid) = net.pid(&s.agency) {
            println!("  {} peak RSS {:.0} MiB", s.agency, peak_rss_mib(pid));
        }
    }
    net.stop_all();
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("hop bench: run with `cargo bench -p lienthong-relay --bench hop` for figures");
        return;
    }
    let n = documents();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // LT_BENCH_SIDE=lienthong skips the broker side (for profiling one side alone).
    let only_ours = std::env::var("LT_BENCH_SIDE").is_ok_and(|s| s == "lienthong");
    let rabbit = if only_ours {
        Figures::default()
    } else {
        measure_rabbitmq(&rt, n)
    };
    let ours = measure_lienthong(n);
    println!("{n} documents of 4 KiB, 7 queues/6 shovels vs 7 relays/6 links, one machine");
    println!(
        "{:<44} {:>12} {:>12} {:>8}",
        "figure", "RabbitMQ", "lienthong", "ratio"
    );
    let rows = [
        (
            "throughput, full speed (docs/s)",
            rabbit.throughput,
            ours.throughput,
        ),
        (
            "CPU per doc per hop, full speed (µs)",
            rabbit.cpu_us_per_doc_hop,
            ours.cpu_us_per_doc_hop,
        ),
        (
            "bytes written per doc per hop, full speed",
            rabbit.written_per_doc_hop,
            ours.written_per_doc_hop,
        ),
        (
            "items carried per doc per hop, full speed",
            rabbit.items_per_doc_hop,
            ours.items_per_doc_hop,
        ),
        ("p50 at 200/s (ms)", rabbit.paced_p50_ms, ours.paced_p50_ms),
        ("p99 at 200/s (ms)", rabbit.paced_p99_ms, ours.paced_p99_ms),
        (
            "CPU per doc per hop at 200/s (µs)",
            rabbit.paced_cpu_us_per_doc_hop,
            ours.paced_cpu_us_per_doc_hop,
        ),
    ];
    for (name, r, o) in rows {
        println!("{name:<44} {r:>12.1} {o:>12.1} {:>8.3}", o / r);
    }
    // LT_BENCH_ATTACHMENT_MIB (default 2048; 0 skips it): one large attachment across the
    // chain. Needs about eight times its size in free disk.
    let mib = std::env::var("LT_BENCH_ATTACHMENT_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048u64);
    if mib > 0 {
        measure_attachment(mib);
    }
}
