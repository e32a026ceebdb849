//! Rate and byte limits against abuse (`[limits]`, `[[api_client]]` overrides): token buckets
//! for each API client and each child link, and the once-a-minute rule for the security event a
//! limited peer raises.
//!
//! A bucket holds at most one minute's allowance and refills evenly: a client within its limit
//! never waits, one that sends a minute's worth at once then gets one item per 1/rate seconds.

use std::time::{Duration, Instant};

/// Security events for one limited peer are recorded at most once per this period; the
/// refusals in between are counted in the metrics only.
pub const EVENT_EVERY: Duration = Duration::from_secs(60);

/// A token bucket of `per_minute` tokens per minute, holding at most one minute's worth.
#[derive(Debug, Clone)]
pub struct Bucket {
    per_minute: u64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket of `per_minute` (0: unlimited).
    pub fn new(per_minute: u64, now: Instant) -> Self {
        Self {
            per_minute,
            tokens: per_minute as f64,
            at: now,
        }
    }

    /// Whether it limits anything.
    pub fn limited(&self) -> bool {
        self.per_minute > 0
    }

    fn refill(&mut self, now: Instant) {
        let secs = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        let cap = self.per_minute as f64;
        self.tokens = (self.tokens + secs * cap / 60.0).min(cap);
    }

    fn wait_for(&self, n: f64) -> Duration {
        let missing = n - self.tokens;
        if missing <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(missing * 60.0 / self.per_minute as f64)
    }

    /// Changes the rate (a reload). The tokens held stay, up to one minute's worth of the new
    /// rate; a bucket that was unlimited starts full.
    pub fn set_rate(&mut self, per_minute: u64, now: Instant) {
        if per_minute == self.per_minute {
            return;
        }
        let was_unlimited = !self.limited();
        self.refill(now);
        self.per_minute = per_minute;
        self.tokens = if was_unlimited {
            per_minute as f64
        } else {
            self.tokens.min(per_minute as f64)
        };
    }

    /// Takes `n` tokens if they are there; otherwise takes nothing and says how long until
    /// they will be. `n` larger than the whole bucket waits for a full bucket and then goes
    /// (see [`Bucket::debit`] for amounts that may exceed the bucket).
    pub fn take(&mut self, n: u64, now: Instant) -> Result<(), Duration> {
        if !self.limited() {
            return Ok(());
        }
        self.refill(now);
        let n = (n as f64).min(self.per_minute as f64);
        if self.tokens >= n {
            self.tokens -= n;
            Ok(())
        } else {
            Err(self.wait_for(n))
        }
    }

    /// Takes `n` tokens even if that leaves a debt, and says how long until the debt is paid
    /// (zero when there was enough): the caller waits that long before taking more.
    pub fn debit(&mut self, n: u64, now: Instant) -> Duration {
        if !self.limited() {
            return Duration::ZERO;
        }
        self.refill(now);
        self.tokens -= n as f64;
        self.wait_for(0.0)
    }
}

/// Says when a limited peer's refusal should also be a security event: the first time, then
/// at most once per [`EVENT_EVERY`].
#[derive(Debug, Default, Clone)]
pub struct EventGate {
    last: Option<Instant>,
    suppressed: u64,
}

impl EventGate {
    /// Counts one refusal at `now`. Returns `Some(n)` when it should be recorded, with the
    /// number of refusals since the last recorded one (this one included).
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        self.suppressed += 1;
        match self.last {
            Some(t) if now.saturating_duration_since(t) < EVENT_EVERY => None,
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_full_minute_goes_at_once_then_the_rate_rules() {
        let t0 = Instant::now();
        let mut b = Bucket::new(60, t0);
        for i in 0..60 {
            assert_eq!(b.take(1, t0), Ok(()), "item {i}");
        }
        let wait = b.take(1, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-6, "{wait:?}");
        // After one second, one more.
        assert_eq!(b.take(1, t0 + Duration::from_secs(1)), Ok(()));
        assert!(b.take(1, t0 + Duration::from_secs(1)).is_err());
        // Never more than a minute's worth saved up.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..60 {
            assert_eq!(b.take(1, later), Ok(()));
        }
        assert!(b.take(1, later).is_err());
    }

    #[test]
    fn a_debt_is_paid_in_time() {
        let t0 = Instant::now();
        let mut b = Bucket::new(600, t0);
        assert_eq!(b.debit(600, t0), Duration::ZERO);
        // 300 over: half a minute to pay.
        let wait = b.debit(300, t0);
        assert!((wait.as_secs_f64() - 30.0).abs() < 1e-6, "{wait:?}");
        assert!(b.take(1, t0 + Duration::from_secs(29)).is_err());
        assert_eq!(b.take(1, t0 + Duration::from_secs(31)), Ok(()));
    }

    #[test]
    fn zero_is_no_limit() {
        let t0 = Instant::now();
        let mut b = Bucket::new(0, t0);
        assert!((0..100_000).all(|_| b.take(1, t0).is_ok()));
        assert_eq!(b.debit(u64::MAX / 2, t0), Duration::ZERO);
    }

    #[test]
    fn events_at_most_once_a_minute_with_the_count() {
        let t0 = Instant::now();
        let mut g = EventGate::default();
        assert_eq!(g.hit(t0), Some(1));
        assert_eq!(g.hit(t0 + Duration::from_secs(1)), None);
        assert_eq!(g.hit(t0 + Duration::from_secs(2)), None);
        assert_eq!(g.hit(t0 + EVENT_EVERY), Some(3));
    }
}
