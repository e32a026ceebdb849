//! `lt-relay proof export` and `lt-relay proof verify`: a document's proof bundle written from a
//! node (through its local API while it runs, from its store when it is stopped), and checked
//! offline with nothing but the trust anchors (docs/evidence.md, "Proof bundles").

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use lienthong_common::clock::Clock;
use lienthong_common::signing::Verifier;
use lienthong_common::trust::TrustStore;
use lienthong_evidence::chain::Anchors;

use crate::node_source::{source, Source};
use crate::proof::{self, Outcome as ItemOutcome, TrustAnchors, Verdict, MAX_BUNDLE_BYTES};

/// `lt-relay proof`
#[derive(Debug, Subcommand)]
pub enum ProofCommand {
    /// Write one ZIP holding what the node has about a document: the signed envelope, the
    /// sender's chain, the time-stamp, every status receipt with its signer's chain, the hop
    /// trace, the register entries, a summary and a manifest of SHA-256 hashes.
    Export(ExportArgs),
    /// Check a proof bundle offline against the interchange's root CA (and the TSA's): exits 0
    /// when everything holds, 1 naming each item that does not, 64 when the files given cannot
    /// be used.
    Verify(VerifyArgs),
}

/// `lt-relay proof export`
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The node's configuration.
    #[arg(long, env = "LT_CONFIG")]
    pub config: PathBuf,
    /// Envelope id or document id.
    pub id: String,
    /// Where to write the ZIP.
    #[arg(long)]
    pub out: PathBuf,
}

/// `lt-relay proof verify`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The bundle (ZIP).
    pub file: PathBuf,
    /// The interchange's trust bundle (PEM: its root CA, and any intermediate CAs).
    #[arg(long)]
    pub ca: PathBuf,
    /// The TSA's trust anchors (PEM), to check the time-stamp; without it a time-stamp is
    /// reported as not checked.
    #[arg(long)]
    pub tsa_ca: Option<PathBuf>,
    /// A CRL (PEM or DER) issued by a CA of `--ca`, to check each signer's certificate: a
    /// signature made before its certificate was revoked (or before the invalidity date the
    /// CRL gives) still holds, one made after does not. Repeat for several. Without it,
    /// revocation is reported as not checked.
    #[arg(long)]
    pub crl: Vec<PathBuf>,
}

/// How `proof` ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Written, or everything holds.
    Done,
    /// Something in the bundle does not hold.
    Fails,
}

/// Why `proof` could not run: a file or anchor that cannot be used (exit 64), or a node or
/// document that cannot be read (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum ProofCmdError {
    /// Bad usage: an unreadable file, anchors that are not CA certificates.
    #[error("{0}")]
    Usage(String),
    /// Anything else.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Runs `lt-relay proof`.
pub fn run(cmd: ProofCommand) -> Result<Outcome, ProofCmdError> {
    match cmd {
        ProofCommand::Export(a) => export(&a).map(|()| Outcome::Done).map_err(Into::into),
        ProofCommand::Verify(a) => verify(&a),
    }
}

fn export(a: &ExportArgs) -> anyhow::Result<()> {
    let zip = match source(&a.config)? {
        Source::Api(c) => c.get_bytes(
            &format!(
                "/v1/documents/{}/proof",
                crate::books_cmd::percent_encode(&a.id)
            ),
            MAX_BUNDLE_BYTES,
        )?,
        Source::Store(cfg, store) => proof::export(
            &store,
            &cfg.served_agencies(),
            &cfg.agency,
            &a.id,
            Clock::from_env().now_unix_ms(),
        )
        .map_err(|e| anyhow!("{e}"))?
        .to_zip()
        .map_err(|e| anyhow!("{e}"))?,
    };
    write_atomically(&a.out, &zip)?;
    let files = proof::Bundle::from_zip(&zip)
        .ok()
        .and_then(|(b, _)| b.manifest().ok())
        .map(|m| m.files.len() + 1)
        .unwrap_or(0);
    println!("{}: {files} files, {} bytes", a.out.display(), zip.len());
    Ok(())
}

fn write_atomically(out: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".part");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("renaming to {}", out.display()))
}

fn anchors(a: &VerifyArgs) -> Result<TrustAnchors, ProofCmdError> {
    let trust =
        TrustStore::load(&a.ca, None).map_err(|e| ProofCmdError::Usage(format!("--ca: {e}")))?;
    let tsa = a
        .tsa_ca
        .as_ref()
        .map(|p| Anchors::from_pem_files(std::slice::from_ref(p)))
        .transpose()
        .map_err(|e| ProofCmdError::Usage(format!("--tsa-ca: {e}")))?;
    let revocations = if a.crl.is_empty() {
        None
    } else {
        let cas = lienthong_common::trust::load_certs(&a.ca)
            .map_err(|e| ProofCmdError::Usage(format!("--ca: {e}")))?;
        Some(
            proof::Revocations::from_files(&a.crl, &cas)
                .map_err(|e| ProofCmdError::Usage(format!("--crl: {e}")))?,
        )
    };
    Ok(TrustAnchors {
        interchange: Verifier::new(Arc::new(trust)),
        tsa,
        revocations,
    })
}

fn verify(a: &VerifyArgs) -> Result<Outcome, ProofCmdError> {
    let anchors = anchors(a)?;
    let len = std::fs::metadata(&a.file)
        .map_err(|e| ProofCmdError::Usage(format!("{}: {e}", a.file.display())))?
        .len();
    if len > MAX_BUNDLE_BYTES {
        return Err(ProofCmdError::Usage(format!(
            "{}: {len} bytes, more than the {MAX_BUNDLE_BYTES} a bundle may have",
            a.file.display()
        )));
    }
    let zip = std::fs::read(&a.file)
        .map_err(|e| ProofCmdError::Usage(format!("{}: {e}", a.file.display())))?;
    let verdict = proof::verify(&zip, &anchors);
    print!("{}", render(&a.file, &verdict));
    Ok(if verdict.holds() {
        Outcome::Done
    } else {
        for f in verdict.failures() {
            if let ItemOutcome::Fails(why) = &f.outcome {
                tracing::warn!(item = %f.item, cause = %why, "proof bundle refused");
            }
        }
        Outcome::Fails
    })
}

/// The report `proof verify` prints: one line per item, then what the bundle proves.
pub fn render(file: &Path, v: &Verdict) -> String {
    let mut out = format!("{}:\n", file.display());
    for f in &v.findings {
        let (tag, text) = match &f.outcome {
            ItemOutcome::Holds(t) => ("ok         ", t),
            ItemOutcome::Fails(t) => ("FAILED     ", t),
            ItemOutcome::NotChecked(t) => ("not checked", t),
        };
        out.push_str(&format!("  {tag} {}: {text}\n", f.item));
    }
    out.push('\n');
    match &v.proves {
        Some(facts) => {
            out.push_str(
                "Điều hồ sơ chứng minh / What the bundle proves (signed statuses only; Vietnam time):\n\n",
            );
            out.push_str(&proof::render(facts));
        }
        None => out.push_str(
            "Nothing is proved: the envelope's signature does not hold. / Không chứng minh được: chữ ký của văn bản không hợp lệ.\n",
        ),
    }
    out.push('\n');
    if v.holds() {
        out.push_str("RESULT: everything holds\n");
    } else {
        let items: Vec<&str> = v.failures().map(|f| f.item.as_str()).collect();
        out.push_str(&format!(
            "RESULT: FAILED: {} item(s) do not hold: {}\n",
            items.len(),
            items.join(", ")
        ));
    }
    out
}
