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
    /// Make a node's key and a certificate signing request to send to the CA (any CA: the
    /// request names the agency as subject CN and as SAN URI urn:lienthong:agency:CODE).
    Csr(CsrArgs),
    /// Issue a node certificate for a certificate signing request, with the CA in DIR (the
    /// development CA's side of `pki csr`). Writes DIR/<CODE>.pem and, with --out, a copy.
    SignCsr {
        /// Directory of the CA.
        #[arg(long)]
        dir: PathBuf,
        /// The request (PEM), as `pki csr` or `lt-relay init` wrote it.
        #[arg(long)]
        csr: PathBuf,
        /// Also write the certificate here (e.g. where the node's configuration expects it).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Validity in days.
        #[arg(long, default_value_t = pki::DEFAULT_NODE_VALIDITY_DAYS)]
        days: i64,
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

/// Arguments of `pki csr`.
#[derive(Debug, Args)]
pub struct CsrArgs {
    /// Agency code the certificate is to name, e.g. 000.00.00.H53.
    #[arg(long)]
    agency: AgencyCode,
    /// Organisation name for the subject (default: the code).
    #[arg(long)]
    name: Option<String>,
    /// A DNS name or IP address the node is reached at (repeat for several), so its parent or
    /// children can check the link listener's certificate by address.
    #[arg(long = "host")]
    hosts: Vec<String>,
    /// Use an RSA-2048 key instead of ECDSA P-256.
    #[arg(long)]
    rsa: bool,
    /// Where to write the private key (mode 0600; never overwritten).
    #[arg(long)]
    key: PathBuf,
    /// Where to write the request (default: the key's path with .csr).
    #[arg(long)]
    out: Option<PathBuf>,
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
        PkiCommand::Csr(a) => {
            let algorithm = if a.rsa {
                KeyAlgorithm::Rsa2048
            } else {
                KeyAlgorithm::EcdsaP256
            };
            let csr = pki::make_csr(&a.agency, a.name.as_deref(), algorithm, &a.hosts)?;
            let out = a.out.unwrap_or_else(|| a.key.with_extension("csr"));
            csr.save(&a.key, &out)?;
            println!(
                "made a key and a certificate signing request for {}",
                a.agency
            );
            println!("  key (0600): {}", a.key.display());
            println!("  request:    {}  (send it to the CA)", out.display());
        }
        PkiCommand::SignCsr {
            dir,
            csr,
            out,
            days,
        } => {
            let pem = std::fs::read_to_string(&csr)
                .with_context(|| format!("reading {}", csr.display()))?;
            let signed = pki::sign_csr(&dir, &pem, days)
                .with_context(|| format!("signing {}", csr.display()))?;
            println!(
                "issued certificate for {} (serial {})",
                signed.agency, signed.serial
            );
            println!("  certificate: {}", signed.cert.display());
            if let Some(out) = out {
                std::fs::copy(&signed.cert, &out)
                    .with_context(|| format!("copying the certificate to {}", out.display()))?;
                println!("  copied to:   {}", out.display());
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
