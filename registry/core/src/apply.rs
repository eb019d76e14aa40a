//! `apply`: the pure state transition of the registry.

use std::sync::Arc;

use proto::{Revision, TenantId};
use ulid::Ulid;

use super::documents::{compile_documents, compiled};
use super::{
    check_shard, moves, validate_meta, AuditEntry, Canary, Command, CommandError, Compiled, DocumentsPatch, Op,
    Placement, Position, Response, Session, SessionOutcome, Shard, ShardState, State, Tenant, TenantDocuments,
    TenantStatus, Topology, WriteOutcome,
};
use crate::limits::{AUDIT_ENTRIES_MAX, SESSIONS_MAX, SESSION_AGE_MS_MAX};

/// One change to the stored state: the node hands the changed tenants to the
/// watchers. Applying the changes of `apply` in order to a copy of the old
/// state gives the new state (the tests check it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    PutTenant(Arc<Tenant>),
    PutAudit(Arc<AuditEntry>),
    RemoveAudit(Position),
    PutSession(Arc<Session>),
    RemoveSession(String),
    SetClusterId(Ulid),
    SetTopology(Arc<Topology>),
}

/// Applies `command`, number `seq` of the entry at log index `revision`, to
/// `state`.
///
/// Deterministic: the result depends only on the state, the position and the
/// command. A rejected command changes nothing but the session table (so that
/// a retry gets the same rejection).
pub fn apply(state: &mut State, revision: Revision, seq: u32, command: &Command) -> (Response, Vec<Change>) {
    let mut changes = Vec::new();
    let meta = &command.meta;
    // A malformed request id is not remembered: it could never be retried.
    if let Err(error) = validate_meta(meta.request_id.as_deref(), &meta.actor, &meta.reason) {
        return (Response::Rejected(error), changes);
    }
    if let Some(result) = change_topology(state, &command.op) {
        return match result {
            Ok(topology) => {
                state.topology = topology.clone();
                (Response::None, vec![Change::SetTopology(topology)])
            }
            Err(error) => (Response::Rejected(error), changes),
        };
    }
    if let Op::InitCluster { cluster_id } = &command.op {
        // The first cluster id wins; a racing second proposal changes nothing.
        if state.cluster_id.is_none() {
            state.cluster_id = Some(*cluster_id);
            changes.push(Change::SetClusterId(*cluster_id));
        }
        return (Response::None, changes);
    }
    evict_sessions(state, meta.at_unix_ms, &mut changes);

    if let Some(request_id) = &meta.request_id {
        if let Some(session) = state.sessions.get(request_id) {
            let response = match &session.outcome {
                SessionOutcome::Written { tenant } => {
                    let unchanged = state.tenants.get(tenant).filter(|now| now.mod_revision == session.revision);
                    Response::Written(WriteOutcome {
                        revision: session.revision,
                        tenant: unchanged.cloned(),
                        replayed: true,
                    })
                }
                SessionOutcome::Rejected(error) => Response::Rejected(error.clone()),
            };
            return (response, changes);
        }
    }

    let (response, outcome) = match execute(state, revision, command) {
        Ok(tenant) => {
            let tenant = Arc::new(tenant);
            let before = state.tenants.insert(tenant.id.clone(), tenant.clone());
            changes.push(Change::PutTenant(tenant.clone()));
            record_audit(state, (revision, seq), before.as_deref(), &tenant, command, &mut changes);
            let outcome = SessionOutcome::Written { tenant: tenant.id.clone() };
            (Response::Written(WriteOutcome { revision, tenant: Some(tenant), replayed: false }), outcome)
        }
        // Judged on a state the entry did not apply to: a retry is judged again.
        Err(error @ CommandError::Stale { .. }) => return (Response::Rejected(error), changes),
        Err(error) => (Response::Rejected(error.clone()), SessionOutcome::Rejected(error)),
    };

    if let Some(request_id) = &meta.request_id {
        let session =
            Arc::new(Session { request_id: request_id.clone(), revision, seq, at_unix_ms: meta.at_unix_ms, outcome });
        state.insert_session(session.clone());
        changes.push(Change::PutSession(session));
        evict_sessions(state, meta.at_unix_ms, &mut changes);
    }
    (response, changes)
}

/// The leader's judgement of a client's write, made before proposing it
/// with everything in its log applied, so `state` is exactly what the entry
/// at `revision` will apply to: the refusal apply would give it (a refused
/// write takes no log index, no fsync and no replication), or the command to
/// propose, its documents validated and compiled ([`Command::compiled`]).
/// Replays of a known request id and topology operations go as they are:
/// apply decides.
pub fn resolve(state: &State, revision: Revision, mut command: Command) -> Result<Command, CommandError> {
    let meta = &command.meta;
    validate_meta(meta.request_id.as_deref(), &meta.actor, &meta.reason)?;
    let Some(tenant_id) = command.op.tenant() else {
        return Ok(command);
    };
    if meta.request_id.as_ref().is_some_and(|request_id| state.sessions.contains_key(request_id)) {
        return Ok(command);
    }
    let current = state.tenants.get(tenant_id).filter(|tenant| tenant.is_live());
    check_expected_revision(tenant_id, current.map(|tenant| tenant.as_ref()), meta.expected_revision)?;
    if let Some(compiled) = compile_documents(state, current.map(|tenant| tenant.as_ref()), &command)? {
        command.compiled = Some(Arc::new(compiled));
        if let Op::CreateTenant { documents, .. }
        | Op::UpdateTenant { documents, .. }
        | Op::StageCanary { documents, .. } = &mut command.op
        {
            *documents = DocumentsPatch::default();
        }
    }
    execute(state, revision, &command)?;
    Ok(command)
}

/// The topology a topology operation leaves (`None`: not one).
fn change_topology(state: &State, op: &Op) -> Option<Result<Arc<Topology>, CommandError>> {
    let mut topology = Topology::clone(&state.topology);
    match op {
        Op::SetRegionStatus { region, status } => {
            topology.regions.insert(region.clone(), *status);
        }
        Op::AddShard { shard } => {
            if let Err(error) = check_shard(shard) {
                return Some(Err(error));
            }
            if topology.shards.contains_key(&shard.id) {
                return Some(Err(CommandError::invalid("shard.id", "unique", format!("shard {} exists", shard.id))));
            }
            topology.shards.insert(shard.id.clone(), Shard { state: ShardState::Active, ..shard.clone() });
        }
        Op::DrainShard { id } => match topology.shards.get_mut(id) {
            Some(shard) => shard.state = ShardState::Draining,
            None => return Some(Err(CommandError::invalid("id", "exists", format!("no shard {id}")))),
        },
        _ => return None,
    }
    Some(Ok(Arc::new(topology)))
}

/// The routing map entry of a new tenant homed in `home`: the first active
/// shard of that region (`None`: the region's default shard).
fn assign_shard(topology: &Topology, home: Option<&proto::Region>) -> Option<String> {
    let home = home?;
    topology
        .shards
        .values()
        .find(|shard| &shard.region == home && shard.state == ShardState::Active)
        .map(|shard| shard.id.clone())
}

/// Computes the tenant record that `command` leaves, or why it is refused.
fn execute(state: &State, revision: Revision, command: &Command) -> Result<Tenant, CommandError> {
    let meta = &command.meta;
    let Some(tenant_id) = command.op.tenant() else {
        return Err(CommandError::invalid("op", "tenant-op", "not a tenant operation"));
    };
    let current = state.tenants.get(tenant_id).filter(|tenant| tenant.is_live());
    check_expected_revision(tenant_id, current.map(|tenant| tenant.as_ref()), meta.expected_revision)?;
    let live = || current.ok_or_else(|| CommandError::NotFound { tenant: tenant_id.clone() });

    match &command.op {
        Op::CreateTenant { tenant, uid, .. } => {
            if let Some(current) = current {
                return Err(CommandError::AlreadyExists { tenant: tenant.clone(), revision: current.mod_revision });
            }
            let compiled = compiled(state, current.map(|tenant| tenant.as_ref()), command)?;
            let placement = compiled.placement.clone().ok_or_else(|| {
                CommandError::invalid("compiled.placement", "required", "a create carries its initial placement")
            })?;
            let shard = assign_shard(&state.topology, placement.home_region.as_ref());
            Ok(Tenant {
                id: tenant.clone(),
                uid: *uid,
                status: TenantStatus::Active,
                documents: compiled.documents.clone(),
                public_bundle: compiled.public_bundle.clone(),
                private_sha256: compiled.private_sha256.clone(),
                placement,
                create_revision: revision,
                mod_revision: revision,
                config_revision: revision,
                canary: None,
                shard,
                moving: None,
            })
        }
        Op::UpdateTenant { .. } | Op::RollbackTenant { .. } => {
            let current = live()?;
            let compiled = compiled(state, Some(current), command)?;
            Ok(with_documents(current, revision, &compiled))
        }
        Op::DeleteTenant { .. } => {
            let current = live()?;
            moves::not_while_moving(current)?;
            Ok(current.tombstone(revision))
        }
        Op::MoveTenant { step, .. } => moves::move_step(state, live()?, revision, step),
        Op::StageCanary { .. } => {
            let current = live()?;
            let compiled = compiled(state, Some(current), command)?;
            let canary = Canary {
                revision,
                documents: compiled.documents.clone(),
                public_bundle: compiled.public_bundle.clone(),
                private_sha256: compiled.private_sha256.clone(),
            };
            Ok(Tenant { canary: Some(Arc::new(canary)), mod_revision: revision, ..Tenant::clone(current) })
        }
        Op::PromoteCanary { tenant } => {
            let current = live()?;
            let canary = current.canary.as_ref().ok_or_else(|| CommandError::NoCanary { tenant: tenant.clone() })?;
            // The candidate keeps the version it was served under as a canary.
            Ok(Tenant {
                documents: canary.documents.clone(),
                public_bundle: canary.public_bundle.clone(),
                private_sha256: canary.private_sha256.clone(),
                config_revision: canary.revision,
                mod_revision: revision,
                canary: None,
                ..Tenant::clone(current)
            })
        }
        Op::AbortCanary { tenant } => {
            let current = live()?;
            if current.canary.is_none() {
                return Err(CommandError::NoCanary { tenant: tenant.clone() });
            }
            Ok(Tenant { canary: None, mod_revision: revision, ..Tenant::clone(current) })
        }
        Op::PinTenant { allowed_regions, .. } => {
            let current = live()?;
            let placement = pinned(&current.placement, allowed_regions)?;
            let shard = current.shard.as_ref().and_then(|id| state.topology.shards.get(id));
            if let Some(shard) = shard.filter(|shard| !placement.allowed_regions.contains(&shard.region)) {
                return Err(CommandError::invalid(
                    "allowed_regions",
                    "residency",
                    format!("the tenant's shard {} is in {}, outside the pin: move it first", shard.id, shard.region),
                ));
            }
            Ok(Tenant { placement, mod_revision: revision, ..Tenant::clone(current) })
        }
        Op::FenceTenant { to, .. } => {
            let current = live()?;
            moves::not_while_moving(current)?;
            if let Some(to) = to {
                failover_target(&current.placement, to)?;
            }
            let placement = Placement { failing_over_to: to.clone(), ..current.placement.clone() };
            Ok(Tenant { placement, mod_revision: revision, ..Tenant::clone(current) })
        }
        Op::FailoverTenant { to, forced, .. } => {
            let current = live()?;
            moves::not_while_moving(current)?;
            failover_target(&current.placement, to)?;
            if !forced && current.placement.failing_over_to.as_ref() != Some(to) {
                return Err(CommandError::invalid(
                    "to",
                    "fenced",
                    format!("tenant `{}` is not fenced for a failover to {to}: fence it first, or force", current.id),
                ));
            }
            let old_home = current.placement.home_region.clone();
            let placement = Placement {
                home_region: Some(to.clone()),
                // The DR region takes the old home's place when the home moved to it.
                dr_region: match &current.placement.dr_region {
                    Some(dr) if dr == to => old_home,
                    other => other.clone(),
                },
                epoch: current.placement.epoch + 1,
                failing_over_to: None,
                ..current.placement.clone()
            };
            Ok(Tenant { placement, mod_revision: revision, ..Tenant::clone(current) })
        }
        Op::InitCluster { .. } | Op::SetRegionStatus { .. } | Op::AddShard { .. } | Op::DrainShard { .. } => {
            Err(CommandError::invalid("op", "tenant-op", "not a tenant operation"))
        }
    }
}

/// Checks that a tenant may fail over to `to`: it has another home, and `to`
/// is inside its pin.
fn failover_target(placement: &Placement, to: &proto::Region) -> Result<(), CommandError> {
    if placement.home_region.as_ref() == Some(to) {
        return Err(CommandError::invalid("to", "home", format!("{to} is already the home region")));
    }
    if !placement.allowed_regions.is_empty() && !placement.allowed_regions.contains(to) {
        let allowed = placement.allowed_regions.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        return Err(CommandError::invalid(
            "to",
            "residency",
            format!("{to} is outside the tenant's allowed regions ({allowed})"),
        ));
    }
    Ok(())
}

/// The placement with `allowed_regions` as its pin: at least one region,
/// and the home and DR regions inside it (move them first, by failover).
fn pinned(placement: &Placement, allowed_regions: &[proto::Region]) -> Result<Placement, CommandError> {
    let mut allowed = allowed_regions.to_vec();
    allowed.sort();
    allowed.dedup();
    if allowed.is_empty() {
        return Err(CommandError::invalid("allowed_regions", "required", "name at least one region"));
    }
    let names = allowed.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    for (what, region) in [("home", &placement.home_region), ("DR", &placement.dr_region)] {
        if let Some(region) = region.as_ref().filter(|region| !allowed.contains(region)) {
            return Err(CommandError::invalid(
                "allowed_regions",
                "residency",
                format!("the {what} region {region} would be outside {names}: move it first (regctl failover)"),
            ));
        }
    }
    Ok(Placement { allowed_regions: allowed, ..placement.clone() })
}

/// The tenant with new live documents (and their bundles) at `revision`.
fn with_documents(current: &Tenant, revision: Revision, compiled: &Compiled) -> Tenant {
    Tenant {
        documents: compiled.documents.clone(),
        public_bundle: compiled.public_bundle.clone(),
        private_sha256: compiled.private_sha256.clone(),
        mod_revision: revision,
        config_revision: revision,
        ..Tenant::clone(current)
    }
}

fn check_expected_revision(
    tenant: &TenantId,
    current: Option<&Tenant>,
    expected: Option<u64>,
) -> Result<(), CommandError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let current_revision = current.map_or(0, |tenant| tenant.mod_revision.get());
    if current_revision != expected {
        return Err(CommandError::RevisionMismatch { tenant: tenant.clone(), expected, current: current_revision });
    }
    Ok(())
}

fn record_audit(
    state: &mut State,
    (revision, seq): Position,
    before: Option<&Tenant>,
    tenant: &Tenant,
    command: &Command,
    changes: &mut Vec<Change>,
) {
    let summary = match &command.op {
        Op::CreateTenant { .. } => "create".to_owned(),
        Op::UpdateTenant { .. } => {
            format!("update {}", changed(before.map(|before| before.documents.as_ref()), &tenant.documents))
        }
        Op::DeleteTenant { .. } => "delete".to_owned(),
        Op::RollbackTenant { to, .. } => format!("rollback to {to}"),
        Op::StageCanary { .. } => match &tenant.canary {
            Some(canary) => format!("stage canary {}", changed(Some(&tenant.documents), &canary.documents)),
            None => "stage canary".to_owned(),
        },
        Op::PromoteCanary { .. } => format!("promote canary of {}", tenant.config_revision),
        Op::AbortCanary { .. } => "abort canary".to_owned(),
        Op::FenceTenant { to: Some(to), .. } => format!("fence for failover to {to}"),
        Op::FenceTenant { to: None, .. } => "lift failover fence".to_owned(),
        Op::FailoverTenant { to, forced, .. } => format!(
            "failover to {to}, epoch {}{}",
            tenant.placement.epoch,
            if *forced { " (FORCED: no wait for the old region)" } else { "" }
        ),
        Op::PinTenant { .. } => format!(
            "pin {}",
            tenant.placement.allowed_regions.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
        ),
        Op::MoveTenant { step, .. } => moves::summary(step, tenant),
        Op::InitCluster { .. } | Op::SetRegionStatus { .. } | Op::AddShard { .. } | Op::DrainShard { .. } => {
            "cluster".to_owned()
        }
    };
    // What a rollback to this revision restores: the live documents, when this change set them.
    let documents = match &command.op {
        Op::CreateTenant { .. } | Op::UpdateTenant { .. } | Op::RollbackTenant { .. } | Op::PromoteCanary { .. } => {
            Some(tenant.documents.clone())
        }
        _ => None,
    };
    let entry = Arc::new(AuditEntry {
        revision,
        seq,
        id: command.meta.change_id,
        tenant: tenant.id.clone(),
        actor: command.meta.actor.clone(),
        reason: command.meta.reason.clone(),
        summary,
        at_unix_ms: command.meta.at_unix_ms,
        documents,
    });
    state.audit.insert((revision, seq), entry.clone());
    changes.push(Change::PutAudit(entry));
    while state.audit.len() > AUDIT_ENTRIES_MAX {
        if let Some((oldest, _)) = state.audit.pop_first() {
            changes.push(Change::RemoveAudit(oldest));
        }
    }
}

/// The names of the documents that differ between `old` and `new`, for
/// audit summaries ("none": the write left them as they were).
fn changed(old: Option<&TenantDocuments>, new: &TenantDocuments) -> String {
    let empty = TenantDocuments::default();
    let old = old.unwrap_or(&empty);
    let names: Vec<_> = [
        ("config", old.config != new.config),
        ("theme", old.theme != new.theme),
        ("integrations", old.integrations != new.integrations),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect();
    if names.is_empty() {
        return "none".to_owned();
    }
    names.join(",")
}

/// Forgets request ids beyond the count limit or older than the age limit,
/// oldest first. Ages are measured on the proposers' clocks, so a clock step
/// can only make a session live shorter or longer, never break determinism.
fn evict_sessions(state: &mut State, now_unix_ms: u64, changes: &mut Vec<Change>) {
    loop {
        let Some((_, request_id)) = state.sessions_by_position.first_key_value() else {
            return;
        };
        let Some(session) = state.sessions.get(request_id) else {
            return;
        };
        let too_many = state.sessions.len() > SESSIONS_MAX;
        let too_old = session.at_unix_ms.saturating_add(SESSION_AGE_MS_MAX) < now_unix_ms;
        if !too_many && !too_old {
            return;
        }
        let request_id = request_id.clone();
        state.remove_session(&request_id);
        changes.push(Change::RemoveSession(request_id));
    }
}

#[cfg(test)]
#[path = "apply_test.rs"]
mod tests;
