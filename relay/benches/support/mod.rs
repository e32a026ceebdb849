//! What the benches share: reading metrics, the documents they send, the 7-relay chain.
#![allow(dead_code)]

use std::time::Duration;

use lienthong_common::agency::AgencyCode;
use lienthong_harness::{demo_topology, sample_envelope, ApiClient, Network, NodeSpec};
use lienthong_proto::v1::{DocumentCode, Envelope, Organization, PromulgationInfo};

/// The value of the metric line starting with `prefix` (0 if absent).
pub(crate) fn metric(text: &str, prefix: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The sum of every metric line starting with `prefix` (all its label sets).
pub(crate) fn metric_sum(text: &str, prefix: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum()
}

/// A node's metric starting with `prefix`, read from its `/metrics` (0 if absent).
pub(crate) fn metric_of(c: &ApiClient, prefix: &str) -> u64 {
    metric(&c.get_text("/metrics").unwrap_or_default(), prefix)
}

/// Documents delivered to the node's inboxes.
pub(crate) fn delivered(c: &ApiClient) -> u64 {
    metric_of(c, "lienthong_delivered_total")
}

/// A 4 KiB document from `from` to `to`, numbered `n`, as the local API takes it.
pub(crate) fn envelope_4k(from: &AgencyCode, to: &AgencyCode, n: usize) -> serde_json::Value {
    let mut e = sample_envelope(from, &[to], &format!("{n}"), "Văn bản đo hiệu năng");
    e["to_places"] = serde_json::json!(vec!["Nơi nhận: các sở, ban, ngành tỉnh"; 80]);
    e
}

/// A small unsigned envelope from `from` to `to`, numbered `n`, promulgated `today`.
pub(crate) fn bench_envelope(from: &str, to: &str, n: usize, today: &str) -> Envelope {
    Envelope {
        id: uuid::Uuid::new_v4().to_string(),
        from: Some(Organization {
            code: from.into(),
            name: "Cơ quan đo hiệu năng".into(),
            ..Default::default()
        }),
        to: vec![Organization {
            code: to.into(),
            name: "Văn phòng Chính phủ".into(),
            ..Default::default()
        }],
        code: Some(DocumentCode {
            number: n.to_string(),
            notation: "UBND-VP".into(),
        }),
        promulgation: Some(PromulgationInfo {
            place: String::new(),
            date: today.to_owned(),
        }),
        subject: "Văn bản đo hiệu năng".into(),
        ..Default::default()
    }
}

/// Today's date in Vietnam, as envelopes carry it.
pub(crate) fn today() -> String {
    lienthong_common::envelope::format_date(lienthong_common::envelope::today_in_vietnam(
        lienthong_common::now_utc(),
    ))
}

/// The demo's network without its ministry (exactly the seven relays of the chain commune →
/// commune), started and linked in `dir`, with its two communes.
pub(crate) fn chain_network(
    dir: &std::path::Path,
) -> (Network, Vec<NodeSpec>, AgencyCode, AgencyCode) {
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_lt-relay"));
    let topology: Vec<_> = demo_topology()
        .unwrap()
        .into_iter()
        .filter(|s| s.agency.as_str() != "000.00.00.G14")
        .collect();
    let mut net = Network::create(dir, &exe, &topology).unwrap();
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();
    let a = AgencyCode::parse("000.21.31.H53").unwrap();
    let b = AgencyCode::parse("000.07.05.H49").unwrap();
    (net, topology, a, b)
}
