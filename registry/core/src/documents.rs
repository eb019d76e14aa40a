//! The documents a write sets, compiled: the one place the config compiler
//! runs on a write. The leader's `resolve` compiles a client's write before
//! it is proposed; apply takes what was compiled (`compiled`), compiling
//! only entries of Raft format 2, which carried nothing compiled.

use std::sync::Arc;

use proto::Revision;

use super::{
    canonical_document, compile, initial_placement, Command, CommandError, Compiled, DocumentKind, DocumentLimits,
    DocumentsPatch, Op, State, Tenant, TenantDocuments,
};
use crate::limits::DOCUMENT_BYTES_HARD_MAX;

fn non_empty(patch: &DocumentsPatch) -> Result<&DocumentsPatch, CommandError> {
    if patch.names().is_empty() {
        return Err(CommandError::invalid("documents", "required", "set at least one document"));
    }
    Ok(patch)
}

/// The documents a write sets, compiled: as the leader compiled them
/// (checked against the tenant they were judged on), or now, for an entry
/// of a build before Raft format 3 (which compiled in apply).
pub(super) fn compiled(
    state: &State,
    current: Option<&Tenant>,
    command: &Command,
) -> Result<Arc<Compiled>, CommandError> {
    if let (Some(compiled), Some(tenant)) = (&command.compiled, command.op.tenant()) {
        let current_revision = current.map_or(0, |tenant| tenant.mod_revision.get());
        if compiled.based_on != current_revision {
            let (tenant, judged) = (tenant.clone(), compiled.based_on);
            return Err(CommandError::Stale { tenant, judged, current: current_revision });
        }
        return Ok(compiled.clone());
    }
    compile_documents(state, current, command)?
        .map(Arc::new)
        .ok_or_else(|| CommandError::invalid("op", "sets-documents", "this operation sets no documents"))
}

/// Validates and compiles the documents `command` leaves `current` with
/// (`None`: it sets no documents). The one place the config compiler runs
/// on a write: the leader, before proposing.
pub(super) fn compile_documents(
    state: &State,
    current: Option<&Tenant>,
    command: &Command,
) -> Result<Option<Compiled>, CommandError> {
    let Some(tenant_id) = command.op.tenant() else {
        return Ok(None);
    };
    let live = || current.ok_or_else(|| CommandError::NotFound { tenant: tenant_id.clone() });
    let (documents, placement) = match &command.op {
        Op::CreateTenant { tenant, documents, proposer_region, .. } => {
            if let Some(current) = current {
                return Err(CommandError::AlreadyExists { tenant: tenant.clone(), revision: current.mod_revision });
            }
            let documents = patched(TenantDocuments::default(), documents)?;
            let placement = initial_placement(&documents.config, proposer_region.as_ref());
            (Arc::new(documents), Some(placement))
        }
        Op::UpdateTenant { documents, .. } | Op::StageCanary { documents, .. } => {
            let current = live()?;
            (Arc::new(patched(current.documents.as_ref().clone(), non_empty(documents)?)?), None)
        }
        Op::RollbackTenant { to, .. } => {
            let current = live()?;
            (documents_at(state, current, *to)?, None)
        }
        _ => return Ok(None),
    };
    let (public_bundle, private_bundle) = compile(tenant_id, &documents)?;
    let based_on = current.map_or(0, |tenant| tenant.mod_revision.get());
    let private_sha256 = private_bundle.sha256;
    Ok(Some(Compiled { based_on, documents, public_bundle, private_sha256, placement }))
}

/// The live documents `tenant` had at revision `to`: those of its last
/// change at or before `to` that set documents, in this incarnation.
fn documents_at(state: &State, tenant: &Tenant, to: Revision) -> Result<Arc<TenantDocuments>, CommandError> {
    if to < tenant.create_revision {
        return Err(CommandError::invalid(
            "to_revision",
            "history",
            format!("revision {to} is before tenant `{}` was created (at {})", tenant.id, tenant.create_revision),
        ));
    }
    state
        .audit
        .range((tenant.create_revision, 0)..=(to, u32::MAX))
        .rev()
        .find_map(|(_, entry)| entry.documents.clone().filter(|_| entry.tenant == tenant.id))
        .ok_or_else(|| {
            let oldest = state.audit.keys().next().map_or(0, |(revision, _)| revision.get());
            CommandError::invalid(
                "to_revision",
                "history",
                format!(
                    "the audit log no longer holds tenant `{}`'s documents at revision {to} (oldest entry kept: {oldest})",
                    tenant.id
                ),
            )
        })
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
