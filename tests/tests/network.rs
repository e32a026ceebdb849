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

/// The hop trace of `id` to `to`, as the sender `from` learns it (once it has).
fn arrived_via(net: &Network, from: &str, id: &str, to: &str) -> Vec<String> {
    wait_for(
        Duration::from_secs(60),
        "the delivery's hop trace at the sender",
        || {
            let view = net.client(&code(from)).ok()?.track(id).ok()?;
            let r = view.recipients.iter().find(|r| r.recipient == to)?;
            (!r.trace.is_empty()).then(|| r.trace.iter().map(|t| t.agency.clone()).collect())
        },
    )
}

#[test]
fn a_commune_moved_to_another_district_is_routed_along_its_new_path_and_loses_nothing() {
    const PROVINCE: &str = "000.00.00.H53";
    const OLD: &str = "000.00.31.H53";
    const NEW: &str = "000.00.32.H53";
    const COMMUNE: &str = "000.21.31.H53";
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        NodeSpec::new(PROVINCE, "Tỉnh", None).unwrap(),
        NodeSpec::new(OLD, "Huyện cũ", Some(PROVINCE)).unwrap(),
        NodeSpec::new(NEW, "Huyện mới", Some(PROVINCE)).unwrap(),
        NodeSpec::new(COMMUNE, "Xã", Some(OLD)).unwrap(),
    ];
    let mut net = Network::create(dir.path(), &support::relay_exe(), &specs).unwrap();
    // What the operators set up for the move: the new district takes the commune as a child,
    // and the province lets the new district speak for it.
    let append = |agency: &str, text: &str| {
        let config = net.nodes[&code(agency)].config.clone();
        let mut s = std::fs::read_to_string(&config).unwrap();
        s.push_str(text);
        std::fs::write(&config, s).unwrap();
    };
    append(NEW, &format!("\n[[child]]\nagency = \"{COMMUNE}\"\n"));
    append(
        PROVINCE,
        &format!("\n[[route]]\nagency = \"{COMMUNE}\"\nvia = \"{NEW}\"\n"),
    );
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();
    let province = net.client(&code(PROVINCE)).unwrap();
    let send = |n: &str| {
        province
            .submit(sample_envelope(
                &code(PROVINCE),
                &[&code(COMMUNE)],
                n,
                "Công văn",
            ))
            .unwrap()
            .0
    };
    let first = send("1");
    let commune = net.client(&code(COMMUNE)).unwrap();
    support::wait_in_inbox(
        &commune,
        &code(COMMUNE),
        std::slice::from_ref(&first),
        60,
        "document 1",
    );
    assert!(arrived_via(&net, PROVINCE, &first, COMMUNE).contains(&OLD.to_owned()));

    // The commune goes offline; a document for it waits at the old district.
    net.stop(&code(COMMUNE), libc::SIGTERM).unwrap();
    let second = send("2");
    let old = net.client(&code(OLD)).unwrap();
    wait_for(
        Duration::from_secs(30),
        "document 2 queued at the old district",
        || {
            let m = old.get_text("/metrics").ok()?;
            m.lines()
                .any(|l| {
                    l.starts_with("lienthong_queue_depth{")
                        && l.contains(COMMUNE)
                        && !l.trim_end().ends_with(" 0")
                })
                .then_some(())
        },
    );

    // It comes back under the new district.
    let config = net.nodes[&code(COMMUNE)].config.clone();
    let old_grpc = net.nodes[&code(OLD)].grpc;
    let new_grpc = net.nodes[&code(NEW)].grpc;
    let text = std::fs::read_to_string(&config).unwrap();
    let moved = text
        .replace(
            &format!("https://{old_grpc}"),
            &format!("https://{new_grpc}"),
        )
        .replace(
            &format!("agency = \"{OLD}\""),
            &format!("agency = \"{NEW}\""),
        );
    assert_ne!(moved, text);
    std::fs::write(&config, moved).unwrap();
    net.start(&code(COMMUNE)).unwrap();
    wait_for(Duration::from_secs(30), "the commune's API", || {
        commune.health().ok()
    });

    // The waiting document and a new one both arrive, along the new path.
    let third = send("3");
    support::wait_in_inbox(
        &commune,
        &code(COMMUNE),
        &[first, second.clone(), third.clone()],
        60,
        "documents 2 and 3 after the move",
    );
    for id in [&second, &third] {
        let via = arrived_via(&net, PROVINCE, id, COMMUNE);
        assert!(via.contains(&NEW.to_owned()), "{id}: {via:?}");
    }
    assert!(!arrived_via(&net, PROVINCE, &third, COMMUNE).contains(&OLD.to_owned()));
    // The old district learned: it no longer announces the commune.
    wait_for(
        Duration::from_secs(30),
        "the old district forgetting the commune",
        || {
            let h = old.health().ok()?;
            let serves: Vec<String> = serde_json::from_value(h["serves"].clone()).ok()?;
            (!serves.iter().any(|s| s == COMMUNE)).then_some(())
        },
    );
}

#[test]
fn a_child_that_stops_linking_is_forgotten_after_the_announcement_expiry() {
    const PROVINCE: &str = "000.00.00.H53";
    const DISTRICT: &str = "000.00.31.H53";
    const COMMUNE: &str = "000.21.31.H53";
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        NodeSpec::new(PROVINCE, "Tỉnh", None).unwrap(),
        NodeSpec::new(DISTRICT, "Huyện", Some(PROVINCE)).unwrap(),
        NodeSpec::new(COMMUNE, "Xã", Some(DISTRICT)).unwrap(),
    ];
    let mut net = Network::create(dir.path(), &support::relay_exe(), &specs).unwrap();
    let config = net.nodes[&code(PROVINCE)].config.clone();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen("[link]\n", "[link]\nannounce_expiry_secs = 3\n", 1),
    )
    .unwrap();
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();
    let province = net.client(&code(PROVINCE)).unwrap();
    let serves = || -> Vec<String> {
        province
            .health()
            .ok()
            .and_then(|h| serde_json::from_value(h["serves"].clone()).ok())
            .unwrap_or_default()
    };
    assert!(serves().iter().any(|s| s == COMMUNE), "{:?}", serves());
    // Still announced while linked, however long.
    std::thread::sleep(Duration::from_secs(6));
    assert!(serves().iter().any(|s| s == COMMUNE), "{:?}", serves());
    // The district and its commune go away for good.
    net.stop(&code(COMMUNE), libc::SIGTERM).unwrap();
    net.stop(&code(DISTRICT), libc::SIGTERM).unwrap();
    wait_for(
        Duration::from_secs(30),
        "the province forgetting what the district announced",
        || {
            let s = serves();
            (!s.iter().any(|a| a == COMMUNE || a == DISTRICT)).then_some(())
        },
    );
    let log = std::fs::read_to_string(&net.nodes[&code(PROVINCE)].log).unwrap();
    assert!(log.contains("announcement expired"), "{log}");
}
