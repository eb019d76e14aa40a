//! The internal gRPC service that receives Raft traffic from other nodes,
//! and answers read-index requests when this node leads.

use proto::v1::raft_internal_server::RaftInternal;
use proto::v1::{RaftPayload, ReadIndexRequest, ReadIndexResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use super::status;
use crate::raft_types::Raft;

pub(crate) struct RaftService {
    pub(crate) raft: Raft,
}

fn decode<T: DeserializeOwned>(request: Request<RaftPayload>) -> Result<T, Status> {
    serde_json::from_slice(&request.into_inner().payload)
        .map_err(|error| Status::invalid_argument(format!("payload: not a valid Raft message: {error}")))
}

fn encode<T: Serialize>(result: &T) -> Result<Response<RaftPayload>, Status> {
    let payload = serde_json::to_vec(result).map_err(|error| Status::internal(error.to_string()))?;
    Ok(Response::new(RaftPayload { payload }))
}

#[tonic::async_trait]
impl RaftInternal for RaftService {
    async fn append_entries(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        encode(&self.raft.append_entries(decode(request)?).await)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        encode(&self.raft.vote(decode(request)?).await)
    }

    async fn install_snapshot(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        encode(&self.raft.install_snapshot(decode(request)?).await)
    }

    async fn read_index(&self, _request: Request<ReadIndexRequest>) -> Result<Response<ReadIndexResponse>, Status> {
        // Confirms leadership with a quorum (openraft's read index) before answering.
        let (read_log_id, _applied) = self.raft.get_read_log_id().await.map_err(status::from_check_leader)?;
        Ok(Response::new(ReadIndexResponse { read_index: read_log_id.map_or(0, |log_id| log_id.index) }))
    }
}
