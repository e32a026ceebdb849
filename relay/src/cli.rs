//! Command-line interface of `lt-relay`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lienthong_common::config::NodeConfig;

use crate::pki_cmd::PkiCommand;

/// lienthong relay: one node of the national electronic-document interchange.
///
/// A relay receives signed documents from its local document-management software and from child
/// nodes, stores them durably, and forwards them over mutual-TLS gRPC toward their recipients;
/// status receipts travel back the same way.
#[derive(Debug, Parser)]
#[command(name = "lt-relay", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage a development PKI (interchange CA, node certificates, CRL).
    #[command(subcommand)]
    Pki(PkiCommand),
    /// edXML (QCVN 102:2016) packages: check them, convert to and from the JSON model.
    #[command(subcommand)]
    Edxml(crate::edxml_cmd::EdxmlCommand),
    /// PDF files: check the signatures inside them against trust anchors.
    #[command(subcommand)]
    Pdf(crate::pdf_cmd::PdfCommand),
    /// A document's proof bundle: export it from a node, verify it offline.
    #[command(subcommand)]
    Proof(crate::proof_cmd::ProofCommand),
    /// Verify or export the node's hash-chained audit log.
    #[command(subcommand)]
    Audit(crate::audit_cmd::AuditCommand),
    /// Security monitoring: the events this node recorded.
    #[command(subcommand)]
    Security(crate::audit_cmd::SecurityCommand),
    /// Print an agency's incoming or outgoing register (sổ đăng ký văn bản đến / đi) for a
    /// year: as a table, CSV, JSON, or a printable HTML book with the official headings.
    Register(crate::books_cmd::RegisterArgs),
    /// Statistics for a period: documents sent and received, by latest status, handled on
    /// time or overdue, times to 01/03/06, rejections, top senders and recipients; with
    /// --subtree, summed over every agency below (from the signed daily summaries).
    Report(crate::books_cmd::ReportArgs),
    /// Where a document is: per recipient the latest status and its time, overdue flagged,
    /// the hop trace and every transport event. Takes an envelope id or a document id.
    Track(crate::books_cmd::TrackArgs),
    /// Check this node against the requirements of a security level (1–5, NĐ 85/2016; the
    /// checklist is docs/security-levels.md): each requirement met or not met with its
    /// evidence. Exits 1 when any is not met, 64 when the configuration does not load.
    Assess {
        /// The node's configuration.
        #[arg(long, env = "LT_CONFIG")]
        config: PathBuf,
        /// Security level to assess against.
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
        level: u8,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a backup of the node's store now (through its local API when it runs, from the
    /// store when it is stopped): `<agency>-<time>.ltbak` and the attachment files in `blobs/`.
    Backup(crate::backup_cmd::BackupArgs),
    /// Restore a backup into a stopped node's store (refused over a store that holds data
    /// unless --force), checking its checksum, agency and attachment files.
    Restore(crate::backup_cmd::RestoreArgs),
    /// Write what a new node needs for its tier: a commented configuration, its key and a
    /// certificate signing request for the CA, an operator API token, with safe permissions.
    /// Asks on a terminal for what is not given.
    Init(crate::init_cmd::InitArgs),
    /// Check a node's set-up, in order, and say how to fix what is wrong: configuration, files
    /// and their modes, certificate and key, chain to the CA, expiry margins, CRL freshness,
    /// the parent (address, TLS handshake with this certificate, clock), the store folder, the
    /// listening ports, the broker. Exits 0 only when every check passes.
    Doctor {
        /// The node's configuration.
        #[arg(long, env = "LT_CONFIG")]
        config: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run a whole local network (root, ministry, two provinces with a district and a commune
    /// each) as real processes, exchange documents and statuses, print what happened, stop.
    /// Exits 0 only if every document and receipt arrived.
    Demo(crate::demo::DemoArgs),
    /// Run a node: the link listener for children, the link to the parent, the local API.
    ///
    /// Stops cleanly on SIGTERM or SIGINT (stops accepting, finishes in-flight items, flushes).
    /// A bad configuration exits with code 64 before any port is bound.
    Serve {
        /// Node configuration (TOML; see docs/configuration.md). `LT_*` variables override it.
        #[arg(long, env = "LT_CONFIG")]
        config: PathBuf,
    },
}

/// Exit code for a bad configuration: the process stops before binding any port.
pub const EXIT_CONFIG: u8 = 64;

/// Runs a parsed command line and says how the process should exit.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Pki(cmd) => report(crate::pki_cmd::run(cmd)),
        Command::Audit(cmd) => match crate::audit_cmd::run_audit(cmd) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => report(Err(e)),
        },
        Command::Security(cmd) => report(crate::audit_cmd::run_security(cmd)),
        Command::Assess {
            config,
            level,
            json,
        } => {
            if let Err(e) = NodeConfig::load(&config) {
                eprintln!("lt-relay: configuration error: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
            match crate::assess_cmd::run(&config, level, json) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => report(Err(e)),
            }
        }
        Command::Init(a) => report(crate::init_cmd::run(crate::init_cmd::Role::Relay, a)),
        Command::Doctor { config, json } => doctor(&config, json),
        Command::Register(a) => report(crate::books_cmd::run_register(a)),
        Command::Report(a) => report(crate::books_cmd::run_report(a)),
        Command::Track(a) => report(crate::books_cmd::run_track(a)),
        Command::Backup(a) => report(crate::backup_cmd::run_backup(a)),
        Command::Restore(a) => report(crate::backup_cmd::run_restore(a)),
        Command::Edxml(cmd) => match crate::edxml_cmd::run(cmd) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => report(Err(e)),
        },
        Command::Pdf(cmd) => match crate::pdf_cmd::run(cmd) {
            Ok(crate::pdf_cmd::Outcome::AllValid) => ExitCode::SUCCESS,
            Ok(crate::pdf_cmd::Outcome::NotAllValid) => ExitCode::from(1),
            Err(e) => {
                eprintln!("lt-relay: error: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Proof(cmd) => match crate::proof_cmd::run(cmd) {
            Ok(crate::proof_cmd::Outcome::Done) => ExitCode::SUCCESS,
            Ok(crate::proof_cmd::Outcome::Fails) => ExitCode::from(1),
            Err(crate::proof_cmd::ProofCmdError::Usage(e)) => {
                eprintln!("lt-relay: error: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
            Err(crate::proof_cmd::ProofCmdError::Other(e)) => report(Err(e)),
        },
        Command::Demo(args) => match crate::demo::run(args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => {
                eprintln!("lt-relay: demo: not everything arrived; rerun with --keep and read the node logs");
                ExitCode::FAILURE
            }
            Err(e) => report(Err(e)),
        },
        Command::Serve { config } => {
            let config = match NodeConfig::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("lt-relay: configuration error: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return report(Err(e.into())),
            };
            match rt.block_on(crate::serve::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e @ crate::serve::ServeError::Config(_)) => {
                    eprintln!("lt-relay: configuration error: {e}");
                    ExitCode::from(EXIT_CONFIG)
                }
                Err(e) => report(Err(e.into())),
            }
        }
    }
}

/// `doctor`: 0 when every check passed, 64 when the configuration does not load, 1 otherwise.
pub fn doctor(config: &std::path::Path, json: bool) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(Err(e.into())),
    };
    let checks = rt.block_on(crate::doctor_cmd::run_checks(config));
    let config_failed = checks
        .first()
        .is_some_and(|c| c.outcome == crate::doctor_cmd::Outcome::Fail);
    match crate::doctor_cmd::print(&checks, json) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) if config_failed => ExitCode::from(EXIT_CONFIG),
        Ok(false) => ExitCode::from(1),
        Err(e) => report(Err(e)),
    }
}

fn report(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lt-relay: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
