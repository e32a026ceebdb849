//! Security events from a node's own trust material, with real processes: its certificate close
//! to expiry (seen by the node and by its parent when the child links), and no CRL configured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use lienthong_common::pki::{self, IssueRequest};
use lienthong_relay::topology::{Network, NodeSpec};
use support::{code, relay_exe, wait_for};

fn classes(net: &Network, agency: &str) -> Vec<String> {
    support::security_event_classes(&net.nodes[&code(agency)].config)
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
