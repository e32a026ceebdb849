//! Relay-network benchmark (prints figures; `cargo bench -p lienthong-relay --bench chain`):
//! signed 4 KiB envelopes through the 7-node chain commune→district→province→root→province→
//! district→commune, with real processes and mTLS on 127.0.0.1.
//!
//! - accept rate of one relay (documents/s its local API takes, signed, stored durably);
//! - end-to-end throughput through the chain;
//! - p50/p99 commune-to-commune latency at an offered 200 documents/s.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use lienthong_common::agency::AgencyCode;
use lienthong_harness::{demo_topology, ApiClient, Network};

mod support;
use support::{delivered, envelope_4k};

fn submit_many(
    client: &ApiClient,
    from: &AgencyCode,
    to: &AgencyCode,
    total: usize,
    threads: usize,
    base: usize,
) -> f64 {
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let c = client.clone();
            let (from, to) = (from.clone(), to.clone());
            std::thread::spawn(move || {
                for i in (t..total).step_by(threads) {
                    c.submit(envelope_4k(&from, &to, base + i)).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "chain bench: run with `cargo bench -p lienthong-relay --bench chain` for figures"
        );
        return;
    }
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_lt-relay"));
    std::env::set_var("LT_LOG", "warn");

    // 0. One relay alone: documents to an agency it serves itself (stored, delivered, 01).
    {
        let dir = tempfile::tempdir().unwrap();
        let spec = lienthong_harness::NodeSpec::new("000.00.00.G22", "Root", None).unwrap();
        let mut solo = Network::create(dir.path(), &exe, &[spec]).unwrap();
        solo.start_all().unwrap();
        solo.wait_linked(Duration::from_secs(30)).unwrap();
        let g22 = AgencyCode::parse("000.00.00.G22").unwrap();
        let c = solo.client(&g22).unwrap();
        let rate = submit_many(&c, &g22, &g22, 3000, 16, 0);
        println!("one relay alone, accept rate (validate, sign, verify, store durably, deliver, 01): {rate:.0} documents/s (16 clients)");
        solo.stop_all();
    }

    let dir = tempfile::tempdir().unwrap();
    let mut net = Network::create(dir.path(), &exe, &demo_topology().unwrap()).unwrap();
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();
    let a = AgencyCode::parse("000.21.31.H53").unwrap();
    let b = AgencyCode::parse("000.07.05.H49").unwrap();
    let sender = net.client(&a).unwrap();
    let receiver = net.client(&b).unwrap();

    // 1. Accept rate of one relay and end-to-end chain throughput.
    let n = 3000;
    let t0 = Instant::now();
    let accept = submit_many(&sender, &a, &b, n, 16, 0);
    while delivered(&receiver) < n as u64 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let through = n as f64 / t0.elapsed().as_secs_f64();
    println!("commune relay's accept rate while the chain runs on the same 2 cores: {accept:.0} documents/s (16 clients)");
    println!(
        "chain throughput (7 nodes, 6 links, 4 KiB signed):    {through:.0} documents/s end to end"
    );

    // 2. Latency at an offered 200 documents/s for 10 s.
    let rate = 200.0;
    let count = 2000usize;
    let before = delivered(&receiver);
    let started = Instant::now();
    let sender = Arc::new(sender);
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let (id, _) = sender.submit(envelope_4k(&a, &b, 100_000 + i)).unwrap();
        ids.push(id);
    }
    while delivered(&receiver) < before + count as u64 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut lat: Vec<i64> = ids
        .iter()
        .filter_map(|id| {
            let env = receiver.get_json(&format!("/v1/documents/{id}")).ok()?;
            let trace = env["trace"].as_array()?;
            let first = trace.first()?["received_unix_ms"].as_i64()?;
            let last = trace.last()?["received_unix_ms"].as_i64()?;
            Some(last - first)
        })
        .collect();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize];
    println!(
        "latency commune→commune at {rate:.0} documents/s: p50 {} ms, p99 {} ms, max {} ms ({} documents)",
        pct(0.5),
        pct(0.99),
        lat.last().copied().unwrap_or(0),
        lat.len()
    );
    net.stop_all();
}
