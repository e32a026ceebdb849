//! The durable store of a node: one sled database with group commit.
//!
//! # Durability
//! Writes go to sled's in-memory state at once; [`Store::commit`] then returns a [`Persisted`]
//! proof only after a flush that began *after* the caller's writes has completed. One committer
//! thread serves every caller: while one flush (an fsync) runs, new callers queue up, and the next
//! flush covers all of them (group commit). Code that acknowledges something to a peer or a
//! broker takes a `Persisted`, so "ack before fsync" cannot be written.
//!
//! # Keyspace (one sled tree, prefixed keys, atomic multi-key updates by transaction)
//! - `e/<envelope id>`: the envelope (protobuf)
//! - `d/<envelope id>`: SHA-256 of its signed content (dedup and replay detection)
//! - `q/<neighbour>\0<class><seq>`: per-neighbour outbound queue; class 0 leaves first
//! - `i/<agency>\0<seq>`: local inbox entries; `x/<agency>\0<envelope id>`: inbox index
//! - `r/<receipt id>`: a receipt frame; `R/<envelope id>\0<seq>`: receipts of an envelope
//! - `m/<name>`: small metadata values
//! - `g/<book>\0<number>`: register entries; `G/<scope>\0<key>`: the book and number a key
//!   got (so a key is numbered once per scope, whatever the book); `N/<book>`: last number
//! - `s/<agency>\0<day>`: the latest daily summary of an agency (from this node or below)
//!   (`S/<agency>\0<day>`: its generation time)
//! - `t/<node>`: the latest attestation of a node (`T/<node>`: its generation time);
//!   `v/<node>\0<seq>`: the security events it reported
//!
//! Attachment bytes are kept beside the database, content-addressed: `blobs/<sha256>` once
//! complete and verified, `blobs/<sha256>.part` while arriving (its length is the resume
//! offset). sled would keep them in memory; files keep a node's memory flat whatever it holds.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use lienthong_proto::v1::{Envelope, Priority};
use prost::Message;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tokio::sync::oneshot;

/// Queue class of an envelope: express documents leave first, then very urgent, urgent, normal.
pub fn queue_class(priority: i32) -> u8 {
    match Priority::try_from(priority) {
        Ok(Priority::Express | Priority::ExpressTimed) => 0,
        Ok(Priority::VeryUrgent) => 1,
        Ok(Priority::Urgent) => 2,
        _ => 3,
    }
}

/// sled's page cache: bounded so a node's memory does not grow with the data it holds.
pub const STORE_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Queue class of receipts: after express documents, before the others (they are small and
/// senders wait for them).
pub const RECEIPT_CLASS: u8 = 1;

/// Store failures.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// sled reported an error (I/O, corruption).
    #[error("store at {path}: {reason}")]
    Sled {
        /// The database directory.
        path: PathBuf,
        /// sled's message.
        reason: String,
    },
    /// The committer thread is gone (the store is shutting down).
    #[error("store is closed")]
    Closed,
    /// A stored value does not decode.
    #[error("corrupt record {key}: {reason}")]
    Corrupt {
        /// The key, printable.
        key: String,
        /// Why.
        reason: String,
    },
}

/// A raw key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Proof that everything written before [`Store::commit`] was called is on disk.
#[derive(Debug, Clone, Copy)]
#[must_use = "a Persisted proof is what allows an acknowledgement"]
pub struct Persisted {
    _private: (),
}

type Waiter = oneshot::Sender<Result<(), String>>;

/// A node's store. Cheap to clone; all clones share one database and one committer.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    blobs: PathBuf,
    /// Serialises audit-chain appends (read last hash, write next record): held for one sled
    /// batch, never across an await.
    audit_lock: std::sync::Mutex<()>,
    db: sled::Db,
    committer: mpsc::Sender<Waiter>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

/// What an outbound queue entry refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueItem {
    /// An envelope, for the listed recipients reached through this neighbour.
    Envelope {
        /// Envelope id.
        id: String,
        /// Recipients routed over this neighbour.
        recipients: Vec<String>,
        /// The sending agency, so that the sender can be told if the entry ever has to be
        /// dropped (empty in entries queued before it was recorded).
        origin: String,
    },
    /// A receipt frame (status receipt or transport event) by id.
    Receipt {
        /// Receipt id.
        id: String,
    },
}

impl QueueItem {
    /// The id of the item, as used in hop acks.
    pub fn id(&self) -> &str {
        match self {
            QueueItem::Envelope { id, .. } | QueueItem::Receipt { id } => id,
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            QueueItem::Envelope {
                id,
                recipients,
                origin,
            } => {
                // `F<origin>\0<id>...`; the older form `E<id>...` has no origin.
                let mut v = if origin.is_empty() {
                    vec![b'E']
                } else {
                    let mut v = vec![b'F'];
                    v.extend_from_slice(origin.as_bytes());
                    v.push(0);
                    v
                };
                v.extend_from_slice(id.as_bytes());
                for r in recipients {
                    v.push(0);
                    v.extend_from_slice(r.as_bytes());
                }
                v
            }
            QueueItem::Receipt { id } => {
                let mut v = vec![b'R'];
                v.extend_from_slice(id.as_bytes());
                v
            }
        }
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let (kind, rest) = b.split_first()?;
        let text = std::str::from_utf8(rest).ok()?;
        match kind {
            b'E' | b'F' => {
                let mut parts = text.split('\0');
                let origin = if *kind == b'F' {
                    parts.next()?.to_owned()
                } else {
                    String::new()
                };
                let id = parts.next()?.to_owned();
                Some(QueueItem::Envelope {
                    id,
                    recipients: parts.map(str::to_owned).collect(),
                    origin,
                })
            }
            b'R' => Some(QueueItem::Receipt {
                id: text.to_owned(),
            }),
            _ => None,
        }
    }
}

/// An entry of a neighbour's outbound queue, with the key that removes it.
#[derive(Debug, Clone)]
pub struct QueuedEntry {
    /// Position in the queue (opaque).
    pub key: Vec<u8>,
    /// What to send.
    pub item: QueueItem,
}

/// An inbox entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    /// Arrival order within the agency's inbox.
    pub seq: u64,
    /// The envelope.
    pub envelope_id: String,
    /// Whether the DMS or staff acknowledged it.
    pub acknowledged: bool,
}

fn key(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(0);
        }
        k.extend_from_slice(p);
    }
    k
}

fn queue_prefix(neighbour: &str) -> Vec<u8> {
    let mut k = b"q/".to_vec();
    k.extend_from_slice(neighbour.as_bytes());
    k.push(0);
    k
}

/// Outcome of offering an envelope to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// Stored for the first time (and queued as asked).
    New,
    /// The same envelope (same id, same content) was already stored.
    Duplicate,
    /// The id is known with different content: a replay or a forgery.
    Conflict,
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(Some(1000))
            .cache_capacity(STORE_CACHE_BYTES)
            .open()
            .map_err(|e| StoreError::Sled {
                path: dir.to_owned(),
                reason: e.to_string(),
            })?;
        let blobs = dir.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(|e| StoreError::Sled {
            path: blobs.clone(),
            reason: e.to_string(),
        })?;
        let (tx, rx) = mpsc::channel::<Waiter>();
        let flusher = db.clone();
        let path = dir.to_owned();
        thread::Builder::new()
            .name("store-commit".into())
            .spawn(move || commit_loop(&flusher, &rx))
            .map_err(|e| StoreError::Sled {
                path: path.clone(),
                reason: format!("cannot start committer thread: {e}"),
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                audit_lock: std::sync::Mutex::new(()),
                blobs,
                path: dir.to_owned(),
                db,
                committer: tx,
            }),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Sled {
            path: self.inner.path.clone(),
            reason: e.to_string(),
        }
    }

    fn tree(&self) -> &sled::Db {
        &self.inner.db
    }

    /// Waits until every write made before this call is durable.
    pub async fn commit(&self) -> Result<Persisted, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .committer
            .send(tx)
            .map_err(|_| StoreError::Closed)?;
        match rx.await {
            Ok(Ok(())) => Ok(Persisted { _private: () }),
            Ok(Err(reason)) => Err(StoreError::Sled {
                path: self.inner.path.clone(),
                reason,
            }),
            Err(_) => Err(StoreError::Closed),
        }
    }

    /// Blocking form of [`Store::commit`], for threads outside the async runtime.
    pub fn commit_blocking(&self) -> Result<Persisted, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .committer
            .send(tx)
            .map_err(|_| StoreError::Closed)?;
        match rx.blocking_recv() {
            Ok(Ok(())) => Ok(Persisted { _private: () }),
            Ok(Err(reason)) => Err(StoreError::Sled {
                path: self.inner.path.clone(),
                reason,
            }),
            Err(_) => Err(StoreError::Closed),
        }
    }

    /// A fresh, monotonically increasing sequence number (survives restarts).
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        self.tree().generate_id().map_err(|e| self.err(e))
    }

    /// Sets a raw metadata value (not durable until the next commit).
    pub fn put_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.tree()
            .insert(key(b"m/", &[name.as_bytes()]), value)
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Reads a metadata value.
    pub fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree()
            .get(key(b"m/", &[name.as_bytes()]))
            .map_err(|e| self.err(e))?
            .map(|v| v.to_vec()))
    }

    /// Names of metadata values starting with `prefix`, with the prefix removed.
    pub fn meta_names(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let p = key(b"m/", &[prefix.as_bytes()]);
        let mut out = Vec::new();
        for kv in self.tree().scan_prefix(&p) {
            let (k, _) = kv.map_err(|e| self.err(e))?;
            out.push(String::from_utf8_lossy(&k[p.len()..]).into_owned());
        }
        Ok(out)
    }

    /// Stores `env` (if its id is new) and queues it for each `(neighbour, recipients)` pair,
    /// atomically. `content_digest` identifies its signed content for replay detection.
    pub fn offer_envelope(
        &self,
        env: &Envelope,
        content_digest: &[u8],
        queue_for: &[(String, Vec<String>)],
    ) -> Result<Offer, StoreError> {
        let ekey = key(b"e/", &[env.id.as_bytes()]);
        let dkey = key(b"d/", &[env.id.as_bytes()]);
        let bytes = env.encode_to_vec();
        let class = queue_class(env.other_info.as_ref().map(|o| o.priority).unwrap_or(0));
        let mut entries = Vec::with_capacity(queue_for.len());
        for (n, recipients) in queue_for {
            let mut k = queue_prefix(n);
            k.push(class);
            k.extend_from_slice(&self.next_seq()?.to_be_bytes());
            let item = QueueItem::Envelope {
                id: env.id.clone(),
                recipients: recipients.clone(),
                origin: env
                    .from
                    .as_ref()
                    .map(|f| f.code.clone())
                    .unwrap_or_default(),
            };
            entries.push((k, item.encode()));
        }
        let res = self.tree().transaction(|t| {
            if let Some(d) = t.get(&dkey)? {
                return Ok(if d.as_ref() == content_digest {
                    Offer::Duplicate
                } else {
                    Offer::Conflict
                });
            }
            t.insert(ekey.as_slice(), bytes.as_slice())?;
            t.insert(dkey.as_slice(), content_digest)?;
            for (k, v) in &entries {
                t.insert(k.as_slice(), v.as_slice())?;
            }
            Ok::<_, ConflictableTransactionError<()>>(Offer::New)
        });
        res.map_err(|e: TransactionError<()>| self.err(format!("{e:?}")))
    }

    /// Replaces the stored copy of an envelope (e.g. to record trace times). Does not queue.
    pub fn update_envelope(&self, env: &Envelope) -> Result<(), StoreError> {
        self.tree()
            .insert(key(b"e/", &[env.id.as_bytes()]), env.encode_to_vec())
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Reads an envelope by id.
    pub fn envelope(&self, id: &str) -> Result<Option<Envelope>, StoreError> {
        let k = key(b"e/", &[id.as_bytes()]);
        match self.tree().get(&k).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(v) => Envelope::decode(v.as_ref())
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
        res.map_err(|e: TransactionError<()>| self.err(format!("{e:?}")))
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

    /// Stores a receipt frame under its id, indexes it by envelope and, if `queue_to` is given,
    /// queues it for that neighbour, atomically. Returns false if the id was already stored (a
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
        let qentry = match queue_to {
            Some(n) => {
                let mut k = queue_prefix(n);
                k.push(RECEIPT_CLASS);
                k.extend_from_slice(&self.next_seq()?.to_be_bytes());
                Some((
                    k,
                    QueueItem::Receipt {
                        id: receipt_id.to_owned(),
                    }
                    .encode(),
                ))
            }
            None => None,
        };
        let res = self.tree().transaction(|t| {
            if t.get(&rkey)?.is_some() {
                return Ok(false);
            }
            t.insert(rkey.as_slice(), frame)?;
            t.insert(ikey.as_slice(), receipt_id.as_bytes())?;
            if let Some((k, v)) = &qentry {
                t.insert(k.as_slice(), v.as_slice())?;
            }
            Ok::<_, ConflictableTransactionError<()>>(true)
        });
        res.map_err(|e: TransactionError<()>| self.err(format!("{e:?}")))
    }

    /// A receipt frame by id.
    pub fn receipt(&self, receipt_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree()
            .get(key(b"r/", &[receipt_id.as_bytes()]))
            .map_err(|e| self.err(e))?
            .map(|v| v.to_vec()))
    }

    /// Every receipt frame about an envelope, in arrival order.
    pub fn receipts_for(&self, envelope_id: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let prefix = key(b"R/", &[envelope_id.as_bytes(), b""]);
        let mut out = Vec::new();
        for kv in self.tree().scan_prefix(&prefix) {
            let (_, id) = kv.map_err(|e| self.err(e))?;
            let id = String::from_utf8_lossy(&id).into_owned();
            if let Some(f) = self.receipt(&id)? {
                out.push(f);
            }
        }
        Ok(out)
    }

    fn blob_path(&self, sha: &[u8]) -> PathBuf {
        self.inner.blobs.join(hex::encode(sha))
    }

    fn part_path(&self, sha: &[u8]) -> PathBuf {
        self.inner.blobs.join(format!("{}.part", hex::encode(sha)))
    }

    fn io(&self, path: &Path, e: std::io::Error) -> StoreError {
        StoreError::Sled {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    }

    /// True when the whole attachment is held and was verified against its SHA-256.
    pub fn has_attachment(&self, sha: &[u8], size: u64) -> bool {
        std::fs::metadata(self.blob_path(sha)).is_ok_and(|m| m.len() == size)
    }

    /// Bytes of an attachment held: its size when complete, else the bytes received so far.
    pub fn attachment_held(&self, sha: &[u8]) -> Result<u64, StoreError> {
        for p in [self.blob_path(sha), self.part_path(sha)] {
            match std::fs::metadata(&p) {
                Ok(m) => return Ok(m.len()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io(&p, e)),
            }
        }
        Ok(0)
    }

    /// Appends a chunk at `offset`, which must equal the bytes already held (chunks arrive in
    /// order). Returns the new number of bytes held. A chunk at an offset already held is
    /// ignored (a resend); a chunk beyond it is an error (a gap: ask again from what is held).
    pub fn append_chunk(&self, sha: &[u8], offset: u64, data: &[u8]) -> Result<u64, StoreError> {
        use std::io::Write;
        if self.blob_path(sha).exists() {
            return self.attachment_held(sha);
        }
        let path = self.part_path(sha);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| self.io(&path, e))?;
        let held = f.metadata().map_err(|e| self.io(&path, e))?.len();
        if offset < held {
            return Ok(held);
        }
        if offset > held {
            return Err(StoreError::Corrupt {
                key: path.display().to_string(),
                reason: format!("chunk at {offset} but only {held} bytes held"),
            });
        }
        f.write_all(data).map_err(|e| self.io(&path, e))?;
        Ok(held + data.len() as u64)
    }

    /// Checks a fully received attachment against its SHA-256 and makes it durable and
    /// complete. On a mismatch the bytes are dropped and `false` returned (the sender must
    /// send them again from offset 0).
    pub fn complete_attachment(&self, sha: &[u8]) -> Result<bool, StoreError> {
        if self.blob_path(sha).exists() {
            return Ok(true);
        }
        let part = self.part_path(sha);
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        self.for_each_chunk(sha, 0, |_, d| {
            ctx.update(d);
            true
        })?;
        if ctx.finish().as_ref() != sha {
            std::fs::remove_file(&part).map_err(|e| self.io(&part, e))?;
            return Ok(false);
        }
        self.adopt_file(&part, sha)?;
        Ok(true)
    }

    /// Moves a file whose SHA-256 the caller computed into the attachment store, durably.
    /// The file must be on the same filesystem as the store.
    pub fn adopt_file(&self, file: &Path, sha: &[u8]) -> Result<(), StoreError> {
        let f = std::fs::File::open(file).map_err(|e| self.io(file, e))?;
        f.sync_all().map_err(|e| self.io(file, e))?;
        let dest = self.blob_path(sha);
        std::fs::rename(file, &dest).map_err(|e| self.io(&dest, e))?;
        let dir =
            std::fs::File::open(&self.inner.blobs).map_err(|e| self.io(&self.inner.blobs, e))?;
        dir.sync_all().map_err(|e| self.io(&self.inner.blobs, e))
    }

    /// Stores bytes given whole (small inline attachments); returns their SHA-256.
    pub fn put_attachment(&self, data: &[u8]) -> Result<Vec<u8>, StoreError> {
        let sha = ring::digest::digest(&ring::digest::SHA256, data)
            .as_ref()
            .to_vec();
        if !self.blob_path(&sha).exists() {
            let tmp = self
                .inner
                .blobs
                .join(format!("{}.inline", uuid::Uuid::new_v4().simple()));
            std::fs::write(&tmp, data).map_err(|e| self.io(&tmp, e))?;
            self.adopt_file(&tmp, &sha)?;
        }
        Ok(sha)
    }

    /// Drops every byte held of an attachment.
    pub fn discard_attachment(&self, sha: &[u8]) -> Result<(), StoreError> {
        for p in [self.blob_path(sha), self.part_path(sha)] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io(&p, e)),
            }
        }
        Ok(())
    }

    /// Reads an attachment from `from` on in chunks of at most `MAX_CHUNK_BYTES`, calling `f`
    /// with each chunk's offset and bytes until it returns false. Memory use is one chunk.
    pub fn for_each_chunk(
        &self,
        sha: &[u8],
        from: u64,
        mut f: impl FnMut(u64, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        use std::io::{Read, Seek, SeekFrom};
        let path = if self.blob_path(sha).exists() {
            self.blob_path(sha)
        } else {
            self.part_path(sha)
        };
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.io(&path, e)),
        };
        file.seek(SeekFrom::Start(from))
            .map_err(|e| self.io(&path, e))?;
        let mut buf = vec![0u8; crate::envelope::MAX_CHUNK_BYTES];
        let mut offset = from;
        loop {
            let mut filled = 0;
            while filled < buf.len() {
                let n = file
                    .read(&mut buf[filled..])
                    .map_err(|e| self.io(&path, e))?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 || !f(offset, &buf[..filled]) {
                return Ok(());
            }
            offset += filled as u64;
        }
    }

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
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

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

    /// Raw read.
    pub fn get_raw(&self, k: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree()
            .get(k)
            .map_err(|e| self.err(e))?
            .map(|v| v.to_vec()))
    }

    /// Numbers an entry in a register book exactly once: if `entry_key` has no number in
    /// `scope` yet, the book's next number (1, 2, …) is assigned and the entry written,
    /// atomically; otherwise nothing changes. Returns the book and number the key has, and
    /// whether it was assigned now.
    pub fn number_once(
        &self,
        scope: &str,
        book: &str,
        entry_key: &str,
        entry: impl Fn(u64) -> Vec<u8>,
    ) -> Result<(String, u64, bool), StoreError> {
        let ikey = key(b"G/", &[scope.as_bytes(), entry_key.as_bytes()]);
        let nkey = key(b"N/", &[book.as_bytes()]);
        let res = self.tree().transaction(|t| {
            if let Some(v) = t.get(&ikey)? {
                return Ok(split_numbered(&v));
            }
            let last = t
                .get(&nkey)?
                .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            let n = last + 1;
            let mut idx = book.as_bytes().to_vec();
            idx.push(0);
            idx.extend_from_slice(&n.to_be_bytes());
            t.insert(ikey.as_slice(), idx)?;
            t.insert(nkey.as_slice(), &n.to_be_bytes()[..])?;
            t.insert(key(b"g/", &[book.as_bytes(), &n.to_be_bytes()]), entry(n))?;
            Ok::<_, ConflictableTransactionError<()>>((book.to_owned(), n, true))
        });
        res.map_err(|e: TransactionError<()>| self.err(format!("{e:?}")))
    }

    /// The book and number `entry_key` got in `scope`, if any.
    pub fn numbered(
        &self,
        scope: &str,
        entry_key: &str,
    ) -> Result<Option<(String, u64)>, StoreError> {
        let ikey = key(b"G/", &[scope.as_bytes(), entry_key.as_bytes()]);
        Ok(self.get_raw(&ikey)?.map(|v| {
            let (b, n, _) = split_numbered(&v);
            (b, n)
        }))
    }

    /// Entry `number` of a book.
    pub fn book_entry(&self, book: &str, number: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_raw(&key(b"g/", &[book.as_bytes(), &number.to_be_bytes()]))
    }

    /// Every entry of a book, by number.
    pub fn book_entries(&self, book: &str) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let prefix = key(b"g/", &[book.as_bytes(), b""]);
        let mut out = Vec::new();
        for (k, v) in self.scan_raw(&prefix)? {
            if let Ok(n) = <[u8; 8]>::try_from(&k[prefix.len()..]) {
                out.push((u64::from_be_bytes(n), v));
            }
        }
        Ok(out)
    }

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
        };
        let qentry = match queue_to {
            Some(n) => {
                let mut k = queue_prefix(n);
                k.push(RECEIPT_CLASS);
                k.extend_from_slice(&self.next_seq()?.to_be_bytes());
                Some((
                    k,
                    QueueItem::Receipt {
                        id: up.id.to_owned(),
                    }
                    .encode(),
                ))
            }
            None => None,
        };
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
        res.map_err(|e: TransactionError<()>| self.err(format!("{e:?}")))
    }

    /// The newest attestation held from every node, as (node, encoded attestation).
    pub fn attestations(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .scan_raw(b"t/")?
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

    /// Checks the store by reading every record (sled verifies checksums as it reads).
    pub fn check(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for kv in self.tree().iter() {
            kv.map_err(|e| self.err(e))?;
            n += 1;
        }
        Ok(n)
    }
}

/// Whole-store access for backups (`crate::backup`) and audit pruning: every pair, batches of
/// raw writes, the attachment files, the sequence generator.
impl Store {
    /// Every key/value of the store, in key order, read lazily (one pair in memory at a time).
    /// Not a snapshot: writes made while it runs may or may not be seen.
    pub fn iter_raw(&self) -> impl Iterator<Item = Result<KeyValue, StoreError>> + '_ {
        self.tree().iter().map(move |kv| {
            kv.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(|e| self.err(e))
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

    /// The complete attachments held: SHA-256, file and size. `.part` files are left out.
    pub fn attachment_files(&self) -> Result<Vec<(Vec<u8>, PathBuf, u64)>, StoreError> {
        let dir = &self.inner.blobs;
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| self.io(dir, e))? {
            let entry = entry.map_err(|e| self.io(dir, e))?;
            let name = entry.file_name();
            let Some(sha) = name
                .to_str()
                .filter(|n| n.len() == 64)
                .and_then(|n| hex::decode(n).ok())
            else {
                continue;
            };
            let path = entry.path();
            match entry.metadata() {
                Ok(m) if m.is_file() => out.push((sha, path, m.len())),
                Ok(_) => {}
                // Discarded while listing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io(&path, e)),
            }
        }
        out.sort();
        Ok(out)
    }

    /// Advances the sequence generator until [`Store::next_seq`] returns at least `floor`
    /// (after a restore: the keys restored hold numbers below `floor`, new keys must not
    /// reuse them).
    pub fn advance_seq_to(&self, floor: u64) -> Result<(), StoreError> {
        while self.next_seq()? < floor {}
        Ok(())
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

fn split_numbered(v: &[u8]) -> (String, u64, bool) {
    let split = v.len().saturating_sub(9);
    let book = String::from_utf8_lossy(&v[..split]).into_owned();
    let n = v
        .get(split + 1..)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0);
    (book, n, false)
}

fn commit_loop(db: &sled::Db, rx: &mpsc::Receiver<Waiter>) {
    while let Ok(first) = rx.recv() {
        let mut waiters = vec![first];
        while let Ok(w) = rx.try_recv() {
            waiters.push(w);
        }
        let result = db.flush().map(|_| ()).map_err(|e| e.to_string());
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn env(id: &str, priority: i32) -> Envelope {
        Envelope {
            id: id.into(),
            other_info: Some(lienthong_proto::v1::OtherInfo {
                priority,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn queue_items_keep_their_origin_and_read_the_older_form() {
        let with = QueueItem::Envelope {
            id: "e1".into(),
            recipients: vec!["000.00.31.H53".into(), "000.21.31.H53".into()],
            origin: "000.00.00.G22".into(),
        };
        assert_eq!(QueueItem::decode(&with.encode()), Some(with));
        // Entries written before the origin was recorded.
        assert_eq!(
            QueueItem::decode(b"Ee2\x00000.00.31.H53"),
            Some(QueueItem::Envelope {
                id: "e2".into(),
                recipients: vec!["000.00.31.H53".into()],
                origin: String::new(),
            })
        );
        let r = QueueItem::Receipt { id: "r1".into() };
        assert_eq!(QueueItem::decode(&r.encode()), Some(r));
    }

    #[tokio::test]
    async fn express_leaves_first_and_fifo_within_class() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let q = |n: &str| vec![(n.to_string(), vec!["r".to_string()])];
        for (id, p) in [("a", 0), ("b", 3), ("c", 0), ("d", 1), ("e", 4)] {
            assert_eq!(
                s.offer_envelope(&env(id, p), id.as_bytes(), &q("n1"))
                    .unwrap(),
                Offer::New
            );
        }
        let _ = s.commit().await.unwrap();
        let order: Vec<String> = s
            .outbound("n1", 10)
            .unwrap()
            .into_iter()
            .map(|e| e.item.id().to_owned())
            .collect();
        assert_eq!(order, ["b", "e", "d", "a", "c"]);
        assert_eq!(s.queue_depth("n1"), 5);
        assert_eq!(s.queue_depth("n2"), 0);
    }

    #[tokio::test]
    async fn dedup_and_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let q = vec![("n".to_string(), vec![])];
        assert_eq!(
            s.offer_envelope(&env("x", 0), b"d1", &q).unwrap(),
            Offer::New
        );
        assert_eq!(
            s.offer_envelope(&env("x", 0), b"d1", &q).unwrap(),
            Offer::Duplicate
        );
        assert_eq!(
            s.offer_envelope(&env("x", 0), b"d2", &q).unwrap(),
            Offer::Conflict
        );
        assert_eq!(s.queue_depth("n"), 1);
    }

    #[tokio::test]
    async fn inbox_once_and_ack() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert!(s.add_to_inbox("A", "e1", None, "").unwrap());
        assert!(!s.add_to_inbox("A", "e1", None, "").unwrap());
        assert!(s.add_to_inbox("A", "e2", None, "").unwrap());
        assert!(s.acknowledge("A", "e1").unwrap());
        assert!(!s.acknowledge("A", "nope").unwrap());
        let inbox = s.inbox("A").unwrap();
        assert_eq!(inbox.len(), 2);
        assert!(inbox[0].acknowledged && inbox[0].envelope_id == "e1");
        assert!(!inbox[1].acknowledged);
        assert!(s.inbox("AB").unwrap().is_empty());
    }

    #[tokio::test]
    async fn chunks_resume_and_stream() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let sha = [9u8; 32];
        assert_eq!(s.append_chunk(&sha, 0, b"hello ").unwrap(), 6);
        assert_eq!(s.append_chunk(&sha, 0, b"hello ").unwrap(), 6);
        assert!(s.append_chunk(&sha, 10, b"x").is_err());
        assert_eq!(s.append_chunk(&sha, 6, b"world").unwrap(), 11);
        let mut got = Vec::new();
        s.for_each_chunk(&sha, 0, |_, d| {
            got.extend_from_slice(d);
            true
        })
        .unwrap();
        assert_eq!(got, b"hello world");
        let mut offs = Vec::new();
        s.for_each_chunk(&sha, 6, |o, _| {
            offs.push(o);
            true
        })
        .unwrap();
        assert_eq!(offs, [6]);
    }

    #[tokio::test]
    async fn receipts_dedup_and_index() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert!(s.put_receipt("r1", "e1", b"one", Some("n")).unwrap());
        assert!(!s.put_receipt("r1", "e1", b"one", Some("n")).unwrap());
        assert!(s.put_receipt("r2", "e1", b"two", None).unwrap());
        assert_eq!(s.queue_depth("n"), 1);
        assert_eq!(
            s.receipts_for("e1").unwrap(),
            vec![b"one".to_vec(), b"two".to_vec()]
        );
    }
}
