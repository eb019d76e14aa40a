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
//! 5. clean up: once the home region's API agents have applied the flip
//!    (or [`OLD_COPY_GRACE`] has passed), the api-node removes the rows from
//!    the old shard; their fence stays there.
//! 6. unlock: writes resume, on the new shard.
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

/// After the flip, how long the old copy is kept at most for api-nodes that
/// have not applied the flip yet and still read it: twice the default
/// staleness bound (an api-node that stale serves reads of its old view).
pub const OLD_COPY_GRACE: Duration = Duration::from_secs(10);

/// How often the agents' acknowledgements are read while waiting.
const ACK_POLL: Duration = Duration::from_millis(200);

/// A failed copy attempt: whether another may succeed, and what was wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyFailed {
    pub retry: bool,
    pub problem: String,
}

/// The phase of the api-node's copy, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CopyPhase {
    /// Fencing the old shard and reading the rows from it.
    Reading,
    /// Writing them to the new shard.
    Writing,
    /// Both databases computing their digests.
    Digesting,
}

impl CopyPhase {
    const ALL: [CopyPhase; 3] = [CopyPhase::Reading, CopyPhase::Writing, CopyPhase::Digesting];

    /// As the api-node names it.
    pub fn name(self) -> &'static str {
        match self {
            CopyPhase::Reading => "reading",
            CopyPhase::Writing => "writing",
            CopyPhase::Digesting => "digesting",
        }
    }
}

/// How far the api-node's copy is: a line `{"progress": …}` of its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyProgress {
    pub phase: CopyPhase,
    /// Rows read, or written.
    pub rows: u64,
    /// Every row to write, known once they are read.
    pub rows_total: Option<u64>,
}

impl CopyProgress {
    /// The progress a line of the answer tells, if it is one.
    pub fn from_line(line: &[u8]) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_slice(line).ok()?;
        let progress = &value["progress"];
        Some(Self {
            phase: CopyPhase::ALL.into_iter().find(|phase| progress["phase"] == phase.name())?,
            rows: progress["rows"].as_u64()?,
            rows_total: progress["rows_total"].as_u64(),
        })
    }
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
    /// The copy is under way: how far (told often; not a step).
    Copying(CopyProgress),
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
    /// The old shard's rows removed; `waited_for` lists the home region's
    /// API agents that had not applied the flip when the grace ran out.
    OldCopyRemoved {
        shard: String,
        rows: u64,
        waited_for: Vec<String>,
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
pub async fn run(
    cluster: &impl Cluster,
    request: &Move,
    event: &mut (impl FnMut(Event) + Send),
) -> Result<Outcome, Error> {
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
        let home = tenant.placement.as_ref().map(|placement| placement.home_region.clone()).unwrap_or_default();
        let admin = || {
            request.api_admin.as_deref().ok_or_else(|| {
                Error::invalid(
                    "--api-admin",
                    "required",
                    format!("--api-admin: required to move rows: the operator listener of an api-node in {home}"),
                )
            })
        };
        let from_shard =
            if moving.from_shard.is_empty() { "the default shard".to_owned() } else { moving.from_shard.clone() };
        let written = match moving.step.as_str() {
            "copying" => {
                let admin = admin()?;
                let began = moving.began_revision;
                let copy =
                    async || cluster.copy_rows(admin, tenant_id, began, &mut |told| event(Event::Copying(told))).await;
                let (source, target) = retried("copy", admin, copy).await?;
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
            "flipped" => {
                let admin = admin()?;
                let (began, flipped) = (moving.began_revision, tenant.mod_revision);
                let waited_for = wait_for_readers(cluster, &home, flipped).await;
                let removal = || cluster.remove_old_copy(admin, tenant_id, began, flipped);
                let rows = retried("removing the old copy", admin, removal).await?;
                event(Event::OldCopyRemoved { shard: from_shard, rows, waited_for });
                step(MoveStep::Unlock, None).await?
            }
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

/// Runs `attempt` (a request to the api-node at `admin`) until it succeeds,
/// retrying while the api-node is unreachable, restarting or behind.
async fn retried<T>(
    what: &str,
    admin: &str,
    mut attempt: impl AsyncFnMut() -> Result<T, CopyFailed>,
) -> Result<T, Error> {
    let deadline = Instant::now() + COPY_RETRY;
    loop {
        match attempt().await {
            Ok(answer) => return Ok(answer),
            Err(failed) if failed.retry && Instant::now() < deadline => tokio::time::sleep(COPY_PAUSE).await,
            Err(failed) => {
                return Err(Error::Unavailable {
                    message: format!("{what} on the api-node at {admin}: {}", failed.problem),
                })
            }
        }
    }
}

/// Waits until every API agent of `region` acknowledged `revision` (the
/// flip), for at most [`OLD_COPY_GRACE`]; the agents still behind then.
async fn wait_for_readers(cluster: &impl Cluster, region: &str, revision: u64) -> Vec<String> {
    let deadline = Instant::now() + OLD_COPY_GRACE;
    loop {
        let (agents, answered) = cluster.agents().await;
        let behind: Vec<String> = agents
            .iter()
            .filter(|agent| agent.region == region && agent.kind != v1::AgentKind::Frontend as i32)
            .filter(|agent| agent.acked_revision < revision)
            .map(|agent| agent.agent_id.clone())
            .collect();
        if (answered && behind.is_empty()) || Instant::now() >= deadline {
            return behind;
        }
        tokio::time::sleep(ACK_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflows::fake::{agent, tenant, Fake};

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
            [
                "move acme begin",
                "copy acme",
                "move acme verify",
                "move acme flip",
                "remove old copy acme",
                "move acme unlock"
            ]
        );
        assert!(matches!(events[0], Event::Begun { .. }));
        let told = CopyProgress { phase: CopyPhase::Writing, rows: 1, rows_total: Some(3) };
        assert_eq!(events[1], Event::Copying(told), "the copy's progress reaches the caller");
        assert!(matches!(&events[2], Event::Copied { from_shard, .. } if from_shard == "the default shard"));
        assert!(matches!(&events[4], Event::Flipped { shard, epoch: 2, .. } if shard == "us-2"), "{events:?}");
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
        assert_eq!(calls.iter().filter(|call| call.starts_with("copy")).count(), 1, "copied once: {calls:?}");
        assert_eq!(calls.last().map(String::as_str), Some("move acme unlock"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_old_copy_goes_once_the_home_regions_api_agents_have_the_flip_or_the_grace_is_over() {
        // The flip is the fake's revision 4; one agent takes a few looks to get there.
        let fake = Fake::new(vec![tenant("acme", "us-east", &[])]);
        fake.script_agents(|looks, revision| {
            let slow = if looks >= 3 { revision } else { revision - 1 };
            vec![agent("api-use-1", "us-east", slow), agent("api-euw-1", "eu-west", 0)]
        });
        let started = Instant::now();
        let (outcome, events) = run_collecting(&fake, &request(None)).await;
        assert!(matches!(outcome, Ok(Outcome::Moved(_))), "{outcome:?}");
        assert!(started.elapsed() < OLD_COPY_GRACE, "it waited for the agent, not the grace");
        assert!(events.contains(&Event::OldCopyRemoved {
            shard: "the default shard".to_owned(),
            rows: 3,
            waited_for: vec![]
        }));

        // An agent that never gets there is waited for up to the grace, and named.
        let fake = Fake::new(vec![tenant("acme", "us-east", &[])]);
        fake.script_agents(|_, _| vec![agent("api-use-stuck", "us-east", 0)]);
        let started = Instant::now();
        let (outcome, events) = run_collecting(&fake, &request(None)).await;
        assert!(matches!(outcome, Ok(Outcome::Moved(_))), "{outcome:?}");
        assert!(started.elapsed() >= OLD_COPY_GRACE);
        let removed = events.iter().find(|event| matches!(event, Event::OldCopyRemoved { .. }));
        assert!(
            matches!(removed, Some(Event::OldCopyRemoved { waited_for, .. }) if waited_for == &["api-use-stuck"]),
            "{events:?}"
        );
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
