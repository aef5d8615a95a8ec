//! The one tracing subscriber: JSON lines at `LOG_LEVEL`, to stderr or `LOG_FILE`.

use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

use super::config::LogConfig;

/// Installs the subscriber. Secrets never reach it: they live in `secrecy` types and
/// spans record only ids.
///
/// # Errors
/// The log file cannot be opened.
pub fn init(cfg: &LogConfig) -> Result<(), String> {
    let filter = EnvFilter::try_new(format!("{},sqlx=warn,hyper=warn,tower_http=warn", cfg.level)).map_err(|e| e.to_string())?;
    let builder = tracing_subscriber::fmt().json().with_current_span(true).with_span_list(false).with_env_filter(filter);
    let result = if cfg.file.is_empty() {
        builder.with_writer(std::io::stderr).try_init()
    } else {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cfg.file)
            .map_err(|e| format!("GOTRUE_LOG_FILE {}: {e}", cfg.file))?;
        builder.with_writer(Mutex::new(f)).try_init()
    };
    result.map_err(|e| e.to_string())
}
