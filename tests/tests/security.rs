//! Security events with real processes: a node's certificate close to expiry (seen by the node
//! and by its parent when the child links) within the configured margin, no CRL configured, a
//! burst of items from one peer, and events posted to a webhook.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lienthong_common::pki::{self, IssueRequest};
use lienthong_harness::{sample_envelope, Network, NodeSpec};
use serde_json::Value;
use support::{code, relay_exe, wait_for, wait_in_inbox};

fn classes(net: &Network, agency: &str) -> Vec<String> {
    support::security_event_classes(&net.nodes[&code(agency)].config)
}

/// A node's security events as JSON objects.
fn events(net: &Network, agency: &str) -> Vec<Value> {
    support::security_events(net, agency)
}

/// Appends a `[security]` section to a node's configuration.
fn set_security(net: &Network, agency: &str, keys: &str) {
    let cfg = &net.nodes[&code(agency)].config;
    let mut text = std::fs::read_to_string(cfg).unwrap();
    text.push_str(&format!("\n[security]\n{keys}\n"));
    std::fs::write(cfg, text).unwrap();
}

/// Removes the CRL from a node's configuration.
fn drop_crl(net: &Network, agency: &str) {
    let cfg = &net.nodes[&code(agency)].config;
    let text = std::fs::read_to_string(cfg).unwrap();
    std::fs::write(cfg, text.replace("crl = \"../pki/ca.crl\"\n", "")).unwrap();
}

/// Replaces an agency's certificate by one valid for `days` days.
fn reissue(net: &Network, agency: &str, days: i64) {
    let pki_dir = net.pki_dir();
    let a = code(agency);
    std::fs::remove_file(pki::node_cert_path(&pki_dir, &a)).unwrap();
    let mut req = IssueRequest::new(a);
    req.valid_days = days;
    pki::issue(&pki_dir, &req).unwrap();
}

#[test]
fn expiring_certificates_and_a_missing_crl_are_security_events() {
    let dir = tempfile::tempdir().unwrap();
    let specs = vec![
        NodeSpec::new("000.00.00.G22", "Root", None).unwrap(),
        NodeSpec::new("000.00.00.H53", "Tỉnh A", Some("000.00.00.G22")).unwrap(),
        NodeSpec::new("000.00.00.H49", "Tỉnh B", Some("000.00.00.G22")).unwrap(),
    ];
    let mut net = Network::create(dir.path(), &relay_exe(), &specs).unwrap();
    // H53's certificate now expires in 10 days.
    let pki_dir = net.pki_dir();
    let h53 = code("000.00.00.H53");
    std::fs::remove_file(pki::node_cert_path(&pki_dir, &h53)).unwrap();
    let mut req = IssueRequest::new(h53.clone());
    req.valid_days = 10;
    pki::issue(&pki_dir, &req).unwrap();
    // H49 runs without a CRL.
    let cfg = &net.nodes[&code("000.00.00.H49")].config;
    let text = std::fs::read_to_string(cfg).unwrap();
    std::fs::write(cfg, text.replace("crl = \"../pki/ca.crl\"\n", "")).unwrap();
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();

    wait_for(Duration::from_secs(20), "events recorded", || {
        let own = classes(&net, "000.00.00.H53");
        let root = classes(&net, "000.00.00.G22");
        let h49 = classes(&net, "000.00.00.H49");
        (own.contains(&"certificate_expiring".to_owned())
            && root.contains(&"peer_certificate_expiring".to_owned())
            && h49.contains(&"crl_missing".to_owned()))
        .then_some(())
    });
    // Nodes with long-lived certificates and a CRL record none of these.
    let root = classes(&net, "000.00.00.G22");
    assert!(
        !root.contains(&"certificate_expiring".to_owned()),
        "{root:?}"
    );
    assert!(!root.contains(&"crl_missing".to_owned()), "{root:?}");
    net.stop_all();
}

#[test]
fn the_expiry_margin_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let specs = vec![
        NodeSpec::new("000.00.00.G22", "Root", None).unwrap(),
        NodeSpec::new("000.00.00.H53", "Tỉnh A", Some("000.00.00.G22")).unwrap(),
        NodeSpec::new("000.00.00.H49", "Tỉnh B", Some("000.00.00.G22")).unwrap(),
    ];
    let mut net = Network::create(dir.path(), &relay_exe(), &specs).unwrap();
    // Both provinces hold certificates valid for 365 days; H53 and the root warn 400 days
    // ahead, H49 keeps the default margin of 30 days.
    reissue(&net, "000.00.00.H53", 365);
    reissue(&net, "000.00.00.H49", 365);
    set_security(&net, "000.00.00.H53", "expiry_warning_days = 400");
    set_security(&net, "000.00.00.G22", "expiry_warning_days = 400");
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();

    // The root checks each child's certificate when it links, with its own margin.
    wait_for(
        Duration::from_secs(20),
        "the root warns about both children",
        || {
            let peers: Vec<String> = events(&net, "000.00.00.G22")
                .iter()
                .filter(|e| e["class"] == "peer_certificate_expiring")
                .map(|e| e["peer"].as_str().unwrap().to_owned())
                .collect();
            (peers.contains(&"000.00.00.H53".to_owned())
                && peers.contains(&"000.00.00.H49".to_owned()))
            .then_some(())
        },
    );
    let h53 = events(&net, "000.00.00.H53");
    let own = h53
        .iter()
        .find(|e| e["class"] == "certificate_expiring")
        .unwrap_or_else(|| panic!("H53 records certificate_expiring: {h53:?}"));
    assert_eq!(own["peer"], "000.00.00.H53");
    assert!(
        own["reason"].as_str().unwrap().contains("margin 400 days"),
        "{own}"
    );
    // 365 days left is far from the default margin; the root's 825-day certificate and the
    // 10-year CA are outside the 400-day one.
    let h49 = classes(&net, "000.00.00.H49");
    assert!(!h49.contains(&"certificate_expiring".to_owned()), "{h49:?}");
    let root = classes(&net, "000.00.00.G22");
    assert!(
        !root.contains(&"certificate_expiring".to_owned()),
        "{root:?}"
    );
    assert!(!root.contains(&"ca_expiring".to_owned()), "{root:?}");
    net.stop_all();
}

#[test]
fn a_burst_from_a_child_is_an_event_and_nothing_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let specs = vec![
        NodeSpec::new("000.00.00.G22", "Root", None).unwrap(),
        NodeSpec::new("000.00.00.H53", "Tỉnh A", Some("000.00.00.G22")).unwrap(),
        NodeSpec::new("000.00.21.H53", "Xã A", Some("000.00.00.H53")).unwrap(),
    ];
    let mut net = Network::create(dir.path(), &relay_exe(), &specs).unwrap();
    set_security(&net, "000.00.00.H53", "burst_items_per_minute = 20");
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();

    let commune = code("000.00.21.H53");
    let province = code("000.00.00.H53");
    let client = net.client(&commune).unwrap();
    let mut sent = Vec::new();
    for i in 0..60 {
        let (id, _) = client
            .submit(sample_envelope(
                &commune,
                &[&province],
                &format!("{i}"),
                "Văn bản dồn dập",
            ))
            .unwrap();
        sent.push(id);
    }
    // Every document is still taken and delivered: the event only reports.
    let inbox = net.client(&province).unwrap();
    wait_in_inbox(&inbox, &province, &sent, 60, "all 60 documents delivered");
    let got = inbox.inbox(&province).unwrap();
    assert_eq!(got.len(), 60, "each document delivered once");

    let bursts: Vec<Value> = events(&net, "000.00.00.H53")
        .into_iter()
        .filter(|e| e["class"] == "burst")
        .collect();
    assert!(!bursts.is_empty(), "no burst event at the province");
    for b in &bursts {
        assert_eq!(b["peer"], "000.00.21.H53", "{b}");
        assert_eq!(b["agency"], "000.00.21.H53", "{b}");
        let reason = b["reason"].as_str().unwrap();
        assert!(reason.contains("limit of 20"), "{reason}");
    }
    // One event per peer and minute window, not one per item.
    assert!(bursts.len() <= 2, "{bursts:?}");
    let metrics = inbox.get_text("/metrics").unwrap();
    assert!(
        metrics.contains("lienthong_refused_total{reason=\"burst\"}"),
        "{metrics}"
    );
    // The commune has no limit (the default): the receipts flowing back are no burst.
    let own = classes(&net, "000.00.21.H53");
    assert!(!own.contains(&"burst".to_owned()), "{own:?}");
    net.stop_all();
}

/// A webhook collector in the test process: answers every request with 200 and keeps the JSON
/// bodies it received.
struct Collector {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Collector {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let keep = bodies.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                if let Some(body) = Self::answer(conn) {
                    keep.lock().unwrap().push(body);
                }
            }
        });
        Self { addr, bodies }
    }

    /// Reads one POST with a Content-Length body, answers 200 and closes.
    fn answer(mut conn: TcpStream) -> Option<Value> {
        conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut reader = BufReader::new(conn.try_clone().ok()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).ok()?;
        assert!(request_line.starts_with("POST /hook "), "{request_line}");
        let mut length = 0usize;
        let mut json = false;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).ok()?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':')?;
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().ok()?,
                "content-type" => json = value.trim() == "application/json",
                _ => {}
            }
        }
        assert!(json, "the webhook body is sent as application/json");
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).ok()?;
        conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .ok()?;
        serde_json::from_slice(&body).ok()
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn received(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

#[test]
fn security_events_are_posted_to_the_webhook_by_class() {
    let all = Collector::start();
    let filtered = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let specs = vec![
        NodeSpec::new("000.00.00.G22", "Root", None).unwrap(),
        NodeSpec::new("000.00.00.H53", "Tỉnh A", Some("000.00.00.G22")).unwrap(),
        NodeSpec::new("000.00.00.H49", "Tỉnh B", Some("000.00.00.G22")).unwrap(),
    ];
    let mut net = Network::create(dir.path(), &relay_exe(), &specs).unwrap();
    // Both provinces run without a CRL (a `crl_missing` event at start). H53 posts every class;
    // H49 only refused TLS handshakes.
    drop_crl(&net, "000.00.00.H53");
    drop_crl(&net, "000.00.00.H49");
    set_security(
        &net,
        "000.00.00.H53",
        &format!("webhook_url = \"{}\"", all.url()),
    );
    set_security(
        &net,
        "000.00.00.H49",
        &format!(
            "webhook_url = \"{}\"\nwebhook_classes = [\"tls_handshake\"]",
            filtered.url()
        ),
    );
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();

    let posted = wait_for(Duration::from_secs(20), "crl_missing posted", || {
        all.received()
            .into_iter()
            .find(|b| b["class"] == "crl_missing")
    });
    assert_eq!(posted["node"], "000.00.00.H53", "{posted}");
    assert_eq!(posted["kind"], "security", "{posted}");
    assert_eq!(posted["agency"], "000.00.00.H53", "{posted}");
    assert!(posted["seq"].as_u64().unwrap() >= 1, "{posted}");
    assert!(posted["at_unix_ms"].as_i64().unwrap() > 0, "{posted}");
    assert!(
        posted["reason"].as_str().unwrap().contains("no CRL"),
        "{posted}"
    );
    assert_eq!(posted["hash"].as_str().unwrap().len(), 64, "{posted}");
    assert_eq!(posted["prev_hash"].as_str().unwrap().len(), 64, "{posted}");
    // The body carries the audit record as stored.
    let stored = events(&net, "000.00.00.H53")
        .into_iter()
        .find(|e| e["seq"] == posted["seq"])
        .unwrap();
    assert_eq!(stored["hash"], posted["hash"]);

    // H49 recorded crl_missing too, but its filter keeps it from the webhook. A refused
    // handshake (bytes that are not TLS) is posted; the sender keeps the order of events, so
    // crl_missing, recorded before, would have arrived first.
    wait_for(Duration::from_secs(20), "crl_missing at H49", || {
        classes(&net, "000.00.00.H49")
            .contains(&"crl_missing".to_owned())
            .then_some(())
    });
    let mut junk = TcpStream::connect(net.nodes[&code("000.00.00.H49")].grpc).unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut rest = Vec::new();
    let _ = junk.read_to_end(&mut rest);
    let refused = wait_for(Duration::from_secs(20), "tls_handshake posted", || {
        filtered
            .received()
            .into_iter()
            .find(|b| b["class"] == "tls_handshake")
    });
    assert_eq!(refused["node"], "000.00.00.H49", "{refused}");
    assert!(
        refused["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{refused}"
    );
    let classes_posted: Vec<Value> = filtered
        .received()
        .iter()
        .map(|b| b["class"].clone())
        .collect();
    assert!(
        classes_posted.iter().all(|c| c == "tls_handshake"),
        "only the selected class is posted: {classes_posted:?}"
    );
    net.stop_all();
}
