//! `lt-gateway`: parse flags, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use lienthong_gateway::cli::{self, Cli};

fn main() -> ExitCode {
    lienthong_common::telemetry::init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    cli::run(Cli::parse())
}
