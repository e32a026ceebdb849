//! `lt-relay edxml`: check edXML packages and convert them to and from the JSON form of the model.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use lienthong_edxml::{self as edxml, Imported};

/// Tools for integrators working with edXML (QCVN 102:2016) packages.
#[derive(Debug, Subcommand)]
pub enum EdxmlCommand {
    /// Import each FILE and print, per file, `OK` with the document id and business type or the
    /// status code, or every problem found (element, line, reason). Fails if any file fails.
    /// With --ca, also checks the signatures inside the PDF attachments (as `lt-relay pdf
    /// check` does) and fails if one is not valid.
    Check {
        /// edXML packages to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Trust anchors (PEM) for the signatures inside PDF attachments; without it, they are
        /// not checked.
        #[arg(long = "ca")]
        ca: Vec<PathBuf>,
        /// CRLs (DER or PEM) for those signatures; only with --ca.
        #[arg(long = "crl", requires = "ca")]
        crl: Vec<PathBuf>,
    },
    /// Import FILE and print the imported model as JSON.
    ToJson {
        /// The edXML package.
        file: PathBuf,
    },
    /// Read the JSON printed by `to-json` from FILE and print the package as strict edXML.
    FromJson {
        /// The JSON file.
        file: PathBuf,
    },
}

/// Runs an `edxml` subcommand. `Ok(false)` means a checked file was refused (exit non-zero).
pub fn run(cmd: EdxmlCommand) -> anyhow::Result<bool> {
    match cmd {
        EdxmlCommand::Check { files, ca, crl } => {
            let anchors = if ca.is_empty() {
                None
            } else {
                Some(
                    crate::pdf_cmd::anchors(&ca, &crl)
                        .context("the --ca anchors or --crl lists")?,
                )
            };
            let mut all_ok = true;
            for file in files {
                let shown = file.display();
                let bytes = match std::fs::read(&file) {
                    Ok(b) => b,
                    Err(e) => {
                        println!("{shown}: FAIL cannot read: {e}");
                        all_ok = false;
                        continue;
                    }
                };
                match edxml::import(&bytes) {
                    Ok(Imported::Document(d)) => {
                        let kind = d
                            .envelope
                            .business
                            .as_ref()
                            .map(|b| b.doc_type.to_string())
                            .unwrap_or_else(|| "none".into());
                        println!(
                            "{shown}: OK {} business type {kind}",
                            d.envelope.document_id
                        );
                        if let Some(anchors) = &anchors {
                            all_ok &= check_pdf_attachments(&shown.to_string(), &d, anchors);
                        }
                    }
                    Ok(Imported::Status(s)) => {
                        println!("{shown}: OK status {:02}", s.receipt.status);
                    }
                    Err(e) => {
                        println!("{shown}: FAIL {e}");
                        all_ok = false;
                    }
                }
            }
            Ok(all_ok)
        }
        EdxmlCommand::ToJson { file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let imported =
                edxml::import(&bytes).with_context(|| format!("importing {}", file.display()))?;
            println!("{}", serde_json::to_string_pretty(&imported)?);
            Ok(true)
        }
        EdxmlCommand::FromJson { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let imported: Imported = serde_json::from_str(&text)
                .with_context(|| format!("parsing {} as imported edXML JSON", file.display()))?;
            print!("{}", edxml::export(&imported));
            Ok(true)
        }
    }
}

/// Prints the signatures inside each PDF attachment of `d`; `false` when one is not valid.
fn check_pdf_attachments(
    shown: &str,
    d: &edxml::ImportedDocument,
    anchors: &lienthong_evidence::chain::Anchors,
) -> bool {
    let mut all_valid = true;
    for (manifest, bytes) in &d.attachments {
        let is_pdf = manifest
            .content_type
            .eq_ignore_ascii_case("application/pdf")
            || manifest.name.to_ascii_lowercase().ends_with(".pdf")
            || bytes.starts_with(b"%PDF-");
        if !is_pdf {
            continue;
        }
        let name = &manifest.name;
        match lienthong_evidence::pdf::check_pdf(bytes, anchors) {
            Ok(signatures) if signatures.is_empty() => {
                println!("{shown}: attachment {name}: no signature");
            }
            Ok(signatures) => {
                let total = signatures.len();
                let mut out = String::new();
                for (i, s) in signatures.iter().enumerate() {
                    all_valid &= s.verdict.is_valid();
                    let header =
                        format!("{shown}: attachment {name}: signature {} of {total}", i + 1);
                    crate::pdf_cmd::text_signature(&mut out, &header, s);
                }
                print!("{out}");
            }
            Err(e) => {
                println!("{shown}: attachment {name}: FAIL {e}");
                all_valid = false;
            }
        }
    }
    all_valid
}
