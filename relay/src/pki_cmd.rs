//! `lt-relay pki`: the development certificate authority on the command line.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use lienthong_common::agency::AgencyCode;
use lienthong_common::pki::{self, IssueRequest, KeyAlgorithm};
use time::OffsetDateTime;

/// Manage a test or development PKI: an interchange CA, node certificates, the CRL.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Create a new interchange CA (ca.pem, ca.key, ca.crl) in DIR.
    Init {
        /// Directory to create the CA in (created if absent).
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issue a node certificate and key for an agency (usable as TLS server, TLS client and for
    /// signing documents), written as DIR/<CODE>.pem and DIR/<CODE>.key (mode 0600).
    Issue(IssueArgs),
    /// Revoke every certificate of an agency and rewrite DIR/ca.crl.
    Revoke {
        /// Directory of the CA.
        #[arg(long)]
        dir: PathBuf,
        /// Agency code whose certificates to revoke.
        #[arg(long)]
        agency: AgencyCode,
    },
    /// List the certificates issued by the CA in DIR.
    List {
        /// Directory of the CA.
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Arguments of `pki issue`.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Directory of the CA.
    #[arg(long)]
    dir: PathBuf,
    /// Agency code the certificate names, e.g. 000.00.00.H53.
    #[arg(long)]
    agency: AgencyCode,
    /// Organisation name for the certificate subject (default: the code).
    #[arg(long)]
    name: Option<String>,
    /// Use an RSA-2048 key (as the government CA issues) instead of ECDSA P-256.
    #[arg(long)]
    rsa: bool,
    /// Validity in days.
    #[arg(long, default_value_t = pki::DEFAULT_NODE_VALIDITY_DAYS)]
    days: i64,
    /// Start of validity as days from now (negative: in the past; for testing expiry).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    start_days: i64,
}

/// Runs a `pki` subcommand.
pub fn run(cmd: PkiCommand) -> anyhow::Result<()> {
    match cmd {
        PkiCommand::Init { dir } => {
            pki::init(&dir)?;
            println!("created interchange CA in {}", dir.display());
            println!("  certificate: {}", pki::ca_cert_path(&dir).display());
            println!("  key (0600):  {}", pki::ca_key_path(&dir).display());
            println!("  CRL:         {}", pki::crl_path(&dir).display());
        }
        PkiCommand::Issue(a) => {
            let mut req = IssueRequest::new(a.agency.clone());
            req.name = a.name;
            req.algorithm = if a.rsa {
                KeyAlgorithm::Rsa2048
            } else {
                KeyAlgorithm::EcdsaP256
            };
            req.valid_days = a.days;
            if a.start_days != 0 {
                req.not_before =
                    Some(OffsetDateTime::now_utc() + time::Duration::days(a.start_days));
            }
            let f = pki::issue(&a.dir, &req)
                .with_context(|| format!("issuing a certificate for {}", a.agency))?;
            println!("issued certificate for {} (serial {})", a.agency, f.serial);
            println!("  certificate: {}", f.cert.display());
            println!("  key (0600):  {}", f.key.display());
        }
        PkiCommand::Revoke { dir, agency } => {
            let serials = pki::revoke(&dir, &agency)?;
            if serials.is_empty() {
                println!("{agency}: already revoked; CRL rewritten");
            } else {
                println!(
                    "revoked {agency} (serials {}); CRL rewritten: {}",
                    serials.join(", "),
                    pki::crl_path(&dir).display()
                );
            }
        }
        PkiCommand::List { dir } => {
            println!(
                "{:<16} {:<34} {:<12} revoked",
                "agency", "serial", "expires"
            );
            for c in pki::list(&dir)? {
                let exp = OffsetDateTime::from_unix_timestamp(c.not_after)
                    .map(|t| lienthong_common::envelope::format_date(t.date()))
                    .unwrap_or_default();
                println!(
                    "{:<16} {:<34} {:<12} {}",
                    c.agency.as_str(),
                    c.serial,
                    exp,
                    if c.revoked_at.is_some() { "yes" } else { "no" }
                );
            }
        }
    }
    Ok(())
}
