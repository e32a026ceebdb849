//! Everything the relay and the gateway share.
//!
//! # Layout
//! - [`agency`]: agency codes (mã định danh), their hierarchy and subtree test.
//! - [`audit`]: the hash-chained audit log and its verification.
//! - [`config`]: node configuration (TOML + `LT_*` overrides), raw and resolved.
//! - [`edxml`]: edXML (QCVN 102:2016) packages to and from envelopes and status receipts.
//! - [`envelope`]: structural validation of envelopes and receipts, size limits.
//! - [`pki`]: the development certificate authority behind `lt-relay pki`.
//! - [`trust`]: the interchange CA and CRL; the one certificate-chain check.
//! - [`signing`]: signing bytes, agency signers, verification into `Verified<T>`.
//! - [`store`]: the sled store with group commit and the `Persisted` proof.
//! - [`tls`]: rustls configurations for the mutual-TLS 1.3 link.
//! - [`telemetry`]: logging configuration from `LT_LOG` / `LT_LOG_FORMAT`.

#![warn(missing_docs)]

pub mod agency;
pub mod audit;
pub mod config;
pub mod edxml;
pub mod envelope;
pub mod pki;
pub mod signing;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod trust;

pub use lienthong_proto as proto;

/// Milliseconds since the Unix epoch, from the system clock.
pub fn now_unix_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}
