//! Signing and verification against certificates made by the PKI tool: each way a signature can
//! be wrong is refused with its own error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use lienthong_common::agency::AgencyCode;
use lienthong_common::pki::{self, IssueRequest, KeyAlgorithm, PkiError};
use lienthong_common::signing::{AgencySigner, Verifier, VerifyError};
use lienthong_common::trust::{CertError, TrustStore};
use lienthong_proto::v1::{
    AttachmentManifest, DocumentCode, Envelope, Organization, PromulgationInfo, ReceiptResponseFor,
    StatusReceipt,
};
use rustls_pki_types::UnixTime;
use time::{Duration, OffsetDateTime};

fn code(s: &str) -> AgencyCode {
    AgencyCode::parse(s).unwrap()
}

fn envelope(from: &str) -> Envelope {
    Envelope {
        id: "e-1".into(),
        from: Some(Organization {
            code: from.into(),
            name: "Sender".into(),
            ..Default::default()
        }),
        to: vec![Organization {
            code: "000.00.00.G14".into(),
            name: "B".into(),
            ..Default::default()
        }],
        code: Some(DocumentCode {
            number: "12".into(),
            notation: "UBND".into(),
        }),
        promulgation: Some(PromulgationInfo {
            place: String::new(),
            date: "2026-11-20".into(),
        }),
        subject: "Trích yếu".into(),
        attachments: vec![AttachmentManifest {
            name: "a.pdf".into(),
            size: 10,
            sha256: vec![1; 32],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn issue(dir: &Path, agency: &str, alg: KeyAlgorithm) -> AgencySigner {
    let mut req = IssueRequest::new(code(agency));
    req.algorithm = alg;
    let files = pki::issue(dir, &req).unwrap();
    AgencySigner::load(&files.cert, &files.key).unwrap()
}

fn verifier(dir: &Path) -> Verifier {
    let trust = TrustStore::load(&pki::ca_cert_path(dir), Some(&pki::crl_path(dir))).unwrap();
    Verifier::new(Arc::new(trust))
}

fn now() -> UnixTime {
    UnixTime::now()
}

#[test]
fn ecdsa_and_rsa_signatures_verify() {
    let dir = tempfile::tempdir().unwrap();
    pki::init(dir.path()).unwrap();
    for (agency, alg) in [
        ("000.00.00.H53", KeyAlgorithm::EcdsaP256),
        ("000.00.00.H49", KeyAlgorithm::Rsa2048),
    ] {
        let signer = issue(dir.path(), agency, alg);
        let mut env = envelope(agency);
        signer.sign_envelope(&mut env, 1_700_000_000_000).unwrap();
        // The trace is outside the signature: a hop may append to it.
        env.trace.push(Default::default());
        let v = verifier(dir.path()).verify_envelope(env, now()).unwrap();
        assert_eq!(v.signer().as_str(), agency);

        let mut r = StatusReceipt {
            id: "r".into(),
            from: Some(Organization {
                code: agency.into(),
                name: "x".into(),
                ..Default::default()
            }),
            response_for: Some(ReceiptResponseFor {
                organ_id: "000.00.00.G14".into(),
                envelope_id: "e".into(),
                ..Default::default()
            }),
            status: 3,
            timestamp_unix_ms: 1,
            ..Default::default()
        };
        signer.sign_receipt(&mut r, 5).unwrap();
        verifier(dir.path())
            .verify_receipt(r.clone(), now())
            .unwrap();
        r.status = 2;
        assert_eq!(
            verifier(dir.path()).verify_receipt(r, now()).unwrap_err(),
            VerifyError::BadSignature
        );
    }
}

#[test]
fn tampered_fields_and_attachment_digests_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    pki::init(dir.path()).unwrap();
    let signer = issue(dir.path(), "000.00.00.H53", KeyAlgorithm::EcdsaP256);
    let mut env = envelope("000.00.00.H53");
    signer.sign_envelope(&mut env, 1).unwrap();
    let v = verifier(dir.path());

    let mut subject = env.clone();
    subject.subject.push('!');
    assert_eq!(
        v.verify_envelope(subject, now()).unwrap_err(),
        VerifyError::BadSignature
    );

    let mut digest = env.clone();
    digest.attachments[0].sha256[31] ^= 1;
    assert_eq!(
        v.verify_envelope(digest, now()).unwrap_err(),
        VerifyError::BadSignature
    );

    let mut value = env.clone();
    if let Some(s) = value.signature.as_mut() {
        let last = s.value.len() - 1;
        s.value[last] ^= 1;
    }
    assert_eq!(
        v.verify_envelope(value, now()).unwrap_err(),
        VerifyError::BadSignature
    );

    let mut time = env.clone();
    if let Some(s) = time.signature.as_mut() {
        s.signing_unix_ms += 1;
    }
    assert_eq!(
        v.verify_envelope(time, now()).unwrap_err(),
        VerifyError::BadSignature
    );

    let mut unsigned = env;
    unsigned.signature = None;
    assert!(matches!(
        v.verify_envelope(unsigned, now()),
        Err(VerifyError::Unsigned(_))
    ));
}

#[test]
fn signer_must_be_the_header_sender() {
    let dir = tempfile::tempdir().unwrap();
    pki::init(dir.path()).unwrap();
    let signer = issue(dir.path(), "000.00.31.H53", KeyAlgorithm::EcdsaP256);
    let mut env = envelope("000.21.31.H53");
    signer.sign_envelope(&mut env, 1).unwrap();
    assert_eq!(
        verifier(dir.path())
            .verify_envelope(env, now())
            .unwrap_err(),
        VerifyError::SignerMismatch {
            header: "000.21.31.H53".into(),
            certificate: code("000.00.31.H53")
        }
    );
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    pki::init(dir.path()).unwrap();
    let mut req = IssueRequest::new(code("000.00.00.H53"));
    req.not_before = Some(OffsetDateTime::now_utc() - Duration::days(10));
    req.valid_days = 2;
    let f = pki::issue(dir.path(), &req).unwrap();
    let signer = AgencySigner::load(&f.cert, &f.key).unwrap();
    let mut env = envelope("000.00.00.H53");
    signer.sign_envelope(&mut env, 1).unwrap();
    assert_eq!(
        verifier(dir.path())
            .verify_envelope(env.clone(), now())
            .unwrap_err(),
        VerifyError::Certificate(CertError::Expired)
    );
    // Judged at a time inside its validity it verifies: the error above is the period, nothing else.
    let inside = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        (OffsetDateTime::now_utc() - Duration::days(9)).unix_timestamp() as u64,
    ));
    verifier(dir.path())
        .verify_envelope(env.clone(), inside)
        .unwrap();
    let before = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        (OffsetDateTime::now_utc() - Duration::days(11)).unix_timestamp() as u64,
    ));
    assert_eq!(
        verifier(dir.path())
            .verify_envelope(env, before)
            .unwrap_err(),
        VerifyError::Certificate(CertError::NotYetValid)
    );
}

#[test]
fn revoked_certificates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    pki::init(dir.path()).unwrap();
    let signer = issue(dir.path(), "000.00.00.H53", KeyAlgorithm::EcdsaP256);
    let other = issue(dir.path(), "000.00.00.H49", KeyAlgorithm::EcdsaP256);
    let mut env = envelope("000.00.00.H53");
    signer.sign_envelope(&mut env, 1).unwrap();
    verifier(dir.path())
        .verify_envelope(env.clone(), now())
        .unwrap();
    let serials = pki::revoke(dir.path(), &code("000.00.00.H53")).unwrap();
    assert_eq!(serials.len(), 1);
    assert_eq!(
        verifier(dir.path())
            .verify_envelope(env, now())
            .unwrap_err(),
        VerifyError::Certificate(CertError::Revoked)
    );
    // Another agency's certificate is unaffected by the CRL.
    let mut env2 = envelope("000.00.00.H49");
    other.sign_envelope(&mut env2, 1).unwrap();
    verifier(dir.path()).verify_envelope(env2, now()).unwrap();
}

#[test]
fn foreign_ca_is_refused() {
    let ours = tempfile::tempdir().unwrap();
    let theirs = tempfile::tempdir().unwrap();
    pki::init(ours.path()).unwrap();
    pki::init(theirs.path()).unwrap();
    let signer = issue(theirs.path(), "000.00.00.H53", KeyAlgorithm::EcdsaP256);
    let mut env = envelope("000.00.00.H53");
    signer.sign_envelope(&mut env, 1).unwrap();
    assert_eq!(
        verifier(ours.path())
            .verify_envelope(env, now())
            .unwrap_err(),
        VerifyError::Certificate(CertError::UnknownIssuer)
    );
}

#[test]
fn pki_tool_errors_and_key_modes() {
    let dir = tempfile::tempdir().unwrap();
    let missing = pki::issue(dir.path(), &IssueRequest::new(code("000.00.00.H53"))).unwrap_err();
    assert!(matches!(missing, PkiError::CaMissing(_)), "{missing}");
    assert!(missing.to_string().contains("pki init"));
    pki::init(dir.path()).unwrap();
    assert!(matches!(pki::init(dir.path()), Err(PkiError::CaExists(_))));
    let f = pki::issue(dir.path(), &IssueRequest::new(code("000.00.00.H53"))).unwrap();
    for key in [f.key.clone(), pki::ca_key_path(dir.path())] {
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", key.display());
    }
    assert!(matches!(
        pki::issue(dir.path(), &IssueRequest::new(code("000.00.00.H53"))),
        Err(PkiError::CertificateExists { .. })
    ));
    assert!(matches!(
        pki::revoke(dir.path(), &code("000.00.00.H01")),
        Err(PkiError::NotIssued(_))
    ));
    assert!(AgencyCode::parse("000.00.00.h53").is_err());
    let list = pki::list(dir.path()).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].serial, f.serial);
}

#[test]
fn key_must_match_certificate() {
    let dir = tempfile::tempdir().unwrap();
    pki::init(dir.path()).unwrap();
    let a = pki::issue(dir.path(), &IssueRequest::new(code("000.00.00.H53"))).unwrap();
    let b = pki::issue(dir.path(), &IssueRequest::new(code("000.00.00.H49"))).unwrap();
    let err = AgencySigner::load(&a.cert, &b.key).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[test]
fn a_certificate_signed_for_a_request_serves_the_key_that_made_it() {
    let dir = tempfile::tempdir().unwrap();
    pki::init(dir.path()).unwrap();
    let node = tempfile::tempdir().unwrap();
    let key = node.path().join("000.00.00.H53.key");
    let csr_path = node.path().join("000.00.00.H53.csr");
    let csr = pki::make_csr(
        &code("000.00.00.H53"),
        Some("UBND tỉnh Tây Ninh"),
        KeyAlgorithm::EcdsaP256,
        &["relay.tayninh.example.vn".into(), "10.0.0.5".into()],
    )
    .unwrap();
    csr.save(&key, &csr_path).unwrap();
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The key is never overwritten.
    assert!(csr.save(&key, &csr_path).is_err());

    let signed =
        pki::sign_csr(dir.path(), &std::fs::read_to_string(&csr_path).unwrap(), 30).unwrap();
    assert_eq!(signed.agency.as_str(), "000.00.00.H53");
    let signer = AgencySigner::load(&signed.cert, &key).unwrap();
    let mut env = envelope("000.00.00.H53");
    signer.sign_envelope(&mut env, 1_700_000_000_000).unwrap();
    let v = verifier(dir.path()).verify_envelope(env, now()).unwrap();
    assert_eq!(v.signer().as_str(), "000.00.00.H53");
    assert_eq!(pki::list(dir.path()).unwrap()[0].serial, signed.serial);

    // A second request for the same agency is refused while its certificate is there.
    let again = pki::make_csr(&code("000.00.00.H53"), None, KeyAlgorithm::EcdsaP256, &[])
        .unwrap()
        .csr_pem;
    assert!(matches!(
        pki::sign_csr(dir.path(), &again, 30),
        Err(PkiError::CertificateExists { .. })
    ));
    // A request whose bytes were changed after signing is refused.
    let bad = pki::make_csr(&code("000.00.00.H49"), None, KeyAlgorithm::EcdsaP256, &[])
        .unwrap()
        .csr_pem;
    let mut lines: Vec<String> = bad.lines().map(str::to_owned).collect();
    let mid = lines.len() / 2;
    let changed: String = lines[mid]
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 10 {
                if c == 'A' {
                    'B'
                } else {
                    'A'
                }
            } else {
                c
            }
        })
        .collect();
    lines[mid] = changed;
    let err = pki::sign_csr(dir.path(), &lines.join("\n"), 30).unwrap_err();
    assert!(matches!(err, PkiError::Csr(_)), "{err}");
}
