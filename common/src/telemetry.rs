//! Logging set up once for every binary. The filter is `LT_LOG` when set (and not empty), else the node's
//! `[log] level` (applied once the configuration is read, and again on each reload), else
//! `info`; `LT_LOG_FORMAT=json` switches to one JSON object per line. Logs go to stderr.

use std::sync::OnceLock;

use tracing_subscriber::{fmt, EnvFilter};

type SetFilter = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

/// Replaces the filter of the installed subscriber (set by [`init`]).
static SET_FILTER: OnceLock<SetFilter> = OnceLock::new();

/// `LT_LOG`, when set and not empty.
fn env_filter() -> Option<String> {
    std::env::var("LT_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// Installs the global subscriber. Calling it twice is harmless (the second call does nothing).
pub fn init() {
    let filter = env_filter()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let json = std::env::var("LT_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    // Colours only on a terminal: log files and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let base = fmt().with_ansi(ansi).with_writer(std::io::stderr);
    if json {
        let builder = base
            .json()
            .flatten_event(true)
            .with_env_filter(filter)
            .with_filter_reloading();
        let handle = builder.reload_handle();
        if builder.try_init().is_ok() {
            let _ = SET_FILTER.set(Box::new(move |f| {
                handle.reload(f).map_err(|e| e.to_string())
            }));
        }
    } else {
        let builder = base.with_env_filter(filter).with_filter_reloading();
        let handle = builder.reload_handle();
        if builder.try_init().is_ok() {
            let _ = SET_FILTER.set(Box::new(move |f| {
                handle.reload(f).map_err(|e| e.to_string())
            }));
        }
    }
}

/// Why a log level was not applied.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LogLevelError {
    /// `LT_LOG` is set: it takes precedence over the configuration.
    #[error("LT_LOG is set ({0}); it takes precedence over [log] level")]
    EnvSet(String),
    /// Not a valid filter.
    #[error("[log] level {level:?}: {reason}")]
    Invalid {
        /// The text given.
        level: String,
        /// The parser's reason.
        reason: String,
    },
    /// No subscriber installed by [`init`] (tests, libraries).
    #[error("no reloadable log subscriber installed")]
    NotInstalled,
    /// The subscriber refused the new filter.
    #[error("log filter not replaced: {0}")]
    Reload(String),
}

/// Checks a `[log] level` text (the `tracing` directive syntax: `info`, `warn,lienthong_relay=debug`).
pub fn parse_level(level: &str) -> Result<EnvFilter, LogLevelError> {
    EnvFilter::try_new(level).map_err(|e| LogLevelError::Invalid {
        level: level.to_owned(),
        reason: e.to_string(),
    })
}

/// Applies a configuration's `[log] level`, unless `LT_LOG` is set.
pub fn apply_level(level: &str) -> Result<(), LogLevelError> {
    if let Some(env) = env_filter() {
        return Err(LogLevelError::EnvSet(env));
    }
    let filter = parse_level(level)?;
    let set = SET_FILTER.get().ok_or(LogLevelError::NotInstalled)?;
    set(filter).map_err(LogLevelError::Reload)
}
