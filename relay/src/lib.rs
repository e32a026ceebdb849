//! The lienthong relay (`lt-relay`).
//!
//! # Layout
//! - [`cli`]: the command line and its dispatch.
//! - [`pki_cmd`]: `lt-relay pki`, the development certificate authority.
//! - [`audit_cmd`]: `lt-relay audit` and `lt-relay security`.
//! - [`backup_cmd`]: `lt-relay backup` and `lt-relay restore`.
//! - [`upkeep`]: audit retention and scheduled backups of a running node, `POST /v1/backup`.
//! - [`edxml_cmd`]: `lt-relay edxml check|to-json|from-json`.
//! - [`security`]: periodic checks of certificate expiry and CRL freshness.
//! - [`serve`]: `lt-relay serve`: listeners, parent link, drain on SIGTERM.
//! - [`node`]: a node's state and the idempotent operations on it (accept, deliver, receipts).
//! - [`route`]: the routing table (hierarchy, announcements, configured routes).
//! - [`link`]: the parent–child link protocol (one bidirectional gRPC stream over mTLS).
//! - [`offline`]: documents waiting for a child that is not linked, and their expiry.
//! - [`amqp`]: RabbitMQ as the DMS integration point (intake, delivery, receipts).
//! - [`router`]: the local API's routes and body limits.
//! - [`intake`]: documents and status updates from the local side (any adapter): check, sign,
//!   store, queue.
//! - [`api`]: the local HTTP API (submit, inbox, status, track, /healthz, /metrics); its
//!   listener, with time-outs against slow clients, is `api_server`.
//! - [`demo`]: `lt-relay demo`, on the process harness (`lienthong-harness`).
//! - [`metrics`]: the Prometheus registry.
//! - [`webhook`]: security events posted as JSON to a collector.
//! - [`register`], [`report`]: the official registers and the statistics reports with their
//!   signed daily summaries; [`books_api`], [`books_cmd`]: their API routes and commands.
//! - [`monitor`]: signed attestations sent upward; [`assess`]: the security-level checks,
//!   [`assess_cmd`]: `lt-relay assess`.
//! - [`edxml_api`]: edXML on the local API.
//! - [`node_source`]: commands reading a node through its API or its store.

pub use lienthong_node::{
    assess, broker_state, gate, intake, metrics, monitor, node, offline, register, report, route,
    security, security_events, upward,
};

pub mod amqp;
pub mod api;
mod api_server;
pub mod assess_cmd;
pub mod audit_cmd;
pub mod backup_cmd;
pub mod books_api;
pub mod books_cmd;
pub mod cli;
pub mod demo;
pub mod edxml_api;
pub mod edxml_cmd;
pub mod link;
pub mod node_source;
pub mod pki_cmd;
pub mod router;
pub mod serve;
pub mod upkeep;
pub mod webhook;
