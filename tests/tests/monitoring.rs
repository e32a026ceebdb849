//! Upward security monitoring with real processes: each node's signed attestation (events and
//! state) reaches its parent and, passed on, the root, which lists every node in
//! `lt-relay security report` and every node's events in `lt-relay security events --subtree`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use lienthong_common::pki::{self, IssueRequest};
use lienthong_harness::{Network, NodeSpec};
use serde_json::{json, Value};
use support::{code, relay_exe, wait_for};

const ROOT: &str = "000.00.00.G22";
const P1: &str = "000.00.00.H53";
const P2: &str = "000.00.00.H49";
const G: &str = "000.00.05.H49";

fn lt_json(net: &Network, at: &str, args: &[&str]) -> Vec<Value> {
    let out = Command::new(relay_exe())
        .args(args)
        .arg("--json")
        .arg("--config")
        .arg(&net.nodes[&code(at)].config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(v)) => v,
        _ => text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    }
}

#[test]
fn the_root_sees_every_node_and_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let specs = vec![
        NodeSpec::new(ROOT, "Root", None).unwrap(),
        NodeSpec::new(P1, "Tỉnh A", Some(ROOT)).unwrap(),
        NodeSpec::new(P2, "Tỉnh B", Some(ROOT)).unwrap(),
        NodeSpec::gateway(G, "Huyện B", P2).unwrap(),
    ];
    let mut net = Network::create(dir.path(), &relay_exe(), &specs)
        .unwrap()
        .with_gateway_exe(&relay_exe().with_file_name("lt-gateway"));
    // P1: a certificate expiring in 10 days, assessed against level 3.
    let pki_dir = net.pki_dir();
    std::fs::remove_file(pki::node_cert_path(&pki_dir, &code(P1))).unwrap();
    let mut req = IssueRequest::new(code(P1));
    req.valid_days = 10;
    pki::issue(&pki_dir, &req).unwrap();
    let p1_cfg = net.nodes[&code(P1)].config.clone();
    let mut text = std::fs::read_to_string(&p1_cfg).unwrap();
    text.push_str("\n[security]\nlevel = 3\n");
    std::fs::write(&p1_cfg, text).unwrap();
    // The gateway two hops below the root runs without a CRL.
    let g_cfg = net.nodes[&code(G)].config.clone();
    let text = std::fs::read_to_string(&g_cfg).unwrap();
    std::fs::write(&g_cfg, text.replace("crl = \"../pki/ca.crl\"\n", "")).unwrap();
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();

    // Each node reports at start; push again now that every link is up.
    for n in [G, P2, P1] {
        net.client(&code(n))
            .unwrap()
            .post_json("/v1/security/push", &json!({}))
            .unwrap();
    }
    let events = wait_for(Duration::from_secs(30), "events at the root", || {
        let e = lt_json(&net, ROOT, &["security", "events", "--subtree", ROOT]);
        let has =
            |node: &str, class: &str| e.iter().any(|v| v["node"] == node && v["class"] == class);
        (has(P1, "certificate_expiring")
            && has(G, "crl_missing")
            && has(ROOT, "peer_certificate_expiring"))
        .then_some(e)
    });
    // A subtree narrows the view: P2's subtree has the gateway's events, not P1's.
    let b = lt_json(&net, ROOT, &["security", "events", "--subtree", P2]);
    assert!(
        b.iter()
            .any(|v| v["node"] == G && v["class"] == "crl_missing"),
        "{b:?}"
    );
    assert!(!b.iter().any(|v| v["node"] == P1), "{b:?}");
    assert!(events.len() >= b.len());
    // The province holds its own subtree's view as well.
    let at_p2 = lt_json(&net, P2, &["security", "events", "--subtree", P2]);
    assert!(at_p2
        .iter()
        .any(|v| v["node"] == G && v["class"] == "crl_missing"));

    let report = wait_for(Duration::from_secs(30), "every node in the report", || {
        let r = lt_json(&net, ROOT, &["security", "report"]);
        (r.len() == 4).then_some(r)
    });
    let node = |a: &str| report.iter().find(|v| v["node"] == a).unwrap().clone();
    let p1 = node(P1);
    assert!(p1["certificate_days_left"].as_i64().unwrap() <= 10, "{p1}");
    assert_eq!(p1["assessed_level"], 3);
    assert!(
        p1["assessment_not_met"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "certificate_validity"),
        "{p1}"
    );
    assert!(
        p1["events_by_class"]["certificate_expiring"]
            .as_u64()
            .unwrap()
            >= 1
    );
    // The node details came up too: names, and P1's requirements with what it found.
    let report = wait_for(Duration::from_secs(30), "every node's detail", || {
        let r = lt_json(&net, ROOT, &["security", "report"]);
        r.iter()
            .all(|v| v["name"].as_str().is_some_and(|n| !n.is_empty()))
            .then_some(r)
    });
    let node = |a: &str| report.iter().find(|v| v["node"] == a).unwrap().clone();
    assert_eq!(node(G)["name"], "Huyện B");
    assert_eq!(node(P2)["name"], "Tỉnh B");
    let p1 = node(P1);
    assert_eq!(p1["name"], "Tỉnh A");
    let validity = p1["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "certificate_validity")
        .unwrap_or_else(|| panic!("{p1}"))
        .clone();
    assert_eq!(validity["met"], false, "{validity}");
    assert!(
        validity["requirement_vi"]
            .as_str()
            .unwrap()
            .contains("còn hiệu lực"),
        "{validity}"
    );
    assert!(
        !validity["evidence"].as_str().unwrap().is_empty(),
        "{validity}"
    );
    let g = node(G);
    assert_eq!(g["crl_days_left"], Value::Null, "{g}");
    assert!(g["parent_last_up_unix_ms"].as_i64().unwrap() > 0, "{g}");
    assert!(node(P2)["crl_days_left"].as_i64().unwrap() > 0);
    assert_eq!(node(ROOT)["assessed_level"], 0);

    // A document waiting at P2 for its stopped gateway: the oldest waiting document's arrival
    // time per neighbour comes up in P2's node detail.
    net.stop(&code(G), libc::SIGTERM).unwrap();
    let before = lienthong_common::now_unix_ms();
    net.client(&code(P2))
        .unwrap()
        .submit(lienthong_harness::sample_envelope(
            &code(P2),
            &[&code(G)],
            "41",
            "Chờ huyện",
        ))
        .unwrap();
    net.client(&code(P2))
        .unwrap()
        .post_json("/v1/security/push", &json!({}))
        .unwrap();
    let p2 = wait_for(
        Duration::from_secs(30),
        "P2's oldest waiting document",
        || {
            lt_json(&net, ROOT, &["security", "report"])
                .into_iter()
                .find(|v| v["node"] == P2 && v["oldest_queued_unix_ms"][G].is_i64())
        },
    );
    let at = p2["oldest_queued_unix_ms"][G].as_i64().unwrap();
    assert!(
        (before - 5_000..=lienthong_common::now_unix_ms()).contains(&at),
        "{p2}"
    );

    // The text form, and the same data from the root's store once it is stopped.
    net.stop(&code(ROOT), libc::SIGTERM).unwrap();
    let stored = lt_json(&net, ROOT, &["security", "report"]);
    assert!(stored
        .iter()
        .any(|v| v["node"] == P1 && v["assessed_level"] == 3 && v["name"] == "Tỉnh A"));
    let offline = lt_json(&net, ROOT, &["security", "events", "--subtree", P2]);
    assert!(offline
        .iter()
        .any(|v| v["node"] == G && v["class"] == "crl_missing"));
    net.stop_all();
}
