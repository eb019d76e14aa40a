//! Tenantry's trust layer: who a certificate speaks for ([`Identity`]),
//! issuing certificates (`regctl certs`), loading and reloading them, and
//! mutual TLS for every gRPC and HTTP listener and dial.

mod error;
pub mod identity;

pub use error::TrustError;
pub use identity::{AgentKind, Identity, Role};
pub mod certs;
pub mod cli;
pub mod net;
pub mod tls;

pub use net::{Connector, Expect, ListenOptions, PeerInfo};
pub use tls::{Tls, TlsFiles};
