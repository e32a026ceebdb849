//! `lt-relay backup` and `lt-relay restore`. A backup is taken through the node's local API when
//! the node runs (its store is locked then), directly from its store when it is stopped. A
//! restore needs the node stopped. Formats and checks: `lienthong_common::backup`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use lienthong_common::backup::{self, BackupError};
use lienthong_common::config::NodeConfig;
use lienthong_common::store::Store;

use crate::upkeep::BackupOutcome;
use lienthong_client::ApiClient;

/// `lt-relay backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The node's configuration.
    #[arg(long, env = "LT_CONFIG")]
    pub config: PathBuf,
    /// Folder to write the backup into (created if missing). Default: `[backup] dir`, where
    /// the newest `keep` backups are kept; elsewhere nothing is removed.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `lt-relay restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The node's configuration.
    #[arg(long, env = "LT_CONFIG")]
    pub config: PathBuf,
    /// The backup file, `<agency>-<time>.ltbak`, with the backup's `blobs/` folder beside it.
    #[arg(long)]
    pub from: PathBuf,
    /// Replace a store that holds data (it is moved aside as `store.replaced-<time>`, not
    /// deleted).
    #[arg(long)]
    pub force: bool,
}

fn load(config: &Path) -> anyhow::Result<NodeConfig> {
    NodeConfig::load(config).map_err(|e| anyhow!("{e}"))
}

/// A client for the node's local API if the node runs and answers.
fn running(cfg: &NodeConfig) -> Option<(std::net::SocketAddr, ApiClient)> {
    let api = cfg.api?;
    let c = match ApiClient::for_node(cfg) {
        Ok(c) => c?,
        Err(e) => {
            tracing::warn!(cause = %e, "cannot set up a client for the node's API");
            return None;
        }
    };
    c.health().is_ok().then_some((api, c))
}

/// Takes one backup now.
pub fn run_backup(args: BackupArgs) -> anyhow::Result<()> {
    let cfg = load(&args.config)?;
    let dir = match (&args.out, &cfg.backup) {
        (Some(d), _) => std::path::absolute(d)
            .with_context(|| format!("--out {}: not a usable path", d.display()))?,
        (None, Some(b)) => b.dir.clone(),
        (None, None) => bail!(
            "{}: no [backup] section: pass --out DIR, or add [backup] with dir = \"...\"",
            args.config.display()
        ),
    };
    let outcome: BackupOutcome = match running(&cfg) {
        Some((api, c)) => {
            let v = c
                .post_json("/v1/backup", &serde_json::json!({ "dir": dir }))
                .with_context(|| format!("backup through the node's local API at {api}"))?;
            serde_json::from_value(v)
                .with_context(|| format!("reading the answer of the local API at {api}"))?
        }
        None => {
            let store_dir = cfg.data_dir.join("store");
            if !store_dir.exists() {
                bail!(
                    "{}: no store there, nothing to back up (node.data_dir in {})",
                    store_dir.display(),
                    args.config.display()
                );
            }
            let store = Store::open(&store_dir).with_context(|| {
                format!(
                    "opening the store of {} (if the node runs without a local API, stop it or give it [listen] api)",
                    cfg.agency
                )
            })?;
            let keep = cfg.backup.as_ref().filter(|b| b.dir == dir).map(|b| b.keep);
            crate::upkeep::take_backup(&store, &cfg.agency, &dir, keep)
                .with_context(|| format!("backing up {} into {}", cfg.agency, dir.display()))?
        }
    };
    let w = &outcome.written;
    println!(
        "backup written: {} ({} records, {} attachment files, {} bytes)",
        w.file.display(),
        w.entries,
        w.blobs,
        w.bytes
    );
    if let Some(r) = &outcome.removed {
        for f in &r.files {
            println!("old backup removed: {}", f.display());
        }
        if let Some(why) = &r.blobs_kept_because {
            eprintln!("lt-relay: warning: unused attachment files not removed: {why}");
        }
    }
    Ok(())
}

/// Restores a backup into the node's store; the node must be stopped.
pub fn run_restore(args: RestoreArgs) -> anyhow::Result<()> {
    let cfg = load(&args.config)?;
    if let Some((api, _)) = running(&cfg) {
        bail!(
            "{} is running (its local API at {api} answers): stop it, restore, then start it again",
            cfg.agency
        );
    }
    let store_dir = cfg.data_dir.join("store");
    let restored =
        backup::restore(&args.from, &cfg.agency, &store_dir, args.force).map_err(|e| match e {
            BackupError::NotEmpty { .. } => anyhow!("{e}: pass --force to replace it"),
            BackupError::Store(s) => anyhow!(s).context(format!(
                "restoring into {} (is the node still running? stop it first)",
                store_dir.display()
            )),
            e => anyhow!(e),
        })?;
    let c = &restored.contents;
    println!(
        "restored {}: {} records and {} attachment files of {}, backed up at {} (UTC), into {}",
        args.from.display(),
        c.entries,
        c.blobs.len(),
        c.header.agency,
        c.header.created,
        store_dir.display()
    );
    if let Some(p) = &restored.replaced {
        println!(
            "the store it replaced is kept at {}: delete it once the node runs well",
            p.display()
        );
    }
    println!(
        "start the node: lt-relay serve --config {}",
        args.config.display()
    );
    Ok(())
}
