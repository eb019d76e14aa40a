//! The internal gRPC service that receives Raft traffic from other nodes,
//! and answers read-index requests when this node leads. The authorization
//! layer has already refused another cluster, another Raft format and
//! callers without a node certificate.

use std::path::PathBuf;

use futures::StreamExt;
use openraft::ReadPolicy;
use proto::v1::raft_internal_server::RaftInternal;
use proto::v1::{self, raft_snapshot_chunk, ReadIndexRequest, ReadIndexResponse};
use tokio::io::AsyncWriteExt;
use tonic::{Request, Response, Status, Streaming};
use trust::Identity;

use super::authz::{self, Caller};
use super::status;
use crate::raft_types::{NodeId, Raft, Snapshot, Vote};
use crate::wire::{self, Invalid};

pub(crate) struct RaftService {
    pub(crate) raft: Raft,
    /// Where a snapshot being received is written (the node's snapshot
    /// directory: temporary files there are removed at start).
    pub(crate) receive_dir: PathBuf,
}

fn invalid(error: Invalid) -> Status {
    Status::invalid_argument(format!("not a valid Raft message: {error}"))
}

/// Refuses a message that speaks for another member than the one the
/// caller's certificate names: one node's certificate may not campaign or
/// lead as another (without TLS, `--insecure`, nobody is checked).
fn speaks_for_itself(caller: &Caller, vote: &Vote) -> Result<(), Status> {
    let claimed: NodeId = vote.leader_id.node_id;
    match caller.identity.as_deref() {
        None => Ok(()),
        Some(Identity::Node { id, .. }) if *id == claimed => Ok(()),
        Some(identity) => Err(Status::permission_denied(format!(
            "{identity}: the message speaks for node {claimed}; a node speaks only for the member its certificate names"
        ))),
    }
}

/// A node whose Raft stopped answers UNAVAILABLE, which the sender treats
/// as unreachable.
fn stopped(error: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("this node's Raft stopped: {error}"))
}

#[tonic::async_trait]
impl RaftInternal for RaftService {
    async fn append_entries(
        &self,
        request: Request<v1::RaftAppendRequest>,
    ) -> Result<Response<v1::RaftAppendResponse>, Status> {
        let caller = authz::caller(&request);
        let message = wire::append_request_from(request.into_inner()).map_err(invalid)?;
        speaks_for_itself(&caller, &message.vote)?;
        let response = self.raft.append_entries(message).await.map_err(stopped)?;
        Ok(Response::new(wire::append_response(&response)))
    }

    async fn vote(&self, request: Request<v1::RaftVoteRequest>) -> Result<Response<v1::RaftVoteResponse>, Status> {
        let caller = authz::caller(&request);
        let message = wire::vote_request_from(request.into_inner()).map_err(invalid)?;
        speaks_for_itself(&caller, &message.vote)?;
        let response = self.raft.vote(message).await.map_err(stopped)?;
        Ok(Response::new(wire::vote_response(&response)))
    }

    async fn pre_vote(&self, request: Request<v1::RaftVoteRequest>) -> Result<Response<v1::RaftVoteResponse>, Status> {
        let caller = authz::caller(&request);
        let message = wire::vote_request_from(request.into_inner()).map_err(invalid)?;
        speaks_for_itself(&caller, &message.vote)?;
        let response = self.raft.pre_vote(message).await.map_err(stopped)?;
        Ok(Response::new(wire::vote_response(&response)))
    }

    async fn transfer_leader(
        &self,
        request: Request<v1::RaftTransferLeaderRequest>,
    ) -> Result<Response<v1::RaftTransferLeaderResponse>, Status> {
        let caller = authz::caller(&request);
        let message = wire::transfer_request_from(request.into_inner()).map_err(invalid)?;
        speaks_for_itself(&caller, message.from_leader())?;
        let response = self.raft.handle_transfer_leader(message).await.map_err(stopped)?;
        Ok(Response::new(wire::transfer_response(&response)))
    }

    /// Writes the streamed snapshot to a temporary file, then hands it to
    /// openraft, which installs it (the state machine verifies its trailer
    /// and checksum first). The file is removed afterwards either way.
    async fn stream_snapshot(
        &self,
        request: Request<Streaming<v1::RaftSnapshotChunk>>,
    ) -> Result<Response<v1::RaftSnapshotResponse>, Status> {
        let caller = authz::caller(&request);
        let mut chunks = request.into_inner();
        let header = match chunks.next().await {
            Some(Ok(v1::RaftSnapshotChunk { chunk: Some(raft_snapshot_chunk::Chunk::Header(header)) })) => header,
            Some(Err(status)) => return Err(status),
            _ => return Err(Status::invalid_argument("snapshot: the first chunk must carry the vote and meta")),
        };
        let vote = wire::vote_from(header.vote, "header.vote").map_err(invalid)?;
        let meta = wire::snapshot_meta_from(header.meta, "header.meta").map_err(invalid)?;
        speaks_for_itself(&caller, &vote)?;

        let path = self.receive_dir.join(format!("{}.tmp", ulid::Ulid::new()));
        let installed = match receive(&path, &mut chunks).await {
            Ok(file) => self.raft.install_full_snapshot(vote, Snapshot { meta, snapshot: file }).await.map_err(stopped),
            Err(status) => Err(status),
        };
        let _ = tokio::fs::remove_file(&path).await;
        Ok(Response::new(wire::snapshot_response(&installed?)))
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
async fn receive(
    path: &std::path::Path,
    chunks: &mut Streaming<v1::RaftSnapshotChunk>,
) -> Result<tokio::fs::File, Status> {
    let io_error = |error: std::io::Error| Status::internal(format!("snapshot: writing {}: {error}", path.display()));
    let mut file =
        tokio::fs::OpenOptions::new().read(true).write(true).create_new(true).open(path).await.map_err(io_error)?;
    while let Some(chunk) = chunks.next().await {
        match chunk?.chunk {
            Some(raft_snapshot_chunk::Chunk::Data(data)) => file.write_all(&data).await.map_err(io_error)?,
            _ => return Err(Status::invalid_argument("snapshot: only the first chunk carries the header")),
        }
    }
    file.sync_all().await.map_err(io_error)?;
    tokio::io::AsyncSeekExt::rewind(&mut file).await.map_err(io_error)?;
    Ok(file)
}
