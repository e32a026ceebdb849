//! Foundation benchmarks; prints figures (run with `cargo bench -p lienthong-common`).
//!
//! - envelopes signed/s and verified/s (chain + CRL check included), ECDSA P-256 and RSA-2048;
//! - durable 4 KiB persists/s with 1, 8, 32 and 128 concurrent writers (group commit).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lienthong_common::agency::AgencyCode;
use lienthong_common::pki::{self, IssueRequest, KeyAlgorithm};
use lienthong_common::signing::{AgencySigner, Verifier};
use lienthong_common::store::Store;
use lienthong_common::trust::TrustStore;
use lienthong_proto::v1::{
    AttachmentManifest, DocumentCode, Envelope, Organization, PromulgationInfo,
};
use prost::Message;
use rustls_pki_types::UnixTime;

fn envelope_4k(from: &str) -> Envelope {
    let mut e = Envelope {
        id: "bench".into(),
        from: Some(Organization {
            code: from.into(),
            name: "UBND tỉnh".into(),
            ..Default::default()
        }),
        to: vec![Organization {
            code: "000.00.00.G14".into(),
            name: "Bộ".into(),
            ..Default::default()
        }],
        code: Some(DocumentCode {
            number: "1".into(),
            notation: "UBND-VP".into(),
        }),
        promulgation: Some(PromulgationInfo {
            place: "x".into(),
            date: "2026-11-20".into(),
        }),
        subject: "Trích yếu văn bản".repeat(20),
        attachments: vec![AttachmentManifest {
            name: "a.pdf".into(),
            size: 1,
            sha256: vec![0; 32],
            ..Default::default()
        }],
        ..Default::default()
    };
    while e.encoded_len() < 4096 {
        e.to_places.push("Nơi nhận: các sở, ban, ngành".into());
    }
    e
}

fn bench_signatures() {
    let dir = tempfile::tempdir().unwrap();
    pki::init(dir.path()).unwrap();
    // A CRL with a few revoked entries so the revocation check has something to search.
    for i in 0..5 {
        let c = AgencyCode::parse(&format!("000.00.{:02}.H99", i + 1)).unwrap();
        pki::issue(dir.path(), &IssueRequest::new(c.clone())).unwrap();
        pki::revoke(dir.path(), &c).unwrap();
    }
    let trust = TrustStore::load(
        &pki::ca_cert_path(dir.path()),
        Some(&pki::crl_path(dir.path())),
    )
    .unwrap();
    let verifier = Verifier::new(Arc::new(trust));
    for (agency, alg, name) in [
        ("000.00.00.H53", KeyAlgorithm::EcdsaP256, "ECDSA P-256"),
        ("000.00.00.H49", KeyAlgorithm::Rsa2048, "RSA-2048"),
    ] {
        let mut req = IssueRequest::new(AgencyCode::parse(agency).unwrap());
        req.algorithm = alg;
        let f = pki::issue(dir.path(), &req).unwrap();
        let signer = AgencySigner::load(&f.cert, &f.key).unwrap();
        let mut env = envelope_4k(agency);
        let n = 2000;
        let t = Instant::now();
        for i in 0..n {
            signer.sign_envelope(&mut env, i).unwrap();
        }
        let sign_rate = n as f64 / t.elapsed().as_secs_f64();
        let now = UnixTime::now();
        let t = Instant::now();
        for _ in 0..n {
            verifier.verify_envelope(env.clone(), now).unwrap();
        }
        let verify_rate = n as f64 / t.elapsed().as_secs_f64();
        println!("{name:<12} 4 KiB envelope: signed {sign_rate:>8.0}/s, verified (chain + CRL) {verify_rate:>8.0}/s");
    }
}

fn bench_store(rt: &tokio::runtime::Runtime) {
    let value = vec![0x5au8; 4096];
    for writers in [1usize, 8, 32, 128] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let count = Arc::new(AtomicU64::new(0));
        let run_for = Duration::from_secs(3);
        let t = Instant::now();
        rt.block_on(async {
            let mut tasks = Vec::new();
            for w in 0..writers {
                let store = store.clone();
                let count = count.clone();
                let value = value.clone();
                tasks.push(tokio::spawn(async move {
                    let mut i = 0u64;
                    while t.elapsed() < run_for {
                        let k = format!("bench/{w}/{i}");
                        store.put_raw(k.as_bytes(), &value).unwrap();
                        let _p = store.commit().await.unwrap();
                        count.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
        });
        let rate = count.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64();
        println!("store: {writers:>3} concurrent writers: {rate:>8.0} durable 4 KiB persists/s");
    }
}

fn main() {
    // `cargo test --benches` runs this with --bench absent; keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("foundation bench: run with `cargo bench -p lienthong-common` for figures");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    bench_signatures();
    bench_store(&rt);
}
