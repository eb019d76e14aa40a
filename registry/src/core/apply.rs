//! `apply`: the pure state transition of the registry.

use std::sync::Arc;

use proto::{Revision, TenantId};
use ulid::Ulid;

use super::{
    canonical_document, compile_bundles, initial_placement, validate_meta, AuditEntry, Command, CommandError,
    DocumentKind, DocumentLimits, DocumentsPatch, Op, Response, Session, SessionOutcome, State, Tenant,
    TenantDocuments, TenantStatus, WriteOutcome,
};
use crate::limits::{AUDIT_ENTRIES_MAX, DOCUMENT_BYTES_HARD_MAX, SESSIONS_MAX, SESSION_AGE_MS_MAX};

/// One change to the stored state, for the storage adapter to mirror (and,
/// later, for watchers to see). Applying the changes of `apply` in order to a
/// copy of the old state gives the new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    PutTenant(Arc<Tenant>),
    PutAudit(Arc<AuditEntry>),
    RemoveAudit(Revision),
    PutSession(Arc<Session>),
    RemoveSession(String),
    SetClusterId(Ulid),
}

/// Applies `command`, the entry at log index `revision`, to `state`.
///
/// Deterministic: the result depends only on the state, the revision and the
/// command. A rejected command changes nothing but the session table (so that
/// a retry gets the same rejection).
pub fn apply(state: &mut State, revision: Revision, command: &Command) -> (Response, Vec<Change>) {
    let mut changes = Vec::new();
    let meta = &command.meta;
    // A malformed request id is not remembered: it could never be retried.
    if let Err(error) = validate_meta(meta.request_id.as_deref(), &meta.actor, &meta.reason) {
        return (Response::Rejected(error), changes);
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
            state.tenants.insert(tenant.id.clone(), tenant.clone());
            changes.push(Change::PutTenant(tenant.clone()));
            record_audit(state, revision, &tenant.id, command, &mut changes);
            let outcome = SessionOutcome::Written { tenant: tenant.id.clone() };
            (Response::Written(WriteOutcome { revision, tenant: Some(tenant), replayed: false }), outcome)
        }
        Err(error) => (Response::Rejected(error.clone()), SessionOutcome::Rejected(error)),
    };

    if let Some(request_id) = &meta.request_id {
        let session =
            Arc::new(Session { request_id: request_id.clone(), revision, at_unix_ms: meta.at_unix_ms, outcome });
        state.insert_session(session.clone());
        changes.push(Change::PutSession(session));
        evict_sessions(state, meta.at_unix_ms, &mut changes);
    }
    (response, changes)
}

/// Computes the tenant record that `command` leaves, or why it is refused.
fn execute(state: &State, revision: Revision, command: &Command) -> Result<Tenant, CommandError> {
    let meta = &command.meta;
    let Some(tenant_id) = command.op.tenant() else {
        return Err(CommandError::invalid("op", "tenant-op", "not a tenant operation"));
    };
    let current = state.tenants.get(tenant_id).filter(|tenant| tenant.is_live());
    check_expected_revision(tenant_id, current.map(|tenant| tenant.as_ref()), meta.expected_revision)?;

    match &command.op {
        Op::CreateTenant { tenant, uid, documents, proposer_region } => {
            if let Some(current) = current {
                return Err(CommandError::AlreadyExists { tenant: tenant.clone(), revision: current.mod_revision });
            }
            let documents = patched(TenantDocuments::default(), documents)?;
            let placement = initial_placement(&documents.config, proposer_region.as_ref())?;
            let (public_bundle, private_bundle) = compile_bundles(tenant, revision, &documents);
            Ok(Tenant {
                id: tenant.clone(),
                uid: *uid,
                status: TenantStatus::Active,
                documents,
                public_bundle,
                private_bundle,
                placement,
                create_revision: revision,
                mod_revision: revision,
            })
        }
        Op::UpdateTenant { tenant, documents } => {
            let current = current.ok_or_else(|| CommandError::NotFound { tenant: tenant.clone() })?;
            if documents.names().is_empty() {
                return Err(CommandError::invalid("documents", "required", "set at least one document"));
            }
            let documents = patched(current.documents.clone(), documents)?;
            let (public_bundle, private_bundle) = compile_bundles(tenant, revision, &documents);
            Ok(Tenant { documents, public_bundle, private_bundle, mod_revision: revision, ..Tenant::clone(current) })
        }
        Op::DeleteTenant { tenant } => {
            let current = current.ok_or_else(|| CommandError::NotFound { tenant: tenant.clone() })?;
            Ok(Tenant { status: TenantStatus::Deleted, mod_revision: revision, ..Tenant::clone(current) })
        }
        Op::InitCluster { .. } => Err(CommandError::invalid("op", "tenant-op", "not a tenant operation")),
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

/// Applies a documents patch, re-validating each document it sets.
fn patched(mut documents: TenantDocuments, patch: &DocumentsPatch) -> Result<TenantDocuments, CommandError> {
    let limits = DocumentLimits { document_bytes_max: DOCUMENT_BYTES_HARD_MAX };
    let slots = [
        (DocumentKind::Config, &patch.config, &mut documents.config),
        (DocumentKind::Theme, &patch.theme, &mut documents.theme),
        (DocumentKind::Integrations, &patch.integrations, &mut documents.integrations),
    ];
    for (kind, new, slot) in slots {
        if let Some(text) = new {
            *slot = canonical_document(kind, text, limits)?;
        }
    }
    Ok(documents)
}

fn record_audit(
    state: &mut State,
    revision: Revision,
    tenant: &TenantId,
    command: &Command,
    changes: &mut Vec<Change>,
) {
    let summary = match &command.op {
        Op::CreateTenant { .. } => "create".to_owned(),
        Op::UpdateTenant { documents, .. } => format!("update {}", documents.names().join(",")),
        Op::DeleteTenant { .. } => "delete".to_owned(),
        Op::InitCluster { .. } => "init cluster".to_owned(),
    };
    let entry = Arc::new(AuditEntry {
        revision,
        id: command.meta.change_id,
        tenant: tenant.clone(),
        actor: command.meta.actor.clone(),
        reason: command.meta.reason.clone(),
        summary,
        at_unix_ms: command.meta.at_unix_ms,
    });
    state.audit.insert(revision, entry.clone());
    changes.push(Change::PutAudit(entry));
    while state.audit.len() > AUDIT_ENTRIES_MAX {
        if let Some((oldest, _)) = state.audit.pop_first() {
            changes.push(Change::RemoveAudit(oldest));
        }
    }
}

/// Forgets request ids beyond the count limit or older than the age limit,
/// oldest first. Ages are measured on the proposers' clocks, so a clock step
/// can only make a session live shorter or longer, never break determinism.
fn evict_sessions(state: &mut State, now_unix_ms: u64, changes: &mut Vec<Change>) {
    loop {
        let Some((_, request_id)) = state.sessions_by_revision.first_key_value() else {
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
