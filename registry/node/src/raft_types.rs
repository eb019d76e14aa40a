//! The openraft type configuration of the registry and short aliases.

use std::fmt;

use registry_core::{Proposal, Response};
use serde::{Deserialize, Serialize};

/// A registry node as Raft membership records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The region this node serves, e.g. `eu-west`.
    pub region: String,
    /// The node's gRPC address (Raft, clients and agents share it).
    pub grpc_addr: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.region, self.grpc_addr)
    }
}

openraft::declare_raft_types!(
    /// The registry's Raft types: batches of commands in, one response per
    /// command out.
    pub TypeConfig:
        D = Proposal,
        R = Vec<Response>,
        NodeId = NodeId,
        Node = Member,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig, crate::store::StateMachineStore>;
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type LeaderId = openraft::alias::LeaderIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type Membership = openraft::Membership<NodeId, Member>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
/// Snapshots travel and rest as files.
pub type SnapshotData = tokio::fs::File;
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotData>;

/// The log id at `index` written by `node_id` as leader of `term`.
pub fn log_id(term: u64, node_id: NodeId, index: u64) -> LogId {
    LogId::new(LeaderId { term, node_id }, index)
}

pub type RaftError<E = openraft::errors::Infallible> = openraft::errors::RaftError<TypeConfig, E>;
pub type ClientWriteError = openraft::errors::ClientWriteError<TypeConfig>;
pub type ForwardToLeader = openraft::errors::ForwardToLeader<TypeConfig>;
pub type Fatal = openraft::errors::Fatal<TypeConfig>;
/// What a write through Raft may fail with.
pub type WriteError = RaftError<ClientWriteError>;
/// What a linearizable read barrier may fail with.
pub type ReadError = RaftError<openraft::errors::LinearizableReadError<TypeConfig>>;
