//! The HTTP server: the router, the runtime config, the demo page, health,
//! readiness and metrics, all answered from the embedded agent's view
//! through [`crate::node`].
//!
//! Architecture Invariant: the api-node never talks to the registry
//! directly; everything it knows comes through its agent.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use plumbing::metrics::Scrape;
use serde_json::json;

use crate::limits::{CONFIG_MAX_AGE_S, SHARD_HEALTH_MS};
use crate::node::{not_found, wants_canary, with_tenant_headers, Node, ReadTenant};
use crate::policy::{decide, Access, Denial};

pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/", get(demo_page))
        .route("/config/{file}", get(config))
        .route("/api/config/events", get(crate::events::config_events))
        .route("/health", get(health))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(crate::data::routes())
        .with_state(node)
}

/// Whether `If-None-Match` matches `etag` (a list, weak tags, or `*`).
fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    let Some(value) = headers.get(header::IF_NONE_MATCH).and_then(|value| value.to_str().ok()) else {
        return false;
    };
    value.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

/// `Cache-Control` of runtime configs: short, so a new version shows soon.
static CONFIG_CACHE_CONTROL: std::sync::LazyLock<HeaderValue> = std::sync::LazyLock::new(|| {
    HeaderValue::from_str(&format!("public, max-age={CONFIG_MAX_AGE_S}"))
        .unwrap_or(HeaderValue::from_static("no-cache"))
});

/// `GET /config/{tenant}.json`: the runtime config as this region serves
/// it (the public bundle with the region's variant merged in, and
/// `configVersion` and `region` in the JSON), or the staged canary's to a
/// request that opts in (`X-Config-Version` says which was served too).
/// `?v=` and any other query are ignored: the ETag, the served bytes'
/// SHA-256, decides freshness.
async fn config(
    State(node): State<Arc<Node>>,
    ReadTenant(entry): ReadTenant,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    // The path must name the Host's tenant; anything else is "not here".
    if file.strip_suffix(".json") != Some(entry.id()) {
        return not_found(&node);
    }
    let canary = entry.canary_served().filter(|_| wants_canary(&headers));
    let (version, served) = match canary {
        Some(served) => (entry.record.canary_revision, served),
        None => (entry.config_version(), entry.served()),
    };
    let etag = format!("\"{}\"", served.sha256);
    let not_modified = matches_etag(&headers, &etag);
    let etag = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""));
    // The headers' values are static; caches must keep the canary and the live version apart.
    let headers = [
        (header::ETAG, etag),
        (header::CACHE_CONTROL, CONFIG_CACHE_CONTROL.clone()),
        (header::VARY, HeaderValue::from_static("X-Config-Canary, Cookie")),
    ];
    let mut response = if not_modified {
        node.metrics.config_not_modified.fetch_add(1, Ordering::Relaxed);
        (StatusCode::NOT_MODIFIED, headers).into_response()
    } else {
        node.metrics.config_served.fetch_add(1, Ordering::Relaxed);
        // A shared-bytes clone: no copy of the document per request.
        let mut response = (headers, served.json.clone()).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    };
    if canary.is_some() {
        response.headers_mut().insert("x-config-canary", HeaderValue::from_static("1"));
    }
    let mut response = with_tenant_headers(response, &entry, &node.region);
    response.headers_mut().insert("x-config-version", HeaderValue::from(version));
    response
}

/// The demo page: plain HTML and JS, no build step. It fetches the tenant's
/// runtime config, shows its name, colors, logo, region and configVersion,
/// and follows new versions live (`/api/config/events`). The same file is
/// the static build nginx serves in `deploy/nginx/`'s suite.
const DEMO_PAGE: &str = include_str!("../assets/demo.html");

async fn demo_page(State(node): State<Arc<Node>>, ReadTenant(entry): ReadTenant) -> Response {
    // Tenant ids are [a-z0-9-] (validated), safe in an HTML attribute.
    let page = DEMO_PAGE.replace("{{TENANT}}", entry.id());
    let response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], page)
        .into_response();
    with_tenant_headers(response, &entry, &node.region)
}

/// `GET /health?tenant=auto`: what this node knows about the Host's tenant.
async fn health(State(node): State<Arc<Node>>, ReadTenant(entry): ReadTenant) -> Response {
    let writes = match decide(&entry.record, &node.region, Access::Write, node.is_fresh()) {
        Ok(()) => "accepted".to_owned(),
        Err(Denial::Suspended) => "refused: suspended".to_owned(),
        Err(Denial::Misdirected { home_region: Some(home) }) => format!("refused: home region is {home}"),
        Err(Denial::Misdirected { home_region: None }) => "refused: no home region assigned".to_owned(),
        Err(Denial::ReadOnly) => "refused: read-only (stale view)".to_owned(),
        Err(Denial::Locked) => "refused: locked for a move".to_owned(),
        Err(Denial::FailingOver { to }) => format!("refused: failing over to {to}"),
    };
    let staleness_ms = node.staleness().map(|staleness| staleness.as_millis() as u64);
    let within = std::time::Duration::from_millis(SHARD_HEALTH_MS);
    let shard = async { crate::data::scope(&node, &entry)?.reachable(within).await }.await;
    // A replica down is reported, not fatal: reads then go to the primary.
    let replica = match crate::data::replica_scope(&node, &entry) {
        Some(replica) => Some(async { replica?.reachable(within).await }.await),
        None => None,
    };
    let fresh = node.is_fresh() && shard.is_ok();
    let body = json!({
        "status": if fresh { "ok" } else { "stale" },
        "tenant": entry.id(),
        "region": node.region,
        "configVersion": entry.config_version(),
        "writes": writes,
        "shard": {
            "id": crate::data::shard_of(&entry),
            "reachable": shard.is_ok(),
            "error": shard.err().map(|error| error.to_string()),
            "replica": replica.map(|replica| json!({
                "reachable": replica.is_ok(),
                "error": replica.err().map(|error| error.to_string()),
            })),
        },
        "registry": {
            "revision": node.agent.revision(),
            "stalenessMs": staleness_ms,
            "stalenessMaxMs": node.staleness_max.as_millis() as u64,
            "endpoint": node.agent.endpoint(),
        },
    });
    let code = if fresh { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    with_tenant_headers((code, Json(body)).into_response(), &entry, &node.region)
}

/// Ready once the agent holds a view; a stale view still serves reads.
/// `X-Region` names the region this node serves.
async fn readyz(State(node): State<Arc<Node>>) -> Response {
    let region = [("x-region", node.region.clone())];
    if node.agent.revision() == 0 {
        return (StatusCode::SERVICE_UNAVAILABLE, region, "not ready: no registry view yet\n").into_response();
    }
    (StatusCode::OK, region, "ready\n").into_response()
}

/// `/metrics`, served on the operator listener (`--admin-http`).
pub(crate) async fn metrics(State(node): State<Arc<Node>>, headers: HeaderMap) -> Response {
    let mut scrape = Scrape::default();
    let counters = &node.metrics;
    scrape.counter(
        "tenantry_api_config_served_total",
        "Runtime configs served (200).",
        counters.config_served.load(Ordering::Relaxed),
    );
    scrape.counter(
        "tenantry_api_config_not_modified_total",
        "Runtime configs answered 304.",
        counters.config_not_modified.load(Ordering::Relaxed),
    );
    scrape.counter(
        "tenantry_api_not_found_total",
        "Requests naming no tenant (404).",
        counters.not_found.load(Ordering::Relaxed),
    );
    scrape.counter(
        "tenantry_api_bad_requests_total",
        "Malformed requests (400).",
        counters.bad_requests.load(Ordering::Relaxed),
    );
    let logins = node.logins.stats();
    scrape.counter(
        "tenantry_api_logins_succeeded_total",
        "Demo-user logins that issued a session.",
        logins.succeeded.load(Ordering::Relaxed),
    );
    scrape.counter(
        "tenantry_api_logins_failed_total",
        "Demo-user logins refused for a wrong user or password (401).",
        logins.failed.load(Ordering::Relaxed),
    );
    scrape.counter(
        "tenantry_api_logins_limited_total",
        "Demo-user logins refused by the failed-login limiter (429), before any password check.",
        logins.limited.load(Ordering::Relaxed),
    );
    scrape.counter(
        "tenantry_api_login_pbkdf2_total",
        "PBKDF2 derivations run by logins: one per attempt past the limiter.",
        logins.derivations.load(Ordering::Relaxed),
    );
    scrape.gauge("tenantry_api_registry_revision", "The agent's applied revision.", node.agent.revision());
    scrape.seconds(
        "tenantry_api_staleness_seconds",
        "Seconds since the registry proved the view current (+Inf if never).",
        node.staleness(),
    );
    scrape.gauge(
        "tenantry_api_fresh",
        "1 if the view is fresher than the staleness bound.",
        u64::from(node.is_fresh()),
    );
    scrape.certificate_expiry(node.agent.config().tls.as_ref().map(|tls| tls.not_after_unix_s()));
    scrape.into_response(&headers)
}
