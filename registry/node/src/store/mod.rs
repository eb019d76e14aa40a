//! Durable storage of a registry node.
//!
//! * [`LogStore`]: the Raft log and vote in `raft-log`, a WAL that calls
//!   `fdatasync` before it reports an append or a vote as done.
//! * [`StateMachineStore`]: the applied state in memory (for reads) mirrored
//!   in sled (for fast restarts), with `last_applied` in the same batch.
//! * [`snapshot`]: snapshot files written, fsynced and renamed into place.
//!
//! Architecture Invariant: the state machine is derived data. If sled is
//! damaged, missing or behind the last snapshot at start, the node rebuilds
//! it from the snapshot and the log instead of refusing to start.

mod log_store;
pub mod snapshot;
mod state_machine;

pub use log_store::LogStore;
pub use state_machine::{SharedState, StateMachineStore, StateView};
