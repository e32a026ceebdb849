//! `lt-relay doctor`: checks a node's set-up in the order an operator fixes it, and says how to
//! fix each thing that is wrong. Read-only: it opens no store and binds a port only to see that
//! it is free, releasing it at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lienthong_common::config::NodeConfig;
use lienthong_common::signing::AgencySigner;
use lienthong_common::tls::{self, Identity};
use lienthong_common::trust::{self, TrustStore, Usage};
use rustls_pki_types::UnixTime;
use serde::Serialize;

/// Largest difference from the parent's clock that passes.
pub const CLOCK_TOLERANCE: Duration = Duration::from_secs(60);
/// Least free space in the store's file system that passes.
pub const MIN_FREE_BYTES: u64 = 1024 * 1024 * 1024;
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Passed.
    Ok,
    /// Failed: `fix` says what to do.
    Fail,
    /// Not applicable here (no parent, no broker...), or not possible because an earlier check
    /// failed.
    Skip,
}

/// One check and what it found.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Short name, stable for scripts.
    pub name: &'static str,
    /// The outcome.
    pub outcome: Outcome,
    /// What was found.
    pub detail: String,
    /// How to fix it (failures only).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub fix: String,
}

fn ok(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        outcome: Outcome::Ok,
        detail: detail.into(),
        fix: String::new(),
    }
}

fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        outcome: Outcome::Fail,
        detail: detail.into(),
        fix: fix.into(),
    }
}

fn skip(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        outcome: Outcome::Skip,
        detail: detail.into(),
        fix: String::new(),
    }
}

/// Runs every check of `config` in order.
pub async fn run_checks(config: &Path) -> Vec<Check> {
    let cfg = match NodeConfig::load(config) {
        Ok(c) => c,
        Err(e) => {
            return vec![fail(
                "config",
                e.to_string(),
                "correct the key named above, or put the file it names in place (docs/configuration.md lists every key)",
            )]
        }
    };
    let mut checks = vec![ok(
        "config",
        format!("{} loads: agency {}", config.display(), cfg.agency),
    )];
    checks.push(check_files(config, &cfg));
    let files_ok = checks[1].outcome == Outcome::Ok;
    if files_ok {
        checks.push(check_certificate(&cfg));
        let trust = load_trust(&cfg);
        checks.push(check_chain(&cfg, &trust));
        checks.push(check_expiry(&cfg));
        checks.push(check_crl(&cfg, &trust));
        checks.extend(check_parent(&cfg, trust.ok()).await);
    } else {
        for name in ["certificate", "chain", "expiry", "crl", "parent", "clock"] {
            checks.push(skip(
                name,
                "a file it needs is missing or unsafe (see files)",
            ));
        }
    }
    checks.push(check_store(&cfg));
    checks.push(check_ports(&cfg));
    checks.push(check_broker(&cfg).await);
    checks
}

/// Every file the configuration names, as (what, path, is a private key).
fn named_files(cfg: &NodeConfig) -> Vec<(String, PathBuf, bool)> {
    let t = &cfg.tls;
    let mut v = vec![
        ("[tls] ca".to_owned(), t.ca.clone(), false),
        ("[tls] cert".to_owned(), t.cert.clone(), false),
        ("[tls] key".to_owned(), t.key.clone(), true),
    ];
    v.extend(
        t.crls
            .iter()
            .map(|p| ("[tls] crl".to_owned(), p.clone(), false)),
    );
    for l in &cfg.local {
        v.push((
            format!("[[local]] {} cert", l.agency),
            l.cert.clone(),
            false,
        ));
        v.push((format!("[[local]] {} key", l.agency), l.key.clone(), true));
    }
    if let Some(a) = &cfg.api_tls {
        if a.cert != t.cert {
            v.push(("[listen] api_tls_cert".to_owned(), a.cert.clone(), false));
            v.push(("[listen] api_tls_key".to_owned(), a.key.clone(), true));
        }
        if let Some(ca) = &a.client_ca {
            v.push(("[listen] api_client_ca".to_owned(), ca.clone(), false));
        }
    }
    v
}

fn check_files(config: &Path, cfg: &NodeConfig) -> Check {
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    let files = named_files(cfg);
    for (what, path, private) in &files {
        match std::fs::File::open(path) {
            Err(e) => {
                problems.push(format!("{what} {}: {e}", path.display()));
                fixes.push(format!(
                    "put the file at {} (or correct {what})",
                    path.display()
                ));
            }
            Ok(_) => {
                let mode = lienthong_node::assess::mode_of(path).unwrap_or(0);
                if *private && mode & 0o077 != 0 {
                    problems.push(format!(
                        "{what} {} is mode {mode:04o}: readable by others than its owner",
                        path.display()
                    ));
                    fixes.push(format!("chmod 600 {}", path.display()));
                } else if mode & 0o022 != 0 {
                    problems.push(format!(
                        "{what} {} is mode {mode:04o}: writable by others than its owner",
                        path.display()
                    ));
                    fixes.push(format!("chmod go-w {}", path.display()));
                }
            }
        }
    }
    let mode = lienthong_node::assess::mode_of(config).unwrap_or(0);
    if mode & 0o007 != 0 {
        problems.push(format!(
            "{} is mode {mode:04o}: others may read it (it names the keys and may hold the broker's password)",
            config.display()
        ));
        fixes.push(format!("chmod 640 {}", config.display()));
    }
    if problems.is_empty() {
        ok(
            "files",
            format!(
                "{} files present; keys private, nothing writable by others",
                files.len()
            ),
        )
    } else {
        fail("files", problems.join("; "), fixes.join("; "))
    }
}

fn check_certificate(cfg: &NodeConfig) -> Check {
    let mut found = Vec::new();
    for (agency, cert, key) in lienthong_node::assess::key_pairs(cfg) {
        match AgencySigner::load_with(&cert, &key, &cfg.tls.agency_in) {
            Err(e) => {
                return fail(
                    "certificate",
                    format!("{}: {e}", cert.display()),
                    "use the certificate the CA issued for this key's request (a new key needs a new request: lt-relay pki csr)",
                )
            }
            Ok(s) if s.agency().as_str() != agency => {
                return fail(
                    "certificate",
                    format!(
                        "{} names {} but the configuration says {agency}",
                        cert.display(),
                        s.agency()
                    ),
                    "use the certificate issued for this agency, or correct the agency code",
                )
            }
            Ok(_) => found.push(format!("{} matches its key and names {agency}", cert.display())),
        }
    }
    ok("certificate", found.join("; "))
}

fn load_trust(cfg: &NodeConfig) -> Result<Arc<TrustStore>, String> {
    cfg.tls
        .trust_store()
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

fn check_chain(cfg: &NodeConfig, trust: &Result<Arc<TrustStore>, String>) -> Check {
    let trust = match trust {
        Ok(t) => t,
        Err(e) => {
            return fail(
                "chain",
                e.clone(),
                "put the interchange CA certificate (and its CRLs) where [tls] ca and crl say",
            )
        }
    };
    let chain = match trust::load_certs(&cfg.tls.cert) {
        Ok(c) => c,
        Err(e) => {
            return fail(
                "chain",
                e.to_string(),
                "put a PEM certificate at [tls] cert",
            )
        }
    };
    let mut usages = vec![(Usage::TlsClient, "TLS client")];
    if cfg.grpc.is_some() {
        usages.push((Usage::TlsServer, "TLS server"));
    }
    usages.push((Usage::DocumentSigning, "document signing"));
    let mut names = Vec::new();
    for (usage, name) in usages {
        if let Err(e) = trust.verify_chain(&chain, usage, UnixTime::now()) {
            return fail(
                "chain",
                format!("as {name}: {e}"),
                "the certificate must come from the CA in [tls] ca (with any intermediate in the certificate file) and not be revoked",
            );
        }
        names.push(name);
    }
    ok(
        "chain",
        format!(
            "verifies to {} as {}",
            cfg.tls.ca.display(),
            names.join(", ")
        ),
    )
}

fn days_left(der: &[u8], now: i64) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some((cert.validity().not_after.timestamp() - now) / 86_400)
}

fn check_expiry(cfg: &NodeConfig) -> Check {
    let now = lienthong_common::now_unix_ms() / 1000;
    let margin = i64::from(cfg.security.expiry_warning_days);
    let mut certs: Vec<(String, PathBuf)> = vec![
        ("certificate".into(), cfg.tls.cert.clone()),
        ("CA".into(), cfg.tls.ca.clone()),
    ];
    certs.extend(
        cfg.local
            .iter()
            .map(|l| (format!("{} certificate", l.agency), l.cert.clone())),
    );
    let mut found = Vec::new();
    let mut short = Vec::new();
    for (what, path) in certs {
        let Ok(list) = trust::load_certs(&path) else {
            continue;
        };
        for der in list {
            if let Some(days) = days_left(der.as_ref(), now) {
                let text = format!("{what} {}: {days} days left", path.display());
                if days < margin {
                    short.push(text);
                } else {
                    found.push(text);
                }
            }
        }
    }
    if short.is_empty() {
        ok(
            "expiry",
            format!("{} (margin {margin} days)", found.join("; ")),
        )
    } else {
        fail(
            "expiry",
            format!("within the {margin}-day margin: {}", short.join("; ")),
            "renew: make a new request (lt-relay pki csr), have the CA sign it, replace the files and restart",
        )
    }
}

fn check_crl(cfg: &NodeConfig, trust: &Result<Arc<TrustStore>, String>) -> Check {
    let fetched = !cfg.tls.crl_urls.is_empty() || cfg.tls.crl_distribution_points;
    if cfg.tls.crls.is_empty() {
        if fetched {
            return ok(
                "crl",
                "fetched by the node from its CRL URLs (not checked here)",
            );
        }
        if cfg.security.level >= 3 {
            return fail(
                "crl",
                format!("no CRL configured; level {} needs one", cfg.security.level),
                "put the CA's CRL in a file and name it in [tls] crl (or give [tls] crl_urls)",
            );
        }
        return ok(
            "crl",
            "none configured (revoked certificates are not detected)",
        );
    }
    let Ok(trust) = trust else {
        return skip("crl", "the CA or CRL does not load (see chain)");
    };
    let now = lienthong_common::now_unix_ms() / 1000;
    let stale = trust.stale_crls(now);
    if stale.is_empty() {
        ok(
            "crl",
            format!(
                "{} CRL file(s), none past its next update",
                cfg.tls.crls.len()
            ),
        )
    } else {
        let list: Vec<String> = stale
            .iter()
            .map(|(ca, next, _)| format!("{ca}: past its next update ({next})"))
            .collect();
        fail(
            "crl",
            list.join("; "),
            "fetch the CA's current CRL and replace the file (read again within 10 s), or set [tls] crl_urls",
        )
    }
}

async fn check_parent(cfg: &NodeConfig, trust: Option<Arc<TrustStore>>) -> Vec<Check> {
    let Some(parent) = &cfg.parent else {
        return vec![
            skip("parent", "no [parent]: this is the root"),
            skip("clock", "no parent to compare with"),
        ];
    };
    let answer = match probe(cfg, parent, trust).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return vec![
                ok(
                    "parent",
                    format!(
                        "{} accepted the TLS handshake; its release does not answer probes",
                        parent.address
                    ),
                ),
                skip("clock", "the parent's release does not tell its time"),
            ]
        }
        Err(failed) => return vec![failed, skip("clock", "the parent did not answer")],
    };
    let r = &answer.response;
    let mut checks = vec![ok(
        "parent",
        format!(
            "{} answered as {} (release {}) and takes this node as {}; round trip {} ms",
            parent.address,
            r.agency,
            r.software_version,
            r.child,
            answer.round_trip.as_millis()
        ),
    )];
    let offset_ms = r.time_unix_ms - answer.local_mid_unix_ms;
    let tolerance = i64::try_from(CLOCK_TOLERANCE.as_millis()).unwrap_or(i64::MAX);
    let text = format!(
        "this clock is {} ms {} the parent's",
        offset_ms.abs(),
        if offset_ms > 0 { "behind" } else { "ahead of" }
    );
    checks.push(if offset_ms.abs() <= tolerance {
        ok(
            "clock",
            format!("{text} (tolerance {} s)", CLOCK_TOLERANCE.as_secs()),
        )
    } else {
        fail(
            "clock",
            format!("{text}: more than {} s", CLOCK_TOLERANCE.as_secs()),
            "synchronise this machine's clock (timedatectl set-ntp true, or chrony/ntpsec with the province's time server)",
        )
    });
    checks
}

/// Resolves the parent's address and asks it for its clock over a link's TLS; a failure comes
/// back as the failed `parent` check.
async fn probe(
    cfg: &NodeConfig,
    parent: &lienthong_common::config::ParentConfig,
    trust: Option<Arc<TrustStore>>,
) -> Result<Option<crate::link::ProbeAnswer>, Check> {
    if let Err(e) = tokio::net::lookup_host(parent.address.as_str()).await {
        return Err(fail(
            "parent",
            format!("{} does not resolve: {e}", parent.address),
            "check [parent] endpoint and the DNS (or /etc/hosts) of this machine",
        ));
    }
    let trust = trust.ok_or_else(|| skip("parent", "the CA does not load (see chain)"))?;
    let tls_cfg = Identity::load(&cfg.tls.cert, &cfg.tls.key)
        .map_err(|e| e.to_string())
        .and_then(|id| {
            tls::client_config(trust, parent.agency.clone(), &id, cfg.tls.allow_tls12)
                .map_err(|e| e.to_string())
        })
        .map_err(|e| fail("parent", e, "see certificate and chain"))?;
    crate::link::probe_parent(&parent.address, tls_cfg)
        .await
        .map_err(|e| {
            fail(
                "parent",
                format!("{}: {e}", parent.address),
                "check that the parent runs and listens there, that a firewall lets this machine through, that its certificate names [parent] agency, and that the parent takes this node as a child (its logs say why it refused)",
            )
        })
}

fn check_store(cfg: &NodeConfig) -> Check {
    let dir = &cfg.data_dir;
    if let Err(e) = std::fs::create_dir_all(dir) {
        return fail(
            "store",
            format!("{}: {e}", dir.display()),
            format!(
                "create {} and give it to the user the node runs as",
                dir.display()
            ),
        );
    }
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    if let Err(e) = std::fs::write(&probe, b"x").and_then(|()| std::fs::remove_file(&probe)) {
        return fail(
            "store",
            format!("{} is not writable: {e}", dir.display()),
            format!(
                "chown the folder to the user the node runs as (chown -R lienthong: {})",
                dir.display()
            ),
        );
    }
    let stats = rustix::fs::statfs(dir.as_path())
        .and_then(|st| rustix::fs::statvfs(dir.as_path()).map(|v| (st, v)));
    let (st, vfs) = match stats {
        Ok(s) => s,
        Err(e) => {
            return fail(
                "store",
                format!("{}: statfs: {e}", dir.display()),
                "check the file system",
            )
        }
    };
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    let fs_type = i64::from(st.f_type);
    let free = vfs.f_bavail.saturating_mul(vfs.f_frsize);
    if fs_type == TMPFS_MAGIC {
        return fail(
            "store",
            format!(
                "{} is on tmpfs: everything is lost at the next reboot",
                dir.display()
            ),
            "set node.data_dir to a folder on a disk (e.g. /var/lib/lienthong)",
        );
    }
    if free < MIN_FREE_BYTES {
        return fail(
            "store",
            format!("{}: only {} MiB free", dir.display(), free / (1024 * 1024)),
            format!(
                "free space or move the store: at least {} MiB",
                MIN_FREE_BYTES / (1024 * 1024)
            ),
        );
    }
    ok(
        "store",
        format!(
            "{} writable, on a disk, {} MiB free",
            dir.display(),
            free / (1024 * 1024)
        ),
    )
}

fn check_ports(cfg: &NodeConfig) -> Check {
    let mut found = Vec::new();
    for (what, addr) in [("[listen] api", cfg.api), ("[listen] grpc", cfg.grpc)] {
        let Some(addr) = addr else { continue };
        match std::net::TcpListener::bind(addr) {
            Ok(l) => {
                drop(l);
                found.push(format!("{what} {addr} free"));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                match this_node_answers(cfg) {
                    Ok(()) => found.push(format!("{what} {addr} in use by this node (it is running)")),
                    Err(why) => return fail(
                        "ports",
                        format!("{what} {addr} is in use, and this node's API does not answer there ({why})"),
                        format!("stop that program (ss -ltnp 'sport = :{}') or choose another address", addr.port()),
                    ),
                }
            }
            Err(e) => {
                return fail(
                    "ports",
                    format!("{what} {addr}: {e}"),
                    "use an address of this machine; ports below 1024 need privileges the service does not have",
                )
            }
        }
    }
    if found.is_empty() {
        return skip("ports", "no listener configured");
    }
    ok("ports", found.join("; "))
}

/// Whether the program on the API port is this node (its /healthz names this agency).
fn this_node_answers(cfg: &NodeConfig) -> Result<(), String> {
    let client = lienthong_client::ApiClient::for_node(cfg)
        .map_err(|e| format!("{e:#}"))?
        .ok_or("no API configured")?;
    let health = client.health().map_err(|e| format!("{e:#}"))?;
    match health["agency"].as_str() {
        Some(a) if a == cfg.agency.as_str() => Ok(()),
        other => Err(format!("/healthz names {}", other.unwrap_or("no agency"))),
    }
}

async fn check_broker(cfg: &NodeConfig) -> Check {
    let Some(amqp) = &cfg.amqp else {
        return skip("broker", "no [amqp]: the DMS uses the local API");
    };
    let shown = redact(&amqp.url);
    let connected = tokio::time::timeout(
        Duration::from_secs(10),
        crate::amqp::broker::connect(&amqp.url, amqp.ca.as_deref()),
    )
    .await;
    match connected {
        Ok(Ok(conn)) => {
            let _ = conn.close(200, "doctor".into()).await;
            ok("broker", format!("{shown} accepted the credentials"))
        }
        Ok(Err(e)) => fail(
            "broker",
            format!("{shown}: {e}"),
            "check that RabbitMQ runs, the vhost exists and the user may use it (rabbitmqctl list_permissions -p VHOST)",
        ),
        Err(_) => fail(
            "broker",
            format!("{shown}: no answer within 10 s"),
            "check the broker's address and the firewall",
        ),
    }
}

/// The URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Prints the checks; true when none failed.
pub fn print(checks: &[Check], json: bool) -> anyhow::Result<bool> {
    let passed = checks.iter().all(|c| c.outcome != Outcome::Fail);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "ok": passed,
                "checks": checks,
            }))?
        );
        return Ok(passed);
    }
    for c in checks {
        let mark = match c.outcome {
            Outcome::Ok => "ok  ",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "skip",
        };
        println!("{mark} {:<12} {}", c.name, c.detail);
        if !c.fix.is_empty() {
            println!("     {:<12} fix: {}", "", c.fix);
        }
    }
    let failed = checks.iter().filter(|c| c.outcome == Outcome::Fail).count();
    if passed {
        println!("all checks passed");
    } else {
        println!("{failed} check(s) failed");
    }
    Ok(passed)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn the_broker_password_is_not_printed() {
        assert_eq!(
            redact("amqp://lt:secret@127.0.0.1:5672/lienthong"),
            "amqp://lt:***@127.0.0.1:5672/lienthong"
        );
        assert_eq!(redact("amqp://127.0.0.1"), "amqp://127.0.0.1");
    }
}
