//! The public gRPC service: thin handlers that parse a request, make the
//! command, and hand it to [`Leader`] (tenant writes, topology and
//! membership changes are proposed or forwarded there; linearizable reads
//! wait for its read index), plus history, backups and cluster status.

use openraft::async_runtime::WatchReceiver;
use std::sync::Arc;

use proto::v1::registry_server::Registry;
use proto::v1::{self, Consistency};
use proto::{Revision, TenantId};
use registry_core::{
    canonical_document, Command, DocumentKind, DocumentLimits, DocumentsPatch, MoveOp, Op, Response as CoreResponse,
    ShardDigest,
};
use tonic::{Request, Response, Status};
use ulid::Ulid;

use super::authz;
use super::leader::{bounded, write_meta, Leader, Origin};
use super::membership::{self, MembershipChange};
use super::metrics::Metrics;
use super::status;
use super::topology;
use crate::convert;
use crate::limits::{HISTORY_ENTRIES_DEFAULT, HISTORY_ENTRIES_MAX, LIST_PAGE_TENANTS_MAX};
use crate::raft_types::NodeId;
use crate::store::StateView;

/// Bytes per message of a backup stream.
const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

pub(crate) struct RegistryService {
    /// Proposing, forwarding and read index.
    pub(crate) leader: Leader,
    pub(crate) view: StateView,
    pub(crate) node_id: NodeId,
    pub(crate) region: String,
    pub(crate) document_limits: DocumentLimits,
    pub(crate) metrics: Arc<Metrics>,
    /// One backup at a time: each holds a copy of the whole state.
    pub(crate) snapshots: tokio::sync::Semaphore,
    /// This node's TLS (`None` with `--insecure`), for its certificate's expiry.
    pub(crate) tls: Option<Arc<trust::Tls>>,
}

fn parse_tenant(tenant_id: &str) -> Result<TenantId, Status> {
    TenantId::parse(tenant_id).map_err(|error| status::from_domain_error(&error))
}

impl RegistryService {
    fn documents(&self, documents: Option<v1::Documents>) -> Result<DocumentsPatch, Status> {
        let documents = documents.unwrap_or_default();
        let canonical = |kind, text: Option<String>| {
            text.map(|text| canonical_document(kind, &text, self.document_limits))
                .transpose()
                .map_err(|error| status::from_command_error(&error))
        };
        Ok(DocumentsPatch {
            config: canonical(DocumentKind::Config, documents.config_json)?,
            theme: canonical(DocumentKind::Theme, documents.theme_json)?,
            integrations: canonical(DocumentKind::Integrations, documents.integrations_json)?,
        })
    }

    /// Proposes a tenant write; on a follower, forwards `message` once.
    async fn write<Req: prost::Message + 'static>(
        &self,
        origin: &Origin,
        message: Req,
        command: Command,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        bounded("write", async {
            let decided = self.leader.proposer.propose(command).await;
            self.leader
                .or_forward(origin, message, "write", decided, |response| match response {
                    CoreResponse::Written(outcome) => Ok(v1::WriteResponse {
                        revision: outcome.revision.get(),
                        tenant: outcome.tenant.as_deref().map(convert::tenant),
                        replayed: outcome.replayed,
                    }),
                    CoreResponse::Rejected(error) => Err(status::from_command_error(&error)),
                    CoreResponse::None => Err(Status::internal("a tenant write answered nothing")),
                })
                .await
        })
        .await
    }
}

#[tonic::async_trait]
impl Registry for RegistryService {
    async fn create_tenant(
        &self,
        request: Request<v1::CreateTenantRequest>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let tenant = parse_tenant(&message.tenant_id)?;
        let documents = self.documents(message.documents.clone())?;
        let proposer_region = proto::Region::parse(&self.region).ok();
        let op = Op::CreateTenant { tenant, uid: Ulid::new(), documents, proposer_region };
        let command = Command::new(write_meta(message.meta.clone(), &origin.caller)?, op);
        self.write(&origin, message, command).await
    }

    async fn update_tenant(
        &self,
        request: Request<v1::UpdateTenantRequest>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let tenant = parse_tenant(&message.tenant_id)?;
        let op = Op::UpdateTenant { tenant, documents: self.documents(message.documents.clone())? };
        let command = Command::new(write_meta(message.meta.clone(), &origin.caller)?, op);
        self.write(&origin, message, command).await
    }

    async fn delete_tenant(
        &self,
        request: Request<v1::DeleteTenantRequest>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let op = Op::DeleteTenant { tenant: parse_tenant(&message.tenant_id)? };
        let command = Command::new(write_meta(message.meta.clone(), &origin.caller)?, op);
        self.write(&origin, message, command).await
    }

    async fn rollback_tenant(
        &self,
        request: Request<v1::RollbackTenantRequest>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let op = Op::RollbackTenant { tenant: parse_tenant(&message.tenant_id)?, to: Revision(message.to_revision) };
        let command = Command::new(write_meta(message.meta.clone(), &origin.caller)?, op);
        self.write(&origin, message, command).await
    }

    async fn pin_tenant(&self, request: Request<v1::PinTenantRequest>) -> Result<Response<v1::WriteResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let allowed_regions = message
            .allowed_regions
            .iter()
            .map(|region| proto::Region::parse(region).map_err(|error| status::from_domain_error(&error)))
            .collect::<Result<Vec<_>, _>>()?;
        let op = Op::PinTenant { tenant: parse_tenant(&message.tenant_id)?, allowed_regions };
        let command = Command::new(write_meta(message.meta.clone(), &origin.caller)?, op);
        self.write(&origin, message, command).await
    }

    async fn fence_tenant(
        &self,
        request: Request<v1::FenceTenantRequest>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let to = Some(message.to.as_str())
            .filter(|to| !to.is_empty())
            .map(|to| proto::Region::parse(to).map_err(|error| status::from_domain_error(&error)))
            .transpose()?;
        let op = Op::FenceTenant { tenant: parse_tenant(&message.tenant_id)?, to };
        let command = Command::new(write_meta(message.meta.clone(), &origin.caller)?, op);
        self.write(&origin, message, command).await
    }

    async fn failover_tenant(
        &self,
        request: Request<v1::FailoverTenantRequest>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        if message.force {
            origin.caller.require(trust::Role::Admin, "FailoverTenant with force")?;
        }
        let to = proto::Region::parse(&message.to).map_err(|error| status::from_domain_error(&error))?;
        let op = Op::FailoverTenant { tenant: parse_tenant(&message.tenant_id)?, to, forced: message.force };
        let command = Command::new(write_meta(message.meta.clone(), &origin.caller)?, op);
        self.write(&origin, message, command).await
    }

    async fn move_tenant(
        &self,
        request: Request<v1::MoveTenantRequest>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let op = Op::MoveTenant { tenant: parse_tenant(&message.tenant_id)?, step: move_op(&message)? };
        let command = Command::new(write_meta(message.meta.clone(), &origin.caller)?, op);
        self.write(&origin, message, command).await
    }

    async fn stage_canary(
        &self,
        request: Request<v1::StageCanaryRequest>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let tenant = parse_tenant(&message.tenant_id)?;
        let op = Op::StageCanary { tenant, documents: self.documents(message.documents.clone())? };
        let command = Command::new(write_meta(message.meta.clone(), &origin.caller)?, op);
        self.write(&origin, message, command).await
    }

    async fn promote_canary(
        &self,
        request: Request<v1::TenantActionRequest>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let op = Op::PromoteCanary { tenant: parse_tenant(&message.tenant_id)? };
        let command = Command::new(write_meta(message.meta.clone(), &origin.caller)?, op);
        self.write(&origin, message, command).await
    }

    async fn abort_canary(
        &self,
        request: Request<v1::TenantActionRequest>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let op = Op::AbortCanary { tenant: parse_tenant(&message.tenant_id)? };
        let command = Command::new(write_meta(message.meta.clone(), &origin.caller)?, op);
        self.write(&origin, message, command).await
    }

    async fn get_tenant(
        &self,
        request: Request<v1::GetTenantRequest>,
    ) -> Result<Response<v1::GetTenantResponse>, Status> {
        let private = authz::caller(&request).has_role(trust::Role::Operator);
        let message = request.into_inner();
        let tenant_id = parse_tenant(&message.tenant_id)?;
        self.leader.ensure_read(message.consistency).await?;
        let applied = self.view.read();
        let tenant = applied.state.tenants.get(&tenant_id).ok_or_else(|| {
            status::from_command_error(&registry_core::CommandError::NotFound { tenant: tenant_id.clone() })
        })?;
        Ok(Response::new(v1::GetTenantResponse {
            tenant: Some(convert::tenant_for(tenant, private)),
            revision: applied.last_applied.map_or(0, |log_id| log_id.index),
        }))
    }

    async fn list_tenants(
        &self,
        request: Request<v1::ListTenantsRequest>,
    ) -> Result<Response<v1::ListTenantsResponse>, Status> {
        let private = authz::caller(&request).has_role(trust::Role::Operator);
        let message = request.into_inner();
        if message.limit > LIST_PAGE_TENANTS_MAX {
            return Err(status::with_detail(
                tonic::Code::InvalidArgument,
                format!("limit: {} is over the maximum page of {LIST_PAGE_TENANTS_MAX}", message.limit),
                v1::ErrorDetail { field: "limit".to_owned(), rule: "max".to_owned(), ..Default::default() },
            ));
        }
        let limit = if message.limit == 0 { LIST_PAGE_TENANTS_MAX } else { message.limit } as usize;
        self.leader.ensure_read(message.consistency).await?;
        let applied = self.view.read();
        let start = match message.start_after.as_str() {
            "" => std::ops::Bound::Unbounded,
            after => std::ops::Bound::Excluded(parse_tenant(after)?),
        };
        let mut matching = applied
            .state
            .tenants
            .range((start, std::ops::Bound::Unbounded))
            .map(|(_, tenant)| tenant)
            .filter(|tenant| message.include_deleted || tenant.is_live());
        let tenants: Vec<_> =
            matching.by_ref().take(limit).map(|tenant| convert::tenant_for(tenant, private)).collect();
        let more = matching.next().is_some();
        Ok(Response::new(v1::ListTenantsResponse {
            tenants,
            revision: applied.last_applied.map_or(0, |log_id| log_id.index),
            more,
        }))
    }

    async fn history(&self, request: Request<v1::HistoryRequest>) -> Result<Response<v1::HistoryResponse>, Status> {
        let private = authz::caller(&request).has_role(trust::Role::Operator);
        let message = request.into_inner();
        let tenant_id = parse_tenant(&message.tenant_id)?;
        let limit = match message.limit {
            0 => HISTORY_ENTRIES_DEFAULT,
            limit => limit.min(HISTORY_ENTRIES_MAX),
        } as usize;
        self.leader.ensure_read(message.consistency).await?;
        let applied = self.view.read();
        let entries = applied
            .state
            .audit
            .values()
            .rev()
            .filter(|entry| entry.tenant == tenant_id)
            .take(limit)
            .map(|entry| {
                let mut audited = convert::audit_entry(entry);
                if message.include_documents {
                    audited.documents =
                        entry.documents.as_deref().map(|documents| convert::documents_for(documents, private));
                }
                audited
            })
            .collect();
        Ok(Response::new(v1::HistoryResponse {
            entries,
            revision: applied.last_applied.map_or(0, |log_id| log_id.index),
        }))
    }

    async fn add_learner(
        &self,
        request: Request<v1::AddLearnerRequest>,
    ) -> Result<Response<v1::MembershipResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let change = membership::learner(&message)?;
        membership::change(&self.leader, &origin, message, change).await
    }

    async fn promote_member(
        &self,
        request: Request<v1::MemberRequest>,
    ) -> Result<Response<v1::MembershipResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let change = MembershipChange::Promote(membership::node_id(message.node_id)?);
        membership::change(&self.leader, &origin, message, change).await
    }

    async fn remove_member(
        &self,
        request: Request<v1::MemberRequest>,
    ) -> Result<Response<v1::MembershipResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let change = MembershipChange::Remove(membership::node_id(message.node_id)?);
        membership::change(&self.leader, &origin, message, change).await
    }

    type SaveSnapshotStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<v1::SnapshotBytes, Status>> + Send + 'static>>;

    async fn save_snapshot(
        &self,
        request: Request<v1::SaveSnapshotRequest>,
    ) -> Result<Response<Self::SaveSnapshotStream>, Status> {
        let _ = request;
        let _one_at_a_time = self.snapshots.try_acquire().map_err(|_| {
            Status::resource_exhausted("a snapshot is being saved on this node already; retry when it is done")
        })?;
        // At a linearizable read point: everything acknowledged before the call is in it.
        self.leader.ensure_read(Consistency::Linearizable as i32).await?;
        let applied = self.view.read().clone();
        let summary = v1::SnapshotSummary {
            revision: applied.last_applied.map_or(0, |log_id| log_id.index),
            tenants: applied.state.live_tenants() as u64,
            audit_entries: applied.state.audit.len() as u64,
            ..Default::default()
        };
        let bytes = tokio::task::spawn_blocking(move || crate::store::snapshot::encode(&applied))
            .await
            .map_err(|error| Status::internal(error.to_string()))?
            .map_err(|error| Status::internal(format!("snapshot: {error}")))?;
        let summary = v1::SnapshotSummary {
            bytes: bytes.len() as u64,
            sha256: compiler::document::sha256_hex(&bytes),
            ..summary
        };
        let mut chunks: Vec<v1::SnapshotBytes> = bytes
            .chunks(SNAPSHOT_CHUNK_BYTES)
            .map(|chunk| v1::SnapshotBytes { data: chunk.to_vec(), summary: None })
            .collect();
        if let Some(last) = chunks.last_mut() {
            last.summary = Some(summary);
        }
        Ok(Response::new(Box::pin(futures::stream::iter(chunks.into_iter().map(Ok)))))
    }

    async fn set_region_status(
        &self,
        request: Request<v1::SetRegionStatusRequest>,
    ) -> Result<Response<v1::TopologyResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let region = proto::Region::parse(&message.region).map_err(|error| status::from_domain_error(&error))?;
        let op = Op::SetRegionStatus { region, status: topology::region_status(message.status)? };
        topology::change(&self.leader, &self.view, &origin, message, op).await
    }

    async fn add_shard(&self, request: Request<v1::AddShardRequest>) -> Result<Response<v1::TopologyResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let op = Op::AddShard { shard: topology::shard(message.shard.clone())? };
        topology::change(&self.leader, &self.view, &origin, message, op).await
    }

    async fn drain_shard(
        &self,
        request: Request<v1::DrainShardRequest>,
    ) -> Result<Response<v1::TopologyResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let op = Op::DrainShard { id: message.id.clone() };
        topology::change(&self.leader, &self.view, &origin, message, op).await
    }

    async fn get_topology(
        &self,
        request: Request<v1::GetTopologyRequest>,
    ) -> Result<Response<v1::TopologyResponse>, Status> {
        topology::read(&self.leader, &self.view, request.into_inner().consistency).await.map(Response::new)
    }

    async fn cluster_status(
        &self,
        _request: Request<v1::ClusterStatusRequest>,
    ) -> Result<Response<v1::ClusterStatusResponse>, Status> {
        let metrics = self.leader.raft.metrics().borrow_watched().clone();
        let committed = self
            .leader
            .raft
            .with_raft_state(|state| state.local_committed().map_or(0, |log_id| log_id.index))
            .await
            .map_err(|error| Status::unavailable(format!("raft stopped: {error}")))?;
        let members = super::membership::members(&metrics);
        let state = match metrics.state {
            openraft::ServerState::Leader => "leader",
            openraft::ServerState::Follower => "follower",
            openraft::ServerState::Candidate => "candidate",
            openraft::ServerState::Learner => "learner",
            openraft::ServerState::Shutdown => "shutdown",
        };
        Ok(Response::new(v1::ClusterStatusResponse {
            node_id: self.node_id,
            region: self.region.clone(),
            leader_id: metrics.current_leader,
            term: metrics.current_term,
            last_log_index: metrics.last_log_index.unwrap_or(0),
            committed_index: committed,
            applied_index: metrics.last_applied.map_or(0, |log_id| log_id.index),
            snapshot_index: metrics.snapshot.map_or(0, |log_id| log_id.index),
            purged_index: metrics.purged.map_or(0, |log_id| log_id.index),
            members,
            state: state.to_owned(),
            tenants: self.view.read().state.live_tenants() as u64,
            cluster_id: self.view.read().state.cluster_id.map(|id| id.to_string()).unwrap_or_default(),
            cert_not_after_unix_s: self.tls.as_ref().map_or(0, |tls| tls.not_after_unix_s()),
        }))
    }
}

/// The step of a `MoveTenant` request, with its arguments checked.
fn move_op(message: &v1::MoveTenantRequest) -> Result<MoveOp, Status> {
    let digest = |field: &str, digest: &Option<v1::ShardDigest>| match digest {
        Some(digest) if digest.sha256.len() == 64 && digest.sha256.bytes().all(|byte| byte.is_ascii_hexdigit()) => {
            Ok(ShardDigest { rows: digest.rows, sha256: digest.sha256.to_ascii_lowercase() })
        }
        _ => Err(Status::invalid_argument(format!("{field}: required, with a hex SHA-256 of 64 characters"))),
    };
    Ok(match v1::MoveStep::try_from(message.step).unwrap_or(v1::MoveStep::Unspecified) {
        v1::MoveStep::Begin => {
            let to_shard = message.to_shard.trim();
            if to_shard.is_empty() {
                return Err(Status::invalid_argument("to_shard: required to begin a move"));
            }
            MoveOp::Begin { to_shard: to_shard.to_owned() }
        }
        v1::MoveStep::Verify => {
            MoveOp::Verify { source: digest("source", &message.source)?, target: digest("target", &message.target)? }
        }
        v1::MoveStep::Flip => MoveOp::Flip,
        v1::MoveStep::Unlock => MoveOp::Unlock,
        v1::MoveStep::Abort => MoveOp::Abort,
        v1::MoveStep::Unspecified => {
            return Err(Status::invalid_argument("step: one of begin, verify, flip, unlock, abort"))
        }
    })
}
