//! [`Agent`]: follows the registry over the `AgentSync` stream and keeps the
//! view every lookup reads.
//!
//! It connects to its own region's node first and fails over to the others
//! with backoff and jitter, always resuming from its own revision. Each delta
//! must follow the view (else the stream is dropped and resumed), each record
//! is validated (refusals become NACKs), each result is persisted and then
//! acknowledged.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use proto::v1::agent_sync_client::AgentSyncClient;
use proto::v1::{self, agent_message, registry_message::Kind as Message};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::error::Error;
use crate::host::tenant_label;
use crate::limits::{
    CONNECT_TIMEOUT_MS, HOST_BYTES_MAX, NACK_QUEUE_MAX, OPEN_TIMEOUT_MS, SNAPSHOT_TENANTS_MAX, STREAM_SILENCE_MS_MAX,
};
use crate::reconnect::Reconnect;
use crate::store::DiskStore;
use crate::view::{Kind, Refusal, Rules, TenantEntry, View};

/// How an agent is set up.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Stable id, e.g. `api-7f3c@eu-west` (1-128 printable ASCII).
    pub agent_id: String,
    pub region: String,
    pub kind: Kind,
    /// Registry gRPC endpoints, this region's node first.
    pub endpoints: Vec<String>,
    /// Where the last-known-good copy lives; `None` keeps nothing on disk.
    pub data_dir: Option<PathBuf>,
    /// Domains under which `{tenant}.{domain}` hosts resolve.
    pub base_domains: Vec<String>,
    /// Largest bundle accepted; bigger ones are refused.
    pub bundle_bytes_max: usize,
    /// The cluster to follow: a registry naming another is refused (its
    /// snapshot is not installed; the agent keeps its copy and tries the
    /// next endpoint). `None` follows whichever cluster the registry names,
    /// so agents move to a cluster restored from a backup by themselves.
    pub cluster_id: Option<String>,
    /// Mutual TLS with an agent certificate naming this agent's id, kind
    /// and region; `None` only against an `--insecure` registry.
    pub tls: Option<Arc<trust::Tls>>,
}

impl AgentConfig {
    /// The identity this agent's certificate must carry.
    pub fn identity(&self) -> Result<trust::Identity, Error> {
        let region = proto::Region::parse(&self.region).map_err(|error| Error::Config(error.to_string()))?;
        Ok(trust::Identity::Agent { id: self.agent_id.clone(), kind: self.kind.certified(), region })
    }
}

/// What an applied step was, for watchers (tests, the materializer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Delta { revision: u64 },
    Snapshot { revision: u64 },
}

/// Counters, for metrics and tests.
#[derive(Debug, Default)]
pub struct Stats {
    pub deltas: AtomicU64,
    pub snapshots: AtomicU64,
    pub refusals: AtomicU64,
    pub sessions: AtomicU64,
    pub store_errors: AtomicU64,
}

struct Shared {
    config: AgentConfig,
    rules: Rules,
    view: ArcSwap<View>,
    revision: watch::Sender<u64>,
    applied: broadcast::Sender<Applied>,
    /// When the registry last proved this view current.
    current_as_of: Mutex<Option<Instant>>,
    /// The endpoint of the live session, if any.
    endpoint: Mutex<Option<String>>,
    store: Option<DiskStore>,
    stats: Stats,
}

/// A running agent. Lookups take no lock and allocate nothing.
pub struct Agent {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("connect: {0}")]
    Connect(String),
    #[error("stream: {0}")]
    Status(#[from] tonic::Status),
    #[error("{0}")]
    Protocol(String),
    #[error("no message for {0} ms")]
    Silent(u64),
    #[error("stopping")]
    Stopping,
}

impl Agent {
    /// Starts an agent: loads its last-known-good copy (if any, marked stale
    /// until the registry confirms it) and starts following the registry.
    pub async fn start(config: AgentConfig) -> Result<Agent, Error> {
        if config.endpoints.is_empty() {
            return Err(Error::Config("endpoints: give at least one registry endpoint".to_owned()));
        }
        let identity = config.identity()?;
        if let Some(tls) = &config.tls {
            if tls.identity() != identity {
                return Err(Error::Config(format!(
                    "cert: {} is a certificate of {}, but this agent is {} ({} in {}); the registry would refuse it",
                    tls.files().cert.display(),
                    tls.identity().uri(),
                    identity.uri(),
                    config.agent_id,
                    config.region
                )));
            }
        }
        let store = config.data_dir.as_deref().map(DiskStore::open).transpose()?;
        let view = match &store {
            Some(store) => store.load(&config.region).unwrap_or_else(|error| {
                tracing::warn!(%error, "local copy unreadable; starting empty");
                None
            }),
            None => None,
        }
        .unwrap_or_default();
        if view.revision > 0 {
            tracing::info!(
                revision = view.revision,
                tenants = view.len(),
                "started from the local copy (stale until the registry confirms)"
            );
        }
        let rules = Rules {
            kind: config.kind,
            bundle_bytes_max: config.bundle_bytes_max,
            region: Arc::from(config.region.as_str()),
        };
        let (applied, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            rules,
            revision: watch::Sender::new(view.revision),
            view: ArcSwap::from_pointee(view),
            applied,
            current_as_of: Mutex::new(None),
            endpoint: Mutex::new(None),
            store,
            stats: Stats::default(),
            config,
        });
        let (stop, stop_receiver) = watch::channel(false);
        let task = tokio::spawn(follow(shared.clone(), stop_receiver));
        Ok(Agent { shared, stop, task })
    }

    /// The current view (a cheap guard; hold it briefly).
    pub fn view(&self) -> arc_swap::Guard<Arc<View>> {
        self.shared.view.load()
    }

    /// A tenant by id.
    pub fn tenant(&self, id: &str) -> Option<Arc<TenantEntry>> {
        self.shared.view.load().tenant(id).cloned()
    }

    /// The tenant a `Host` header names, under the configured base domains.
    pub fn resolve_host(&self, host: &str) -> Option<Arc<TenantEntry>> {
        let mut buffer = [0u8; HOST_BYTES_MAX];
        let label = tenant_label(host, &self.shared.config.base_domains, &mut buffer)?;
        self.tenant(label)
    }

    /// The applied revision.
    pub fn revision(&self) -> u64 {
        *self.shared.revision.borrow()
    }

    /// Time since the registry last proved this view current; `None` if it
    /// never has (e.g. started from disk with no registry reachable).
    pub fn staleness(&self) -> Option<Duration> {
        self.shared.current_as_of.lock().ok().and_then(|as_of| as_of.map(|as_of| as_of.elapsed()))
    }

    /// Notified with the revision after every change.
    pub fn changed(&self) -> watch::Receiver<u64> {
        self.shared.revision.subscribe()
    }

    /// Every applied delta and snapshot, in order (bounded: a watcher that
    /// falls 4096 steps behind sees `Lagged` and should rescan the view).
    pub fn applied(&self) -> broadcast::Receiver<Applied> {
        self.shared.applied.subscribe()
    }

    /// Waits until the revision is at least `revision`, at most `timeout`.
    /// Returns whether it got there.
    pub async fn wait_for_revision(&self, revision: u64, timeout: Duration) -> bool {
        let mut changed = self.changed();
        tokio::time::timeout(timeout, changed.wait_for(|applied| *applied >= revision)).await.is_ok_and(|r| r.is_ok())
    }

    /// The endpoint of the live session, if any.
    pub fn endpoint(&self) -> Option<String> {
        self.shared.endpoint.lock().ok().and_then(|endpoint| endpoint.clone())
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    pub fn config(&self) -> &AgentConfig {
        &self.shared.config
    }

    /// Stops following and flushes the local copy.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        if let Some(store) = &self.shared.store {
            if let Err(error) = store.flush().await {
                tracing::warn!(%error, "flushing the local copy failed");
            }
        }
    }
}

/// The reconnect loop: own region first, then the others, with backoff.
async fn follow(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let endpoints = shared.config.endpoints.clone();
    let mut reconnect = Reconnect::default();
    loop {
        let endpoint = reconnect.endpoint(&endpoints);
        let started = Instant::now();
        shared.stats.sessions.fetch_add(1, Ordering::Relaxed);
        let result = tokio::select! {
            result = session(&shared, endpoint) => result,
            _ = stop.wait_for(|stop| *stop) => Err(SessionError::Stopping),
        };
        if let Ok(mut current) = shared.endpoint.lock() {
            *current = None;
        }
        match result {
            Err(SessionError::Stopping) => return,
            Err(error) => {
                tracing::info!(endpoint, %error, revision = *shared.revision.borrow(), "registry session ended; resuming")
            }
            Ok(()) => tracing::info!(endpoint, "registry closed the stream; resuming"),
        }
        let pause = reconnect.ended(started.elapsed());
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// One stream to one registry node.
async fn session(shared: &Shared, endpoint: &str) -> Result<(), SessionError> {
    let channel = trust::Connector::new(shared.config.tls.clone(), true)
        .expecting(trust::Expect::AnyNode)
        .connect(endpoint, Duration::from_millis(CONNECT_TIMEOUT_MS))
        .await
        .map_err(SessionError::Connect)?;
    let view = shared.view.load_full();
    let hello = v1::Hello {
        agent_id: shared.config.agent_id.clone(),
        region: shared.config.region.clone(),
        kind: shared.config.kind.wire() as i32,
        since_revision: view.revision,
        cluster_id: view.cluster_id.clone(),
    };
    let (outbound, outbound_receiver) = mpsc::channel(NACK_QUEUE_MAX);
    let send = |kind| v1::AgentMessage { kind: Some(kind) };
    // The queue is empty: the Hello always fits.
    let _ = outbound.try_send(send(agent_message::Kind::Hello(hello)));
    let mut client = AgentSyncClient::new(channel).max_decoding_message_size(64 * 1024 * 1024);
    let open = client.sync(ReceiverStream::new(outbound_receiver));
    let mut inbound = tokio::time::timeout(Duration::from_millis(OPEN_TIMEOUT_MS), open)
        .await
        .map_err(|_| SessionError::Silent(OPEN_TIMEOUT_MS))??
        .into_inner();
    if let Ok(mut current) = shared.endpoint.lock() {
        *current = Some(endpoint.to_owned());
    }

    let mut snapshot: Option<Vec<v1::TenantRecord>> = None;
    let mut acked = view.revision;
    // The span of the last traced delta applied, until its ack is sent.
    let mut traced: Option<tracing::Span> = None;
    let silence = Duration::from_millis(STREAM_SILENCE_MS_MAX);
    loop {
        let message = match tokio::time::timeout(silence, inbound.message()).await {
            Err(_) => return Err(SessionError::Silent(STREAM_SILENCE_MS_MAX)),
            Ok(Ok(Some(message))) => message,
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(status)) => return Err(status.into()),
        };
        match message.kind {
            Some(Message::Snapshot(chunk)) => {
                let records = snapshot.get_or_insert_with(Vec::new);
                records.extend(chunk.tenants);
                if records.len() > SNAPSHOT_TENANTS_MAX {
                    return Err(SessionError::Protocol(format!("snapshot over {SNAPSHOT_TENANTS_MAX} tenants")));
                }
                if chunk.last {
                    let records = snapshot.take().unwrap_or_default();
                    install_snapshot(shared, chunk.revision, chunk.cluster_id, records, &outbound)?;
                }
            }
            Some(Message::Delta(delta)) => {
                if snapshot.is_some() {
                    return Err(SessionError::Protocol("a delta arrived inside a snapshot".to_owned()));
                }
                let span = (!delta.traceparents.is_empty()).then(|| {
                    let span = tracing::info_span!(
                        target: plumbing::trace::TARGET, "agent apply", otel.kind = "consumer",
                        agent = %shared.config.agent_id, region = %shared.config.region,
                        kind = shared.config.kind.wire().as_str_name(), revision = delta.revision, node = endpoint,
                    );
                    plumbing::trace::follow_all(&span, &delta.traceparents);
                    span
                });
                let apply = || apply_delta(shared, delta, &outbound);
                match &span {
                    Some(span) => span.in_scope(apply)?,
                    None => apply()?,
                }
                traced = span.or(traced);
            }
            // The node sent every delta up to progress.revision before this
            // message, and that state was current `leader_contact_ms` ago.
            Some(Message::Progress(progress)) if progress.leader_contact_ms != u64::MAX => {
                let as_of = Instant::now().checked_sub(Duration::from_millis(progress.leader_contact_ms));
                if let (Some(as_of), Ok(mut current)) = (as_of, shared.current_as_of.lock()) {
                    if current.is_none_or(|known| known < as_of) {
                        *current = Some(as_of);
                    }
                }
            }
            Some(Message::Progress(progress)) => {
                tracing::debug!(
                    revision = progress.revision,
                    "progress from a node that cannot yet prove this revision current"
                );
            }
            None => {}
        }
        // Acknowledge what is applied and persisted. Never blocks: if the
        // queue is full, a later message acknowledges a later revision.
        let revision = *shared.revision.borrow();
        if revision > acked {
            let span = traced.take().map(|apply| {
                tracing::info_span!(target: plumbing::trace::TARGET, parent: &apply, "agent ack", otel.kind = "producer", revision)
            });
            let sent = span
                .unwrap_or_else(tracing::Span::none)
                .in_scope(|| outbound.try_send(send(agent_message::Kind::Ack(v1::Ack { revision }))).is_ok());
            if sent {
                acked = revision;
            }
        }
    }
}

fn refuse(shared: &Shared, refusals: Vec<Refusal>, outbound: &mpsc::Sender<v1::AgentMessage>) {
    for refusal in refusals {
        tracing::warn!(revision = refusal.revision, tenant = %refusal.tenant_id, reason = %refusal.reason, "refused an update; keeping the last good version");
        shared.stats.refusals.fetch_add(1, Ordering::Relaxed);
        let nack = v1::Nack { revision: refusal.revision, tenant_id: refusal.tenant_id, reason: refusal.reason };
        let _ = outbound.try_send(v1::AgentMessage { kind: Some(agent_message::Kind::Nack(nack)) });
    }
}

fn apply_delta(
    shared: &Shared,
    delta: v1::Delta,
    outbound: &mpsc::Sender<v1::AgentMessage>,
) -> Result<(), SessionError> {
    let current = shared.view.load_full();
    let changed: Vec<String> = delta.tenants.iter().map(|record| record.id.clone()).collect();
    let (next, refusals) =
        current.apply_delta(delta, &shared.rules).map_err(|error| SessionError::Protocol(error.to_string()))?;
    refuse(shared, refusals, outbound);
    if let Some(store) = &shared.store {
        if let Err(error) = store.save_delta(&next, &changed) {
            shared.stats.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, "saving the local copy failed; continuing in memory");
        }
    }
    let revision = next.revision;
    shared.stats.deltas.fetch_add(1, Ordering::Relaxed);
    install(shared, next, Applied::Delta { revision });
    Ok(())
}

fn install_snapshot(
    shared: &Shared,
    revision: u64,
    cluster_id: String,
    records: Vec<v1::TenantRecord>,
    outbound: &mpsc::Sender<v1::AgentMessage>,
) -> Result<(), SessionError> {
    if let Some(expected) = shared.config.cluster_id.as_ref().filter(|expected| **expected != cluster_id) {
        return Err(SessionError::Protocol(format!(
            "the registry serves cluster {cluster_id}, but this agent follows cluster {expected} (its cluster id \
             setting); refusing its snapshot"
        )));
    }
    let current = shared.view.load_full();
    if !current.cluster_id.is_empty() && cluster_id != current.cluster_id {
        tracing::warn!(
            from = %current.cluster_id, to = %cluster_id,
            "the registry is another cluster than the local copy's (a restore?); replacing the copy with its snapshot"
        );
    }
    if cluster_id == current.cluster_id && revision < current.revision {
        return Err(SessionError::Protocol(format!(
            "snapshot at revision {revision} is behind this agent's {}",
            current.revision
        )));
    }
    let (next, refusals) = current.apply_snapshot(revision, cluster_id, records, &shared.rules);
    refuse(shared, refusals, outbound);
    if let Some(store) = &shared.store {
        if let Err(error) = store.save_all(&next) {
            shared.stats.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, "saving the local copy failed; continuing in memory");
        }
    }
    tracing::info!(revision, tenants = next.len(), "installed a snapshot");
    // Counted before the view is published: whoever sees the new view sees
    // the snapshot that made it.
    shared.stats.snapshots.fetch_add(1, Ordering::Relaxed);
    install(shared, next, Applied::Snapshot { revision });
    Ok(())
}

/// Makes `next` the view readers see, then tells the watchers.
fn install(shared: &Shared, next: View, applied: Applied) {
    let revision = next.revision;
    let previous = shared.view.load().revision;
    let same_cluster = shared.view.load().cluster_id == next.cluster_id;
    assert!(!same_cluster || revision >= previous, "applied revision went back from {previous} to {revision}");
    shared.view.store(Arc::new(next));
    shared.revision.send_replace(revision);
    let _ = shared.applied.send(applied);
}
