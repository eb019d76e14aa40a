//! The internal gRPC service that receives Raft traffic from other nodes,
//! and answers read-index requests when this node leads.

use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use proto::v1::raft_internal_server::RaftInternal;
use proto::v1::{RaftPayload, ReadIndexRequest, ReadIndexResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};
use trust::Identity;

use super::authz::{self, Caller};
use super::status;
use crate::raft_types::{NodeId, Raft, TypeConfig};

pub(crate) struct RaftService {
    pub(crate) raft: Raft,
}

/// The request's message and its caller.
fn decode<T: DeserializeOwned>(request: Request<RaftPayload>) -> Result<(T, Caller), Status> {
    let caller = authz::caller(&request);
    let message = serde_json::from_slice(&request.into_inner().payload)
        .map_err(|error| Status::invalid_argument(format!("payload: not a valid Raft message: {error}")))?;
    Ok((message, caller))
}

/// Refuses a message that speaks for another member than the one the
/// caller's certificate names: one node's certificate may not campaign or
/// lead as another (without TLS, `--insecure`, nobody is checked).
fn speaks_for_itself(caller: &Caller, claimed: Option<NodeId>) -> Result<(), Status> {
    match (caller.identity.as_deref(), claimed) {
        (None, _) => Ok(()),
        (Some(Identity::Node { id, .. }), Some(claimed)) if *id == claimed => Ok(()),
        (Some(identity), claimed) => Err(Status::permission_denied(format!(
            "{identity}: the message speaks for {}; a node speaks only for the member its certificate names",
            claimed.map_or("no member".to_owned(), |claimed| format!("node {claimed}"))
        ))),
    }
}

fn encode<T: Serialize>(result: &T) -> Result<Response<RaftPayload>, Status> {
    let payload = serde_json::to_vec(result).map_err(|error| Status::internal(error.to_string()))?;
    Ok(Response::new(RaftPayload { payload }))
}

#[tonic::async_trait]
impl RaftInternal for RaftService {
    async fn append_entries(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let (message, caller): (AppendEntriesRequest<TypeConfig>, _) = decode(request)?;
        speaks_for_itself(&caller, message.vote.leader_id().voted_for())?;
        encode(&self.raft.append_entries(message).await)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let (message, caller): (VoteRequest<NodeId>, _) = decode(request)?;
        speaks_for_itself(&caller, message.vote.leader_id().voted_for())?;
        encode(&self.raft.vote(message).await)
    }

    async fn install_snapshot(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let (message, caller): (InstallSnapshotRequest<TypeConfig>, _) = decode(request)?;
        speaks_for_itself(&caller, message.vote.leader_id().voted_for())?;
        encode(&self.raft.install_snapshot(message).await)
    }

    async fn read_index(&self, _request: Request<ReadIndexRequest>) -> Result<Response<ReadIndexResponse>, Status> {
        // Confirms leadership with a quorum (openraft's read index) before answering.
        let (read_log_id, _applied) = self.raft.get_read_log_id().await.map_err(status::from_check_leader)?;
        Ok(Response::new(ReadIndexResponse { read_index: read_log_id.map_or(0, |log_id| log_id.index) }))
    }
}
