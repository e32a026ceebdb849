//! Restart with a backlog (prints figures; `cargo bench -p lienthong-relay --bench restart`):
//! a province relay whose store holds `LT_BENCH_BACKLOG` (default 1,000,000) signed envelopes
//! queued for its parent is started, and the bench prints how long until its local API answers,
//! until its parent has the first envelope in its inbox (`lienthong_delivered_total`), and how
//! long `/metrics` takes with that backlog. It is started twice: first on the store as the
//! backlog was written (sled replays its log since the store was last opened), then again
//! after a SIGTERM.
//!
//! The backlog is written straight into the stopped relay's store (signed with its own key,
//! exactly what its API would have stored), which is far quicker than submitting it; envelopes
//! are small (about 1 KiB) to keep the disk use near 1.5 GB for a million.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use lienthong_common::agency::AgencyCode;
use lienthong_common::signing::{envelope_signing_message, AgencySigner};
use lienthong_common::store::Store;
use lienthong_harness::{Network, NodeSpec};
use lienthong_proto::v1::{Envelope, OtherInfo, TraceEntry};

mod support;
use support::{bench_envelope, delivered, today};

const ROOT: &str = "000.00.00.G22";
const PROVINCE: &str = "000.00.00.H53";

fn backlog() -> usize {
    std::env::var("LT_BENCH_BACKLOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn envelope(n: usize, today: &str, now_ms: i64) -> Envelope {
    let mut env = bench_envelope(PROVINCE, ROOT, n, today);
    env.subject = "Văn bản đo thời gian khởi động lại".into();
    // The id a sender gives it (the parent checks it against the header).
    env.document_id = lienthong_common::envelope::document_id_for(&env);
    env.other_info = Some(OtherInfo::default());
    env.trace = vec![TraceEntry {
        agency: PROVINCE.into(),
        received_unix_ms: now_ms,
        forwarded_unix_ms: 0,
    }];
    env
}

/// Writes `count` signed envelopes queued for the root into the store at `dir`.
fn fill(dir: &std::path::Path, pki: &std::path::Path, count: usize) {
    let signer = AgencySigner::load(
        &pki.join(format!("{PROVINCE}.pem")),
        &pki.join(format!("{PROVINCE}.key")),
    )
    .unwrap();
    let store = Store::open(dir).unwrap();
    let today = today();
    let queue = vec![(ROOT.to_string(), vec![ROOT.to_string()])];
    let started = Instant::now();
    let threads = 2;
    std::thread::scope(|s| {
        for t in 0..threads {
            let (store, signer, today, queue) = (&store, &signer, &today, &queue);
            s.spawn(move || {
                for n in (t..count).step_by(threads) {
                    let now_ms = lienthong_common::now_unix_ms();
                    let mut env = envelope(n, today, now_ms);
                    signer.sign_envelope(&mut env, now_ms).unwrap();
                    let sig = env.signature.as_ref().unwrap();
                    let msg = envelope_signing_message(&env, &sig.algorithm, sig.signing_unix_ms);
                    let digest = ring::digest::digest(&ring::digest::SHA256, &msg);
                    store.offer_envelope(&env, digest.as_ref(), queue).unwrap();
                    if n > 0 && n % 100_000 == t {
                        println!("  … {n} of {count} written");
                    }
                }
            });
        }
    });
    let _ = store.commit_blocking().unwrap();
    println!(
        "backlog of {count} envelopes written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "restart bench: run with `cargo bench -p lienthong-relay --bench restart` for figures"
        );
        return;
    }
    let count = backlog();
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_lt-relay"));
    std::env::set_var("LT_LOG", "warn");
    let dir = tempfile::tempdir().unwrap();
    let specs = vec![
        NodeSpec::new(ROOT, "Văn phòng Chính phủ", None).unwrap(),
        NodeSpec::new(PROVINCE, "UBND tỉnh Tây Ninh", Some(ROOT)).unwrap(),
    ];
    let mut net = Network::create(dir.path(), &exe, &specs).unwrap();
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();
    let province = AgencyCode::parse(PROVINCE).unwrap();
    net.stop(&province, libc::SIGTERM).unwrap();

    let store_dir = dir.path().join(PROVINCE).join("data").join("store");
    assert!(store_dir.is_dir(), "no store at {}", store_dir.display());
    fill(&store_dir, &net.pki_dir(), count);

    let parent = net.client(&AgencyCode::parse(ROOT).unwrap()).unwrap();
    // First start: sled replays everything written since the store was last opened (here, the
    // whole backlog). Second start, after a SIGTERM: what was replayed then is in sled's
    // snapshot.
    for (i, what) in [
        "after the backlog was written",
        "again (stopped by SIGTERM)",
    ]
    .iter()
    .enumerate()
    {
        if i > 0 {
            net.stop(&province, libc::SIGTERM).unwrap();
        }
        let before = delivered(&parent);
        let t0 = Instant::now();
        net.start(&province).unwrap();
        let client = net.client(&province).unwrap();
        let deadline = t0 + Duration::from_secs(300);
        while client.health().is_err() {
            assert!(
                Instant::now() < deadline,
                "the relay did not answer: {}",
                std::fs::read_to_string(&net.nodes[&province].log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let api = t0.elapsed();
        while delivered(&parent) == before {
            assert!(Instant::now() < deadline, "nothing delivered at the parent");
            std::thread::sleep(Duration::from_millis(2));
        }
        let first = t0.elapsed();
        println!("restart {what}, {count} queued: local API answers after {:.0} ms, first envelope delivered at the parent after {:.0} ms (from process start)", api.as_secs_f64() * 1e3, first.as_secs_f64() * 1e3);
    }
    let client = net.client(&province).unwrap();
    let mut times: Vec<f64> = (0..9)
        .map(|_| {
            let t = Instant::now();
            let text = client.get_text("/metrics").unwrap();
            assert!(text.contains("lienthong_queue_depth"));
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let depth_line = client
        .get_text("/metrics")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("lienthong_queue_depth"))
        .map(str::to_owned)
        .unwrap_or_default();
    println!(
        "/metrics with that backlog: median {:.1} ms, worst {:.1} ms of 9 ({depth_line})",
        times[4], times[8]
    );
    net.stop_all();
}
