//! Starting and stopping a registry node.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::storage::RaftLogReader;
use proto::v1::agent_admin_server::AgentAdminServer;
use proto::v1::raft_internal_server::RaftInternalServer;
use proto::v1::registry_server::RegistryServer;
use registry_core::DocumentLimits;
use tokio::net::TcpListener;

use super::http;
use super::metrics::Metrics;
use super::network::NetworkFactory;
use super::raft_service::RaftService;
use super::registry_service::RegistryService;
use super::sync_service::{AgentSyncServer, SyncContext};
use crate::config::NodeConfig;
use crate::error::Error;
use crate::limits::{
    GRPC_CONCURRENT_STREAMS_MAX, GRPC_CONNECTIONS_MAX, GRPC_HEADER_LIST_BYTES_MAX, GRPC_KEEPALIVE_INTERVAL_MS,
    GRPC_KEEPALIVE_TIMEOUT_MS, GRPC_MESSAGE_BYTES_MAX, GRPC_PENDING_RESETS_MAX, GRPC_REQUEST_TIMEOUT_MS,
    HTTP_CONNECTIONS_MAX, LOG_KEPT_AFTER_SNAPSHOT_BYTES_MAX, SHUTDOWN_GRACE_MS,
};
use crate::raft_types::{Member, NodeId, Raft};
use crate::stages::Stages;
use crate::store::{LogStore, StateMachineStore, StateView};
use crate::watch::{AgentAdminService, AgentDirectory, Freshness};

/// What a running node exposes to the code that started it.
#[derive(Clone)]
pub struct NodeHandle {
    pub raft: Raft,
    pub view: StateView,
}

fn raft_config(config: &NodeConfig) -> Result<openraft::Config, Error> {
    let raft_config = openraft::Config {
        cluster_name: "tenantry".to_owned(),
        heartbeat_interval: config.heartbeat_ms,
        election_timeout_min: config.election_timeout_ms_min,
        election_timeout_max: config.election_timeout_ms_max,
        // One append RPC may carry a few MiB of documents across a slow link.
        install_snapshot_timeout: 10_000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_every_entries),
        max_in_snapshot_log_to_keep: config.log_kept_after_snapshot_entries,
        // A node that was cut off asks before it raises the term, so its
        // return does not depose a healthy leader.
        enable_pre_vote: Some(true),
        ..Default::default()
    };
    raft_config.validate().map_err(|error| Error::Config(error.to_string()))
}

/// Runs a node until `shutdown` resolves, then stops gracefully: a leader
/// first hands leadership to the most caught-up voter, then the node stops
/// accepting, finishes in-flight requests (bounded) and stops Raft.
///
/// `started` is called once the node serves, with a handle for tests and
/// embedding.
pub async fn run(
    config: NodeConfig,
    shutdown: impl Future<Output = ()> + Send,
    started: impl FnOnce(NodeHandle) + Send,
) -> Result<(), Error> {
    config.validate()?;
    let tls = config.load_tls()?;
    if let Some(tls) = &tls {
        tls.reload_on_sighup().map_err(|error| Error::Config(error.to_string()))?;
    }
    let stages = Arc::new(Stages::default());
    let mut log_store = LogStore::open(&config.data_dir.join("raft-log"))?.timed(stages.clone());
    let state_machine = StateMachineStore::open(&config.data_dir, config.watch_limits())?
        .timed(stages.clone())
        .named(format!("{}@{}", config.id, config.region));
    // The agents' history window, from the log the snapshot covers. Only a
    // head start: a node whose log lacks it (a restored one) starts empty.
    let snapshot_index = state_machine.view().applied_revision().get();
    let first = log_store.purged_index().map_or(1, |purged| purged + 1);
    let first = first.max((snapshot_index + 1).saturating_sub(config.watch_limits().history_deltas_max as u64));
    let last = log_store.last_log_id().map_or(0, |log_id| log_id.index);
    if first <= snapshot_index && snapshot_index <= last {
        match log_store.try_get_log_entries(first..=snapshot_index).await {
            Ok(entries) => state_machine.seed_history(entries),
            Err(error) => tracing::warn!(%error, "the agents' history window starts empty"),
        }
    }
    let view = state_machine.view();
    let hub = state_machine.hub();
    let snapshot_due = state_machine.snapshot_due();
    let kept_log = log_store.clone();
    let metrics = Arc::new(Metrics::default());

    let dialer = super::network::Dialer::new(&config.dial, tls.clone(), view.clone());
    let network = NetworkFactory { id: config.id, dialer: dialer.clone(), metrics: metrics.clone() };
    let raft = Raft::new(config.id, Arc::new(raft_config(&config)?), network, log_store, state_machine)
        .await
        .map_err(|error| Error::Raft(error.to_string()))?;
    // Snapshots by size too (see `SNAPSHOT_EVERY_BYTES`).
    let snapshots = {
        let raft = raft.clone();
        tokio::spawn(async move {
            loop {
                snapshot_due.notified().await;
                if let Err(error) = raft.trigger().snapshot().await {
                    tracing::warn!(%error, "could not start a snapshot");
                }
            }
        })
    };

    let log_keeper = tokio::spawn(keep_log_within_bytes(raft.clone(), kept_log, LOG_KEPT_AFTER_SNAPSHOT_BYTES_MAX));

    // A fresh cluster is initialized exactly once, by its lowest id; every
    // other node (and this one after a restart) joins what it finds.
    if config.is_bootstrapper() && !raft.is_initialized().await.map_err(|error| Error::Raft(error.to_string()))? {
        let members: BTreeMap<_, _> = config
            .peers
            .iter()
            .map(|peer| (peer.id, Member { region: peer.region.clone(), grpc_addr: peer.grpc_addr.clone() }))
            .collect();
        tracing::info!(?members, "initializing a fresh cluster");
        raft.initialize(members).await.map_err(|error| Error::Raft(error.to_string()))?;
    }

    let proposer = super::proposer::Proposer::start(raft.clone(), view.clone(), stages.clone());
    let service = Arc::new(RegistryService {
        leader: super::leader::Leader::new(raft.clone(), proposer, dialer),
        view: view.clone(),
        node_id: config.id,
        region: config.region.clone(),
        document_limits: DocumentLimits { document_bytes_max: config.document_bytes_max },
        metrics: metrics.clone(),
        snapshots: tokio::sync::Semaphore::new(1),
        tls: tls.clone(),
    });

    let grpc_listener = TcpListener::bind(config.grpc).await?;
    let http_listener = TcpListener::bind(config.http).await?;
    tracing::info!(id = config.id, region = %config.region, grpc = %config.grpc, http = %config.http, "registry node serving");

    let (stop_sender, stop_receiver) = tokio::sync::watch::channel(false);
    let stopped = |mut receiver: tokio::sync::watch::Receiver<bool>| async move {
        let _ = receiver.wait_for(|stop| *stop).await;
    };

    let freshness = Arc::new(Freshness::default());
    let agents = Arc::new(AgentDirectory::new(config.id, stages.clone()));
    let probe_interval = Duration::from_millis((config.progress_interval_ms / 2).clamp(50, 500));
    tokio::spawn(probe_freshness(service.clone(), freshness.clone(), probe_interval, stopped(stop_receiver.clone())));
    tokio::spawn(name_cluster(raft.clone(), view.clone(), stopped(stop_receiver.clone())));
    let sync_server = AgentSyncServer::new(SyncContext {
        hub: hub.clone(),
        view: view.clone(),
        agents: agents.clone(),
        freshness,
        stages: stages.clone(),
        permits: Arc::new(tokio::sync::Semaphore::new(config.agents_max)),
        stopping: stop_receiver.clone(),
    });
    let admin_server = AgentAdminServer::new(AgentAdminService { directory: agents.clone(), hub: hub.clone() });

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<RegistryServer<RegistryService>>().await;
    health_reporter.set_serving::<AgentSyncServer>().await;
    // Reflection in both versions: grpcurl and grpcio-reflection before
    // 2023 speak only v1alpha, newer clients v1 (falling back to v1alpha).
    let reflection_error = |error| Error::Config(format!("gRPC reflection: {error}"));
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::v1::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(reflection_error)?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::v1::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(reflection_error)?;
    let registry_server = RegistryServer::from_arc(service.clone())
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    let raft_server =
        RaftInternalServer::new(RaftService { raft: raft.clone(), receive_dir: config.data_dir.join("snapshots") })
            .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    // Accepted connections get TCP_NODELAY (without it a response's
    // trailers wait for the client's delayed ACK, ~40 ms per call), a TLS
    // handshake bounded in time, and a slot of the connection cap.
    let grpc_incoming = trust::net::incoming(
        grpc_listener,
        trust::ListenOptions { tls: tls.clone(), client_cert_required: true, connections_max: GRPC_CONNECTIONS_MAX },
    );
    let (node_id, node_region) = (config.id, config.region.clone());
    let grpc = tonic::transport::Server::builder()
        .trace_fn(move |request| rpc_span(request, node_id, &node_region))
        .max_concurrent_streams(Some(GRPC_CONCURRENT_STREAMS_MAX))
        .http2_keepalive_interval(Some(Duration::from_millis(GRPC_KEEPALIVE_INTERVAL_MS)))
        .http2_keepalive_timeout(Some(Duration::from_millis(GRPC_KEEPALIVE_TIMEOUT_MS)))
        .http2_max_header_list_size(GRPC_HEADER_LIST_BYTES_MAX)
        .http2_max_pending_accept_reset_streams(Some(GRPC_PENDING_RESETS_MAX))
        .timeout(Duration::from_millis(GRPC_REQUEST_TIMEOUT_MS))
        .layer(super::authz::AuthzLayer { view: view.clone() })
        .layer(super::metrics::RpcTimingLayer { metrics: metrics.clone() })
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(registry_server)
        .add_service(raft_server)
        .add_service(sync_server)
        .add_service(admin_server)
        .serve_with_incoming_shutdown(grpc_incoming, stopped(stop_receiver.clone()));
    let http_state = http::HttpState { service, hub, agents, stages };
    let http_options = trust::ListenOptions { tls, client_cert_required: false, connections_max: HTTP_CONNECTIONS_MAX };
    let http = trust::net::serve_http(http_listener, http_options, http::router(http_state), stopped(stop_receiver));
    let grpc = tokio::spawn(grpc);
    let http = tokio::spawn(async move {
        http.await;
        Ok::<(), std::io::Error>(())
    });

    started(NodeHandle { raft: raft.clone(), view });
    // A fatal Raft error (storage broken) stops the node rather than leave
    // it serving a state it can no longer advance; a supervisor restarts it.
    let mut raft_metrics = raft.metrics();
    let fatal = async move {
        match raft_metrics.wait_until(|metrics| metrics.running_state.is_err()).await {
            Ok(metrics) => metrics.running_state.err().map(|error| error.to_string()),
            Err(_) => Some("raft stopped".to_owned()),
        }
    };
    let fatal = tokio::select! {
        () = shutdown => None,
        fatal = fatal => fatal,
    };
    match &fatal {
        Some(error) => tracing::error!(%error, "raft stopped on a fatal error; shutting the node down"),
        None => hand_over_leadership(&raft, Duration::from_millis(2 * config.election_timeout_ms_max)).await,
    }

    tracing::info!("shutting down: no new requests, finishing in-flight ones");
    let _ = stop_sender.send(true);
    let grace = Duration::from_millis(SHUTDOWN_GRACE_MS);
    let servers = async {
        let (grpc, http) = tokio::join!(grpc, http);
        if let Ok(Err(error)) = grpc {
            tracing::warn!(%error, "gRPC server ended with an error");
        }
        if let Ok(Err(error)) = http {
            tracing::warn!(%error, "HTTP server ended with an error");
        }
    };
    if tokio::time::timeout(grace, servers).await.is_err() {
        tracing::warn!(grace_ms = SHUTDOWN_GRACE_MS, "in-flight requests did not finish in time; stopping anyway");
    }
    snapshots.abort();
    log_keeper.abort();
    raft.shutdown().await.map_err(|error| Error::Raft(error.to_string()))?;
    tracing::info!("stopped");
    match fatal {
        Some(error) => Err(Error::Raft(error)),
        None => Ok(()),
    }
}

/// Measures how fresh this node is: a linearizable read barrier started at
/// `t0` that completes proves the node was current as of `t0`.
async fn probe_freshness(
    service: Arc<RegistryService>,
    freshness: Arc<Freshness>,
    interval: Duration,
    stopped: impl Future<Output = ()>,
) {
    let probe = async {
        loop {
            let started = std::time::Instant::now();
            if let Ok(read_index) = service.leader.ensure_read(proto::v1::Consistency::Linearizable as i32).await {
                freshness.record(started, read_index);
            }
            tokio::time::sleep(interval).await;
        }
    };
    tokio::select! {
        () = probe => {}
        () = stopped => {}
    }
}

/// When this node leads, makes the voter that has the most of its log the
/// leader (openraft's leader transfer: the target campaigns at once and
/// the others grant it despite the lease), and waits for that within
/// `within`. Writes then pause for one election round instead of an
/// election timeout.
async fn hand_over_leadership(raft: &Raft, within: Duration) {
    let metrics = raft.metrics().borrow_watched().clone();
    if metrics.current_leader != Some(metrics.id) {
        return;
    }
    let matched = |id: &NodeId| {
        metrics
            .replication
            .as_ref()
            .and_then(|replication| replication.get(id).cloned().flatten())
            .map(|log_id| log_id.index)
    };
    let voters = metrics.membership_config.membership().voter_ids().filter(|id| *id != metrics.id);
    let Some(to) = voters.max_by_key(|id| matched(id)) else {
        return;
    };
    let started = std::time::Instant::now();
    if let Err(error) = raft.trigger().transfer_leader(to).await {
        tracing::warn!(%error, "could not hand leadership over; stopping anyway");
        return;
    }
    let mut watch = raft.metrics();
    let moved = tokio::time::timeout(within, watch.wait_until(|metrics| metrics.current_leader != Some(metrics.id)));
    match moved.await {
        Ok(Ok(metrics)) => tracing::info!(
            to,
            leader = ?metrics.current_leader,
            took_ms = started.elapsed().as_millis() as u64,
            "handed leadership over"
        ),
        _ => tracing::warn!(
            to,
            within_ms = within.as_millis() as u64,
            "leadership was not handed over in time; stopping anyway"
        ),
    }
}

/// After each snapshot, purges the log it covers down to `bytes_max` of
/// WAL (openraft keeps a number of entries behind a snapshot, and one entry
/// may batch hundreds of writes): a start reads all of the kept log.
async fn keep_log_within_bytes(raft: Raft, log: LogStore, bytes_max: u64) {
    let mut metrics = raft.metrics();
    let mut seen = None;
    loop {
        let snapshot = metrics.borrow_watched().snapshot.map(|log_id| log_id.index);
        if snapshot != seen {
            seen = snapshot;
            if let Some(upto) = snapshot.and_then(|index| log.purge_point(index, bytes_max)) {
                tracing::info!(upto, bytes_max, "purging the log behind the snapshot to its byte bound");
                if raft.trigger().purge_log(upto).await.is_err() {
                    return;
                }
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Names a fresh cluster: the first leader proposes a cluster id once.
async fn name_cluster(raft: Raft, view: StateView, stopped: impl Future<Output = ()>) {
    let name = async {
        let mut metrics = raft.metrics();
        while view.read().state.cluster_id.is_none() {
            let leads = {
                let metrics = metrics.borrow_watched();
                metrics.current_leader == Some(metrics.id)
            };
            if leads {
                let meta = registry_core::WriteMeta {
                    expected_revision: None,
                    request_id: None,
                    actor: "registry".to_owned(),
                    reason: "name the cluster".to_owned(),
                    at_unix_ms: 0,
                    change_id: ulid::Ulid::new(),
                };
                let command =
                    registry_core::Command::new(meta, registry_core::Op::InitCluster { cluster_id: ulid::Ulid::new() });
                if let Err(error) = raft.client_write(registry_core::Proposal::single(command)).await {
                    tracing::debug!(%error, "naming the cluster failed; retrying");
                }
            }
            // At once when this node becomes leader; every 200 ms otherwise.
            let _ = tokio::time::timeout(Duration::from_millis(200), metrics.changed()).await;
        }
    };
    tokio::select! {
        () = name => {}
        () = stopped => {}
    }
}

/// The span of an operator's call (`tenantry.v1.Registry`), a child of the
/// caller's trace context if it sent one. Raft's and the agents' streams get
/// none: they are traced per entry and per delta instead.
fn rpc_span(request: &::http::Request<()>, node_id: u64, region: &str) -> tracing::Span {
    let Some(method) = request.uri().path().strip_prefix("/tenantry.v1.Registry/") else {
        return tracing::Span::none();
    };
    let span = tracing::info_span!(
        target: plumbing::trace::TARGET, "rpc",
        otel.name = %format!("registry {method}"), otel.kind = "server", node = node_id, region = %region,
    );
    plumbing::trace::follow_headers(&span, request.headers());
    span
}
