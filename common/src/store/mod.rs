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
//! Each keyspace has its own module and methods: `envelopes`, `queues`, `inbox`, `receipts`,
//! `books`, `upward`, `traffic`, `pdf_reports`, `audit_log`, `blobs`; `raw` is key-level access for backups and tests.
//! - `e/<envelope id>`: the envelope (protobuf), as a pointer to its body (below)
//! - `d/<envelope id>`: SHA-256 of its signed content (dedup and replay detection)
//! - `q/<neighbour>\0<class><seq>`: per-neighbour outbound queue; class 0 leaves first
//! - `i/<agency>\0<seq>`: local inbox entries; `x/<agency>\0<envelope id>`: inbox index
//! - `r/<receipt id>`: a receipt frame (a pointer to its body); `R/<envelope id>\0<seq>`: receipts of an envelope
//! - `m/<name>`: small metadata values
//! - `g/<book>\0<number>`: register entries; `G/<scope>\0<key>`: the book and number a key
//!   got (so a key is numbered once per scope, whatever the book); `N/<book>`: last number
//! - `s/<agency>\0<day>`: the latest daily summary of an agency (from this node or below)
//!   (`S/<agency>\0<day>`: its generation time)
//! - `t/<node>`: the latest attestation of a node (`T/<node>`: its generation time);
//!   `v/<node>\0<seq>`: the security events it reported
//! - `k/<node>`: the latest detail of a node: its name and assessment evidence (`K/<node>`: its
//!   generation time)
//! - `w/<minute>`: the node's traffic in that minute, for the console's charts (a day is kept)
//! - `p/<envelope id>`: the signatures found in a delivered document's PDF attachments (JSON)
//! - `P/<seq>`: a PDF check still to run (the envelope id and the recipients it was delivered to)
//!
//! Envelopes and receipt frames are written once, to append-only segment files beside the
//! database (`bodies/`, see [`bodies`]); their records hold a pointer (segment, offset, length,
//! CRC-32). Values written inline by older versions read as they are. The raw accessors
//! (`raw`) and backups see the bodies, never the pointers.
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

mod audit_log;
mod blobs;
pub mod bodies;
mod books;
mod envelopes;
pub mod format;
mod inbox;
mod pdf_reports;
mod queues;
mod raw;
mod receipts;
mod traffic;
mod upward;

pub use audit_log::audit_key;
pub use pdf_reports::{
    PdfAttachmentReport, PdfCheckWaiting, PdfReport, PdfSignatureKind, PdfSignatureReport,
    PdfTimeStampReport, PdfVerdict,
};
pub use queues::{holding_queue, next_hop_of, HOLD_PREFIX};
pub use upward::{remote_event_key, Upward, UpwardSubject};

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
    /// The store was written by a newer release (a higher format than this build reads).
    #[error(
        "store at {path} has format {found}, written by a newer lienthong release; this binary \
         reads formats up to {supported}. Run the newer release again, or restore a backup made \
         before the upgrade (docs/operations.md, \"Upgrades\")"
    )]
    TooNew {
        /// The database directory.
        path: PathBuf,
        /// The format found.
        found: u32,
        /// The highest format this build reads.
        supported: u32,
    },
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
#[derive(Debug)]
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
    bodies: Arc<bodies::Bodies>,
    /// Serialises audit-chain appends (read last hash, write next record): held for one sled
    /// batch, never across an await.
    audit_lock: std::sync::Mutex<()>,
    /// Serialises the check-then-write of envelopes and receipt frames (see
    /// [`Store::ordered_writes`]): held for a few in-memory inserts, never across an await.
    offer_lock: std::sync::Mutex<()>,
    /// Entries per queue, kept as entries come and go (see `queues.rs`).
    depths: Arc<queues::Depths>,
    db: sled::Db,
    /// The committer's queue; `None` once closing.
    committer: Option<mpsc::Sender<Waiter>>,
    /// The committer thread, joined when the store closes.
    committer_thread: Option<thread::JoinHandle<()>>,
    /// The thread counting the queues at open (`queues.rs`): it holds the depths and a handle
    /// on the database, never the store; closing asks it to stop at its next entry and joins it.
    counter_thread: std::sync::Mutex<Option<thread::JoinHandle<()>>>,
}

impl Drop for Inner {
    /// Closes the committer's queue and waits for its thread, which holds a handle on the
    /// database: so the database's lock is free once the last handle on the store is gone, and
    /// the same process can open the store again at once.
    fn drop(&mut self) {
        self.committer = None;
        if let Some(t) = self.committer_thread.take() {
            if t.join().is_err() {
                tracing::error!(path = %self.path.display(), "the store's committer thread panicked");
            }
        }
        let counter = match self.counter_thread.get_mut() {
            Ok(t) => t.take(),
            Err(p) => p.into_inner().take(),
        };
        self.depths.close();
        if let Some(t) = counter {
            if t.join().is_err() {
                tracing::error!(path = %self.path.display(), "the store's queue-counting thread panicked");
            }
        }
    }
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

/// How often sled flushes on its own (ms): the bound on how long a write that no caller
/// commits (metadata, events, counters) stays in memory only.
const BACKGROUND_FLUSH_MS: u64 = 1000;

/// How long [`Store::open`] waits for the database's lock (ms).
const LOCK_WAIT_MS: u64 = 2000;

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let config = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(Some(BACKGROUND_FLUSH_MS))
            .cache_capacity(STORE_CACHE_BYTES);
        // The database's lock is held until the last thread of a closing handle in this process
        // lets go (sled's own threads end shortly after the last handle): wait for that a
        // moment. Another process holding it gets the error once the moment has passed.
        let mut waited = 0;
        let db = loop {
            match config.open() {
                // sled words it so, with the system's error inside the text.
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && waited < LOCK_WAIT_MS =>
                {
                    thread::sleep(std::time::Duration::from_millis(20));
                    waited += 20;
                }
                other => {
                    break other.map_err(|e| StoreError::Sled {
                        path: dir.to_owned(),
                        reason: e.to_string(),
                    })?
                }
            }
        };
        let opened = format::check_and_migrate(&db, dir)?;
        if let format::Opened::Migrated { from } = opened {
            tracing::info!(
                path = %dir.display(),
                from,
                to = format::CURRENT,
                "store migrated to the current format"
            );
        }
        let blobs = dir.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(|e| StoreError::Sled {
            path: blobs.clone(),
            reason: e.to_string(),
        })?;
        let bodies = Arc::new(bodies::Bodies::open(&dir.join(bodies::BODIES_DIR))?);
        // Queue entries numbered from here on are new (see `queues.rs`, depths).
        let first_new_seq = db.generate_id().map_err(|e| StoreError::Sled {
            path: dir.to_owned(),
            reason: e.to_string(),
        })?;
        let (tx, rx) = mpsc::channel::<Waiter>();
        let flusher = db.clone();
        let synced = bodies.clone();
        let path = dir.to_owned();
        let committer_thread = thread::Builder::new()
            .name("store-commit".into())
            .spawn(move || commit_loop(&flusher, &synced, &rx))
            .map_err(|e| StoreError::Sled {
                path: path.clone(),
                reason: format!("cannot start committer thread: {e}"),
            })?;
        let store = Self {
            inner: Arc::new(Inner {
                audit_lock: std::sync::Mutex::new(()),
                offer_lock: std::sync::Mutex::new(()),
                depths: Arc::new(queues::Depths::new(first_new_seq)),
                blobs,
                bodies,
                path: dir.to_owned(),
                db,
                committer: Some(tx),
                committer_thread: Some(committer_thread),
                counter_thread: std::sync::Mutex::new(None),
            }),
        };
        store.count_queues_in_background();
        Ok(store)
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
            .as_ref()
            .ok_or(StoreError::Closed)?
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
            .as_ref()
            .ok_or(StoreError::Closed)?
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

    /// Removes a metadata value (absent: nothing to do).
    pub fn delete_meta(&self, name: &str) -> Result<(), StoreError> {
        self.tree()
            .remove(key(b"m/", &[name.as_bytes()]))
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

    /// Checks the store by reading every record (sled verifies checksums as it reads) and
    /// every body a record points to (against its CRC-32).
    pub fn check(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for kv in self.tree().iter() {
            let (k, v) = kv.map_err(|e| self.err(e))?;
            if holds_body(&k) && bodies::is_pointer(&v) {
                self.inner.bodies.resolve(&k, v.to_vec())?;
            }
            n += 1;
        }
        Ok(n)
    }

    /// Takes the lock under which an envelope or a receipt frame is checked and written.
    ///
    /// These writes are plain inserts, not sled transactions or batches: each of those writes
    /// and waits for the disk twice (sled seals its log buffer before and after), which was
    /// most of a hop's cost. Atomicity comes from order instead. sled recovers a prefix of its
    /// log, so of inserts made one after the other, a later one is never kept without the
    /// earlier ones. The key that says "already stored" (`d/` for an envelope, `r/` for a
    /// receipt) is written last: after a crash in between, the item is not known, and when
    /// the sender offers it again (it was never acknowledged) it is stored again; the queue
    /// entries left from the first attempt send it twice at worst, which the next hop drops as
    /// a duplicate. Readers can meet the same in-between state while the writes are under
    /// way: an envelope's body record is written before its queue entries, so a sender never
    /// finds one missing, but a receipt's queue entry comes before the receipt (whose id is
    /// its marker), so [`Store::receipt`] reads a miss again under this lock. A receipt's
    /// queue entry left by a crash points at nothing: the sender loop
    /// drops it as lost (logged, `queue_item_lost`), and the receipt, offered again, is queued
    /// again.
    fn ordered_writes(&self) -> std::sync::MutexGuard<'_, ()> {
        match self.inner.offer_lock.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Writes a body (not durable until the next commit); the pointer is what to store.
    fn put_body(&self, bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.inner.bodies.append(bytes)
    }

    /// The value a record stands for: its body, if it is a record of a keyspace that keeps
    /// bodies apart and holds a pointer; else the value itself.
    fn resolve(&self, key: &[u8], value: &[u8]) -> Result<Vec<u8>, StoreError> {
        if holds_body(key) {
            self.inner.bodies.resolve(key, value.to_vec())
        } else {
            Ok(value.to_vec())
        }
    }
}

/// Keyspaces whose values are written to the segment files (envelopes, receipt frames).
fn holds_body(key: &[u8]) -> bool {
    key.starts_with(b"e/") || key.starts_with(b"r/")
}

fn commit_loop(db: &sled::Db, bodies: &bodies::Bodies, rx: &mpsc::Receiver<Waiter>) {
    while let Ok(first) = rx.recv() {
        let mut waiters = vec![first];
        while let Ok(w) = rx.try_recv() {
            waiters.push(w);
        }
        // Bodies first: a record made durable by the flush must not point at bytes that are
        // not.
        let result = bodies
            .sync()
            .and_then(|()| db.flush().map(|_| ()).map_err(|e| e.to_string()));
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
    async fn envelopes_live_in_segments_and_a_lost_body_is_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let e = env("lost", 0);
        let q = vec![("n".to_string(), vec![])];
        assert_eq!(s.offer_envelope(&e, b"d", &q).unwrap(), Offer::New);
        let _ = s.commit().await.unwrap();
        // The record is a pointer; the raw view and backups see the envelope itself.
        let record = s.tree().get(b"e/lost").unwrap().unwrap();
        assert!(bodies::is_pointer(&record));
        assert_eq!(s.get_raw(b"e/lost").unwrap().unwrap(), e.encode_to_vec());
        let raw: Vec<KeyValue> = s.iter_raw().map(Result::unwrap).collect();
        assert!(raw.contains(&(b"e/lost".to_vec(), e.encode_to_vec())));
        // The body's bytes are lost (as after a power loss that kept the record only).
        for f in std::fs::read_dir(dir.path().join(bodies::BODIES_DIR)).unwrap() {
            std::fs::write(f.unwrap().path(), b"").unwrap();
        }
        let err = s.envelope("lost").unwrap_err().to_string();
        assert!(err.contains("e/lost"), "{err}");
        assert!(s.check().is_err());
        // The sender offers it again: a duplicate, and the body is back.
        assert_eq!(s.offer_envelope(&e, b"d", &q).unwrap(), Offer::Duplicate);
        assert_eq!(s.envelope("lost").unwrap().unwrap(), e);
        assert_eq!(s.check().unwrap(), 3, "e/, d/ and the queue entry");
        assert_eq!(s.queue_depth("n"), 1);
    }

    #[tokio::test]
    async fn queue_depths_are_counted_once_at_open_and_kept_exact_after() {
        let dir = tempfile::tempdir().unwrap();
        let item = |i: usize| QueueItem::Receipt {
            id: format!("r{i}"),
        };
        {
            let s = Store::open(dir.path()).unwrap();
            for i in 0..20_000 {
                s.enqueue(if i % 4 == 0 { "a" } else { "b" }, 3, &item(i))
                    .unwrap();
            }
            let _ = s.commit().await.unwrap();
            assert_eq!((s.queue_depth("a"), s.queue_depth("b")), (5_000, 15_000));
        }
        // The first opening's threads let go of the database shortly after it is dropped.
        let s = loop {
            match Store::open(dir.path()) {
                Ok(s) => break s,
                Err(e) => {
                    assert!(e.to_string().contains("lock"), "{e}");
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        };
        // Changes while the count made at open runs: both before and beyond where it is.
        let first_a = s.outbound("a", 10).unwrap();
        for e in &first_a {
            s.dequeue(&e.key).unwrap();
        }
        for i in 0..100 {
            s.enqueue("a", 3, &item(100_000 + i)).unwrap();
            s.enqueue("c", 0, &item(200_000 + i)).unwrap();
        }
        let last_b = s.outbound("b", 15_000).unwrap();
        for e in last_b.iter().rev().take(7) {
            s.dequeue(&e.key).unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !s.queues_counted() {
            assert!(std::time::Instant::now() < deadline, "count did not finish");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(s.queue_depth("a"), 5_000 - 10 + 100);
        assert_eq!(s.queue_depth("b"), 15_000 - 7);
        assert_eq!(s.queue_depth("c"), 100);
        // The counts agree with the queues themselves.
        for q in ["a", "b", "c"] {
            assert_eq!(
                s.outbound(q, 100_000).unwrap().len(),
                s.queue_depth(q),
                "{q}"
            );
        }
    }

    #[test]
    fn a_closed_store_opens_again_at_once_in_the_same_process() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..20u8 {
            let store = Store::open(dir.path()).unwrap();
            let clone = store.clone();
            store.put_meta("round", &[round]).unwrap();
            let _durable = clone.commit_blocking().unwrap();
            drop(store);
            drop(clone);
            // The committer held a handle on the database; it is gone with the last handle.
            let again = Store::open(dir.path())
                .unwrap_or_else(|e| panic!("round {round}: reopening failed: {e}"));
            assert_eq!(again.get_meta("round").unwrap(), Some(vec![round]));
        }
    }

    /// Copies a folder as it is on disk (a live store: what a crash at this moment would leave).
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy_dir(&e.path(), &target);
            } else {
                std::fs::copy(e.path(), target).unwrap();
            }
        }
    }

    #[test]
    fn a_write_no_one_commits_is_on_disk_after_the_background_flush() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live");
        let store = Store::open(&live).unwrap();
        let _durable = store.commit_blocking().unwrap();
        store.put_meta("uncommitted", b"kept").unwrap();
        // Several rounds of the flusher, for a loaded machine.
        std::thread::sleep(std::time::Duration::from_millis(
            4 * BACKGROUND_FLUSH_MS + 1000,
        ));
        // The store still open: its files are what a crash now would leave.
        let copy = dir.path().join("copy");
        copy_dir(&live, &copy);
        let after_crash = Store::open(&copy).unwrap();
        assert_eq!(
            after_crash.get_meta("uncommitted").unwrap(),
            Some(b"kept".to_vec())
        );
    }

    #[test]
    fn a_closed_store_frees_its_lock_at_once_while_its_queues_are_still_being_counted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            for i in 0..300_000u32 {
                s.queue_insert(&key(b"q/", &[b"n", &i.to_be_bytes()]), b"x")
                    .unwrap();
            }
            let _durable = s.commit_blocking().unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert!(!s.queues_counted(), "the test needs a count still running");
        // sled's own I/O threads may hold the lock for a moment after the last handle goes;
        // a count that kept the store open, or that the close waited for, would hold it until
        // it had read every entry.
        let dropped = std::time::Instant::now();
        drop(s);
        let db = loop {
            match sled::Config::new().path(dir.path()).open() {
                Ok(db) => break db,
                Err(e) if dropped.elapsed() < std::time::Duration::from_secs(10) => {
                    assert!(e.to_string().contains("could not acquire lock"), "{e}");
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(e) => panic!("the lock is still held after 10 s: {e}"),
            }
        };
        let released = dropped.elapsed();
        drop(db);
        // How long a whole count takes here and now, on the same machine under the same load.
        let opened = std::time::Instant::now();
        let s = Store::open(dir.path()).unwrap();
        while !s.queues_counted() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let count = opened.elapsed();
        assert!(
            released < count / 2,
            "the lock was freed {released:?} after the close; a whole count takes {count:?}"
        );
    }

    #[test]
    fn a_sender_never_meets_a_queued_receipt_that_is_not_there() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let total = 3000;
        let writer = {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..total {
                    s.put_receipt(&format!("r{i}"), "e", b"frame", Some("n"))
                        .unwrap();
                }
            })
        };
        let mut seen = 0;
        while seen < total {
            for e in s.outbound("n", 100).unwrap() {
                let found = s.receipt(e.item.id()).unwrap();
                assert!(found.is_some(), "{} queued but not found", e.item.id());
                s.dequeue(&e.key).unwrap();
                seen += 1;
            }
        }
        writer.join().unwrap();
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
