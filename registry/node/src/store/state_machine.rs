//! The state machine store: the applied state, in memory only.
//!
//! Reads are served from memory ([`StateView`]). Durability is the Raft log
//! plus the last snapshot file: at start the store loads the snapshot, and
//! openraft re-applies the committed entries after it (it keeps every entry
//! after the last snapshot), so nothing applied is written twice.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend};
use proto::Revision;
use registry_core::{apply, Change, Response, Tenant};
use tokio::fs::File;

use super::snapshot::{self, AppliedState};
use crate::raft_types::{
    storage_error, Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::watch::{DeltaFrames, WatchHub, WatchLimits};

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
    snapshot_dir: PathBuf,
    /// Where a snapshot being received from the leader is written.
    receiving: Option<PathBuf>,
}

fn snapshot_error<E: std::error::Error + 'static>(verb: ErrorVerb, error: &E) -> StorageError {
    storage_error(ErrorSubject::Snapshot(None), verb, error)
}

fn to_io(error: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::other(error)
}

impl StateMachineStore {
    /// Opens the state machine under `dir`: the last snapshot in
    /// `dir/snapshots`, or an empty state.
    ///
    /// A data directory of the previous format also holds `dir/sm`, a sled
    /// mirror of the applied state. It was derived data (the snapshot and
    /// the log after it always held everything), so it is removed once.
    pub fn open(dir: &Path, watch_limits: WatchLimits) -> io::Result<Self> {
        let snapshot_dir = dir.join("snapshots");
        snapshot::prepare_dir(&snapshot_dir)?;
        let legacy_mirror = dir.join("sm");
        if legacy_mirror.exists() {
            std::fs::remove_dir_all(&legacy_mirror)?;
            tracing::info!(path = %legacy_mirror.display(), "removed the sled mirror of the previous data format; the state is rebuilt from the snapshot and the log");
        }
        let applied = match snapshot::current(&snapshot_dir)? {
            Some(path) => {
                snapshot::read(std::fs::File::open(&path)?)
                    .map_err(|error| io::Error::new(error.kind(), format!("{}: {error}", path.display())))?
                    .1
            }
            None => AppliedState::default(),
        };
        let hub = WatchHub::new(applied.last_applied.map_or(0, |log_id| log_id.index), watch_limits);
        Ok(Self { shared: Arc::new(SharedState(RwLock::new(applied))), hub, snapshot_dir, receiving: None })
    }

    /// A read handle on the applied state.
    pub fn view(&self) -> StateView {
        self.shared.clone()
    }

    /// The hub that pushes every applied entry to the agents.
    pub fn hub(&self) -> Arc<WatchHub> {
        self.hub.clone()
    }

    /// Makes `applied` (a verified snapshot from the leader) this node's
    /// state: first a durable snapshot file, then memory.
    async fn install(&mut self, received: Option<PathBuf>, applied: AppliedState) -> io::Result<()> {
        let snapshot_dir = self.snapshot_dir.clone();
        let applied = tokio::task::spawn_blocking(move || -> io::Result<AppliedState> {
            // Written anew rather than renamed: openraft may hand over any
            // file, not necessarily the one begin_receiving_snapshot made.
            snapshot::save(&snapshot_dir, &applied)?;
            if let Some(received) = received {
                let _ = std::fs::remove_file(received);
            }
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
        }
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
