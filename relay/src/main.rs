//! `lt-relay`: parse flags, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use lienthong_relay::cli::{self, Cli};

fn main() -> ExitCode {
    lienthong_common::telemetry::init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    cli::run(cli)
}
