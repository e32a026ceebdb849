//! The console's pages on a root that holds the attestations of `LT_BENCH_NODES` (default 3,300)
//! nodes below it (prints figures; `cargo bench -p lienthong-relay --bench console`).
//!
//! The attestations are written straight into the stopped root's store, as its link would have
//! stored them (one newest attestation and one node detail per node, the detail with a name and
//! 13 requirements with their texts and evidence, for 63 provinces with their districts and
//! communes), with a day of traffic minutes (`w/<minute>`, 1,440 of them, each with the 63
//! provinces' links, hop acks and refusals) for the traffic page; then the root is started and
//! each page is asked for 20 times over one connection.
//! Printed per page: the answer time (min, median, p95, max) and the page size.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use lienthong_common::store::{Store, Upward, UpwardSubject};
use lienthong_harness::{Network, NodeSpec};
use lienthong_proto::v1::{NodeAttestation, NodeDetail, RequirementCheck};
use prost::Message;

const ROOT: &str = "000.00.00.G22";

fn nodes() -> usize {
    std::env::var("LT_BENCH_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3300)
}

/// Agency codes of a country-sized tree: provinces H01…H63, ten districts each, five communes
/// in each district, in that order, `count` of them.
fn codes(count: usize) -> Vec<String> {
    let mut out = Vec::new();
    'all: for p in 1..=63 {
        out.push(format!("000.00.00.H{p:02}"));
        for d in 1..=10 {
            out.push(format!("000.00.{d:02}.H{p:02}"));
            for c in 1..=5 {
                out.push(format!("000.{c:02}.{d:02}.H{p:02}"));
                if out.len() >= count {
                    break 'all;
                }
            }
        }
    }
    out.truncate(count);
    out
}

fn fill(dir: &std::path::Path, count: usize) {
    let store = Store::open(dir).unwrap();
    let now_ms = lienthong_common::now_unix_ms();
    let now = now_ms / 1000;
    for (i, node) in codes(count).iter().enumerate() {
        let a = NodeAttestation {
            id: format!("bench-attestation-{i}"),
            node: node.clone(),
            generated_unix_ms: now_ms - (i as i64 % 600) * 1000,
            software_version: "0.2.0".into(),
            certificate_not_after_unix: now + 86_400 * (20 + (i as i64 % 800)),
            ca_not_after_unix: now + 86_400 * 3000,
            crl_next_update_unix: now + 86_400 * 6,
            queue_depths: [(ROOT.to_string(), (i % 7) as u64)].into_iter().collect(),
            parent_last_up_unix_ms: now_ms,
            assessed_level: 3,
            assessment_met: if i % 13 == 0 { 12 } else { 13 },
            assessment_total: 13,
            events_by_class: [("api_auth".to_string(), (i % 3) as u64)]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let bytes = a.encode_to_vec();
        store
            .put_upward(
                &Upward {
                    id: &a.id,
                    subject: UpwardSubject::Attestation { node: node.clone() },
                    generated_unix_ms: a.generated_unix_ms,
                    frame: &bytes,
                    latest: &bytes,
                    rows: Vec::new(),
                },
                None,
            )
            .unwrap();
        let d = NodeDetail {
            id: format!("bench-detail-{i}"),
            node: node.clone(),
            generated_unix_ms: a.generated_unix_ms,
            name: format!("Ủy ban nhân dân đơn vị {node}"),
            assessed_level: 3,
            requirements: (0..13)
                .map(|r| RequirementCheck {
                    id: format!("requirement_{r}"),
                    met: !(i % 13 == 0 && r == 4),
                    requirement: "private key files are readable by their owner only".into(),
                    requirement_vi: "tệp khóa bí mật chỉ chủ sở hữu được đọc".into(),
                    evidence: format!("0600 /etc/lienthong/pki/{node}.key; 0600 /etc/lienthong/pki/agency-{r}.key"),
                })
                .collect(),
            oldest_queued_unix_ms: [(ROOT.to_string(), now_ms - 60_000)].into_iter().collect(),
            signature: None,
        };
        let bytes = d.encode_to_vec();
        store
            .put_upward(
                &Upward {
                    id: &d.id,
                    subject: UpwardSubject::Detail { node: node.clone() },
                    generated_unix_ms: d.generated_unix_ms,
                    frame: &bytes,
                    latest: &bytes,
                    rows: Vec::new(),
                },
                None,
            )
            .unwrap();
    }
    fill_traffic(&store, now_ms);
    let _durable = store.commit_blocking().unwrap();
}

/// A day of traffic minutes ending now: every province's link busy, acks and refusals.
fn fill_traffic(store: &Store, now_ms: i64) {
    use lienthong_relay::traffic::{LinkMinute, Minute, ACK_BOUNDS_MS};
    let now_minute = u64::try_from(now_ms / 60_000).unwrap();
    for back in 1..=1440u64 {
        let minute = now_minute - back;
        let links = (1..=63u64)
            .map(|p| {
                (
                    format!("000.00.00.H{p:02}"),
                    LinkMinute {
                        docs_in: (minute + p) % 17,
                        docs_out: (minute * p) % 13,
                        depth: (minute + 3 * p) % 40,
                    },
                )
            })
            .collect();
        let mut acks = vec![0u64; ACK_BOUNDS_MS.len() + 1];
        acks[3] = 200 + minute % 50;
        acks[6] = 5 + minute % 3;
        let m = Minute {
            minute,
            links,
            acks,
            refused: [("not_a_child".to_string(), minute % 4)]
                .into_iter()
                .collect(),
        };
        store
            .put_traffic_minute(minute, &serde_json::to_vec(&m).unwrap())
            .unwrap();
    }
}

fn main() {
    let count = nodes();
    let dir = tempfile::tempdir().unwrap();
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_lt-relay"));
    let specs = [NodeSpec::new(ROOT, "Văn phòng Chính phủ", None).unwrap()];
    let mut net = Network::create(dir.path(), &exe, &specs).unwrap();
    let root = lienthong_common::agency::AgencyCode::parse(ROOT).unwrap();
    let store_dir = net.nodes[&root].config.parent().unwrap().join("data/store");
    let t = Instant::now();
    fill(&store_dir, count);
    println!(
        "console bench: {count} attestations and node details written in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    net.start_all().unwrap();
    let api = net.nodes[&root].api;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let deadline = Instant::now() + Duration::from_secs(60);
    while agent.get(&format!("http://{api}/healthz")).call().is_err() {
        assert!(
            Instant::now() < deadline,
            "the root did not start: {}",
            std::fs::read_to_string(&net.nodes[&root].log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("page                        min    median  p95     max     bytes");
    for page in [
        "/console",
        "/console?q=H53",
        "/console?q=%C4%91%C6%A1n%20v%E1%BB%8B%20000.00.05",
        "/console/node/000.00.05.H53",
        "/console/security",
        "/console/register",
        "/console/traffic",
        "/console/traffic?hours=24",
        "/console/traffic?part=charts&hours=24",
        "/console/report",
        "/console/documents?id=no-such-document",
    ] {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..20 {
            let t = Instant::now();
            let mut resp = agent.get(&format!("http://{api}{page}")).call().unwrap();
            let body = resp.body_mut().read_to_string().unwrap();
            times.push(t.elapsed());
            size = body.len();
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{page:<27} {:>6.1} {:>7.1} {:>7.1} {:>7.1}  {size}",
            ms(times[0]),
            ms(times[10]),
            ms(times[18]),
            ms(times[19])
        );
    }
    net.stop_all();
}
