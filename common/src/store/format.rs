//! The store's format version: a decimal number under the key `version` of sled's tree `format`,
//! beside the default tree that holds the records (so record scans, raw views and backups never
//! see it).
//!
//! - A new, empty store is stamped with [`CURRENT`].
//! - A store without the key was written by release 0.1.0 or earlier (format 0). Its keys and
//!   values already read as format 1 does, so migrating it only records the version; the
//!   stamp is made durable before the node takes any traffic.
//! - A store of a higher format was written by a newer release: it is refused, untouched, with
//!   the way forward (run the newer binary, or restore a backup made before the upgrade).
//!
//! A later format that changes keys or values adds its step to [`migrate`], applied in order,
//! each in one sled batch with the new version number, so a crash leaves the store at one
//! version or the next, never between.

use std::path::Path;

use super::StoreError;

/// The format this build writes and reads.
pub const CURRENT: u32 = 1;

const TREE: &str = "format";
const KEY: &[u8] = b"version";
const KEY_NAME: &str = "format/version";

/// What opening did to the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// A new store, stamped with [`CURRENT`].
    Created,
    /// Already at [`CURRENT`].
    Current,
    /// Migrated from the given older format to [`CURRENT`].
    Migrated {
        /// The format found.
        from: u32,
    },
}

/// Reads the format of `db` (0 when the key is absent).
pub(super) fn read(db: &sled::Db, dir: &Path) -> Result<Option<u32>, StoreError> {
    let tree = db.open_tree(TREE).map_err(|e| sled_err(dir, e))?;
    let value = tree.get(KEY).map_err(|e| sled_err(dir, e))?;
    match value {
        None => Ok(None),
        Some(v) => std::str::from_utf8(&v)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt {
                key: KEY_NAME.into(),
                reason: format!("not a format number: {:?}", String::from_utf8_lossy(&v)),
            }),
    }
}

/// Checks the format of a freshly opened `db` and brings it to [`CURRENT`].
pub(super) fn check_and_migrate(db: &sled::Db, dir: &Path) -> Result<Opened, StoreError> {
    let found = match read(db, dir)? {
        Some(v) => v,
        // No format key: a new store, or one written before formats were recorded.
        None if db.is_empty() => {
            stamp(db, dir, CURRENT)?;
            return Ok(Opened::Created);
        }
        None => 0,
    };
    if found > CURRENT {
        return Err(StoreError::TooNew {
            path: dir.to_owned(),
            found,
            supported: CURRENT,
        });
    }
    if found == CURRENT {
        return Ok(Opened::Current);
    }
    migrate(db, dir, found)?;
    Ok(Opened::Migrated { from: found })
}

/// Applies every step from `from` up to [`CURRENT`].
fn migrate(db: &sled::Db, dir: &Path, from: u32) -> Result<(), StoreError> {
    let mut version = from;
    while version < CURRENT {
        match version {
            // 0 → 1: release 0.1.0's keys and values are format 1's; only the stamp is new.
            0 => stamp(db, dir, 1)?,
            other => {
                return Err(StoreError::Corrupt {
                    key: KEY_NAME.into(),
                    reason: format!("no migration from format {other}"),
                })
            }
        }
        version += 1;
    }
    Ok(())
}

fn stamp(db: &sled::Db, dir: &Path, version: u32) -> Result<(), StoreError> {
    db.open_tree(TREE)
        .and_then(|t| t.insert(KEY, version.to_string().as_bytes()))
        .map_err(|e| sled_err(dir, e))?;
    db.flush().map_err(|e| sled_err(dir, e))?;
    Ok(())
}

fn sled_err(dir: &Path, e: sled::Error) -> StoreError {
    StoreError::Sled {
        path: dir.to_owned(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn format_of(dir: &Path) -> Option<u32> {
        let db = sled::open(dir).unwrap();
        read(&db, dir).unwrap()
    }

    fn write_format(db: &sled::Db, value: &[u8]) {
        db.open_tree(TREE).unwrap().insert(KEY, value).unwrap();
    }

    #[test]
    fn a_new_store_is_stamped_with_the_current_format() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(read(store.tree(), dir.path()).unwrap(), Some(CURRENT));
        assert_eq!(
            store.tree().len(),
            0,
            "records are not touched by the stamp"
        );
    }

    #[test]
    fn a_store_without_a_format_is_migrated_and_keeps_its_records() {
        let dir = tempfile::tempdir().unwrap();
        {
            // What release 0.1.0 leaves: records, no format key.
            let db = sled::open(dir.path()).unwrap();
            db.insert(b"m/audit/last", &b"abc"[..]).unwrap();
            db.insert(b"N/outgoing", &b"7"[..]).unwrap();
            db.flush().unwrap();
        }
        let db = sled::open(dir.path()).unwrap();
        assert_eq!(
            check_and_migrate(&db, dir.path()).unwrap(),
            Opened::Migrated { from: 0 }
        );
        assert_eq!(read(&db, dir.path()).unwrap(), Some(CURRENT));
        assert_eq!(db.get(b"N/outgoing").unwrap().unwrap().as_ref(), b"7");
        assert_eq!(check_and_migrate(&db, dir.path()).unwrap(), Opened::Current);
    }

    #[test]
    fn a_store_of_a_newer_format_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            write_format(&db, (CURRENT + 1).to_string().as_bytes());
            db.insert(b"N/outgoing", &b"7"[..]).unwrap();
            db.flush().unwrap();
        }
        let err = Store::open(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, StoreError::TooNew { found, .. } if found == CURRENT + 1),
            "{text}"
        );
        assert!(text.contains("newer lienthong release"), "{text}");
        assert_eq!(format_of(dir.path()), Some(CURRENT + 1));
    }

    #[test]
    fn a_format_that_is_not_a_number_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            write_format(&db, b"one");
            db.insert(b"N/outgoing", &b"7"[..]).unwrap();
            db.flush().unwrap();
        }
        let err = Store::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains(KEY_NAME), "{err}");
    }
}
