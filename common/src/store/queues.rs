//! Keyspace `q/`: the per-neighbour outbound queues (also the RabbitMQ delivery queues).
//!
//! # Depths
//! How many entries each queue holds is kept in memory as entries are added and removed, so
//! that `/metrics` and attestations never count a queue (a backlog of a million entries took a
//! second per scrape). Entries added since the store was opened are counted as they come; the
//! entries it held at open are counted once, by a thread in the background (sending does not
//! wait for it). Entry keys end with a sequence number that only grows, so the count can tell
//! the two apart: it counts entries numbered below the first number of this opening, and the
//! removal of such an entry is counted at once only if the count has already passed it (one
//! lock orders the two). Until it finishes, a depth can be low by the entries not yet reached
//! ([`Store::queues_counted`]); after, it is exact. Entries written inside a transaction
//! (inbox and upward items) are counted just after it. Whenever a sender reads a queue to its
//! end ([`Store::outbound`]), the queue's count is set to what it read: an entry added or
//! removed at that very moment can leave it one off until the next such read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::*;

/// Entries per queue, and how far the count made at open has gone.
#[derive(Debug)]
pub(super) struct Depths {
    state: Mutex<DepthState>,
    /// Set when the store closes: the count made at open stops at its next entry.
    closing: AtomicBool,
}

#[derive(Debug)]
struct DepthState {
    by_queue: HashMap<String, i64>,
    /// While the count made at open runs: the last key it counted.
    counting_at: Option<Vec<u8>>,
    /// Entries numbered from here on were added since the store was opened.
    first_new_seq: u64,
}

impl Depths {
    pub(super) fn new(first_new_seq: u64) -> Self {
        Self {
            state: Mutex::new(DepthState {
                by_queue: HashMap::new(),
                counting_at: Some(Vec::new()),
                first_new_seq,
            }),
            closing: AtomicBool::new(false),
        }
    }

    /// Asks the count made at open to stop (the store is closing).
    pub(super) fn close(&self) {
        self.closing.store(true, Ordering::Release);
    }

    fn lock(&self) -> MutexGuard<'_, DepthState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

impl DepthState {
    /// Counts `delta` for the queue of `entry_key`, unless it is an entry held at open that
    /// the count made at open has yet to reach (that count sees it, or not, itself).
    fn add(&mut self, entry_key: &[u8], delta: i64) {
        if self.held_at_open(entry_key)
            && self.counting_at.as_deref().is_some_and(|at| entry_key > at)
        {
            return;
        }
        if let Some(q) = queue_of(entry_key) {
            let name = String::from_utf8_lossy(q).into_owned();
            *self.by_queue.entry(name).or_insert(0) += delta;
        }
    }
}

impl DepthState {
    fn held_at_open(&self, entry_key: &[u8]) -> bool {
        entry_seq(entry_key).is_none_or(|n| n < self.first_new_seq)
    }
}

/// The sequence number that ends a queue entry's key.
fn entry_seq(entry_key: &[u8]) -> Option<u64> {
    let tail = entry_key.get(entry_key.len().checked_sub(8)?..)?;
    tail.try_into().ok().map(u64::from_be_bytes)
}

/// The queue name in a queue entry's key `q/<name>\0...`.
fn queue_of(entry_key: &[u8]) -> Option<&[u8]> {
    let rest = entry_key.strip_prefix(b"q/")?;
    let end = rest.iter().position(|b| *b == 0)?;
    Some(&rest[..end])
}

/// Holding queues' names start with this (never an agency code): documents that wait for their
/// RFC 3161 time-stamp before they go to the next hop the rest of the name gives.
pub const HOLD_PREFIX: &str = "stamp>";

/// The holding queue of documents bound for `next_hop`.
pub fn holding_queue(next_hop: &str) -> String {
    format!("{HOLD_PREFIX}{next_hop}")
}

/// The next hop a holding queue is for (`None`: not a holding queue).
pub fn next_hop_of(queue: &str) -> Option<&str> {
    queue.strip_prefix(HOLD_PREFIX)
}

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
        self.queue_insert(&k, &item.encode())
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
        if out.len() < limit {
            // The whole queue was read: its depth is known exactly.
            let mut d = self.inner.depths.lock();
            if d.counting_at.is_none() {
                d.by_queue.insert(neighbour.to_owned(), out.len() as i64);
            }
        }
        Ok(out)
    }

    /// The first envelope waiting in each priority class of a queue (at most one per class,
    /// looking past at most `look` receipts in each): a queue is in arrival order within a
    /// class, so these are the longest-waiting documents, however many of a higher class are
    /// in front of them.
    pub fn first_envelopes(
        &self,
        neighbour: &str,
        look: usize,
    ) -> Result<Vec<QueuedEntry>, StoreError> {
        let mut out = Vec::new();
        // Class 0 (express) to the class of documents with no priority, the last.
        for class in 0..=queue_class(0) {
            let mut prefix = queue_prefix(neighbour);
            prefix.push(class);
            for kv in self.tree().scan_prefix(prefix).take(look.max(1)) {
                let (k, v) = kv.map_err(|e| self.err(e))?;
                let item = QueueItem::decode(&v).ok_or_else(|| StoreError::Corrupt {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    reason: "bad queue item".into(),
                })?;
                if matches!(item, QueueItem::Envelope { .. }) {
                    out.push(QueuedEntry {
                        key: k.to_vec(),
                        item,
                    });
                    break;
                }
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

    /// Number of entries queued for a neighbour (kept as a count, see the module's notes).
    pub fn queue_depth(&self, neighbour: &str) -> usize {
        let d = self
            .inner
            .depths
            .lock()
            .by_queue
            .get(neighbour)
            .copied()
            .unwrap_or(0);
        usize::try_from(d).unwrap_or(0)
    }

    /// Whether the count of every queue made at open has finished (until then,
    /// [`Store::queue_depth`] can be low).
    pub fn queues_counted(&self) -> bool {
        self.inner.depths.lock().counting_at.is_none()
    }

    /// Moves every entry of `from`'s queue to the end of `to`'s, each in its class and in
    /// order: written to `to` before it leaves `from`, so a crash in between sends an item
    /// twice (receivers deduplicate), never loses it. Returns how many moved.
    pub fn requeue(&self, from: &str, to: &str) -> Result<usize, StoreError> {
        let prefix_len = queue_prefix(from).len();
        let mut moved = 0;
        loop {
            let batch = self.outbound(from, 256)?;
            if batch.is_empty() {
                return Ok(moved);
            }
            for e in batch {
                self.move_entry(&e, prefix_len, to)?;
                moved += 1;
            }
        }
    }

    /// Moves one entry of `from`'s queue to the end of `to`'s, in its class (written to `to`
    /// before it leaves `from`, as [`Store::requeue`] does).
    pub fn move_queued(&self, entry: &QueuedEntry, from: &str, to: &str) -> Result<(), StoreError> {
        self.move_entry(entry, queue_prefix(from).len(), to)
    }

    fn move_entry(&self, e: &QueuedEntry, prefix_len: usize, to: &str) -> Result<(), StoreError> {
        let class = e.key.get(prefix_len).copied().unwrap_or(0);
        self.enqueue(to, class, &e.item)?;
        self.dequeue(&e.key)
    }

    /// Removes a queue entry (after the neighbour acknowledged or refused it).
    pub fn dequeue(&self, entry_key: &[u8]) -> Result<(), StoreError> {
        let mut d = self.inner.depths.lock();
        if self
            .tree()
            .remove(entry_key)
            .map_err(|e| self.err(e))?
            .is_some()
        {
            d.add(entry_key, -1);
        }
        Ok(())
    }

    /// Writes a queue entry and counts it.
    pub(super) fn queue_insert(&self, entry_key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let mut d = self.inner.depths.lock();
        if self
            .tree()
            .insert(entry_key, value)
            .map_err(|e| self.err(e))?
            .is_none()
        {
            d.add(entry_key, 1);
        }
        Ok(())
    }

    /// Counts a queue entry written inside a transaction (see the module's notes).
    pub(super) fn queued(&self, entry_key: &[u8]) {
        self.inner.depths.lock().add(entry_key, 1);
    }

    /// Starts the one count of every queue made at open (see the module's notes).
    pub(super) fn count_queues_in_background(&self) {
        // The count holds the depths and a handle on the database, never the store itself: the
        // store closes on the thread that lets go of it last, which stops and joins the count
        // (`Inner::drop`), so the database's lock is free once that returns.
        let depths = Arc::clone(&self.inner.depths);
        let db = self.inner.db.clone();
        let started = thread::Builder::new()
            .name("store-count".into())
            .spawn(move || {
                let mut keys = db.scan_prefix(b"q/").keys();
                loop {
                    if depths.closing.load(Ordering::Acquire) {
                        // Closed before the count ended: nothing is left to count for.
                        return;
                    }
                    // The next key is read under the lock, so no entry is added or removed
                    // between reading it and moving the point the count has reached.
                    let mut d = depths.lock();
                    match keys.next() {
                        Some(Ok(k)) => {
                            // The iterator may hand out a key from a page it read before the
                            // entry was removed (sled's iterators are no snapshot): only an
                            // entry still there counts, as its removal was not counted.
                            let old =
                                d.held_at_open(&k) && db.contains_key(&k).unwrap_or(false);
                            d.counting_at = Some(k.to_vec());
                            if let (true, Some(q)) = (old, queue_of(&k)) {
                                let name = String::from_utf8_lossy(q).into_owned();
                                *d.by_queue.entry(name).or_insert(0) += 1;
                            }
                        }
                        Some(Err(e)) => {
                            d.counting_at = None;
                            tracing::warn!(cause = %e, "counting the queues stopped; depths may be low until each queue is read to its end");
                            return;
                        }
                        None => {
                            d.counting_at = None;
                            return;
                        }
                    }
                }
            });
        match started {
            Ok(t) => match self.inner.counter_thread.lock() {
                Ok(mut slot) => *slot = Some(t),
                Err(p) => *p.into_inner() = Some(t),
            },
            Err(e) => {
                self.inner.depths.lock().counting_at = None;
                tracing::warn!(cause = %e, "cannot start counting the queues; depths count changes since the start only");
            }
        }
    }
}
