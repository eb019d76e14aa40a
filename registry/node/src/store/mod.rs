//! Durable storage of a registry node.
//!
//! * [`LogStore`]: the Raft log and vote in `raft-log`, a WAL that calls
//!   `fdatasync` before it reports an append or a vote as done; its records
//!   are protobuf (`wal`).
//! * [`StateMachineStore`]: the applied state, in memory only.
//! * [`snapshot`]: snapshot files written, fsynced and renamed into place.
//!
//! Architecture Invariant: the applied state is written to disk only as a
//! snapshot. A restart loads the last snapshot and openraft re-applies the
//! committed entries after it, which the log always keeps.

mod log_store;
pub mod snapshot;
mod state_machine;
mod wal;

pub use log_store::LogStore;
pub use state_machine::{SharedState, StateMachineStore, StateView};
