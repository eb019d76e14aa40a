//! The replicated state: tenants, the audit log and client sessions.

use std::collections::BTreeMap;
use std::sync::Arc;

use proto::{Region, Revision, TenantId};
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use compiler::Bundle;

use super::CommandError;

/// Lifecycle of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Active,
    Suspended,
    LockedForMove,
    /// Tombstone: the record stays, compacted ([`Tenant::tombstone`]), so
    /// that history stays explainable.
    Deleted,
}

/// Where a tenant lives. Defaults until the regions work assigns placements.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The only region that accepts the tenant's writes; `None` until assigned.
    pub home_region: Option<Region>,
    /// Data residency: empty means "no restriction".
    pub allowed_regions: Vec<Region>,
    pub dr_region: Option<Region>,
    /// Fencing token, +1 at every change of home region.
    pub epoch: u64,
    /// Set while a failover to this region is under way: no region accepts
    /// the tenant's writes until it commits (or is called off).
    #[serde(default)]
    pub failing_over_to: Option<Region>,
}

/// A tenant's documents, each canonical JSON text of an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantDocuments {
    pub config: String,
    pub theme: String,
    pub integrations: String,
}

impl Default for TenantDocuments {
    fn default() -> Self {
        Self { config: "{}".to_owned(), theme: "{}".to_owned(), integrations: "{}".to_owned() }
    }
}

/// How a region is doing, as operators declare it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionStatus {
    Healthy,
    Degraded,
    Evacuated,
}

/// Whether a shard takes new tenants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardState {
    Active,
    /// Keeps its tenants, takes no new ones.
    Draining,
}

/// A data shard: a store in one region that holds some tenants' rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub id: String,
    pub region: Region,
    pub endpoint: String,
    pub state: ShardState,
    /// A read replica of the database, if any. Not part of this struct's
    /// serde form, whose binary encoding in snapshot files predates it: the
    /// snapshot writes replicas as a record of their own.
    #[serde(skip)]
    pub replica: Option<String>,
}

/// The cluster's regions and shards (small; stored whole).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub regions: BTreeMap<Region, RegionStatus>,
    pub shards: BTreeMap<String, Shard>,
}

/// One tenant as the registry stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    /// Never reused: a tenant created again after a delete gets a new uid.
    pub uid: Ulid,
    pub status: TenantStatus,
    /// The live documents; shared with the audit entries that restore them.
    pub documents: Arc<TenantDocuments>,
    pub public_bundle: Bundle,
    /// The private bundle's hash: its bytes are the documents, rebuilt
    /// when sent ([`Tenant::private_bundle`]), so they are held once.
    #[serde(rename = "private_bundle", with = "bundle_hash")]
    pub private_sha256: String,
    pub placement: Placement,
    pub create_revision: Revision,
    /// The record's last change (compare-and-set compares it).
    pub mod_revision: Revision,
    /// The tenant's configVersion: the revision that made the live documents.
    pub config_revision: Revision,
    /// A staged candidate, served only to requests that opt in.
    pub canary: Option<Arc<Canary>>,
    /// The routing map's entry: the shard that holds the tenant's rows
    /// (`None`: its home region's default shard).
    #[serde(default)]
    pub shard: Option<String>,
    /// A move of the tenant's rows to another shard, while under way.
    #[serde(default)]
    pub moving: Option<Arc<Move>>,
}

/// How far a move between shards has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveStep {
    /// Writes are locked; the rows are to be copied.
    Copying,
    /// Both sides' digests are recorded and equal.
    Verified,
    /// The routing map names the new shard; only the lock is left.
    Flipped,
}

impl MoveStep {
    pub fn name(self) -> &'static str {
        match self {
            MoveStep::Copying => "copying",
            MoveStep::Verified => "verified",
            MoveStep::Flipped => "flipped",
        }
    }
}

/// A tenant's rows on one shard: how many, and a SHA-256 over them in key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardDigest {
    pub rows: u64,
    pub sha256: String,
}

/// A move of a tenant's rows between two shards of its home region.
///
/// Epochs: the tenant writes at `E`; the copy writes at `copy_epoch = E + 1`,
/// which fences the old shard against writers still at `E`; flip and abort
/// set the tenant's epoch to `E + 2`, which fences out any copy that arrives
/// late. So a copy can never overwrite rows written after the move ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// `None`: the home region's default shard.
    pub from_shard: Option<String>,
    pub to_shard: String,
    pub copy_epoch: u64,
    pub step: MoveStep,
    pub began_revision: Revision,
    /// What the copy found on the old and the new shard (set by verify).
    pub source: Option<ShardDigest>,
    pub target: Option<ShardDigest>,
}

/// A candidate version of a tenant's documents, staged beside the live one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canary {
    /// The revision that staged it: its configVersion.
    pub revision: Revision,
    pub documents: Arc<TenantDocuments>,
    pub public_bundle: Bundle,
    #[serde(rename = "private_bundle", with = "bundle_hash")]
    pub private_sha256: String,
}

impl Tenant {
    pub fn is_live(&self) -> bool {
        self.status != TenantStatus::Deleted
    }

    /// What stays of this tenant once deleted at `revision`: who it was,
    /// where it lived and its revisions; none of its documents or bundles
    /// (its audit entries keep the documents each change left), so a
    /// tombstone costs a few hundred bytes whatever the tenant held.
    pub fn tombstone(&self, revision: Revision) -> Tenant {
        let nothing = TenantDocuments { config: String::new(), theme: String::new(), integrations: String::new() };
        Tenant {
            id: self.id.clone(),
            uid: self.uid,
            status: TenantStatus::Deleted,
            documents: Arc::new(nothing),
            public_bundle: Bundle { json: String::new(), sha256: String::new() },
            private_sha256: String::new(),
            placement: self.placement.clone(),
            create_revision: self.create_revision,
            mod_revision: revision,
            config_revision: self.config_revision,
            canary: None,
            shard: self.shard.clone(),
            moving: None,
        }
    }

    /// Whether this is a tombstone that still holds documents or bundles
    /// (written by builds that kept them).
    pub fn is_uncompacted_tombstone(&self) -> bool {
        !self.is_live()
            && (!self.public_bundle.json.is_empty() || self.canary.is_some() || !self.documents.config.is_empty())
    }

    /// The private bundle, rebuilt from the documents (a live tenant's).
    pub fn private_bundle(&self) -> Bundle {
        self.documents.private_bundle(&self.id, &self.private_sha256)
    }
}

impl Canary {
    /// The candidate's private bundle, rebuilt from its documents.
    pub fn private_bundle(&self, tenant: &TenantId) -> Bundle {
        self.documents.private_bundle(tenant, &self.private_sha256)
    }
}

impl TenantDocuments {
    /// The private bundle of these documents, whose hash is `sha256`.
    pub fn private_bundle(&self, tenant: &TenantId, sha256: &str) -> Bundle {
        let json = compiler::bundle::private_json(tenant.as_str(), &self.config, &self.integrations, &self.theme);
        Bundle { json, sha256: sha256.to_owned() }
    }
}

/// A held bundle in a snapshot: `{"sha256": …}` (snapshots of builds that
/// held the bytes too have a `json` member, ignored).
mod bundle_hash {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Held<T> {
        sha256: T,
    }

    pub(super) fn serialize<S: Serializer>(sha256: &str, serializer: S) -> Result<S::Ok, S::Error> {
        Held { sha256 }.serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
        Held::<String>::deserialize(deserializer).map(|held| held.sha256)
    }
}

/// Where a command sits in the log: the revision (log index) of its entry
/// and its place in that entry's batch of commands.
pub type Position = (Revision, u32);

/// One change in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub revision: Revision,
    /// Its place in the batch of its entry (0 for the first command).
    #[serde(default)]
    pub seq: u32,
    pub id: Ulid,
    pub tenant: TenantId,
    pub actor: String,
    pub reason: String,
    pub summary: String,
    pub at_unix_ms: u64,
    /// The tenant's live documents after this change, when it changed them
    /// (create, update, rollback, promote): what a rollback restores.
    pub documents: Option<Arc<TenantDocuments>>,
}

/// The remembered result of a write that carried a request id. Compact on
/// purpose (no documents): the table holds up to `SESSIONS_MAX` entries and
/// goes into every snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub request_id: String,
    /// The revision of the entry that carried the request id.
    pub revision: Revision,
    /// Its place in that entry's batch.
    #[serde(default)]
    pub seq: u32,
    pub at_unix_ms: u64,
    pub outcome: SessionOutcome,
}

impl Session {
    pub fn position(&self) -> Position {
        (self.revision, self.seq)
    }
}

impl AuditEntry {
    pub fn position(&self) -> Position {
        (self.revision, self.seq)
    }
}

/// What the first attempt of a request did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionOutcome {
    Written { tenant: TenantId },
    Rejected(CommandError),
}

/// The whole replicated state. Maps hold `Arc`s so that a snapshot is a cheap
/// clone taken between two applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub tenants: BTreeMap<TenantId, Arc<Tenant>>,
    pub audit: BTreeMap<Position, Arc<AuditEntry>>,
    pub sessions: BTreeMap<String, Arc<Session>>,
    /// Request ids by the position that recorded them: the eviction order.
    pub sessions_by_position: BTreeMap<Position, String>,
    /// Set once by the first leader; new after a restore from backup.
    pub cluster_id: Option<Ulid>,
    pub topology: Arc<Topology>,
}

impl State {
    /// Inserts a session and keeps the eviction index in step.
    pub fn insert_session(&mut self, session: Arc<Session>) {
        self.sessions_by_position.insert(session.position(), session.request_id.clone());
        if let Some(old) = self.sessions.insert(session.request_id.clone(), session) {
            self.sessions_by_position.remove(&old.position());
        }
    }

    /// Removes a session and its eviction index entry.
    pub fn remove_session(&mut self, request_id: &str) {
        if let Some(old) = self.sessions.remove(request_id) {
            self.sessions_by_position.remove(&old.position());
        }
    }

    /// Number of tenants that are not tombstoned.
    pub fn live_tenants(&self) -> usize {
        self.tenants.values().filter(|tenant| tenant.is_live()).count()
    }

    /// Checks the invariants that tie the maps together; used by tests and
    /// after loading a snapshot.
    pub fn validate(&self) -> Result<(), String> {
        if self.sessions.len() != self.sessions_by_position.len() {
            return Err(format!(
                "{} sessions but {} eviction entries",
                self.sessions.len(),
                self.sessions_by_position.len()
            ));
        }
        for (position, request_id) in &self.sessions_by_position {
            match self.sessions.get(request_id) {
                Some(session) if session.position() == *position => {}
                _ => return Err(format!("session index {position:?} -> {request_id} has no matching session")),
            }
        }
        for (position, entry) in &self.audit {
            if entry.position() != *position {
                return Err(format!("audit entry stored at {position:?} says {:?}", entry.position()));
            }
        }
        for (id, tenant) in &self.tenants {
            if &tenant.id != id {
                return Err(format!("tenant stored under {id} has id {}", tenant.id));
            }
            if tenant.create_revision > tenant.mod_revision || tenant.config_revision > tenant.mod_revision {
                return Err(format!("tenant {id}: create_revision or config_revision after mod_revision"));
            }
        }
        Ok(())
    }
}
