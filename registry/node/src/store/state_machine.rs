//! The state machine store: the applied state in memory, mirrored in sled.
//!
//! Reads are served from memory ([`StateView`]). Every apply batch writes its
//! changes and `last_applied` to sled in one atomic batch, so sled always
//! holds a consistent prefix of the log. sled is not synced (sled 0.34's
//! flush is `sync_file_range`, sled#1452), and it does not need to be: after
//! a crash openraft re-applies the log from sled's `last_applied`, and if
//! sled is behind the last snapshot, damaged or missing, [`StateMachineStore::open`]
//! rebuilds it from the snapshot.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend};
use proto::Revision;
use registry_core::{apply, Change, Position, Response, Tenant};
use tokio::fs::File;

use super::snapshot::{self, AppliedState};
use crate::raft_types::{
    storage_error, Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::watch::{DeltaFrames, WatchHub, WatchLimits};

const KEY_LAST_APPLIED: &[u8] = b"m/last_applied";
const KEY_MEMBERSHIP: &[u8] = b"m/membership";
const KEY_CLUSTER_ID: &[u8] = b"m/cluster_id";
const KEY_TOPOLOGY: &[u8] = b"m/topology";
const PREFIX_TENANT: &str = "t/";
const PREFIX_AUDIT: &str = "a/";
const PREFIX_SESSION: &str = "s/";

/// The applied state shared between the Raft apply path (the only writer)
/// and the request handlers (readers).
#[derive(Debug, Default)]
pub struct SharedState(RwLock<AppliedState>);

/// A read handle on the applied state.
pub type StateView = Arc<SharedState>;

impl SharedState {
    /// Read access. A poisoned lock means apply panicked halfway: serving
    /// that state could be wrong, so stop.
    pub fn read(&self) -> RwLockReadGuard<'_, AppliedState> {
        match self.0.read() {
            Ok(guard) => guard,
            Err(_) => panic!("state machine lock poisoned by a panic in apply; stopping"),
        }
    }

    fn write(&self) -> RwLockWriteGuard<'_, AppliedState> {
        match self.0.write() {
            Ok(guard) => guard,
            Err(_) => panic!("state machine lock poisoned by a panic in apply; stopping"),
        }
    }

    /// The revision (log index) applied so far.
    pub fn applied_revision(&self) -> Revision {
        Revision(self.read().last_applied.map_or(0, |log_id| log_id.index))
    }
}

/// openraft's state machine: applies committed entries, builds and installs
/// snapshots.
pub struct StateMachineStore {
    shared: StateView,
    hub: Arc<WatchHub>,
    db: sled::Db,
    snapshot_dir: PathBuf,
    /// Where a snapshot being received from the leader is written.
    receiving: Option<PathBuf>,
}

fn sm_error<E: std::error::Error + 'static>(verb: ErrorVerb, error: &E) -> StorageError {
    storage_error(ErrorSubject::StateMachine, verb, error)
}

fn snapshot_error<E: std::error::Error + 'static>(verb: ErrorVerb, error: &E) -> StorageError {
    storage_error(ErrorSubject::Snapshot(None), verb, error)
}

fn to_io(error: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::other(error)
}

fn json<T: serde::Serialize>(value: &T) -> io::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(to_io)
}

fn audit_key((revision, seq): Position) -> String {
    format!("{PREFIX_AUDIT}{:020}/{seq:05}", revision.get())
}

/// Adds `changes` to a sled batch.
fn mirror(batch: &mut sled::Batch, changes: &[Change]) -> io::Result<()> {
    for change in changes {
        match change {
            Change::PutTenant(tenant) => {
                batch.insert(format!("{PREFIX_TENANT}{}", tenant.id).as_bytes(), json(tenant)?)
            }
            Change::PutAudit(entry) => batch.insert(audit_key(entry.position()).as_bytes(), json(entry)?),
            Change::RemoveAudit(position) => batch.remove(audit_key(*position).as_bytes()),
            Change::PutSession(session) => {
                batch.insert(format!("{PREFIX_SESSION}{}", session.request_id).as_bytes(), json(session)?)
            }
            Change::RemoveSession(request_id) => batch.remove(format!("{PREFIX_SESSION}{request_id}").as_bytes()),
            Change::SetClusterId(cluster_id) => batch.insert(KEY_CLUSTER_ID, json(cluster_id)?),
            Change::SetTopology(topology) => batch.insert(KEY_TOPOLOGY, json(topology)?),
        }
    }
    Ok(())
}

fn add_meta(batch: &mut sled::Batch, applied: &AppliedState) -> io::Result<()> {
    batch.insert(KEY_LAST_APPLIED, json(&applied.last_applied)?);
    batch.insert(KEY_MEMBERSHIP, json(&applied.membership)?);
    Ok(())
}

/// Loads the whole applied state from sled.
fn load(db: &sled::Db) -> io::Result<AppliedState> {
    let mut applied = AppliedState::default();
    for item in db.iter() {
        let (key, value) = item.map_err(to_io)?;
        let key = std::str::from_utf8(&key).map_err(to_io)?;
        let decode_error =
            |error: serde_json::Error| io::Error::new(io::ErrorKind::InvalidData, format!("{key}: {error}"));
        if key.as_bytes() == KEY_LAST_APPLIED {
            applied.last_applied = serde_json::from_slice(&value).map_err(decode_error)?;
        } else if key.as_bytes() == KEY_MEMBERSHIP {
            applied.membership = serde_json::from_slice(&value).map_err(decode_error)?;
        } else if key.as_bytes() == KEY_CLUSTER_ID {
            applied.state.cluster_id = serde_json::from_slice(&value).map_err(decode_error)?;
        } else if key.as_bytes() == KEY_TOPOLOGY {
            applied.state.topology = serde_json::from_slice(&value).map_err(decode_error)?;
        } else if key.starts_with(PREFIX_TENANT) {
            let tenant: Arc<registry_core::Tenant> = serde_json::from_slice(&value).map_err(decode_error)?;
            applied.state.tenants.insert(tenant.id.clone(), tenant);
        } else if key.starts_with(PREFIX_AUDIT) {
            let entry: Arc<registry_core::AuditEntry> = serde_json::from_slice(&value).map_err(decode_error)?;
            applied.state.audit.insert(entry.position(), entry);
        } else if key.starts_with(PREFIX_SESSION) {
            applied.state.insert_session(serde_json::from_slice(&value).map_err(decode_error)?);
        } else {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("unknown key {key}")));
        }
    }
    applied.state.validate().map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
    Ok(applied)
}

/// Replaces everything in sled with `applied`. The meta keys go first, so a
/// crash halfway leaves sled without `last_applied`, which the next open
/// treats as "behind the snapshot" and rebuilds.
fn rewrite(db: &sled::Db, applied: &AppliedState) -> io::Result<()> {
    db.remove(KEY_LAST_APPLIED).map_err(to_io)?;
    db.clear().map_err(to_io)?;
    let mut batch = sled::Batch::default();
    let state = &applied.state;
    let changes = state
        .tenants
        .values()
        .map(|tenant| Change::PutTenant(tenant.clone()))
        .chain(state.audit.values().map(|entry| Change::PutAudit(entry.clone())))
        .chain(state.sessions.values().map(|session| Change::PutSession(session.clone())))
        .chain(state.cluster_id.map(Change::SetClusterId))
        .chain(std::iter::once(Change::SetTopology(state.topology.clone())))
        .collect::<Vec<_>>();
    mirror(&mut batch, &changes)?;
    add_meta(&mut batch, applied)?;
    db.apply_batch(batch).map_err(to_io)?;
    db.flush().map_err(to_io)?;
    Ok(())
}

impl StateMachineStore {
    /// Opens the state machine under `dir` (`dir/sm` for sled,
    /// `dir/snapshots` for snapshot files), rebuilding sled from the last
    /// snapshot when it is damaged, missing or behind it.
    pub fn open(dir: &Path, watch_limits: WatchLimits) -> io::Result<Self> {
        let snapshot_dir = dir.join("snapshots");
        snapshot::prepare_dir(&snapshot_dir)?;
        let snapshot_path = snapshot::current(&snapshot_dir)?;
        let snapshot_index = match &snapshot_path {
            Some(path) => snapshot::read_meta(path)?.last_log_id.map_or(0, |log_id| log_id.index),
            None => 0,
        };

        let sled_dir = dir.join("sm");
        let open = |dir: &Path| {
            // The state lives in memory; sled is its restart copy, so its page cache stays small.
            sled::Config::new()
                .path(dir)
                .cache_capacity(crate::limits::SLED_CACHE_BYTES_MAX as u64)
                .open()
                .map_err(to_io)
        };
        let opened = open(&sled_dir).and_then(|db| load(&db).map(|applied| (db, applied)));
        let (db, loaded) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                // Derived data: keep the damaged copy for a post-mortem and start over.
                let aside = dir.join(format!("sm.damaged-{}", ulid::Ulid::new()));
                tracing::error!(%error, aside = %aside.display(), "state machine store is damaged; rebuilding it from the snapshot and the log");
                if sled_dir.exists() {
                    std::fs::rename(&sled_dir, &aside)?;
                }
                (open(&sled_dir)?, AppliedState::default())
            }
        };

        let loaded_index = loaded.last_applied.map_or(0, |log_id| log_id.index);
        let applied = match snapshot_path {
            Some(path) if loaded_index < snapshot_index || loaded.last_applied.is_none() => {
                tracing::warn!(
                    loaded_index,
                    snapshot_index,
                    "state machine store is behind the snapshot; rebuilding from it"
                );
                let (_, applied) = snapshot::read(std::fs::File::open(path)?)?;
                rewrite(&db, &applied)?;
                applied
            }
            _ => loaded,
        };
        let hub = WatchHub::new(applied.last_applied.map_or(0, |log_id| log_id.index), watch_limits);
        Ok(Self { shared: Arc::new(SharedState(RwLock::new(applied))), hub, db, snapshot_dir, receiving: None })
    }

    /// A read handle on the applied state.
    pub fn view(&self) -> StateView {
        self.shared.clone()
    }

    /// The hub that pushes every applied entry to the agents.
    pub fn hub(&self) -> Arc<WatchHub> {
        self.hub.clone()
    }

    /// A handle on sled, to flush it at shutdown (not needed for
    /// correctness, only for a quicker start).
    pub fn sled_handle(&self) -> sled::Db {
        self.db.clone()
    }

    /// Makes `applied` (a verified snapshot from the leader) this node's
    /// state: first a durable snapshot file, then sled, then memory.
    async fn install(&mut self, received: Option<PathBuf>, applied: AppliedState) -> io::Result<()> {
        let db = self.db.clone();
        let snapshot_dir = self.snapshot_dir.clone();
        let applied = tokio::task::spawn_blocking(move || -> io::Result<AppliedState> {
            // Written anew rather than renamed: openraft may hand over any
            // file, not necessarily the one begin_receiving_snapshot made.
            snapshot::save(&snapshot_dir, &applied)?;
            if let Some(received) = received {
                let _ = std::fs::remove_file(received);
            }
            rewrite(&db, &applied)?;
            Ok(applied)
        })
        .await
        .map_err(to_io)??;
        let revision = applied.last_applied.map_or(0, |log_id| log_id.index);
        *self.shared.write() = applied;
        self.hub.reset(revision);
        Ok(())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let applied = self.shared.read();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<Response>>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        let mut responses = Vec::new();
        // The tenants each entry changed, for the agents' deltas.
        let mut changed: Vec<(u64, Vec<Arc<Tenant>>)> = Vec::new();
        {
            let mut applied = self.shared.write();
            for entry in entries {
                let revision = Revision(entry.log_id.index);
                assert!(
                    applied.last_applied.is_none_or(|last| last.index < entry.log_id.index),
                    "apply went backwards: {:?} after {:?}",
                    entry.log_id,
                    applied.last_applied
                );
                applied.last_applied = Some(entry.log_id);
                let mut tenants = Vec::new();
                let response = match entry.payload {
                    EntryPayload::Blank => Vec::new(),
                    EntryPayload::Normal(proposal) => {
                        let mut responses = Vec::with_capacity(proposal.commands.len());
                        for (seq, command) in proposal.commands.iter().enumerate() {
                            let (response, changes) = apply(&mut applied.state, revision, seq as u32, command);
                            mirror(&mut batch, &changes).map_err(|error| sm_error(ErrorVerb::Write, &error))?;
                            tenants.extend(changes.into_iter().filter_map(|change| match change {
                                Change::PutTenant(tenant) => Some(tenant),
                                _ => None,
                            }));
                            responses.push(response);
                        }
                        responses
                    }
                    EntryPayload::Membership(membership) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                        Vec::new()
                    }
                };
                responses.push(response);
                changed.push((revision.get(), tenants));
            }
            add_meta(&mut batch, &applied).map_err(|error| sm_error(ErrorVerb::Write, &error))?;
        }
        self.db.apply_batch(batch).map_err(|error| sm_error(ErrorVerb::Write, &error))?;
        // Encoded outside the state lock; one delta per entry, even when it
        // changed no tenant, so an agent can tell a gap from a quiet entry.
        self.hub.publish(changed.iter().map(|(revision, tenants)| DeltaFrames::new(*revision, tenants)).collect());
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder { applied: self.shared.read().clone(), snapshot_dir: self.snapshot_dir.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<File>, StorageError> {
        let path = self.snapshot_dir.join(format!("{}.tmp", ulid::Ulid::new()));
        // Read and write: install_snapshot reads back what openraft wrote.
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|error| snapshot_error(ErrorVerb::Write, &error))?;
        self.receiving = Some(path);
        Ok(Box::new(file))
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Box<File>) -> Result<(), StorageError> {
        let read_error = |error: &io::Error| snapshot_error(ErrorVerb::Read, error);
        let received = self.receiving.take();
        let mut file = snapshot.into_std().await;
        let (header, applied) = tokio::task::spawn_blocking(move || {
            use std::io::Seek;
            file.sync_all()?;
            file.rewind()?;
            snapshot::read(file)
        })
        .await
        .map_err(|error| read_error(&to_io(error)))?
        .map_err(|error| read_error(&error))?;
        if header.last_log_id != meta.last_log_id {
            let error = io::Error::new(
                io::ErrorKind::InvalidData,
                format!("snapshot file is at {:?} but the leader said {:?}", header.last_log_id, meta.last_log_id),
            );
            return Err(read_error(&error));
        }
        self.install(received, applied).await.map_err(|error| snapshot_error(ErrorVerb::Write, &error))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let read_error = |error: &io::Error| snapshot_error(ErrorVerb::Read, error);
        let Some(path) = snapshot::current(&self.snapshot_dir).map_err(|error| read_error(&error))? else {
            return Ok(None);
        };
        let meta = snapshot::read_meta(&path).map_err(|error| read_error(&error))?;
        let file = File::open(&path).await.map_err(|error| read_error(&error))?;
        Ok(Some(Snapshot { meta, snapshot: Box::new(file) }))
    }
}

/// Builds a snapshot from a copy of the applied state taken between two
/// applies, so apply goes on while the file is written.
pub struct SnapshotBuilder {
    applied: AppliedState,
    snapshot_dir: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let applied = std::mem::take(&mut self.applied);
        let dir = self.snapshot_dir.clone();
        let meta = snapshot::meta_of(&applied);
        let write_error = |error: &io::Error| snapshot_error(ErrorVerb::Write, error);
        let path = tokio::task::spawn_blocking(move || snapshot::save(&dir, &applied))
            .await
            .map_err(|error| write_error(&to_io(error)))?
            .map_err(|error| write_error(&error))?;
        let file = File::open(&path).await.map_err(|error| write_error(&error))?;
        tracing::info!(path = %path.display(), last_log_id = ?meta.last_log_id, "snapshot built");
        Ok(Snapshot { meta, snapshot: Box::new(file) })
    }
}
