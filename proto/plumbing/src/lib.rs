//! What every Tenantry process shares, written once: logging, the signals
//! that stop a server, RFC 9457 problem responses, the wall clock and the
//! metrics exposition ([`metrics`]).
//!
//! Architecture Invariant: this crate depends on no other crate of the
//! workspace, so any of them may use it.

pub mod metrics;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// How logs are written: `--log-format text|json` (or `TENANTRY_LOG_FORMAT`)
/// on every binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines, colored on a terminal.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`
    /// with `message`, and the current `span`), for a log pipeline.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(format!("{text:?}: the log format is text or json")),
        }
    }
}

/// Logs to stderr in `format`, filtered by the variable `filter_env` (e.g.
/// `RUST_LOG`) or else by `default_filter`; colors only on a terminal. Call
/// once, first thing in `main` after the flags are read.
pub fn init_logging(filter_env: &str, default_filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env(filter_env)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(false).init(),
    }
}

/// Resolves on SIGTERM or Ctrl-C (and logs which): when a server should
/// stop accepting and drain.
pub async fn termination() {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGTERM; only Ctrl-C stops this process");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C received"),
    }
}

/// An RFC 9457 problem response: `application/problem+json` with the
/// status, its reason as the title, and `detail`.
pub fn problem(status: StatusCode, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank", "title": status.canonical_reason(), "status": status.as_u16(), "detail": detail,
    });
    (status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
}

/// Milliseconds since the Unix epoch by this machine's clock (0 if the
/// clock is before 1970). For stamps people read and for proposals; never
/// for durations (use `Instant`).
pub fn now_unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}
