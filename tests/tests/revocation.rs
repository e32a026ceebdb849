//! Revocation without a restart, with the real binaries: `lt-relay pki revoke` rewrites the CRL
//! file the running nodes use, and nothing else is done. The parent puts the new CRL in force,
//! closes the revoked child's link and refuses its handshakes from then on. A CRL file that
//! cannot be used is refused (a `crl_refused` event) and the CRL in force stays.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use lienthong_common::pki;
use lienthong_harness::{Network, NodeSpec};
use support::{link_up, relay_exe, revoke, security_events, start, wait_for};

const ROOT: &str = "000.00.00.G22";
const PROVINCE: &str = "000.00.00.H53";

fn events_of(net: &Network, at: &str, class: &str) -> Vec<serde_json::Value> {
    security_events(net, at)
        .into_iter()
        .filter(|e| e["class"] == class)
        .collect()
}

#[test]
fn a_revoked_childs_link_ends_without_a_restart() {
    let (_dir, net) = start(&[
        NodeSpec::new(ROOT, "Văn phòng Chính phủ", None).unwrap(),
        NodeSpec::new(PROVINCE, "UBND tỉnh", Some(ROOT)).unwrap(),
    ]);
    wait_for(Duration::from_secs(20), "the province linked", || {
        link_up(&net, ROOT, PROVINCE).then_some(())
    });
    let crl = pki::crl_path(&net.pki_dir());

    // A file that is no CRL: refused, said once, and the link stays.
    let good = std::fs::read(&crl).unwrap();
    std::fs::write(&crl, b"this is not a CRL").unwrap();
    let refused = wait_for(Duration::from_secs(40), "crl_refused at the root", || {
        let e = events_of(&net, ROOT, "crl_refused");
        (!e.is_empty()).then_some(e)
    });
    assert!(
        refused[0]["reason"].as_str().unwrap().contains("ca.crl"),
        "the event names the file: {refused:?}"
    );
    assert!(
        link_up(&net, ROOT, PROVINCE),
        "a refused CRL changes nothing"
    );
    std::fs::write(&crl, &good).unwrap();

    // The CA revokes the province; nothing else is done.
    revoke(&net, PROVINCE);
    let closed = wait_for(
        Duration::from_secs(60),
        "the root closing the revoked province's link",
        || {
            events_of(&net, ROOT, "bad_certificate")
                .into_iter()
                .find(|e| {
                    e["agency"] == PROVINCE
                        && e["reason"]
                            .as_str()
                            .is_some_and(|r| r.contains("no longer trusted"))
                })
        },
    );
    assert!(
        closed["reason"].as_str().unwrap().contains("revoked"),
        "{closed}"
    );
    // The province keeps trying: a new connection fails its handshake, a new link on the old
    // connection is refused; either way it stays down.
    wait_for(
        Duration::from_secs(30),
        "a refused handshake or link naming the revocation",
        || {
            let handshakes = events_of(&net, ROOT, "tls_handshake")
                .into_iter()
                .filter(|e| e["reason"].as_str().is_some_and(|r| r.contains("Revoked")))
                .count();
            let links = events_of(&net, ROOT, "bad_certificate")
                .into_iter()
                .filter(|e| e["reason"].as_str().is_some_and(|r| r.contains("revoked")))
                .count();
            (handshakes >= 1 || links >= 2).then_some(())
        },
    );
    assert!(
        !link_up(&net, ROOT, PROVINCE),
        "the revoked province is not linked"
    );
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        !link_up(&net, ROOT, PROVINCE),
        "the revoked province stays unlinked"
    );
    assert!(
        events_of(&net, ROOT, "crl_refused").len() == 1,
        "the good CRLs were not refused"
    );
}

#[test]
fn a_child_ends_its_link_when_its_parent_is_revoked() {
    let (_dir, net) = start(&[
        NodeSpec::new(ROOT, "Văn phòng Chính phủ", None).unwrap(),
        NodeSpec::new(PROVINCE, "UBND tỉnh", Some(ROOT)).unwrap(),
    ]);
    wait_for(Duration::from_secs(20), "the province linked", || {
        link_up(&net, PROVINCE, ROOT).then_some(())
    });
    // The CA revokes the root's certificate; nothing else is done.
    revoke(&net, ROOT);
    // The province, not the root, notices: its parent's certificate is no longer trusted.
    let closed = wait_for(
        Duration::from_secs(60),
        "the province closing its link to the revoked root",
        || {
            events_of(&net, PROVINCE, "bad_certificate")
                .into_iter()
                .find(|e| {
                    e["agency"] == ROOT
                        && e["reason"]
                            .as_str()
                            .is_some_and(|r| r.contains("parent's certificate no longer trusted"))
                })
        },
    );
    assert!(
        closed["reason"].as_str().unwrap().contains("revoked"),
        "{closed}"
    );
    wait_for(
        Duration::from_secs(30),
        "the province's parent link down",
        || (!link_up(&net, PROVINCE, ROOT)).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        !link_up(&net, PROVINCE, ROOT),
        "no new link to a revoked parent"
    );
}

/// Serves `file` (read anew for each request) over plain HTTP on 127.0.0.1, as a CA publishes
/// its CRL; returns the URL. The thread lives as long as the test process.
fn serve_file_over_http(file: std::path::PathBuf) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ca.crl", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let body = std::fs::read(&file).unwrap_or_default();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
    url
}

#[test]
fn a_crl_fetched_from_a_url_revokes_without_a_file_or_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        NodeSpec::new(ROOT, "Văn phòng Chính phủ", None).unwrap(),
        NodeSpec::new(PROVINCE, "UBND tỉnh", Some(ROOT)).unwrap(),
    ];
    let mut net = Network::create(dir.path(), &relay_exe(), &specs).unwrap();
    // The root has no CRL file: it fetches the CA's CRL over HTTP every 2 s.
    let url = serve_file_over_http(pki::crl_path(&net.pki_dir()));
    let config = net.nodes[&support::code(ROOT)].config.clone();
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("crl = \"../pki/ca.crl\"\n"), "{text}");
    std::fs::write(
        &config,
        text.replace(
            "crl = \"../pki/ca.crl\"\n",
            &format!("crl_urls = [\"{url}\"]\ncrl_fetch_secs = 2\n"),
        ),
    )
    .unwrap();
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();
    assert!(link_up(&net, ROOT, PROVINCE));

    revoke(&net, PROVINCE);
    let closed = wait_for(
        Duration::from_secs(60),
        "the root closing the revoked province's link",
        || {
            events_of(&net, ROOT, "bad_certificate")
                .into_iter()
                .find(|e| e["agency"] == PROVINCE)
        },
    );
    assert!(
        closed["reason"].as_str().unwrap().contains("revoked"),
        "{closed}"
    );
    assert!(events_of(&net, ROOT, "crl_missing").is_empty());
    assert!(events_of(&net, ROOT, "crl_unreachable").is_empty());
}
