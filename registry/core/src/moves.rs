//! Moving a tenant's rows between two shards of its home region: the
//! replicated half of the workflow (the copy itself is done by the home
//! region's api-node, on the instruction this state carries).
//!
//! begin (locked, `copying`) → verify (`verified`, both digests recorded and
//! equal) → flip (`flipped`: routing map and epoch) → unlock (done). Abort
//! restores the old route at any step before the flip. Every step checks the
//! step before it, so a retried or repeated step is refused, never applied
//! twice; regctl reads the state and continues from where it is.

use std::sync::Arc;

use proto::Revision;

use super::{CommandError, Move, MoveOp, MoveStep, ShardState, State, Tenant, TenantStatus};

/// The tenant that `step` leaves, or why it is refused.
pub(super) fn move_step(
    state: &State,
    current: &Tenant,
    revision: Revision,
    step: &MoveOp,
) -> Result<Tenant, CommandError> {
    let moving = current.moving.as_deref();
    let at = |expected: MoveStep| match moving {
        Some(moving) if moving.step == expected => Ok(moving),
        Some(moving) => Err(CommandError::invalid(
            "step",
            "order",
            format!(
                "the move of `{}` to {} is at step {}, not {}",
                current.id,
                moving.to_shard,
                moving.step.name(),
                expected.name()
            ),
        )),
        None => Err(not_moving(current)),
    };
    let mut next = Tenant { mod_revision: revision, ..current.clone() };
    match step {
        MoveOp::Begin { to_shard } => {
            if let Some(moving) = moving {
                return Err(CommandError::invalid(
                    "to_shard",
                    "one-move",
                    format!(
                        "`{}` is already moving to {} (step {}): continue it with `regctl move {} --to-shard {}`, or abort it",
                        current.id, moving.to_shard, moving.step.name(), current.id, moving.to_shard
                    ),
                ));
            }
            begin_checks(state, current, to_shard)?;
            next.status = TenantStatus::LockedForMove;
            next.moving = Some(Arc::new(Move {
                from_shard: current.shard.clone(),
                to_shard: to_shard.clone(),
                copy_epoch: current.placement.epoch + 1,
                step: MoveStep::Copying,
                began_revision: revision,
                source: None,
                target: None,
            }));
        }
        MoveOp::Verify { source, target } => {
            let moving = match moving {
                // Verifying again (after another copy) is allowed until the flip.
                Some(moving) if moving.step == MoveStep::Verified => moving,
                _ => at(MoveStep::Copying)?,
            };
            if source != target {
                return Err(CommandError::invalid(
                    "target",
                    "equal-copy",
                    format!(
                        "the copy differs: old shard {} rows sha256 {}, new shard {} rows sha256 {}; copy again",
                        source.rows, source.sha256, target.rows, target.sha256
                    ),
                ));
            }
            next.moving = Some(Arc::new(Move {
                step: MoveStep::Verified,
                source: Some(source.clone()),
                target: Some(target.clone()),
                ..moving.clone()
            }));
        }
        MoveOp::Flip => {
            let moving = at(MoveStep::Verified)?;
            next.shard = Some(moving.to_shard.clone());
            next.placement.epoch = moving.copy_epoch + 1;
            next.moving = Some(Arc::new(Move { step: MoveStep::Flipped, ..moving.clone() }));
        }
        MoveOp::Unlock => {
            at(MoveStep::Flipped)?;
            next.status = TenantStatus::Active;
            next.moving = None;
        }
        MoveOp::Abort => {
            let moving = moving.ok_or_else(|| not_moving(current))?;
            if moving.step == MoveStep::Flipped {
                return Err(CommandError::invalid(
                    "step",
                    "before-flip",
                    format!(
                        "`{}` already lives on {} (flipped): finish with `regctl move {} --to-shard {}`",
                        current.id, moving.to_shard, current.id, moving.to_shard
                    ),
                ));
            }
            // The old shard may have seen the copy's epoch: writers go one higher.
            next.placement.epoch = moving.copy_epoch + 1;
            next.status = TenantStatus::Active;
            next.moving = None;
        }
    }
    Ok(next)
}

fn not_moving(tenant: &Tenant) -> CommandError {
    CommandError::invalid("step", "moving", format!("`{}` is not being moved", tenant.id))
}

/// A move may begin to an active shard of the tenant's home region other
/// than its own, when nothing else holds the tenant.
fn begin_checks(state: &State, current: &Tenant, to_shard: &str) -> Result<(), CommandError> {
    let shard = state
        .topology
        .shards
        .get(to_shard)
        .ok_or_else(|| CommandError::invalid("to_shard", "exists", format!("no shard {to_shard}")))?;
    if shard.state != ShardState::Active {
        return Err(CommandError::invalid("to_shard", "active", format!("shard {to_shard} is draining")));
    }
    if current.shard.as_deref() == Some(to_shard) {
        return Err(CommandError::invalid(
            "to_shard",
            "other",
            format!("`{}` already lives on {to_shard}", current.id),
        ));
    }
    match &current.placement.home_region {
        Some(home) if *home == shard.region => {}
        home => {
            let home = home.as_ref().map_or_else(|| "none".to_owned(), ToString::to_string);
            return Err(CommandError::invalid(
                "to_shard",
                "home-region",
                format!(
                    "shard {to_shard} is in {}, not in the tenant's home region ({home}): fail over first",
                    shard.region
                ),
            ));
        }
    }
    // The home region's api-nodes copy the rows: they must be able to read the old shard.
    let from = current.shard.as_ref().and_then(|id| state.topology.shards.get(id));
    if let Some(from) = from.filter(|from| Some(&from.region) != current.placement.home_region.as_ref()) {
        return Err(CommandError::invalid(
            "to_shard",
            "home-region",
            format!(
                "the tenant's rows are on shard {} in {}, outside its home region: the home region's api-nodes cannot copy them",
                from.id, from.region
            ),
        ));
    }
    if current.status != TenantStatus::Active {
        return Err(CommandError::invalid("tenant", "active", format!("`{}` is not active", current.id)));
    }
    if let Some(to) = &current.placement.failing_over_to {
        return Err(CommandError::invalid(
            "tenant",
            "one-move",
            format!("`{}` is failing over to {to}: finish or lift the failover first", current.id),
        ));
    }
    Ok(())
}

/// Refuses a change of home region or a delete while a move holds the tenant.
pub(super) fn not_while_moving(current: &Tenant) -> Result<(), CommandError> {
    match &current.moving {
        Some(moving) => Err(CommandError::invalid(
            "tenant",
            "one-move",
            format!(
                "`{}` is moving to shard {} (step {}): finish or abort the move first",
                current.id,
                moving.to_shard,
                moving.step.name()
            ),
        )),
        None => Ok(()),
    }
}

/// The audit summary of a move step, from the tenant it left.
pub(super) fn summary(step: &MoveOp, tenant: &Tenant) -> String {
    let to = tenant
        .moving
        .as_ref()
        .map_or_else(|| tenant.shard.clone().unwrap_or_default(), |moving| moving.to_shard.clone());
    match step {
        MoveOp::Begin { to_shard } => format!("move to shard {to_shard}: begin (writes locked)"),
        MoveOp::Verify { source, .. } => {
            format!("move to shard {to}: verified {} rows, sha256 {}", source.rows, source.sha256)
        }
        MoveOp::Flip => format!("move to shard {to}: flipped, epoch {}", tenant.placement.epoch),
        MoveOp::Unlock => format!("move to shard {to}: done (unlocked)"),
        MoveOp::Abort => format!(
            "move aborted: stays on shard {}, epoch {}",
            tenant.shard.as_deref().unwrap_or("(default)"),
            tenant.placement.epoch
        ),
    }
}
