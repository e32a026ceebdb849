//! RFC 3161 time-stamps through a real TSA that is not ours (`openssl ts -reply` behind HTTP,
//! see `support::tsa`): a batch of 200 document signatures stamped in one request, every
//! document's stamp checked by the library and by `openssl ts -verify` (with the shell steps
//! docs/evidence.md gives a third party), and the refusals, each naming what did not match.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use lienthong_evidence::batch::{leaf_digest, Digest};
use lienthong_evidence::chain::{Anchors, ChainError};
use lienthong_evidence::tsa::http::{post_query, TransportError};
use lienthong_evidence::tsa::{
    verify_document_stamp, verify_token, BatchRequest, Expected, StampTime, TimeStamp, TsaError,
};
use support::tsa::{Section, TsaPki, TsaServer, DEFAULT_POLICY, OTHER_POLICY};

const BATCH: usize = 200;
const TIMEOUT: Duration = Duration::from_secs(20);

/// Stand-ins for the documents' signatures (their bytes are all that matters here).
fn signatures(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            format!("CMS signature of document {i:04}, agency 000.00.00.H53 ")
                .repeat(6)
                .into_bytes()
        })
        .collect()
}

fn anchors(pem: &Path) -> Anchors {
    Anchors::from_pem(&std::fs::read(pem).unwrap()).unwrap()
}

/// Stamps `sigs` with one request to `url`; returns each document's stamp and the time.
fn stamp_batch(
    url: &str,
    sigs: &[Vec<u8>],
    policy: Option<&str>,
    anchors: &Anchors,
) -> Result<(Vec<TimeStamp>, StampTime), TsaError> {
    let leaves: Vec<Digest> = sigs.iter().map(|s| leaf_digest(s)).collect();
    let policy = policy.map(|p| p.parse().unwrap());
    let request = BatchRequest::new(&leaves, policy)?;
    let reply = post_query(url, request.der(), TIMEOUT).unwrap();
    let stamped = request.accept(&reply, anchors)?;
    let stamps = (0..sigs.len()).map(|i| stamped.stamp(i).unwrap()).collect();
    Ok((stamps, stamped.time().clone()))
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Runs a command, returning whether it succeeded and its stdout and stderr together.
fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The shell block of docs/evidence.md under "Checking one document's stamp with openssl
/// alone", so that the test runs what a third party is told to run.
fn documented_check() -> String {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/evidence.md"))
            .unwrap();
    let section = doc
        .split("### Checking one document's stamp with openssl alone")
        .nth(1)
        .expect("docs/evidence.md lost its section on checking a stamp with openssl");
    let block = section.split("```sh\n").nth(1).unwrap();
    block.split("```").next().unwrap().to_owned()
}

/// Writes what a proof bundle holds for one document into `dir` and runs the documented check
/// there.
fn third_party_check(dir: &Path, signature: &[u8], stamp: &TimeStamp, ca: &Path) -> (bool, String) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("signature.bin"), signature).unwrap();
    std::fs::write(dir.join("path.txt"), stamp.path.to_lines()).unwrap();
    std::fs::write(dir.join("token.der"), &stamp.token).unwrap();
    std::fs::copy(ca, dir.join("tsa-ca.pem")).unwrap();
    run(Command::new("sh")
        .arg("-c")
        .arg(documented_check())
        .current_dir(dir))
}

#[test]
fn a_batch_of_200_is_stamped_in_one_request_and_every_document_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TsaPki::create(dir.path());
    let server = TsaServer::start(&pki, Section::Ec256);
    let anchors = anchors(&pki.ca_pem());
    let sigs = signatures(BATCH);

    let started = Instant::now();
    let (stamps, time) = stamp_batch(&server.url(), &sigs, None, &anchors).unwrap();
    let batched = started.elapsed();
    assert_eq!(server.served(), 1, "one request for the whole batch");
    assert!((time.unix_ms - now_ms()).abs() < 120_000, "{time:?}");
    assert_eq!(time.policy, DEFAULT_POLICY);
    assert_eq!(time.accuracy_ms, Some(1000));
    assert!(time.signer.contains("tsa-ec256"), "{time:?}");
    assert!(time.tsa_name.as_deref().unwrap().contains("tsa-ec256"));

    for (i, (sig, stamp)) in sigs.iter().zip(&stamps).enumerate() {
        assert!(stamp.path.steps.len() <= 8, "document {i}");
        // What is stored is JSON; check what comes back from it.
        let stored: TimeStamp =
            serde_json::from_str(&serde_json::to_string(stamp).unwrap()).unwrap();
        let checked = verify_document_stamp(sig, &stored, &anchors)
            .unwrap_or_else(|e| panic!("document {i}: {e}"));
        assert_eq!(checked, time, "document {i}");
    }

    // openssl accepts the stored token over the root.
    let token = dir.path().join("token.der");
    std::fs::write(&token, &stamps[0].token).unwrap();
    let (ok, out) = run(Command::new("openssl")
        .args([
            "ts",
            "-verify",
            "-digest",
            &time.root.to_hex(),
            "-token_in",
            "-in",
        ])
        .arg(&token)
        .arg("-CAfile")
        .arg(pki.ca_pem())
        .arg("-untrusted")
        .arg(pki.tsa_pem(Section::Ec256)));
    assert!(ok && out.contains("Verification: OK"), "{out}");

    // The third party's steps (docs/evidence.md) on a document in the middle, then on a
    // signature that is not the one stamped.
    let (ok, out) = third_party_check(
        &dir.path().join("bundle-137"),
        &sigs[137],
        &stamps[137],
        &pki.ca_pem(),
    );
    assert!(ok && out.contains("Verification: OK"), "{out}");
    assert!(out.contains(&format!("root: {}", time.root)), "{out}");
    let (ok, out) = third_party_check(
        &dir.path().join("bundle-forged"),
        &sigs[138],
        &stamps[137],
        &pki.ca_pem(),
    );
    assert!(!ok && out.contains("message imprint mismatch"), "{out}");

    // The same 200 documents one request each, for the figures.
    let started = Instant::now();
    for sig in &sigs {
        stamp_batch(&server.url(), std::slice::from_ref(sig), None, &anchors).unwrap();
    }
    let single = started.elapsed();
    assert_eq!(server.served(), 1 + BATCH);
    eprintln!(
        "timing: {BATCH} documents in one batched request (request, TSA, check): {batched:?}; \
         {BATCH} single requests: {single:?}; \
         checking one stored stamp: {:?}",
        {
            let t = Instant::now();
            verify_document_stamp(&sigs[0], &stamps[0], &anchors).unwrap();
            t.elapsed()
        }
    );
}

#[test]
fn rsa_and_p384_tsas_with_milliseconds_ess_v2_and_a_policy_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TsaPki::create(dir.path());
    let anchors = anchors(&pki.ca_pem());
    let sigs = signatures(5);
    for section in [Section::Rsa, Section::Ec384] {
        let server = TsaServer::start(&pki, section);
        let (stamps, time) =
            stamp_batch(&server.url(), &sigs, Some(OTHER_POLICY), &anchors).unwrap();
        assert_eq!(time.policy, OTHER_POLICY, "{section:?}");
        for (sig, stamp) in sigs.iter().zip(&stamps) {
            assert_eq!(verify_document_stamp(sig, stamp, &anchors).unwrap(), time);
        }
        if section == Section::Rsa {
            assert_eq!(time.accuracy_ms, Some(500));
            // genTime has milliseconds there: openssl prints them as we read them.
            let token = dir.path().join("rsa-token.der");
            std::fs::write(&token, &stamps[0].token).unwrap();
            let (ok, text) = run(Command::new("openssl")
                .args(["ts", "-reply", "-token_in", "-text", "-in"])
                .arg(&token));
            assert!(ok, "{text}");
            let printed = text
                .lines()
                .find_map(|l| l.strip_prefix("Time stamp: "))
                .unwrap();
            let fraction = printed
                .split_whitespace()
                .find_map(|w| w.split_once('.').map(|(_, f)| f))
                .unwrap_or("");
            let ms = format!("{fraction:0<3}");
            assert_eq!(ms, format!("{:03}", time.unix_ms % 1000), "{printed}");
        }
        // A policy the TSA does not issue under: it refuses, and the error says how.
        let err = stamp_batch(&server.url(), &sigs, Some("1.2.3.99"), &anchors).unwrap_err();
        assert!(
            matches!(&err, TsaError::Refused { status: 2, failures, .. }
                if failures == &["unacceptedPolicy".to_owned()]),
            "{err}"
        );
        eprintln!("{section:?}: {err}");
    }
}

#[test]
fn refusals_name_what_did_not_match() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TsaPki::create(dir.path());
    let server = TsaServer::start(&pki, Section::Ec256);
    let anchors = anchors(&pki.ca_pem());
    let sigs = signatures(16);
    let (stamps, time) = stamp_batch(&server.url(), &sigs, None, &anchors).unwrap();
    let (sig, stamp) = (&sigs[5], &stamps[5]);
    verify_document_stamp(sig, stamp, &anchors).unwrap();

    // A flipped byte in the signed TSTInfo: the message digest no longer matches.
    let tst_at = find(&stamp.token, time.root.as_bytes()).unwrap();
    let mut forged = stamp.clone();
    forged.token[tst_at] ^= 0x01;
    let err = verify_document_stamp(sig, &forged, &anchors).unwrap_err();
    assert!(
        matches!(err, TsaError::MessageDigestMismatch { .. }),
        "{err}"
    );
    eprintln!("flipped TSTInfo byte: {err}");
    // A flipped byte in the signature (the token's last bytes).
    let mut forged = stamp.clone();
    let last = forged.token.len() - 3;
    forged.token[last] ^= 0x01;
    let err = verify_document_stamp(sig, &forged, &anchors).unwrap_err();
    assert!(matches!(err, TsaError::BadSignature { .. }), "{err}");
    eprintln!("flipped signature byte: {err}");
    // A flipped bit anywhere in the token, signed part or not, is refused (and never panics).
    let taken: Vec<usize> = (0..stamp.token.len())
        .filter(|&at| {
            let mut forged = stamp.clone();
            forged.token[at] ^= 0x01;
            verify_document_stamp(sig, &forged, &anchors).is_ok()
        })
        .collect();
    assert_eq!(taken, Vec::<usize>::new(), "offsets of flips taken");

    // A wrong sibling on the path: the path leads to another root.
    let mut forged = stamp.clone();
    forged.path.steps[1].sibling = leaf_digest(b"another node");
    let err = verify_document_stamp(sig, &forged, &anchors).unwrap_err();
    assert!(
        matches!(&err, TsaError::ImprintMismatch { expected, .. } if *expected != time.root),
        "{err}"
    );
    eprintln!("wrong sibling: {err}");

    // Another document with this document's stamp.
    let err = verify_document_stamp(&sigs[6], stamp, &anchors).unwrap_err();
    assert!(matches!(err, TsaError::ImprintMismatch { .. }), "{err}");
    eprintln!("another document: {err}");

    // Anchors that are not the TSA's CA.
    let err = verify_document_stamp(sig, stamp, &self::anchors(&pki.other_ca_pem())).unwrap_err();
    assert!(
        matches!(err, TsaError::Chain(ChainError::UnknownIssuer { .. })),
        "{err}"
    );
    eprintln!("other anchors: {err}");

    // A token signed by a certificate without the timeStamping usage. `openssl ts` will not
    // sign with one, so the same TSTInfo is signed again with `openssl cms`; signed again with
    // the TSA's own certificate, it is taken (a control that the re-signing is sound).
    let token = dir.path().join("token.der");
    std::fs::write(&token, &stamp.token).unwrap();
    let tst = dir.path().join("tst.der");
    let (ok, out) = run(Command::new("openssl")
        .args([
            "cms",
            "-verify",
            "-noverify",
            "-binary",
            "-inform",
            "DER",
            "-in",
        ])
        .arg(&token)
        .arg("-out")
        .arg(&tst));
    assert!(ok, "{out}");
    let resign = |cert: &Path| -> TimeStamp {
        let out_file = dir.path().join("resigned.der");
        let (ok, out) = run(Command::new("openssl")
            .args([
                "cms",
                "-sign",
                "-binary",
                "-nodetach",
                "-nosmimecap",
                "-md",
                "sha256",
            ])
            .args([
                "-econtent_type",
                "1.2.840.113549.1.9.16.1.4",
                "-outform",
                "DER",
            ])
            .arg("-in")
            .arg(&tst)
            .arg("-signer")
            .arg(cert)
            .arg("-inkey")
            .arg(cert.with_extension("key"))
            .arg("-out")
            .arg(&out_file));
        assert!(ok, "{out}");
        TimeStamp {
            token: std::fs::read(&out_file).unwrap(),
            path: stamp.path.clone(),
        }
    };
    let control = resign(&pki.tsa_pem(Section::Ec256));
    assert_eq!(
        verify_document_stamp(sig, &control, &anchors)
            .unwrap()
            .unix_ms,
        time.unix_ms
    );
    let err = verify_document_stamp(sig, &resign(&pki.no_eku_pem()), &anchors).unwrap_err();
    assert!(
        matches!(&err, TsaError::Chain(ChainError::EkuMissing { eku, .. })
            if eku == "1.3.6.1.5.5.7.3.8"),
        "{err}"
    );
    eprintln!("no timeStamping usage: {err}");

    // The same token checked as a response to another request: the nonce is not that one.
    let err = verify_token(
        &stamp.token,
        &Expected {
            nonce: Some(&[0x01, 0x02]),
            ..Expected::root(time.root)
        },
        &anchors,
    )
    .unwrap_err();
    assert!(matches!(err, TsaError::NonceMismatch { .. }), "{err}");
}

#[test]
fn an_unreachable_or_silent_tsa_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TsaPki::create(dir.path());
    let mut server = TsaServer::start(&pki, Section::Ec256);
    let url = server.url();
    let request = BatchRequest::new(&[leaf_digest(b"one document")], None).unwrap();
    post_query(&url, request.der(), TIMEOUT).unwrap();

    // TSA down: the port refuses connections.
    server.stop();
    let err = post_query(&url, request.der(), TIMEOUT).unwrap_err();
    assert!(matches!(err, TransportError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains(&url), "{err}");
    eprintln!("TSA down: {err}");

    // A TSA that takes the connection and never answers: the time-out, not a hang.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/tsa", silent.local_addr().unwrap());
    let started = Instant::now();
    let err = post_query(&url, request.der(), Duration::from_secs(1)).unwrap_err();
    assert!(matches!(err, TransportError::TimedOut { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    eprintln!("silent TSA: {err}");
}

/// Where `needle` starts in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
