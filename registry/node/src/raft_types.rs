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
    /// command out, snapshots as files.
    pub TypeConfig:
        D = Proposal,
        R = Vec<Response>,
        NodeId = NodeId,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Member>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Member>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;

/// Wraps an error as openraft's storage error about `subject`; openraft
/// stops the node on it rather than serve wrong data.
pub fn storage_error<E: std::error::Error + 'static>(
    subject: openraft::ErrorSubject<NodeId>,
    verb: openraft::ErrorVerb,
    error: &E,
) -> StorageError {
    let source = openraft::StorageIOError::new(subject, verb, openraft::AnyError::new(error));
    StorageError::IO { source }
}
