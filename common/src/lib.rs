//! Everything the relay and the gateway share.
//!
//! # Layout
//! - [`agency`]: agency codes (mã định danh), their hierarchy and subtree test.
//! - [`audit`]: the hash-chained audit log, its verification and its pruning under retention.
//! - [`backup`]: backup files of a node's store (with its attachment files) and restoring them.
//! - [`config`]: node configuration (TOML + `LT_*` overrides), raw and resolved.
//! - [`envelope`]: structural validation of envelopes and receipts, size limits.
//! - [`input`]: the one definition of valid input (identifiers, text fields, file names).
//! - [`pki`]: the development certificate authority behind `lt-relay pki`.
//! - [`trust`]: the interchange CA and CRL; the one certificate-chain check.
//! - [`signing`]: signing bytes, agency signers, verification into `Verified<T>`.
//! - [`store`]: the sled store with group commit and the `Persisted` proof.
//! - [`tls`]: rustls configurations for the mutual-TLS 1.3 link.
//! - [`telemetry`]: logging configuration from `LT_LOG` / `LT_LOG_FORMAT`.

#![warn(missing_docs)]

pub mod agency;
pub mod audit;
pub mod backup;
pub mod clock;
pub mod config;
pub mod envelope;
pub mod input;
pub mod pki;
pub mod signing;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod trust;

pub use lienthong_proto as proto;

pub use clock::CLOCK_FILE_ENV;

/// Milliseconds since the Unix epoch, by the system clock. The business clock of a node is its
/// [`clock::Clock`].
pub fn now_unix_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// [`now_unix_ms`] as a date-time (UTC).
pub fn now_utc() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_unix_ms()) * 1_000_000)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
}
