//! The lienthong relay (`lt-relay`): the adapters around the node core (`lienthong-node`).
//! Each adapter calls the core; none calls another. docs/architecture.md draws the crates.
//!
//! # Layout
//! - [`serve`]: `lt-relay serve`: listeners, parent link, drain on SIGTERM.
//! - [`link`]: the parent–child link protocol (one bidirectional gRPC stream over mTLS).
//! - [`amqp`]: RabbitMQ as the DMS integration point (intake, delivery, receipts).
//! - [`router`]: the local API's routes and body limits; [`api`]: its handlers (submit, inbox,
//!   status, track, /healthz, /metrics) and its one error mapping; [`edxml_api`]: edXML on it;
//!   [`books_api`]: registers and reports on it; the listener, with time-outs against slow
//!   clients and TLS, is `api_server`; rate and byte limits per client, `api_limits`.
//! - `crl_fetch`: CRLs fetched over HTTP from URLs and distribution points.
//! - [`upkeep`]: audit retention and scheduled backups of a running node, `POST /v1/backup`.
//! - [`webhook`]: security events posted as JSON to a collector.
//! - [`stamper`]: RFC 3161 time-stamps for the documents sent from here, batched per request.
//! - [`cli`]: the command line and its dispatch; [`pki_cmd`], [`audit_cmd`], [`backup_cmd`],
//!   [`books_cmd`], [`assess_cmd`], [`edxml_cmd`], [`pdf_cmd`], [`proof_cmd`]: its commands;
//!   [`node_source`]: commands reading a node through its API or its store; `proof_api`: proof
//!   bundles on the local API.
//! - [`demo`]: `lt-relay demo`, on the process harness (`lienthong-harness`).
//!
//! The core's modules are re-exported here under their former paths
//! (`lienthong_relay::node`, `::intake`, `::route`, ...).

pub use lienthong_node::{
    assess, broker_state, gate, intake, metrics, monitor, node, offline, proof, register, report,
    route, security, security_events, stamp, traffic, upward,
};

pub mod amqp;
pub mod api;
pub mod api_auth;
mod api_error;
mod api_limits;
mod api_server;
pub mod assess_cmd;
pub mod audit_cmd;
pub mod backup_cmd;
pub mod books_api;
pub mod books_cmd;
pub mod cli;
pub mod console;
mod crl_fetch;
pub mod demo;
pub mod doctor_cmd;
pub mod edxml_api;
pub mod edxml_cmd;
pub mod init_cmd;
pub mod link;
pub mod node_source;
pub mod pdf_cmd;
pub mod pki_cmd;
mod proof_api;
pub mod proof_cmd;
pub mod router;
pub mod serve;
pub mod stamper;
pub mod upkeep;
pub mod webhook;
