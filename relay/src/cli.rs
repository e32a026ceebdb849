//! Command-line interface of `lt-relay`.

use clap::{Parser, Subcommand};

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
}

/// Exit code for a bad configuration: the process stops before binding any port.
pub const EXIT_CONFIG: u8 = 64;

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Pki(cmd) => crate::pki_cmd::run(cmd),
    }
}
