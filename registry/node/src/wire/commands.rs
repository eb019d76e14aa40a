//! Commands as log records: [`Proposal`] to and from `LogProposal`.

use proto::v1::{self, log_command, log_move_tenant};
use proto::{Region, Revision, TenantId};
use std::sync::Arc;

use registry_core::{
    Bundle, Command, Compiled, DocumentsPatch, MoveOp, Op, Placement, Proposal, RegionStatus, Shard, ShardDigest,
    ShardState, TenantDocuments, WriteMeta,
};
use ulid::Ulid;

use crate::convert;

use super::{required, Invalid};

pub(crate) fn proposal(proposal: &Proposal) -> v1::LogProposal {
    v1::LogProposal { commands: proposal.commands.iter().map(command).collect() }
}

pub(crate) fn proposal_from(message: v1::LogProposal, at: &str) -> Result<Proposal, Invalid> {
    let commands = message
        .commands
        .into_iter()
        .enumerate()
        .map(|(index, message)| command_from(message, &format!("{at}.commands[{index}]")))
        .collect::<Result<_, _>>()?;
    Ok(Proposal { commands })
}

fn command(command: &Command) -> v1::LogCommand {
    let meta = &command.meta;
    let meta = v1::LogWriteMeta {
        expected_revision: meta.expected_revision,
        request_id: meta.request_id.clone(),
        actor: meta.actor.clone(),
        reason: meta.reason.clone(),
        at_unix_ms: meta.at_unix_ms,
        change_id: ulid_bytes(meta.change_id),
    };
    let tenant = |tenant: &TenantId| tenant.to_string();
    let op = match &command.op {
        Op::CreateTenant { tenant: id, uid, documents: patch, proposer_region } => {
            log_command::Op::CreateTenant(v1::LogCreateTenant {
                tenant: tenant(id),
                uid: ulid_bytes(*uid),
                documents: Some(documents(patch)),
                proposer_region: proposer_region.as_ref().map(ToString::to_string),
            })
        }
        Op::UpdateTenant { tenant: id, documents: patch } => log_command::Op::UpdateTenant(v1::LogTenantDocuments {
            tenant: tenant(id),
            documents: Some(documents(patch)),
        }),
        Op::DeleteTenant { tenant: id } => log_command::Op::DeleteTenant(v1::LogTenant { tenant: tenant(id) }),
        Op::RollbackTenant { tenant: id, to } => {
            log_command::Op::RollbackTenant(v1::LogRollbackTenant { tenant: tenant(id), to: to.get() })
        }
        Op::StageCanary { tenant: id, documents: patch } => log_command::Op::StageCanary(v1::LogTenantDocuments {
            tenant: tenant(id),
            documents: Some(documents(patch)),
        }),
        Op::PromoteCanary { tenant: id } => log_command::Op::PromoteCanary(v1::LogTenant { tenant: tenant(id) }),
        Op::FenceTenant { tenant: id, to } => log_command::Op::FenceTenant(v1::LogFenceTenant {
            tenant: tenant(id),
            to: to.as_ref().map(ToString::to_string),
        }),
        Op::FailoverTenant { tenant: id, to, forced } => log_command::Op::FailoverTenant(v1::LogFailoverTenant {
            tenant: tenant(id),
            to: to.to_string(),
            forced: *forced,
        }),
        Op::PinTenant { tenant: id, allowed_regions } => log_command::Op::PinTenant(v1::LogPinTenant {
            tenant: tenant(id),
            allowed_regions: allowed_regions.iter().map(ToString::to_string).collect(),
        }),
        Op::AbortCanary { tenant: id } => log_command::Op::AbortCanary(v1::LogTenant { tenant: tenant(id) }),
        Op::MoveTenant { tenant: id, step } => {
            let step = match step {
                MoveOp::Begin { to_shard } => log_move_tenant::Step::Begin(to_shard.clone()),
                MoveOp::Verify { source, target } => log_move_tenant::Step::Verify(v1::LogMoveVerify {
                    source: Some(digest(source)),
                    target: Some(digest(target)),
                }),
                MoveOp::Flip => log_move_tenant::Step::Flip(v1::RaftBlank {}),
                MoveOp::Unlock => log_move_tenant::Step::Unlock(v1::RaftBlank {}),
                MoveOp::Abort => log_move_tenant::Step::Abort(v1::RaftBlank {}),
            };
            log_command::Op::MoveTenant(v1::LogMoveTenant { tenant: tenant(id), step: Some(step) })
        }
        Op::SetRegionStatus { region, status } => log_command::Op::SetRegionStatus(v1::LogSetRegionStatus {
            region: region.to_string(),
            status: region_status(*status) as i32,
        }),
        Op::AddShard { shard } => log_command::Op::AddShard(v1::LogShard {
            id: shard.id.clone(),
            region: shard.region.to_string(),
            endpoint: shard.endpoint.clone(),
            draining: shard.state == ShardState::Draining,
            replica_endpoint: shard.replica.clone().unwrap_or_default(),
        }),
        Op::DrainShard { id } => log_command::Op::DrainShard(id.clone()),
        Op::InitCluster { cluster_id } => log_command::Op::InitCluster(ulid_bytes(*cluster_id)),
    };
    v1::LogCommand {
        meta: Some(meta),
        op: Some(op),
        compiled: command.compiled.as_deref().map(compiled),
        traceparent: command.trace.clone().unwrap_or_default(),
    }
}

fn compiled(compiled: &Compiled) -> v1::LogCompiled {
    let documents = &compiled.documents;
    v1::LogCompiled {
        based_on: compiled.based_on,
        config: documents.config.clone(),
        theme: documents.theme.clone(),
        integrations: documents.integrations.clone(),
        private_sha256: compiled.private_sha256.clone(),
        public_bundle: Some(convert::bundle(&compiled.public_bundle)),
        placement: compiled.placement.as_ref().map(convert::placement),
    }
}

fn compiled_from(message: v1::LogCompiled, at: &str) -> Result<Compiled, Invalid> {
    let public_bundle = required(message.public_bundle, &format!("{at}.public_bundle"))?;
    let json = String::from_utf8(public_bundle.json.to_vec())
        .map_err(|_| Invalid(format!("{at}.public_bundle.json: not UTF-8")))?;
    let documents =
        TenantDocuments { config: message.config, theme: message.theme, integrations: message.integrations };
    Ok(Compiled {
        based_on: message.based_on,
        documents: Arc::new(documents),
        public_bundle: Bundle { json, sha256: public_bundle.sha256 },
        private_sha256: message.private_sha256,
        placement: message
            .placement
            .map(|placement| placement_from(placement, &format!("{at}.placement")))
            .transpose()?,
    })
}

fn placement_from(message: v1::Placement, at: &str) -> Result<Placement, Invalid> {
    let region = |value: String, field: &str| {
        (!value.is_empty())
            .then(|| Region::parse(&value).map_err(|error| Invalid(format!("{at}.{field}: {error}"))))
            .transpose()
    };
    Ok(Placement {
        home_region: region(message.home_region, "home_region")?,
        allowed_regions: message
            .allowed_regions
            .into_iter()
            .map(|value| Region::parse(&value).map_err(|error| Invalid(format!("{at}.allowed_regions: {error}"))))
            .collect::<Result<_, _>>()?,
        dr_region: region(message.dr_region, "dr_region")?,
        epoch: message.epoch,
        failing_over_to: region(message.failing_over_to, "failing_over_to")?,
    })
}

fn command_from(message: v1::LogCommand, at: &str) -> Result<Command, Invalid> {
    let meta = required(message.meta, &format!("{at}.meta"))?;
    let meta = WriteMeta {
        expected_revision: meta.expected_revision,
        request_id: meta.request_id,
        actor: meta.actor,
        reason: meta.reason,
        at_unix_ms: meta.at_unix_ms,
        change_id: ulid_from(&meta.change_id, &format!("{at}.meta.change_id"))?,
    };
    let op = required(message.op, &format!("{at}.op"))?;
    let tenant =
        |id: &str, name: &str| TenantId::parse(id).map_err(|error| Invalid(format!("{at}.{name}.tenant: {error}")));
    let region =
        |value: &str, field: &str| Region::parse(value).map_err(|error| Invalid(format!("{at}.{field}: {error}")));
    let op = match op {
        log_command::Op::CreateTenant(op) => Op::CreateTenant {
            tenant: tenant(&op.tenant, "create_tenant")?,
            uid: ulid_from(&op.uid, &format!("{at}.create_tenant.uid"))?,
            documents: documents_from(op.documents),
            proposer_region: op
                .proposer_region
                .map(|value| region(&value, "create_tenant.proposer_region"))
                .transpose()?,
        },
        log_command::Op::UpdateTenant(op) => {
            Op::UpdateTenant { tenant: tenant(&op.tenant, "update_tenant")?, documents: documents_from(op.documents) }
        }
        log_command::Op::DeleteTenant(op) => Op::DeleteTenant { tenant: tenant(&op.tenant, "delete_tenant")? },
        log_command::Op::RollbackTenant(op) => {
            Op::RollbackTenant { tenant: tenant(&op.tenant, "rollback_tenant")?, to: Revision(op.to) }
        }
        log_command::Op::StageCanary(op) => {
            Op::StageCanary { tenant: tenant(&op.tenant, "stage_canary")?, documents: documents_from(op.documents) }
        }
        log_command::Op::PromoteCanary(op) => Op::PromoteCanary { tenant: tenant(&op.tenant, "promote_canary")? },
        log_command::Op::FenceTenant(op) => Op::FenceTenant {
            tenant: tenant(&op.tenant, "fence_tenant")?,
            to: op.to.map(|to| region(&to, "fence_tenant.to")).transpose()?,
        },
        log_command::Op::FailoverTenant(op) => Op::FailoverTenant {
            tenant: tenant(&op.tenant, "failover_tenant")?,
            to: region(&op.to, "failover_tenant.to")?,
            forced: op.forced,
        },
        log_command::Op::PinTenant(op) => Op::PinTenant {
            tenant: tenant(&op.tenant, "pin_tenant")?,
            allowed_regions: op
                .allowed_regions
                .iter()
                .map(|value| region(value, "pin_tenant.allowed_regions"))
                .collect::<Result<_, _>>()?,
        },
        log_command::Op::AbortCanary(op) => Op::AbortCanary { tenant: tenant(&op.tenant, "abort_canary")? },
        log_command::Op::MoveTenant(op) => {
            let step = match required(op.step, &format!("{at}.move_tenant.step"))? {
                log_move_tenant::Step::Begin(to_shard) => MoveOp::Begin { to_shard },
                log_move_tenant::Step::Verify(verify) => MoveOp::Verify {
                    source: digest_from(required(verify.source, &format!("{at}.move_tenant.verify.source"))?),
                    target: digest_from(required(verify.target, &format!("{at}.move_tenant.verify.target"))?),
                },
                log_move_tenant::Step::Flip(_) => MoveOp::Flip,
                log_move_tenant::Step::Unlock(_) => MoveOp::Unlock,
                log_move_tenant::Step::Abort(_) => MoveOp::Abort,
            };
            Op::MoveTenant { tenant: tenant(&op.tenant, "move_tenant")?, step }
        }
        log_command::Op::SetRegionStatus(op) => Op::SetRegionStatus {
            region: region(&op.region, "set_region_status.region")?,
            status: region_status_from(op.status).ok_or_else(|| {
                Invalid(format!("{at}.set_region_status.status: {} is not a region status", op.status))
            })?,
        },
        log_command::Op::AddShard(shard) => Op::AddShard {
            shard: Shard {
                region: region(&shard.region, "add_shard.region")?,
                state: if shard.draining { ShardState::Draining } else { ShardState::Active },
                id: shard.id,
                endpoint: shard.endpoint,
                replica: Some(shard.replica_endpoint).filter(|replica| !replica.is_empty()),
            },
        },
        log_command::Op::DrainShard(id) => Op::DrainShard { id },
        log_command::Op::InitCluster(cluster_id) => {
            Op::InitCluster { cluster_id: ulid_from(&cluster_id, &format!("{at}.init_cluster"))? }
        }
    };
    let compiled = match (message.compiled, op.tenant()) {
        (None, _) => None,
        (Some(compiled), Some(_)) => Some(Arc::new(compiled_from(compiled, &format!("{at}.compiled"))?)),
        (Some(_), None) => {
            return Err(Invalid(format!("{at}.compiled: only a tenant write carries compiled documents")))
        }
    };
    let trace = Some(message.traceparent).filter(|traceparent| !traceparent.is_empty());
    Ok(Command { meta, op, compiled, trace })
}

fn documents(patch: &DocumentsPatch) -> v1::LogDocuments {
    v1::LogDocuments {
        config: patch.config.clone(),
        theme: patch.theme.clone(),
        integrations: patch.integrations.clone(),
    }
}

fn documents_from(message: Option<v1::LogDocuments>) -> DocumentsPatch {
    let message = message.unwrap_or_default();
    DocumentsPatch { config: message.config, theme: message.theme, integrations: message.integrations }
}

fn digest(digest: &ShardDigest) -> v1::ShardDigest {
    v1::ShardDigest { rows: digest.rows, sha256: digest.sha256.clone() }
}

fn digest_from(message: v1::ShardDigest) -> ShardDigest {
    ShardDigest { rows: message.rows, sha256: message.sha256 }
}

pub fn region_status(status: RegionStatus) -> v1::RegionStatus {
    match status {
        RegionStatus::Healthy => v1::RegionStatus::Healthy,
        RegionStatus::Degraded => v1::RegionStatus::Degraded,
        RegionStatus::Evacuated => v1::RegionStatus::Evacuated,
    }
}

/// The region status `status` names, if it names one.
pub fn region_status_from(status: i32) -> Option<RegionStatus> {
    match v1::RegionStatus::try_from(status) {
        Ok(v1::RegionStatus::Healthy) => Some(RegionStatus::Healthy),
        Ok(v1::RegionStatus::Degraded) => Some(RegionStatus::Degraded),
        Ok(v1::RegionStatus::Evacuated) => Some(RegionStatus::Evacuated),
        _ => None,
    }
}

fn ulid_bytes(ulid: Ulid) -> Vec<u8> {
    ulid.to_bytes().to_vec()
}

fn ulid_from(bytes: &[u8], at: &str) -> Result<Ulid, Invalid> {
    let bytes: [u8; 16] =
        bytes.try_into().map_err(|_| Invalid(format!("{at}: a ULID is 16 bytes, not {}", bytes.len())))?;
    Ok(Ulid::from_bytes(bytes))
}
