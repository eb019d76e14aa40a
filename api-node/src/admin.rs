//! The operator listener (`--admin-http`, never the public one): the copy
//! and clean-up steps of a move between shards.
//!
//! `POST /admin/moves/{tenant}/copy?began_revision=N` copies the tenant's
//! rows from its old shard to its new one, as the registry's move record
//! (begun at revision N) says, telling its progress as it goes, and answers
//! both sides' digests for regctl to record; `POST /admin/moves/{tenant}/remove-old-copy?began_revision=N&revision=M`
//! removes them from the old shard once the move is flipped (at revision M,
//! which the node's view reaches first). The instruction
//! is the replicated record in this node's view, not the request: a request
//! naming a move the view does not hold, or a node outside the tenant's home
//! region, changes nothing.

use std::sync::Arc;
use std::time::Duration;

use agent::TenantEntry;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use plumbing::problem;
use proto::v1::{TenantMove, TenantStatus};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use crate::data::{endpoint_of, shard_name};
use crate::limits::{MOVE_PROGRESS_EVERY_MS, MOVE_VIEW_WAIT_MS};
use crate::node::Node;
use crate::store::{CopyProgress, ShardError};

/// Every route needs an operator certificate (over TLS): `/metrics` any
/// role, the copy step of a move the operator role.
pub fn router(node: Arc<Node>) -> Router {
    use trust::net::{guard, Guard};
    let copy_route = Router::new()
        .route("/admin/moves/{tenant}/copy", post(copy))
        .route("/admin/moves/{tenant}/remove-old-copy", post(remove_old_copy))
        .layer(axum::middleware::from_fn_with_state(
            Guard {
                allowed: |identity| identity.role() >= Some(trust::Role::Operator),
                rule: "moving rows needs the operator role",
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
struct MoveQuery {
    began_revision: u64,
    /// The revision the caller saw the move at (its flip, for the removal
    /// of the old copy): the node answers from a view at least that new.
    revision: Option<u64>,
}

/// The move begun at `began` in this node's view, at one of `steps`, with
/// this node in the tenant's home region; otherwise the refusal to answer.
async fn move_in_view(
    node: &Node,
    tenant: &str,
    query: &MoveQuery,
    steps: &[&str],
) -> Result<(Arc<TenantEntry>, TenantMove), Response> {
    let began = query.began_revision;
    let seen = query.revision.unwrap_or(began).max(began);
    if !node.agent.wait_for_revision(seen, Duration::from_millis(MOVE_VIEW_WAIT_MS)).await {
        let detail = format!("this node's view is behind revision {seen}, where the move is; retry shortly");
        return Err(problem(StatusCode::SERVICE_UNAVAILABLE, &detail));
    }
    let Some(entry) = node.agent.tenant(tenant) else {
        return Err(problem(StatusCode::NOT_FOUND, &format!("no tenant {tenant} in this node's view")));
    };
    let record = &entry.record;
    let home = record.placement.as_ref().map(|placement| placement.home_region.as_str()).unwrap_or_default();
    let moving = record.r#move.as_ref().filter(|moving| {
        moving.began_revision == began
            && record.status == TenantStatus::LockedForMove as i32
            && steps.contains(&moving.step.as_str())
    });
    let Some(moving) = moving.cloned() else {
        let detail = format!(
            "the registry's record of {tenant} here holds no move begun at revision {began} at step {}; nothing done",
            steps.join(" or ")
        );
        return Err(problem(StatusCode::CONFLICT, &detail));
    };
    if home != node.region {
        let detail =
            format!("{tenant}'s home region is {home}: its api-node moves the rows, not this one ({})", node.region);
        return Err(problem(StatusCode::MISDIRECTED_REQUEST, &detail));
    }
    Ok((entry, moving))
}

/// A shard's refusal or failure as a problem: its status and detail.
fn failure(step: &str, error: ShardError) -> (StatusCode, String) {
    match error {
        ShardError::StaleEpoch { .. } => (StatusCode::CONFLICT, format!("{error}: the move ended; nothing {step}")),
        ShardError::Invalid { .. } | ShardError::Refused { .. } => {
            (StatusCode::UNPROCESSABLE_ENTITY, format!("{step} refused: {error}"))
        }
        ShardError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, format!("{step} failed: {error}")),
    }
}

/// `POST /admin/moves/{tenant}/copy?began_revision=N`: the copy step.
///
/// A refusal before the copy starts is a problem response. Otherwise the
/// answer is 200 with `application/x-ndjson`: a line `{"progress": …}`
/// ([`CopyProgress`]) at once and every [`MOVE_PROGRESS_EVERY_MS`], the last
/// one as the copy ends, then one last line: both digests, or the copy's
/// problem (with its `status`). The copy runs
/// with the answer: a caller that goes away calls it off (it is idempotent,
/// and a retry copies again).
async fn copy(State(node): State<Arc<Node>>, Path(tenant): Path<String>, Query(query): Query<MoveQuery>) -> Response {
    let (entry, moving) = match move_in_view(&node, &tenant, &query, &["copying", "verified"]).await {
        Ok(found) => found,
        Err(refusal) => return refusal,
    };
    let endpoints = endpoint_of(&node, &entry, &moving.from_shard)
        .and_then(|from| Ok((from, endpoint_of(&node, &entry, &moving.to_shard)?)));
    let (from, to) = match endpoints {
        Ok(endpoints) => endpoints,
        Err(error) => {
            let (status, detail) = failure("copied", error);
            return problem(status, &detail);
        }
    };
    let from_shard = shard_name(&entry, &moving.from_shard);
    let (report, progress) = watch::channel(CopyProgress::default());
    let copying = Box::pin(async move {
        let copied = node.shards.copy_tenant(&from, &to, &entry.record.uid, moving.copy_epoch, &report).await;
        match copied {
            Ok((source, target)) => {
                tracing::info!(%tenant, from = %from_shard, to = %moving.to_shard, rows = source.rows, "copied a tenant's rows for a move");
                json!({
                    "tenant": tenant,
                    "from_shard": from_shard,
                    "to_shard": moving.to_shard,
                    "copy_epoch": moving.copy_epoch,
                    "source": source,
                    "target": target,
                })
            }
            Err(error) => {
                let (status, detail) = failure("copied", error);
                plumbing::problem_body(status, &detail)
            }
        }
    });
    let mut tick = tokio::time::interval(Duration::from_millis(MOVE_PROGRESS_EVERY_MS));
    // A caller slow to read gets the latest progress, not a burst of old ticks.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let lines = futures::stream::unfold(Some((copying, tick)), move |running| {
        let progress = progress.clone();
        async move {
            let (mut copying, mut tick) = running?;
            let told = || json!({ "progress": *progress.borrow() });
            let (lines, running) = tokio::select! {
                biased;
                // Where the copy got to, then the answer.
                answer = &mut copying => (format!("{}\n{answer}\n", told()), None),
                _ = tick.tick() => (format!("{}\n", told()), Some((copying, tick))),
            };
            Some((Ok::<_, std::convert::Infallible>(lines), running))
        }
    });
    ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response()
}

/// `POST /admin/moves/{tenant}/remove-old-copy?began_revision=N`: after the
/// flip, removes the tenant's rows from the shard it left (its fence row
/// stays there, so a lagging writer is still refused).
async fn remove_old_copy(
    State(node): State<Arc<Node>>,
    Path(tenant): Path<String>,
    Query(query): Query<MoveQuery>,
) -> Response {
    let (entry, moving) = match move_in_view(&node, &tenant, &query, &["flipped"]).await {
        Ok(found) => found,
        Err(refusal) => return refusal,
    };
    let epoch = entry.record.placement.as_ref().map_or(0, |placement| placement.epoch);
    let removed = match endpoint_of(&node, &entry, &moving.from_shard) {
        Ok(from) => node.shards.remove_old_copy(&from, &entry.record.uid, epoch).await,
        Err(error) => Err(error),
    };
    let from_shard = shard_name(&entry, &moving.from_shard);
    match removed {
        Ok(rows) => {
            tracing::info!(%tenant, shard = %from_shard, rows, "removed a moved tenant's old copy");
            Json(json!({ "tenant": tenant, "shard": from_shard, "removed_rows": rows })).into_response()
        }
        Err(error) => {
            let (status, detail) = failure("removed", error);
            problem(status, &detail)
        }
    }
}
