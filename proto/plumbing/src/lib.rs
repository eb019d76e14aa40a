//! What every Tenantry process shares, written once: logging and traces
//! ([`trace`]), the signals
//! that stop a server, RFC 9457 problem responses, the wall clock and the
//! metrics exposition ([`metrics`]), and the progress of long work
//! ([`progress`]).
//!
//! Architecture Invariant: this crate depends on no other crate of the
//! workspace, so any of them may use it.

pub mod metrics;
pub mod progress;
pub mod trace;

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
/// `RUST_LOG`) or else by `default_filter`; colors only on a terminal; and
/// with `otlp`, exports the spans of [`trace::TARGET`] there. Call once,
/// first thing in `main` after the flags are read, inside the runtime when
/// `otlp` is given; keep what it returns until the process ends.
pub fn init_logging(
    filter_env: &str,
    default_filter: &str,
    format: LogFormat,
    otlp: Option<trace::Otlp>,
) -> Result<trace::Telemetry, String> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_env(filter_env)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs: Box<dyn Layer<_> + Send + Sync> = match format {
        LogFormat::Text => Box::new(logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))),
        LogFormat::Json => Box::new(logs.json().with_current_span(true).with_span_list(false)),
    };
    let (provider, spans) = match otlp {
        Some(otlp) => {
            let (provider, tracer) = trace::pipeline(otlp)?;
            let only_hops = tracing_subscriber::filter::Targets::new().with_target(trace::TARGET, tracing::Level::INFO);
            (Some(provider), Some(tracing_opentelemetry::layer().with_tracer(tracer).with_filter(only_hops)))
        }
        None => (None, None),
    };
    tracing_subscriber::registry().with(logs.with_filter(filter)).with(spans).init();
    Ok(trace::telemetry(provider))
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
    (status, [(header::CONTENT_TYPE, "application/problem+json")], problem_body(status, detail).to_string())
        .into_response()
}

/// The body of [`problem`]: for a problem told inside a streamed answer,
/// after its status line.
pub fn problem_body(status: StatusCode, detail: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "about:blank", "title": status.canonical_reason(), "status": status.as_u16(), "detail": detail,
    })
}

/// Milliseconds since the Unix epoch by this machine's clock (0 if the
/// clock is before 1970). For stamps people read and for proposals; never
/// for durations (use `Instant`).
pub fn now_unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}
