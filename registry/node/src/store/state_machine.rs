//! The state machine store: the applied state, in memory only.
//!
//! Reads are served from memory ([`StateView`]). Durability is the Raft log
//! plus the last snapshot file: at start the store loads the snapshot, and
//! openraft re-applies the committed entries after it (it keeps every entry
//! after the last snapshot), so nothing applied is written twice.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use proto::Revision;
use registry_core::{apply, Change, Tenant};
use tokio::fs::File;

use super::snapshot::{self, AppliedState};
use crate::raft_types::{Entry, LogId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig};
use crate::stages::{Stage, Stages};
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
    stages: Arc<Stages>,
    snapshot_dir: PathBuf,
    /// Bytes of commands applied since the last snapshot began; past
    /// [`SNAPSHOT_EVERY_BYTES`](crate::limits::SNAPSHOT_EVERY_BYTES), `snapshot_due` is notified.
    since_snapshot: u64,
    snapshot_due: Arc<tokio::sync::Notify>,
    /// `ID@REGION`, in the spans of traced applies.
    node: String,
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
                let started = std::time::Instant::now();
                let applied = snapshot::read(std::fs::File::open(&path)?)
                    .map_err(|error| io::Error::new(error.kind(), format!("{}: {error}", path.display())))?
                    .1;
                tracing::info!(
                    path = %path.display(),
                    last_log_id = ?applied.last_applied,
                    tenants = applied.state.tenants.len(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "snapshot loaded"
                );
                applied
            }
            None => AppliedState::default(),
        };
        let hub = WatchHub::new(applied.last_applied.map_or(0, |log_id| log_id.index), watch_limits);
        Ok(Self {
            shared: Arc::new(SharedState(RwLock::new(applied))),
            hub,
            stages: Arc::default(),
            snapshot_dir,
            since_snapshot: 0,
            snapshot_due: Arc::default(),
            node: String::new(),
        })
    }

    /// Notified when the commands applied since the last snapshot reach
    /// [`SNAPSHOT_EVERY_BYTES`](crate::limits::SNAPSHOT_EVERY_BYTES): the node then asks openraft for one.
    pub fn snapshot_due(&self) -> Arc<tokio::sync::Notify> {
        self.snapshot_due.clone()
    }

    /// Marks each applied entry in `stages`.
    pub fn timed(self, stages: Arc<Stages>) -> Self {
        Self { stages, ..self }
    }

    /// Names this node (`ID@REGION`) in the spans of traced applies.
    pub fn named(self, node: String) -> Self {
        Self { node, ..self }
    }

    /// A read handle on the applied state.
    pub fn view(&self) -> StateView {
        self.shared.clone()
    }

    /// Rebuilds the agents' history window after a restart from `entries`,
    /// the log up to the snapshot this store loaded (openraft keeps some
    /// entries before it): each entry's delta carries the snapshot's records
    /// of the tenants its commands name. Those records are at least as new
    /// as the entry and no newer than the snapshot, so an agent that replays
    /// them and then the deltas of the entries openraft re-applies after the
    /// snapshot ends where the registry is, each tenant only moving forward.
    /// Agents behind the restarted node then resume instead of taking a
    /// whole snapshot.
    pub fn seed_history(&self, entries: Vec<Entry>) {
        let deltas = {
            let applied = self.shared.read();
            entries
                .iter()
                .map(|entry| {
                    let mut named: Vec<Arc<Tenant>> = Vec::new();
                    if let EntryPayload::Normal(proposal) = &entry.payload {
                        for tenant in proposal.commands.iter().filter_map(|command| command.op.tenant()) {
                            let known = applied.state.tenants.get(tenant);
                            if let Some(record) = known.filter(|record| !named.iter().any(|seen| seen.id == record.id))
                            {
                                named.push(record.clone());
                            }
                        }
                    }
                    DeltaFrames::new(entry.log_id.index, &named, &applied.state.topology, Vec::new())
                })
                .collect()
        };
        self.hub.seed(deltas);
    }

    /// The hub that pushes every applied entry to the agents.
    pub fn hub(&self) -> Arc<WatchHub> {
        self.hub.clone()
    }

    /// Makes `applied` (a verified snapshot from the leader) this node's
    /// state: first a durable snapshot file, then memory.
    async fn install(&mut self, applied: AppliedState) -> io::Result<()> {
        let snapshot_dir = self.snapshot_dir.clone();
        let applied = tokio::task::spawn_blocking(move || -> io::Result<AppliedState> {
            // Written anew: the received file is the receiver's to remove.
            snapshot::save(&snapshot_dir, &applied)?;
            Ok(applied)
        })
        .await
        .map_err(to_io)??;
        let revision = applied.last_applied.map_or(0, |log_id| log_id.index);
        *self.shared.write() = applied;
        self.hub.reset(revision);
        Ok(())
    }

    /// Applies `ready` in order, answers each waiting writer, and hands the
    /// agents one delta per entry.
    fn apply_ready(&mut self, ready: Vec<EntryResponder<TypeConfig>>) {
        // The tenants each entry changed, for the agents' deltas.
        let mut changed: Vec<(u64, Vec<Arc<Tenant>>)> = Vec::with_capacity(ready.len());
        // Per entry, the `delta` spans of its traced commands: open until
        // the delta is published, and named in it for the agents.
        let mut traced: Vec<Vec<tracing::Span>> = Vec::with_capacity(ready.len());
        let mut answers = Vec::with_capacity(ready.len());
        // Shards are only ever added (an endpoint never changes), so the
        // topology after the batch names every shard its tenants name.
        let topology = {
            let mut applied = self.shared.write();
            for (entry, responder) in ready {
                let revision = Revision(entry.log_id.index);
                assert!(
                    applied.last_applied.is_none_or(|last| last.index < entry.log_id.index),
                    "apply went backwards: {:?} after {:?}",
                    entry.log_id,
                    applied.last_applied
                );
                applied.last_applied = Some(entry.log_id);
                let mut tenants = Vec::new();
                let mut responses = Vec::new();
                let mut deltas = Vec::new();
                match entry.payload {
                    EntryPayload::Blank => {}
                    EntryPayload::Normal(proposal) => {
                        self.since_snapshot += proposal.approximate_bytes() as u64;
                        responses.reserve(proposal.commands.len());
                        for (seq, command) in proposal.commands.iter().enumerate() {
                            let span = command.trace.as_deref().map(|traceparent| {
                                let span = tracing::info_span!(
                                    target: plumbing::trace::TARGET, "apply", otel.kind = "consumer",
                                    node = %self.node, revision = revision.get(),
                                    tenant = command.op.tenant().map(|tenant| tenant.as_str()),
                                );
                                plumbing::trace::follow(&span, traceparent);
                                span
                            });
                            let entered = span.as_ref().map(tracing::Span::enter);
                            let (response, changes) = apply(&mut applied.state, revision, seq as u32, command);
                            if entered.is_some() {
                                deltas.push(tracing::info_span!(
                                    target: plumbing::trace::TARGET, "delta", otel.kind = "producer",
                                    node = %self.node, revision = revision.get(),
                                ));
                            }
                            drop(entered);
                            tenants.extend(changes.into_iter().filter_map(|change| match change {
                                Change::PutTenant(tenant) => Some(tenant),
                                _ => None,
                            }));
                            responses.push(response);
                        }
                    }
                    EntryPayload::Membership(membership) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                    }
                }
                if let Some(responder) = responder {
                    answers.push((responder, responses));
                }
                changed.push((revision.get(), tenants));
                traced.push(deltas);
            }
            applied.state.topology.clone()
        };
        if let Some((revision, _)) = changed.last() {
            self.stages.mark(Stage::Applied, *revision);
        }
        // Asked after every apply until a snapshot begins (which resets the
        // count): openraft ignores a request made while one is being built,
        // and a request lost so would let the log behind the snapshot grow
        // by another `SNAPSHOT_EVERY_BYTES`.
        if self.since_snapshot >= crate::limits::SNAPSHOT_EVERY_BYTES {
            self.snapshot_due.notify_one();
        }
        // Encoded outside the state lock; one delta per entry, even when it
        // changed no tenant, so an agent can tell a gap from a quiet entry.
        // Published before the writers hear back, so a write's delta is on
        // its way when its reply arrives.
        self.hub.publish(
            changed
                .iter()
                .zip(&traced)
                .map(|((revision, tenants), spans)| {
                    let traces = spans.iter().filter_map(plumbing::trace::traceparent).collect();
                    DeltaFrames::new(*revision, tenants, &topology, traces)
                })
                .collect(),
        );
        drop(traced);
        for (responder, responses) in answers {
            responder.send(responses);
        }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let applied = self.shared.read();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        // Everything openraft has ready is applied under one lock and then
        // published; responders are answered after the state is updated.
        let mut ready = Vec::new();
        while let Some(item) = entries.try_next().await? {
            ready.push(item);
            while let Some(Some(item)) = entries.next().now_or_never() {
                ready.push(item?);
            }
            self.apply_ready(std::mem::take(&mut ready));
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        self.since_snapshot = 0;
        SnapshotBuilder { applied: self.shared.read().clone(), snapshot_dir: self.snapshot_dir.clone() }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotData) -> io::Result<()> {
        let mut file = snapshot.into_std().await;
        let (header, applied) = tokio::task::spawn_blocking(move || {
            use std::io::Seek;
            file.rewind()?;
            snapshot::read(file)
        })
        .await
        .map_err(to_io)??;
        if header.last_log_id != meta.last_log_id {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("snapshot file is at {:?} but the leader said {:?}", header.last_log_id, meta.last_log_id),
            ));
        }
        self.install(applied).await
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        let Some(path) = snapshot::current(&self.snapshot_dir)? else {
            return Ok(None);
        };
        let meta = snapshot::read_meta(&path)?;
        let file = File::open(&path).await?;
        Ok(Some(Snapshot { meta, snapshot: file }))
    }
}

/// Builds a snapshot from a copy of the applied state taken between two
/// applies, so apply goes on while the file is written.
pub struct SnapshotBuilder {
    applied: AppliedState,
    snapshot_dir: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let applied = std::mem::take(&mut self.applied);
        let dir = self.snapshot_dir.clone();
        let meta = snapshot::meta_of(&applied);
        let path = tokio::task::spawn_blocking(move || snapshot::save(&dir, &applied)).await.map_err(to_io)??;
        let file = File::open(&path).await?;
        tracing::info!(path = %path.display(), last_log_id = ?meta.last_log_id, "snapshot built");
        Ok(Snapshot { meta, snapshot: file })
    }
}
