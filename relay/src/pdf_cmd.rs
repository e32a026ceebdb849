//! `lt-relay pdf check`: the signatures inside PDF files, checked against trust anchors and
//! reported in plain words or JSON (`lienthong_evidence::pdf`).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use lienthong_evidence::chain::{self, Anchors, Revocation};
use lienthong_evidence::pdf::{self, PdfSignature, TimeSource, TimeStampStatus, Verdict};
use serde::Serialize;

/// PDF files and the signatures inside them.
#[derive(Debug, Subcommand)]
pub enum PdfCommand {
    /// Find every signature in each FILE (incremental updates included) and check it: the
    /// signed byte range, the CMS signature, the signer's chain to the --ca anchors at the
    /// signing time, an embedded time-stamp, changes after signing. Exits 0 when every
    /// signature is valid, 1 when one is invalid or its signer unknown (or a file is not a
    /// PDF), 64 when the anchors or CRLs cannot be used.
    Check(CheckArgs),
}

/// `pdf check` arguments.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// PDF files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Trust anchors: PEM file(s) of root or intermediate CA certificates.
    #[arg(long = "ca", required = true)]
    pub ca: Vec<PathBuf>,
    /// Certificate revocation lists (DER or PEM), applied to the certificates their issuers
    /// signed.
    #[arg(long = "crl")]
    pub crl: Vec<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// How `pdf check` ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every signature of every file is valid.
    AllValid,
    /// Some signature is not valid, or some file could not be checked.
    NotAllValid,
}

/// The anchors or CRLs named on the command line cannot be used (exit 64).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct UsageError(#[from] chain::ChainError);

/// Reads the anchors and CRLs given on the command line.
pub fn anchors(ca: &[PathBuf], crl: &[PathBuf]) -> Result<Anchors, UsageError> {
    let mut crls = Vec::new();
    for path in crl {
        crls.extend(chain::crls_from_file(path)?);
    }
    Ok(Anchors::from_pem_files(ca)?.with_crls_der(crls)?)
}

/// One file's report in `--json`.
#[derive(Debug, Serialize)]
struct FileReport<'a> {
    file: &'a Path,
    /// Why the file could not be checked at all.
    error: Option<String>,
    signatures: Vec<PdfSignature>,
}

/// Runs `pdf check`; `Err` when the anchors or CRLs cannot be used.
pub fn run(cmd: PdfCommand) -> Result<Outcome, UsageError> {
    let PdfCommand::Check(args) = cmd;
    let anchors = anchors(&args.ca, &args.crl)?;
    let mut all_valid = true;
    let mut reports = Vec::new();
    for file in &args.files {
        let checked = std::fs::read(file)
            .map_err(|e| format!("cannot read: {e}"))
            .and_then(|bytes| pdf::check_pdf(&bytes, &anchors).map_err(|e| e.to_string()));
        let report = match checked {
            Ok(signatures) => FileReport {
                file,
                error: None,
                signatures,
            },
            Err(error) => FileReport {
                file,
                error: Some(error),
                signatures: Vec::new(),
            },
        };
        all_valid &=
            report.error.is_none() && report.signatures.iter().all(|s| s.verdict.is_valid());
        if !args.json {
            print!("{}", text(&report));
        }
        reports.push(report);
    }
    if args.json {
        match serde_json::to_string_pretty(&reports) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("lt-relay: error: {e}");
                all_valid = false;
            }
        }
    }
    Ok(if all_valid {
        Outcome::AllValid
    } else {
        Outcome::NotAllValid
    })
}

/// The report of one file in plain words: a header line per signature, then indented facts.
fn text(report: &FileReport<'_>) -> String {
    let file = report.file.display();
    if let Some(e) = &report.error {
        return format!("{file}: FAIL {e}\n");
    }
    if report.signatures.is_empty() {
        return format!("{file}: no signature\n");
    }
    let mut out = String::new();
    let total = report.signatures.len();
    for (i, s) in report.signatures.iter().enumerate() {
        text_signature(
            &mut out,
            &format!("{file}: signature {} of {total}", i + 1),
            s,
        );
    }
    out
}

/// The lines describing one signature (also used by `edxml check` for attachments).
pub fn text_signature(out: &mut String, header: &str, s: &PdfSignature) {
    use std::fmt::Write as _;
    let field = s
        .field
        .as_deref()
        .map(|f| format!(" \"{f}\""))
        .unwrap_or_default();
    let kind = match s.kind {
        pdf::SignatureKind::Signature => "field",
        pdf::SignatureKind::DocumentTimeStamp => "document time-stamp",
    };
    let verdict = match &s.verdict {
        Verdict::Valid => "VALID".to_string(),
        Verdict::Invalid { why } => format!("INVALID: {why}"),
        Verdict::UnknownSigner { why } => format!("UNKNOWN SIGNER: {why}"),
    };
    let _ = writeln!(out, "{header}, {kind}{field}: {verdict}");
    let _ = writeln!(
        out,
        "  signer: {}",
        s.signer.as_deref().unwrap_or("not named")
    );
    let source = match s.signing_time_source {
        Some(TimeSource::CmsSigningTime) => " (the signer's claim)",
        Some(TimeSource::DictionaryM) => " (the signer's claim, unsigned /M)",
        Some(TimeSource::TimeStamp) => " (time-stamp)",
        None => "",
    };
    let _ = writeln!(
        out,
        "  signed at: {}{source}",
        s.signing_time.as_deref().unwrap_or("not said")
    );
    if let (Some(ts), pdf::SignatureKind::Signature) = (&s.time_stamp, s.kind) {
        let status = match &ts.status {
            TimeStampStatus::Valid => "valid".to_string(),
            TimeStampStatus::Invalid { why } => format!("invalid: {why}"),
            TimeStampStatus::UnknownTsa { why } => format!("unknown authority: {why}"),
        };
        let _ = writeln!(
            out,
            "  time-stamp: {} by {}: {status}",
            ts.time.as_deref().unwrap_or("time unreadable"),
            ts.tsa.as_deref().unwrap_or("an unnamed authority")
        );
    } else if s.kind == pdf::SignatureKind::Signature
        && !matches!(s.verdict, Verdict::Invalid { .. })
    {
        let _ = writeln!(out, "  time-stamp: none");
    }
    let coverage = if s.covers_whole_file {
        "the whole file".to_string()
    } else if s.later_updates.is_empty() {
        "not checked (no readable byte range)".to_string()
    } else {
        let updates: Vec<String> = s
            .later_updates
            .iter()
            .map(|u| match &u.signature {
                Some(f) => format!("bytes {}..{}: signature \"{f}\"", u.bytes[0], u.bytes[1]),
                None => format!("bytes {}..{}: CHANGED", u.bytes[0], u.bytes[1]),
            })
            .collect();
        let what = if s.changed_after_signing {
            "CHANGED AFTER SIGNING"
        } else {
            "later signatures only"
        };
        format!("{what} ({})", updates.join("; "))
    };
    let _ = writeln!(out, "  covers: {coverage}");
    if let Some(r) = s.revocation {
        let r = match r {
            Revocation::Good => "not revoked (CRLs)".to_string(),
            Revocation::Revoked { at_unix } => {
                format!("revoked at {}, after the signing time", chain::utc(at_unix))
            }
            Revocation::Unknown => "not checked (no CRL from some issuer)".to_string(),
        };
        let _ = writeln!(out, "  revocation: {r}");
    }
}
