//! The business clock a node runs on: arrival dates, status and trace times, due dates and
//! overdue checks, register dates, audit record times. Certificate validity never uses it: it
//! always uses the system clock.
//!
//! The core receives a [`Clock`]; only a binary's edge decides which one ([`Clock::from_env`]),
//! and in-process tests set a [`Clock::fixed`] one.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Environment variable naming a file that holds the time a node should take as "now" (Unix
/// milliseconds, re-read on every reading). For tests of registers, reports and due dates: read
/// only by [`Clock::from_env`], at a binary's start.
pub const CLOCK_FILE_ENV: &str = "LT_CLOCK_FILE";

/// Where "now" comes from.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// The time written in a file (Unix ms); the system clock while the file is unreadable.
    File(PathBuf),
    /// A time set by the holder (tests); shared by every clone.
    Fixed(Arc<AtomicI64>),
}

impl Clock {
    /// The system clock, or the file named by `LT_CLOCK_FILE` when that is set.
    pub fn from_env() -> Self {
        match std::env::var_os(CLOCK_FILE_ENV).filter(|v| !v.is_empty()) {
            Some(p) => Self::File(PathBuf::from(p)),
            None => Self::System,
        }
    }

    /// A clock standing at `unix_ms` until [`Clock::set`] moves it.
    pub fn fixed(unix_ms: i64) -> Self {
        Self::Fixed(Arc::new(AtomicI64::new(unix_ms)))
    }

    /// Moves a fixed clock (and its clones) to `unix_ms`; other clocks are left alone.
    pub fn set(&self, unix_ms: i64) {
        if let Self::Fixed(t) = self {
            t.store(unix_ms, Ordering::Relaxed);
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_unix_ms(&self) -> i64 {
        match self {
            Self::System => crate::now_unix_ms(),
            Self::File(p) => std::fs::read_to_string(p)
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .unwrap_or_else(crate::now_unix_ms),
            Self::Fixed(t) => t.load(Ordering::Relaxed),
        }
    }

    /// [`Clock::now_unix_ms`] as a date-time (UTC).
    pub fn now_utc(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.now_unix_ms()) * 1_000_000)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fixed_clocks_move_together_and_files_are_re_read() {
        let c = Clock::fixed(1_000);
        let d = c.clone();
        d.set(5_000);
        assert_eq!(c.now_unix_ms(), 5_000);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("now");
        let fc = Clock::File(f.clone());
        let before = fc.now_unix_ms();
        assert!(
            before > 1_600_000_000_000,
            "unreadable file: the system clock"
        );
        std::fs::write(&f, "1700000000000\n").unwrap();
        assert_eq!(fc.now_unix_ms(), 1_700_000_000_000);
        std::fs::write(&f, "1800000000000").unwrap();
        assert_eq!(fc.now_utc().unix_timestamp(), 1_800_000_000);
    }
}
