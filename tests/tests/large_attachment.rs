//! A 1 GiB attachment sent commune→commune across 6 links (7 relays), fetched at the far end
//! with a matching SHA-256, while every relay's peak resident memory stays under 100 MiB:
//! attachments stream in bounded chunks and are never held whole in memory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use lienthong_harness::{demo_topology, sample_envelope};
use support::{code, sha256_file, start, wait_for};

const SIZE: u64 = 1024 * 1024 * 1024;
const RSS_LIMIT_KIB: u64 = 100 * 1024;

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn one_gib_attachment_across_six_links_in_bounded_memory() {
    let (dir, net) = start(&demo_topology().unwrap());
    let src = dir.path().join("big.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&src).unwrap());
        let mut block = vec![0u8; 1 << 20];
        for i in 0..(SIZE >> 20) {
            for (j, b) in block.iter_mut().enumerate() {
                *b = (j as u64)
                    .wrapping_mul(2654435761)
                    .wrapping_add(i)
                    .to_le_bytes()[0];
            }
            block[..8].copy_from_slice(&i.to_le_bytes());
            f.write_all(&block).unwrap();
        }
    }
    let want = sha256_file(&src);
    let from = code("000.21.31.H53");
    let to = code("000.07.05.H49");
    let started = Instant::now();
    let client = net.client(&from).unwrap();
    let up = client.upload_file(&src).unwrap();
    assert_eq!(up.sha256, want);
    assert_eq!(up.size, SIZE);
    let mut env = sample_envelope(&from, &[&to], "1", "Hồ sơ dung lượng lớn");
    env["attachments"] = serde_json::json!([{ "name": "hoso.bin", "content_type": "application/octet-stream", "size": SIZE, "sha256": up.sha256 }]);
    let (id, _) = client.submit(env).unwrap();
    let far = net.client(&to).unwrap();
    wait_for(
        Duration::from_secs(900),
        "the 1 GiB document at the far commune",
        || {
            far.inbox(&to)
                .unwrap()
                .iter()
                .any(|e| e.envelope.id == id)
                .then_some(())
        },
    );
    let elapsed = started.elapsed();
    std::fs::remove_file(&src).unwrap();
    let out = dir.path().join("fetched.bin");
    assert_eq!(far.download(&id, &want, &out).unwrap(), SIZE);
    assert_eq!(sha256_file(&out), want, "fetched bytes differ");
    let mut report = Vec::new();
    for agency in net.nodes.keys() {
        let pid = net.pid(agency).unwrap();
        let kib = peak_rss_kib(pid);
        report.push(format!("{agency}: peak RSS {} MiB", kib / 1024));
        assert!(kib < RSS_LIMIT_KIB, "{agency} peaked at {kib} KiB");
    }
    eprintln!("1 GiB across 6 links in {elapsed:?}\n{}", report.join("\n"));
}
