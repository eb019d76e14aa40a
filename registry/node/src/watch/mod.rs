//! The watch side of a registry node: what pushes every change to the
//! agents.
//!
//! * [`WatchHub`] is fed by the state machine's apply path, after each entry
//!   is applied: one delta per Raft entry, encoded once per scope and shared
//!   by every subscriber through a bounded broadcast ring, plus a history
//!   window of recent deltas for agents that resume.
//! * [`AgentDirectory`] remembers which agent acknowledged or refused what.
//! * [`Freshness`] tracks when this node was last known current, for the
//!   `Progress` messages that agents measure their staleness by.
//!
//! Architecture Invariant: memory does not grow with slow or dead agents:
//! the ring, the history and each stream's queue are bounded, and a
//! subscriber that cannot keep up is disconnected with a status that tells it
//! to resume.

mod agents;
mod frames;
mod freshness;
mod hub;

pub use agents::{AgentAdminService, AgentDirectory};
pub(crate) use frames::{encode, tenant_record};
pub use frames::{DeltaFrames, Scope};
pub use freshness::Freshness;
pub use hub::{HubEvent, Start, WatchHub, WatchLimits};
