//! Core types to and from their protobuf messages.

use proto::v1;
use registry_core::{
    AuditEntry, Bundle, Move, Placement, Shard, ShardDigest, ShardState, Tenant, TenantDocuments, TenantStatus,
};

pub(crate) fn tenant(tenant: &Tenant) -> v1::Tenant {
    v1::Tenant {
        id: tenant.id.to_string(),
        uid: tenant.uid.to_string(),
        status: status(tenant.status) as i32,
        config_json: tenant.documents.config.clone(),
        theme_json: tenant.documents.theme.clone(),
        integrations_json: tenant.documents.integrations.clone(),
        // A tombstone holds no bundles.
        public_bundle: tenant.is_live().then(|| bundle(&tenant.public_bundle)),
        private_bundle: tenant.is_live().then(|| owned_bundle(tenant.private_bundle())),
        placement: Some(placement(&tenant.placement)),
        create_revision: tenant.create_revision.get(),
        mod_revision: tenant.mod_revision.get(),
        config_revision: tenant.config_revision.get(),
        shard: tenant.shard.clone().unwrap_or_default(),
        r#move: tenant.moving.as_deref().map(tenant_move),
        canary: tenant.canary.as_ref().map(|canary| v1::Canary {
            revision: canary.revision.get(),
            config_json: canary.documents.config.clone(),
            theme_json: canary.documents.theme.clone(),
            integrations_json: canary.documents.integrations.clone(),
            public_bundle: Some(bundle(&canary.public_bundle)),
            private_bundle: Some(owned_bundle(canary.private_bundle(&tenant.id))),
        }),
    }
}

/// A tenant as a caller may see it: viewers (`private` false) get no
/// private bundles and no integrations, the canary's included.
pub(crate) fn tenant_for(record: &Tenant, private: bool) -> v1::Tenant {
    let mut tenant = tenant(record);
    if !private {
        tenant.integrations_json = String::new();
        tenant.private_bundle = None;
        if let Some(canary) = &mut tenant.canary {
            canary.integrations_json = String::new();
            canary.private_bundle = None;
        }
    }
    tenant
}

/// A tenant's documents as a caller may see them: no integrations below
/// the operator role (`private`).
pub(crate) fn documents_for(documents: &TenantDocuments, private: bool) -> v1::Documents {
    v1::Documents {
        config_json: Some(documents.config.clone()),
        theme_json: Some(documents.theme.clone()),
        integrations_json: private.then(|| documents.integrations.clone()),
    }
}

pub(crate) fn tenant_move(moving: &Move) -> v1::TenantMove {
    v1::TenantMove {
        from_shard: moving.from_shard.clone().unwrap_or_default(),
        to_shard: moving.to_shard.clone(),
        copy_epoch: moving.copy_epoch,
        step: moving.step.name().to_owned(),
        began_revision: moving.began_revision.get(),
        source: moving.source.as_ref().map(shard_digest),
        target: moving.target.as_ref().map(shard_digest),
    }
}

pub(crate) fn shard_info(shard: &Shard) -> v1::ShardInfo {
    let state = match shard.state {
        ShardState::Active => "active",
        ShardState::Draining => "draining",
    };
    v1::ShardInfo {
        id: shard.id.clone(),
        region: shard.region.to_string(),
        endpoint: shard.endpoint.clone(),
        state: state.to_owned(),
        replica_endpoint: shard.replica.clone().unwrap_or_default(),
    }
}

pub(crate) fn shard_digest(digest: &ShardDigest) -> v1::ShardDigest {
    v1::ShardDigest { rows: digest.rows, sha256: digest.sha256.clone() }
}

pub(crate) fn status(status: TenantStatus) -> v1::TenantStatus {
    match status {
        TenantStatus::Active => v1::TenantStatus::Active,
        TenantStatus::Suspended => v1::TenantStatus::Suspended,
        TenantStatus::LockedForMove => v1::TenantStatus::LockedForMove,
        TenantStatus::Deleted => v1::TenantStatus::Deleted,
    }
}

pub(crate) fn bundle(bundle: &Bundle) -> v1::Bundle {
    owned_bundle(bundle.clone())
}

pub(crate) fn owned_bundle(bundle: Bundle) -> v1::Bundle {
    v1::Bundle { json: bundle.json.into_bytes().into(), sha256: bundle.sha256 }
}

pub(crate) fn placement(placement: &Placement) -> v1::Placement {
    v1::Placement {
        home_region: placement.home_region.as_ref().map(ToString::to_string).unwrap_or_default(),
        allowed_regions: placement.allowed_regions.iter().map(ToString::to_string).collect(),
        failing_over_to: placement.failing_over_to.as_ref().map(ToString::to_string).unwrap_or_default(),
        dr_region: placement.dr_region.as_ref().map(ToString::to_string).unwrap_or_default(),
        epoch: placement.epoch,
    }
}

pub(crate) fn audit_entry(entry: &AuditEntry) -> v1::AuditEntry {
    v1::AuditEntry {
        revision: entry.revision.get(),
        id: entry.id.to_string(),
        tenant_id: entry.tenant.to_string(),
        actor: entry.actor.clone(),
        reason: entry.reason.clone(),
        summary: entry.summary.clone(),
        at_unix_ms: entry.at_unix_ms,
        documents: None,
    }
}
