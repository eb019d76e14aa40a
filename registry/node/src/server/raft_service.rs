//! The internal gRPC service that receives Raft traffic from other nodes,
//! and answers read-index requests when this node leads.

use std::path::PathBuf;

use futures::StreamExt;
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use openraft::ReadPolicy;
use proto::v1::raft_internal_server::RaftInternal;
use proto::v1::{raft_snapshot_chunk, RaftPayload, RaftSnapshotChunk, ReadIndexRequest, ReadIndexResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tonic::{Request, Response, Status, Streaming};
use trust::Identity;

use super::authz::{self, Caller};
use super::network::{self, SnapshotHeader};
use super::status;
use crate::raft_types::{NodeId, Raft, Snapshot, TypeConfig};

pub(crate) struct RaftService {
    pub(crate) raft: Raft,
    /// Where a snapshot being received is written (the node's snapshot
    /// directory: temporary files there are removed at start).
    pub(crate) receive_dir: PathBuf,
}

/// The request's message and its caller.
fn decode<T: DeserializeOwned>(request: Request<RaftPayload>) -> Result<(T, Caller), Status> {
    let caller = authz::caller(&request);
    let message = network::decode(request.get_ref()).map_err(|error| match error.contains("Raft format") {
        true => Status::failed_precondition(format!("payload: {error}")),
        false => Status::invalid_argument(format!("payload: {error}")),
    })?;
    Ok((message, caller))
}

/// Refuses a message that speaks for another member than the one the
/// caller's certificate names: one node's certificate may not campaign or
/// lead as another (without TLS, `--insecure`, nobody is checked).
fn speaks_for_itself(caller: &Caller, claimed: NodeId) -> Result<(), Status> {
    match caller.identity.as_deref() {
        None => Ok(()),
        Some(Identity::Node { id, .. }) if *id == claimed => Ok(()),
        Some(identity) => Err(Status::permission_denied(format!(
            "{identity}: the message speaks for node {claimed}; a node speaks only for the member its certificate names"
        ))),
    }
}

/// The answer as a payload; a node that is stopping answers UNAVAILABLE,
/// which the sender treats as unreachable.
fn answer<T: Serialize, E: std::fmt::Display>(result: Result<T, E>) -> Result<Response<RaftPayload>, Status> {
    let result = result.map_err(|error| Status::unavailable(format!("this node's Raft stopped: {error}")))?;
    network::encode(&result).map(Response::new).map_err(|error| Status::internal(error.to_string()))
}

#[tonic::async_trait]
impl RaftInternal for RaftService {
    async fn append_entries(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let (message, caller): (AppendEntriesRequest<TypeConfig>, _) = decode(request)?;
        speaks_for_itself(&caller, message.vote.leader_id.node_id)?;
        answer(self.raft.append_entries(message).await)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let (message, caller): (VoteRequest<TypeConfig>, _) = decode(request)?;
        speaks_for_itself(&caller, message.vote.leader_id.node_id)?;
        answer(self.raft.vote(message).await)
    }

    async fn pre_vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let (message, caller): (VoteRequest<TypeConfig>, _) = decode(request)?;
        speaks_for_itself(&caller, message.vote.leader_id.node_id)?;
        answer(self.raft.pre_vote(message).await)
    }

    async fn transfer_leader(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let (message, caller): (TransferLeaderRequest<TypeConfig>, _) = decode(request)?;
        speaks_for_itself(&caller, message.from_leader().leader_id.node_id)?;
        answer(self.raft.handle_transfer_leader(message).await)
    }

    /// Writes the streamed snapshot to a temporary file, then hands it to
    /// openraft, which installs it (the state machine verifies its trailer
    /// and checksum first). The file is removed afterwards either way.
    async fn stream_snapshot(
        &self,
        request: Request<Streaming<RaftSnapshotChunk>>,
    ) -> Result<Response<RaftPayload>, Status> {
        let caller = authz::caller(&request);
        let mut chunks = request.into_inner();
        let header = match chunks.next().await {
            Some(Ok(RaftSnapshotChunk { chunk: Some(raft_snapshot_chunk::Chunk::Meta(header)) })) => header,
            Some(Err(status)) => return Err(status),
            _ => return Err(Status::invalid_argument("snapshot: the first chunk must carry the vote and meta")),
        };
        let (SnapshotHeader { vote, meta }, _): (SnapshotHeader, _) = decode(Request::new(header))?;
        speaks_for_itself(&caller, vote.leader_id.node_id)?;

        let path = self.receive_dir.join(format!("{}.tmp", ulid::Ulid::new()));
        let received = receive(&path, &mut chunks).await;
        let installed = match received {
            Ok(file) => Ok(self.raft.install_full_snapshot(vote, Snapshot { meta, snapshot: file }).await),
            Err(status) => Err(status),
        };
        let _ = tokio::fs::remove_file(&path).await;
        answer(installed?)
    }

    async fn read_index(&self, _request: Request<ReadIndexRequest>) -> Result<Response<ReadIndexResponse>, Status> {
        // Confirms leadership with a quorum (openraft's read index) before answering.
        let (read_log_id, _applied) =
            self.raft.get_read_log_id(ReadPolicy::ReadIndex).await.map_err(status::from_read)?;
        Ok(Response::new(ReadIndexResponse { read_index: read_log_id.index() }))
    }
}

/// Writes the data chunks to a new file at `path` and returns it synced and
/// rewound for reading.
async fn receive(path: &std::path::Path, chunks: &mut Streaming<RaftSnapshotChunk>) -> Result<tokio::fs::File, Status> {
    let io_error = |error: std::io::Error| Status::internal(format!("snapshot: writing {}: {error}", path.display()));
    let mut file =
        tokio::fs::OpenOptions::new().read(true).write(true).create_new(true).open(path).await.map_err(io_error)?;
    while let Some(chunk) = chunks.next().await {
        match chunk?.chunk {
            Some(raft_snapshot_chunk::Chunk::Data(data)) => file.write_all(&data).await.map_err(io_error)?,
            _ => return Err(Status::invalid_argument("snapshot: only the first chunk carries the meta")),
        }
    }
    file.sync_all().await.map_err(io_error)?;
    let mut file = file;
    tokio::io::AsyncSeekExt::rewind(&mut file).await.map_err(io_error)?;
    Ok(file)
}
