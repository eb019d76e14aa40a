//! The public gRPC service: tenant writes (forwarded to the leader when this
//! node follows), linearizable or stale reads, history and cluster status.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use plumbing::now_unix_ms;
use proto::v1::registry_server::Registry;
use proto::v1::{self, Consistency};
use proto::{Revision, TenantId};
use registry_core::{
    canonical_document, validate_meta, Command, DocumentKind, DocumentLimits, DocumentsPatch, MoveOp, Op,
    Response as CoreResponse, ShardDigest, WriteMeta,
};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};
use ulid::Ulid;

use super::authz::{self, Caller};
use super::membership::MembershipChange;
use super::metrics::Metrics;
use super::network::{Dialer, PeerChannel};
use super::status;
use crate::convert;
use crate::limits::{
    CLIENT_REQUEST_TIMEOUT_MS, GRPC_MESSAGE_BYTES_MAX, HISTORY_ENTRIES_DEFAULT, HISTORY_ENTRIES_MAX,
    LIST_PAGE_TENANTS_MAX, READ_INDEX_WAIT_MS_MAX,
};
use crate::raft_types::{Member, NodeId, Raft};
use crate::store::StateView;

/// Bytes per message of a backup stream.
const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

/// Set on a request that a follower forwarded, so it is forwarded at most once.
const FORWARDED_HEADER: &str = "x-tenantry-forwarded";

pub(crate) struct RegistryService {
    pub(crate) raft: Raft,
    /// Writes go through it, batched into Raft entries.
    pub(crate) proposer: super::proposer::Proposer,
    pub(crate) view: StateView,
    pub(crate) node_id: NodeId,
    pub(crate) region: String,
    pub(crate) document_limits: DocumentLimits,
    pub(crate) metrics: Arc<Metrics>,
    /// gRPC channels to other nodes, by address, for forwarding and read index.
    pub(crate) dialer: Dialer,
    pub(crate) channels: Mutex<HashMap<(NodeId, String), PeerChannel>>,
    /// One backup at a time: each holds a copy of the whole state.
    pub(crate) snapshots: tokio::sync::Semaphore,
    /// This node's TLS (`None` with `--insecure`), for its certificate's expiry.
    pub(crate) tls: Option<Arc<trust::Tls>>,
}

fn parse_tenant(tenant_id: &str) -> Result<TenantId, Status> {
    TenantId::parse(tenant_id).map_err(|error| status::from_domain_error(&error))
}

/// Applies `rpc_timeout` to a future that talks to the cluster.
async fn bounded<T>(what: &str, future: impl Future<Output = Result<T, Status>>) -> Result<T, Status> {
    let timeout = Duration::from_millis(CLIENT_REQUEST_TIMEOUT_MS);
    tokio::time::timeout(timeout, future).await.unwrap_or_else(|_| {
        Err(Status::deadline_exceeded(format!(
            "{what}: not confirmed within {} ms (no quorum?). A write may or may not have applied: retry with the same request id",
            timeout.as_millis()
        )))
    })
}

/// Where a request came from: its caller (from the authorization layer),
/// the method it called, and whether a follower already forwarded it.
pub(crate) struct Origin {
    pub(crate) caller: Caller,
    /// `None` for an in-process call that did not pass the layer.
    path: Option<http::uri::PathAndQuery>,
    pub(crate) forwarded: bool,
}

impl Origin {
    pub(crate) fn of<T>(request: &Request<T>) -> Self {
        Self {
            caller: authz::caller(request),
            path: request.extensions().get::<authz::CalledPath>().map(|called| called.0.clone()),
            forwarded: request.metadata().contains_key(FORWARDED_HEADER),
        }
    }
}

impl RegistryService {
    /// A cached channel to member `id` (the leader), checked to be that node.
    fn channel(&self, id: NodeId, member: &Member) -> Result<PeerChannel, Status> {
        let mut channels = self.channels.lock().map_err(|_| Status::internal("channel cache lock poisoned"))?;
        let key = (id, member.grpc_addr.clone());
        if let Some(channel) = channels.get(&key) {
            return Ok(channel.clone());
        }
        let channel = self
            .dialer
            .channel(id, member, Duration::from_secs(1))
            .map_err(|error| Status::unavailable(format!("leader address {}: {error}", member.grpc_addr)))?;
        channels.insert(key, channel.clone());
        Ok(channel)
    }

    /// The write's metadata; the audit actor is the caller's certificate
    /// identity (what the client says about itself is kept as "via").
    pub(crate) fn write_meta(&self, meta: Option<v1::WriteMeta>, caller: &Caller) -> Result<WriteMeta, Status> {
        let meta = meta.unwrap_or_default();
        let request_id = Some(meta.request_id).filter(|id| !id.is_empty());
        let actor = caller.actor(&meta.actor);
        validate_meta(request_id.as_deref(), &actor, &meta.reason)
            .map_err(|error| status::from_command_error(&error))?;
        Ok(WriteMeta {
            expected_revision: meta.expected_revision,
            request_id,
            actor,
            reason: meta.reason,
            at_unix_ms: now_unix_ms(),
            change_id: Ulid::new(),
        })
    }

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

    /// Proposes `command`; on a follower, forwards the original request to
    /// the leader once.
    async fn write<Req: prost::Message + 'static>(
        &self,
        origin: &Origin,
        message: Req,
        command: Command,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        bounded("write", async {
            match self.proposer.propose(command).await {
                Ok(response) => match response {
                    CoreResponse::Written(outcome) => Ok(Response::new(v1::WriteResponse {
                        revision: outcome.revision.get(),
                        tenant: outcome.tenant.as_deref().map(convert::tenant),
                        replayed: outcome.replayed,
                    })),
                    CoreResponse::Rejected(error) => Err(status::from_command_error(&error)),
                    CoreResponse::None => Err(Status::internal("a tenant write answered nothing")),
                },
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(leader))) if !origin.forwarded => {
                    self.forward_to_leader(&leader, origin, message, "write").await
                }
                Err(error) => Err(status::from_client_write(&error)),
            }
        })
        .await
    }

    /// Sends `message` on to the leader as the method it came as, marked as
    /// forwarded (so it is forwarded at most once) and naming its original
    /// caller. The one forwarding path of every write, topology and
    /// membership RPC.
    pub(crate) async fn forward_to_leader<Req, Resp>(
        &self,
        leader: &openraft::error::ForwardToLeader<NodeId, Member>,
        origin: &Origin,
        message: Req,
        what: &str,
    ) -> Result<Response<Resp>, Status>
    where
        Req: prost::Message + 'static,
        Resp: prost::Message + Default + 'static,
    {
        let (Some(leader_id), Some(leader_node)) = (leader.leader_id, &leader.leader_node) else {
            return Err(status::no_leader(leader, what));
        };
        let Some(path) = origin.path.clone() else {
            return Err(Status::internal(format!("{what}: a call that did not arrive over gRPC cannot be forwarded")));
        };
        let mut request = Request::new(message);
        request.metadata_mut().insert(FORWARDED_HEADER, MetadataValue::from_static("1"));
        if let Some(uri) = origin.caller.forwarded_for() {
            let value = MetadataValue::try_from(uri.as_str())
                .map_err(|_| Status::internal("the caller's identity is not a valid header value"))?;
            request.metadata_mut().insert(authz::FORWARDED_FOR_HEADER, value);
        }
        let mut leader = tonic::client::Grpc::new(self.channel(leader_id, leader_node)?)
            .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
        leader.ready().await.map_err(|error| {
            Status::unavailable(format!("{what}: the leader (node {leader_id} at {}): {error}", leader_node.grpc_addr))
        })?;
        leader.unary(request, path, tonic_prost::ProstCodec::default()).await
    }

    /// Makes this node's state at least as new as the leader's commit at the
    /// time of the call (read index), unless the caller asked for a stale
    /// read. Returns the read index (0 for a stale read).
    pub(crate) async fn ensure_read(&self, consistency: i32) -> Result<u64, Status> {
        if consistency == Consistency::Stale as i32 {
            return Ok(0);
        }
        bounded("read", async {
            let read_index = match self.raft.get_read_log_id().await {
                Ok((read_log_id, _)) => read_log_id.map_or(0, |log_id| log_id.index),
                Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(leader))) => {
                    let (Some(leader_id), Some(leader_node)) = (leader.leader_id, &leader.leader_node) else {
                        return Err(status::no_leader(&leader, "read"));
                    };
                    let mut client =
                        proto::v1::raft_internal_client::RaftInternalClient::new(self.channel(leader_id, leader_node)?);
                    client.read_index(v1::ReadIndexRequest {}).await?.into_inner().read_index
                }
                Err(error) => return Err(status::from_check_leader(error)),
            };
            self.raft
                .wait(Some(Duration::from_millis(READ_INDEX_WAIT_MS_MAX)))
                .applied_index_at_least(Some(read_index), "linearizable read")
                .await
                .map_err(|error| {
                    Status::unavailable(format!("read: this node is behind the leader ({error}); retry"))
                })?;
            Ok(read_index)
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
        let command = Command { meta: self.write_meta(message.meta.clone(), &origin.caller)?, op };
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
        let command = Command { meta: self.write_meta(message.meta.clone(), &origin.caller)?, op };
        self.write(&origin, message, command).await
    }

    async fn delete_tenant(
        &self,
        request: Request<v1::DeleteTenantRequest>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let op = Op::DeleteTenant { tenant: parse_tenant(&message.tenant_id)? };
        let command = Command { meta: self.write_meta(message.meta.clone(), &origin.caller)?, op };
        self.write(&origin, message, command).await
    }

    async fn rollback_tenant(
        &self,
        request: Request<v1::RollbackTenantRequest>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let op = Op::RollbackTenant { tenant: parse_tenant(&message.tenant_id)?, to: Revision(message.to_revision) };
        let command = Command { meta: self.write_meta(message.meta.clone(), &origin.caller)?, op };
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
        let command = Command { meta: self.write_meta(message.meta.clone(), &origin.caller)?, op };
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
        let command = Command { meta: self.write_meta(message.meta.clone(), &origin.caller)?, op };
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
        let command = Command { meta: self.write_meta(message.meta.clone(), &origin.caller)?, op };
        self.write(&origin, message, command).await
    }

    async fn move_tenant(
        &self,
        request: Request<v1::MoveTenantRequest>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let op = Op::MoveTenant { tenant: parse_tenant(&message.tenant_id)?, step: move_op(&message)? };
        let command = Command { meta: self.write_meta(message.meta.clone(), &origin.caller)?, op };
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
        let command = Command { meta: self.write_meta(message.meta.clone(), &origin.caller)?, op };
        self.write(&origin, message, command).await
    }

    async fn promote_canary(
        &self,
        request: Request<v1::TenantActionRequest>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let op = Op::PromoteCanary { tenant: parse_tenant(&message.tenant_id)? };
        let command = Command { meta: self.write_meta(message.meta.clone(), &origin.caller)?, op };
        self.write(&origin, message, command).await
    }

    async fn abort_canary(
        &self,
        request: Request<v1::TenantActionRequest>,
    ) -> Result<Response<v1::WriteResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let op = Op::AbortCanary { tenant: parse_tenant(&message.tenant_id)? };
        let command = Command { meta: self.write_meta(message.meta.clone(), &origin.caller)?, op };
        self.write(&origin, message, command).await
    }

    async fn get_tenant(
        &self,
        request: Request<v1::GetTenantRequest>,
    ) -> Result<Response<v1::GetTenantResponse>, Status> {
        let private = authz::caller(&request).has_role(trust::Role::Operator);
        let message = request.into_inner();
        let tenant_id = parse_tenant(&message.tenant_id)?;
        self.ensure_read(message.consistency).await?;
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
        self.ensure_read(message.consistency).await?;
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
        let message = request.into_inner();
        let tenant_id = parse_tenant(&message.tenant_id)?;
        let limit = match message.limit {
            0 => HISTORY_ENTRIES_DEFAULT,
            limit => limit.min(HISTORY_ENTRIES_MAX),
        } as usize;
        self.ensure_read(message.consistency).await?;
        let applied = self.view.read();
        let entries = applied
            .state
            .audit
            .values()
            .rev()
            .filter(|entry| entry.tenant == tenant_id)
            .take(limit)
            .map(|entry| convert::audit_entry(entry))
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
        let change = super::membership::learner(&message)?;
        self.change_membership(&origin, message, change).await
    }

    async fn promote_member(
        &self,
        request: Request<v1::MemberRequest>,
    ) -> Result<Response<v1::MembershipResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let change = MembershipChange::Promote(super::membership::node_id(message.node_id)?);
        self.change_membership(&origin, message, change).await
    }

    async fn remove_member(
        &self,
        request: Request<v1::MemberRequest>,
    ) -> Result<Response<v1::MembershipResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let change = MembershipChange::Remove(super::membership::node_id(message.node_id)?);
        self.change_membership(&origin, message, change).await
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
        self.ensure_read(Consistency::Linearizable as i32).await?;
        let applied = self.view.read().clone();
        let bytes = tokio::task::spawn_blocking(move || crate::store::snapshot::encode(&applied))
            .await
            .map_err(|error| Status::internal(error.to_string()))?
            .map_err(|error| Status::internal(format!("snapshot: {error}")))?;
        let chunks: Vec<Result<v1::SnapshotBytes, Status>> =
            bytes.chunks(SNAPSHOT_CHUNK_BYTES).map(|chunk| Ok(v1::SnapshotBytes { data: chunk.to_vec() })).collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }

    async fn set_region_status(
        &self,
        request: Request<v1::SetRegionStatusRequest>,
    ) -> Result<Response<v1::TopologyResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let region = proto::Region::parse(&message.region).map_err(|error| status::from_domain_error(&error))?;
        let op = Op::SetRegionStatus { region, status: super::topology::region_status(message.status)? };
        self.change_topology(&origin, message, op).await
    }

    async fn add_shard(&self, request: Request<v1::AddShardRequest>) -> Result<Response<v1::TopologyResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let op = Op::AddShard { shard: super::topology::shard(message.shard.clone())? };
        self.change_topology(&origin, message, op).await
    }

    async fn drain_shard(
        &self,
        request: Request<v1::DrainShardRequest>,
    ) -> Result<Response<v1::TopologyResponse>, Status> {
        let origin = Origin::of(&request);
        let message = request.into_inner();
        let op = Op::DrainShard { id: message.id.clone() };
        self.change_topology(&origin, message, op).await
    }

    async fn get_topology(
        &self,
        request: Request<v1::GetTopologyRequest>,
    ) -> Result<Response<v1::TopologyResponse>, Status> {
        self.topology(request.into_inner().consistency).await.map(Response::new)
    }

    async fn cluster_status(
        &self,
        _request: Request<v1::ClusterStatusRequest>,
    ) -> Result<Response<v1::ClusterStatusResponse>, Status> {
        let metrics = self.raft.metrics().borrow().clone();
        let committed = self
            .raft
            .with_raft_state(|state| state.committed.map_or(0, |log_id| log_id.index))
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
