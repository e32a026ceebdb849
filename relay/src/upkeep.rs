//! Scheduled upkeep of a running node: audit records older than `[security]
//! audit_retention_days` pruned every hour; a backup every `[backup] interval_hours` with the
//! newest `keep` kept; the traffic minutes of the console's charts closed every minute; and
//! `POST /v1/backup`, a backup now. The file format and restoring are
//! in `lienthong_common::backup`; the commands in [`crate::backup_cmd`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use lienthong_common::agency::AgencyCode;
use lienthong_common::backup::{self, BackupError, Removed, Written};
use lienthong_common::config::BackupSettings;
use lienthong_common::store::Store;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::api::{ApiError, ApiResult};
use crate::node::Node;

/// How often records past the audit retention are pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Wait before a failed scheduled backup is tried again (the interval, when shorter).
pub const BACKUP_RETRY: Duration = Duration::from_secs(15 * 60);

/// One backup at a time in a process: the scheduled backups and those asked for through the
/// API write into the same folder and remove old files there. A std mutex: it is only taken on
/// a blocking thread, for the length of one backup.
static BACKUP_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A backup written, and what was removed to keep the newest `keep`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupOutcome {
    /// The backup.
    #[serde(flatten)]
    pub written: Written,
    /// Old backups and attachment files removed (only in the configured `[backup] dir`).
    pub removed: Option<Removed>,
}

/// Starts the upkeep tasks the configuration asks for.
pub fn spawn(tracker: &TaskTracker, node: &Arc<Node>, shutdown: &CancellationToken) {
    if node.config.security.audit_retention_days > 0 {
        tracker.spawn(audit_retention(node.clone(), shutdown.clone()));
    }
    if let Some(settings) = node.config.backup.clone() {
        tracker.spawn(backup_schedule(node.clone(), settings, shutdown.clone()));
    }
    tracker.spawn(traffic_minutes(node.clone(), shutdown.clone()));
}

/// Closes the traffic minute (`crate::traffic`) at every minute's turn until `shutdown`, and
/// once more on the way out.
async fn traffic_minutes(node: Arc<Node>, shutdown: CancellationToken) {
    loop {
        let into = 60_000 - node.clock.now_unix_ms().rem_euclid(60_000);
        let wait = Duration::from_millis(u64::try_from(into).unwrap_or(60_000).max(1));
        let stopping = tokio::select! {
            () = shutdown.cancelled() => true,
            () = tokio::time::sleep(wait) => false,
        };
        let n = node.clone();
        let closed = tokio::task::spawn_blocking(move || {
            crate::traffic::close_minute(
                &n.store,
                &n.metrics.traffic,
                n.clock.now_unix_ms(),
                &n.neighbours(),
            )
        })
        .await;
        match closed {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(cause = %e, "cannot keep the minute's traffic"),
            Err(e) => warn!(cause = %e, "traffic task failed"),
        }
        if stopping {
            return;
        }
    }
}

/// Writes a backup of `store` into `dir` and, with `keep`, removes the backups of `agency`
/// beyond the newest `keep` and the attachment files no backup lists. Blocking.
pub fn take_backup(
    store: &Store,
    agency: &AgencyCode,
    dir: &Path,
    keep: Option<u32>,
) -> Result<BackupOutcome, BackupError> {
    let _one_at_a_time = match BACKUP_LOCK.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    let written = backup::write(store, agency, dir)?;
    let removed = keep
        .map(|k| backup::remove_old(dir, agency, k))
        .transpose()?;
    Ok(BackupOutcome { written, removed })
}

fn log_outcome(o: &BackupOutcome, why: &str) {
    let w = &o.written;
    info!(
        file = %w.file.display(),
        entries = w.entries,
        blobs = w.blobs,
        blobs_linked = w.blobs_linked,
        blobs_copied = w.blobs_copied,
        bytes = w.bytes,
        why,
        "backup written"
    );
    if let Some(r) = &o.removed {
        for f in &r.files {
            info!(file = %f.display(), "old backup removed");
        }
        if r.blobs > 0 {
            info!(
                count = r.blobs,
                "attachment files no backup lists any more removed"
            );
        }
        if let Some(why) = &r.blobs_kept_because {
            warn!(cause = %why, "unused attachment files of old backups not removed");
        }
    }
}

/// Prunes the audit log at start and every [`PRUNE_EVERY`] until `shutdown`.
async fn audit_retention(node: Arc<Node>, shutdown: CancellationToken) {
    let days = node.config.security.audit_retention_days;
    loop {
        let store = node.store.clone();
        let now = node.clock.now_unix_ms();
        let pruned =
            tokio::task::spawn_blocking(move || lienthong_common::audit::prune(&store, days, now))
                .await;
        match pruned {
            Ok(Ok(Some(p))) => match node.store.commit().await {
                Ok(_) => info!(
                    count = p.count,
                    through_seq = p.through_seq,
                    retention_days = days,
                    "audit records past retention pruned"
                ),
                Err(e) => warn!(cause = %e, "audit records pruned but not flushed"),
            },
            Ok(Ok(None)) => debug!(retention_days = days, "no audit record past retention"),
            Ok(Err(e)) => warn!(cause = %e, "audit retention"),
            Err(e) => error!(cause = %e, "audit retention task failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}

/// How long until the next backup is due: at once when there is none in the folder, else
/// `interval` after the newest (so restarts do not postpone backups).
fn first_wait(settings: &BackupSettings, agency: &AgencyCode) -> Duration {
    let newest = backup::list(&settings.dir, agency)
        .ok()
        .and_then(|l| l.last().map(|(at, _)| *at));
    match newest {
        None => Duration::ZERO,
        Some(at) => {
            let age = time::OffsetDateTime::now_utc() - at;
            let age = Duration::try_from(age).unwrap_or(Duration::ZERO);
            settings.interval.saturating_sub(age)
        }
    }
}

/// Writes a backup whenever one is due, until `shutdown`.
async fn backup_schedule(node: Arc<Node>, settings: BackupSettings, shutdown: CancellationToken) {
    let mut wait = first_wait(&settings, node.agency());
    loop {
        if !wait.is_zero() {
            debug!(in_secs = wait.as_secs(), dir = %settings.dir.display(), "next backup");
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        let (store, agency, dir, keep) = (
            node.store.clone(),
            node.agency().clone(),
            settings.dir.clone(),
            settings.keep,
        );
        let job =
            tokio::task::spawn_blocking(move || take_backup(&store, &agency, &dir, Some(keep)));
        let result = tokio::select! {
            _ = shutdown.cancelled() => {
                warn!(dir = %settings.dir.display(), "stopping during a backup: it is left unfinished (.tmp), and removed by the next one");
                return;
            }
            r = job => r,
        };
        let retry = BACKUP_RETRY.min(settings.interval);
        wait = match result {
            Ok(Ok(o)) => {
                log_outcome(&o, "scheduled");
                settings.interval
            }
            Ok(Err(e)) => {
                error!(dir = %settings.dir.display(), cause = %e, retry_in_secs = retry.as_secs(), "backup failed");
                retry
            }
            Err(e) => {
                error!(cause = %e, retry_in_secs = retry.as_secs(), "backup task failed");
                retry
            }
        };
    }
}

/// Body of `POST /v1/backup` (may be empty).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// Folder to write into, absolute (default: `[backup] dir`).
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

/// `POST /v1/backup`: writes a backup now (docs/api.md). The newest `keep` are kept when it is
/// written into the configured `[backup] dir`.
pub async fn api_backup(
    State(node): State<Arc<Node>>,
    body: Bytes,
) -> ApiResult<Json<BackupOutcome>> {
    let req: BackupRequest = if body.iter().all(u8::is_ascii_whitespace) {
        BackupRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("body: {e}")))?
    };
    let configured = node.config.backup.as_ref();
    let dir = match (req.dir, configured) {
        (Some(d), _) if d.is_absolute() => d,
        (Some(d), _) => {
            return Err(ApiError::bad(format!(
                "dir {:?} must be an absolute path",
                d.display().to_string()
            )))
        }
        (None, Some(b)) => b.dir.clone(),
        (None, None) => {
            return Err(ApiError::bad(
                "no [backup] dir configured: give {\"dir\": \"/absolute/folder\"}",
            ))
        }
    };
    let keep = configured.filter(|b| b.dir == dir).map(|b| b.keep);
    let (store, agency) = (node.store.clone(), node.agency().clone());
    let outcome = tokio::task::spawn_blocking(move || take_backup(&store, &agency, &dir, keep))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| match e {
            BackupError::Store(s) => ApiError::from(s),
            e => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        })?;
    log_outcome(&outcome, "asked through the API");
    Ok(Json(outcome))
}
