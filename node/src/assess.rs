//! `lt-relay assess`: checks a node against the requirements of a security level (NĐ 85/2016,
//! five levels; the checklist and its sources are in docs/security-levels.md). Each requirement
//! is reported met or not met with the evidence found; a node reports its own result to its
//! parent with its self-attestation.

use std::path::{Path, PathBuf};

use lienthong_common::config::NodeConfig;
use lienthong_common::signing::AgencySigner;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

/// Backup files written by a node: `<agency>-<time>.ltbak` in `[backup] dir`.
pub const BACKUP_EXTENSION: &str = "ltbak";

/// One requirement and what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable identifier (docs/security-levels.md).
    pub id: String,
    /// The requirement at the level asked.
    pub requirement: String,
    /// The same in Vietnamese.
    pub requirement_vi: String,
    /// Whether the node meets it.
    pub met: bool,
    /// What was found.
    pub evidence: String,
}

/// The result of an assessment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    /// The node's agency.
    pub agency: String,
    /// Level assessed against.
    pub level: u8,
    /// Every requirement of that level, in checklist order.
    pub checks: Vec<Check>,
    /// Requirements met.
    pub met: usize,
    /// Requirements checked.
    pub total: usize,
}

impl Assessment {
    /// Whether every requirement is met.
    pub fn passed(&self) -> bool {
        self.met == self.total
    }
}

/// What the audit log check found (read through the API or from the store by the caller).
#[derive(Debug, Clone)]
pub enum AuditState {
    /// The chain verifies, with this many records.
    Intact(u64),
    /// The chain is broken: the first bad record.
    Broken(String),
    /// The log could not be read.
    Unreadable(String),
}

/// Online audit-log retention each level needs, days (a guide from the sector rule quoted in
/// EDXML.md: a month at level 2, three months at level 3 and above).
pub fn log_retention_days_needed(level: u8) -> u32 {
    match level {
        0 | 1 => 0,
        2 => 30,
        _ => 90,
    }
}

/// Backup history each level needs, days (six months at level 2, a year at 3 and above).
pub fn backup_retention_days_needed(level: u8) -> u32 {
    match level {
        0 | 1 => 0,
        2 => 180,
        _ => 365,
    }
}

/// Smallest RSA modulus accepted at a level, bits.
pub fn rsa_bits_needed(level: u8) -> usize {
    if level >= 4 {
        3072
    } else {
        2048
    }
}

fn days_between(from_unix: i64, to_unix: i64) -> i64 {
    (to_unix - from_unix).div_euclid(86_400)
}

fn date_text(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| lienthong_common::envelope::format_date(t.date()))
        .unwrap_or_else(|_| unix.to_string())
}

struct Checklist {
    level: u8,
    checks: Vec<Check>,
}

impl Checklist {
    /// Adds requirement `id` (its text in English and Vietnamese) at levels from `min_level`.
    fn add(
        &mut self,
        min_level: u8,
        id: &str,
        (requirement, requirement_vi): (String, String),
        result: (bool, String),
    ) {
        if self.level >= min_level {
            self.checks.push(Check {
                id: id.to_owned(),
                requirement,
                requirement_vi,
                met: result.0,
                evidence: result.1,
            });
        }
    }
}

/// `notBefore` and `notAfter` (unix seconds) of the first certificate in a PEM file.
pub fn certificate_validity(path: &Path) -> Result<(i64, i64), String> {
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let der = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
        .next()
        .ok_or_else(|| "no certificate in the file".to_owned())?
        .map_err(|e| e.to_string())?;
    x509_parser::parse_x509_certificate(&der)
        .map(|(_, c)| {
            (
                c.validity().not_before.timestamp(),
                c.validity().not_after.timestamp(),
            )
        })
        .map_err(|e| e.to_string())
}

/// `thisUpdate` and `nextUpdate` (unix seconds) of the first CRL in a PEM file.
pub fn crl_dates(path: &Path) -> Result<(i64, Option<i64>), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    // PEM or DER, as the node accepts.
    let der = match rustls_pki_types::CertificateRevocationListDer::pem_slice_iter(&bytes).next() {
        Some(r) => r.map_err(|e| e.to_string())?.as_ref().to_vec(),
        None => bytes,
    };
    x509_parser::parse_x509_crl(&der)
        .map(|(_, c)| {
            (
                c.last_update().timestamp(),
                c.next_update().map(|t| t.timestamp()),
            )
        })
        .map_err(|e| e.to_string())
}

/// Every key file of the node: its own and its `[[local]]` agencies', with their certificates.
pub fn key_pairs(cfg: &NodeConfig) -> Vec<(String, PathBuf, PathBuf)> {
    let mut v = vec![(
        cfg.agency.to_string(),
        cfg.tls.cert.clone(),
        cfg.tls.key.clone(),
    )];
    v.extend(
        cfg.local
            .iter()
            .map(|l| (l.agency.to_string(), l.cert.clone(), l.key.clone())),
    );
    v
}

fn check_keys(cfg: &NodeConfig, level: u8) -> (bool, String) {
    let mut ok = true;
    let mut found = Vec::new();
    for (agency, cert, key) in key_pairs(cfg) {
        match AgencySigner::load_with(&cert, &key, &cfg.tls.agency_in) {
            Ok(s) => {
                let bits = s.key_bits();
                let good = match s.algorithm() {
                    lienthong_common::signing::ALG_RSA_PKCS1_SHA256 => {
                        bits >= rsa_bits_needed(level)
                    }
                    _ => true,
                };
                ok &= good;
                let name = if s.algorithm() == lienthong_common::signing::ALG_RSA_PKCS1_SHA256 {
                    format!("RSA {bits}")
                } else {
                    "ECDSA P-256".to_owned()
                };
                found.push(format!(
                    "{agency}: {name}{}",
                    if good { "" } else { " (too short)" }
                ));
            }
            Err(e) => {
                ok = false;
                found.push(format!("{agency}: unreadable ({e})"));
            }
        }
    }
    (ok, found.join("; "))
}

/// A file's permission bits.
#[cfg(unix)]
pub fn mode_of(p: &Path) -> std::io::Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(p)?.permissions().mode() & 0o777)
}

/// A file's permission bits (no such bits here: taken as private).
#[cfg(not(unix))]
pub fn mode_of(_: &Path) -> std::io::Result<u32> {
    Ok(0o600)
}

fn check_key_permissions(cfg: &NodeConfig) -> (bool, String) {
    let mut ok = true;
    let mut found = Vec::new();
    for (_, _, key) in key_pairs(cfg) {
        match mode_of(&key) {
            Ok(m) => {
                let good = m & 0o077 == 0;
                ok &= good;
                found.push(format!(
                    "{:04o} {}{}",
                    m,
                    key.display(),
                    if good {
                        ""
                    } else {
                        " (readable by group or others)"
                    }
                ));
            }
            Err(e) => {
                ok = false;
                found.push(format!("{}: {e}", key.display()));
            }
        }
    }
    (ok, found.join("; "))
}

fn check_certificates(cfg: &NodeConfig, now: i64) -> (bool, String) {
    let margin = i64::from(cfg.security.expiry_warning_days);
    let mut files: Vec<(String, PathBuf)> =
        key_pairs(cfg).into_iter().map(|(a, c, _)| (a, c)).collect();
    files.push(("interchange CA".to_owned(), cfg.tls.ca.clone()));
    let mut ok = true;
    let mut found = Vec::new();
    for (who, path) in files {
        match certificate_validity(&path) {
            Ok((not_before, not_after)) => {
                let left = days_between(now, not_after);
                let good = not_before <= now && left > margin;
                ok &= good;
                found.push(format!(
                    "{who}: valid until {} ({left} days left)",
                    date_text(not_after)
                ));
            }
            Err(e) => {
                ok = false;
                found.push(format!("{who}: {}: {e}", path.display()));
            }
        }
    }
    (ok, found.join("; "))
}

fn check_crl(cfg: &NodeConfig, now: i64) -> (bool, String) {
    let tls = &cfg.tls;
    let fetched = !tls.crl_urls.is_empty() || tls.crl_distribution_points;
    if tls.crls.is_empty() && !fetched {
        return (
            false,
            "no [tls] crl, crls or crl_urls: revoked certificates would be accepted".to_owned(),
        );
    }
    let mut ok = true;
    let mut found = Vec::new();
    for path in &tls.crls {
        match all_crl_dates(path) {
            Ok(dates) => {
                for (this, next) in dates {
                    match next {
                        Some(next) if next <= now => {
                            ok = false;
                            found.push(format!(
                                "{}: stale since {}",
                                path.display(),
                                date_text(next)
                            ));
                        }
                        Some(next) => found.push(format!(
                            "{}: issued {}, next update {}",
                            path.display(),
                            date_text(this),
                            date_text(next)
                        )),
                        None => found.push(format!(
                            "{}: issued {}, no next update",
                            path.display(),
                            date_text(this)
                        )),
                    }
                }
            }
            Err(e) => {
                ok = false;
                found.push(format!("{}: unreadable: {e}", path.display()));
            }
        }
    }
    if fetched {
        found.push(format!(
            "fetched every {} s from {}{}",
            tls.crl_fetch_every.as_secs(),
            if tls.crl_urls.is_empty() {
                "the certificates' distribution points".to_owned()
            } else {
                tls.crl_urls.join(", ")
            },
            if tls.crl_urls.is_empty() || !tls.crl_distribution_points {
                ""
            } else {
                " and the certificates' distribution points"
            }
        ));
    }
    (ok, found.join("; "))
}

/// thisUpdate and nextUpdate of every CRL in a file (PEM with one or more, or one DER).
fn all_crl_dates(path: &Path) -> Result<Vec<(i64, Option<i64>)>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let ders: Vec<Vec<u8>> =
        match rustls_pki_types::CertificateRevocationListDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(v) if !v.is_empty() => v.into_iter().map(|d| d.as_ref().to_vec()).collect(),
            _ => vec![bytes],
        };
    ders.iter()
        .map(|der| {
            x509_parser::parse_x509_crl(der)
                .map(|(_, c)| {
                    (
                        c.last_update().timestamp(),
                        c.next_update().map(|t| t.timestamp()),
                    )
                })
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// The filesystem type holding `path` (nearest existing ancestor), from /proc/self/mounts.
fn filesystem_of(path: &Path) -> Option<(String, String)> {
    let mut p = path.to_path_buf();
    while !p.exists() {
        p = p.parent()?.to_path_buf();
    }
    let p = std::fs::canonicalize(&p).ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let _dev = f.next()?;
            let mount = f.next()?.replace("\\040", " ");
            let fstype = f.next()?;
            Some((mount, fstype.to_owned()))
        })
        .filter(|(m, _)| p.starts_with(m))
        .max_by_key(|(m, _)| m.len())
}

fn check_store(cfg: &NodeConfig) -> (bool, String) {
    let volatile = ["tmpfs", "ramfs"];
    match filesystem_of(&cfg.data_dir) {
        Some((mount, fs)) if volatile.contains(&fs.as_str()) => (
            false,
            format!(
                "{} is on {fs} ({mount}): lost at reboot",
                cfg.data_dir.display()
            ),
        ),
        Some((mount, fs)) => (
            true,
            format!(
                "{} on {fs} ({mount}); every acknowledgement waits for the store's fsync",
                cfg.data_dir.display()
            ),
        ),
        None => (
            true,
            format!(
                "{}: filesystem not determined; every acknowledgement waits for the store's fsync",
                cfg.data_dir.display()
            ),
        ),
    }
}

fn newest_backup(dir: &Path) -> Option<(PathBuf, std::time::SystemTime)> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == BACKUP_EXTENSION))
        .filter_map(|e| Some((e.path(), e.metadata().ok()?.modified().ok()?)))
        .max_by_key(|(_, t)| *t)
}

fn check_backups(cfg: &NodeConfig, level: u8) -> (bool, String) {
    let Some(b) = &cfg.backup else {
        return (false, "no [backup] section".to_owned());
    };
    let hours = b.interval.as_secs() / 3600;
    let history_days = u64::from(b.keep) * hours / 24;
    let needed = u64::from(backup_retention_days_needed(level));
    let mut ok = history_days >= needed;
    let mut found = vec![format!(
        "every {hours} h into {}, {} kept (≈{history_days} days{})",
        b.dir.display(),
        b.keep,
        if ok {
            String::new()
        } else {
            format!("; level {level} needs {needed}")
        }
    )];
    let usable = if b.dir.exists() {
        b.dir.is_dir()
    } else {
        b.dir.parent().is_some_and(Path::exists)
    };
    if !usable {
        ok = false;
        found.push("the directory cannot be created (its parent does not exist)".to_owned());
    }
    match newest_backup(&b.dir) {
        Some((path, t)) => {
            let age = t.elapsed().map(|d| d.as_secs()).unwrap_or(0);
            let fresh = age <= 2 * b.interval.as_secs();
            ok &= fresh;
            found.push(format!(
                "newest {} ({} h old{})",
                path.display(),
                age / 3600,
                if fresh { "" } else { ", overdue" }
            ));
        }
        None => found.push("no backup written yet".to_owned()),
    }
    (ok, found.join("; "))
}

fn check_api(cfg: &NodeConfig) -> (bool, String) {
    let clients = cfg.api_clients.len();
    match cfg.api {
        None => (true, "no local API".to_owned()),
        Some(a) if clients > 0 => (
            true,
            format!("bound to {a}; {clients} [[api_client]] entries, every route but the open monitoring ones needs a credential"),
        ),
        Some(a) if a.ip().is_loopback() => (
            true,
            format!("bound to {a} (loopback), no authentication"),
        ),
        Some(a) => (
            false,
            format!("bound to {a} with no [[api_client]]: add clients or bind it to loopback"),
        ),
    }
}

fn check_api_tls_auth(cfg: &NodeConfig) -> (bool, String) {
    let Some(a) = cfg.api else {
        return (true, "no local API".to_owned());
    };
    let mut missing = Vec::new();
    if cfg.api_clients.is_empty() {
        missing.push("no [[api_client]]: anyone who reaches it may use it");
    }
    if cfg.api_tls.is_none() {
        missing.push("plain HTTP: set [listen] api_tls = true");
    }
    if missing.is_empty() {
        let certs = cfg.api_tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        (
            true,
            format!(
                "HTTPS on {a}; {} clients authenticate by {}",
                cfg.api_clients.len(),
                if certs {
                    "token or client certificate"
                } else {
                    "token"
                }
            ),
        )
    } else {
        (false, format!("{a}: {}", missing.join("; ")))
    }
}

fn check_limits(cfg: &NodeConfig) -> (bool, String) {
    let l = &cfg.limits;
    let mut ok = true;
    let mut found = Vec::new();
    if cfg.api.is_some() {
        let unlimited: Vec<&str> = cfg
            .api_clients
            .iter()
            .filter(|c| c.requests_per_minute == 0)
            .map(|c| c.name.as_str())
            .collect();
        if cfg.api_clients.is_empty() && l.api_requests_per_minute == 0 {
            ok = false;
            found.push("API: no [limits] api_requests_per_minute".to_owned());
        } else if !unlimited.is_empty() {
            ok = false;
            found.push(format!(
                "API clients without a request limit: {}",
                unlimited.join(", ")
            ));
        } else {
            found.push(format!(
                "API: {} requests/min, {} MiB/min per client (0: none)",
                l.api_requests_per_minute, l.api_mib_per_minute
            ));
        }
    }
    if cfg.grpc.is_some() {
        if l.link_items_per_minute == 0 {
            ok = false;
            found.push("child links: no [limits] link_items_per_minute".to_owned());
        } else {
            found.push(format!(
                "child links: {} items/min, {} MiB/min each (0: none)",
                l.link_items_per_minute, l.link_mib_per_minute
            ));
        }
    }
    if found.is_empty() {
        found.push("no API and no child links".to_owned());
    }
    (ok, found.join("; "))
}

/// Assesses `cfg` against `level` (1–5) at `now_unix` (seconds).
pub fn assess(cfg: &NodeConfig, level: u8, audit: &AuditState, now_unix: i64) -> Assessment {
    let mut c = Checklist {
        level,
        checks: Vec::new(),
    };
    c.add(
        1,
        "tls13_only",
        (
            "links use TLS 1.3 only, with mutual certificates".into(),
            "các liên kết chỉ dùng TLS 1.3, xác thực chứng thư số hai chiều".into(),
        ),
        if cfg.tls.allow_tls12 {
            (
                false,
                "[tls] min_version = \"1.2\": TLS 1.2 is accepted".into(),
            )
        } else {
            (
                true,
                "TLS 1.3 only; peers must present a certificate of the interchange CA".into(),
            )
        },
    );
    c.add(
        1,
        "key_algorithms",
        (
            format!(
                "keys are ECDSA P-256 or RSA of at least {} bits",
                rsa_bits_needed(level)
            ),
            format!(
                "khóa là ECDSA P-256 hoặc RSA từ {} bit trở lên",
                rsa_bits_needed(level)
            ),
        ),
        check_keys(cfg, level),
    );
    c.add(
        1,
        "key_permissions",
        (
            "private key files are readable by their owner only".into(),
            "tệp khóa bí mật chỉ chủ sở hữu được đọc".into(),
        ),
        check_key_permissions(cfg),
    );
    c.add(
        1,
        "certificate_validity",
        (
            format!(
                "certificates (own, local agencies', CA) valid for more than {} days",
                cfg.security.expiry_warning_days
            ),
            format!(
                "chứng thư số (của nút, của các cơ quan tại nút, của CA) còn hiệu lực trên {} ngày",
                cfg.security.expiry_warning_days
            ),
        ),
        check_certificates(cfg, now_unix),
    );
    c.add(
        1,
        "api_protected",
        (
            "the local API needs a credential, or listens on loopback only".into(),
            "API cục bộ đòi thông tin xác thực, hoặc chỉ nghe trên địa chỉ loopback".into(),
        ),
        check_api(cfg),
    );
    c.add(
        1,
        "store_durable",
        (
            "the store is on persistent storage".into(),
            "kho dữ liệu nằm trên bộ nhớ lưu trữ bền vững".into(),
        ),
        check_store(cfg),
    );
    c.add(
        2,
        "crl",
        (
            "CRLs are configured (files or URLs) and none is past its next update".into(),
            "đã cấu hình danh sách chứng thư thu hồi (CRL, tệp hoặc URL) và không danh sách nào quá hạn cập nhật".into(),
        ),
        check_crl(cfg, now_unix),
    );
    c.add(
        2,
        "audit_log",
        (
            "the hash-chained audit log verifies".into(),
            "nhật ký kiểm toán liên kết băm kiểm tra được toàn vẹn".into(),
        ),
        match audit {
            AuditState::Intact(n) => (true, format!("{n} records, chain intact")),
            AuditState::Broken(b) => (false, format!("chain broken: {b}")),
            AuditState::Unreadable(e) => (false, format!("cannot read the log: {e}")),
        },
    );
    let needed = log_retention_days_needed(level);
    c.add(
        2,
        "log_retention",
        (
            format!("audit records kept online for at least {needed} days"),
            format!("bản ghi kiểm toán được lưu trực tuyến ít nhất {needed} ngày"),
        ),
        match cfg.security.audit_retention_days {
            0 => (
                true,
                "kept without limit (audit_retention_days unset)".into(),
            ),
            d if d >= needed => (true, format!("audit_retention_days = {d}")),
            d => (false, format!("audit_retention_days = {d}, below {needed}")),
        },
    );
    c.add(
        2,
        "backups",
        (
            format!(
                "backups configured, current, and kept for {} days",
                backup_retention_days_needed(level)
            ),
            format!(
                "đã cấu hình sao lưu, bản sao lưu còn mới và được giữ {} ngày",
                backup_retention_days_needed(level)
            ),
        ),
        check_backups(cfg, level),
    );
    c.add(
        3,
        "api_tls_auth",
        (
            "the local API takes only authenticated clients, over TLS".into(),
            "API cục bộ chỉ nhận máy khách đã xác thực, qua TLS".into(),
        ),
        check_api_tls_auth(cfg),
    );
    c.add(
        3,
        "abuse_limits",
        (
            "API clients and child links have rate limits".into(),
            "máy khách API và liên kết của nút cấp dưới có giới hạn tần suất".into(),
        ),
        check_limits(cfg),
    );
    c.add(
        3,
        "monitoring",
        (
            "security events and the node's state are reported to the parent (the root reports to no one)".into(),
            "sự kiện an toàn thông tin và trạng thái của nút được báo cáo lên nút cấp trên (nút gốc không báo cáo cho ai)".into(),
        ),
        match &cfg.parent {
            Some(p) => (
                true,
                format!(
                    "signed reports to {} every {} s",
                    p.agency,
                    cfg.security.report_interval.as_secs()
                ),
            ),
            None => (true, "root node: receives the reports of the nation".into()),
        },
    );
    let met = c.checks.iter().filter(|k| k.met).count();
    Assessment {
        agency: cfg.agency.to_string(),
        level,
        total: c.checks.len(),
        met,
        checks: c.checks,
    }
}

/// The assessment as text: one line per requirement.
pub fn text(a: &Assessment) -> String {
    let mut o = format!(
        "Assessment of {} against security level {}\n\n",
        a.agency, a.level
    );
    for c in &a.checks {
        o.push_str(&format!(
            "{:<8} {:<21} {}\n         {}\n",
            if c.met { "MET" } else { "NOT MET" },
            c.id,
            c.requirement,
            c.evidence
        ));
    }
    o.push_str(&format!(
        "\n{} of {} requirements met: {}\n",
        a.met,
        a.total,
        if a.passed() { "PASS" } else { "FAIL" }
    ));
    o
}
