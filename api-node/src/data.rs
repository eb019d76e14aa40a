//! The tenant-scoped data API: `POST /api/login`, `GET /api/items`,
//! `POST /api/items` (with `Idempotency-Key`). Every access goes through the
//! request's tenant: its session token, its region-safety decision, and its
//! [`TenantScope`](crate::shard::TenantScope) on the shard that holds it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use agent::sidecar::problem;
use agent::TenantEntry;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{declared_hash, verify_password, AuthError, SESSION_TTL_S};
use crate::limits::RETRY_AFTER_S;
use crate::server::{with_tenant_headers, Node, ReadTenant, WriteTenant};
use crate::shard::{ShardError, TenantScope};

pub fn routes() -> Router<Arc<Node>> {
    Router::new().route("/api/login", post(login)).route("/api/items", get(list_items).post(create_item))
}

fn now_unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// The shard that holds a tenant's rows: the routing map's entry, or the
/// region's default shard for a tenant the map does not name.
pub fn shard_of(node: &Node, entry: &TenantEntry) -> String {
    shard_name(node, &entry.record.shard)
}

/// A shard named in the registry's records (empty: this region's default shard).
pub fn shard_name(node: &Node, shard: &str) -> String {
    match shard {
        "" => format!("default-{}", node.region),
        shard => shard.to_owned(),
    }
}

/// The tenant's scope on its shard, writing at its placement's epoch.
pub fn scope(node: &Node, entry: &TenantEntry) -> Result<TenantScope, ShardError> {
    let epoch = entry.record.placement.as_ref().map_or(0, |placement| placement.epoch);
    node.shards.scope(&shard_of(node, entry), &entry.record.uid, epoch)
}

fn shard_failure(error: ShardError) -> Response {
    match error {
        ShardError::Invalid { field, rule } => problem(StatusCode::BAD_REQUEST, &format!("{field}: {rule}")),
        ShardError::StaleEpoch { .. } => {
            let mut response =
                problem(StatusCode::SERVICE_UNAVAILABLE, &format!("{error}; retry once this node caught up"));
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_S));
            response
        }
        ShardError::Store(_) => {
            tracing::error!(%error, "shard store failed");
            problem(StatusCode::SERVICE_UNAVAILABLE, "the tenant's shard is unavailable")
        }
    }
}

fn unauthorized(error: AuthError) -> Response {
    let mut response = problem(StatusCode::UNAUTHORIZED, &error.to_string());
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// The session user of a request, for the request's tenant.
fn session_user(node: &Node, headers: &HeaderMap, entry: &TenantEntry) -> Result<String, AuthError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(AuthError::BadToken)?;
    node.sessions.verify(token.trim(), &entry.record.uid, now_unix_ms() / 1000)
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

async fn login(State(node): State<Arc<Node>>, ReadTenant(entry): ReadTenant, body: Bytes) -> Response {
    let login: Login = match parse_body(&body) {
        Ok(login) => login,
        Err(detail) => return with_tenant_headers(problem(StatusCode::BAD_REQUEST, &detail), &entry, &node.region),
    };
    let declared = entry.private_json().and_then(|private| declared_hash(private, &login.user));
    // PBKDF2 is deliberately slow: off the async workers.
    let password = login.password;
    let verified = match declared {
        Some(declared) => {
            tokio::task::spawn_blocking(move || verify_password(&password, &declared)).await.unwrap_or(false)
        }
        None => false,
    };
    if !verified {
        return with_tenant_headers(unauthorized(AuthError::BadCredentials), &entry, &node.region);
    }
    let expires = now_unix_ms() / 1000 + SESSION_TTL_S;
    let token = node.sessions.issue(&entry.record.uid, &login.user, expires);
    let body = json!({ "token": token, "user": login.user, "expiresAtUnix": expires });
    with_tenant_headers(Json(body).into_response(), &entry, &node.region)
}

async fn list_items(State(node): State<Arc<Node>>, ReadTenant(entry): ReadTenant, headers: HeaderMap) -> Response {
    let response = match session_user(&node, &headers, &entry) {
        Err(error) => unauthorized(error),
        Ok(_) => match scope(&node, &entry).and_then(|scope| scope.items()) {
            Ok(items) => Json(json!({ "items": items })).into_response(),
            Err(error) => shard_failure(error),
        },
    };
    with_tenant_headers(response, &entry, &node.region)
}

#[derive(Deserialize)]
struct NewItem {
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
        Ok(user) => match parse_body::<NewItem>(&body) {
            Err(detail) => problem(StatusCode::BAD_REQUEST, &detail),
            Ok(new_item) => {
                let idempotency_key = headers.get("idempotency-key").map(|value| value.to_str().unwrap_or("\u{fffd}"));
                let created = scope(&node, &entry)
                    .and_then(|scope| scope.create_item(&new_item.title, &user, idempotency_key, now_unix_ms()));
                match created {
                    Ok((item, false)) => (StatusCode::CREATED, Json(item)).into_response(),
                    Ok((item, true)) => {
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
