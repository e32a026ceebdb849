//! The tamper-evident audit log: security events (and, later, register entries) appended to a
//! hash chain in the node's store.
//!
//! Each record carries its sequence number, the hash of the record before it and its own hash,
//! `SHA-256(prev_hash || canonical JSON of the record without its hash)`. [`verify`] walks the
//! chain and names the first record that was edited, deleted or moved.
//!
//! # Retention
//! [`prune`] removes the records older than the retention period from the start of the chain.
//! It leaves an *anchor* (meta `audit/anchor`: the sequence number and hash of the last record
//! removed), from which [`verify`] starts instead of the genesis hash, and appends a record of
//! class [`PRUNED_CLASS`] naming that anchor, in the same atomic batch. An anchor that no record
//! of the chain confirms (one moved forward to hide more records) fails verification, unless
//! every record after it was rewritten, which also defeats the chain without pruning.

use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// Hash of the (absent) record before the first one.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// When it was recorded, unix ms.
    pub at_unix_ms: i64,
    /// `security` or `register`.
    pub kind: String,
    /// Event class, e.g. `tls_handshake`, `bad_signature`, `spoofed_sender`.
    pub class: String,
    /// Peer concerned (agency code or network address), if any.
    pub peer: String,
    /// Agency concerned (e.g. the claimed sender), if any.
    pub agency: String,
    /// Why.
    pub reason: String,
    /// Hash of the previous record (hex).
    pub prev_hash: String,
    /// Hash of this record (hex).
    pub hash: String,
}

impl AuditRecord {
    fn compute_hash(&self) -> String {
        let mut unhashed = self.clone();
        unhashed.hash = String::new();
        let body = serde_json::to_vec(&unhashed).unwrap_or_default();
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(self.prev_hash.as_bytes());
        ctx.update(&body);
        hex::encode(ctx.finish())
    }
}

/// What is wrong with the chain, naming the first bad record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditBreak {
    /// A record's content no longer matches its hash.
    #[error("record {seq} was edited: its content does not match its hash")]
    Edited {
        /// Sequence number.
        seq: u64,
    },
    /// A sequence number is missing.
    #[error("record {expected} is missing (the next one present is {found})")]
    Missing {
        /// The number expected.
        expected: u64,
        /// The number found instead.
        found: u64,
    },
    /// A record does not follow the one before it.
    #[error("record {seq} does not follow record {prev}: records were moved or replaced")]
    Broken {
        /// Sequence number.
        seq: u64,
        /// The one before.
        prev: u64,
    },
    /// A record does not parse.
    #[error("record at position {position} is unreadable: {reason}")]
    Unreadable {
        /// Position in the log.
        position: u64,
        /// Why.
        reason: String,
    },
    /// The log ends before the record it last appended: the newest records were deleted.
    #[error("record {last} was the last appended but the log ends at record {found}: the newest records were deleted")]
    Truncated {
        /// Sequence number of the record last appended (meta `audit/last`).
        last: u64,
        /// The newest record present (0: none).
        found: u64,
    },
    /// The newest record is not the one appended under its number.
    #[error("record {seq} is not the record appended under that number: it was replaced")]
    Replaced {
        /// Sequence number.
        seq: u64,
    },
    /// The pruning anchor is not confirmed by a pruning record of the chain.
    #[error("the log says records up to {seq} were pruned, but no pruning record in the chain confirms it: records were removed")]
    AnchorUnconfirmed {
        /// Sequence number the anchor names.
        seq: u64,
    },
    /// The pruning anchor (meta `audit/anchor`) does not parse.
    #[error("the pruning anchor is unreadable: {reason}")]
    BadAnchor {
        /// Why.
        reason: String,
    },
}

/// Kind of the records [`prune`] appends.
pub const PRUNED_KIND: &str = "audit";
/// Class of the records [`prune`] appends; their reason ends with `anchor <seq> <hash>`.
pub const PRUNED_CLASS: &str = "audit_pruned";
/// Records removed per atomic batch by [`prune`] (each batch appends its own pruning record).
pub const MAX_PRUNE_BATCH: usize = 10_000;

const LAST_META: &str = "audit/last";
const ANCHOR_META: &str = "audit/anchor";
const DAY_MS: i64 = 86_400_000;

/// Where the chain starts after pruning: the last record removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// Its sequence number.
    pub seq: u64,
    /// Its hash (hex).
    pub hash: String,
}

impl Anchor {
    fn encode(&self) -> String {
        format!("{} {}", self.seq, self.hash)
    }

    fn decode(text: &str) -> Option<Self> {
        let (seq, hash) = text.trim().split_once(' ')?;
        let hash_ok = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        Some(Self {
            seq: seq.parse().ok()?,
            hash: hash_ok.then(|| hash.to_owned())?,
        })
    }

    /// The anchor a pruning record names, if `rec` is one.
    fn named_by(rec: &AuditRecord) -> Option<Self> {
        if rec.kind != PRUNED_KIND || rec.class != PRUNED_CLASS {
            return None;
        }
        Self::decode(rec.reason.rsplit_once("anchor ")?.1)
    }
}

/// The pruning anchor, if records were pruned.
pub fn anchor(store: &Store) -> Result<Option<Result<Anchor, AuditBreak>>, StoreError> {
    Ok(store.get_meta(ANCHOR_META)?.map(|v| {
        let text = String::from_utf8_lossy(&v).into_owned();
        Anchor::decode(&text).ok_or(AuditBreak::BadAnchor {
            reason: format!("{text:?} is not `<seq> <sha-256 hex>`"),
        })
    }))
}

fn last(store: &Store) -> Result<Option<Anchor>, StoreError> {
    Ok(store
        .get_meta(LAST_META)?
        .and_then(|v| Anchor::decode(&String::from_utf8_lossy(&v))))
}

/// Appends a record made at `at_unix_ms` (the node's business clock; not durable until the
/// next commit). Appends are serialised by the store.
pub fn append(
    store: &Store,
    at_unix_ms: i64,
    kind: &str,
    class: &str,
    peer: &str,
    agency: &str,
    reason: &str,
) -> Result<AuditRecord, StoreError> {
    store.with_audit_lock(|| {
        let (rec, body) = next_record(store, at_unix_ms, kind, class, peer, agency, reason)?;
        store.audit_append(rec.seq, &body, &format!("{} {}", rec.seq, rec.hash))?;
        Ok(rec)
    })
}

/// Kind of the records that hold an RFC 3161 time-stamp of the chain's head (class
/// [`HEAD_STAMP_CLASS`]): written into the chain itself, so they are covered by it.
pub const TIMESTAMP_KIND: &str = "timestamp";
/// Class of those records; the reason is `seq <n> hash <hex> token <hex DER>`.
pub const HEAD_STAMP_CLASS: &str = "audit_head";

/// The last record appended: its sequence number and hash (0 and [`GENESIS`] for an empty
/// log).
pub fn head(store: &Store) -> Result<(u64, String), StoreError> {
    Ok(match store.get_meta(LAST_META)? {
        Some(v) => {
            let text = String::from_utf8_lossy(&v).into_owned();
            let (s, h) = text.split_once(' ').unwrap_or(("0", GENESIS));
            (s.parse().unwrap_or(0), h.to_owned())
        }
        None => (0, GENESIS.to_owned()),
    })
}

/// The record that follows the last one appended, and its stored form. Call holding the
/// audit lock, and write both the record and `audit/last` in one batch.
fn next_record(
    store: &Store,
    at_unix_ms: i64,
    kind: &str,
    class: &str,
    peer: &str,
    agency: &str,
    reason: &str,
) -> Result<(AuditRecord, Vec<u8>), StoreError> {
    let (last_seq, last_hash) = head(store)?;
    let mut rec = AuditRecord {
        seq: last_seq + 1,
        at_unix_ms,
        kind: kind.to_owned(),
        class: class.to_owned(),
        peer: peer.to_owned(),
        agency: agency.to_owned(),
        reason: reason.to_owned(),
        prev_hash: last_hash,
        hash: String::new(),
    };
    rec.hash = rec.compute_hash();
    let body = serde_json::to_vec(&rec).map_err(|e| StoreError::Corrupt {
        key: "audit".into(),
        reason: e.to_string(),
    })?;
    Ok((rec, body))
}

/// Every record, in order (unchecked).
pub fn records(store: &Store) -> Result<Vec<Result<AuditRecord, String>>, StoreError> {
    Ok(store
        .audit_records()?
        .into_iter()
        .map(|(_, v)| serde_json::from_slice::<AuditRecord>(&v).map_err(|e| e.to_string()))
        .collect())
}

/// Walks the chain; returns the number of records present when it is intact.
///
/// The walk starts at the pruning anchor when there is one (the first record must then follow
/// it), and ends at the record last appended (meta `audit/last`): a missing start, gap, edit,
/// move or missing end is named. A break seen while an append or a prune ran is checked again
/// under the audit lock before it is reported.
pub fn verify(store: &Store) -> Result<Result<u64, AuditBreak>, StoreError> {
    match walk(store)? {
        Ok(n) => Ok(Ok(n)),
        Err(_) => store.with_audit_lock(|| walk(store)),
    }
}

/// The walk of [`verify`]: the number of records present when the chain is intact.
fn walk(store: &Store) -> Result<Result<u64, AuditBreak>, StoreError> {
    // Read the head before the records: appends only add after it, so every record it names
    // is present in the scan that follows unless it was removed.
    let head = last(store)?;
    let anchor = match anchor(store)? {
        None => None,
        Some(Ok(a)) => Some(a),
        Some(Err(b)) => return Ok(Err(b)),
    };
    let (mut prev_hash, mut expected) = match &anchor {
        Some(a) => (a.hash.clone(), a.seq + 1),
        None => (GENESIS.to_owned(), 1),
    };
    let mut confirmed = anchor.is_none();
    let mut count = 0u64;
    for (i, r) in records(store)?.into_iter().enumerate() {
        let rec = match r {
            Ok(r) => r,
            Err(reason) => {
                return Ok(Err(AuditBreak::Unreadable {
                    position: i as u64 + 1,
                    reason,
                }))
            }
        };
        if rec.hash != rec.compute_hash() {
            return Ok(Err(AuditBreak::Edited { seq: rec.seq }));
        }
        if rec.seq != expected {
            if rec.seq > expected {
                return Ok(Err(AuditBreak::Missing {
                    expected,
                    found: rec.seq,
                }));
            }
            return Ok(Err(AuditBreak::Broken {
                seq: rec.seq,
                prev: expected - 1,
            }));
        }
        if rec.prev_hash != prev_hash {
            return Ok(Err(AuditBreak::Broken {
                seq: rec.seq,
                prev: expected - 1,
            }));
        }
        if !confirmed && Anchor::named_by(&rec).as_ref() == anchor.as_ref() {
            confirmed = true;
        }
        prev_hash = rec.hash.clone();
        expected += 1;
        count += 1;
    }
    let end = Anchor {
        seq: expected - 1,
        hash: prev_hash,
    };
    if let Some(head) = head {
        if head.seq > end.seq {
            return Ok(Err(AuditBreak::Truncated {
                last: head.seq,
                found: end.seq,
            }));
        }
        if head.seq == end.seq && head.hash != end.hash {
            return Ok(Err(AuditBreak::Replaced { seq: end.seq }));
        }
    }
    if let (false, Some(a)) = (confirmed, &anchor) {
        return Ok(Err(AuditBreak::AnchorUnconfirmed { seq: a.seq }));
    }
    Ok(Ok(count))
}

/// What one call of [`prune`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// Records removed.
    pub count: u64,
    /// The newest record removed (the anchor now).
    pub through_seq: u64,
}

/// Why [`prune`] removed nothing.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PruneError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The chain does not verify: pruning would erase the evidence, so nothing is removed.
    #[error("the audit log does not verify, so no record was pruned (the evidence is kept): {0}")]
    Broken(AuditBreak),
}

/// Removes the records older than `retention_days` before `now_unix_ms` from the start of the
/// chain (at most [`MAX_PRUNE_BATCH`] per atomic batch), moving the anchor past them and
/// appending a [`PRUNED_CLASS`] record per batch that names the new anchor. The chain is
/// verified first: a broken chain is left as it is. `retention_days == 0` keeps everything.
/// Returns what was removed (`None`: nothing was old enough); not durable until the next commit.
pub fn prune(
    store: &Store,
    retention_days: u32,
    now_unix_ms: i64,
) -> Result<Option<Pruned>, PruneError> {
    if retention_days == 0 {
        return Ok(None);
    }
    let cutoff = now_unix_ms.saturating_sub(i64::from(retention_days).saturating_mul(DAY_MS));
    store.with_audit_lock(|| {
        let records = match walk(store)? {
            Ok(n) => n,
            Err(b) => return Ok(Err(PruneError::Broken(b))),
        };
        if records == 0 {
            return Ok(Ok(None));
        }
        let mut total: Option<Pruned> = None;
        loop {
            let mut old = Vec::new();
            for (k, v) in store.audit_records()? {
                // The walk above read every record: they all parse.
                let Ok(rec) = serde_json::from_slice::<AuditRecord>(&v) else {
                    break;
                };
                if rec.at_unix_ms >= cutoff || old.len() >= MAX_PRUNE_BATCH {
                    break;
                }
                old.push((k, rec));
            }
            let Some((_, newest)) = old.last() else {
                break;
            };
            let anchor = Anchor {
                seq: newest.seq,
                hash: newest.hash.clone(),
            };
            let count = old.len() as u64;
            let first = old.first().map_or(anchor.seq, |(_, r)| r.seq);
            let (rec, body) = next_record(
                store,
                now_unix_ms,
                PRUNED_KIND,
                PRUNED_CLASS,
                "",
                "",
                &format!(
                    "records {first} to {} (older than {retention_days} days) pruned; anchor {}",
                    anchor.seq,
                    anchor.encode()
                ),
            )?;
            let remove: Vec<Vec<u8>> = old.into_iter().map(|(k, _)| k).collect();
            store.audit_prune(
                rec.seq,
                body,
                &format!("{} {}", rec.seq, rec.hash),
                &anchor.encode(),
                &remove,
            )?;
            let t = total.get_or_insert(Pruned {
                count: 0,
                through_seq: 0,
            });
            t.count += count;
            t.through_seq = anchor.seq;
            if (count as usize) < MAX_PRUNE_BATCH {
                break;
            }
        }
        Ok(Ok(total))
    })?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::audit_key as key;

    const DAY: i64 = DAY_MS;
    fn now() -> i64 {
        crate::now_unix_ms()
    }

    /// A log whose records carry the given times (ms), chained as `append` chains them.
    fn log_at(times: &[i64]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        for (i, at) in times.iter().enumerate() {
            let (mut rec, _) =
                next_record(&s, *at, "security", "replay", "", "", &format!("e{i}")).unwrap();
            rec.at_unix_ms = *at;
            rec.hash = rec.compute_hash();
            s.put_raw_pair(
                &key(rec.seq),
                &serde_json::to_vec(&rec).unwrap(),
                b"m/audit/last",
                format!("{} {}", rec.seq, rec.hash).as_bytes(),
            )
            .unwrap();
        }
        (dir, s)
    }

    fn rec(s: &Store, seq: u64) -> AuditRecord {
        serde_json::from_slice(&s.get_raw(&key(seq)).unwrap().unwrap()).unwrap()
    }

    /// Records 1–5 are 40 days old, 6–10 a day old; a 30-day retention prunes 1–5.
    fn pruned_log() -> (tempfile::TempDir, Store) {
        let mut times = vec![now() - 40 * DAY; 5];
        times.extend([now() - DAY; 5]);
        let (d, s) = log_at(&times);
        assert_eq!(
            prune(&s, 30, now()).unwrap(),
            Some(Pruned {
                count: 5,
                through_seq: 5
            })
        );
        (d, s)
    }

    #[test]
    fn prune_keeps_the_chain_verifiable() {
        let (_d, s) = pruned_log();
        assert!(s.get_raw(&key(5)).unwrap().is_none());
        assert!(s.get_raw(&key(6)).unwrap().is_some());
        // Records 6–10 and the pruning record 11, which names the anchor.
        assert_eq!(verify(&s).unwrap(), Ok(6));
        let a = anchor(&s).unwrap().unwrap().unwrap();
        assert_eq!(a.seq, 5);
        assert_eq!(rec(&s, 6).prev_hash, a.hash);
        let p = rec(&s, 11);
        assert_eq!(
            (p.kind.as_str(), p.class.as_str()),
            (PRUNED_KIND, PRUNED_CLASS)
        );
        assert_eq!(Anchor::named_by(&p), Some(a));
        // Appends go on after the pruning record; nothing new is old enough to prune again.
        append(&s, now(), "security", "replay", "", "", "later").unwrap();
        assert_eq!(verify(&s).unwrap(), Ok(7));
        assert_eq!(prune(&s, 30, now()).unwrap(), None);
        // A second prune moves the anchor and is confirmed by its own record.
        assert_eq!(
            prune(&s, 30, now() + 40 * DAY).unwrap(),
            Some(Pruned {
                count: 7,
                through_seq: 12
            })
        );
        assert_eq!(verify(&s).unwrap(), Ok(1));
        assert_eq!(anchor(&s).unwrap().unwrap().unwrap().seq, 12);
    }

    #[test]
    fn nothing_is_pruned_without_retention_or_old_records() {
        let (_d, s) = log_at(&[now() - 400 * DAY, now()]);
        assert_eq!(prune(&s, 0, now()).unwrap(), None);
        assert_eq!(prune(&s, 500, now()).unwrap(), None);
        assert_eq!(verify(&s).unwrap(), Ok(2));
        assert!(anchor(&s).unwrap().is_none());
    }

    #[test]
    fn after_pruning_a_deleted_record_is_named() {
        let (_d, s) = pruned_log();
        s.remove_raw(&key(6)).unwrap();
        assert_eq!(
            verify(&s).unwrap(),
            Err(AuditBreak::Missing {
                expected: 6,
                found: 7
            })
        );
        let (_d, s) = pruned_log();
        s.remove_raw(&key(8)).unwrap();
        assert_eq!(
            verify(&s).unwrap(),
            Err(AuditBreak::Missing {
                expected: 8,
                found: 9
            })
        );
    }

    #[test]
    fn after_pruning_an_edited_record_is_named() {
        let (_d, s) = pruned_log();
        let mut r = rec(&s, 7);
        r.reason = "nothing happened".into();
        s.put_raw(&key(7), &serde_json::to_vec(&r).unwrap())
            .unwrap();
        assert_eq!(verify(&s).unwrap(), Err(AuditBreak::Edited { seq: 7 }));
    }

    #[test]
    fn after_pruning_a_swapped_pair_is_named() {
        let (_d, s) = pruned_log();
        let a = s.get_raw(&key(7)).unwrap().unwrap();
        let b = s.get_raw(&key(8)).unwrap().unwrap();
        s.put_raw(&key(7), &b).unwrap();
        s.put_raw(&key(8), &a).unwrap();
        assert_eq!(
            verify(&s).unwrap(),
            Err(AuditBreak::Missing {
                expected: 7,
                found: 8
            })
        );
    }

    #[test]
    fn the_newest_record_deleted_or_replaced_is_named() {
        let (_d, s) = log_with(10);
        s.remove_raw(&key(10)).unwrap();
        assert_eq!(
            verify(&s).unwrap(),
            Err(AuditBreak::Truncated { last: 10, found: 9 })
        );
        // After pruning too, including the pruning record itself.
        let (_d, s) = pruned_log();
        s.remove_raw(&key(11)).unwrap();
        assert_eq!(
            verify(&s).unwrap(),
            Err(AuditBreak::Truncated {
                last: 11,
                found: 10
            })
        );
        // A newest record rewritten with a fresh hash no longer matches the head.
        let (_d, s) = log_with(3);
        let mut r = rec(&s, 3);
        r.reason = "nothing happened".into();
        r.hash = r.compute_hash();
        s.put_raw(&key(3), &serde_json::to_vec(&r).unwrap())
            .unwrap();
        assert_eq!(verify(&s).unwrap(), Err(AuditBreak::Replaced { seq: 3 }));
    }

    #[test]
    fn a_forged_anchor_that_skips_records_is_detected() {
        let (_d, s) = pruned_log();
        // Hide records 6 and 7 behind an anchor that follows on to record 8.
        let seven = rec(&s, 7);
        s.remove_raw(&key(6)).unwrap();
        s.remove_raw(&key(7)).unwrap();
        s.put_meta(ANCHOR_META, format!("7 {}", seven.hash).as_bytes())
            .unwrap();
        assert_eq!(
            verify(&s).unwrap(),
            Err(AuditBreak::AnchorUnconfirmed { seq: 7 })
        );
        // An anchor on a log that was never pruned, hiding its first records.
        let (_d, s) = log_with(5);
        let two = rec(&s, 2);
        s.remove_raw(&key(1)).unwrap();
        s.remove_raw(&key(2)).unwrap();
        s.put_meta(ANCHOR_META, format!("2 {}", two.hash).as_bytes())
            .unwrap();
        assert_eq!(
            verify(&s).unwrap(),
            Err(AuditBreak::AnchorUnconfirmed { seq: 2 })
        );
        // Removing the anchor after a prune exposes the pruned start.
        let (_d, s) = pruned_log();
        s.remove_raw(b"m/audit/anchor").unwrap();
        assert_eq!(
            verify(&s).unwrap(),
            Err(AuditBreak::Missing {
                expected: 1,
                found: 6
            })
        );
        // A garbled anchor is named as such.
        s.put_meta(ANCHOR_META, b"five").unwrap();
        assert!(matches!(
            verify(&s).unwrap(),
            Err(AuditBreak::BadAnchor { .. })
        ));
    }

    #[test]
    fn a_broken_chain_is_not_pruned() {
        let mut times = vec![now() - 40 * DAY; 5];
        times.extend([now(); 2]);
        let (_d, s) = log_at(&times);
        let mut r = rec(&s, 2);
        r.reason = "nothing happened".into();
        s.put_raw(&key(2), &serde_json::to_vec(&r).unwrap())
            .unwrap();
        assert!(matches!(
            prune(&s, 30, now()),
            Err(PruneError::Broken(AuditBreak::Edited { seq: 2 }))
        ));
        assert!(s.get_raw(&key(1)).unwrap().is_some());
        assert!(anchor(&s).unwrap().is_none());
    }

    fn log_with(n: u64) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        for i in 0..n {
            append(
                &s,
                crate::now_unix_ms(),
                "security",
                "bad_signature",
                "000.00.31.H53",
                "000.21.31.H53",
                &format!("event {i}"),
            )
            .unwrap();
        }
        (dir, s)
    }

    #[test]
    fn intact_chain_verifies() {
        let (_d, s) = log_with(10);
        assert_eq!(verify(&s).unwrap(), Ok(10));
    }

    #[test]
    fn an_edited_record_is_named() {
        let (_d, s) = log_with(10);
        let mut r: AuditRecord =
            serde_json::from_slice(&s.get_raw(&key(4)).unwrap().unwrap()).unwrap();
        r.reason = "nothing happened".into();
        s.put_raw(&key(4), &serde_json::to_vec(&r).unwrap())
            .unwrap();
        assert_eq!(verify(&s).unwrap(), Err(AuditBreak::Edited { seq: 4 }));
        // Recomputing its hash does not help: the next record no longer follows it.
        r.hash = r.compute_hash();
        s.put_raw(&key(4), &serde_json::to_vec(&r).unwrap())
            .unwrap();
        assert_eq!(
            verify(&s).unwrap(),
            Err(AuditBreak::Broken { seq: 5, prev: 4 })
        );
    }

    #[test]
    fn a_deleted_record_is_named() {
        let (_d, s) = log_with(10);
        s.remove_raw(&key(6)).unwrap();
        assert_eq!(
            verify(&s).unwrap(),
            Err(AuditBreak::Missing {
                expected: 6,
                found: 7
            })
        );
    }

    #[test]
    fn a_swapped_pair_is_named() {
        let (_d, s) = log_with(10);
        let a = s.get_raw(&key(3)).unwrap().unwrap();
        let b = s.get_raw(&key(4)).unwrap().unwrap();
        s.put_raw(&key(3), &b).unwrap();
        s.put_raw(&key(4), &a).unwrap();
        assert!(matches!(
            verify(&s).unwrap(),
            Err(AuditBreak::Missing {
                expected: 3,
                found: 4
            })
        ));
    }
}
