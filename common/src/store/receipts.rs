//! Keyspace `r/` and `R/`: receipt frames and their index by envelope.

use super::*;

impl Store {
    /// Stores a receipt frame under its id, indexes it by envelope and, if `queue_to` is given,
    /// queues it for that neighbour, atomically as far as a crash goes (see
    /// `Store::ordered_writes`). Returns false if the id was already stored (a
    /// duplicate: nothing is changed).
    pub fn put_receipt(
        &self,
        receipt_id: &str,
        envelope_id: &str,
        frame: &[u8],
        queue_to: Option<&str>,
    ) -> Result<bool, StoreError> {
        let rkey = key(b"r/", &[receipt_id.as_bytes()]);
        let seq = self.next_seq()?;
        let ikey = key(b"R/", &[envelope_id.as_bytes(), &seq.to_be_bytes()]);
        let _order = self.ordered_writes();
        if self.tree().contains_key(&rkey).map_err(|e| self.err(e))? {
            return Ok(false);
        }
        let qentry = self.receipt_entry(queue_to, receipt_id)?;
        let pointer = self.put_body(frame)?;
        let t = self.tree();
        t.insert(ikey.as_slice(), receipt_id.as_bytes())
            .map_err(|e| self.err(e))?;
        if let Some((k, v)) = &qentry {
            self.queue_insert(k, v)?;
        }
        // Last: from here on the receipt is known (see `Store::ordered_writes`).
        t.insert(rkey.as_slice(), pointer.as_slice())
            .map_err(|e| self.err(e))?;
        Ok(true)
    }

    /// A receipt frame by id.
    ///
    /// A receipt's queue entry is written just before the receipt itself (see
    /// `Store::ordered_writes`), so a sender can meet the entry first: a miss is read again
    /// under the writers' lock, which waits for a write under way to finish.
    pub fn receipt(&self, receipt_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let k = key(b"r/", &[receipt_id.as_bytes()]);
        let mut found = self.tree().get(&k).map_err(|e| self.err(e))?;
        if found.is_none() {
            let _order = self.ordered_writes();
            found = self.tree().get(&k).map_err(|e| self.err(e))?;
        }
        match found {
            None => Ok(None),
            Some(v) => self.resolve(&k, &v).map(Some),
        }
    }

    /// Every receipt frame about an envelope, in arrival order.
    pub fn receipts_for(&self, envelope_id: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let prefix = key(b"R/", &[envelope_id.as_bytes(), b""]);
        let mut out = Vec::new();
        // An index entry can be there twice (a crash between writing it and the receipt, then
        // the receipt offered again): each receipt once.
        let mut seen = std::collections::HashSet::new();
        for kv in self.tree().scan_prefix(&prefix) {
            let (_, id) = kv.map_err(|e| self.err(e))?;
            let id = String::from_utf8_lossy(&id).into_owned();
            if !seen.insert(id.clone()) {
                continue;
            }
            if let Some(f) = self.receipt(&id)? {
                out.push(f);
            }
        }
        Ok(out)
    }
}
