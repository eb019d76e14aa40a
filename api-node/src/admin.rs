//! The operator listener (`--admin-http`, never the public one): the copy
//! step of a move between shards.
//!
//! `POST /admin/moves/{tenant}/copy?began_revision=N` copies the tenant's
//! rows from its old shard to its new one, as the registry's move record
//! (begun at revision N) says, and answers both sides' digests for regctl
//! to record. The instruction is the replicated record in this node's view,
//! not the request: a request naming a move the view does not hold, or a
//! node outside the tenant's home region, changes nothing.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use plumbing::problem;
use proto::v1::TenantStatus;
use serde::Deserialize;
use serde_json::json;

use crate::limits::MOVE_VIEW_WAIT_MS;
use crate::node::Node;
use crate::shard::ShardError;

/// Every route needs an operator certificate (over TLS): `/metrics` any
/// role, the copy step of a move the operator role.
pub fn router(node: Arc<Node>) -> Router {
    use trust::net::{guard, Guard};
    let copy_route =
        Router::new().route("/admin/moves/{tenant}/copy", post(copy)).layer(axum::middleware::from_fn_with_state(
            Guard {
                allowed: |identity| identity.role() >= Some(trust::Role::Operator),
                rule: "copying rows needs the operator role",
            },
            guard,
        ));
    let metrics_route = Router::new().route("/metrics", axum::routing::get(crate::server::metrics)).layer(
        axum::middleware::from_fn_with_state(
            Guard { allowed: |identity| identity.role().is_some(), rule: "/metrics needs an operator certificate" },
            guard,
        ),
    );
    copy_route.merge(metrics_route).with_state(node)
}

#[derive(Deserialize)]
struct CopyQuery {
    began_revision: u64,
}

async fn copy(State(node): State<Arc<Node>>, Path(tenant): Path<String>, Query(query): Query<CopyQuery>) -> Response {
    let began = query.began_revision;
    if !node.agent.wait_for_revision(began, Duration::from_millis(MOVE_VIEW_WAIT_MS)).await {
        let detail = format!("this node's view is behind revision {began}, which began the move; retry shortly");
        return problem(StatusCode::SERVICE_UNAVAILABLE, &detail);
    }
    let Some(entry) = node.agent.tenant(&tenant) else {
        return problem(StatusCode::NOT_FOUND, &format!("no tenant {tenant} in this node's view"));
    };
    let record = &entry.record;
    let home = record.placement.as_ref().map(|placement| placement.home_region.as_str()).unwrap_or_default();
    let moving = record.r#move.as_ref().filter(|moving| {
        moving.began_revision == began
            && record.status == TenantStatus::LockedForMove as i32
            && matches!(moving.step.as_str(), "copying" | "verified")
    });
    let Some(moving) = moving else {
        let detail = format!("the registry's record of {tenant} here holds no move begun at revision {began} and not yet flipped; nothing copied");
        return problem(StatusCode::CONFLICT, &detail);
    };
    if home != node.region {
        let detail =
            format!("{tenant}'s home region is {home}: its api-node copies the rows, not this one ({})", node.region);
        return problem(StatusCode::MISDIRECTED_REQUEST, &detail);
    }
    let from = crate::data::shard_name(&node, &moving.from_shard);
    let to = moving.to_shard.clone();
    let (uid, copy_epoch) = (record.uid.clone(), moving.copy_epoch);
    let copier = node.clone();
    let copied = tokio::task::spawn_blocking(move || copier.shards.copy_tenant(&from, &to, &uid, copy_epoch)).await;
    match copied {
        Ok(Ok((source, target))) => {
            tracing::info!(%tenant, from = %crate::data::shard_name(&node, &moving.from_shard), to = %moving.to_shard, rows = source.rows, "copied a tenant's rows for a move");
            Json(json!({
                "tenant": tenant,
                "from_shard": crate::data::shard_name(&node, &moving.from_shard),
                "to_shard": moving.to_shard,
                "copy_epoch": copy_epoch,
                "source": source,
                "target": target,
            }))
            .into_response()
        }
        Ok(Err(error @ ShardError::StaleEpoch { .. })) => {
            problem(StatusCode::CONFLICT, &format!("{error}: the move ended; nothing copied"))
        }
        Ok(Err(error)) => problem(StatusCode::SERVICE_UNAVAILABLE, &format!("copy failed: {error}")),
        Err(error) => problem(StatusCode::INTERNAL_SERVER_ERROR, &format!("copy failed: {error}")),
    }
}
