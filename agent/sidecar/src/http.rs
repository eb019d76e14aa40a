//! The sidecar's local HTTP API:
//!
//! * `GET /v1/tenants/{id}` and `GET /v1/resolve?host=…`: a tenant's record
//!   and bundles; `?wait=REV&timeout=MS` blocks until the agent has applied
//!   revision `REV` (or the timeout passes), then answers, Consul-style.
//! * `GET /healthz`: revision, staleness and connection, 200 once the agent
//!   holds a view; `GET /metrics`: Prometheus text.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use agent::limits::{WAIT_MS_DEFAULT, WAIT_MS_MAX};
use agent::{Agent, TenantEntry};
use plumbing::metrics::Scrape;
use plumbing::problem;

pub(crate) fn router(agent: Arc<Agent>) -> Router {
    Router::new()
        .route("/v1/tenants/{id}", get(tenant))
        .route("/v1/resolve", get(resolve))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(agent)
}

#[derive(Deserialize)]
struct WaitParams {
    wait: Option<String>,
    timeout: Option<String>,
    host: Option<String>,
}

/// Parses `?wait=` and `?timeout=`; errors name the parameter and the rule.
fn wait_target(params: &WaitParams) -> Result<Option<(u64, Duration)>, String> {
    let Some(wait) = &params.wait else { return Ok(None) };
    let revision = wait.parse::<u64>().map_err(|_| "wait: must be a revision (a whole number)".to_owned())?;
    let timeout_ms = match &params.timeout {
        None => WAIT_MS_DEFAULT,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms <= WAIT_MS_MAX)
            .ok_or_else(|| format!("timeout: must be milliseconds, at most {WAIT_MS_MAX}"))?,
    };
    Ok(Some((revision, Duration::from_millis(timeout_ms))))
}

fn tenant_json(entry: &TenantEntry) -> Value {
    let record = &entry.record;
    let parse = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).unwrap_or(Value::Null);
    let placement = record.placement.clone().unwrap_or_default();
    let mut tenant = json!({
        "id": record.id,
        "uid": record.uid,
        "configVersion": record.config_revision,
        "createRevision": record.create_revision,
        "placement": {
            "homeRegion": placement.home_region,
            "allowedRegions": placement.allowed_regions,
            "drRegion": placement.dr_region,
            "epoch": placement.epoch,
        },
        "public": parse(entry.public_json()),
        "publicSha256": entry.public_sha256(),
    });
    if let Some(private) = entry.private_json() {
        tenant["private"] = parse(private);
    }
    tenant
}

async fn answer(agent: &Agent, params: &WaitParams, lookup: impl Fn(&Agent) -> Option<Arc<TenantEntry>>) -> Response {
    match wait_target(params) {
        Err(detail) => return problem(StatusCode::BAD_REQUEST, &detail),
        Ok(Some((revision, timeout))) => {
            agent.wait_for_revision(revision, timeout).await;
        }
        Ok(None) => {}
    }
    let revision = agent.revision();
    let mut response = match lookup(agent) {
        Some(entry) => {
            let mut response = Json(json!({ "revision": revision, "tenant": tenant_json(&entry) })).into_response();
            response.headers_mut().insert("x-config-version", HeaderValue::from(entry.config_version()));
            response
        }
        None => problem(StatusCode::NOT_FOUND, "no such tenant at this revision"),
    };
    response.headers_mut().insert("x-tenantry-revision", HeaderValue::from(revision));
    response
}

async fn tenant(State(agent): State<Arc<Agent>>, Path(id): Path<String>, Query(params): Query<WaitParams>) -> Response {
    if let Err(error) = proto::TenantId::parse(&id) {
        return problem(StatusCode::BAD_REQUEST, &error.to_string());
    }
    answer(&agent, &params, |agent| agent.tenant(&id)).await
}

async fn resolve(State(agent): State<Arc<Agent>>, Query(params): Query<WaitParams>) -> Response {
    let Some(host) = params.host.clone() else {
        return problem(StatusCode::BAD_REQUEST, "host: required, e.g. ?host=acme.example.com");
    };
    answer(&agent, &params, |agent| agent.resolve_host(&host)).await
}

async fn healthz(State(agent): State<Arc<Agent>>) -> Response {
    let staleness_ms = agent.staleness().map(|staleness| staleness.as_millis() as u64);
    let revision = agent.revision();
    let status = match (revision, agent.endpoint()) {
        (0, _) => "starting",
        (_, Some(_)) if staleness_ms.is_some() => "ok",
        _ => "stale",
    };
    let body = json!({
        "status": status,
        "revision": revision,
        "stalenessMs": staleness_ms,
        "endpoint": agent.endpoint(),
        "tenants": agent.view().len(),
    });
    let code = if revision == 0 { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (code, Json(body)).into_response()
}

async fn metrics(State(agent): State<Arc<Agent>>, headers: HeaderMap) -> Response {
    let stats = agent.stats();
    let mut scrape = Scrape::default();
    scrape.gauge("tenantry_agent_revision", "Applied revision.", agent.revision());
    scrape.gauge("tenantry_agent_tenants", "Tenants in the view.", agent.view().len() as u64);
    scrape.seconds(
        "tenantry_agent_staleness_seconds",
        "Seconds since the registry proved the view current (+Inf if never).",
        agent.staleness(),
    );
    scrape.gauge("tenantry_agent_connected", "1 if a registry stream is open.", u64::from(agent.endpoint().is_some()));
    scrape.counter("tenantry_agent_deltas_total", "Deltas applied.", stats.deltas.load(Ordering::Relaxed));
    scrape.counter("tenantry_agent_snapshots_total", "Snapshots installed.", stats.snapshots.load(Ordering::Relaxed));
    scrape.counter("tenantry_agent_refusals_total", "Records refused (NACKs).", stats.refusals.load(Ordering::Relaxed));
    scrape.counter(
        "tenantry_agent_sessions_total",
        "Registry sessions opened.",
        stats.sessions.load(Ordering::Relaxed),
    );
    scrape.counter(
        "tenantry_agent_store_errors_total",
        "Failed writes of the local copy.",
        stats.store_errors.load(Ordering::Relaxed),
    );
    scrape.certificate_expiry(agent.config().tls.as_ref().map(|tls| tls.not_after_unix_s()));
    scrape.into_response(&headers)
}
