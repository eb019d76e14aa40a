//! The tenant-scoped data API: `POST /api/login`, `GET /api/items`,
//! `POST /api/items` (with `Idempotency-Key`). Every access goes through the
//! request's tenant: its session token, its region-safety decision, and its
//! [`TenantScope`](crate::store::TenantScope) on the shard that holds it.
//!
//! Logins go through [`Logins`](crate::login::Logins): over the failed-login
//! limit a login is answered 429 with `Retry-After` before any PBKDF2 runs;
//! otherwise 401 `BadCredentials` whatever was wrong, after the same work.
//! A session token is checked against the tenant's current private bundle
//! on every request, so removing a user or changing a password ends their
//! sessions.

use std::sync::Arc;

use agent::TenantEntry;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use plumbing::{now_unix_ms, problem};
use serde::Deserialize;
use serde_json::json;

use crate::auth::AuthError;
use crate::limiter::Limited;
use crate::limits::RETRY_AFTER_S;
use crate::node::{with_tenant_headers, ClientIp, Node, ReadTenant, WriteTenant};
use crate::store::{Item, NewItem, ShardError, TenantScope};

pub fn routes() -> Router<Arc<Node>> {
    Router::new().route("/api/login", post(login)).route("/api/items", get(list_items).post(create_item))
}

/// The shard that holds a tenant's rows: the routing map's entry, or its
/// home region's default shard for a tenant the map does not name.
pub fn shard_of(entry: &TenantEntry) -> String {
    shard_name(entry, &entry.record.shard)
}

/// A shard named in `entry`'s record (empty: its home region's default shard).
pub fn shard_name(entry: &TenantEntry, shard: &str) -> String {
    match shard {
        "" => format!("default-{}", home_of(entry)),
        shard => shard.to_owned(),
    }
}

fn home_of(entry: &TenantEntry) -> &str {
    entry.record.placement.as_ref().map_or("", |placement| placement.home_region.as_str())
}

/// Where the shard `shard` (as `entry` names it) lives: the endpoint the
/// registry sent with the record, or for the default shard (empty) the
/// `--default-shard` this node has for the tenant's home region.
pub fn endpoint_of(node: &Node, entry: &TenantEntry, shard: &str) -> Result<String, ShardError> {
    if shard.is_empty() {
        let home = home_of(entry);
        if let Some(endpoint) = node.default_shards.get(home) {
            return Ok(endpoint.clone());
        }
        // A development node (its own default shard embedded) keeps every
        // region's default shard embedded too; a production one is told.
        let own = node.default_shards.get(&node.region).map_or("", String::as_str);
        if own.starts_with("embedded:") && proto::Region::parse(home).is_ok() {
            return Ok(format!("embedded:default-{home}"));
        }
        return Err(ShardError::Refused {
            endpoint: format!("default-{home}"),
            reason: format!("this node has no --default-shard for region {home}"),
        });
    }
    let named = entry.record.shards.iter().find(|info| info.id == shard);
    named.map(|info| info.endpoint.clone()).ok_or_else(|| ShardError::Refused {
        endpoint: shard.to_owned(),
        reason: "the registry sent no endpoint for this shard with the tenant's record (a registry older than this \
                 api-node?)"
            .to_owned(),
    })
}

/// The tenant's scope on its shard, writing at its placement's epoch.
pub fn scope(node: &Node, entry: &TenantEntry) -> Result<TenantScope, ShardError> {
    let epoch = entry.record.placement.as_ref().map_or(0, |placement| placement.epoch);
    node.shards.scope(&endpoint_of(node, entry, &entry.record.shard)?, &entry.record.uid, epoch)
}

/// The caller's last write, as `SHARD@LSN`: a header it echoes, or the
/// cookie a browser sends back by itself.
const READ_AFTER_HEADER: &str = "x-read-after";
const READ_AFTER_COOKIE: &str = "tenantry_read_after";

/// How long a browser keeps the read-after cookie, in seconds: replicas
/// catch up within that in any healthy setup.
const READ_AFTER_COOKIE_MAX_AGE_S: u64 = 60;

/// The tenant's shard id and its replica's endpoint, if it has one.
fn replica_of(entry: &TenantEntry) -> Option<(&str, &str)> {
    let shard = entry.record.shards.iter().find(|info| info.id == entry.record.shard)?;
    (!shard.replica_endpoint.is_empty()).then_some((shard.id.as_str(), shard.replica_endpoint.as_str()))
}

/// The caller's last write on `shard` (a PostgreSQL LSN, `X/Y` in hex), from
/// the header or the cookie; anything else is ignored.
fn read_after(headers: &HeaderMap, shard: &str) -> Option<String> {
    let header = headers.get(READ_AFTER_HEADER).and_then(|value| value.to_str().ok()).map(str::to_owned);
    let cookie = || {
        headers.get_all(header::COOKIE).iter().filter_map(|value| value.to_str().ok()).find_map(|cookies| {
            cookies
                .split(';')
                .find_map(|pair| pair.trim().strip_prefix(READ_AFTER_COOKIE)?.strip_prefix('=').map(str::to_owned))
        })
    };
    let value = header.or_else(cookie)?;
    let (named, lsn) = value.split_once('@')?;
    let hex = |part: &str| (1..=8).contains(&part.len()) && part.bytes().all(|byte| byte.is_ascii_hexdigit());
    let valid = lsn.split_once('/').is_some_and(|(high, low)| hex(high) && hex(low));
    (named == shard && valid).then(|| lsn.to_owned())
}

/// The tenant's scope on its shard's replica, if the shard has one.
pub fn replica_scope(node: &Node, entry: &TenantEntry) -> Option<Result<TenantScope, ShardError>> {
    replica_of(entry).map(|(_, replica)| node.shards.scope(replica, &entry.record.uid, 0))
}

/// The tenant's items, from its shard's replica when it has replayed the
/// caller's last write (or the caller named none), else from the primary;
/// and which answered.
async fn read_items(
    node: &Node,
    entry: &TenantEntry,
    headers: &HeaderMap,
) -> Result<(Vec<Item>, &'static str), ShardError> {
    let primary = scope(node, entry)?;
    if let (Some((shard, _)), Some(replica)) = (replica_of(entry), replica_scope(node, entry)) {
        let replica = replica?;
        let fresh = match read_after(headers, shard) {
            None => true,
            Some(position) => replica.replayed(&position).await.unwrap_or(false),
        };
        if fresh {
            match replica.items().await {
                Ok(items) => return Ok((items, "replica")),
                Err(error) => tracing::warn!(%error, "replica unavailable; reading from the primary"),
            }
        }
    }
    Ok((primary.items().await?, "primary"))
}

fn shard_failure(error: ShardError) -> Response {
    let retry_later = |detail: &str| {
        let mut response = problem(StatusCode::SERVICE_UNAVAILABLE, detail);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_S));
        response
    };
    match error {
        ShardError::Invalid { field, rule } => problem(StatusCode::BAD_REQUEST, &format!("{field}: {rule}")),
        ShardError::StaleEpoch { .. } => retry_later(&format!("{error}; retry once this node caught up")),
        ShardError::Unavailable { .. } => {
            tracing::warn!(%error, "shard unavailable");
            retry_later("the tenant's shard is unavailable; retry shortly")
        }
        ShardError::Refused { .. } => {
            tracing::error!(%error, "shard refused");
            problem(StatusCode::SERVICE_UNAVAILABLE, "the tenant's shard is not usable by this node")
        }
    }
}

/// 429 for a login over a failed-login limit: `Retry-After` and a problem
/// body naming the rule (`rule`, and in words in `detail`).
fn too_many_logins(limited: &Limited) -> Response {
    let status = StatusCode::TOO_MANY_REQUESTS;
    let body = json!({
        "type": "about:blank", "title": status.canonical_reason(), "status": status.as_u16(),
        "detail": limited.to_string(), "rule": limited.rule.name(), "retryAfterS": limited.retry_after_s(),
    });
    let mut response = (status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(limited.retry_after_s()));
    response
}

fn unauthorized(error: AuthError) -> Response {
    let mut response = problem(StatusCode::UNAUTHORIZED, &error.to_string());
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// The session user of a request, for the request's tenant and its users
/// as the view has them now.
fn session_user(node: &Node, headers: &HeaderMap, entry: &TenantEntry) -> Result<String, AuthError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(AuthError::BadToken)?;
    node.logins.session_user(token.trim(), &entry.record.uid, entry.private_json(), now_unix_ms() / 1000)
}

/// The JSON body, or the words of a 400 naming what is wrong.
fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|error| format!("body: not the expected JSON ({error})"))
}

#[derive(Deserialize)]
struct Login {
    user: String,
    password: String,
}

/// `POST /api/login`: `{"user", "password"}` to `{"token", "user",
/// "expiresAtUnix"}`; 401 for any wrong user or password, 429 over the
/// failed-login limit.
async fn login(
    State(node): State<Arc<Node>>,
    ReadTenant(entry): ReadTenant,
    ClientIp(client): ClientIp,
    body: Bytes,
) -> Response {
    let login: Login = match parse_body(&body) {
        Ok(login) => login,
        Err(detail) => return with_tenant_headers(problem(StatusCode::BAD_REQUEST, &detail), &entry, &node.region),
    };
    // The limiter first, on this worker: an attempt over a limit costs no PBKDF2.
    let admission = match node.logins.admit(&entry.record.uid, &login.user, client, node.logins.now_ms()) {
        Ok(admission) => admission,
        Err(limited) => return with_tenant_headers(too_many_logins(&limited), &entry, &node.region),
    };
    // PBKDF2 is deliberately slow: off the async workers. A panic there is a
    // failed login (its limiter token stays taken).
    let (worker_node, worker_entry) = (node.clone(), entry.clone());
    let issued = tokio::task::spawn_blocking(move || {
        let private_bundle = worker_entry.private_json();
        worker_node.logins.complete(admission, private_bundle, &login.password, now_unix_ms() / 1000)
    })
    .await
    .unwrap_or(Err(AuthError::BadCredentials));
    let response = match issued {
        Ok(issued) => {
            Json(json!({ "token": issued.token, "user": issued.user, "expiresAtUnix": issued.expires_unix_s }))
                .into_response()
        }
        Err(error) => unauthorized(error),
    };
    with_tenant_headers(response, &entry, &node.region)
}

async fn list_items(State(node): State<Arc<Node>>, ReadTenant(entry): ReadTenant, headers: HeaderMap) -> Response {
    let response = match session_user(&node, &headers, &entry) {
        Err(error) => unauthorized(error),
        Ok(_) => match read_items(&node, &entry, &headers).await {
            Ok((items, served_from)) => {
                ([("x-served-from", served_from)], Json(json!({ "items": items }))).into_response()
            }
            Err(error) => shard_failure(error),
        },
    };
    with_tenant_headers(response, &entry, &node.region)
}

#[derive(Deserialize)]
struct ItemBody {
    title: String,
}

async fn create_item(
    State(node): State<Arc<Node>>,
    WriteTenant(entry): WriteTenant,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = match session_user(&node, &headers, &entry) {
        Err(error) => unauthorized(error),
        Ok(user) => match parse_body::<ItemBody>(&body) {
            Err(detail) => problem(StatusCode::BAD_REQUEST, &detail),
            Ok(new_item) => {
                let idempotency_key = headers.get("idempotency-key").map(|value| value.to_str().unwrap_or("\u{fffd}"));
                let new =
                    NewItem { title: &new_item.title, created_by: &user, idempotency_key, now_unix_ms: now_unix_ms() };
                let created = async {
                    let scope = scope(&node, &entry)?;
                    let created = scope.create_item(&new).await?;
                    // Where a replica may serve the caller's next reads: once it replayed this far.
                    let position = match replica_of(&entry) {
                        Some((shard, _)) => scope.position().await.ok().flatten().map(|lsn| format!("{shard}@{lsn}")),
                        None => None,
                    };
                    Ok::<_, ShardError>((created, position))
                }
                .await;
                match created {
                    Ok(((item, false), position)) => {
                        let mut response = (StatusCode::CREATED, Json(item)).into_response();
                        if let Some(position) = position.and_then(|position| HeaderValue::from_str(&position).ok()) {
                            let cookie = format!(
                                "{READ_AFTER_COOKIE}={}; Path=/api; Max-Age={READ_AFTER_COOKIE_MAX_AGE_S}; HttpOnly; SameSite=Strict",
                                position.to_str().unwrap_or_default()
                            );
                            if let Ok(cookie) = HeaderValue::from_str(&cookie) {
                                response.headers_mut().insert(header::SET_COOKIE, cookie);
                            }
                            response.headers_mut().insert(READ_AFTER_HEADER, position);
                        }
                        response
                    }
                    Ok(((item, true), _)) => {
                        let mut response = (StatusCode::OK, Json(item)).into_response();
                        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
                        response
                    }
                    Err(error) => shard_failure(error),
                }
            }
        },
    };
    with_tenant_headers(response, &entry, &node.region)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::{LimitRule, Rule};

    #[tokio::test]
    async fn a_limited_login_is_a_429_with_retry_after_naming_the_rule() {
        let limited = Limited {
            rule: LimitRule::PerClientAddress,
            limit: Rule { burst: 20, refill_ms: 6_000 },
            retry_after_ms: 4_001,
        };
        let response = too_many_logins(&limited);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers().get(header::RETRY_AFTER).and_then(|value| value.to_str().ok()), Some("5"));
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()),
            Some("application/problem+json")
        );
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["status"], 429);
        assert_eq!(body["rule"], "login-failures-per-client-address");
        assert_eq!(body["retryAfterS"], 5);
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("from this address") && detail.contains("20 at once"), "{detail}");
    }
}
