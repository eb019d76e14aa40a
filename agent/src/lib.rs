//! The Tenantry agent: the sidecar on every API and frontend node that
//! subscribes to its region's registry node, applies versioned updates in
//! order, acknowledges them and keeps a last-known-good copy on disk.
//!
//! * [`view`]: the immutable view and the pure functions that advance it.
//! * [`follower`]: [`Agent`], the stream client and reconnect loop.
//! * [`host`]: Host header to tenant id, without allocating.
//! * [`sidecar`]: the local HTTP API and the materialized config files of the
//!   `agent` binary.

pub mod error;
pub mod follower;
pub mod host;
pub mod limits;
pub mod sidecar;
mod store;
pub mod view;

pub use error::Error;
pub use follower::{Agent, AgentConfig, Applied};
pub use view::{Kind, TenantEntry, View};
