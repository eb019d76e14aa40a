//! The Tenantry agent: the sidecar on every API and frontend node that
//! subscribes to its region's registry node, applies versioned updates in
//! order, acknowledges them and keeps a last-known-good copy on disk.
//!
//! * [`view`]: the immutable view and the pure functions that advance it.
//! * [`follower`]: [`Agent`], the stream client and reconnect loop.
//! * [`host`]: Host header to tenant id, without allocating.
//!
//! The sidecar (a local HTTP API and materialized config files, for apps not
//! written in Rust and for frontend nodes) is the `agent` binary
//! (package `agent-sidecar` in `agent/sidecar/`), built on this library like
//! api-node is.
//!
//! Architecture Invariant: the library runs no server; it is what an
//! application embeds.

pub mod error;
pub mod follower;
pub mod host;
pub mod limits;
mod reconnect;
mod store;
pub mod view;

pub use error::Error;
pub use follower::{Agent, AgentConfig, Applied};
pub use view::{Kind, TenantEntry, View};
