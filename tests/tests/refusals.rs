//! Every refusal at a relay, each with its reason, while other traffic keeps flowing: no client
//! certificate, a foreign CA, an expired certificate, a revoked one, a child certificate for
//! another agency, a sender outside the child's subtree, a tampered signature, an unknown
//! recipient (accepted, then answered with a rejection receipt "no route to ...").
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use lienthong_common::pki::{self, IssueRequest};
use lienthong_common::signing::AgencySigner;
use lienthong_common::tls::{self, Identity};
use lienthong_common::trust::TrustStore;
use lienthong_harness::{sample_envelope, Network, NodeSpec};
use lienthong_proto::v1::{
    link_frame::Frame, receipt_frame, DocumentCode, Envelope, EnvelopeHeader, Hello, LinkFrame,
    PromulgationInfo, RefusalCode,
};
use lienthong_relay::link::open_link;
use support::{code, org, relay_exe, wait_for, wait_in_inbox};

fn issue(dir: &std::path::Path, agency: &str, tweak: impl FnOnce(&mut IssueRequest)) -> Identity {
    let mut req = IssueRequest::new(code(agency));
    tweak(&mut req);
    let f = pki::issue(dir, &req).unwrap();
    Identity::load(&f.cert, &f.key).unwrap()
}

fn log_of(net: &Network, agency: &str) -> String {
    std::fs::read_to_string(&net.nodes[&code(agency)].log).unwrap_or_default()
}

/// Connects to the province as `id` and returns the error text (or "linked").
async fn try_link(addr: &str, trust: Arc<TrustStore>, id: &Identity, claims: &str) -> String {
    let cfg = tls::client_config(trust, code("000.00.00.H53"), id, false).unwrap();
    let hello = LinkFrame {
        frame: Some(Frame::Hello(Hello {
            agency: claims.into(),
            serves: vec![claims.into()],
            features: vec![],
            software_version: "test".into(),
            heartbeat_secs: 0,
            claims: vec![],
        })),
    };
    // Bounded: a link attempt that neither succeeds nor fails is a failure to report, not a
    // test run that never ends.
    let attempt = async {
        match open_link(addr, cfg, Duration::from_secs(2), hello).await {
            Err(e) => e.to_string(),
            Ok((_tx, mut rx)) => match rx.message().await {
                Ok(Some(_)) => "linked".into(),
                Ok(None) => "closed".into(),
                Err(s) => format!("{}: {}", s.code(), s.message()),
            },
        }
    };
    tokio::time::timeout(Duration::from_secs(30), attempt)
        .await
        .unwrap_or_else(|_| format!("no outcome within 30 s linking as {claims}"))
}

fn envelope(from: &str, to: &str, subject: &str) -> Envelope {
    let today = lienthong_common::envelope::format_date(
        lienthong_common::envelope::today_in_vietnam(time::OffsetDateTime::now_utc()),
    );
    let mut e = Envelope {
        id: uuid_like(subject),
        from: Some(org(from)),
        to: vec![org(to)],
        code: Some(DocumentCode {
            number: "9".into(),
            notation: "T".into(),
        }),
        promulgation: Some(PromulgationInfo {
            place: String::new(),
            date: today,
        }),
        subject: subject.into(),
        ..Default::default()
    };
    e.document_id = lienthong_common::envelope::document_id_for(&e);
    e
}

fn uuid_like(seed: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, seed.as_bytes());
    hex_string(&d.as_ref()[..16])
}

fn hex_string(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn header(env: Envelope, to: &str) -> LinkFrame {
    LinkFrame {
        frame: Some(Frame::Envelope(EnvelopeHeader {
            envelope: Some(env),
            recipients: vec![to.into()],
        })),
    }
}

#[test]
fn each_refusal_has_its_reason_while_traffic_flows() {
    let dir = tempfile::tempdir().unwrap();
    let specs = vec![
        NodeSpec::new("000.00.00.G22", "Root", None).unwrap(),
        {
            // Unknown districts get "no route" at once, not a wait for them to link.
            let mut p = NodeSpec::new("000.00.00.H53", "Tỉnh A", Some("000.00.00.G22")).unwrap();
            p.offline_child_max_age_hours = Some(0);
            p
        },
        NodeSpec::new("000.00.21.H53", "Xã A", Some("000.00.00.H53")).unwrap(),
        NodeSpec::new("000.00.00.H49", "Tỉnh B", Some("000.00.00.G22")).unwrap(),
    ];
    let mut net = Network::create(dir.path(), &relay_exe(), &specs).unwrap();
    let pki_dir = net.pki_dir();
    let good_child = issue(&pki_dir, "000.00.22.H53", |_| {});
    let expired = issue(&pki_dir, "000.00.23.H53", |r| {
        r.not_before = Some(time::OffsetDateTime::now_utc() - time::Duration::days(10));
        r.valid_days = 2;
    });
    let revoked = issue(&pki_dir, "000.00.24.H53", |_| {});
    pki::revoke(&pki_dir, &code("000.00.24.H53")).unwrap();
    let other_province = issue(&pki_dir, "000.00.31.H49", |_| {});
    let g14 = pki::issue(&pki_dir, &IssueRequest::new(code("000.00.00.G14"))).unwrap();
    let foreign_dir = dir.path().join("foreign-pki");
    pki::init(&foreign_dir).unwrap();
    let foreign = issue(&foreign_dir, "000.00.25.H53", |_| {});
    // The province reads the CRL (with 000.00.24.H53 revoked) when it starts.
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();

    let trust = Arc::new(
        TrustStore::load(&pki::ca_cert_path(&pki_dir), Some(&pki::crl_path(&pki_dir))).unwrap(),
    );
    let addr = net.nodes[&code("000.00.00.H53")].grpc.to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    // Legitimate traffic keeps flowing throughout.
    let commune = code("000.00.21.H53");
    let far = code("000.00.00.H49");
    let legit = net.client(&commune).unwrap();
    let mut legit_ids = vec![
        legit
            .submit(sample_envelope(&commune, &[&far], "1", "trước"))
            .unwrap()
            .0,
    ];

    // TLS-level refusals, each logged by the province with its cause.
    let no_cert = rt.block_on(async {
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer))
        .with_no_client_auth();
        let mut cfg = cfg;
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        let hello = LinkFrame {
            frame: Some(Frame::Hello(Hello {
                agency: "000.00.22.H53".into(),
                ..Default::default()
            })),
        };
        match open_link(&addr, Arc::new(cfg), Duration::from_secs(2), hello).await {
            Err(e) => e.to_string(),
            Ok((_t, mut rx)) => format!("{:?}", rx.message().await),
        }
    });
    assert!(!no_cert.contains("linked"), "{no_cert}");
    let foreign_err = rt.block_on(try_link(&addr, trust.clone(), &foreign, "000.00.25.H53"));
    let expired_err = rt.block_on(try_link(&addr, trust.clone(), &expired, "000.00.23.H53"));
    let revoked_err = rt.block_on(try_link(&addr, trust.clone(), &revoked, "000.00.24.H53"));
    for e in [&foreign_err, &expired_err, &revoked_err] {
        assert_ne!(e, "linked");
    }
    let other_err = rt.block_on(try_link(
        &addr,
        trust.clone(),
        &other_province,
        "000.00.31.H49",
    ));
    assert!(other_err.contains("not a child"), "{other_err}");
    let log = wait_for(
        Duration::from_secs(10),
        "refusals in the province log",
        || {
            let log = log_of(&net, "000.00.00.H53");
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("TLS handshake refused"))
                .collect();
            (lines.len() >= 4).then_some(log)
        },
    );
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("TLS handshake refused"))
        .collect();
    assert!(
        refused.iter().any(|l| l.contains("no certificates")),
        "no-certificate refusal: {refused:#?}"
    );
    assert!(
        refused
            .iter()
            .any(|l| l.contains("UnknownIssuer") || l.contains("BadSignature")),
        "foreign CA: {refused:#?}"
    );
    assert!(
        refused.iter().any(|l| l.to_lowercase().contains("expired")),
        "expired: {refused:#?}"
    );
    assert!(
        refused.iter().any(|l| l.contains("Revoked")),
        "revoked: {refused:#?}"
    );
    assert!(
        log.contains("not a child of this node"),
        "wrong agency refusal not logged"
    );

    // Envelope-level refusals over a real link, as the valid child 000.00.22.H53.
    let child_signer = AgencySigner::load(
        &pki::node_cert_path(&pki_dir, &code("000.00.22.H53")),
        &pki::node_key_path(&pki_dir, &code("000.00.22.H53")),
    )
    .unwrap();
    let g14_signer = AgencySigner::load(&g14.cert, &g14.key).unwrap();
    rt.block_on(async {
        let cfg =
            tls::client_config(trust.clone(), code("000.00.00.H53"), &good_child, false).unwrap();
        let hello = LinkFrame {
            frame: Some(Frame::Hello(Hello {
                agency: "000.00.22.H53".into(),
                serves: vec!["000.00.22.H53".into()],
                features: vec![],
                software_version: "t".into(),
                heartbeat_secs: 0,
                claims: vec![],
            })),
        };
        let (tx, mut rx) = open_link(&addr, cfg, Duration::from_secs(2), hello)
            .await
            .unwrap();
        let first = rx.message().await.unwrap().unwrap();
        assert!(matches!(first.frame, Some(Frame::Hello(_))));

        let mut spoofed = envelope("000.00.00.G14", "000.00.00.H49", "giả mạo");
        g14_signer.sign_envelope(&mut spoofed, 1).unwrap();
        let mut tampered = envelope("000.00.22.H53", "000.00.00.H49", "bị sửa");
        child_signer.sign_envelope(&mut tampered, 1).unwrap();
        tampered.subject.push_str(" (đã sửa)");
        let mut unknown = envelope("000.00.22.H53", "000.00.99.H53", "không có đường");
        child_signer.sign_envelope(&mut unknown, 1).unwrap();
        let unknown_id = unknown.id.clone();
        // What the province's own API would refuse, it refuses from a child too.
        let mut control = envelope(
            "000.00.22.H53",
            "000.00.00.H49",
            "ký tự điều khiển\u{1b}[2J",
        );
        child_signer.sign_envelope(&mut control, 1).unwrap();

        tx.send(header(spoofed.clone(), "000.00.00.H49"))
            .await
            .unwrap();
        tx.send(header(tampered.clone(), "000.00.00.H49"))
            .await
            .unwrap();
        tx.send(header(unknown, "000.00.99.H53")).await.unwrap();
        tx.send(header(control.clone(), "000.00.00.H49"))
            .await
            .unwrap();

        let mut refusals = std::collections::HashMap::new();
        let mut acked = false;
        let mut no_route_receipt = None;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while (refusals.len() < 3 || !acked || no_route_receipt.is_none())
            && tokio::time::Instant::now() < deadline
        {
            let Ok(Ok(Some(f))) = tokio::time::timeout(Duration::from_secs(5), rx.message()).await
            else {
                break;
            };
            match f.frame {
                Some(Frame::Refusal(r)) => {
                    refusals.insert(r.item_id.clone(), (r.code, r.reason));
                }
                Some(Frame::Ack(a)) if a.item_id == unknown_id => acked = true,
                Some(Frame::Receipt(r)) => {
                    if let Some(receipt_frame::Item::Status(s)) = &r.item {
                        let about_unknown = s
                            .response_for
                            .as_ref()
                            .is_some_and(|r| r.envelope_id == unknown_id);
                        if s.status == 2 && about_unknown {
                            no_route_receipt = Some(s.description.clone());
                        }
                        // Acknowledge it as a child would, so the province can drop it.
                        tx.send(LinkFrame {
                            frame: Some(Frame::Ack(lienthong_proto::v1::HopAck {
                                item_id: s.id.clone(),
                            })),
                        })
                        .await
                        .unwrap();
                    }
                }
                _ => {}
            }
        }
        let (c, reason) = refusals
            .get(&spoofed.id)
            .cloned()
            .expect("spoofed sender refused");
        assert_eq!(c, RefusalCode::RefusalSpoofedSender as i32, "{reason}");
        assert!(reason.contains("outside the subtree"), "{reason}");
        let (c, reason) = refusals
            .get(&tampered.id)
            .cloned()
            .expect("tampered envelope refused");
        assert_eq!(c, RefusalCode::RefusalBadSignature as i32, "{reason}");
        let (c, reason) = refusals
            .get(&control.id)
            .cloned()
            .expect("control character refused");
        assert_eq!(c, RefusalCode::RefusalInvalid as i32, "{reason}");
        assert!(
            reason.starts_with("subject:") && reason.contains("U+001B (ESC)"),
            "{reason}"
        );
        assert!(
            acked,
            "an envelope to an unknown recipient is still taken (and answered)"
        );
        assert_eq!(
            no_route_receipt.as_deref(),
            Some("no route to 000.00.99.H53")
        );
    });

    legit_ids.push(
        legit
            .submit(sample_envelope(&commune, &[&far], "2", "sau"))
            .unwrap()
            .0,
    );
    let inbox = net.client(&far).unwrap();
    wait_in_inbox(&inbox, &far, &legit_ids, 30, "legitimate traffic delivered");
    let metrics = net.client(&code("000.00.00.H53")).unwrap();
    let text = metrics.get_text("/metrics").unwrap();
    for reason in [
        "tls_handshake",
        "not_a_child",
        "spoofed_sender",
        "bad_signature",
        "no_route",
    ] {
        assert!(
            text.contains(&format!("reason=\"{reason}\"")),
            "metric for {reason} missing:\n{text}"
        );
    }

    // Every refusal is a security event in the province's hash-chained audit log, readable
    // with the CLI while the node runs (through its API) and after it stopped (from its store).
    let cfg = net.nodes[&code("000.00.00.H53")].config.clone();
    let classes = support::security_event_classes(&cfg);
    for class in [
        "tls_handshake",
        "not_a_child",
        "spoofed_sender",
        "bad_signature",
    ] {
        assert!(
            classes.iter().any(|c| c == class),
            "{class} not in the audit log: {classes:?}"
        );
    }
    let verify = |cfg: &std::path::Path| {
        let out = std::process::Command::new(relay_exe())
            .args(["audit", "verify", "--config"])
            .arg(cfg)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, text) = verify(&cfg);
    assert!(ok && text.contains("intact"), "{text}");

    // The province reports its events upward in its signed attestation: the root sees every
    // class the province recorded, naming the province as the node that recorded it.
    net.client(&code("000.00.00.H53"))
        .unwrap()
        .post_json("/v1/security/push", &serde_json::json!({}))
        .unwrap();
    let root_cfg = net.nodes[&code("000.00.00.G22")].config.clone();
    let at_root = support::wait_for(Duration::from_secs(30), "events at the root", || {
        let out = std::process::Command::new(relay_exe())
            .args([
                "security",
                "events",
                "--json",
                "--subtree",
                "000.00.00.H53",
                "--config",
            ])
            .arg(&root_cfg)
            .output()
            .unwrap();
        let seen: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                (
                    v["node"].as_str().unwrap_or_default().to_owned(),
                    v["class"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        classes
            .iter()
            .all(|c| seen.iter().any(|(n, k)| n == "000.00.00.H53" && k == c))
            .then_some(seen)
    });
    assert!(at_root.len() >= classes.len(), "{at_root:?}");
    net.stop(&code("000.00.00.H53"), libc::SIGTERM).unwrap();
    let (ok, text) = verify(&cfg);
    assert!(ok && text.contains("intact"), "{text}");
}

#[derive(Debug)]
struct AcceptAnyServer;

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
