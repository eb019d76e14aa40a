//! Commands (the payload of a Raft entry) and their deterministic responses.

use std::sync::Arc;

use proto::{Revision, TenantId};
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use super::Tenant;
use compiler::Bundle;

/// Who asks for a write, why, and the values the proposer fixed for every
/// replica (its wall clock and a fresh change id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteMeta {
    /// Compare-and-set: the tenant's mod_revision must equal this; 0 means
    /// "must not exist".
    pub expected_revision: Option<u64>,
    /// Idempotency key: a retry with the same id returns the first result.
    pub request_id: Option<String>,
    pub actor: String,
    pub reason: String,
    /// Proposer's wall clock; used for audit and session ages, never for ordering.
    pub at_unix_ms: u64,
    /// The ULID of the audit entry this write makes.
    pub change_id: Ulid,
}

/// Documents in a write: `None` keeps the current value (create: `{}`).
/// Each present document is canonical JSON text of an object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentsPatch {
    pub config: Option<String>,
    pub theme: Option<String>,
    pub integrations: Option<String>,
}

impl DocumentsPatch {
    /// The names of the documents this patch sets, for audit summaries.
    pub fn names(&self) -> Vec<&'static str> {
        [("config", &self.config), ("theme", &self.theme), ("integrations", &self.integrations)]
            .into_iter()
            .filter(|(_, document)| document.is_some())
            .map(|(name, _)| name)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    CreateTenant {
        tenant: TenantId,
        uid: Ulid,
        documents: DocumentsPatch,
        /// The proposing node's region: the home region of a tenant whose
        /// config requests none.
        #[serde(default)]
        proposer_region: Option<proto::Region>,
    },
    UpdateTenant {
        tenant: TenantId,
        documents: DocumentsPatch,
    },
    DeleteTenant {
        tenant: TenantId,
    },
    /// Restores the tenant's documents as of revision `to` (its last change
    /// at or before `to` that set documents, from the audit log).
    RollbackTenant {
        tenant: TenantId,
        to: Revision,
    },
    /// Stages a candidate: the live documents patched with `documents`.
    StageCanary {
        tenant: TenantId,
        documents: DocumentsPatch,
    },
    PromoteCanary {
        tenant: TenantId,
    },
    /// Failover, step 1: fence the tenant for a failover to `to` (no region
    /// accepts its writes until step 2), or lift the fence (`None`).
    FenceTenant {
        tenant: TenantId,
        to: Option<proto::Region>,
    },
    /// Failover, step 2: `to` becomes the home region and the epoch grows.
    /// `forced`: committed without waiting for the old region's api-nodes
    /// to stop accepting writes (audited as such).
    FailoverTenant {
        tenant: TenantId,
        to: proto::Region,
        forced: bool,
    },
    /// Data residency: the regions the tenant's data and writes may be in.
    /// Refused if the home or DR region would fall outside.
    PinTenant {
        tenant: TenantId,
        allowed_regions: Vec<proto::Region>,
    },
    AbortCanary {
        tenant: TenantId,
    },
    /// One step of moving the tenant's rows to another shard.
    MoveTenant {
        tenant: TenantId,
        step: MoveOp,
    },
    /// Declares a region's status.
    SetRegionStatus {
        region: proto::Region,
        status: crate::RegionStatus,
    },
    /// Adds a shard (active: it takes new tenants of its region).
    AddShard {
        shard: crate::Shard,
    },
    /// Stops a shard from taking new tenants.
    DrainShard {
        id: String,
    },
    /// Names the cluster, once: proposed by the first leader of a fresh
    /// cluster. Agents holding another cluster's state resync from a snapshot.
    InitCluster {
        cluster_id: Ulid,
    },
}

impl Op {
    /// The tenant a tenant operation is about.
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Op::CreateTenant { tenant, .. }
            | Op::UpdateTenant { tenant, .. }
            | Op::DeleteTenant { tenant }
            | Op::RollbackTenant { tenant, .. }
            | Op::StageCanary { tenant, .. }
            | Op::PromoteCanary { tenant }
            | Op::PinTenant { tenant, .. }
            | Op::FenceTenant { tenant, .. }
            | Op::FailoverTenant { tenant, .. }
            | Op::AbortCanary { tenant }
            | Op::MoveTenant { tenant, .. } => Some(tenant),
            Op::InitCluster { .. } | Op::SetRegionStatus { .. } | Op::AddShard { .. } | Op::DrainShard { .. } => None,
        }
    }
}

/// The steps of a move between shards, in order (abort: any time before
/// the flip). See [`super::Move`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MoveOp {
    /// Locks the tenant's writes for a copy of its rows to `to_shard`.
    Begin { to_shard: String },
    /// Records what the copy found on both sides; they must be equal.
    Verify { source: super::ShardDigest, target: super::ShardDigest },
    /// Routes the tenant to the new shard; the epoch grows.
    Flip,
    /// Lifts the lock after the flip.
    Unlock,
    /// Calls the move off before the flip.
    Abort,
}

/// One write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub meta: WriteMeta,
    pub op: Op,
    /// For a write that sets documents (create, update, rollback, canary
    /// stage): what the leader compiled before proposing it ([`crate::resolve`]),
    /// so that apply only checks what depends on state. `None` in what a
    /// client asks, and in entries of builds before Raft format 3, which
    /// apply compiles as those builds did.
    #[serde(default)]
    pub compiled: Option<Arc<Compiled>>,
    /// The W3C trace context of the proposal, if it was traced: each
    /// node's apply of it is a span of that trace. Changes nothing applied.
    #[serde(default)]
    pub trace: Option<String>,
}

impl Command {
    /// A write as a client asks for it (nothing compiled yet).
    pub fn new(meta: WriteMeta, op: Op) -> Self {
        Self { meta, op, compiled: None, trace: None }
    }
}

/// A tenant's new documents, validated and compiled by the leader against
/// the tenant as it was at `based_on`. The patch of an update or canary
/// stage is folded in: a compiled command carries an empty patch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compiled {
    /// The mod_revision of the tenant it was judged against (0: no live
    /// tenant). Apply refuses it if the tenant changed since (as
    /// [`CommandError::Stale`]: the leader never lets that happen).
    pub based_on: u64,
    /// The whole documents the write leaves (a canary stage: the candidate's).
    pub documents: Arc<super::TenantDocuments>,
    pub public_bundle: Bundle,
    /// The private bundle's hash (its bytes are the documents).
    pub private_sha256: String,
    /// A create's initial placement (the config's request, else the
    /// proposer's region); `None` for the other writes.
    pub placement: Option<super::Placement>,
}

/// The application payload of a Raft entry: the commands that concurrent
/// writers proposed together (group commit: one log append, one fsync and
/// one replication round for all of them). They share the entry's
/// revision and apply in order; each has its own response, audit entry and
/// session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub commands: Vec<Command>,
}

impl Proposal {
    pub fn single(command: Command) -> Self {
        Self { commands: vec![command] }
    }

    /// About how many bytes the commands hold (documents dominate): for
    /// cache accounting and the snapshot trigger, not an encoded size.
    pub fn approximate_bytes(&self) -> usize {
        self.commands.iter().map(Command::approximate_bytes).sum()
    }
}

impl Command {
    /// About how many bytes the command holds (see [`Proposal::approximate_bytes`]).
    pub fn approximate_bytes(&self) -> usize {
        let text = |text: &Option<String>| text.as_ref().map_or(0, String::len);
        let patch = match &self.op {
            Op::CreateTenant { documents, .. }
            | Op::UpdateTenant { documents, .. }
            | Op::StageCanary { documents, .. } => {
                text(&documents.config) + text(&documents.theme) + text(&documents.integrations)
            }
            _ => 0,
        };
        let compiled = self.compiled.as_ref().map_or(0, |compiled| {
            let documents = &compiled.documents;
            documents.config.len()
                + documents.theme.len()
                + documents.integrations.len()
                + compiled.public_bundle.json.len()
        });
        patch + compiled + 256
    }
}

/// How openraft logs an entry's payload: the count, not the documents.
impl std::fmt::Display for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} command(s)", self.commands.len())
    }
}

/// A write that applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteOutcome {
    pub revision: Revision,
    /// The tenant as the write left it. On a replay, the tenant as it is now
    /// if no later write changed it, else `None`.
    pub tenant: Option<Arc<Tenant>>,
    /// True when this is the stored first result of a retried request id.
    pub replayed: bool,
}

/// Why a command changed nothing. Deterministic: every replica computes the
/// same error for the same entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CommandError {
    #[error("{field}: {message}")]
    Invalid { field: String, rule_id: String, message: String },
    #[error("tenant `{tenant}` does not exist")]
    NotFound { tenant: TenantId },
    #[error("tenant `{tenant}` already exists (mod_revision {revision}); use `tenant set` to change it")]
    AlreadyExists { tenant: TenantId, revision: Revision },
    #[error("tenant `{tenant}`: expected revision {expected} but it is at {current}; read it again and retry")]
    RevisionMismatch { tenant: TenantId, expected: u64, current: u64 },
    #[error("tenant `{tenant}` has no staged canary; stage one with `regctl canary stage`")]
    NoCanary { tenant: TenantId },
    /// The tenant changed between the leader's judgement and apply (a new
    /// leader applying an old one's entry). Not remembered for the request
    /// id: a retry is judged again.
    #[error("tenant `{tenant}` changed (revision {current}) after the leader judged this write at revision {judged}; retry it")]
    Stale { tenant: TenantId, judged: u64, current: u64 },
}

impl CommandError {
    pub fn invalid(field: impl Into<String>, rule_id: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), rule_id: rule_id.into(), message: message.into() }
    }
}

/// The response of applying one Raft entry (openraft's `C::R`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Blank and membership entries answer nothing.
    None,
    Written(WriteOutcome),
    Rejected(CommandError),
}
