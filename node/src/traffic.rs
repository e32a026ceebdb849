//! The node's traffic minute by minute over the last day, for the console's charts: documents
//! in and out per link, queue depth per link, hop-ack latency and refusals by reason.
//!
//! The counting is in memory ([`Traffic`], fed where the metrics are); once a minute the
//! relay's upkeep closes the minute ([`close_minute`]) into a small record in the store (`w/<minute>`) and drops
//! the records older than a day. The records are not made durable on their own: a crash loses
//! at most the last minutes of a chart, never a document. The current, unclosed minute is read
//! from memory, so a chart shows what happened seconds ago.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use lienthong_common::agency::AgencyCode;
use lienthong_common::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use tracing::warn;

/// How many minutes of traffic are kept.
pub const KEPT_MINUTES: u64 = 24 * 60;

/// Upper bounds (ms) of the hop-ack latency classes; one more class holds what is slower.
pub const ACK_BOUNDS_MS: [u32; 14] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000,
];

/// The pseudo-link of the node's own agencies: documents submitted here (in) and delivered
/// into a local inbox here (out).
pub const LOCAL: &str = "local";

/// One link's traffic in a minute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkMinute {
    /// Documents received from the neighbour (for [`LOCAL`]: submitted here).
    #[serde(default)]
    pub docs_in: u64,
    /// Documents the neighbour acknowledged (for [`LOCAL`]: delivered here).
    #[serde(default)]
    pub docs_out: u64,
    /// Items queued for the neighbour when the minute closed.
    #[serde(default)]
    pub depth: u64,
}

/// The traffic of one minute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Minute {
    /// Minutes since the Unix epoch.
    pub minute: u64,
    /// Per neighbour (agency code, or [`LOCAL`]).
    #[serde(default)]
    pub links: BTreeMap<String, LinkMinute>,
    /// Hop acks received, per latency class ([`ACK_BOUNDS_MS`], then the slower ones).
    #[serde(default)]
    pub acks: Vec<u64>,
    /// Items refused, by reason.
    #[serde(default)]
    pub refused: BTreeMap<String, u64>,
}

impl Minute {
    /// Hop acks in the minute.
    pub fn ack_count(&self) -> u64 {
        self.acks.iter().sum()
    }

    /// The latency class bound (ms) below which `p` percent of the minute's hop acks came;
    /// `None` without acks, `u32::MAX` for the open class.
    pub fn ack_percentile_ms(&self, p: u64) -> Option<u32> {
        percentile(&self.acks, p)
    }
}

/// The bound (ms) of the class holding the `p`th percentile of `classes`.
pub fn percentile(classes: &[u64], p: u64) -> Option<u32> {
    let total: u64 = classes.iter().sum();
    if total == 0 {
        return None;
    }
    // Nearest rank: the smallest class whose running count reaches p% of the total.
    let rank = (total * p).div_ceil(100).max(1);
    let mut seen = 0;
    for (i, n) in classes.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(ACK_BOUNDS_MS.get(i).copied().unwrap_or(u32::MAX));
        }
    }
    Some(u32::MAX)
}

/// In-memory counting of the current minute.
#[derive(Debug, Default)]
pub struct Traffic {
    current: Mutex<Minute>,
}

impl Traffic {
    fn now(&self) -> MutexGuard<'_, Minute> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A document came in from `peer` (or [`LOCAL`]).
    pub fn document_in(&self, peer: &str) {
        self.now().links.entry(peer.to_owned()).or_default().docs_in += 1;
    }

    /// A document went out to `peer` (or [`LOCAL`]).
    pub fn document_out(&self, peer: &str) {
        self.now()
            .links
            .entry(peer.to_owned())
            .or_default()
            .docs_out += 1;
    }

    /// An item's hop ack came `seconds` after it was sent.
    pub fn acked(&self, seconds: f64) {
        let ms = seconds * 1000.0;
        let class = ACK_BOUNDS_MS
            .iter()
            .position(|b| ms <= f64::from(*b))
            .unwrap_or(ACK_BOUNDS_MS.len());
        let mut m = self.now();
        if m.acks.len() <= ACK_BOUNDS_MS.len() {
            m.acks.resize(ACK_BOUNDS_MS.len() + 1, 0);
        }
        if let Some(n) = m.acks.get_mut(class) {
            *n += 1;
        }
    }

    /// An item was refused for `reason`.
    pub fn refused(&self, reason: &str) {
        *self.now().refused.entry(reason.to_owned()).or_default() += 1;
    }

    /// The minute counted so far (not closed).
    pub fn peek(&self) -> Minute {
        self.now().clone()
    }

    /// Ends the minute being counted and starts `next`; returns the one that ended.
    fn close(&self, next: u64) -> Minute {
        let mut m = self.now();
        std::mem::replace(
            &mut *m,
            Minute {
                minute: next,
                ..Minute::default()
            },
        )
    }
}

fn unix_minute(now_ms: i64) -> u64 {
    u64::try_from(now_ms.div_euclid(60_000)).unwrap_or(0)
}

/// Closes the current minute of `traffic` at `now_ms`: adds the queue depths toward
/// `neighbours`, writes it into `store` and drops what is older than a day.
pub fn close_minute(
    store: &Store,
    traffic: &Traffic,
    now_ms: i64,
    neighbours: &[AgencyCode],
) -> Result<Minute, StoreError> {
    let now = unix_minute(now_ms);
    let mut m = traffic.close(now);
    if m.minute == 0 {
        // The first minute after start: counted from start, filed under the minute just gone.
        m.minute = now.saturating_sub(1);
    }
    for n in neighbours {
        let depth = store.queue_depth(n.as_str()) as u64;
        if depth > 0 || m.links.contains_key(n.as_str()) {
            m.links.entry(n.to_string()).or_default().depth = depth;
        }
    }
    match serde_json::to_vec(&m) {
        Ok(bytes) => store.put_traffic_minute(m.minute, &bytes)?,
        Err(e) => warn!(cause = %e, "cannot encode a traffic minute"),
    }
    store.prune_traffic_before(now.saturating_sub(KEPT_MINUTES))?;
    Ok(m)
}

/// The traffic of the last day at `now_ms`, oldest minute first, the current minute last
/// (queue depths toward `neighbours` as they are now). Records that no longer read are skipped.
pub fn last_day(
    store: &Store,
    traffic: &Traffic,
    now_ms: i64,
    neighbours: &[AgencyCode],
) -> Result<Vec<Minute>, StoreError> {
    let now = unix_minute(now_ms);
    let mut out: Vec<Minute> = store
        .traffic_since(now.saturating_sub(KEPT_MINUTES))?
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
        .collect();
    let mut current = traffic.peek();
    current.minute = now;
    for n in neighbours {
        let depth = store.queue_depth(n.as_str()) as u64;
        current.links.entry(n.to_string()).or_default().depth = depth;
    }
    out.push(current);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn latencies_fall_into_classes_and_percentiles_read_them() {
        let t = Traffic::default();
        for _ in 0..98 {
            t.acked(0.003); // 5 ms class
        }
        t.acked(0.150); // 200 ms class
        t.acked(45.0); // slower than every bound
        let m = t.peek();
        assert_eq!(m.ack_count(), 100);
        assert_eq!(m.ack_percentile_ms(50), Some(5));
        assert_eq!(m.ack_percentile_ms(99), Some(200));
        assert_eq!(m.ack_percentile_ms(100), Some(u32::MAX));
        assert_eq!(Minute::default().ack_percentile_ms(50), None);
    }

    #[test]
    fn closing_starts_an_empty_minute() {
        let t = Traffic::default();
        t.document_in("000.00.00.H53");
        t.document_out(LOCAL);
        t.refused("forged_sender");
        t.refused("forged_sender");
        let m = t.close(42);
        assert_eq!(m.links["000.00.00.H53"].docs_in, 1);
        assert_eq!(m.links[LOCAL].docs_out, 1);
        assert_eq!(m.refused["forged_sender"], 2);
        let next = t.peek();
        assert_eq!(next.minute, 42);
        assert!(next.links.is_empty() && next.refused.is_empty());
    }

    #[test]
    fn a_record_reads_back_and_tolerates_missing_fields() {
        let t = Traffic::default();
        t.document_in("x");
        t.acked(0.001);
        let m = t.close(7);
        let back: Minute = serde_json::from_slice(&serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        let sparse: Minute = serde_json::from_str(r#"{"minute":9}"#).unwrap();
        assert_eq!(sparse.minute, 9);
        assert_eq!(sparse.ack_count(), 0);
    }
}
