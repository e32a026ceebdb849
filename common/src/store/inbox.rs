//! Keyspace `i/` and `x/`: the local inboxes and their index.

use super::*;

impl Store {
    /// Adds an envelope to an agency's inbox unless it is already there and, when added and
    /// `queue_to` is given, queues it there too (atomically), recording `origin`, the sending
    /// agency (see [`QueueItem::Envelope`]). Returns true if added.
    pub fn add_to_inbox(
        &self,
        agency: &str,
        envelope_id: &str,
        queue_to: Option<&str>,
        origin: &str,
    ) -> Result<bool, StoreError> {
        let qentry = match queue_to {
            Some(n) => {
                let mut k = queue_prefix(n);
                k.push(RECEIPT_CLASS);
                k.extend_from_slice(&self.next_seq()?.to_be_bytes());
                let item = QueueItem::Envelope {
                    id: envelope_id.to_owned(),
                    recipients: vec![agency.to_owned()],
                    origin: origin.to_owned(),
                };
                Some((k, item.encode()))
            }
            None => None,
        };
        let xkey = key(b"x/", &[agency.as_bytes(), envelope_id.as_bytes()]);
        let seq = self.next_seq()?;
        let ikey = key(b"i/", &[agency.as_bytes(), &seq.to_be_bytes()]);
        let mut val = vec![0u8];
        val.extend_from_slice(envelope_id.as_bytes());
        let res = self.tree().transaction(|t| {
            if t.get(&xkey)?.is_some() {
                return Ok(false);
            }
            t.insert(xkey.as_slice(), &seq.to_be_bytes()[..])?;
            t.insert(ikey.as_slice(), val.as_slice())?;
            if let Some((k, v)) = &qentry {
                t.insert(k.as_slice(), v.as_slice())?;
            }
            Ok::<_, ConflictableTransactionError<()>>(true)
        });
        let added = res.map_err(|e: TransactionError<()>| self.err(format!("{e:?}")))?;
        if let (true, Some((k, _))) = (added, &qentry) {
            self.queued(k);
        }
        Ok(added)
    }

    /// An agency's inbox, in arrival order.
    pub fn inbox(&self, agency: &str) -> Result<Vec<InboxEntry>, StoreError> {
        let prefix = key(b"i/", &[agency.as_bytes(), b""]);
        let mut out = Vec::new();
        for kv in self.tree().scan_prefix(&prefix) {
            let (k, v) = kv.map_err(|e| self.err(e))?;
            let seq_bytes: [u8; 8] =
                k[prefix.len()..]
                    .try_into()
                    .map_err(|_| StoreError::Corrupt {
                        key: String::from_utf8_lossy(&k).into_owned(),
                        reason: "bad inbox key".into(),
                    })?;
            let (flag, id) = v.split_first().ok_or_else(|| StoreError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                reason: "empty inbox entry".into(),
            })?;
            out.push(InboxEntry {
                seq: u64::from_be_bytes(seq_bytes),
                envelope_id: String::from_utf8_lossy(id).into_owned(),
                acknowledged: *flag == 1,
            });
        }
        Ok(out)
    }

    /// Marks an inbox entry acknowledged. Returns false if the envelope is not in that inbox.
    pub fn acknowledge(&self, agency: &str, envelope_id: &str) -> Result<bool, StoreError> {
        let xkey = key(b"x/", &[agency.as_bytes(), envelope_id.as_bytes()]);
        let Some(seq) = self.tree().get(&xkey).map_err(|e| self.err(e))? else {
            return Ok(false);
        };
        let ikey = key(b"i/", &[agency.as_bytes(), seq.as_ref()]);
        let mut val = vec![1u8];
        val.extend_from_slice(envelope_id.as_bytes());
        self.tree().insert(ikey, val).map_err(|e| self.err(e))?;
        Ok(true)
    }
}
