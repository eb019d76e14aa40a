//! Listening and dialing with the process's [`Tls`] (or in plaintext, with
//! `--insecure`): accepted connections carry the peer's verified
//! [`Identity`] in [`PeerInfo`]; every listener has a connection cap and a
//! handshake timeout, and every HTTP server header-read and keep-alive
//! timeouts.
//!
//! [`listen`] accepts (TCP, or a local unix socket), [`dial`] connects,
//! [`guard`] refuses HTTP requests by identity.

pub(crate) mod dial;
mod guard;
mod listen;

use std::net::SocketAddr;
use std::sync::Arc;

pub use dial::{ClientConn, Connector, Expect};
pub use guard::{guard, Guard};
pub use listen::{bind_unix, incoming, serve_http, Listener, ServerConn};

use crate::{Identity, Tls};

/// A TLS handshake must finish within this (a client that stalls it holds a
/// connection slot, never an accept loop).
pub const HANDSHAKE_TIMEOUT_MS: u64 = 5_000;
/// An HTTP client must send a request's headers within this, on a new
/// connection or between requests of a kept-alive one.
pub const HTTP_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// Dials give up after this.
pub const DIAL_TIMEOUT_MS: u64 = 3_000;

/// Who is on the other end of an accepted connection.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub remote: Option<SocketAddr>,
    /// The identity its verified certificate carries; `None` in plaintext
    /// (`--insecure`) or when a listener with open paths was reached
    /// without a certificate.
    pub identity: Option<Arc<Identity>>,
    /// Whether the connection is TLS.
    pub secure: bool,
}

/// How a listener admits connections.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// `None`: plaintext (`--insecure`).
    pub tls: Option<Arc<Tls>>,
    /// Refuse, at the handshake, clients without a certificate from the CA.
    pub client_cert_required: bool,
    /// Connections open at once; more wait in the kernel's backlog.
    pub connections_max: usize,
}
