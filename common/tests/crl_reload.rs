//! A running trust store takes up a new CRL file: revocations apply at once to chain checks,
//! and a file that is no CRL of this CA, or an older one, never replaces the CRL in force.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use lienthong_common::agency::AgencyCode;
use lienthong_common::pki::{self, IssueRequest};
use lienthong_common::trust::{CertError, CrlReload, TrustStore, Usage};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};

fn chain(dir: &std::path::Path, agency: &AgencyCode) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(pki::node_cert_path(dir, agency))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_new_crl_revokes_at_once_and_a_bad_one_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let a = AgencyCode::parse("000.00.00.H53").unwrap();
    pki::init(dir.path()).unwrap();
    pki::issue(dir.path(), &IssueRequest::new(a.clone())).unwrap();
    pki::init(other.path()).unwrap();
    let trust = TrustStore::load(
        &pki::ca_cert_path(dir.path()),
        Some(&pki::crl_path(dir.path())),
    )
    .unwrap();
    let g0 = trust.generation();
    let certs = chain(dir.path(), &a);
    let check = || trust.verify_chain(&certs, Usage::TlsClient, UnixTime::now());
    assert!(check().is_ok());
    assert_eq!(trust.reload_crl().unwrap(), CrlReload::Unchanged);

    // Another CA's CRL: refused, nothing changes.
    std::fs::copy(pki::crl_path(other.path()), pki::crl_path(dir.path())).unwrap();
    let e = trust.reload_crl().unwrap_err().to_string();
    // Same subject name as ours (both made by `pki init`): the signature tells them apart.
    assert!(
        e.contains("not by the CA") || e.contains("does not verify with the CA's key"),
        "{e}"
    );
    assert_eq!(trust.generation(), g0);

    // The CA revokes the agency (the file is rewritten): in force at the next look.
    std::thread::sleep(std::time::Duration::from_millis(20));
    pki::revoke(dir.path(), &a).unwrap();
    assert_eq!(
        trust.reload_crl().unwrap(),
        CrlReload::Replaced { revoked: 1 }
    );
    assert!(trust.generation() > g0);
    assert_eq!(check().unwrap_err(), CertError::Revoked);

    // Garbage in the file: refused, and the revocation stays in force.
    std::fs::write(pki::crl_path(dir.path()), b"garbage").unwrap();
    assert!(trust.reload_crl().is_err());
    assert_eq!(check().unwrap_err(), CertError::Revoked);
}
