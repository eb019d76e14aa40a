//! The Raft network: openraft's RPCs to other nodes over gRPC, each bounded
//! by the timeout openraft passes in `RPCOption`.

use std::time::Duration;

use std::future::Future;
use std::sync::Arc;

use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable};
use openraft::network::{RPCOption, RPCTypes, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use proto::v1::raft_internal_client::RaftInternalClient;
use proto::v1::{raft_snapshot_chunk, RaftSnapshotChunk, RaftSnapshotHeader};
use tokio::io::AsyncReadExt;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::limits::{GRPC_MESSAGE_BYTES_MAX, SNAPSHOT_CHUNK_BYTES_MAX};
use crate::raft_types::{Member, NodeId, Snapshot, SnapshotData, TypeConfig, Vote};
use crate::store::StateView;
use crate::wire::{self, Invalid};

/// Set on every request one member sends another: the Raft format of this
/// build ([`wire::FORMAT_HEADER`]), and the sender's cluster id, once it
/// knows it. A node of another cluster (a member from before a
/// restore, a misaddressed peer of a second cluster under the same CA) is
/// refused by the receiver's authorization layer.
pub(crate) const CLUSTER_ID_HEADER: &str = "x-tenantry-cluster-id";

/// A channel to another member that names this node's cluster on every request.
pub(crate) type PeerChannel = InterceptedService<Channel, ClusterStamp>;

/// Adds [`wire::FORMAT_HEADER`] and [`CLUSTER_ID_HEADER`] to each request.
#[derive(Clone)]
pub(crate) struct ClusterStamp {
    view: StateView,
}

impl tonic::service::Interceptor for ClusterStamp {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert(wire::FORMAT_HEADER, wire::FORMAT.into());
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
    pub(crate) metrics: Arc<super::metrics::Metrics>,
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
    metrics: Arc<super::metrics::Metrics>,
}

/// The unary Raft RPCs.
#[derive(Clone, Copy)]
enum Method {
    AppendEntries,
    Vote,
    PreVote,
    TransferLeader,
}

impl Method {
    fn action(self) -> RPCTypes {
        match self {
            Method::AppendEntries => RPCTypes::AppendEntries,
            Method::Vote | Method::PreVote => RPCTypes::Vote,
            Method::TransferLeader => RPCTypes::TransferLeader,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Method::AppendEntries => "raft.AppendEntries",
            Method::Vote => "raft.Vote",
            Method::PreVote => "raft.PreVote",
            Method::TransferLeader => "raft.TransferLeader",
        }
    }
}

/// A failed call as openraft sees it: connection-level failures and a peer
/// that is stopping mean it is down or cut off (openraft backs off on
/// Unreachable); anything else is a network error.
fn from_status(status: &tonic::Status) -> RPCError<TypeConfig> {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
            RPCError::Unreachable(Unreachable::new(status))
        }
        _ => RPCError::Network(NetworkError::new(status)),
    }
}

/// A reply that does not decode: the peer is not speaking this format.
fn malformed(error: Invalid) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::from_string(format!("the peer's reply: {error}")))
}

impl Connection {
    /// A handle on the channel (a clone is a reference-count bump).
    fn client(&self) -> Result<RaftInternalClient<PeerChannel>, Unreachable<TypeConfig>> {
        match &self.client {
            Ok(client) => Ok(client.clone()),
            Err(error) => Err(Unreachable::from_string(error)),
        }
    }

    fn timeout(&self, action: RPCTypes, timeout: Duration) -> Timeout<TypeConfig> {
        Timeout { action, id: self.id, target: self.target, timeout }
    }

    /// Runs one unary RPC within the timeout openraft gives, timed.
    async fn call<Resp>(
        &self,
        method: Method,
        option: &RPCOption,
        call: impl Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        let timeout = option.hard_ttl();
        let started = std::time::Instant::now();
        let reply = tokio::time::timeout(timeout, call).await;
        self.metrics.observe(method.name(), started.elapsed());
        let reply = reply.map_err(|_| RPCError::Timeout(self.timeout(method.action(), timeout)))?;
        Ok(reply.map_err(|status| from_status(&status))?.into_inner())
    }
}

impl RaftNetworkV2<TypeConfig> for Connection {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut client = self.client().map_err(RPCError::Unreachable)?;
        let reply = self.call(Method::AppendEntries, &option, client.append_entries(wire::append_request(&request)));
        wire::append_response_from(reply.await?).map_err(malformed)
    }

    async fn vote(
        &mut self,
        request: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut client = self.client().map_err(RPCError::Unreachable)?;
        let reply = self.call(Method::Vote, &option, client.vote(wire::vote_request(&request)));
        wire::vote_response_from(reply.await?).map_err(malformed)
    }

    async fn pre_vote(
        &mut self,
        request: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut client = self.client().map_err(RPCError::Unreachable)?;
        let reply = self.call(Method::PreVote, &option, client.pre_vote(wire::vote_request(&request)));
        wire::vote_response_from(reply.await?).map_err(malformed)
    }

    async fn transfer_leader(
        &mut self,
        request: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut client = self.client().map_err(RPCError::Unreachable)?;
        let reply =
            self.call(Method::TransferLeader, &option, client.transfer_leader(wire::transfer_request(&request)));
        wire::transfer_response_from(reply.await?).map_err(malformed)
    }

    /// Streams the snapshot file in chunks; the peer installs it once the
    /// stream ends. Bounded by openraft's snapshot timeout.
    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let timeout = option.hard_ttl();
        let late = self.timeout(RPCTypes::InstallSnapshot, timeout);
        let header =
            RaftSnapshotHeader { vote: Some(wire::vote(&vote)), meta: Some(wire::snapshot_meta(&snapshot.meta)) };
        // A read error ends the stream early; it is reported after the call
        // (the peer refuses the cut file: its trailer and checksum are missing).
        let read_error = Arc::new(std::sync::Mutex::new(None::<std::io::Error>));
        let first = RaftSnapshotChunk { chunk: Some(raft_snapshot_chunk::Chunk::Header(header)) };
        let failed = read_error.clone();
        let data = futures::stream::unfold(Some(snapshot.snapshot), move |file| {
            let failed = failed.clone();
            async move {
                let mut file = file?;
                let mut buffer = vec![0u8; SNAPSHOT_CHUNK_BYTES_MAX as usize];
                match file.read(&mut buffer).await {
                    Ok(0) => None,
                    Ok(read) => {
                        buffer.truncate(read);
                        Some((RaftSnapshotChunk { chunk: Some(raft_snapshot_chunk::Chunk::Data(buffer)) }, Some(file)))
                    }
                    Err(error) => {
                        *failed.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(error);
                        None
                    }
                }
            }
        });
        let chunks = futures::StreamExt::chain(futures::stream::once(async { first }), data);
        let metrics = self.metrics.clone();
        let mut client = self.client().map_err(StreamingError::Unreachable)?;
        let started = std::time::Instant::now();
        let reply = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            reply = tokio::time::timeout(timeout, client.stream_snapshot(chunks)) => reply,
        };
        metrics.observe("raft.StreamSnapshot", started.elapsed());
        if let Some(error) = read_error.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() {
            let message = format!("reading the snapshot file: {error}");
            return Err(StreamingError::Network(NetworkError::from_string(message)));
        }
        let reply = reply.map_err(|_| StreamingError::Timeout(late))?.map_err(|status| match from_status(&status) {
            RPCError::Unreachable(unreachable) => StreamingError::Unreachable(unreachable),
            _ => StreamingError::Network(NetworkError::new(&status)),
        })?;
        wire::snapshot_response_from(reply.into_inner())
            .map_err(|error| StreamingError::Network(NetworkError::from_string(format!("the peer's reply: {error}"))))
    }
}
