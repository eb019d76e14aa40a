//! What every handler shares: [`Node`] (the embedded agent's view, the
//! region, the shards, the logins), the request's tenant as an
//! extractor ([`ReadTenant`], [`WriteTenant`]: resolved from the Host and
//! allowed by region safety, else the refusal is the response), the
//! client's address, and the headers every tenant response carries.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agent::limits::HOST_BYTES_MAX;
use agent::{Agent, TenantEntry};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use plumbing::problem;

use crate::limits::RETRY_AFTER_S;
use crate::policy::{decide, Access, Denial};
use crate::resolve::{client_ip, tenant_id, HostError, HostRules};

/// What every handler reads.
pub struct Node {
    pub agent: Arc<Agent>,
    pub region: String,
    pub rules: HostRules,
    pub staleness_max: Duration,
    pub metrics: Metrics,
    pub shards: crate::store::Shards,
    /// The default shard of each region this node knows one for, by region
    /// (where tenants live that the routing map names no shard for).
    pub default_shards: std::collections::HashMap<String, String>,
    /// Demo-user logins: the failed-login limiter, session keys and tokens.
    pub logins: crate::login::Logins,
    /// Slots for live-config event streams
    /// ([`crate::limits::CONFIG_EVENT_STREAMS_MAX`]).
    pub event_streams: Arc<tokio::sync::Semaphore>,
    /// Turns true when the node stops (event streams end).
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

/// Request counters by outcome, for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub config_served: AtomicU64,
    pub config_not_modified: AtomicU64,
    pub not_found: AtomicU64,
    pub bad_requests: AtomicU64,
}

/// The one answer for "no tenant here", whatever the reason, so that
/// responses reveal nothing about which tenants exist.
pub(crate) fn not_found(node: &Node) -> Response {
    node.metrics.not_found.fetch_add(1, Ordering::Relaxed);
    problem(StatusCode::NOT_FOUND, "no tenant is served at this address")
}

/// Why a request is not served for a tenant.
pub enum Refusal {
    /// 400, with what is wrong.
    BadRequest(String),
    /// 404, the same whatever the reason.
    NotFound,
    /// 403, 421 or 503, as region safety decided.
    Policy(Arc<TenantEntry>, Denial),
}

impl Refusal {
    pub fn into_response(self, node: &Node) -> Response {
        match self {
            Refusal::BadRequest(detail) => {
                node.metrics.bad_requests.fetch_add(1, Ordering::Relaxed);
                problem(StatusCode::BAD_REQUEST, &detail)
            }
            Refusal::NotFound => not_found(node),
            Refusal::Policy(entry, denial) => {
                let response = match denial {
                    Denial::Suspended => problem(StatusCode::FORBIDDEN, "this tenant is suspended"),
                    Denial::Misdirected { home_region } => {
                        let detail = match &home_region {
                            Some(home) => format!("this tenant is served in region {home}; send the request there"),
                            None => "this tenant has no home region that accepts this request".to_owned(),
                        };
                        let mut response = problem(StatusCode::MISDIRECTED_REQUEST, &detail);
                        if let Some(home) = home_region.and_then(|home| HeaderValue::from_str(&home).ok()) {
                            response.headers_mut().insert("x-home-region", home);
                        }
                        response
                    }
                    Denial::ReadOnly | Denial::Locked | Denial::FailingOver { .. } => {
                        let detail = match &denial {
                            Denial::Locked => "this tenant is being moved; writes resume shortly".to_owned(),
                            Denial::FailingOver { to } => {
                                format!("this tenant is failing over to {to}; writes resume there shortly")
                            }
                            _ => {
                                "this node's view is stale: read-only until the registry is reachable again".to_owned()
                            }
                        };
                        let mut response = problem(StatusCode::SERVICE_UNAVAILABLE, &detail);
                        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_S));
                        response
                    }
                };
                with_tenant_headers(response, &entry, &node.region)
            }
        }
    }
}

impl Node {
    /// The view's staleness, if the registry ever proved it current.
    pub fn staleness(&self) -> Option<Duration> {
        self.agent.staleness()
    }

    pub fn is_fresh(&self) -> bool {
        self.staleness().is_some_and(|staleness| staleness < self.staleness_max)
    }

    /// The tenant a request names, if this node may serve it `access`.
    pub fn tenant(&self, headers: &HeaderMap, peer: SocketAddr, access: Access) -> Result<Arc<TenantEntry>, Refusal> {
        let text = |name: &str| headers.get(name).map(|value| value.to_str().map_err(|_| ()));
        let host = text(header::HOST.as_str()).transpose();
        let forwarded = text("x-forwarded-host").transpose();
        let (Ok(host), Ok(forwarded)) = (host, forwarded) else {
            return Err(Refusal::BadRequest("host: not a valid header value".to_owned()));
        };
        let mut buffer = [0u8; HOST_BYTES_MAX];
        let id = match tenant_id(host, forwarded, peer.ip(), &self.rules, &mut buffer) {
            Ok(id) => id,
            Err(HostError::Missing) => return Err(Refusal::BadRequest("host: the Host header is required".to_owned())),
            Err(HostError::Malformed(why)) => return Err(Refusal::BadRequest(format!("host: {why}"))),
            Err(HostError::NotATenant) => return Err(Refusal::NotFound),
        };
        let entry = self.agent.tenant(id).ok_or(Refusal::NotFound)?;
        match decide(&entry.record, &self.region, access, self.is_fresh()) {
            Ok(()) => Ok(entry),
            Err(denial) => Err(Refusal::Policy(entry, denial)),
        }
    }
}

/// The request's tenant, when this node may serve it reads; otherwise the
/// handler never runs and the refusal is the response.
pub struct ReadTenant(pub Arc<TenantEntry>);

/// The request's tenant, when this node may take its writes.
pub struct WriteTenant(pub Arc<TenantEntry>);

/// The connection's peer; without one (no listener info) `0.0.0.0:0`,
/// which no proxy rule trusts.
fn peer_of(parts: &Parts) -> SocketAddr {
    parts
        .extensions
        .get::<trust::PeerInfo>()
        .and_then(|info| info.remote)
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)))
}

fn tenant_of(parts: &Parts, node: &Node, access: Access) -> Result<Arc<TenantEntry>, Refusal> {
    node.tenant(&parts.headers, peer_of(parts), access)
}

/// The address of the request's client: the peer, or behind a trusted
/// proxy the one `X-Forwarded-For` names (what the login limiter counts by).
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<Arc<Node>> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, node: &Arc<Node>) -> Result<Self, Infallible> {
        // A value that is not text cannot be an address list; it is skipped.
        let forwarded_for: Vec<&str> =
            parts.headers.get_all("x-forwarded-for").iter().filter_map(|value| value.to_str().ok()).collect();
        Ok(ClientIp(client_ip(&forwarded_for, peer_of(parts).ip(), &node.rules)))
    }
}

impl FromRequestParts<Arc<Node>> for ReadTenant {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, node: &Arc<Node>) -> Result<Self, Response> {
        tenant_of(parts, node, Access::Read).map(ReadTenant).map_err(|refusal| refusal.into_response(node))
    }
}

impl FromRequestParts<Arc<Node>> for WriteTenant {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, node: &Arc<Node>) -> Result<Self, Response> {
        tenant_of(parts, node, Access::Write).map(WriteTenant).map_err(|refusal| refusal.into_response(node))
    }
}

/// Whether a request opts in to canaries: header `X-Config-Canary: 1` or
/// cookie `config_canary=1`.
pub(crate) fn wants_canary(headers: &HeaderMap) -> bool {
    let header = headers.get("x-config-canary").is_some_and(|value| value.as_bytes() == b"1");
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|cookies| cookies.split(';').any(|pair| pair.trim() == "config_canary=1"));
    header || cookie
}

/// Adds `X-Tenant`, `X-Config-Version` and `X-Region` to a tenant response.
pub fn with_tenant_headers(mut response: Response, entry: &TenantEntry, region: &str) -> Response {
    let headers = response.headers_mut();
    if let Ok(tenant) = HeaderValue::from_str(entry.id()) {
        headers.insert("x-tenant", tenant);
    }
    headers.insert("x-config-version", HeaderValue::from(entry.config_version()));
    if let Ok(region) = HeaderValue::from_str(region) {
        headers.insert("x-region", region);
    }
    response
}
