//! The Raft network: openraft's RPCs to other nodes over gRPC, each bounded
//! by the timeout openraft passes in `RPCOption`.

use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use proto::v1::raft_internal_client::RaftInternalClient;
use proto::v1::RaftPayload;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::limits::GRPC_MESSAGE_BYTES_MAX;
use crate::raft_types::{Member, NodeId, TypeConfig};
use crate::store::StateView;

/// Set on every request one member sends another: the sender's cluster id,
/// once it knows it. A node of another cluster (a member from before a
/// restore, a misaddressed peer of a second cluster under the same CA) is
/// refused by the receiver's authorization layer.
pub(crate) const CLUSTER_ID_HEADER: &str = "x-tenantry-cluster-id";

/// A channel to another member that names this node's cluster on every request.
pub(crate) type PeerChannel = InterceptedService<Channel, ClusterStamp>;

/// Adds [`CLUSTER_ID_HEADER`] to each request.
#[derive(Clone)]
pub(crate) struct ClusterStamp {
    view: StateView,
}

impl tonic::service::Interceptor for ClusterStamp {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let cluster_id = self.view.read().state.cluster_id;
        if let Some(cluster_id) = cluster_id {
            // A ULID is 26 ASCII characters: always a valid header value.
            if let Ok(value) = cluster_id.to_string().parse() {
                request.metadata_mut().insert(CLUSTER_ID_HEADER, value);
            }
        }
        Ok(request)
    }
}

/// How this node reaches other members: their advertised addresses, or the
/// routes `--dial` gives for some; over mutual TLS unless `--insecure`, and
/// only to a peer whose certificate names the member it dials; every
/// request names this node's cluster.
#[derive(Clone)]
pub(crate) struct Dialer {
    via: Arc<std::collections::BTreeMap<String, String>>,
    tls: Option<Arc<trust::Tls>>,
    stamp: ClusterStamp,
}

impl Dialer {
    pub(crate) fn new(dial: &[crate::config::Dial], tls: Option<Arc<trust::Tls>>, view: StateView) -> Self {
        let via = Arc::new(dial.iter().map(|route| (route.to.clone(), route.via.clone())).collect());
        Self { via, tls, stamp: ClusterStamp { view } }
    }

    /// A lazily connected channel to member `id` of `region`, advertised at
    /// `grpc_addr`. Its certificate is checked for that host (not the
    /// route's) and that identity.
    pub(crate) fn channel(
        &self,
        id: NodeId,
        member: &Member,
        connect_timeout: Duration,
    ) -> Result<PeerChannel, String> {
        let region = proto::Region::parse(&member.region).map_err(|error| error.to_string())?;
        let connector = trust::Connector::new(self.tls.clone(), true)
            .with_server_name(&member.grpc_addr)
            .expecting(trust::Expect::Exactly(trust::Identity::Node { id, region }));
        let route = self.via.get(&member.grpc_addr).map_or(member.grpc_addr.as_str(), String::as_str);
        Ok(InterceptedService::new(connector.channel(route, connect_timeout)?, self.stamp.clone()))
    }
}

/// Makes one [`Connection`] per target node.
#[derive(Clone)]
pub(crate) struct NetworkFactory {
    pub(crate) id: NodeId,
    pub(crate) dialer: Dialer,
    pub(crate) metrics: std::sync::Arc<super::metrics::Metrics>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Connection {
        let client = self.dialer.channel(target, node, Duration::from_secs(1)).map(|channel| {
            RaftInternalClient::new(channel)
                .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        });
        Connection { id: self.id, target, client, metrics: self.metrics.clone() }
    }
}

/// The RPC client to one other node.
pub(crate) struct Connection {
    id: NodeId,
    target: NodeId,
    /// An invalid address makes every RPC fail as unreachable.
    client: Result<RaftInternalClient<PeerChannel>, String>,
    metrics: std::sync::Arc<super::metrics::Metrics>,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, Member, RaftError<NodeId, E>>>;

impl Connection {
    /// Sends one RPC: JSON of `request` in, JSON of `Result<Resp, RaftError>` out.
    async fn call<Req, Resp, E>(&mut self, action: RPCTypes, request: &Req, option: &RPCOption) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let client = match &mut self.client {
            Ok(client) => client,
            Err(error) => return Err(RPCError::Unreachable(Unreachable::new(&std::io::Error::other(error.clone())))),
        };
        let payload = serde_json::to_vec(request).map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        let request = tonic::Request::new(RaftPayload { payload });
        let timeout = option.hard_ttl();
        let started = std::time::Instant::now();
        let call = async {
            match action {
                RPCTypes::AppendEntries => client.append_entries(request).await,
                RPCTypes::Vote => client.vote(request).await,
                RPCTypes::InstallSnapshot => client.install_snapshot(request).await,
            }
        };
        let reply = tokio::time::timeout(timeout, call).await;
        self.metrics.observe_raft_rpc(action, started.elapsed());
        let reply = match reply {
            Err(_) => {
                return Err(RPCError::Timeout(Timeout { action, id: self.id, target: self.target, timeout }));
            }
            Ok(Err(status)) => {
                // Connection-level failures mean the peer is down or cut off;
                // openraft backs off on Unreachable.
                return Err(match status.code() {
                    tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
                        RPCError::Unreachable(Unreachable::new(&status))
                    }
                    _ => RPCError::Network(NetworkError::new(&status)),
                });
            }
            Ok(Ok(reply)) => reply.into_inner(),
        };
        let result: Result<Resp, RaftError<NodeId, E>> =
            serde_json::from_slice(&reply.payload).map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        result.map_err(|error| RPCError::RemoteError(RemoteError::new(self.target, error)))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        self.call(RPCTypes::AppendEntries, &request, &option).await
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(RPCTypes::InstallSnapshot, &request, &option).await
    }

    async fn vote(
        &mut self,
        request: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.call(RPCTypes::Vote, &request, &option).await
    }
}
