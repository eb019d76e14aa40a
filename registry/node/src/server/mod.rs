//! A running registry node: openraft wired to its storage, the gRPC services
//! (public registry API and internal Raft traffic on one port) and the HTTP
//! port (health, metrics, status).

mod authz;
mod http;
mod leader;
mod membership;
pub mod metrics;
mod network;
mod node;
mod proposer;
mod raft_service;
mod registry_service;
mod status;
mod sync_service;
mod topology;

pub use node::{run, NodeHandle};

/// The certified agent identity of a request (`None` with `--insecure`).
pub(crate) fn caller_agent<T>(request: &tonic::Request<T>) -> Option<trust::Identity> {
    authz::caller(request).agent().cloned()
}
