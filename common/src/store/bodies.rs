//! Large immutable values (envelopes and receipt frames) in append-only segment files beside
//! the database, `bodies/<number>.seg`; sled keeps a small pointer to each.
//!
//! sled rewrites whole tree nodes as they change, so 4 KiB values under hot keys multiply what
//! it writes and copies. A body is written here once, with one `pwrite`, and never changed; its
//! pointer (segment, offset, length, CRC-32) is what goes into the sled record, in the same
//! atomic update as the keys that refer to it.
//!
//! # Durability
//! `Bodies::sync` makes every body appended before the call durable (`fdatasync` of the
//! segments written since the last sync, and of the folder when a segment was created). The
//! store's committer calls it before it flushes sled, so a [`super::Persisted`] proof covers the
//! bodies its records point to. sled may also write on its own (in the background); after a
//! power loss such a record could point at bytes that never reached the disk: the CRC makes
//! that a [`StoreError::Corrupt`] on read, never wrong content, and offering the same envelope
//! again writes its body anew ([`super::Store::offer_envelope`]).
//!
//! A process that starts writes to a new segment: a torn tail left by a crash is never
//! appended to.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::StoreError;

/// First byte of a pointer. Never the first byte of a protobuf message (wire type 7 does not
/// exist), so values written inline by older versions and by restores still read as they are.
pub(super) const POINTER_TAG: u8 = 0xFF;
const POINTER_BYTES: usize = 1 + 8 + 8 + 4 + 4;
/// A segment is closed once it holds this much; the next body starts a new one.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Most segment files kept open for reading; past it the open handles are closed and opened
/// again as reads need them, so a store with years of segments stays within the process's
/// file limit.
const OPEN_READERS: usize = 128;
/// Folder of the segments, inside the store's folder.
pub const BODIES_DIR: &str = "bodies";

/// Where a body lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pointer {
    segment: u64,
    offset: u64,
    len: u32,
    crc: u32,
}

impl Pointer {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(POINTER_BYTES);
        v.push(POINTER_TAG);
        v.extend_from_slice(&self.segment.to_be_bytes());
        v.extend_from_slice(&self.offset.to_be_bytes());
        v.extend_from_slice(&self.len.to_be_bytes());
        v.extend_from_slice(&self.crc.to_be_bytes());
        v
    }

    fn decode(v: &[u8]) -> Option<Self> {
        if v.len() != POINTER_BYTES || v[0] != POINTER_TAG {
            return None;
        }
        let u64_at = |i: usize| v.get(i..i + 8)?.try_into().ok().map(u64::from_be_bytes);
        let u32_at = |i: usize| v.get(i..i + 4)?.try_into().ok().map(u32::from_be_bytes);
        Some(Self {
            segment: u64_at(1)?,
            offset: u64_at(9)?,
            len: u32_at(17)?,
            crc: u32_at(21)?,
        })
    }
}

/// True if a stored value is a pointer to a body (not the value itself).
pub(super) fn is_pointer(v: &[u8]) -> bool {
    v.first() == Some(&POINTER_TAG)
}

struct Writer {
    segment: u64,
    file: Option<Arc<File>>,
    len: u64,
}

#[derive(Default)]
struct Unsynced {
    files: Vec<Arc<File>>,
    dir: bool,
}

/// The segment files of one store.
pub(super) struct Bodies {
    dir: PathBuf,
    writer: Mutex<Writer>,
    unsynced: Mutex<Unsynced>,
    readers: Mutex<HashMap<u64, Arc<File>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Bodies {
    /// Opens the folder (creating it); new bodies go to a segment numbered after every
    /// existing one.
    pub(super) fn open(dir: &Path) -> Result<Self, StoreError> {
        let io = |e: std::io::Error| StoreError::Sled {
            path: dir.to_owned(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut last = 0u64;
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let name = entry.map_err(io)?.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name
                .strip_suffix(".seg")
                .and_then(|n| u64::from_str_radix(n, 16).ok())
            {
                last = last.max(n);
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            writer: Mutex::new(Writer {
                segment: last + 1,
                file: None,
                len: 0,
            }),
            unsynced: Mutex::new(Unsynced::default()),
            readers: Mutex::new(HashMap::new()),
        })
    }

    fn path(&self, segment: u64) -> PathBuf {
        self.dir.join(format!("{segment:016x}.seg"))
    }

    fn io_err(&self, segment: u64, e: std::io::Error) -> StoreError {
        StoreError::Sled {
            path: self.path(segment),
            reason: e.to_string(),
        }
    }

    /// Writes `bytes` (not durable until `Bodies::sync`) and returns the pointer to store.
    pub(super) fn append(&self, bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
        let len = u32::try_from(bytes.len()).map_err(|_| StoreError::Corrupt {
            key: "body".into(),
            reason: format!("{} bytes is too large for one body", bytes.len()),
        })?;
        let crc = crc32fast::hash(bytes);
        let mut w = lock(&self.writer);
        if w.file.is_none() || (w.len > 0 && w.len + u64::from(len) > SEGMENT_BYTES) {
            if w.file.is_some() {
                w.segment += 1;
            }
            let segment = w.segment;
            let file = OpenOptions::new()
                .create_new(true)
                .read(true)
                .write(true)
                .open(self.path(segment))
                .map_err(|e| self.io_err(segment, e))?;
            let file = Arc::new(file);
            w.file = Some(file.clone());
            w.len = 0;
            lock(&self.readers).insert(segment, file);
            lock(&self.unsynced).dir = true;
        }
        let (segment, offset) = (w.segment, w.len);
        let Some(file) = w.file.clone() else {
            return Err(StoreError::Closed);
        };
        file.write_all_at(bytes, offset)
            .map_err(|e| self.io_err(segment, e))?;
        w.len += u64::from(len);
        drop(w);
        let mut u = lock(&self.unsynced);
        if !u.files.iter().any(|f| Arc::ptr_eq(f, &file)) {
            u.files.push(file);
        }
        Ok(Pointer {
            segment,
            offset,
            len,
            crc,
        }
        .encode())
    }

    /// Makes every body appended before this call durable.
    pub(super) fn sync(&self) -> Result<(), String> {
        let Unsynced { files, dir } = std::mem::take(&mut *lock(&self.unsynced));
        for f in &files {
            if let Err(e) = f.sync_data() {
                // Keep them for the next attempt.
                let mut u = lock(&self.unsynced);
                u.files.extend(files.iter().cloned());
                u.dir |= dir;
                return Err(format!("{}: fdatasync: {e}", self.dir.display()));
            }
        }
        if dir {
            let synced = File::open(&self.dir).and_then(|d| d.sync_all());
            if let Err(e) = synced {
                lock(&self.unsynced).dir = true;
                return Err(format!("{}: fsync of the folder: {e}", self.dir.display()));
            }
        }
        Ok(())
    }

    /// The value a stored record stands for: the body it points to (checked against its
    /// CRC-32), or the record itself when it is not a pointer.
    pub(super) fn resolve(&self, key: &[u8], value: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        if !is_pointer(&value) {
            return Ok(value);
        }
        let corrupt = |reason: String| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason,
        };
        let p = Pointer::decode(&value).ok_or_else(|| corrupt("bad body pointer".into()))?;
        let file = {
            let mut readers = lock(&self.readers);
            match readers.get(&p.segment) {
                Some(f) => f.clone(),
                None => {
                    if readers.len() >= OPEN_READERS {
                        readers.clear();
                    }
                    let f = File::open(self.path(p.segment)).map_err(|e| {
                        corrupt(format!("segment {}: {e}", self.path(p.segment).display()))
                    })?;
                    let f = Arc::new(f);
                    readers.insert(p.segment, f.clone());
                    f
                }
            }
        };
        let mut buf = vec![0u8; p.len as usize];
        file.read_exact_at(&mut buf, p.offset).map_err(|e| {
            corrupt(format!(
                "{} bytes at {} of {}: {e}",
                p.len,
                p.offset,
                self.path(p.segment).display()
            ))
        })?;
        if crc32fast::hash(&buf) != p.crc {
            return Err(corrupt(format!(
                "body at {} of {} does not match its checksum",
                p.offset,
                self.path(p.segment).display()
            )));
        }
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bodies_round_trip_across_segments_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let b = Bodies::open(dir.path()).unwrap();
        let big = vec![7u8; (SEGMENT_BYTES / 2 + 1) as usize];
        let p1 = b.append(b"first").unwrap();
        let p2 = b.append(&big).unwrap();
        let p3 = b.append(&big).unwrap();
        b.sync().unwrap();
        assert_eq!(
            Pointer::decode(&p3).unwrap().segment,
            2,
            "third rolled over"
        );
        assert_eq!(b.resolve(b"k", p1.clone()).unwrap(), b"first");
        assert_eq!(b.resolve(b"k", p2).unwrap(), big);
        drop(b);
        let b = Bodies::open(dir.path()).unwrap();
        assert_eq!(b.resolve(b"k", p1).unwrap(), b"first");
        assert_eq!(b.resolve(b"k", p3).unwrap(), big);
        let p4 = b.append(b"after reopen").unwrap();
        assert_eq!(
            Pointer::decode(&p4).unwrap().segment,
            3,
            "never appends to old"
        );
        // A value that is not a pointer is the value.
        assert_eq!(
            b.resolve(b"k", b"\x0ainline".to_vec()).unwrap(),
            b"\x0ainline"
        );
    }

    #[test]
    fn more_segments_than_open_readers_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut pointers = Vec::new();
        // Each opening writes to a segment of its own.
        for i in 0..(OPEN_READERS + 5) {
            let b = Bodies::open(dir.path()).unwrap();
            pointers.push((i, b.append(format!("body {i}").as_bytes()).unwrap()));
            b.sync().unwrap();
        }
        let b = Bodies::open(dir.path()).unwrap();
        for _ in 0..2 {
            for (i, p) in &pointers {
                assert_eq!(
                    b.resolve(b"k", p.clone()).unwrap(),
                    format!("body {i}").as_bytes()
                );
            }
        }
        assert!(lock(&b.readers).len() <= OPEN_READERS);
    }

    #[test]
    fn a_changed_byte_is_a_corrupt_record() {
        let dir = tempfile::tempdir().unwrap();
        let b = Bodies::open(dir.path()).unwrap();
        let p = b.append(b"hello world").unwrap();
        b.sync().unwrap();
        let path = b.path(Pointer::decode(&p).unwrap().segment);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[3] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let b = Bodies::open(dir.path()).unwrap();
        let err = b.resolve(b"e/x", p).unwrap_err().to_string();
        assert!(err.contains("e/x") && err.contains("checksum"), "{err}");
    }
}
