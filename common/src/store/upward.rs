//! Keyspace `s/`, `S/`, `t/`, `T/`, `k/`, `K/` and `v/`: daily summaries, attestations and node
//! details, the newest per subject.

use super::*;

impl Store {
    /// Stores an item travelling upward (a daily summary or a node attestation): the frame
    /// under its receipt id, `latest` as the newest value for its subject unless a newer one is
    /// held, `rows` beside it, and a queue entry for `queue_to`, atomically. Returns false for an
    /// id already stored (nothing changes).
    pub fn put_upward(&self, up: &Upward<'_>, queue_to: Option<&str>) -> Result<bool, StoreError> {
        let rkey = key(b"r/", &[up.id.as_bytes()]);
        let (lkey, tkey) = match &up.subject {
            UpwardSubject::Summary { agency, day } => (
                key(b"s/", &[agency.as_bytes(), day.as_bytes()]),
                key(b"S/", &[agency.as_bytes(), day.as_bytes()]),
            ),
            UpwardSubject::Attestation { node } => (
                key(b"t/", &[node.as_bytes()]),
                key(b"T/", &[node.as_bytes()]),
            ),
            UpwardSubject::Detail { node } => (
                key(b"k/", &[node.as_bytes()]),
                key(b"K/", &[node.as_bytes()]),
            ),
        };
        let qentry = self.receipt_entry(queue_to, up.id)?;
        let res = self.tree().transaction(|t| {
            if t.get(&rkey)?.is_some() {
                return Ok(false);
            }
            t.insert(rkey.as_slice(), up.frame)?;
            let held = t
                .get(&tkey)?
                .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                .map(i64::from_be_bytes);
            if held.is_none_or(|h| h <= up.generated_unix_ms) {
                t.insert(lkey.as_slice(), up.latest)?;
                t.insert(tkey.as_slice(), &up.generated_unix_ms.to_be_bytes()[..])?;
            }
            for (k, v) in &up.rows {
                t.insert(k.as_slice(), v.as_slice())?;
            }
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

    /// The newest attestation held from every node, as (node, encoded attestation).
    pub fn attestations(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .scan_raw(b"t/")?
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k[2..]).into_owned(), v))
            .collect())
    }

    /// The newest attestation held from `node`, encoded.
    pub fn attestation_of(&self, node: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_raw(&key(b"t/", &[node.as_bytes()]))
    }

    /// The newest node detail held from `node`, encoded.
    pub fn node_detail_of(&self, node: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_raw(&key(b"k/", &[node.as_bytes()]))
    }

    /// The newest node detail held from every node, as (node, encoded detail).
    pub fn node_details(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .scan_raw(b"k/")?
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k[2..]).into_owned(), v))
            .collect())
    }

    /// The security events reported by nodes below, as (node, encoded event), by node then
    /// sequence.
    pub fn remote_events(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for (k, v) in self.scan_raw(b"v/")? {
            let rest = &k[2..];
            if let Some(split) = rest.iter().position(|b| *b == 0) {
                out.push((String::from_utf8_lossy(&rest[..split]).into_owned(), v));
            }
        }
        Ok(out)
    }

    /// The security events reported by `node`, encoded, by sequence.
    pub fn remote_events_of(&self, node: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut prefix = key(b"v/", &[node.as_bytes()]);
        prefix.push(0);
        Ok(self
            .scan_raw(&prefix)?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// Every daily summary held, as (agency, day, encoded summary), by agency then day.
    pub fn summaries(&self) -> Result<Vec<(String, String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for (k, v) in self.scan_raw(b"s/")? {
            let rest = &k[2..];
            let Some(split) = rest.iter().position(|b| *b == 0) else {
                continue;
            };
            out.push((
                String::from_utf8_lossy(&rest[..split]).into_owned(),
                String::from_utf8_lossy(&rest[split + 1..]).into_owned(),
                v,
            ));
        }
        Ok(out)
    }
}

/// What an upward item is about: the newest one per subject is kept.
#[derive(Debug, Clone)]
pub enum UpwardSubject {
    /// A daily summary of an agency.
    Summary {
        /// Agency.
        agency: String,
        /// Day, YYYY-MM-DD.
        day: String,
    },
    /// A node's attestation.
    Attestation {
        /// The node's agency.
        node: String,
    },
    /// A node's detail (name, assessment evidence).
    Detail {
        /// The node's agency.
        node: String,
    },
}

/// An item travelling upward, for [`Store::put_upward`].
#[derive(Debug)]
pub struct Upward<'a> {
    /// Receipt id (dedup key).
    pub id: &'a str,
    /// What it is about.
    pub subject: UpwardSubject,
    /// Its generation time: the newest per subject is kept.
    pub generated_unix_ms: i64,
    /// The receipt frame to queue.
    pub frame: &'a [u8],
    /// The value kept as the subject's latest.
    pub latest: &'a [u8],
    /// Further rows written with it (the events of an attestation).
    pub rows: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The store key of a security event reported by `node` (`v/<node>\0<seq>`).
pub fn remote_event_key(node: &str, seq: u64) -> Vec<u8> {
    key(b"v/", &[node.as_bytes(), &seq.to_be_bytes()])
}
