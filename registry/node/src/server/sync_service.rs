//! `AgentSync.Sync`, served by hand so that a delta is encoded once and the
//! same bytes go to every subscriber (the generated server would encode the
//! message again for each stream). Requests are decoded with prost as usual.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use proto::v1::{self, agent_message, registry_message::Kind};
use proto::Region;
use tokio::sync::{broadcast, mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder, Streaming};
use tonic::codegen::{http, Body, BoxFuture, Bytes, Service, StdError};
use tonic::server::{Grpc, NamedService, StreamingService};
use tonic::Status;

use crate::limits::{
    AGENT_ID_BYTES_MAX, GRPC_MESSAGE_BYTES_MAX, HELLO_TIMEOUT_MS, SINCE_REVISION_WAIT_MS_MAX, SNAPSHOT_CHUNK_TENANTS,
    STREAM_QUEUE_MESSAGES,
};
use crate::stages::{Stage, Stages};
use crate::store::StateView;
use crate::watch::{encode, tenant_record, AgentDirectory, DeltaFrames, Freshness, HubEvent, Scope, Start, WatchHub};

/// Encodes pre-encoded frames as they are; decodes agent messages with prost.
#[derive(Debug, Clone, Copy, Default)]
struct FrameCodec;

struct FrameEncoder;

impl Encoder for FrameEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, frame: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        prost::bytes::BufMut::put_slice(dst, &frame);
        Ok(())
    }
}

struct AgentMessageDecoder;

impl Decoder for AgentMessageDecoder {
    type Item = v1::AgentMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<v1::AgentMessage>, Status> {
        prost::Message::decode(src).map(Some).map_err(|error| Status::invalid_argument(error.to_string()))
    }
}

impl Codec for FrameCodec {
    type Encode = Bytes;
    type Decode = v1::AgentMessage;
    type Encoder = FrameEncoder;
    type Decoder = AgentMessageDecoder;

    fn encoder(&mut self) -> FrameEncoder {
        FrameEncoder
    }

    fn decoder(&mut self) -> AgentMessageDecoder {
        AgentMessageDecoder
    }
}

/// Everything a stream needs from its node.
pub(crate) struct SyncContext {
    pub hub: Arc<WatchHub>,
    pub view: StateView,
    pub agents: Arc<AgentDirectory>,
    pub freshness: Arc<Freshness>,
    pub stages: Arc<Stages>,
    /// One permit per connected agent.
    pub permits: Arc<Semaphore>,
    /// Becomes true when the node stops: streams end with UNAVAILABLE.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

/// The `tenantry.v1.AgentSync` service.
#[derive(Clone)]
pub(crate) struct AgentSyncServer {
    context: Arc<SyncContext>,
}

impl AgentSyncServer {
    pub(crate) fn new(context: SyncContext) -> Self {
        Self { context: Arc::new(context) }
    }
}

impl NamedService for AgentSyncServer {
    const NAME: &'static str = "tenantry.v1.AgentSync";
}

impl<B> Service<http::Request<B>> for AgentSyncServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = SyncMethod(self.context.clone());
        if request.uri().path() != "/tenantry.v1.AgentSync/Sync" {
            return Box::pin(async { Ok(Status::unimplemented("AgentSync has only Sync").into_http()) });
        }
        Box::pin(async move {
            let mut grpc =
                Grpc::new(FrameCodec).apply_max_message_size_config(Some(1024 * 1024), Some(GRPC_MESSAGE_BYTES_MAX));
            Ok(grpc.streaming(method, request).await)
        })
    }
}

struct SyncMethod(Arc<SyncContext>);

impl StreamingService<v1::AgentMessage> for SyncMethod {
    type Response = Bytes;
    type ResponseStream = ReceiverStream<Result<Bytes, Status>>;
    type Future = BoxFuture<tonic::Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: tonic::Request<Streaming<v1::AgentMessage>>) -> Self::Future {
        let context = self.0.clone();
        // The authorization layer let only agents (or, with --insecure,
        // anyone) through; the certificate's identity binds the stream.
        let certified = super::caller_agent(&request);
        Box::pin(async move { open(context, certified, request.into_inner()).await })
    }
}

fn invalid(field: &str, rule: &str) -> Status {
    Status::invalid_argument(format!("hello.{field}: {rule}"))
}

/// Checks the Hello; returns the agent's scope. With TLS, the Hello must say
/// exactly what the agent's certificate says (id, kind, region): a frontend
/// certificate can never ask for the API scope's private bundles.
fn validate_hello(hello: &v1::Hello, certified: Option<&trust::Identity>) -> Result<Scope, Status> {
    let id = &hello.agent_id;
    if id.is_empty() || id.len() > AGENT_ID_BYTES_MAX || !id.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(invalid("agent_id", &format!("must be 1 to {AGENT_ID_BYTES_MAX} printable ASCII characters")));
    }
    let region = Region::parse(&hello.region).map_err(|error| invalid("region", &error.rule))?;
    let kind = v1::AgentKind::try_from(hello.kind).unwrap_or(v1::AgentKind::Unspecified);
    let (Some(scope), Some(kind)) = (Scope::of(kind), trust::AgentKind::of_wire(kind)) else {
        return Err(invalid("kind", "must be AGENT_KIND_API or AGENT_KIND_FRONTEND"));
    };
    if let Some(certified) = certified {
        let claimed = trust::Identity::Agent { id: id.clone(), kind, region };
        if &claimed != certified {
            return Err(Status::permission_denied(format!(
                "hello: claims {} but the certificate is {}: an agent speaks only for its certificate",
                claimed.uri(),
                certified.uri()
            )));
        }
    }
    Ok(scope)
}

/// Opens a stream: Hello, admission, catch-up of this node, subscription.
async fn open(
    context: Arc<SyncContext>,
    certified: Option<trust::Identity>,
    mut inbound: Streaming<v1::AgentMessage>,
) -> Result<tonic::Response<ReceiverStream<Result<Bytes, Status>>>, Status> {
    let first = tokio::time::timeout(Duration::from_millis(HELLO_TIMEOUT_MS), inbound.next())
        .await
        .map_err(|_| Status::invalid_argument("hello: the first message must arrive within 10 s"))?;
    let hello = match first {
        Some(Ok(v1::AgentMessage { kind: Some(agent_message::Kind::Hello(hello)) })) => hello,
        Some(Err(status)) => return Err(status),
        _ => return Err(Status::invalid_argument("hello: the first message must be a Hello")),
    };
    let scope = validate_hello(&hello, certified.as_ref())?;
    // A slot is taken only by an agent that said a valid Hello: a client
    // that connects and stays silent holds none.
    let permit = context.permits.clone().try_acquire_owned().map_err(|_| {
        Status::resource_exhausted("this registry node serves its maximum of agents; connect to another node")
    })?;

    // An agent holding another cluster's state (e.g. from before a restore),
    // or not knowing which cluster it follows yet, starts from a snapshot,
    // whatever its revision: snapshots are what carry the cluster id.
    // A cluster that is not named yet (its first leader names it within
    // moments of the election) serves no stream: deltas carry no cluster
    // id, so an agent that started from them would never learn it.
    let Some(cluster_id) = context.view.read().state.cluster_id.map(|id| id.to_string()) else {
        return Err(Status::unavailable("this cluster is not named yet (no leader so far); retry"));
    };
    let other_cluster = hello.cluster_id != cluster_id;
    let since = if other_cluster { 0 } else { hello.since_revision };

    // Never serve a revision below the agent's: wait (bounded) until this node caught up.
    if since > context.hub.published() {
        let wait = Duration::from_millis(SINCE_REVISION_WAIT_MS_MAX);
        if let Err(published) = context.hub.wait_published(since, wait).await {
            return Err(Status::unavailable(format!(
                "this node has applied up to revision {published}, behind the agent's {since}; connect to another node or retry"
            )));
        }
    }

    let subscription = context.hub.subscribe(since, other_cluster);
    let (sender, receiver) = mpsc::channel(STREAM_QUEUE_MESSAGES);
    // One stream per agent: a newer one (a reconnect) supersedes the older,
    // whose acks stop counting at once.
    let (connection, superseded) = context.agents.connected(&hello);
    let stream = Stream { context, agent_id: hello.agent_id, connection, superseded, scope, last_sent: since, sender };
    tokio::spawn(async move {
        let agent_id = stream.agent_id.clone();
        let context = stream.context.clone();
        stream.run(subscription.start, subscription.events, inbound).await;
        context.agents.disconnected(&agent_id, connection);
        drop(permit);
    });
    Ok(tonic::Response::new(ReceiverStream::new(receiver)))
}

/// One agent's stream.
struct Stream {
    context: Arc<SyncContext>,
    agent_id: String,
    /// This stream's number in the agent directory (acks count only from the
    /// agent's newest stream).
    connection: u64,
    /// Notified when a newer stream of the same agent opens.
    superseded: Arc<tokio::sync::Notify>,
    scope: Scope,
    /// The revision of the last delta (or snapshot) sent.
    last_sent: u64,
    sender: mpsc::Sender<Result<Bytes, Status>>,
}

/// Why a stream ended: the agent left (nothing to send), or a status to send.
enum End {
    AgentGone,
    Status(Status),
}

impl Stream {
    async fn send(&self, frame: Bytes) -> Result<(), End> {
        self.sender.send(Ok(frame)).await.map_err(|_| End::AgentGone)
    }

    async fn run(
        mut self,
        start: Start,
        mut events: broadcast::Receiver<HubEvent>,
        mut inbound: Streaming<v1::AgentMessage>,
    ) {
        let end = match self.serve(start, &mut events, &mut inbound).await {
            Ok(()) => return,
            Err(end) => end,
        };
        if let End::Status(status) = end {
            tracing::info!(agent_id = %self.agent_id, code = ?status.code(), message = status.message(), "agent stream ended");
            let _ = self.sender.send(Err(status)).await;
        }
    }

    async fn serve(
        &mut self,
        start: Start,
        events: &mut broadcast::Receiver<HubEvent>,
        inbound: &mut Streaming<v1::AgentMessage>,
    ) -> Result<(), End> {
        match start {
            Start::Live => {}
            Start::Replay(deltas) => {
                for delta in deltas {
                    self.send_delta(&delta).await?;
                }
            }
            Start::Snapshot => self.send_snapshot().await?,
        }
        let mut progress = tokio::time::interval(self.context.hub.limits().progress_interval);
        let mut stopping = self.context.stopping.clone();
        let superseded = self.superseded.clone();
        loop {
            tokio::select! {
                () = superseded.notified() => {
                    return Err(End::Status(Status::aborted("a newer stream of this agent superseded this one")));
                }
                event = events.recv() => match event {
                    Ok(HubEvent::Delta(delta)) => self.send_delta(&delta).await?,
                    Ok(HubEvent::Reset) => {
                        return Err(End::Status(Status::aborted(
                            "this registry node installed a snapshot and restarted its change sequence; resume from your revision",
                        )));
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        return Err(End::Status(Status::resource_exhausted(format!(
                            "agent too slow: it fell {missed} deltas behind the newest (limit {}); resume from revision {}",
                            self.context.hub.limits().queue_deltas_max, self.last_sent
                        ))));
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(End::Status(Status::unavailable("registry node stopping; connect to another node")));
                    }
                },
                message = inbound.next() => match message {
                    Some(Ok(message)) => self.received(message)?,
                    // The agent closed its side or the connection broke.
                    Some(Err(_)) | None => return Err(End::AgentGone),
                },
                _ = progress.tick() => {
                    let leader_contact_ms = self.context.freshness.age_ms_at(self.last_sent);
                    self.send(encode(Kind::Progress(v1::Progress { revision: self.last_sent, leader_contact_ms }))).await?;
                }
                () = async { let _ = stopping.wait_for(|stopping| *stopping).await; } => {
                    return Err(End::Status(Status::unavailable("registry node stopping; connect to another node")));
                }
            }
        }
    }

    async fn send_delta(&mut self, delta: &DeltaFrames) -> Result<(), End> {
        if delta.revision <= self.last_sent {
            // Already covered by the snapshot this stream sent.
            return Ok(());
        }
        if delta.revision != self.last_sent + 1 {
            return Err(End::Status(Status::internal(format!(
                "delta sequence broken at this node ({} after {}); resume from your revision",
                delta.revision, self.last_sent
            ))));
        }
        self.send(delta.frame(self.scope)).await?;
        self.last_sent = delta.revision;
        self.context.stages.mark(Stage::DeltaSent, delta.revision);
        Ok(())
    }

    /// Sends the whole state in chunks; deltas continue after its revision.
    async fn send_snapshot(&mut self) -> Result<(), End> {
        let (revision, cluster_id, tenants, topology) = {
            let applied = self.context.view.read();
            let revision = applied.last_applied.map_or(0, |log_id| log_id.index);
            let cluster_id = applied.state.cluster_id.map(|id| id.to_string()).unwrap_or_default();
            let tenants: Vec<_> = applied.state.tenants.values().filter(|tenant| tenant.is_live()).cloned().collect();
            (revision, cluster_id, tenants, applied.state.topology.clone())
        };
        let mut chunks = tenants.chunks(SNAPSHOT_CHUNK_TENANTS).peekable();
        if chunks.peek().is_none() {
            let last = v1::SnapshotChunk { revision, cluster_id: cluster_id.clone(), tenants: vec![], last: true };
            self.send(encode(Kind::Snapshot(last))).await?;
        }
        while let Some(chunk) = chunks.next() {
            let chunk = v1::SnapshotChunk {
                revision,
                cluster_id: cluster_id.clone(),
                tenants: chunk.iter().map(|tenant| tenant_record(tenant, self.scope, &topology)).collect(),
                last: chunks.peek().is_none(),
            };
            self.send(encode(Kind::Snapshot(chunk))).await?;
        }
        self.last_sent = revision;
        Ok(())
    }

    fn received(&self, message: v1::AgentMessage) -> Result<(), End> {
        match message.kind {
            Some(agent_message::Kind::Ack(ack)) => {
                if ack.revision > self.last_sent {
                    return Err(End::Status(Status::invalid_argument(format!(
                        "ack.revision: {} was never sent on this stream (last sent {})",
                        ack.revision, self.last_sent
                    ))));
                }
                self.context.agents.ack(&self.agent_id, self.connection, ack.revision);
            }
            Some(agent_message::Kind::Nack(nack)) => self.context.agents.nack(&self.agent_id, self.connection, nack),
            Some(agent_message::Kind::Hello(_)) | None => {
                return Err(End::Status(Status::invalid_argument("hello: only the first message may be a Hello")));
            }
        }
        Ok(())
    }
}
