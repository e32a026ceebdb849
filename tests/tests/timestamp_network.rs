//! Time-stamps in a running network (docs/evidence.md): a province whose `[timestamp]` names a
//! real TSA (`openssl ts -reply` behind HTTP, `support::tsa`) stamps the documents it sends, a
//! batch per request; the root checks each stamp on arrival and the stamp verifies with the
//! library and with `openssl ts -verify`. With the TSA down, documents wait at the province
//! (nothing sent unstamped, nothing lost, across a kill -9), a `tsa_unreachable` event is
//! recorded, and they go when it returns. A root whose TSA anchors are another CA refuses the
//! stamped documents.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lienthong_evidence::chain::Anchors;
use lienthong_harness::{sample_envelope, Network, NodeSpec};
use serde_json::Value;
use support::tsa::{Section, TsaPki, TsaServer};
use support::{code, relay_exe, security_events, wait_for, wait_in_inbox};

const ROOT: &str = "000.00.00.G22";
const PROVINCE: &str = "000.00.00.H53";

fn append(net: &Network, agency: &str, text: &str) {
    std::fs::OpenOptions::new()
        .append(true)
        .open(&net.nodes[&code(agency)].config)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

fn network(dir: &Path, tsa_url: &str, province_ca: &Path, root_ca: &Path) -> Network {
    let specs = [
        NodeSpec::new(ROOT, "Văn phòng Chính phủ", None).unwrap(),
        NodeSpec::new(PROVINCE, "UBND tỉnh Tây Ninh", Some(ROOT)).unwrap(),
    ];
    let net = Network::create(dir, &relay_exe(), &specs).unwrap();
    append(
        &net,
        PROVINCE,
        &format!(
            "\n[timestamp]\nurl = \"{tsa_url}\"\nca = [{:?}]\nrequired = true\nbatch_wait_ms = 300\ntimeout_secs = 5\naudit_interval_secs = 2\n",
            province_ca.display().to_string()
        ),
    );
    append(
        &net,
        ROOT,
        &format!(
            "\n[timestamp]\nca = [{:?}]\n",
            root_ca.display().to_string()
        ),
    );
    net
}

fn send(net: &Network, n: usize) -> String {
    net.client(&code(PROVINCE))
        .unwrap()
        .submit(sample_envelope(
            &code(PROVINCE),
            &[&code(ROOT)],
            &n.to_string(),
            &format!("Công văn số {n} về liên thông"),
        ))
        .unwrap()
        .0
}

/// `openssl ts -verify` accepts `token` for the root `digest_hex`, with the TSA's CA.
fn assert_openssl_verifies(pki: &TsaPki, digest_hex: &str, token: &Path) {
    let out = Command::new("openssl")
        .args(["ts", "-verify", "-digest", digest_hex, "-token_in", "-in"])
        .arg(token)
        .arg("-CAfile")
        .arg(pki.ca_pem())
        .arg("-untrusted")
        .arg(pki.tsa_pem(Section::Ec256))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Verification: OK"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn skip_without_openssl() -> bool {
    if Command::new("openssl").arg("version").output().is_ok() {
        return false;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but openssl is missing: README's test command installs it"
    );
    eprintln!("skipped: openssl missing");
    true
}

#[test]
fn documents_are_stamped_in_batches_checked_at_the_root_and_wait_while_the_tsa_is_down() {
    if skip_without_openssl() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let pki_dir = work.path().join("tsa");
    std::fs::create_dir_all(&pki_dir).unwrap();
    let pki = TsaPki::create(&pki_dir);
    let mut tsa = TsaServer::start(&pki, Section::Ec256);
    let tsa_addr = tsa.addr().to_string();
    let mut net = network(
        &work.path().join("net"),
        &tsa.url(),
        &pki.ca_pem(),
        &pki.ca_pem(),
    );
    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();
    let root = net.client(&code(ROOT)).unwrap();

    // A burst of documents: stamped by fewer requests than documents, each stamp checked at
    // the root (it delivers them) and again here.
    let ids: Vec<String> = (1..=30).map(|n| send(&net, n)).collect();
    wait_in_inbox(
        &root,
        &code(ROOT),
        &ids,
        60,
        "the stamped documents at the root",
    );
    let requests = tsa.served();
    eprintln!("30 documents stamped by {requests} TSA requests");
    assert!(
        (1..30).contains(&requests),
        "batched: {requests} requests for 30 documents"
    );
    let anchors = Anchors::from_pem(&std::fs::read(pki.ca_pem()).unwrap()).unwrap();
    let doc: Value = root.get_json(&format!("/v1/documents/{}", ids[0])).unwrap();
    let env: lienthong_proto::v1::Envelope = serde_json::from_value(doc).unwrap();
    let stamp = env
        .time_stamp
        .clone()
        .expect("a time-stamp on the delivered document");
    assert_eq!(stamp.tsa_url, tsa.url());
    let library = lienthong_relay::stamp::to_library(&stamp).unwrap();
    let signature = env.signature.clone().unwrap();
    let time = lienthong_evidence::tsa::verify_document_stamp(&signature.value, &library, &anchors)
        .unwrap();
    assert!(time.unix_ms + 60_000 >= signature.signing_unix_ms);
    // openssl alone accepts the token for the root the path leads to.
    let root_digest = library
        .path
        .root_from(&lienthong_evidence::batch::leaf_digest(&signature.value))
        .unwrap();
    let token = work.path().join("token.der");
    std::fs::write(&token, &stamp.token).unwrap();
    assert_openssl_verifies(&pki, &root_digest.to_hex(), &token);

    // The TSA goes down: a document waits at the province, unsent, and the outage is an event.
    tsa.stop();
    let waiting = send(&net, 31);
    wait_for(
        Duration::from_secs(60),
        "the tsa_unreachable event at the province",
        || {
            security_events(&net, PROVINCE)
                .iter()
                .any(|e| e["class"] == "tsa_unreachable")
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !root
            .inbox(&code(ROOT))
            .unwrap()
            .iter()
            .any(|e| e.envelope.id == waiting),
        "a document left without its stamp"
    );
    // Killed while it waits, the province still has it after a restart.
    net.stop(&code(PROVINCE), libc::SIGKILL).unwrap();
    net.start(&code(PROVINCE)).unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();
    // The TSA comes back where it was: the document goes, stamped.
    let tsa = TsaServer::start_at(&pki, Section::Ec256, &tsa_addr);
    wait_in_inbox(
        &root,
        &code(ROOT),
        std::slice::from_ref(&waiting),
        90,
        "the document that waited for the TSA",
    );
    let doc: Value = root.get_json(&format!("/v1/documents/{waiting}")).unwrap();
    assert!(doc.get("time_stamp").is_some_and(|t| !t.is_null()), "{doc}");
    assert!(tsa.served() >= 1);

    // The audit log's head is stamped too, in a record of the log itself: the token is over
    // the hash of the record it names, and openssl accepts it.
    let province_config = net.nodes[&code(PROVINCE)].config.clone();
    let (stamp_record, records) = wait_for(
        Duration::from_secs(60),
        "an audit_head record at the province",
        || {
            let out = Command::new(relay_exe())
                .args(["audit", "export", "--config"])
                .arg(&province_config)
                .output()
                .unwrap();
            let records: Vec<Value> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            let found = records.iter().find(|r| r["class"] == "audit_head")?.clone();
            Some((found, records))
        },
    );
    assert_eq!(stamp_record["kind"], "timestamp");
    let reason = stamp_record["reason"].as_str().unwrap().to_owned();
    let words: Vec<&str> = reason.split(' ').collect();
    assert_eq!(
        (words[0], words[2], words[4]),
        ("seq", "hash", "token"),
        "{reason}"
    );
    let stamped = records
        .iter()
        .find(|r| r["seq"].as_u64() == words[1].parse().ok())
        .unwrap();
    assert_eq!(
        stamped["hash"], words[3],
        "the stamp names the record's own hash"
    );
    let leaf = lienthong_evidence::batch::Digest::from_hex(words[3]).unwrap();
    let root = lienthong_evidence::batch::Tree::build(&[leaf])
        .unwrap()
        .root();
    std::fs::write(&token, hex::decode(words[5]).unwrap()).unwrap();
    assert_openssl_verifies(&pki, &root.to_hex(), &token);
}

#[test]
fn a_root_with_other_tsa_anchors_refuses_the_stamped_documents() {
    if skip_without_openssl() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let pki_dir = work.path().join("tsa");
    std::fs::create_dir_all(&pki_dir).unwrap();
    let pki = TsaPki::create(&pki_dir);
    let tsa = TsaServer::start(&pki, Section::Rsa);
    let mut net = network(
        &work.path().join("net"),
        &tsa.url(),
        &pki.ca_pem(),
        &pki.other_ca_pem(),
    );
    // A configuration that cannot work is refused at start, naming the key.
    let root_config = &net.nodes[&code(ROOT)].config;
    let bad = root_config.with_file_name("bad.toml");
    let mut text = std::fs::read_to_string(root_config).unwrap();
    text.push_str("required = true\n");
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(relay_exe())
        .args(["serve", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("timestamp.required"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    net.start_all().unwrap();
    net.wait_linked(Duration::from_secs(60)).unwrap();
    let id = send(&net, 1);
    wait_for(
        Duration::from_secs(60),
        "the root's refusal of the stamp",
        || {
            security_events(&net, ROOT)
                .iter()
                .find(|e| {
                    e["class"] == "bad_signature"
                        && e["reason"]
                            .as_str()
                            .is_some_and(|r| r.contains("time-stamp"))
                })
                .cloned()
        },
    );
    let root = net.client(&code(ROOT)).unwrap();
    assert!(!root
        .inbox(&code(ROOT))
        .unwrap()
        .iter()
        .any(|e| e.envelope.id == id));
}
