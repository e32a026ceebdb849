//! The lienthong node core: everything a relay or a gateway decides, with no I/O adapter in it
//! (no HTTP server or client, no AMQP, no gRPC, no command line). The adapters in
//! `lienthong-relay` call into it; they never call each other.
//!
//! # Layout
//! - [`node`]: a node's state and the idempotent operations on it (accept, deliver, receipts).
//! - [`gate`]: the trust gate: every item from a neighbour and every connecting child.
//! - [`intake`]: documents and status updates from the local side (any adapter): check, sign,
//!   store, queue.
//! - [`route`]: the routing table (hierarchy, announcements, configured routes).
//! - [`offline`]: documents waiting for a child that is not linked, and their expiry.
//! - [`register`], [`report`]: the official registers and the statistics reports with their
//!   signed daily summaries; [`upward`]: summaries and attestations kept and queued upward.
//! - [`monitor`]: signed attestations sent upward; [`assess`]: the security-level checks.
//! - [`limits`]: rate and byte limits of API clients and child links.
//! - [`security`]: periodic checks of certificate expiry and CRL freshness.
//! - [`security_events`]: the queue toward the webhook that posts security events.
//! - [`broker_state`]: the RabbitMQ connection state, for `/healthz`.
//! - [`metrics`]: the Prometheus registry.
//! - [`pdf_queue`]: the queue of PDF signature checks a node holds, and their trust anchors.
//! - [`pdf_check`]: the signatures inside delivered PDF attachments, checked after delivery
//!   and reported (never a refusal).
//! - [`proof`]: a document's proof bundle (one ZIP) from the store, and its offline check.

pub mod assess;
pub mod broker_state;
pub mod gate;
pub mod intake;
pub mod limits;
pub mod metrics;
pub mod monitor;
pub mod node;
pub mod offline;
pub mod pdf_check;
pub mod pdf_queue;
pub mod proof;
pub mod register;
pub mod report;
pub mod route;
pub mod security;
pub mod security_events;
pub mod stamp;
pub mod traffic;
pub mod upward;
