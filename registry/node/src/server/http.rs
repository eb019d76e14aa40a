//! The node's HTTP port: `/healthz` (alive), `/readyz` (has a leader, has
//! applied up to its commit, and the cluster is named, so agent streams are
//! served), `/metrics` (Prometheus text) and `/status` (JSON).

use openraft::async_runtime::WatchReceiver;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use plumbing::metrics::Scrape;
use proto::v1::registry_server::Registry;
use proto::v1::Consistency;

use super::registry_service::RegistryService;
use crate::stages::Stages;
use crate::watch::{AgentDirectory, WatchHub};

/// What the HTTP handlers read.
#[derive(Clone)]
pub(crate) struct HttpState {
    pub(crate) service: Arc<RegistryService>,
    pub(crate) hub: Arc<WatchHub>,
    pub(crate) agents: Arc<AgentDirectory>,
    pub(crate) stages: Arc<Stages>,
}

/// `/healthz` and `/readyz` are open (load balancers and probes carry no
/// certificate); `/metrics` and `/status` need a viewer (or any operator
/// role) or a node certificate.
pub(crate) fn router(state: HttpState) -> Router {
    let guarded = Router::new().route("/metrics", get(metrics)).route("/status", get(status)).layer(
        axum::middleware::from_fn_with_state(
            trust::net::Guard {
                allowed: |identity| matches!(identity, trust::Identity::Node { .. } | trust::Identity::Operator { .. }),
                rule: "/metrics and /status need a viewer or node certificate",
            },
            trust::net::guard,
        ),
    );
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(guarded)
        .with_state(state)
}

async fn readyz(State(HttpState { service, .. }): State<HttpState>) -> Response {
    // A linearizable read barrier is exactly "a leader is reachable and this
    // node has applied up to its commit index".
    match service.leader.ensure_read(Consistency::Linearizable as i32).await {
        Ok(_) if service.view.read().state.cluster_id.is_none() => {
            (StatusCode::SERVICE_UNAVAILABLE, "not ready: the cluster is not named yet\n").into_response()
        }
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(status) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", status.message())).into_response(),
    }
}

async fn status(State(HttpState { service, .. }): State<HttpState>) -> Response {
    match service.cluster_status(tonic::Request::new(proto::v1::ClusterStatusRequest {})).await {
        Ok(status) => Json(status.into_inner()).into_response(),
        Err(status) => (StatusCode::SERVICE_UNAVAILABLE, status.message().to_owned()).into_response(),
    }
}

async fn metrics(State(HttpState { service, hub, agents, stages }): State<HttpState>, headers: HeaderMap) -> Response {
    let raft = service.leader.raft.metrics().borrow_watched().clone();
    let committed =
        service.leader.raft.with_raft_state(|state| state.local_committed().map_or(0, |log_id| log_id.index)).await;
    let mut scrape = Scrape::default();
    let mut gauge = |name: &str, help: &str, value: u64| scrape.gauge(name, help, value);
    gauge("tenantry_raft_term", "Current Raft term.", raft.current_term);
    gauge("tenantry_raft_leader_id", "Id of the known leader (0 if none).", raft.current_leader.unwrap_or(0));
    gauge("tenantry_raft_is_leader", "1 if this node leads.", u64::from(raft.current_leader == Some(raft.id)));
    gauge("tenantry_raft_last_log_index", "Index of the last log entry.", raft.last_log_index.unwrap_or(0));
    gauge("tenantry_raft_committed_index", "Index of the last committed entry.", committed.unwrap_or(0));
    gauge(
        "tenantry_raft_applied_index",
        "Index of the last applied entry (the revision).",
        raft.last_applied.map_or(0, |id| id.index),
    );
    gauge(
        "tenantry_raft_snapshot_index",
        "Last index in the current snapshot.",
        raft.snapshot.map_or(0, |id| id.index),
    );
    gauge("tenantry_raft_purged_index", "Last purged log index.", raft.purged.map_or(0, |id| id.index));
    gauge("tenantry_tenants", "Live (not deleted) tenants.", service.view.read().state.live_tenants() as u64);
    gauge("tenantry_watch_published_revision", "Revision of the last delta pushed to agents.", hub.published());
    gauge("tenantry_watch_history_deltas", "Deltas kept for resuming agents.", hub.history_len() as u64);
    gauge(
        "tenantry_watch_history_bytes",
        "Bytes of encoded deltas kept for resuming agents.",
        hub.history_bytes() as u64,
    );
    gauge("tenantry_watch_subscribers", "Agent streams subscribed now.", hub.subscribers() as u64);
    gauge("tenantry_agents_connected", "Agents connected to this node.", agents.connected_count() as u64);
    scrape.certificate_expiry(service.tls.as_ref().map(|tls| tls.not_after_unix_s()));
    service.metrics.register(scrape.registry());
    stages.register(scrape.registry());
    scrape.into_response(&headers)
}
