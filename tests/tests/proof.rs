//! Proof bundles on a real network (root, two provinces): a document from one province to the
//! other, its 01 (sent by the recipient's node on delivery) and 06 (posted by the recipient),
//! the bundle exported at the sender's node by `lt-relay proof export` (through the running
//! node's API, and from its store once stopped) and by `GET /v1/documents/{id}/proof`, checked
//! by `lt-relay proof verify`; then every kind of tampering, each refused naming the item. The
//! time-stamp part stamps the real envelope's signature with a real TSA (`openssl ts`) and runs
//! the shell check of docs/evidence.md on the bundle's `timestamp/` folder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lienthong_evidence::batch::{leaf_digest, Digest, Side};
use lienthong_evidence::chain::Anchors;
use lienthong_evidence::tsa::http::post_query;
use lienthong_evidence::tsa::BatchRequest;
use lienthong_harness::{sample_envelope, Network, NodeSpec};
use lienthong_proto::v1::{Envelope, HashStep, StatusReceipt, TimeStamp};
use lienthong_relay::proof::{self, Bundle, Held};
use prost::Message;
use support::tsa::{Section, TsaPki, TsaServer};
use support::{code, dump_logs, relay_exe, wait_for, wait_in_inbox};

const ROOT: &str = "000.00.00.G22";
const P1: &str = "000.00.00.H53";
const P2: &str = "000.00.00.H49";

/// Runs `lt-relay` with `args`: exit code and stdout + stderr.
fn lt(args: &[&str]) -> (i32, String) {
    let out = Command::new(relay_exe()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `lt-relay proof verify FILE --ca CA [extra...]`.
fn verify(file: &Path, ca: &Path, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["proof", "verify", s(file), "--ca", s(ca)];
    args.extend_from_slice(extra);
    lt(&args)
}

fn read_bundle(zip: &[u8]) -> Bundle {
    let (b, bad) = Bundle::from_zip(zip).unwrap();
    assert!(bad.is_empty(), "{bad:?}");
    b
}

/// What a bundle holds, decoded: the envelope and the receipts (folders in order).
fn held_of(b: &Bundle) -> Held {
    let envelope = Envelope::decode(b.get("envelope/envelope.pb").unwrap()).unwrap();
    let receipts = b
        .files()
        .iter()
        .filter(|(n, _)| n.starts_with("receipts/") && n.ends_with("/receipt.pb"))
        .map(|(_, bytes)| StatusReceipt::decode(bytes.as_slice()).unwrap())
        .collect();
    Held {
        envelope,
        receipts,
        ..Held::default()
    }
}

/// A bundle made again from what `b` holds after `change`, every derived file and the
/// manifest consistent with the change: only a signature can tell.
fn rebuilt(b: &Bundle, change: impl FnOnce(&mut Held)) -> Vec<u8> {
    let mut held = held_of(b);
    change(&mut held);
    proof::assemble(&held, &code(P1), 0)
        .unwrap()
        .to_zip()
        .unwrap()
}

/// The name of the receipt folder with status `status`.
fn receipt_item(b: &Bundle, status: u32) -> String {
    b.files()
        .iter()
        .filter_map(|(n, _)| n.strip_prefix("receipts/"))
        .filter_map(|rest| rest.split_once('/').map(|(d, _)| d))
        .find(|d| d.split('-').nth(1) == Some(&format!("{status:02}")))
        .unwrap()
        .to_owned()
}

/// Asserts `verify` failed (exit 1) on exactly `items`, each line carrying `why`.
fn assert_fails(what: &str, (rc, out): (i32, String), items: &[(&str, &str)]) {
    assert_eq!(rc, 1, "{what}: {out}");
    for (item, why) in items {
        assert!(
            out.lines().any(|l| l.contains("FAILED")
                && l.contains(&format!(" {item}: "))
                && l.contains(why)),
            "{what}: no FAILED line for {item} with {why:?}:\n{out}"
        );
    }
    let listed: Vec<&str> = items.iter().map(|(i, _)| *i).collect();
    let result = out
        .lines()
        .find(|l| l.starts_with("RESULT: FAILED"))
        .unwrap();
    assert!(
        result.ends_with(&listed.join(", ")),
        "{what}: other items failed too: {result}\n{out}"
    );
}

struct Scene {
    dir: PathBuf,
    net: Network,
    envelope_id: String,
    document_id: String,
}

impl Scene {
    fn ca(&self) -> PathBuf {
        self.net.pki_dir().join("ca.pem")
    }
    fn config(&self, a: &str) -> PathBuf {
        self.net.nodes[&code(a)].config.clone()
    }
}

#[test]
fn a_proof_bundle_verifies_offline_and_every_change_is_named() {
    let specs = vec![
        NodeSpec::new(ROOT, "Văn phòng Chính phủ", None).unwrap(),
        NodeSpec::new(P1, "UBND tỉnh Tây Ninh", Some(ROOT)).unwrap(),
        NodeSpec::new(P2, "UBND tỉnh Quảng Nam", Some(ROOT)).unwrap(),
    ];
    let (dir, net) = support::start(&specs);
    let mut scene = Scene {
        dir: dir.path().to_owned(),
        net,
        envelope_id: String::new(),
        document_id: String::new(),
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(&mut scene)));
    if result.is_err() {
        dump_logs(&scene.net);
    }
    scene.net.stop_all();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn scenario(sc: &mut Scene) {
    let p1 = sc.net.client(&code(P1)).unwrap();
    let p2 = sc.net.client(&code(P2)).unwrap();
    let env = sample_envelope(
        &code(P1),
        &[&code(P2)],
        "27",
        "Về việc kiểm tra hồ sơ chứng cứ",
    );
    let (id, doc) = p1.submit(env).unwrap();
    sc.envelope_id = id.clone();
    sc.document_id = doc.clone();
    wait_in_inbox(
        &p2,
        &code(P2),
        std::slice::from_ref(&id),
        30,
        "the document at P2",
    );
    p2.post_status(&id, &code(P2), 6, "Đã xử lý xong").unwrap();
    wait_for(Duration::from_secs(30), "01 and 06 at the sender", || {
        let t = p1.track(&id).ok()?;
        let got: Vec<i32> = t.statuses.iter().map(|r| r.status).collect();
        (got.contains(&1) && got.contains(&6)).then_some(())
    });

    // Exported by the command (through the running node's API), by document id.
    let out = sc.dir.join("proof.zip");
    let (rc, text) = lt(&[
        "proof",
        "export",
        &doc,
        "--out",
        s(&out),
        "--config",
        s(&sc.config(P1)),
    ]);
    assert_eq!(rc, 0, "{text}");
    let zip = std::fs::read(&out).unwrap();
    let bundle = read_bundle(&zip);
    let names: Vec<&str> = bundle.files().iter().map(|(n, _)| n.as_str()).collect();
    for must in [
        "manifest.json",
        "summary.txt",
        "envelope/envelope.pb",
        "envelope/envelope.json",
        "envelope/signed-content.pb",
        "envelope/signed-message.bin",
        "envelope/signature.bin",
        "envelope/chain.pem",
        "envelope/signer.pem",
        "envelope/SIGNING.txt",
        "trace.json",
        "registers.json",
    ] {
        assert!(names.contains(&must), "{must} missing from {names:?}");
    }
    assert!(
        !names.iter().any(|n| n.starts_with("timestamp/")),
        "{names:?}"
    );
    let arrived = receipt_item(&bundle, 1);
    let done = receipt_item(&bundle, 6);
    assert!(arrived.ends_with(P2) && done.ends_with(P2), "{names:?}");
    let summary = String::from_utf8(bundle.get("summary.txt").unwrap().to_vec()).unwrap();
    for must in [
        &doc,
        &id,
        "01 đã đến",
        "06 hoàn thành",
        "01 arrived",
        "06 done",
        "Đã xử lý xong",
    ] {
        assert!(summary.contains(must), "summary lacks {must}:\n{summary}");
    }
    let registers = String::from_utf8(bundle.get("registers.json").unwrap().to_vec()).unwrap();
    assert!(
        registers.contains("\"out\"") && registers.contains(&doc),
        "{registers}"
    );

    // The API route gives the same files (the manifest differs by its export time).
    let api_zip = p1
        .get_bytes(&format!("/v1/documents/{id}/proof"), 1 << 28)
        .unwrap();
    let from_api = read_bundle(&api_zip);
    let without_manifest = |b: &Bundle| -> Vec<(String, Vec<u8>)> {
        b.files()
            .iter()
            .filter(|(n, _)| n != "manifest.json")
            .cloned()
            .collect()
    };
    assert_eq!(without_manifest(&from_api), without_manifest(&bundle));
    let missing = p1.get_bytes("/v1/documents/no-such-document/proof", 1 << 20);
    assert!(missing.unwrap_err().to_string().contains("404"));

    // Verified offline with the root CA alone.
    let (rc, text) = verify(&out, &sc.ca(), &[]);
    assert_eq!(rc, 0, "{text}");
    for must in [
        "ok          manifest.json:",
        "ok          envelope: signed by 000.00.00.H53",
        &format!("ok          receipt {arrived}: 01 arrived"),
        &format!("ok          receipt {done}: 06 done"),
        "RESULT: everything holds",
        "06 hoàn thành",
        &doc,
    ] {
        assert!(text.contains(must), "verify output lacks {must:?}:\n{text}");
    }
    assert!(
        text.contains("not checked revocation: no CRL given (--crl)"),
        "{text}"
    );
    revocation(sc, &out, &arrived, &done);

    // A changed byte in the ZIP: the entry's CRC no longer matches.
    let pb = bundle.get("envelope/envelope.pb").unwrap();
    let at = zip.windows(pb.len()).position(|w| w == pb).unwrap();
    let mut flipped = zip.clone();
    flipped[at + pb.len() / 2] ^= 0x01;
    let f = sc.dir.join("flipped.zip");
    std::fs::write(&f, &flipped).unwrap();
    assert_fails(
        "a flipped byte",
        verify(&f, &sc.ca(), &[]),
        &[("envelope/envelope.pb", "cannot be read")],
    );

    // The envelope changed, everything else made consistent with it: its signature fails.
    let f = sc.dir.join("subject.zip");
    std::fs::write(
        &f,
        rebuilt(&bundle, |h| h.envelope.subject.push_str(" (sửa)")),
    )
    .unwrap();
    assert_fails(
        "a changed subject",
        verify(&f, &sc.ca(), &[]),
        &[("envelope", "signature does not verify")],
    );

    // A receipt changed: the 06 says something else.
    let f = sc.dir.join("receipt.zip");
    std::fs::write(
        &f,
        rebuilt(&bundle, |h| {
            let r = h.receipts.iter_mut().find(|r| r.status == 6).unwrap();
            r.description = "Chưa xử lý".into();
        }),
    )
    .unwrap();
    assert_fails(
        "a changed receipt",
        verify(&f, &sc.ca(), &[]),
        &[(&format!("receipt {done}"), "signature does not verify")],
    );

    // A receipt without its signature.
    let f = sc.dir.join("unsigned.zip");
    std::fs::write(
        &f,
        rebuilt(&bundle, |h| {
            h.receipts
                .iter_mut()
                .find(|r| r.status == 1)
                .unwrap()
                .signature = None;
        }),
    )
    .unwrap();
    assert_fails(
        "an unsigned receipt",
        verify(&f, &sc.ca(), &[]),
        &[(&format!("receipt {arrived}"), "unsigned")],
    );

    // A receipt moved onto another envelope's bundle: it is not about this envelope.
    let f = sc.dir.join("other-envelope.zip");
    std::fs::write(
        &f,
        rebuilt(&bundle, |h| {
            let r = h.receipts.iter_mut().find(|r| r.status == 6).unwrap();
            r.response_for.as_mut().unwrap().envelope_id = "another-envelope".into();
        }),
    )
    .unwrap();
    assert_fails(
        "a receipt about another envelope",
        verify(&f, &sc.ca(), &[]),
        &[(&format!("receipt {done}"), "is about envelope")],
    );

    // Another CA than the interchange's: no signature chains to it.
    let other = sc.dir.join("other-pki");
    lienthong_common::pki::init(&other).unwrap();
    assert_fails(
        "another CA",
        verify(&out, &other.join("ca.pem"), &[]),
        &[
            ("envelope", "not issued by the interchange CA"),
            (
                &format!("receipt {arrived}"),
                "not issued by the interchange CA",
            ),
            (
                &format!("receipt {done}"),
                "not issued by the interchange CA",
            ),
        ],
    );

    // The manifest changed: the file whose hash it misstates is named.
    let mut b = bundle.clone();
    let manifest = String::from_utf8(b.get("manifest.json").unwrap().to_vec()).unwrap();
    let sha = proof_sha(&bundle, "envelope/signature.bin");
    let wrong = format!(
        "{}{}",
        &sha[..63],
        if sha.ends_with('0') { "1" } else { "0" }
    );
    b.put("manifest.json", manifest.replace(&sha, &wrong).into_bytes());
    let f = sc.dir.join("manifest.zip");
    std::fs::write(&f, b.to_zip().unwrap()).unwrap();
    assert_fails(
        "a changed manifest",
        verify(&f, &sc.ca(), &[]),
        &[("envelope/signature.bin", "the manifest says")],
    );

    // A derived file replaced: the message a third party would check with openssl.
    let mut b = bundle.clone();
    let mut message = b.get("envelope/signed-message.bin").unwrap().to_vec();
    *message.last_mut().unwrap() ^= 0x01;
    b.put("envelope/signed-message.bin", message);
    b.reseal().unwrap();
    let f = sc.dir.join("derived.zip");
    std::fs::write(&f, b.to_zip().unwrap()).unwrap();
    assert_fails(
        "a replaced signed-message.bin",
        verify(&f, &sc.ca(), &[]),
        &[("envelope/signed-message.bin", "differs")],
    );

    // Bad usage: 64.
    let (rc, text) = verify(&out, &sc.dir.join("no-such-ca.pem"), &[]);
    assert_eq!(rc, 64, "{text}");
    let (rc, text) = verify(&sc.dir.join("no-such.zip"), &sc.ca(), &[]);
    assert_eq!(rc, 64, "{text}");

    // The time-stamp: the real envelope's signature stamped by a real TSA.
    stamped(sc, &bundle);

    // The node stopped: the same bundle from its store.
    sc.net.stop(&code(P1), libc::SIGTERM).unwrap();
    let stored = sc.dir.join("stored.zip");
    let (rc, text) = lt(&[
        "proof",
        "export",
        &id,
        "--out",
        s(&stored),
        "--config",
        s(&sc.config(P1)),
    ]);
    assert_eq!(rc, 0, "{text}");
    let from_store = read_bundle(&std::fs::read(&stored).unwrap());
    assert_eq!(without_manifest(&from_store), without_manifest(&bundle));
    let (rc, text) = verify(&stored, &sc.ca(), &[]);
    assert_eq!(rc, 0, "{text}");
}

/// A CRL of the interchange's CA made by `openssl ca -gencrl` from an index that revokes P2's
/// certificate from `revoked` (`YYMMDDHHMMSSZ`).
fn crl_revoking_p2(sc: &Scene, name: &str, revoked: &str) -> PathBuf {
    let pki = sc.net.pki_dir();
    crl_by(
        sc,
        name,
        &lienthong_common::pki::ca_cert_path(&pki),
        &lienthong_common::pki::ca_key_path(&pki),
        revoked,
    )
}

/// [`crl_revoking_p2`] signed by the CA `ca` (its key `key`).
fn crl_by(sc: &Scene, name: &str, ca: &Path, key: &Path, revoked: &str) -> PathBuf {
    let pki = sc.net.pki_dir();
    let home = sc.dir.join(name);
    std::fs::create_dir_all(&home).unwrap();
    let cert = lienthong_common::pki::node_cert_path(&pki, &code(P2));
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in", s(&cert)])
        .output()
        .unwrap();
    let serial = String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_owned();
    std::fs::write(
        home.join("index.txt"),
        format!("R\t491231235959Z\t{revoked}\t{serial}\tunknown\t/CN={P2}\n"),
    )
    .unwrap();
    std::fs::write(home.join("crlnumber"), "01\n").unwrap();
    std::fs::write(
        home.join("ca.cnf"),
        format!(
            "[ca]\ndefault_ca = this\n[this]\ndatabase = {d}/index.txt\ncrlnumber = {d}/crlnumber\n\
             certificate = {ca}\nprivate_key = {key}\ndefault_md = sha256\ndefault_crl_days = 7\n",
            d = home.display(),
            ca = ca.display(),
            key = key.display(),
        ),
    )
    .unwrap();
    support::openssl(
        &home,
        &["ca", "-gencrl", "-config", "ca.cnf", "-out", "ca.crl"],
    );
    home.join("ca.crl")
}

/// Revocation: P2 signed the 01 and the 06. Its certificate revoked after that, the bundle
/// holds and says so; revoked before, the two receipts fail and the envelope still holds; a CRL
/// signed by another CA is refused as bad usage.
fn revocation(sc: &Scene, out: &Path, arrived: &str, done: &str) {
    let now = time::OffsetDateTime::now_utc();
    let stamp = |t: time::OffsetDateTime| {
        let f = time::macros::format_description!(
            "[year repr:last_two][month][day][hour][minute][second]Z"
        );
        t.format(&f).unwrap()
    };
    let later = crl_revoking_p2(sc, "crl-later", &stamp(now + time::Duration::minutes(5)));
    let (rc, text) = verify(out, &sc.ca(), &["--crl", s(&later)]);
    assert_eq!(rc, 0, "{text}");
    for must in [
        "ok          revocation: 1 CRL(s) checked",
        "listing 1 certificate(s)",
        "after it signed",
        "ok          envelope: signed by 000.00.00.H53",
    ] {
        assert!(text.contains(must), "verify output lacks {must:?}:\n{text}");
    }
    assert!(text.contains("not revoked by the CRLs given"), "{text}");

    let before = crl_revoking_p2(sc, "crl-before", &stamp(now - time::Duration::days(30)));
    assert_fails(
        "P2 revoked before it signed",
        verify(out, &sc.ca(), &["--crl", s(&before)]),
        &[
            (&format!("receipt {arrived}"), "before it signed"),
            (&format!("receipt {done}"), "before it signed"),
        ],
    );
    let (_, text) = verify(out, &sc.ca(), &["--crl", s(&before)]);
    assert!(text.contains("ok          envelope:"), "{text}");

    // A CRL of a CA outside --ca.
    support::openssl_self_signed(&sc.dir, "another", "2", "/CN=Another CA", &[]);
    let foreign = crl_by(
        sc,
        "crl-foreign",
        &sc.dir.join("another.pem"),
        &sc.dir.join("another.key"),
        &stamp(now),
    );
    let (rc, text) = verify(out, &sc.ca(), &["--crl", s(&foreign)]);
    assert_eq!(rc, 64, "{text}");
    assert!(
        text.contains("a CRL by CN=Another CA, which is not a CA of the trust bundle"),
        "{text}"
    );

    // A CRL of another CA that took the same name: its signature does not verify.
    let other = sc.dir.join("other-ca");
    std::fs::create_dir_all(&other).unwrap();
    lienthong_common::pki::init(&other).unwrap();
    let (rc, text) = verify(
        out,
        &sc.ca(),
        &["--crl", s(&lienthong_common::pki::crl_path(&other))],
    );
    assert_eq!(rc, 64, "{text}");
    assert!(
        text.contains("did not sign it: its signature does not verify"),
        "{text}"
    );
}

fn proof_sha(b: &Bundle, name: &str) -> String {
    b.manifest()
        .unwrap()
        .files
        .into_iter()
        .find(|f| f.name == name)
        .unwrap()
        .sha256
}

/// The shell block of docs/evidence.md that checks a stamp with openssl alone.
fn documented_check() -> String {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/evidence.md"))
            .unwrap();
    let section = doc
        .split("### Checking one document's stamp with openssl alone")
        .nth(1)
        .unwrap();
    let block = section.split("```sh\n").nth(1).unwrap();
    block.split("```").next().unwrap().to_owned()
}

fn stamped(sc: &Scene, bundle: &Bundle) {
    let pki_dir = sc.dir.join("tsa");
    std::fs::create_dir_all(&pki_dir).unwrap();
    let pki = TsaPki::create(&pki_dir);
    let mut server = TsaServer::start(&pki, Section::Rsa);
    let tsa_ca = pki.ca_pem();
    let anchors = Anchors::from_pem(&std::fs::read(&tsa_ca).unwrap()).unwrap();

    // The envelope's leaf among two others, so that its path has steps on both sides.
    let held = held_of(bundle);
    let signature = held.envelope.signature.as_ref().unwrap().value.clone();
    let leaves: Vec<Digest> = vec![
        leaf_digest(b"another document's signature"),
        leaf_digest(&signature),
        leaf_digest(b"a third document's signature"),
    ];
    let request = BatchRequest::new(&leaves, None).unwrap();
    let reply = post_query(&server.url(), request.der(), Duration::from_secs(20)).unwrap();
    let batch = request.accept(&reply, &anchors).unwrap();
    let stamp = batch.stamp(1).unwrap();
    let time = batch.time().clone();
    server.stop();
    let with_stamp = |path: Vec<HashStep>| {
        rebuilt(bundle, |h| {
            h.envelope.time_stamp = Some(TimeStamp {
                token: stamp.token.clone(),
                path,
                tsa_url: "http://tsa.invalid/".into(),
            });
        })
    };
    let path: Vec<HashStep> = stamp
        .path
        .steps
        .iter()
        .map(|s| HashStep {
            left: s.side == Side::Left,
            sibling: s.sibling.as_bytes().to_vec(),
        })
        .collect();
    assert!(path.len() >= 2);
    let zip = with_stamp(path.clone());
    let f = sc.dir.join("stamped.zip");
    std::fs::write(&f, &zip).unwrap();
    let b = read_bundle(&zip);
    assert_eq!(
        b.get("timestamp/token.der").unwrap(),
        stamp.token.as_slice()
    );
    assert_eq!(
        b.get("timestamp/path.txt").unwrap(),
        stamp.path.to_lines().as_bytes()
    );
    assert_eq!(
        b.get("timestamp/signature.bin").unwrap(),
        signature.as_slice()
    );

    // Checked with the TSA's anchors: the TSA's time, and the chain checked at it.
    let (rc, text) = verify(&f, &sc.ca(), &["--tsa-ca", s(&tsa_ca)]);
    assert_eq!(rc, 0, "{text}");
    assert!(
        text.contains("ok          time-stamp: stamped at"),
        "{text}"
    );
    assert!(text.contains("(the TSA's time)"), "{text}");
    // The summary's claimed time (read from the token without checking) is the verified one.
    let summary = String::from_utf8(b.get("summary.txt").unwrap().to_vec()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("time-stamp: stamped at"))
        .unwrap();
    let when = line
        .split("stamped at ")
        .nth(1)
        .unwrap()
        .split(" by ")
        .next()
        .unwrap();
    assert!(summary.contains(when), "{when} not in:\n{summary}");
    assert!(
        (time.unix_ms - held.envelope.signature.as_ref().unwrap().signing_unix_ms).abs() < 600_000
    );

    // Without them: present, not checked, and the bundle still holds on its signatures.
    let (rc, text) = verify(&f, &sc.ca(), &[]);
    assert_eq!(rc, 0, "{text}");
    assert!(text.contains("not checked time-stamp:"), "{text}");

    // Another TSA root: refused.
    assert_fails(
        "another TSA root",
        verify(&f, &sc.ca(), &["--tsa-ca", s(&pki.other_ca_pem())]),
        &[("time-stamp", "")],
    );

    // A changed step of the path: another root, which the token does not stamp.
    let mut bad = path.clone();
    bad[0].sibling[0] ^= 0x80;
    let f2 = sc.dir.join("bad-path.zip");
    std::fs::write(&f2, with_stamp(bad)).unwrap();
    assert_fails(
        "a changed hash path",
        verify(&f2, &sc.ca(), &["--tsa-ca", s(&tsa_ca)]),
        &[("time-stamp", "not the root")],
    );

    // The documented openssl check runs as it is in the bundle's timestamp/ folder.
    let out = sc.dir.join("unzipped");
    for (name, bytes) in b.files() {
        let p = out.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let ts_dir = out.join("timestamp");
    std::fs::copy(&tsa_ca, ts_dir.join("tsa-ca.pem")).unwrap();
    let run = Command::new("sh")
        .arg("-c")
        .arg(documented_check())
        .current_dir(&ts_dir)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        run.status.success() && said.contains("Verification: OK"),
        "{said}"
    );

    // So does the envelope signature check of docs/evidence.md ("Proof bundles").
    let env_dir = out.join("envelope");
    std::fs::copy(sc.ca(), env_dir.join("ca.pem")).unwrap();
    let run = Command::new("sh")
        .arg("-c")
        .arg(documented_envelope_check())
        .current_dir(&env_dir)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        run.status.success()
            && said.contains("signer.pem: OK")
            && said.contains("content: OK")
            && said.contains("Verified OK"),
        "{said}"
    );
}

/// The shell block of docs/evidence.md that checks the envelope's signature with openssl.
fn documented_envelope_check() -> String {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/evidence.md"))
            .unwrap();
    let section = doc
        .split("### Checking the signatures with openssl alone")
        .nth(1)
        .expect("docs/evidence.md lost its section on checking a bundle's signatures");
    let block = section.split("```sh\n").nth(1).unwrap();
    block.split("```").next().unwrap().to_owned()
}
