//! Raw access by key (values as they read: a body, never the pointer to it), for the audit log (`crate::audit`), benchmarks and fault tests; the
//! node core never uses it.

use super::*;

impl Store {
    /// Raw access for benchmarks and crash tests: insert a key/value (not durable until commit).
    pub fn put_raw(&self, k: &[u8], v: &[u8]) -> Result<(), StoreError> {
        self.tree().insert(k, v).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Writes two keys atomically (not durable until commit).
    pub fn put_raw_pair(
        &self,
        k1: &[u8],
        v1: &[u8],
        k2: &[u8],
        v2: &[u8],
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        batch.insert(k1, v1);
        batch.insert(k2, v2);
        self.tree().apply_batch(batch).map_err(|e| self.err(e))
    }

    /// Removes a key.
    pub fn remove_raw(&self, k: &[u8]) -> Result<(), StoreError> {
        self.tree().remove(k).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every key/value under `prefix`, in key order.
    pub fn scan_raw(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let mut out = Vec::new();
        for kv in self.tree().scan_prefix(prefix) {
            let (k, v) = kv.map_err(|e| self.err(e))?;
            let v = self.resolve(&k, &v)?;
            out.push((k.to_vec(), v));
        }
        Ok(out)
    }

    /// Raw read.
    pub fn get_raw(&self, k: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.tree().get(k).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(v) => self.resolve(k, &v).map(Some),
        }
    }
}

/// Whole-store access for backups (`crate::backup`) and audit pruning: every pair, batches of
/// raw writes, the attachment files, the sequence generator.
impl Store {
    /// Every key/value of the store, in key order, read lazily (one pair in memory at a time).
    /// Not a snapshot: writes made while it runs may or may not be seen.
    pub fn iter_raw(&self) -> impl Iterator<Item = Result<KeyValue, StoreError>> + '_ {
        self.tree().iter().map(move |kv| {
            let (k, v) = kv.map_err(|e| self.err(e))?;
            let v = self.resolve(&k, &v)?;
            Ok((k.to_vec(), v))
        })
    }

    /// Inserts and removes raw keys in one atomic batch (not durable until commit).
    pub fn apply_raw(&self, insert: &[KeyValue], remove: &[Vec<u8>]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for k in remove {
            batch.remove(k.as_slice());
        }
        for (k, v) in insert {
            batch.insert(k.as_slice(), v.as_slice());
        }
        self.tree().apply_batch(batch).map_err(|e| self.err(e))
    }

    /// Advances the sequence generator until [`Store::next_seq`] returns at least `floor`
    /// (after a restore: the keys restored hold numbers below `floor`, new keys must not
    /// reuse them).
    pub fn advance_seq_to(&self, floor: u64) -> Result<(), StoreError> {
        while self.next_seq()? < floor {}
        Ok(())
    }
}
