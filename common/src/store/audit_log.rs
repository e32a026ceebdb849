//! Keyspace `A/`: the audit records by sequence number, with `m/audit/last` (the chain's head)
//! and `m/audit/anchor` (where a pruned chain starts). Written only under the audit lock; the
//! hash chain itself is `crate::audit`.

use super::*;

const PREFIX: &[u8] = b"A/";
const LAST: &[u8] = b"m/audit/last";
const ANCHOR: &[u8] = b"m/audit/anchor";

/// The key of audit record `seq`.
pub fn audit_key(seq: u64) -> Vec<u8> {
    let mut k = PREFIX.to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

impl Store {
    /// Runs `f` holding the audit-chain lock.
    pub fn with_audit_lock<T>(
        &self,
        f: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _guard = match self.inner.audit_lock.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f()
    }

    /// Every audit record (key, stored form), in sequence order.
    pub fn audit_records(&self) -> Result<Vec<KeyValue>, StoreError> {
        self.scan_raw(PREFIX)
    }

    /// Writes record `seq` and makes `head` the chain's head, in one batch.
    pub fn audit_append(&self, seq: u64, body: &[u8], head: &str) -> Result<(), StoreError> {
        self.put_raw_pair(&audit_key(seq), body, LAST, head.as_bytes())
    }

    /// Removes the records under `remove` and writes record `seq` (the pruning record), the
    /// head and the anchor, in one batch.
    pub fn audit_prune(
        &self,
        seq: u64,
        body: Vec<u8>,
        head: &str,
        anchor: &str,
        remove: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        self.apply_raw(
            &[
                (audit_key(seq), body),
                (LAST.to_vec(), head.as_bytes().to_vec()),
                (ANCHOR.to_vec(), anchor.as_bytes().to_vec()),
            ],
            remove,
        )
    }
}
