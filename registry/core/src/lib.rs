//! The registry's pure core: the replicated state, the commands that change
//! it, and `apply`, a pure function from (state, command) to (state',
//! response). No sockets, no disks, no clocks: everything that varies (the
//! revision, the proposer's wall clock, fresh ULIDs) arrives inside the
//! command, so every replica computes the same result.
//!
//! Architecture Invariant: nothing here does IO. openraft, the stores and tonic are
//! adapters around this module.

mod apply;
mod command;
mod documents;
pub mod limits;
mod moves;
mod placement;
mod state;
mod validate;

pub use apply::{apply, resolve, Change};
pub use command::{
    Command, CommandError, Compiled, DocumentsPatch, MoveOp, Op, Proposal, Response, WriteMeta, WriteOutcome,
};
pub use compiler::Bundle;
pub use placement::initial_placement;
pub use state::{
    AuditEntry, Canary, Move, MoveStep, Placement, Position, RegionStatus, Session, SessionOutcome, Shard, ShardDigest,
    ShardState, State, Tenant, TenantDocuments, TenantStatus, Topology,
};
pub use validate::{canonical_document, check_shard, compile, validate_meta, DocumentKind, DocumentLimits};
