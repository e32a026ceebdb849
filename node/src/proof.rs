//! Proof bundles: everything a node holds about one document, in one ZIP file that anyone can
//! check offline with the interchange's root CA (and the TSA's, when the document is stamped).
//!
//! # What a bundle holds
//! | file | what |
//! |---|---|
//! | `manifest.json` | the bundle's format, the document, and every other file with its size and SHA-256 |
//! | `summary.txt` | what the node holds, in Vietnamese and English: who sent what, when, who received it, what each recipient said |
//! | `envelope/envelope.pb` | the envelope as held (protobuf), trace and time-stamp included |
//! | `envelope/envelope.json` | the same for people to read |
//! | `envelope/signed-content.pb` | `H`: the envelope with `signature`, `trace` and `time_stamp` cleared |
//! | `envelope/signed-message.bin` | `M`: the exact bytes the sender's signature covers (docs/protocol.md §4) |
//! | `envelope/signature.bin`, `envelope/chain.pem` | the signature value; the sender's certificates, signer first |
//! | `envelope/signer.pem` | the signer's certificate alone |
//! | `envelope/SIGNING.txt` | how the signed bytes are made |
//! | `timestamp/token.der`, `path.txt`, `signature.bin` | when stamped: the RFC 3161 token, the path from the leaf to the stamped root, the bytes whose SHA-256 is the leaf |
//! | `receipts/NN-SS-AGENCY/…` | each status receipt held (arrival order `NN`, status `SS`, reporter): `receipt.pb`, `receipt.json`, `signed-message.bin`, `signature.bin`, `chain.pem`, `signer.pem` |
//! | `trace.json` | the hop trace and the transport events (not signed: the node's record) |
//! | `registers.json` | the document's entries in this node's incoming and outgoing books (not signed) |
//! | `pdf-signatures.json` | when this node checked the PDF attachments on delivery: the report per attachment and signature (not signed: the node's record) |
//!
//! Every file but `envelope.pb` and `receipt.pb` is derived from them or is the node's own
//! record: [`check`] recomputes the derived ones and refuses a bundle where one differs, so the
//! openssl checks a third party runs on the derived files check the signed messages themselves.
//! The manifest is not signed: its hashes catch damaged files, the signatures catch changed ones.
//!
//! # Layout
//! - this file: the bundle (files, manifest, ZIP form, limits) and its errors;
//! - `build`: a bundle from a node's store ([`export`]);
//! - `check`: the offline verification ([`verify`]);
//! - `revocation`: the CRLs a check is given, and what they say of each signer;
//! - `text`: the bilingual account of what a bundle says or proves.

mod build;
mod check;
mod revocation;
mod text;

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

pub use build::{assemble, export, Held};
pub use check::{verify, Finding, Outcome, TrustAnchors, Verdict};
pub use revocation::{RevocationError, Revocations};
pub use text::{render, Facts, ReceiptFact, StampFact};

/// The format named in every manifest.
pub const FORMAT: &str = "lienthong-proof/1";
/// The manifest's name in the ZIP.
pub const MANIFEST: &str = "manifest.json";
/// The largest bundle read.
pub const MAX_BUNDLE_BYTES: u64 = 256 << 20;
/// The most files a bundle may hold (a document to 5,000 recipients, a few receipts each, needs
/// far more: their bundles are refused at export rather than cut).
pub const MAX_FILES: usize = 20_000;
/// The largest file inside a bundle (an envelope header is at most 1 MiB).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Why a bundle could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] lienthong_common::store::StoreError),
    /// No envelope with this id, and no register entry with this document id.
    #[error("no document with envelope id or document id {0:?} on this node")]
    NotFound(String),
    /// A held item does not decode (a damaged store).
    #[error("{what}: {reason}")]
    Corrupt {
        /// The item.
        what: String,
        /// Why.
        reason: String,
    },
    /// The ZIP could not be written.
    #[error("writing the bundle: {0}")]
    Write(String),
    /// The bytes are not a bundle this version reads.
    #[error("not a proof bundle: {0}")]
    Archive(String),
    /// A limit was passed.
    #[error("{what} exceeds the limit of {limit}")]
    TooLarge {
        /// What.
        what: String,
        /// The limit.
        limit: u64,
    },
}

/// One file of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Its path in the ZIP.
    pub name: String,
    /// Its length in bytes.
    pub size: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The envelope.
    pub envelope_id: String,
    /// The document.
    pub document_id: String,
    /// The node that exported it.
    pub exported_by: String,
    /// When, unix ms (the node's clock).
    pub exported_unix_ms: i64,
    /// Every other file.
    pub files: Vec<ManifestFile>,
}

/// The files of a bundle, in order; `manifest.json` among them once sealed.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    files: Vec<(String, Vec<u8>)>,
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

/// A path inside a bundle: relative, `/`-separated, no empty, `.` or `..` part, printable
/// ASCII only (agency codes and fixed names are).
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
        && name
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..")
}

impl Bundle {
    /// Its files, in order.
    pub fn files(&self) -> &[(String, Vec<u8>)] {
        &self.files
    }

    /// A file's bytes.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.as_slice())
    }

    /// Adds a file, or replaces the one with that name.
    pub fn put(&mut self, name: &str, bytes: Vec<u8>) {
        match self.files.iter_mut().find(|(n, _)| n == name) {
            Some(f) => f.1 = bytes,
            None => self.files.push((name.to_owned(), bytes)),
        }
    }

    /// Removes a file; true if it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.files.len();
        self.files.retain(|(n, _)| n != name);
        self.files.len() != before
    }

    /// The manifest, parsed.
    pub fn manifest(&self) -> Result<Manifest, ProofError> {
        let bytes = self
            .get(MANIFEST)
            .ok_or_else(|| ProofError::Archive(format!("no {MANIFEST}")))?;
        serde_json::from_slice(bytes).map_err(|e| ProofError::Archive(format!("{MANIFEST}: {e}")))
    }

    /// Writes `manifest.json` over every other file, keeping `head`'s other fields.
    pub fn seal(&mut self, mut head: Manifest) -> Result<(), ProofError> {
        self.remove(MANIFEST);
        head.files = self
            .files
            .iter()
            .map(|(name, bytes)| ManifestFile {
                name: name.clone(),
                size: bytes.len() as u64,
                sha256: sha256_hex(bytes),
            })
            .collect();
        let json =
            serde_json::to_vec_pretty(&head).map_err(|e| ProofError::Write(e.to_string()))?;
        self.files.insert(0, (MANIFEST.to_owned(), json));
        Ok(())
    }

    /// Seals again after files were changed, keeping the manifest's document and exporter.
    pub fn reseal(&mut self) -> Result<(), ProofError> {
        let head = self.manifest()?;
        self.seal(head)
    }

    /// The ZIP form: stored (uncompressed) entries in order, fixed times, so that one bundle
    /// gives the same bytes every time.
    pub fn to_zip(&self) -> Result<Vec<u8>, ProofError> {
        if self.files.len() > MAX_FILES {
            return Err(ProofError::TooLarge {
                what: format!("a bundle of {} files", self.files.len()),
                limit: MAX_FILES as u64,
            });
        }
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .last_modified_time(zip::DateTime::default());
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let err = |e: &dyn std::fmt::Display| ProofError::Write(e.to_string());
        for (name, bytes) in &self.files {
            w.start_file(name.as_str(), options).map_err(|e| err(&e))?;
            w.write_all(bytes).map_err(|e| err(&e))?;
        }
        Ok(w.finish().map_err(|e| err(&e))?.into_inner())
    }

    /// Reads a bundle's ZIP. Entries whose bytes cannot be read (a CRC mismatch after a changed
    /// byte, a method other than stored or deflated) are returned by name with the reason,
    /// so a check can name them; what makes the whole archive unreadable is an error.
    pub fn from_zip(bytes: &[u8]) -> Result<(Bundle, Vec<(String, String)>), ProofError> {
        if bytes.len() as u64 > MAX_BUNDLE_BYTES {
            return Err(ProofError::TooLarge {
                what: format!("a bundle of {} bytes", bytes.len()),
                limit: MAX_BUNDLE_BYTES,
            });
        }
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|e| ProofError::Archive(e.to_string()))?;
        if archive.len() > MAX_FILES {
            return Err(ProofError::TooLarge {
                what: format!("a bundle of {} files", archive.len()),
                limit: MAX_FILES as u64,
            });
        }
        let mut bundle = Bundle::default();
        let mut unreadable = Vec::new();
        for i in 0..archive.len() {
            let mut f = archive
                .by_index(i)
                .map_err(|e| ProofError::Archive(format!("entry {}: {e}", i + 1)))?;
            if f.is_dir() {
                continue;
            }
            let name = f.name().to_owned();
            if !safe_name(&name) {
                return Err(ProofError::Archive(format!(
                    "entry {}: {name:?} is not a plain relative path",
                    i + 1
                )));
            }
            if bundle.get(&name).is_some() {
                return Err(ProofError::Archive(format!("{name} appears twice")));
            }
            if f.size() > MAX_FILE_BYTES {
                return Err(ProofError::TooLarge {
                    what: format!("{name} ({} bytes)", f.size()),
                    limit: MAX_FILE_BYTES,
                });
            }
            let mut content = Vec::new();
            match (&mut f).take(MAX_FILE_BYTES + 1).read_to_end(&mut content) {
                Ok(_) if content.len() as u64 > MAX_FILE_BYTES => {
                    return Err(ProofError::TooLarge {
                        what: name,
                        limit: MAX_FILE_BYTES,
                    })
                }
                Ok(_) => bundle.files.push((name, content)),
                Err(e) => unreadable.push((name, e.to_string())),
            }
        }
        Ok((bundle, unreadable))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn head() -> Manifest {
        Manifest {
            format: FORMAT.into(),
            envelope_id: "e1".into(),
            document_id: "d1".into(),
            exported_by: "000.00.00.H53".into(),
            exported_unix_ms: 1,
            files: Vec::new(),
        }
    }

    #[test]
    fn a_bundle_reads_back_as_written_and_the_same_bytes_every_time() {
        let mut b = Bundle::default();
        b.put("envelope/envelope.pb", vec![1, 2, 3]);
        b.put("summary.txt", "Tóm tắt".as_bytes().to_vec());
        b.seal(head()).unwrap();
        let zip = b.to_zip().unwrap();
        assert_eq!(zip, b.to_zip().unwrap());
        let (back, bad) = Bundle::from_zip(&zip).unwrap();
        assert!(bad.is_empty());
        assert_eq!(back.files(), b.files());
        let m = back.manifest().unwrap();
        assert_eq!(m.files.len(), 2);
        assert_eq!(m.files[0].sha256, sha256_hex(&[1, 2, 3]));
    }

    #[test]
    fn a_changed_byte_in_the_zip_names_its_entry() {
        let mut b = Bundle::default();
        b.put("envelope/envelope.pb", b"ABCDEFGHIJKLMNOP".to_vec());
        b.seal(head()).unwrap();
        let mut zip = b.to_zip().unwrap();
        let at = zip
            .windows(16)
            .position(|w| w == b"ABCDEFGHIJKLMNOP")
            .unwrap();
        zip[at + 3] ^= 1;
        let (_, bad) = Bundle::from_zip(&zip).unwrap();
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(bad[0].0, "envelope/envelope.pb");
    }

    #[test]
    fn names_that_leave_the_bundle_are_refused() {
        for bad in ["../x", "/etc/x", "a//b", "a/./b", "", "a\\b", "a b"] {
            assert!(!safe_name(bad), "{bad}");
        }
        assert!(safe_name("receipts/01-06-000.00.00.H49/receipt.pb"));
    }
}
