//! Attachment bytes beside the database, content-addressed (`blobs/<sha256>`).

use super::*;

impl Store {
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
}
