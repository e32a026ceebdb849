//! Time-stamps: documents per TSA request and the throughput with and without them (prints
//! figures; `cargo bench -p lienthong-relay --bench timestamp`, needs the `openssl` command).
//!
//! A province sends `LT_BENCH_DOCS` (default 2,000) 4 KiB documents to the root through its
//! local API from 16 threads; the bench measures from the first submit until the root has
//! delivered them all, once with no `[timestamp]` and once with the province stamping through
//! a TSA that is not ours: `openssl ts -reply` behind HTTP (the tests' `support::tsa`; it starts
//! one openssl process per request, a slow TSA, so batching shows). It prints documents per
//! second for each, the ratio, the TSA requests and documents per request, and the CPU time of
//! the province per document from /proc.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, dead_code)]

use std::io::Write;
use std::time::{Duration, Instant};

use lienthong_common::agency::AgencyCode;
use lienthong_harness::{ApiClient, Network, NodeSpec};

mod support;
use support::{delivered, envelope_4k};

/// The tests' real TSA, reused as it is (it calls `super::openssl`).
#[path = "../../tests/tests/support/tsa.rs"]
mod tsa;
use tsa::{Section, TsaPki, TsaServer};

pub(crate) fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const ROOT: &str = "000.00.00.G22";
const PROVINCE: &str = "000.00.00.H53";

fn docs() -> usize {
    std::env::var("LT_BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

/// utime + stime of a process, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

struct Run {
    docs_per_sec: f64,
    cpu_ms_per_doc: f64,
}

fn run(dir: &std::path::Path, timestamp: Option<(&str, &std::path::Path)>) -> Run {
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_lt-relay"));
    let specs = [
        NodeSpec::new(ROOT, "Văn phòng Chính phủ", None).unwrap(),
        NodeSpec::new(PROVINCE, "UBND tỉnh Tây Ninh", Some(ROOT)).unwrap(),
    ];
    let mut net = Network::create(dir, &exe, &specs).unwrap();
    let province = AgencyCode::parse(PROVINCE).unwrap();
    let root = AgencyCode::parse(ROOT).unwrap();
    if let Some((url, ca)) = timestamp {
        std::fs::OpenOptions::new()
            .append(true)
            .open(&net.nodes[&province].config)
            .unwrap()
            .write_all(
                format!(
                    "\n[timestamp]\nurl = \"{url}\"\nca = [{:?}]\nrequired = true\n",
                    ca.display().to_string()
                )
                .as_bytes(),
            )
            .unwrap();
    }
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();
    let sender = net.client(&province).unwrap();
    let receiver: ApiClient = net.client(&root).unwrap();
    let pid = net.pid(&province).unwrap();
    let total = docs();
    let before = delivered(&receiver);
    let cpu_before = cpu_secs(pid);
    let started = Instant::now();
    let threads = 16;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let c = sender.clone();
            let (from, to) = (province.clone(), root.clone());
            std::thread::spawn(move || {
                for i in (t..total).step_by(threads) {
                    c.submit(envelope_4k(&from, &to, i)).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    while delivered(&receiver) < before + total as u64 {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "not all delivered in 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_secs(pid) - cpu_before;
    net.stop_all();
    Run {
        docs_per_sec: total as f64 / secs,
        cpu_ms_per_doc: cpu * 1000.0 / total as f64,
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("timestamp bench: run with `cargo bench -p lienthong-relay --bench timestamp`");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let plain = run(&work.path().join("plain"), None);
    let pki_dir = work.path().join("tsa");
    std::fs::create_dir_all(&pki_dir).unwrap();
    let pki = TsaPki::create(&pki_dir);
    let tsa = TsaServer::start(&pki, Section::Ec256);
    let stamped = run(
        &work.path().join("stamped"),
        Some((&tsa.url(), &pki.ca_pem())),
    );
    let requests = tsa.served().max(1);
    let n = docs();
    println!("time-stamps, {n} documents of 4 KiB, province → root, 16 API clients");
    println!(
        "  without [timestamp]:  {:8.0} docs/s   province CPU {:.2} ms/doc",
        plain.docs_per_sec, plain.cpu_ms_per_doc
    );
    println!(
        "  with an openssl TSA:  {:8.0} docs/s   province CPU {:.2} ms/doc",
        stamped.docs_per_sec, stamped.cpu_ms_per_doc
    );
    println!(
        "  ratio with / without: {:.2}",
        stamped.docs_per_sec / plain.docs_per_sec
    );
    println!(
        "  TSA requests: {requests}, documents per request: {:.1}",
        n as f64 / requests as f64
    );
}
