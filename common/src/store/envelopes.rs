//! Keyspace `e/` (envelopes) and `d/` (their content digests, for dedup and replay detection).

use super::*;

impl Store {
    /// Stores `env` (if its id is new) and queues it for each `(neighbour, recipients)` pair,
    /// atomically as far as a crash goes (see `Store::ordered_writes`). `content_digest` identifies its signed content for replay detection.
    pub fn offer_envelope(
        &self,
        env: &Envelope,
        content_digest: &[u8],
        queue_for: &[(String, Vec<String>)],
    ) -> Result<Offer, StoreError> {
        let ekey = key(b"e/", &[env.id.as_bytes()]);
        let dkey = key(b"d/", &[env.id.as_bytes()]);
        let bytes = env.encode_to_vec();
        let entries = self.queue_entries(env, queue_for)?;
        // Known already: the same content is a duplicate (its body written anew if the one
        // stored cannot be read back), other content a conflict. Checked before the body is
        // written, so a redelivery costs no write.
        let _order = self.ordered_writes();
        if let Some(d) = self.tree().get(&dkey).map_err(|e| self.err(e))? {
            if d.as_ref() != content_digest {
                return Ok(Offer::Conflict);
            }
            self.repair_body(&ekey, &bytes)?;
            return Ok(Offer::Duplicate);
        }
        let pointer = self.put_body(&bytes)?;
        let t = self.tree();
        t.insert(ekey.as_slice(), pointer.as_slice())
            .map_err(|e| self.err(e))?;
        for (k, v) in &entries {
            self.queue_insert(k, v)?;
        }
        // Last: from here on the envelope is known (see `Store::ordered_writes`).
        t.insert(dkey.as_slice(), content_digest)
            .map_err(|e| self.err(e))?;
        Ok(Offer::New)
    }

    /// The queue entries (key and value) that send `env` to each next hop of `queue_for`, for
    /// the recipients listed with it, in the class of its priority.
    fn queue_entries(
        &self,
        env: &Envelope,
        queue_for: &[(String, Vec<String>)],
    ) -> Result<Vec<KeyValue>, StoreError> {
        let class = queue_class(env.other_info.as_ref().map(|o| o.priority).unwrap_or(0));
        let origin = env
            .from
            .as_ref()
            .map(|f| f.code.clone())
            .unwrap_or_default();
        let mut entries = Vec::with_capacity(queue_for.len());
        for (n, recipients) in queue_for {
            let mut k = queue_prefix(n);
            k.push(class);
            k.extend_from_slice(&self.next_seq()?.to_be_bytes());
            let item = QueueItem::Envelope {
                id: env.id.clone(),
                recipients: recipients.clone(),
                origin: origin.clone(),
            };
            entries.push((k, item.encode()));
        }
        Ok(entries)
    }

    /// Queues a known envelope again, toward the next hops of `queue_for` (a document a child
    /// sent back because its recipients moved away from it).
    pub fn queue_again(
        &self,
        env: &Envelope,
        queue_for: &[(String, Vec<String>)],
    ) -> Result<(), StoreError> {
        for (k, v) in self.queue_entries(env, queue_for)? {
            self.queue_insert(&k, &v)?;
        }
        Ok(())
    }

    /// Whether an envelope with this id is known (offered before).
    pub fn knows_envelope(&self, id: &str) -> Result<bool, StoreError> {
        self.tree()
            .contains_key(key(b"d/", &[id.as_bytes()]))
            .map_err(|e| self.err(e))
    }

    /// Writes the body of `key` again if the stored one cannot be read back (a record that
    /// reached the disk before its body did, then a power loss). The record keeps its key.
    fn repair_body(&self, key: &[u8], bytes: &[u8]) -> Result<(), StoreError> {
        let Some(stored) = self.tree().get(key).map_err(|e| self.err(e))? else {
            return Ok(());
        };
        if self.resolve(key, &stored).is_ok() {
            return Ok(());
        }
        tracing::warn!(
            key = %String::from_utf8_lossy(key),
            "stored body unreadable; writing it again from the copy offered"
        );
        let pointer = self.put_body(bytes)?;
        self.tree().insert(key, pointer).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Replaces the stored copy of an envelope (e.g. to record trace times). Does not queue.
    pub fn update_envelope(&self, env: &Envelope) -> Result<(), StoreError> {
        let pointer = self.put_body(&env.encode_to_vec())?;
        self.tree()
            .insert(key(b"e/", &[env.id.as_bytes()]), pointer)
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Reads an envelope by id.
    pub fn envelope(&self, id: &str) -> Result<Option<Envelope>, StoreError> {
        let k = key(b"e/", &[id.as_bytes()]);
        match self.tree().get(&k).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(v) => Envelope::decode(self.resolve(&k, &v)?.as_slice())
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    key: format!("e/{id}"),
                    reason: e.to_string(),
                }),
        }
    }

    /// True if an envelope with this id was ever stored.
    pub fn has_envelope(&self, id: &str) -> Result<bool, StoreError> {
        self.tree()
            .contains_key(key(b"d/", &[id.as_bytes()]))
            .map_err(|e| self.err(e))
    }
}
