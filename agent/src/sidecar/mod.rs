//! The `agent` binary's parts, for applications not written in Rust and for
//! frontend nodes: a local HTTP API ([`http`]) and a directory of
//! materialized config files ([`materialize`]).

pub mod http;
pub mod materialize;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// An RFC 9457 problem response (also used by api-node).
pub fn problem(status: StatusCode, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank", "title": status.canonical_reason(), "status": status.as_u16(), "detail": detail,
    });
    (status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
}

/// Resolves on SIGTERM or Ctrl-C: when a server should stop accepting.
pub async fn termination() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Logs to stderr (`RUST_LOG` filters; colors only on a terminal), for the
/// agent sidecar and the api-node.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sled=warn,h2=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
