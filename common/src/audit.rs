//! The tamper-evident audit log: security events (and, later, register entries) appended to a
//! hash chain in the node's store.
//!
//! Each record carries its sequence number, the hash of the record before it and its own hash,
//! `SHA-256(prev_hash || canonical JSON of the record without its hash)`. [`verify`] walks the
//! chain and names the first record that was edited, deleted or moved.

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
}

const PREFIX: &[u8] = b"A/";

fn key(seq: u64) -> Vec<u8> {
    let mut k = PREFIX.to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Appends a record (not durable until the next commit). Appends are serialised by the store.
pub fn append(
    store: &Store,
    kind: &str,
    class: &str,
    peer: &str,
    agency: &str,
    reason: &str,
) -> Result<AuditRecord, StoreError> {
    store.with_audit_lock(|| {
        let (last_seq, last_hash) = match store.get_meta("audit/last")? {
            Some(v) => {
                let text = String::from_utf8_lossy(&v).into_owned();
                let (s, h) = text.split_once(' ').unwrap_or(("0", GENESIS));
                (s.parse().unwrap_or(0), h.to_owned())
            }
            None => (0, GENESIS.to_owned()),
        };
        let mut rec = AuditRecord {
            seq: last_seq + 1,
            at_unix_ms: crate::now_unix_ms(),
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
        store.put_raw_pair(
            &key(rec.seq),
            &body,
            b"m/audit/last",
            format!("{} {}", rec.seq, rec.hash).as_bytes(),
        )?;
        Ok(rec)
    })
}

/// Every record, in order (unchecked).
pub fn records(store: &Store) -> Result<Vec<Result<AuditRecord, String>>, StoreError> {
    Ok(store
        .scan_raw(PREFIX)?
        .into_iter()
        .map(|(_, v)| serde_json::from_slice::<AuditRecord>(&v).map_err(|e| e.to_string()))
        .collect())
}

/// Walks the chain; returns the number of records when it is intact.
pub fn verify(store: &Store) -> Result<Result<u64, AuditBreak>, StoreError> {
    let mut prev_hash = GENESIS.to_owned();
    let mut expected = 1u64;
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
        prev_hash = rec.hash.clone();
        expected += 1;
    }
    Ok(Ok(expected - 1))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn log_with(n: u64) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        for i in 0..n {
            append(
                &s,
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
