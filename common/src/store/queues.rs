//! Keyspace `q/`: the per-neighbour outbound queues (also the RabbitMQ delivery queues).

use super::*;

impl Store {
    /// The queue entry (key and value) that sends receipt-frame `id` to `queue_to`, if any:
    /// receipts travel in the receipt class, ahead of documents.
    pub(super) fn receipt_entry(
        &self,
        queue_to: Option<&str>,
        id: &str,
    ) -> Result<Option<KeyValue>, StoreError> {
        let Some(n) = queue_to else {
            return Ok(None);
        };
        let mut k = queue_prefix(n);
        k.push(RECEIPT_CLASS);
        k.extend_from_slice(&self.next_seq()?.to_be_bytes());
        Ok(Some((k, QueueItem::Receipt { id: id.to_owned() }.encode())))
    }

    /// Queues an item for a neighbour at the given class.
    pub fn enqueue(&self, neighbour: &str, class: u8, item: &QueueItem) -> Result<(), StoreError> {
        let mut k = queue_prefix(neighbour);
        k.push(class);
        k.extend_from_slice(&self.next_seq()?.to_be_bytes());
        self.tree()
            .insert(k, item.encode())
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The first `limit` entries of a neighbour's queue, in sending order, skipping `after`.
    pub fn outbound(&self, neighbour: &str, limit: usize) -> Result<Vec<QueuedEntry>, StoreError> {
        let mut out = Vec::new();
        for kv in self.tree().scan_prefix(queue_prefix(neighbour)) {
            let (k, v) = kv.map_err(|e| self.err(e))?;
            let item = QueueItem::decode(&v).ok_or_else(|| StoreError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                reason: "bad queue item".into(),
            })?;
            out.push(QueuedEntry {
                key: k.to_vec(),
                item,
            });
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The names of every non-empty outbound queue (neighbours and local delivery queues).
    /// Skips from one name to the next: the cost is one seek per queue, not per entry.
    pub fn queue_names(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut from = b"q/".to_vec();
        loop {
            let Some(kv) = self.tree().range(from.clone()..).next() else {
                break;
            };
            let (k, _) = kv.map_err(|e| self.err(e))?;
            let Some(rest) = k.strip_prefix(b"q/") else {
                break;
            };
            let Some(end) = rest.iter().position(|b| *b == 0) else {
                break;
            };
            out.push(String::from_utf8_lossy(&rest[..end]).into_owned());
            // The next possible key after every `q/<name>\0...`.
            from = key(b"q/", &[&rest[..end]]);
            from.push(1);
        }
        Ok(out)
    }

    /// Number of entries queued for a neighbour.
    pub fn queue_depth(&self, neighbour: &str) -> usize {
        self.tree().scan_prefix(queue_prefix(neighbour)).count()
    }

    /// Removes a queue entry (after the neighbour acknowledged or refused it).
    pub fn dequeue(&self, entry_key: &[u8]) -> Result<(), StoreError> {
        self.tree().remove(entry_key).map_err(|e| self.err(e))?;
        Ok(())
    }
}
