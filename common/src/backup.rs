//! Backups of a node's store: one file per backup with every key/value of the store, and the
//! attachment files beside it, content-addressed and shared between backups.
//!
//! # Files
//! - `<dir>/<agency>-<YYYYMMDDTHHMMSSZ>.ltbak` (UTC): one backup. Written as `….ltbak.tmp`,
//!   fsynced, then renamed, so a `.ltbak` file is always complete. Other tools find backups by
//!   this name: keep it exactly.
//! - `<dir>/blobs/<sha256>`: attachment files, hard-linked from the store (copied, and checked
//!   against their SHA-256, when the backup is on another filesystem). They never change, so
//!   backups share them; [`remove_old`] deletes those no backup lists any more.
//!
//! # Format (version 1; integers big-endian)
//! ```text
//! "LTBACKUP" | version u32 | header length u32 | header (JSON: format, agency, created)
//! entries:  (0x01 | key length u32 | key | value length u32 | value)* | 0x00
//! blobs:    count u64 | (SHA-256 [32] | size u64)*
//! footer:   entry count u64 | offset of the blob count u64 | next sequence number u64
//! trailer:  SHA-256 of every byte before it [32]
//! ```
//! Lengths are checked against [`MAX_HEADER_BYTES`], [`MAX_KEY_BYTES`] and [`MAX_VALUE_BYTES`]
//! before anything is allocated; the trailer makes a truncated or corrupted file fail
//! [`read`] as a whole. The footer sits at a fixed distance from the end so the blob list can be
//! read without reading the entries ([`blob_list`]).
//!
//! # Consistency
//! [`write`] reads the store while the node may be writing to it: every record is copied whole,
//! but a document that arrives during the backup may be captured in part (its envelope without
//! its queue entry, say). A backup of a stopped node is exact.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::agency::AgencyCode;
use crate::store::{KeyValue, Store, StoreError};

/// Version of the file format written (and the only one read).
pub const FORMAT_VERSION: u32 = 1;
/// Extension of backup files.
pub const EXTENSION: &str = "ltbak";
/// Folder of the attachment files, beside the backup files.
pub const BLOBS_DIR: &str = "blobs";
/// Largest header.
pub const MAX_HEADER_BYTES: u32 = 64 * 1024;
/// Largest key.
pub const MAX_KEY_BYTES: u32 = 64 * 1024;
/// Largest value (envelopes are at most 1 MiB; the margin is for what comes later).
pub const MAX_VALUE_BYTES: u32 = 16 * 1024 * 1024;
/// An attachment file no backup lists is deleted only once it has been unchanged (neither
/// linked nor written) this long, so a backup being written by another node sharing the folder
/// keeps what it just linked.
pub const BLOB_GRACE: Duration = Duration::from_secs(3600);

const MAGIC: &[u8; 8] = b"LTBACKUP";
const TRAILER_BYTES: u64 = 32;
const FOOTER_BYTES: u64 = 24;
/// Magic, version, header length, end of entries, blob count, footer, trailer.
const MIN_FILE_BYTES: u64 = 8 + 4 + 4 + 1 + 8 + FOOTER_BYTES + TRAILER_BYTES;
const BLOB_ENTRY_BYTES: u64 = 32 + 8;
/// Restored pairs written per store batch.
const RESTORE_BATCH: usize = 1024;
const RESTORE_BATCH_BYTES: usize = 8 * 1024 * 1024;
const TIME_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");

/// Backup failures, each naming the file concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// A file operation failed.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file does not match its checksum, or is too short to hold one.
    #[error("{path}: the backup is truncated or corrupted ({detail}); use another backup")]
    Damaged {
        /// The backup file.
        path: PathBuf,
        /// What showed it.
        detail: String,
    },
    /// The file is intact but is not a backup this program can read.
    #[error("{path}: not a usable backup: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Written in a format version this program does not read.
    #[error("{path}: backup format {found} is not supported (this lt-relay reads format {FORMAT_VERSION}); restore it with the version that wrote it")]
    Version {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// A backup of another agency.
    #[error("{path} is a backup of {backup}, but this node is {node}: restore a backup of {node} (backup file names start with the agency)")]
    AgencyMismatch {
        /// The file.
        path: PathBuf,
        /// Agency of the backup.
        backup: String,
        /// Agency of the node.
        node: String,
    },
    /// An attachment file the backup lists is missing or wrong.
    #[error("{path}: attachment {sha256} ({size} bytes) listed by the backup {problem}; keep the backup's {BLOBS_DIR}/ folder beside its .ltbak files")]
    Blob {
        /// Where the attachment file should be.
        path: PathBuf,
        /// Its SHA-256 (hex).
        sha256: String,
        /// Its size.
        size: u64,
        /// What is wrong.
        problem: String,
    },
    /// Restoring would replace a store that holds data.
    #[error("the store at {path} already holds data; restoring would replace it (with force, the current store is kept aside as {}.replaced-<time>)", path.display())]
    NotEmpty {
        /// The store folder.
        path: PathBuf,
    },
    /// A key or value is larger than the format allows.
    #[error("record {key}: {size} bytes exceed the backup limit of {limit} bytes")]
    TooLarge {
        /// The key, printable.
        key: String,
        /// Its size.
        size: usize,
        /// The limit.
        limit: u32,
    },
}

fn io_err(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_owned();
    move |source| BackupError::Io {
        path,
        action,
        source,
    }
}

/// The header of a backup file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Format version.
    pub format: u32,
    /// The node's agency.
    pub agency: String,
    /// When the backup was started, UTC, `YYYYMMDDTHHMMSSZ` (as in the file name).
    pub created: String,
    /// The same, Unix milliseconds.
    pub created_unix_ms: i64,
}

/// What [`write`] wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Written {
    /// The backup file.
    pub file: PathBuf,
    /// Its header.
    pub header: Header,
    /// Key/value pairs.
    pub entries: u64,
    /// Attachment files listed.
    pub blobs: u64,
    /// Of which hard-linked now.
    pub blobs_linked: u64,
    /// Of which copied now (another filesystem).
    pub blobs_copied: u64,
    /// Size of the backup file.
    pub bytes: u64,
}

/// What a backup file holds besides its entries (see [`read`]).
#[derive(Debug, Clone)]
pub struct Contents {
    /// The header.
    pub header: Header,
    /// Key/value pairs.
    pub entries: u64,
    /// The attachment files it needs: SHA-256 and size.
    pub blobs: Vec<(Vec<u8>, u64)>,
    /// The store's sequence generator must give numbers from this one on after a restore.
    pub next_seq: u64,
}

/// What [`restore`] did.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The backup's contents.
    pub contents: Contents,
    /// Where the store that was replaced was kept, if there was one.
    pub replaced: Option<PathBuf>,
}

/// What [`remove_old`] deleted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Removed {
    /// Backup files.
    pub files: Vec<PathBuf>,
    /// Attachment files no backup lists any more.
    pub blobs: u64,
    /// Why attachment files were not collected, if they were not.
    pub blobs_kept_because: Option<String>,
}

/// The file name of a backup of `agency` taken at `at`: `<agency>-<YYYYMMDDTHHMMSSZ>.ltbak`.
pub fn file_name(agency: &AgencyCode, at: OffsetDateTime) -> String {
    let stamp = at
        .to_offset(time::UtcOffset::UTC)
        .format(TIME_FORMAT)
        .unwrap_or_default();
    format!("{agency}-{stamp}.{EXTENSION}")
}

/// The time in a backup file name of `agency`, if `name` is one.
pub fn time_of(agency: &AgencyCode, name: &str) -> Option<OffsetDateTime> {
    let stamp = name
        .strip_prefix(agency.as_str())?
        .strip_prefix('-')?
        .strip_suffix(EXTENSION)?
        .strip_suffix('.')?;
    time::PrimitiveDateTime::parse(stamp, TIME_FORMAT)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

/// The backups of `agency` in `dir`, oldest first.
pub fn list(
    dir: &Path,
    agency: &AgencyCode,
) -> Result<Vec<(OffsetDateTime, PathBuf)>, BackupError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(dir, "listing backups")(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir, "listing backups"))?;
        if let Some(at) = entry.file_name().to_str().and_then(|n| time_of(agency, n)) {
            out.push((at, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "syncing the folder"))
}

/// A writer that hashes and counts what passes through it.
struct HashWriter<W: Write> {
    inner: W,
    ctx: ring::digest::Context,
    offset: u64,
}

impl<W: Write> HashWriter<W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(bytes)?;
        self.ctx.update(bytes);
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn put_u32(&mut self, n: u32) -> std::io::Result<()> {
        self.put(&n.to_be_bytes())
    }

    fn put_u64(&mut self, n: u64) -> std::io::Result<()> {
        self.put(&n.to_be_bytes())
    }
}

fn checked_len(key: &[u8], len: usize, limit: u32) -> Result<u32, BackupError> {
    u32::try_from(len)
        .ok()
        .filter(|n| *n <= limit)
        .ok_or_else(|| BackupError::TooLarge {
            key: String::from_utf8_lossy(key).into_owned(),
            size: len,
            limit,
        })
}

/// Writes a backup of `store` into `dir` (created if missing) and links its attachment files
/// into `dir/blobs`. Blocking (sled scans, file copies): call it off the async reactor.
pub fn write(store: &Store, agency: &AgencyCode, dir: &Path) -> Result<Written, BackupError> {
    let blob_dir = dir.join(BLOBS_DIR);
    std::fs::create_dir_all(&blob_dir).map_err(io_err(&blob_dir, "creating the backup folder"))?;
    remove_stale_tmp(dir, agency)?;
    let (at, file) = free_name(dir, agency)?;
    let tmp = dir.join(format!("{}.tmp", file_name(agency, at)));
    match write_to(store, agency, at, &tmp, &blob_dir) {
        Ok(mut w) => {
            std::fs::rename(&tmp, &file).map_err(io_err(&file, "renaming the finished backup"))?;
            sync_dir(dir)?;
            w.file = file;
            Ok(w)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// A name not taken yet: two backups started within one second get different seconds.
fn free_name(dir: &Path, agency: &AgencyCode) -> Result<(OffsetDateTime, PathBuf), BackupError> {
    loop {
        let at = OffsetDateTime::now_utc();
        let file = dir.join(file_name(agency, at));
        if !file.exists() {
            return Ok((at, file));
        }
        let left = 1_000_000_000u32.saturating_sub(at.nanosecond());
        std::thread::sleep(Duration::from_nanos(u64::from(left) + 1_000_000));
    }
}

/// Removes `.tmp` files of `agency` left by a backup that was interrupted (the node stopped
/// or failed while writing). Backups of one node are never written concurrently.
fn remove_stale_tmp(dir: &Path, agency: &AgencyCode) -> Result<(), BackupError> {
    for entry in std::fs::read_dir(dir).map_err(io_err(dir, "listing backups"))? {
        let entry = entry.map_err(io_err(dir, "listing backups"))?;
        let name = entry.file_name();
        let stale = name
            .to_str()
            .and_then(|n| n.strip_suffix(".tmp"))
            .is_some_and(|n| time_of(agency, n).is_some());
        if stale {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(io_err(&path, "removing an interrupted backup"))?;
        }
    }
    Ok(())
}

fn write_to(
    store: &Store,
    agency: &AgencyCode,
    at: OffsetDateTime,
    tmp: &Path,
    blob_dir: &Path,
) -> Result<Written, BackupError> {
    let werr = |e: std::io::Error| io_err(tmp, "writing the backup")(e);
    let f = File::create(tmp).map_err(io_err(tmp, "creating the backup"))?;
    let mut w = HashWriter {
        inner: BufWriter::with_capacity(1 << 20, f),
        ctx: ring::digest::Context::new(&ring::digest::SHA256),
        offset: 0,
    };
    let header = Header {
        format: FORMAT_VERSION,
        agency: agency.to_string(),
        created: at.format(TIME_FORMAT).unwrap_or_default(),
        created_unix_ms: i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0),
    };
    let header_json = serde_json::to_vec(&header).map_err(|e| BackupError::Invalid {
        path: tmp.to_owned(),
        reason: format!("header: {e}"),
    })?;
    w.put(MAGIC).map_err(werr)?;
    w.put_u32(FORMAT_VERSION).map_err(werr)?;
    w.put_u32(checked_len(b"header", header_json.len(), MAX_HEADER_BYTES)?)
        .map_err(werr)?;
    w.put(&header_json).map_err(werr)?;
    let mut entries = 0u64;
    for kv in store.iter_raw() {
        let (k, v) = kv?;
        let klen = checked_len(&k, k.len(), MAX_KEY_BYTES)?;
        let vlen = checked_len(&k, v.len(), MAX_VALUE_BYTES)?;
        w.put(&[1]).map_err(werr)?;
        w.put_u32(klen).map_err(werr)?;
        w.put(&k).map_err(werr)?;
        w.put_u32(vlen).map_err(werr)?;
        w.put(&v).map_err(werr)?;
        entries += 1;
    }
    w.put(&[0]).map_err(werr)?;
    // Taken after the scan: every number in a key it copied was given out before this one.
    let next_seq = store.next_seq()?;
    // Listed after the scan, so an attachment completed before a document that names it was
    // copied is listed too.
    let (blobs, linked, copied) = link_blobs(store, blob_dir)?;
    let blobs_offset = w.offset;
    w.put_u64(blobs.len() as u64).map_err(werr)?;
    for (sha, size) in &blobs {
        w.put(sha).map_err(werr)?;
        w.put_u64(*size).map_err(werr)?;
    }
    w.put_u64(entries).map_err(werr)?;
    w.put_u64(blobs_offset).map_err(werr)?;
    w.put_u64(next_seq).map_err(werr)?;
    let digest = w.ctx.finish();
    let mut inner = w.inner;
    inner.write_all(digest.as_ref()).map_err(werr)?;
    let f = inner
        .into_inner()
        .map_err(|e| io_err(tmp, "writing the backup")(e.into_error()))?;
    f.sync_all().map_err(io_err(tmp, "syncing the backup"))?;
    Ok(Written {
        file: tmp.to_owned(),
        header,
        entries,
        blobs: blobs.len() as u64,
        blobs_linked: linked,
        blobs_copied: copied,
        bytes: w.offset + TRAILER_BYTES,
    })
}

type BlobList = Vec<(Vec<u8>, u64)>;

/// Puts every complete attachment of the store into `blob_dir` (hard link, else a checked
/// copy); returns the list and how many were linked and copied now.
fn link_blobs(store: &Store, blob_dir: &Path) -> Result<(BlobList, u64, u64), BackupError> {
    let mut out = Vec::new();
    let (mut linked, mut copied) = (0, 0);
    for (sha, src, size) in store.attachment_files()? {
        let dst = blob_dir.join(hex::encode(&sha));
        match std::fs::metadata(&dst) {
            Ok(m) if m.len() == size => {
                out.push((sha, size));
                continue;
            }
            // A copy cut short by a crash: replace it.
            Ok(_) => {
                std::fs::remove_file(&dst).map_err(io_err(&dst, "replacing a partial copy"))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&dst, "checking an attachment file")(e)),
        }
        match std::fs::hard_link(&src, &dst) {
            Ok(()) => linked += 1,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            // Discarded from the store while the backup ran: not needed.
            Err(_) if !src.exists() => continue,
            // Another filesystem (EXDEV) or no hard links there: copy.
            Err(_) => match copy_checked(&src, &dst, &sha, size) {
                Ok(()) => copied += 1,
                Err(_) if !src.exists() => continue,
                Err(e) => return Err(e),
            },
        }
        out.push((sha, size));
    }
    sync_dir(blob_dir)?;
    Ok((out, linked, copied))
}

/// Copies an attachment file to `dst` through a temporary name, checking its SHA-256 and size
/// on the way and syncing it before the rename.
fn copy_checked(src: &Path, dst: &Path, sha: &[u8], size: u64) -> Result<(), BackupError> {
    let tmp = dst.with_file_name(format!(
        "{}.tmp-{}",
        hex::encode(sha),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut input =
            File::open(src).map_err(io_err(src, "opening an attachment file to copy"))?;
        let mut out = File::create(&tmp).map_err(io_err(&tmp, "creating an attachment copy"))?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = input
                .read(&mut buf)
                .map_err(io_err(src, "reading an attachment file"))?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(io_err(&tmp, "writing an attachment copy"))?;
            total += n as u64;
        }
        if total != size || ctx.finish().as_ref() != sha {
            return Err(BackupError::Blob {
                path: src.to_owned(),
                sha256: hex::encode(sha),
                size,
                problem: format!("does not match its SHA-256 and size ({total} bytes read)"),
            });
        }
        out.sync_all()
            .map_err(io_err(&tmp, "syncing an attachment copy"))?;
        std::fs::rename(&tmp, dst).map_err(io_err(dst, "renaming an attachment copy"))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A reader that hashes and counts what passes through it.
struct HashReader<R: Read> {
    inner: R,
    ctx: ring::digest::Context,
    offset: u64,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.ctx.update(&buf[..n]);
        self.offset += n as u64;
        Ok(n)
    }
}

/// Why parsing stopped.
enum Stop {
    /// The bytes are not what the format says (or end early): the checksum decides whether
    /// the file is damaged or invalid.
    Format(String),
    /// The caller refused (or failed on) what it was given, or the version is unknown.
    Caller(BackupError),
}

fn take<const N: usize>(r: &mut impl Read, what: &str) -> Result<[u8; N], Stop> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)
        .map_err(|e| Stop::Format(format!("{what}: {e}")))?;
    Ok(b)
}

fn take_vec(
    r: &mut HashReader<impl Read>,
    len: u32,
    limit: u32,
    body_len: u64,
    what: &str,
) -> Result<Vec<u8>, Stop> {
    if len > limit || r.offset + u64::from(len) > body_len {
        return Err(Stop::Format(format!(
            "{what} of {len} bytes at offset {} is beyond the limit or the end",
            r.offset
        )));
    }
    let mut v = vec![0u8; len as usize];
    r.read_exact(&mut v)
        .map_err(|e| Stop::Format(format!("{what}: {e}")))?;
    Ok(v)
}

/// Reads and checks a backup file in one streaming pass: structure, limits and the SHA-256
/// trailer. `on_header` sees the header before any entry; `each` gets every key/value as it is
/// read, before the checksum is known: a caller that keeps them must drop them when this
/// returns an error. Memory use is one value and the blob list.
pub fn read(
    path: &Path,
    on_header: impl FnOnce(&Header) -> Result<(), BackupError>,
    each: impl FnMut(Vec<u8>, Vec<u8>) -> Result<(), BackupError>,
) -> Result<Contents, BackupError> {
    let mut f = File::open(path).map_err(io_err(path, "opening the backup"))?;
    let len = f
        .metadata()
        .map_err(io_err(path, "reading the backup"))?
        .len();
    let n = usize::try_from(len.min(8)).unwrap_or(8);
    let mut magic = [0u8; 8];
    f.read_exact(&mut magic[..n])
        .map_err(io_err(path, "reading the backup"))?;
    if !MAGIC.starts_with(&magic[..n]) {
        return Err(BackupError::Invalid {
            path: path.to_owned(),
            reason: "it does not start with \"LTBACKUP\": not an lt-relay backup file".into(),
        });
    }
    if len < MIN_FILE_BYTES {
        return Err(BackupError::Damaged {
            path: path.to_owned(),
            detail: format!("{len} bytes, shorter than any backup"),
        });
    }
    let body_len = len - TRAILER_BYTES;
    f.seek(SeekFrom::Start(body_len))
        .map_err(io_err(path, "reading the backup"))?;
    let mut trailer = [0u8; TRAILER_BYTES as usize];
    f.read_exact(&mut trailer)
        .map_err(io_err(path, "reading the backup"))?;
    f.seek(SeekFrom::Start(0))
        .map_err(io_err(path, "reading the backup"))?;
    let mut r = HashReader {
        inner: BufReader::with_capacity(1 << 20, f).take(body_len),
        ctx: ring::digest::Context::new(&ring::digest::SHA256),
        offset: 0,
    };
    let parsed = parse(&mut r, path, body_len, on_header, each);
    // Hash whatever the parse did not read, so the checksum covers every byte: a damaged file
    // is reported as damaged, whatever its damaged bytes made the parse or the caller say.
    std::io::copy(&mut r, &mut std::io::sink()).map_err(io_err(path, "reading the backup"))?;
    if r.ctx.finish().as_ref() != trailer {
        return Err(BackupError::Damaged {
            path: path.to_owned(),
            detail: "its SHA-256 does not match the checksum at its end".into(),
        });
    }
    match parsed {
        Ok(c) => Ok(c),
        Err(Stop::Format(reason)) => Err(BackupError::Invalid {
            path: path.to_owned(),
            reason,
        }),
        Err(Stop::Caller(e)) => Err(e),
    }
}

fn parse(
    r: &mut HashReader<impl Read>,
    path: &Path,
    body_len: u64,
    on_header: impl FnOnce(&Header) -> Result<(), BackupError>,
    mut each: impl FnMut(Vec<u8>, Vec<u8>) -> Result<(), BackupError>,
) -> Result<Contents, Stop> {
    take::<8>(r, "magic")?;
    let version = u32::from_be_bytes(take(r, "version")?);
    if version != FORMAT_VERSION {
        return Err(Stop::Caller(BackupError::Version {
            path: path.to_owned(),
            found: version,
        }));
    }
    let hlen = u32::from_be_bytes(take(r, "header length")?);
    let hbytes = take_vec(r, hlen, MAX_HEADER_BYTES, body_len, "header")?;
    let header: Header =
        serde_json::from_slice(&hbytes).map_err(|e| Stop::Format(format!("header: {e}")))?;
    if header.format != FORMAT_VERSION {
        return Err(Stop::Format(format!(
            "header names format {} but the file is format {FORMAT_VERSION}",
            header.format
        )));
    }
    on_header(&header).map_err(Stop::Caller)?;
    let mut entries = 0u64;
    loop {
        match take::<1>(r, "entry tag")?[0] {
            0 => break,
            1 => {}
            t => {
                return Err(Stop::Format(format!(
                    "unknown entry tag {t} at offset {}",
                    r.offset - 1
                )))
            }
        }
        let klen = u32::from_be_bytes(take(r, "key length")?);
        let k = take_vec(r, klen, MAX_KEY_BYTES, body_len, "key")?;
        let vlen = u32::from_be_bytes(take(r, "value length")?);
        let v = take_vec(r, vlen, MAX_VALUE_BYTES, body_len, "value")?;
        each(k, v).map_err(Stop::Caller)?;
        entries += 1;
    }
    let blobs_offset = r.offset;
    let count = u64::from_be_bytes(take(r, "blob count")?);
    let room = body_len.saturating_sub(r.offset + FOOTER_BYTES);
    if count.checked_mul(BLOB_ENTRY_BYTES) != Some(room) {
        return Err(Stop::Format(format!(
            "{count} attachment entries do not fill the {room} bytes before the footer"
        )));
    }
    let mut blobs = Vec::new();
    for _ in 0..count {
        let sha = take::<32>(r, "attachment SHA-256")?;
        let size = u64::from_be_bytes(take(r, "attachment size")?);
        blobs.push((sha.to_vec(), size));
    }
    let footer_entries = u64::from_be_bytes(take(r, "entry count")?);
    let footer_offset = u64::from_be_bytes(take(r, "blob offset")?);
    let next_seq = u64::from_be_bytes(take(r, "next sequence number")?);
    if footer_entries != entries || footer_offset != blobs_offset {
        return Err(Stop::Format(format!(
            "the footer says {footer_entries} entries and attachments at {footer_offset}, the file holds {entries} and {blobs_offset}"
        )));
    }
    Ok(Contents {
        header,
        entries,
        blobs,
        next_seq,
    })
}

/// Checks a backup file without restoring it: [`read`] with no entry kept.
pub fn check(path: &Path) -> Result<Contents, BackupError> {
    read(path, |_| Ok(()), |_, _| Ok(()))
}

/// The attachment files a backup lists, read from its end without reading its entries or
/// checking its checksum (for collecting unused attachment files; [`read`] checks).
pub fn blob_list(path: &Path) -> Result<Vec<Vec<u8>>, BackupError> {
    let invalid = |reason: String| BackupError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let mut f = File::open(path).map_err(io_err(path, "opening the backup"))?;
    let len = f
        .metadata()
        .map_err(io_err(path, "reading the backup"))?
        .len();
    if len < MIN_FILE_BYTES {
        return Err(invalid(format!("{len} bytes, shorter than any backup")));
    }
    let footer_at = len - TRAILER_BYTES - FOOTER_BYTES;
    f.seek(SeekFrom::Start(footer_at))
        .map_err(io_err(path, "reading the backup"))?;
    let mut footer = [0u8; FOOTER_BYTES as usize];
    f.read_exact(&mut footer)
        .map_err(io_err(path, "reading the backup"))?;
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&footer[8..16]);
    let blobs_offset = u64::from_be_bytes(offset);
    if blobs_offset.saturating_add(8) > footer_at {
        return Err(invalid(format!(
            "attachment list offset {blobs_offset} is out of the file"
        )));
    }
    f.seek(SeekFrom::Start(blobs_offset))
        .map_err(io_err(path, "reading the backup"))?;
    let mut r = BufReader::new(f);
    let mut count = [0u8; 8];
    r.read_exact(&mut count)
        .map_err(io_err(path, "reading the backup"))?;
    let count = u64::from_be_bytes(count);
    if count.checked_mul(BLOB_ENTRY_BYTES) != Some(footer_at - blobs_offset - 8) {
        return Err(invalid(format!(
            "{count} attachment entries do not fit the file"
        )));
    }
    let mut out = Vec::new();
    for _ in 0..count {
        let mut entry = [0u8; BLOB_ENTRY_BYTES as usize];
        r.read_exact(&mut entry)
            .map_err(io_err(path, "reading the backup"))?;
        out.push(entry[..32].to_vec());
    }
    Ok(out)
}

/// Keeps the newest `keep` backups of `agency` in `dir` (at least one), deletes the older ones,
/// then deletes the attachment files that no backup in `dir` (of any agency) lists any more and
/// that have been unchanged for [`BLOB_GRACE`]. If any backup's list cannot be read, no
/// attachment file is deleted.
pub fn remove_old(dir: &Path, agency: &AgencyCode, keep: u32) -> Result<Removed, BackupError> {
    let mut removed = Removed::default();
    let all = list(dir, agency)?;
    let excess = all.len().saturating_sub(keep.max(1) as usize);
    for (_, path) in all.into_iter().take(excess) {
        std::fs::remove_file(&path).map_err(io_err(&path, "removing an old backup"))?;
        removed.files.push(path);
    }
    match collect_blobs(dir, BLOB_GRACE) {
        Ok(n) => removed.blobs = n,
        Err(e) => removed.blobs_kept_because = Some(e.to_string()),
    }
    Ok(removed)
}

fn collect_blobs(dir: &Path, grace: Duration) -> Result<u64, BackupError> {
    let mut listed = HashSet::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir, "listing backups"))? {
        let entry = entry.map_err(io_err(dir, "listing backups"))?;
        let path = entry.path();
        if path.extension().is_some_and(|x| x == EXTENSION) && path.is_file() {
            listed.extend(blob_list(&path)?.into_iter().map(hex::encode));
        }
    }
    let blob_dir = dir.join(BLOBS_DIR);
    let entries = match std::fs::read_dir(&blob_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err(&blob_dir, "listing attachment files")(e)),
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let grace = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
    let mut n = 0;
    for entry in entries {
        let entry = entry.map_err(io_err(&blob_dir, "listing attachment files"))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|s| listed.contains(s))
        {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        // ctime moves when a file is written or gets another hard link.
        let changed = std::os::unix::fs::MetadataExt::ctime(&meta);
        if meta.is_file() && now.saturating_sub(changed) >= grace {
            std::fs::remove_file(&path)
                .map_err(io_err(&path, "removing an unused attachment file"))?;
            n += 1;
        }
    }
    Ok(n)
}

/// True when the store folder holds any record or attachment.
fn holds_data(store_dir: &Path) -> Result<bool, BackupError> {
    if !store_dir.exists() {
        return Ok(false);
    }
    let store = Store::open(store_dir)?;
    let has_records = store.iter_raw().next().is_some();
    Ok(has_records || !store.attachment_files()?.is_empty())
}

/// Restores the backup `file` of `agency` into the store folder `store_dir` (the node must be
/// stopped). The backup is read and checked into a new folder beside it (`<store>.restoring`),
/// its attachment files copied from the `blobs/` folder beside `file` and checked against their
/// SHA-256; only when everything checked out does the new folder become `store_dir`. A store
/// that holds data is refused unless `force`, and then kept as `<store>.replaced-<time>`.
pub fn restore(
    file: &Path,
    agency: &AgencyCode,
    store_dir: &Path,
    force: bool,
) -> Result<Restored, BackupError> {
    let existing = holds_data(store_dir)?;
    if existing && !force {
        return Err(BackupError::NotEmpty {
            path: store_dir.to_owned(),
        });
    }
    let parent = store_dir
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = store_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store".into());
    std::fs::create_dir_all(&parent).map_err(io_err(&parent, "creating the data folder"))?;
    let staging = parent.join(format!("{name}.restoring"));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .map_err(io_err(&staging, "removing an interrupted restore"))?;
    }
    let contents = match restore_into(file, agency, &staging) {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let mut replaced = None;
    if store_dir.exists() {
        if existing {
            let stamp = OffsetDateTime::now_utc()
                .format(TIME_FORMAT)
                .unwrap_or_default();
            let aside = parent.join(format!("{name}.replaced-{stamp}"));
            std::fs::rename(store_dir, &aside)
                .map_err(io_err(store_dir, "moving the current store aside"))?;
            replaced = Some(aside);
        } else {
            std::fs::remove_dir_all(store_dir)
                .map_err(io_err(store_dir, "removing the empty store"))?;
        }
    }
    std::fs::rename(&staging, store_dir)
        .map_err(io_err(store_dir, "putting the restored store in place"))?;
    sync_dir(&parent)?;
    Ok(Restored { contents, replaced })
}

fn restore_into(file: &Path, agency: &AgencyCode, staging: &Path) -> Result<Contents, BackupError> {
    let store = Store::open(staging)?;
    let mut batch: Vec<KeyValue> = Vec::new();
    let mut batch_bytes = 0usize;
    let contents = read(
        file,
        |h| {
            if h.agency == agency.as_str() {
                Ok(())
            } else {
                Err(BackupError::AgencyMismatch {
                    path: file.to_owned(),
                    backup: h.agency.clone(),
                    node: agency.to_string(),
                })
            }
        },
        |k, v| {
            batch_bytes += k.len() + v.len();
            batch.push((k, v));
            if batch.len() >= RESTORE_BATCH || batch_bytes >= RESTORE_BATCH_BYTES {
                store.apply_raw(&batch, &[])?;
                batch.clear();
                batch_bytes = 0;
            }
            Ok(())
        },
    )?;
    store.apply_raw(&batch, &[])?;
    let source = file
        .parent()
        .map(|p| p.join(BLOBS_DIR))
        .unwrap_or_else(|| PathBuf::from(BLOBS_DIR));
    // Every attachment present before any is copied: a missing one fails fast.
    for (sha, size) in &contents.blobs {
        let path = source.join(hex::encode(sha));
        match std::fs::metadata(&path) {
            Ok(m) if m.len() == *size => {}
            Ok(m) => {
                return Err(BackupError::Blob {
                    path,
                    sha256: hex::encode(sha),
                    size: *size,
                    problem: format!("has {} bytes", m.len()),
                })
            }
            Err(e) => {
                return Err(BackupError::Blob {
                    path,
                    sha256: hex::encode(sha),
                    size: *size,
                    problem: format!("cannot be read ({e})"),
                })
            }
        }
    }
    let blob_tmp = staging.join(BLOBS_DIR);
    for (sha, size) in &contents.blobs {
        let tmp = blob_tmp.join(format!("{}.restoring", hex::encode(sha)));
        copy_checked(&source.join(hex::encode(sha)), &tmp, sha, *size)?;
        store.adopt_file(&tmp, sha)?;
    }
    store.advance_seq_to(contents.next_seq)?;
    let _ = store.commit_blocking()?;
    Ok(contents)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn agency() -> AgencyCode {
        AgencyCode::parse("000.00.00.G22").unwrap()
    }

    /// Opens a store, retrying while the handle of a restore in this process closes.
    fn open(dir: &Path) -> Store {
        for _ in 0..100 {
            if let Ok(s) = Store::open(dir) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Store::open(dir).unwrap()
    }

    /// A store with some records, an audit chain and an attachment; and one backup of it.
    fn backed_up() -> (tempfile::TempDir, PathBuf, Written) {
        let root = tempfile::tempdir().unwrap();
        let store_dir = root.path().join("data/store");
        let s = Store::open(&store_dir).unwrap();
        for i in 0..50u32 {
            s.put_raw(format!("e/{i}").as_bytes(), &i.to_be_bytes())
                .unwrap();
        }
        assert!(s.add_to_inbox("000.00.00.G22", "e1", None, "").unwrap());
        crate::audit::append(
            &s,
            crate::now_unix_ms(),
            "register",
            "incoming",
            "",
            "000.00.00.G22",
            "no. 1",
        )
        .unwrap();
        s.put_attachment(b"attachment bytes").unwrap();
        let w = write(&s, &agency(), &root.path().join("backups")).unwrap();
        drop(s);
        // The store's committer thread lets go of the database a moment after the last handle.
        std::thread::sleep(Duration::from_millis(200));
        (root, store_dir, w)
    }

    #[test]
    fn names_are_agency_and_utc_time() {
        let at = time::macros::datetime!(2026-11-27 05:04:03 +7);
        let name = file_name(&agency(), at);
        assert_eq!(name, "000.00.00.G22-20261126T220403Z.ltbak");
        assert_eq!(
            time_of(&agency(), &name),
            Some(time::macros::datetime!(2026-11-26 22:04:03 UTC))
        );
        assert_eq!(time_of(&agency(), "000.00.00.G22-2026.ltbak"), None);
        assert_eq!(time_of(&agency(), &format!("{name}.tmp")), None);
    }

    #[test]
    fn a_backup_restores_records_audit_attachments_and_sequence() {
        let (root, store_dir, w) = backed_up();
        assert_eq!(w.entries, 50 + 2 + 2); // records, inbox entry and index, audit record and head
        assert_eq!(w.blobs, 1);
        let c = check(&w.file).unwrap();
        assert_eq!(c.header.agency, "000.00.00.G22");
        assert_eq!(c.entries, w.entries);
        std::fs::remove_dir_all(root.path().join("data")).unwrap();
        let r = restore(&w.file, &agency(), &store_dir, false).unwrap();
        assert!(r.replaced.is_none());
        let s = open(&store_dir);
        assert_eq!(s.get_raw(b"e/7").unwrap().unwrap(), 7u32.to_be_bytes());
        assert_eq!(crate::audit::verify(&s).unwrap(), Ok(1));
        let sha = ring::digest::digest(&ring::digest::SHA256, b"attachment bytes");
        assert!(s.has_attachment(sha.as_ref(), 16));
        // New numbers do not reuse restored ones: a new inbox entry comes after the old.
        assert!(s.add_to_inbox("000.00.00.G22", "e2", None, "").unwrap());
        let inbox = s.inbox("000.00.00.G22").unwrap();
        assert_eq!(
            inbox
                .iter()
                .map(|e| e.envelope_id.as_str())
                .collect::<Vec<_>>(),
            ["e1", "e2"]
        );
    }

    #[test]
    fn a_store_with_data_is_replaced_only_with_force() {
        let (_root, store_dir, w) = backed_up();
        let e = restore(&w.file, &agency(), &store_dir, false).unwrap_err();
        assert!(matches!(e, BackupError::NotEmpty { .. }), "{e}");
        assert!(e.to_string().contains("already holds data"), "{e}");
        std::thread::sleep(Duration::from_millis(200));
        let r = restore(&w.file, &agency(), &store_dir, true).unwrap();
        let aside = r.replaced.unwrap();
        assert!(aside.to_string_lossy().contains("store.replaced-"));
        assert!(aside.exists() && store_dir.exists());
    }

    #[test]
    fn a_backup_of_another_agency_is_refused() {
        let (root, _store_dir, w) = backed_up();
        let other = AgencyCode::parse("000.00.00.H53").unwrap();
        let target = root.path().join("other/store");
        let e = restore(&w.file, &other, &target, false).unwrap_err();
        assert!(matches!(e, BackupError::AgencyMismatch { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("is a backup of 000.00.00.G22, but this node is 000.00.00.H53"),
            "{e}"
        );
        assert!(!target.exists());
        assert!(!root.path().join("other/store.restoring").exists());
    }

    #[test]
    fn a_truncated_backup_is_refused() {
        let (root, store_dir, w) = backed_up();
        std::fs::remove_dir_all(root.path().join("data")).unwrap();
        let bytes = std::fs::read(&w.file).unwrap();
        for cut in [bytes.len() - 1, bytes.len() - 40, bytes.len() / 2, 100, 20] {
            std::fs::write(&w.file, &bytes[..cut]).unwrap();
            let e = restore(&w.file, &agency(), &store_dir, false).unwrap_err();
            assert!(
                matches!(e, BackupError::Damaged { .. }),
                "cut at {cut}: {e}"
            );
            let msg = e.to_string();
            assert!(msg.contains(&w.file.display().to_string()), "{msg}");
            assert!(msg.contains("truncated or corrupted"), "{msg}");
            assert!(!store_dir.exists(), "nothing restored from a cut at {cut}");
        }
    }

    #[test]
    fn a_corrupted_backup_is_refused() {
        let (root, store_dir, w) = backed_up();
        std::fs::remove_dir_all(root.path().join("data")).unwrap();
        let bytes = std::fs::read(&w.file).unwrap();
        // A flipped bit in a value, in a length, in the blob list and in the trailer.
        for at in [200, 60, bytes.len() - 70, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            std::fs::write(&w.file, &bad).unwrap();
            let e = check(&w.file).unwrap_err();
            assert!(
                matches!(e, BackupError::Damaged { .. }),
                "flip at {at}: {e}"
            );
            let e = restore(&w.file, &agency(), &store_dir, false).unwrap_err();
            assert!(e.to_string().contains("SHA-256 does not match"), "{e}");
            assert!(!store_dir.exists());
        }
        std::fs::write(
            &w.file,
            b"PK\x03\x04 a zip file, not a backup at all ........",
        )
        .unwrap();
        let e = check(&w.file).unwrap_err();
        assert!(e.to_string().contains("not an lt-relay backup file"), "{e}");
    }

    #[test]
    fn a_missing_attachment_file_is_refused() {
        let (root, store_dir, w) = backed_up();
        std::fs::remove_dir_all(root.path().join("data")).unwrap();
        let blobs = root.path().join("backups").join(BLOBS_DIR);
        for entry in std::fs::read_dir(&blobs).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        let e = restore(&w.file, &agency(), &store_dir, false).unwrap_err();
        assert!(matches!(e, BackupError::Blob { .. }), "{e}");
        assert!(!store_dir.exists());
    }

    #[test]
    fn old_backups_and_unlisted_attachments_go() {
        let (root, _store_dir, first) = backed_up();
        let dir = root.path().join("backups");
        let s = open(&root.path().join("data/store"));
        let second = write(&s, &agency(), &dir).unwrap();
        let third = write(&s, &agency(), &dir).unwrap();
        assert!(first.file < second.file && second.file < third.file);
        // Another node's backup in the same folder is not counted.
        std::fs::write(dir.join("000.00.00.H53-20200101T000000Z.ltbak"), b"x").unwrap();
        let stray = dir.join(BLOBS_DIR).join(hex::encode([7u8; 32]));
        std::fs::write(&stray, b"old").unwrap();
        let removed = remove_old(&dir, &agency(), 2).unwrap();
        assert_eq!(removed.files, vec![first.file.clone()]);
        // The other node's unreadable file keeps every attachment file.
        assert_eq!(removed.blobs, 0);
        assert!(removed.blobs_kept_because.is_some());
        assert_eq!(
            list(&dir, &agency())
                .unwrap()
                .into_iter()
                .map(|(_, p)| p)
                .collect::<Vec<_>>(),
            vec![second.file, third.file.clone()]
        );
        assert_eq!(blob_list(&first.file).ok(), None);
        assert!(stray.exists());
        // Without it, what no backup lists goes (here without waiting for the grace period);
        // what they list stays.
        std::fs::remove_file(dir.join("000.00.00.H53-20200101T000000Z.ltbak")).unwrap();
        assert_eq!(collect_blobs(&dir, Duration::ZERO).unwrap(), 1);
        assert!(!stray.exists());
        let listed = blob_list(&third.file).unwrap();
        assert_eq!(listed.len(), 1);
        assert!(dir.join(BLOBS_DIR).join(hex::encode(&listed[0])).exists());
    }
}
