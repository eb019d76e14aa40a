//! Moving a tenant's rows to another shard of its home region, as a
//! replicated workflow.
//!
//! 1. begin: the registry locks the tenant's writes (api-nodes answer 503
//!    with `Retry-After`; reads go on) and records the move.
//! 2. copy: the home region's api-node (its operator listener) copies the
//!    rows from the old shard to the new one, as its view of the move record
//!    says, fencing the old shard against writers of the old epoch, and
//!    answers both sides' digests.
//! 3. verify: the registry records both digests (refused unless equal).
//! 4. flip: the routing map names the new shard; the epoch grows.
//! 5. unlock: writes resume, on the new shard.
//!
//! The state of the move lives in the registry, so the workflow keeps none:
//! a re-run after any crash reads it and continues from the step it is at;
//! [`abort`] calls it off at any step before the flip. Every step is
//! idempotent or refused when repeated, never applied twice.

use std::time::Duration;

use proto::v1::{self, MoveStep};
use tokio::time::Instant;

use super::Cluster;
use crate::{Error, WriteOptions};

/// How long the copy step keeps retrying an api-node that is restarting or
/// behind.
const COPY_RETRY: Duration = Duration::from_secs(30);

/// Pause between two copy attempts.
const COPY_PAUSE: Duration = Duration::from_millis(500);

/// A failed copy attempt: whether another may succeed, and what was wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyFailed {
    pub retry: bool,
    pub problem: String,
}

/// Where a move stops early (to continue it later, or to watch a step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    Begun,
    Copied,
    Verified,
    Flipped,
}

/// A move to run or continue.
#[derive(Debug, Clone)]
pub struct Move {
    pub tenant: String,
    pub to_shard: String,
    /// The operator listener of an api-node in the tenant's home region:
    /// it copies the rows.
    pub api_admin: Option<String>,
    pub until: Option<Until>,
    pub actor: String,
    pub reason: String,
}

/// What happens, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Begun {
        revision: u64,
    },
    /// A move under way is picked up at `step`.
    Continuing {
        step: String,
    },
    Copied {
        from_shard: String,
        to_shard: String,
        source: v1::ShardDigest,
        target: v1::ShardDigest,
    },
    Verified {
        revision: u64,
    },
    Flipped {
        revision: u64,
        shard: String,
        epoch: u64,
    },
}

/// How a move ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Unlocked on the new shard.
    Moved(Box<v1::WriteResponse>),
    /// Stopped after this step, as asked.
    Stopped(Until),
    /// There was no move to continue, and nothing to start (no shard named).
    NotMoving,
}

fn refused(rule: &str, message: String) -> Error {
    Error::Precondition { rule: rule.to_owned(), current_revision: None, expected_revision: None, message }
}

fn options(actor: &str, reason: &str) -> WriteOptions {
    // Request ids per call: a later move of the same tenant must not replay this one's answers.
    WriteOptions { expected_revision: None, request_id: None, actor: actor.to_owned(), reason: reason.to_owned() }
}

/// Calls off the move of `tenant` (any step before the flip): the old route
/// stays. The move as it was, and the answer.
pub async fn abort(
    cluster: &impl Cluster,
    tenant: &str,
    actor: &str,
    reason: &str,
) -> Result<(v1::TenantMove, v1::WriteResponse), Error> {
    let current = cluster.get_tenant(tenant).await?;
    let Some(moving) = current.r#move else {
        return Err(refused("moving", format!("{tenant} is not being moved")));
    };
    let written = cluster.move_tenant(tenant, MoveStep::Abort, "", None, &options(actor, reason)).await?;
    Ok((moving, written))
}

/// Runs or continues `request`, reporting each step to `event`.
pub async fn run(cluster: &impl Cluster, request: &Move, event: &mut impl FnMut(Event)) -> Result<Outcome, Error> {
    let tenant_id = request.tenant.as_str();
    let options = options(&request.actor, &request.reason);
    let step = |step: MoveStep, digests| cluster.move_tenant(tenant_id, step, &request.to_shard, digests, &options);
    let mut tenant = cluster.get_tenant(tenant_id).await?;
    match &tenant.r#move {
        None => {
            let written = step(MoveStep::Begin, None).await?;
            tenant = written.tenant.unwrap_or_default();
            event(Event::Begun { revision: written.revision });
        }
        Some(moving) if moving.to_shard != request.to_shard => {
            return Err(refused(
                "one-move-at-a-time",
                format!(
                    "{tenant_id} is already moving to {} (step {}): continue that move, or abort it with `regctl move \
                     {tenant_id} --abort`",
                    moving.to_shard, moving.step
                ),
            ));
        }
        Some(moving) => event(Event::Continuing { step: moving.step.clone() }),
    }
    if request.until == Some(Until::Begun) {
        return Ok(Outcome::Stopped(Until::Begun));
    }
    let mut last = None;
    while let Some(moving) = tenant.r#move.clone() {
        let written = match moving.step.as_str() {
            "copying" => {
                let home = tenant.placement.as_ref().map(|placement| placement.home_region.clone()).unwrap_or_default();
                let admin = request.api_admin.as_deref().ok_or_else(|| {
                    Error::invalid(
                        "--api-admin",
                        "required",
                        format!("--api-admin: required to copy: the operator listener of an api-node in {home}"),
                    )
                })?;
                let (source, target) = copy(cluster, admin, tenant_id, moving.began_revision).await?;
                let from_shard = if moving.from_shard.is_empty() {
                    "the default shard".to_owned()
                } else {
                    moving.from_shard.clone()
                };
                let to_shard = moving.to_shard.clone();
                event(Event::Copied { from_shard, to_shard, source: source.clone(), target: target.clone() });
                if request.until == Some(Until::Copied) {
                    return Ok(Outcome::Stopped(Until::Copied));
                }
                let written = step(MoveStep::Verify, Some((source, target))).await?;
                event(Event::Verified { revision: written.revision });
                if request.until == Some(Until::Verified) {
                    return Ok(Outcome::Stopped(Until::Verified));
                }
                written
            }
            "verified" => {
                let written = step(MoveStep::Flip, None).await?;
                let epoch = written.tenant.as_ref().and_then(|tenant| tenant.placement.as_ref()).map_or(0, |p| p.epoch);
                event(Event::Flipped { revision: written.revision, shard: moving.to_shard.clone(), epoch });
                if request.until == Some(Until::Flipped) {
                    return Ok(Outcome::Stopped(Until::Flipped));
                }
                written
            }
            "flipped" => step(MoveStep::Unlock, None).await?,
            other => {
                return Err(Error::invalid(
                    "move.step",
                    "known",
                    format!("{tenant_id}: unknown move step `{other}`; upgrade regctl"),
                ))
            }
        };
        tenant = written.tenant.clone().unwrap_or_default();
        last = Some(written);
    }
    Ok(last.map_or(Outcome::NotMoving, |written| Outcome::Moved(Box::new(written))))
}

/// Asks the api-node at `admin` to copy the rows of the move begun at
/// `began_revision`; retries while it is unreachable or behind.
async fn copy(
    cluster: &impl Cluster,
    admin: &str,
    tenant_id: &str,
    began_revision: u64,
) -> Result<(v1::ShardDigest, v1::ShardDigest), Error> {
    let deadline = Instant::now() + COPY_RETRY;
    loop {
        match cluster.copy_rows(admin, tenant_id, began_revision).await {
            Ok(digests) => return Ok(digests),
            Err(failed) if failed.retry && Instant::now() < deadline => tokio::time::sleep(COPY_PAUSE).await,
            Err(failed) => {
                return Err(Error::Unavailable {
                    message: format!("copy on the api-node at {admin}: {}", failed.problem),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflows::fake::{tenant, Fake};

    fn request(until: Option<Until>) -> Move {
        Move {
            tenant: "acme".to_owned(),
            to_shard: "us-2".to_owned(),
            api_admin: Some("10.0.0.1:9091".to_owned()),
            until,
            actor: "test".to_owned(),
            reason: "rebalance".to_owned(),
        }
    }

    async fn run_collecting(fake: &Fake, request: &Move) -> (Result<Outcome, Error>, Vec<Event>) {
        let mut events = Vec::new();
        let outcome = run(fake, request, &mut |event| events.push(event)).await;
        (outcome, events)
    }

    #[tokio::test(start_paused = true)]
    async fn a_move_runs_every_step_in_order_and_ends_unlocked_on_the_new_shard() {
        let fake = Fake::new(vec![tenant("acme", "us-east", &[])]);
        let (outcome, events) = run_collecting(&fake, &request(None)).await;
        let Ok(Outcome::Moved(written)) = outcome else { panic!("{outcome:?}") };
        assert_eq!(written.tenant.unwrap().shard, "us-2");
        assert_eq!(
            fake.calls(),
            ["move acme begin", "copy acme", "move acme verify", "move acme flip", "move acme unlock"]
        );
        assert!(matches!(events[0], Event::Begun { .. }));
        assert!(matches!(&events[1], Event::Copied { from_shard, .. } if from_shard == "the default shard"));
        assert!(matches!(&events[3], Event::Flipped { shard, epoch: 2, .. } if shard == "us-2"), "{events:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn until_stops_after_a_step_and_a_rerun_continues_from_the_registrys_state() {
        let fake = Fake::new(vec![tenant("acme", "us-east", &[])]);
        assert!(matches!(
            run_collecting(&fake, &request(Some(Until::Verified))).await.0,
            Ok(Outcome::Stopped(Until::Verified))
        ));
        let (outcome, events) = run_collecting(&fake, &request(None)).await;
        assert!(matches!(outcome, Ok(Outcome::Moved(_))), "{outcome:?}");
        assert_eq!(events[0], Event::Continuing { step: "verified".to_owned() });
        let calls = fake.calls();
        assert_eq!(calls.iter().filter(|call| call.contains("copy")).count(), 1, "copied once: {calls:?}");
        assert_eq!(calls.last().map(String::as_str), Some("move acme unlock"));
    }

    #[tokio::test(start_paused = true)]
    async fn an_api_node_that_is_restarting_is_retried_and_one_that_refuses_is_not() {
        let fake = Fake::new(vec![tenant("acme", "us-east", &[])]);
        fake.script_copies(vec![
            Err(CopyFailed { retry: true, problem: "connection refused".to_owned() }),
            Err(CopyFailed { retry: true, problem: "503 behind".to_owned() }),
        ]);
        assert!(matches!(run_collecting(&fake, &request(None)).await.0, Ok(Outcome::Moved(_))));
        assert_eq!(fake.calls().iter().filter(|call| call.starts_with("copy")).count(), 3);

        let fake = Fake::new(vec![tenant("acme", "us-east", &[])]);
        fake.script_copies(vec![Err(CopyFailed { retry: false, problem: "409 fenced".to_owned() })]);
        let error = run_collecting(&fake, &request(None)).await.0.unwrap_err();
        assert_eq!(error.to_string(), "copy on the api-node at 10.0.0.1:9091: 409 fenced");
        assert_eq!(fake.calls().last().map(String::as_str), Some("copy acme"), "no verify after a failed copy");
    }

    #[tokio::test(start_paused = true)]
    async fn a_move_elsewhere_under_way_is_refused_and_abort_calls_it_off() {
        let fake = Fake::new(vec![tenant("acme", "us-east", &[])]);
        run_collecting(&fake, &request(Some(Until::Begun))).await.0.unwrap();
        let elsewhere = Move { to_shard: "us-3".to_owned(), ..request(None) };
        let error = run_collecting(&fake, &elsewhere).await.0.unwrap_err();
        assert!(matches!(&error, Error::Precondition { rule, .. } if rule == "one-move-at-a-time"), "{error:?}");
        let (moving, _) = abort(&fake, "acme", "test", "").await.unwrap();
        assert_eq!((moving.to_shard.as_str(), moving.step.as_str()), ("us-2", "copying"));
        assert!(fake.tenant("acme").unwrap().r#move.is_none());
        let again = abort(&fake, "acme", "test", "").await.unwrap_err();
        assert_eq!(again.to_string(), "acme is not being moved");
        let no_admin = Move { api_admin: None, ..request(None) };
        let error = run_collecting(&fake, &no_admin).await.0.unwrap_err();
        assert!(matches!(&error, Error::Invalid { field, .. } if field == "--api-admin"), "{error:?}");
    }
}
