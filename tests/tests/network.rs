//! The demo topology and a 3-tier tree, with the real binaries over real mTLS on 127.0.0.1:
//! every recipient gets each document exactly once, senders get 01 and the posted statuses in
//! order, and the trace lists every hop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use lienthong_harness::{demo_topology, sample_envelope, Network, NodeSpec};
use support::{code, start, wait_for};

fn trace_agencies(net: &Network, from: &str, id: &str, to: &str) -> Vec<String> {
    let view = net.client(&code(from)).unwrap().track(id).unwrap();
    let r = view.recipients.iter().find(|r| r.recipient == to).unwrap();
    r.trace.iter().map(|t| t.agency.clone()).collect()
}

fn exchange_and_check(net: &Network, from: &str, to: &[&str], path_to_first: &[&str]) {
    let from_c = code(from);
    let to_c: Vec<_> = to.iter().map(|t| code(t)).collect();
    let refs: Vec<_> = to_c.iter().collect();
    let (id, doc) = net
        .client(&from_c)
        .unwrap()
        .submit(sample_envelope(&from_c, &refs, "42", "Kiểm tra liên thông"))
        .unwrap();
    assert!(doc.starts_with(&format!("{from},")), "{doc}");
    for t in &to_c {
        let c = net.client(t).unwrap();
        let inbox = wait_for(Duration::from_secs(30), "delivery", || {
            let i = c.inbox(t).unwrap();
            i.iter().any(|e| e.envelope.id == id).then_some(i)
        });
        assert_eq!(
            inbox.iter().filter(|e| e.envelope.id == id).count(),
            1,
            "exactly once in {t}'s inbox"
        );
        for s in [3, 4, 5, 6] {
            c.post_status(&id, t, s, "").unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let sender = net.client(&from_c).unwrap();
    for t in to {
        let history = wait_for(Duration::from_secs(30), "receipts", || {
            let view = sender.track(&id).unwrap();
            let r = view.recipients.iter().find(|r| r.recipient == *t)?;
            (r.history.len() >= 5).then(|| r.history.iter().map(|(c, _)| *c).collect::<Vec<_>>())
        });
        assert_eq!(history, vec![1, 3, 4, 5, 6], "statuses for {t} in order");
    }
    assert_eq!(trace_agencies(net, from, &id, to[0]), path_to_first);
    // The sender also sees transport events: queued locally and delivered at the far end.
    let view = sender.track(&id).unwrap();
    assert!(view.events.iter().any(|e| e.state == 1), "queued event");
    assert!(
        view.events
            .iter()
            .any(|e| e.state == 3 && e.recipient == to[0]),
        "delivered event"
    );
    // A duplicate never shows up: each recipient's inbox holds it once, even after statuses.
    for t in &to_c {
        let all = net
            .client(t)
            .unwrap()
            .get_json(&format!("/v1/inbox?agency={t}&all=true"))
            .unwrap();
        let n = all
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["envelope"]["id"] == id.as_str())
            .count();
        assert_eq!(n, 1);
    }
}

#[test]
fn demo_topology_delivers_once_with_receipts_and_trace() {
    let (_dir, net) = start(&demo_topology().unwrap());
    exchange_and_check(
        &net,
        "000.21.31.H53",
        &["000.07.05.H49"],
        &[
            "000.21.31.H53",
            "000.00.31.H53",
            "000.00.00.H53",
            "000.00.00.G22",
            "000.00.00.H49",
            "000.00.05.H49",
            "000.07.05.H49",
        ],
    );
    exchange_and_check(
        &net,
        "000.00.00.G14",
        &["000.21.31.H53", "000.07.05.H49"],
        &[
            "000.00.00.G14",
            "000.00.00.G22",
            "000.00.00.H53",
            "000.00.31.H53",
            "000.21.31.H53",
        ],
    );
    exchange_and_check(
        &net,
        "000.07.05.H49",
        &["000.00.00.G14"],
        &[
            "000.07.05.H49",
            "000.00.05.H49",
            "000.00.00.H49",
            "000.00.00.G22",
            "000.00.00.G14",
        ],
    );
}

#[test]
fn three_tier_tree_without_districts() {
    // Post-2025: communes directly under provinces. One commune has a level-2 code (the
    // hierarchy makes it a child), the other keeps a level-3 code and is configured as a child.
    let mut h53 = NodeSpec::new("000.00.00.H53", "Tỉnh A", Some("000.00.00.G22")).unwrap();
    h53.extra_children.push(code("000.21.31.H53"));
    let specs = vec![
        NodeSpec::new("000.00.00.G22", "Root", None).unwrap(),
        h53,
        NodeSpec::new("000.21.31.H53", "Xã A", Some("000.00.00.H53")).unwrap(),
        NodeSpec::new("000.00.00.H49", "Tỉnh B", Some("000.00.00.G22")).unwrap(),
        NodeSpec::new("000.00.07.H49", "Xã B", Some("000.00.00.H49")).unwrap(),
    ];
    let (_dir, net) = start(&specs);
    exchange_and_check(
        &net,
        "000.21.31.H53",
        &["000.00.07.H49"],
        &[
            "000.21.31.H53",
            "000.00.00.H53",
            "000.00.00.G22",
            "000.00.00.H49",
            "000.00.07.H49",
        ],
    );
    exchange_and_check(
        &net,
        "000.00.07.H49",
        &["000.21.31.H53"],
        &[
            "000.00.07.H49",
            "000.00.00.H49",
            "000.00.00.G22",
            "000.00.00.H53",
            "000.21.31.H53",
        ],
    );
}

/// The number in `metrics` of the line that starts with `name{` and holds `label`.
fn metric_value(metrics: &str, name: &str, label: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn ends_with_different_heartbeats_agree_on_the_longer_and_do_not_flap() {
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        NodeSpec::new("000.00.00.G22", "Root", None).unwrap(),
        NodeSpec::new("000.00.00.H53", "Tỉnh", Some("000.00.00.G22")).unwrap(),
    ];
    let mut net = Network::create(dir.path(), &support::relay_exe(), &specs).unwrap();
    // The root would give up on a silent link after 3 s; the province beats every 8 s.
    for (agency, secs) in [("000.00.00.G22", 1), ("000.00.00.H53", 8)] {
        let config = net.nodes[&code(agency)].config.clone();
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(text.contains("heartbeat_secs = 2"), "{text}");
        std::fs::write(
            &config,
            text.replace("heartbeat_secs = 2", &format!("heartbeat_secs = {secs}")),
        )
        .unwrap();
    }
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();
    // Three of the root's own idle limits, and more than one of the province's beats.
    std::thread::sleep(Duration::from_secs(12));
    let root = net.client(&code("000.00.00.G22")).unwrap();
    let metrics = root.get_text("/metrics").unwrap();
    let label = "neighbour=\"000.00.00.H53\"";
    assert_eq!(
        metric_value(&metrics, "lienthong_link_sessions_total", label),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(&metrics, "lienthong_link_up", label),
        Some(1.0),
        "{metrics}"
    );
    // And the link still carries documents.
    exchange_and_check(
        &net,
        "000.00.00.H53",
        &["000.00.00.G22"],
        &["000.00.00.H53", "000.00.00.G22"],
    );
}
