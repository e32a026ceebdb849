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
    Check {
        /// edXML packages to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
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
        EdxmlCommand::Check { files } => {
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
