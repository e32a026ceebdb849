//! Logging set up once for every binary: `LT_LOG` holds the filter (default `info`),
//! `LT_LOG_FORMAT=json` switches to one JSON object per line. Logs go to stderr.

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber. Calling it twice is harmless (the second call does nothing).
pub fn init() {
    let filter = EnvFilter::try_from_env("LT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LT_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    // Colours only on a terminal: log files and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
