//! A file-based interchange certificate authority for development and tests (`lt-relay pki`).
//!
//! Layout of a PKI directory:
//! - `ca.pem`, `ca.key`: the interchange CA (ECDSA P-256), key mode 0600;
//! - `ca.crl`: the CA's revocation list (PEM), rewritten on every revocation;
//! - `index.json`: every certificate issued (agency, serial, expiry, revocation time);
//! - `<agency>.pem`, `<agency>.key`: a node certificate and its key (mode 0600).
//!
//! A node certificate names its agency twice: as the subject common name and as the SAN URI
//! `urn:lienthong:agency:<code>` (the authoritative place, read by [`crate::trust`]). It carries
//! `digitalSignature` (+ `keyEncipherment`) and both `serverAuth` and `clientAuth`, so one
//! certificate serves the link's TLS in both directions and signs documents. It also carries the
//! DNS names `localhost` and the IP 127.0.0.1 so development tools can reach a node by address.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams,
    CertificateSigningRequestParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::agency::{AgencyCode, AgencyCodeError};

/// The SAN URI prefix under which a certificate names its agency.
pub const AGENCY_URI_PREFIX: &str = "urn:lienthong:agency:";
/// Default validity of a node certificate.
pub const DEFAULT_NODE_VALIDITY_DAYS: i64 = 825;
/// Validity of the CA certificate.
pub const CA_VALIDITY_DAYS: i64 = 3650;
/// How long a freshly written CRL is valid (its nextUpdate).
pub const CRL_VALIDITY_DAYS: i64 = 7;

/// Errors of the PKI tool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// `init` on a directory that already has a CA.
    #[error("{0} already holds an interchange CA (ca.pem); refusing to overwrite it")]
    CaExists(PathBuf),
    /// No CA in the directory.
    #[error("no interchange CA in {0}: run `lt-relay pki init --dir {0}` first")]
    CaMissing(PathBuf),
    /// The certificate for this agency was already issued.
    #[error("a certificate for {agency} already exists at {path}; revoke it and remove the file to reissue")]
    CertificateExists {
        /// The agency.
        agency: AgencyCode,
        /// Where it is.
        path: PathBuf,
    },
    /// Revoking an agency that has no certificate in the index.
    #[error("no certificate for {0} in this PKI's index")]
    NotIssued(AgencyCode),
    /// Bad agency code.
    #[error("bad agency code: {0}")]
    Agency(#[from] AgencyCodeError),
    /// File access.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Certificate or key generation.
    #[error("certificate generation failed: {0}")]
    Generate(String),
    /// A certificate signing request that cannot be used.
    #[error("certificate signing request: {0}")]
    Csr(String),
    /// The index file is corrupt.
    #[error("{path}: unreadable index: {reason}")]
    Index {
        /// The file.
        path: PathBuf,
        /// Parser's explanation.
        reason: String,
    },
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError::Generate(e.to_string())
    }
}

/// Key algorithm of an issued certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 with SHA-256 (the default).
    EcdsaP256,
    /// RSA-2048, PKCS#1 v1.5 with SHA-256 (what the government CA issues).
    Rsa2048,
}

/// One entry of `index.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedCert {
    /// Agency named by the certificate.
    pub agency: AgencyCode,
    /// Serial number, hex.
    pub serial: String,
    /// Expiry, unix seconds.
    pub not_after: i64,
    /// Revocation time, unix seconds.
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    crl_number: u64,
    certs: Vec<IssuedCert>,
}

/// What to issue.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// The agency the certificate names.
    pub agency: AgencyCode,
    /// Organisation name (subject O); defaults to the code.
    pub name: Option<String>,
    /// Key algorithm.
    pub algorithm: KeyAlgorithm,
    /// Start of validity (default: an hour ago, to absorb clock skew).
    pub not_before: Option<OffsetDateTime>,
    /// Length of validity in days.
    pub valid_days: i64,
}

impl IssueRequest {
    /// A default request for `agency`: ECDSA P-256, valid [`DEFAULT_NODE_VALIDITY_DAYS`].
    pub fn new(agency: AgencyCode) -> Self {
        Self {
            agency,
            name: None,
            algorithm: KeyAlgorithm::EcdsaP256,
            not_before: None,
            valid_days: DEFAULT_NODE_VALIDITY_DAYS,
        }
    }
}

/// Paths of an issued certificate and key.
#[derive(Debug, Clone)]
pub struct IssuedFiles {
    /// Certificate (PEM).
    pub cert: PathBuf,
    /// Private key (PKCS#8 PEM, mode 0600).
    pub key: PathBuf,
    /// Serial, hex.
    pub serial: String,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write_file(path: &Path, contents: &str, mode: u32, create_new: bool) -> Result<(), PkiError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).mode(mode);
    if create_new {
        opts.create_new(true);
    } else {
        opts.create(true).truncate(true);
    }
    let mut f = opts.open(path).map_err(io_err(path))?;
    f.write_all(contents.as_bytes()).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// File names of the CA parts inside a PKI directory.
pub fn ca_cert_path(dir: &Path) -> PathBuf {
    dir.join("ca.pem")
}
/// Path of the CA key.
pub fn ca_key_path(dir: &Path) -> PathBuf {
    dir.join("ca.key")
}
/// Path of the CRL.
pub fn crl_path(dir: &Path) -> PathBuf {
    dir.join("ca.crl")
}
/// Path of a node's certificate.
pub fn node_cert_path(dir: &Path, agency: &AgencyCode) -> PathBuf {
    dir.join(format!("{agency}.pem"))
}
/// Path of a node's key.
pub fn node_key_path(dir: &Path, agency: &AgencyCode) -> PathBuf {
    dir.join(format!("{agency}.key"))
}

fn random_serial() -> SerialNumber {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // and no leading zero byte to normalise away
    SerialNumber::from_slice(&bytes)
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "lienthong interchange CA");
    dn.push(DnType::OrganizationName, "lienthong");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.key_identifier_method = KeyIdMethod::Sha256;
    p
}

/// Creates a new interchange CA in `dir` (created if absent) with an empty CRL.
pub fn init(dir: &Path) -> Result<(), PkiError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    if ca_cert_path(dir).exists() {
        return Err(PkiError::CaExists(dir.to_owned()));
    }
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = ca_params();
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(CA_VALIDITY_DAYS);
    params.serial_number = Some(random_serial());
    let cert = params.self_signed(&key)?;
    write_file(&ca_key_path(dir), &key.serialize_pem(), 0o600, true)?;
    write_file(&ca_cert_path(dir), &cert.pem(), 0o644, true)?;
    let mut index = Index::default();
    write_crl(dir, &mut index)?;
    Ok(())
}

struct LoadedCa {
    cert_pem: String,
    key: KeyPair,
}

fn load_ca(dir: &Path) -> Result<LoadedCa, PkiError> {
    let cert_path = ca_cert_path(dir);
    if !cert_path.exists() {
        return Err(PkiError::CaMissing(dir.to_owned()));
    }
    let cert_pem = fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?;
    let key_path = ca_key_path(dir);
    let key_pem = fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
    let key = KeyPair::from_pem(&key_pem)?;
    Ok(LoadedCa { cert_pem, key })
}

fn load_index(dir: &Path) -> Result<Index, PkiError> {
    let path = dir.join("index.json");
    match fs::read_to_string(&path) {
        Ok(s) => serde_json::from_str(&s).map_err(|e| PkiError::Index {
            path,
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
        Err(source) => Err(PkiError::Io { path, source }),
    }
}

fn save_index(dir: &Path, index: &Index) -> Result<(), PkiError> {
    let path = dir.join("index.json");
    let text = serde_json::to_string_pretty(index).map_err(|e| PkiError::Index {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    write_file(&path, &text, 0o644, false)
}

fn write_crl(dir: &Path, index: &mut Index) -> Result<(), PkiError> {
    let ca = load_ca(dir)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, &ca.key)?;
    index.crl_number += 1;
    let now = OffsetDateTime::now_utc();
    let mut revoked = Vec::new();
    for c in &index.certs {
        if let Some(at) = c.revoked_at {
            let serial = hex::decode(&c.serial).map_err(|e| PkiError::Index {
                path: dir.join("index.json"),
                reason: format!("serial of {}: {e}", c.agency),
            })?;
            revoked.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                revocation_time: OffsetDateTime::from_unix_timestamp(at).unwrap_or(now),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            });
        }
    }
    let params = CertificateRevocationListParams {
        this_update: now - Duration::minutes(5),
        next_update: now + Duration::days(CRL_VALIDITY_DAYS),
        crl_number: SerialNumber::from(index.crl_number),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(&issuer)?;
    write_file(&crl_path(dir), &crl.pem()?, 0o644, false)?;
    save_index(dir, index)
}

fn generate_key(alg: KeyAlgorithm) -> Result<KeyPair, PkiError> {
    match alg {
        KeyAlgorithm::EcdsaP256 => Ok(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?),
        KeyAlgorithm::Rsa2048 => {
            use rsa::pkcs8::EncodePrivateKey;
            // ring cannot generate RSA keys; the `rsa` crate does, and ring then uses them.
            let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048)
                .map_err(|e| PkiError::Generate(format!("RSA key generation: {e}")))?;
            let der = key
                .to_pkcs8_der()
                .map_err(|e| PkiError::Generate(format!("RSA key encoding: {e}")))?;
            let pkcs8 = rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_bytes());
            Ok(KeyPair::from_pkcs8_der_and_sign_algo(
                &pkcs8,
                &rcgen::PKCS_RSA_SHA256,
            )?)
        }
    }
}

/// Issues a node certificate for `req.agency`, signed by the CA in `dir`.
pub fn issue(dir: &Path, req: &IssueRequest) -> Result<IssuedFiles, PkiError> {
    let ca = load_ca(dir)?;
    let cert_path = node_cert_path(dir, &req.agency);
    let key_path = node_key_path(dir, &req.agency);
    if cert_path.exists() {
        return Err(PkiError::CertificateExists {
            agency: req.agency.clone(),
            path: cert_path,
        });
    }
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, &ca.key)?;
    let key = generate_key(req.algorithm)?;
    let not_before = req
        .not_before
        .unwrap_or_else(|| OffsetDateTime::now_utc() - Duration::hours(1));
    let loopback = vec![
        SanType::DnsName("localhost".try_into()?),
        SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])),
    ];
    let mut params = node_params(
        &req.agency,
        req.name.as_deref(),
        loopback,
        not_before,
        req.valid_days,
    )?;
    let serial = random_serial();
    let serial_hex = hex::encode(serial.to_bytes());
    params.serial_number = Some(serial);
    let cert = params.signed_by(&key, &issuer)?;

    write_file(&key_path, &key.serialize_pem(), 0o600, false)?;
    record_issued(dir, &req.agency, &serial_hex, &params, &cert.pem())?;
    Ok(IssuedFiles {
        cert: cert_path,
        key: key_path,
        serial: serial_hex,
    })
}

/// The profile of every node certificate: the agency as subject CN and as the SAN URI, its name
/// as subject O, `sans` besides, digitalSignature + keyEncipherment, serverAuth + clientAuth.
fn node_params(
    agency: &AgencyCode,
    name: Option<&str>,
    sans: Vec<SanType>,
    not_before: OffsetDateTime,
    valid_days: i64,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, agency.as_str());
    dn.push(DnType::OrganizationName, name.unwrap_or(agency.as_str()));
    params.distinguished_name = dn;
    let uri = format!("{AGENCY_URI_PREFIX}{agency}");
    params.subject_alt_names = vec![SanType::URI(uri.try_into()?)];
    params.subject_alt_names.extend(sans);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_before + Duration::days(valid_days);
    Ok(params)
}

/// Writes an issued certificate as `dir/<agency>.pem` and records it in the index.
fn record_issued(
    dir: &Path,
    agency: &AgencyCode,
    serial_hex: &str,
    params: &CertificateParams,
    cert_pem: &str,
) -> Result<(), PkiError> {
    write_file(&node_cert_path(dir, agency), cert_pem, 0o644, true)?;
    let mut index = load_index(dir)?;
    index.certs.push(IssuedCert {
        agency: agency.clone(),
        serial: serial_hex.to_owned(),
        not_after: params.not_after.unix_timestamp(),
        revoked_at: None,
    });
    save_index(dir, &index)
}

/// A node's new key and its certificate signing request (both PEM).
#[derive(Debug, Clone)]
pub struct NodeCsr {
    /// The private key (PKCS#8): stays on the node.
    pub key_pem: String,
    /// The request: goes to the CA.
    pub csr_pem: String,
}

impl NodeCsr {
    /// Writes the key (mode 0600) and the request (0644); refuses to overwrite either.
    pub fn save(&self, key: &Path, csr: &Path) -> Result<(), PkiError> {
        for p in [key, csr] {
            if p.exists() {
                return Err(PkiError::Io {
                    path: p.to_owned(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "already exists; move it away first (a key is never overwritten)",
                    ),
                });
            }
        }
        write_file(key, &self.key_pem, 0o600, true)?;
        write_file(csr, &self.csr_pem, 0o644, true)
    }
}

/// Makes a key and a certificate signing request for a node of `agency`, naming it as the
/// node certificate profile does (subject CN and SAN URI, `localhost` and 127.0.0.1), and
/// `hosts` (DNS names or IP addresses the node is reached at) as further SANs.
pub fn make_csr(
    agency: &AgencyCode,
    name: Option<&str>,
    algorithm: KeyAlgorithm,
    hosts: &[String],
) -> Result<NodeCsr, PkiError> {
    let key = generate_key(algorithm)?;
    // As `issue` does: the local API serves this certificate, and its clients reach it there.
    let mut sans = vec![
        SanType::DnsName("localhost".try_into()?),
        SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])),
    ];
    for h in hosts
        .iter()
        .filter(|h| !matches!(h.as_str(), "localhost" | "127.0.0.1"))
    {
        sans.push(host_san(h)?);
    }
    // A request carries the names only; validity and usages are the CA's to set.
    let profile = node_params(agency, name, sans, OffsetDateTime::now_utc(), 1)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = profile.distinguished_name;
    params.subject_alt_names = profile.subject_alt_names;
    let csr = params.serialize_request(&key)?;
    Ok(NodeCsr {
        key_pem: key.serialize_pem(),
        csr_pem: csr.pem()?,
    })
}

fn host_san(host: &str) -> Result<SanType, PkiError> {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(SanType::IpAddress(ip)),
        Err(_) => Ok(SanType::DnsName(host.try_into().map_err(|_| {
            PkiError::Csr(format!("{host:?} is neither an IP address nor a DNS name"))
        })?)),
    }
}

/// What [`sign_csr`] issued.
#[derive(Debug, Clone)]
pub struct SignedCsr {
    /// The agency the certificate names.
    pub agency: AgencyCode,
    /// Where the CA wrote it (`dir/<agency>.pem`).
    pub cert: PathBuf,
    /// Serial, hex.
    pub serial: String,
}

/// Issues a node certificate for a certificate signing request, with the CA in `dir`.
///
/// The request's signature must verify (it proves the key), and the request must name one
/// agency: as its SAN URI `urn:lienthong:agency:<code>`, else as its subject CN. The certificate
/// follows the node profile whatever the request asks for (usages are the CA's decision); of
/// the request it keeps the public key, the subject O and the DNS and IP SANs.
pub fn sign_csr(dir: &Path, csr_pem: &str, valid_days: i64) -> Result<SignedCsr, PkiError> {
    let ca = load_ca(dir)?;
    let request = CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| PkiError::Csr(format!("unreadable or badly signed: {e}")))?;
    let agency = requested_agency(&request.params)?;
    let cert_path = node_cert_path(dir, &agency);
    if cert_path.exists() {
        return Err(PkiError::CertificateExists {
            agency,
            path: cert_path,
        });
    }
    let name = request
        .params
        .distinguished_name
        .get(&DnType::OrganizationName)
        .and_then(dn_text);
    let hosts: Vec<SanType> = request
        .params
        .subject_alt_names
        .iter()
        .filter(|s| matches!(s, SanType::DnsName(_) | SanType::IpAddress(_)))
        .cloned()
        .collect();
    let not_before = OffsetDateTime::now_utc() - Duration::hours(1);
    let mut params = node_params(&agency, name.as_deref(), hosts, not_before, valid_days)?;
    let serial = random_serial();
    let serial_hex = hex::encode(serial.to_bytes());
    params.serial_number = Some(serial);
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, &ca.key)?;
    let cert = CertificateSigningRequestParams {
        params: params.clone(),
        public_key: request.public_key,
    }
    .signed_by(&issuer)?;
    record_issued(dir, &agency, &serial_hex, &params, &cert.pem())?;
    Ok(SignedCsr {
        agency,
        cert: cert_path,
        serial: serial_hex,
    })
}

fn dn_text(v: &rcgen::DnValue) -> Option<String> {
    match v {
        rcgen::DnValue::Utf8String(s) => Some(s.clone()),
        rcgen::DnValue::PrintableString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// The agency a request names: its SAN URI, else its subject CN.
fn requested_agency(params: &CertificateParams) -> Result<AgencyCode, PkiError> {
    let from_uri = params.subject_alt_names.iter().find_map(|s| match s {
        SanType::URI(u) => u
            .as_str()
            .strip_prefix(AGENCY_URI_PREFIX)
            .map(str::to_owned),
        _ => None,
    });
    let code = from_uri
        .or_else(|| {
            params
                .distinguished_name
                .get(&DnType::CommonName)
                .and_then(dn_text)
        })
        .ok_or_else(|| {
            PkiError::Csr(format!(
                "names no agency (neither a SAN URI {AGENCY_URI_PREFIX}<code> nor a subject CN)"
            ))
        })?;
    Ok(AgencyCode::parse(&code)?)
}

/// Revokes every unrevoked certificate of `agency` and rewrites the CRL. Returns the serials.
pub fn revoke(dir: &Path, agency: &AgencyCode) -> Result<Vec<String>, PkiError> {
    load_ca(dir)?;
    let mut index = load_index(dir)?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let mut serials = Vec::new();
    for c in index.certs.iter_mut().filter(|c| &c.agency == agency) {
        if c.revoked_at.is_none() {
            c.revoked_at = Some(now);
            serials.push(c.serial.clone());
        }
    }
    if serials.is_empty() && !index.certs.iter().any(|c| &c.agency == agency) {
        return Err(PkiError::NotIssued(agency.clone()));
    }
    write_crl(dir, &mut index)?;
    Ok(serials)
}

/// The index of issued certificates.
pub fn list(dir: &Path) -> Result<Vec<IssuedCert>, PkiError> {
    load_ca(dir)?;
    Ok(load_index(dir)?.certs)
}
