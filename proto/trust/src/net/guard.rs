//! Route guards for HTTP servers: who may reach a route, by the identity
//! the connection's certificate proved.

use super::PeerInfo;
use crate::Identity;

/// The refusal of an HTTP request at a guarded route, if any: in plaintext
/// (`--insecure`) none; over TLS, unless a certificate's identity satisfies
/// `allowed`, 401 (no identity) or 403 (`rule` says who may), as problem
/// JSON.
fn refusal(
    request: &axum::extract::Request,
    allowed: fn(&Identity) -> bool,
    rule: &str,
) -> Option<axum::response::Response> {
    let refuse = |status: http::StatusCode, detail: String| plumbing::problem(status, &detail);
    match request.extensions().get::<PeerInfo>() {
        None => Some(refuse(http::StatusCode::INTERNAL_SERVER_ERROR, "no connection information".to_owned())),
        Some(peer) if !peer.secure => None,
        Some(PeerInfo { identity: None, .. }) => {
            Some(refuse(http::StatusCode::UNAUTHORIZED, format!("a client certificate is required: {rule}")))
        }
        Some(PeerInfo { identity: Some(identity), .. }) if allowed(identity) => None,
        Some(PeerInfo { identity: Some(identity), .. }) => {
            Some(refuse(http::StatusCode::FORBIDDEN, format!("{identity} may not: {rule}")))
        }
    }
}

/// An HTTP route guard (see [`refusal`]), for
/// `axum::middleware::from_fn_with_state(Guard { .. }, guard)`.
#[derive(Debug, Clone, Copy)]
pub struct Guard {
    pub allowed: fn(&Identity) -> bool,
    /// Who may, in words, for the refusal.
    pub rule: &'static str,
}

/// The middleware of a [`Guard`].
pub async fn guard(
    axum::extract::State(guard): axum::extract::State<Guard>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match refusal(&request, guard.allowed, guard.rule) {
        None => next.run(request).await,
        Some(refusal) => refusal,
    }
}
