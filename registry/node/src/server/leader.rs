//! The one path by which a request reaches the cluster's decision: a change
//! is proposed on the leader, or forwarded once to it from a follower, as
//! the method it arrived as; a linearizable read waits until this node has
//! applied the leader's commit index (read index). Every service that
//! writes or reads linearizably goes through [`Leader`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use openraft::errors::LinearizableReadError;
use openraft::ReadPolicy;
use plumbing::now_unix_ms;
use proto::v1::{self, Consistency};
use registry_core::{validate_meta, WriteMeta};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};
use ulid::Ulid;

use super::authz::{self, Caller};
use super::network::{Dialer, PeerChannel};
use super::proposer::Proposer;
use super::status;
use crate::limits::{CLIENT_REQUEST_TIMEOUT_MS, GRPC_MESSAGE_BYTES_MAX, READ_INDEX_WAIT_MS_MAX};
use crate::raft_types::{ClientWriteError, ForwardToLeader, Member, NodeId, Raft, RaftError, WriteError};

/// Set on a request that a follower forwarded, so it is forwarded at most once.
const FORWARDED_HEADER: &str = "x-tenantry-forwarded";

/// Applies the request timeout to a future that talks to the cluster.
pub(crate) async fn bounded<T>(what: &str, future: impl Future<Output = Result<T, Status>>) -> Result<T, Status> {
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
    forwarded: bool,
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

/// A write's metadata; the audit actor is the caller's certificate identity
/// (what the client says about itself is kept as "via").
pub(crate) fn write_meta(meta: Option<v1::WriteMeta>, caller: &Caller) -> Result<WriteMeta, Status> {
    let meta = meta.unwrap_or_default();
    let request_id = Some(meta.request_id).filter(|id| !id.is_empty());
    let actor = caller.actor(&meta.actor);
    validate_meta(request_id.as_deref(), &actor, &meta.reason).map_err(|error| status::from_command_error(&error))?;
    Ok(WriteMeta {
        expected_revision: meta.expected_revision,
        request_id,
        actor,
        reason: meta.reason,
        at_unix_ms: now_unix_ms(),
        change_id: Ulid::new(),
    })
}

/// Raft, the proposer in front of it, and the channels to the leader.
pub(crate) struct Leader {
    pub(crate) raft: Raft,
    /// Writes go through it, batched into Raft entries.
    pub(crate) proposer: Proposer,
    /// How this node reaches other members, for forwarding and read index.
    dialer: Dialer,
    channels: Mutex<HashMap<(NodeId, String), PeerChannel>>,
}

impl Leader {
    pub(crate) fn new(raft: Raft, proposer: Proposer, dialer: Dialer) -> Self {
        Self { raft, proposer, dialer, channels: Mutex::new(HashMap::new()) }
    }

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

    /// Answers with `answer(decided)` when this node decided; when it is not
    /// the leader, forwards the original `message` to the leader once.
    pub(crate) async fn or_forward<T, Req, Resp>(
        &self,
        origin: &Origin,
        message: Req,
        what: &str,
        decided: Result<T, WriteError>,
        answer: impl FnOnce(T) -> Result<Resp, Status>,
    ) -> Result<Response<Resp>, Status>
    where
        Req: prost::Message + 'static,
        Resp: prost::Message + Default + 'static,
    {
        match decided {
            Ok(decided) => answer(decided).map(Response::new),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(leader))) if !origin.forwarded => {
                self.forward_to_leader(&leader, origin, message, what).await
            }
            Err(error) => Err(status::from_client_write(&error)),
        }
    }

    /// Sends `message` on to the leader as the method it came as, marked as
    /// forwarded (so it is forwarded at most once) and naming its original
    /// caller.
    async fn forward_to_leader<Req, Resp>(
        &self,
        leader: &ForwardToLeader,
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
        plumbing::trace::inject(request.metadata_mut());
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
            let read_index = match self.raft.get_read_log_id(ReadPolicy::ReadIndex).await {
                Ok((read_log_id, _)) => read_log_id.index(),
                Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(leader))) => {
                    let (Some(leader_id), Some(leader_node)) = (leader.leader_id, &leader.leader_node) else {
                        return Err(status::no_leader(&leader, "read"));
                    };
                    let mut client =
                        v1::raft_internal_client::RaftInternalClient::new(self.channel(leader_id, leader_node)?);
                    client.read_index(v1::ReadIndexRequest {}).await?.into_inner().read_index
                }
                Err(error) => return Err(status::from_read(error)),
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
