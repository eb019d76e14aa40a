//! The Raft wire and log format: openraft's messages and entries to and
//! from the protobuf messages of `raft.proto`.
//!
//! Encoding cannot fail; decoding names the first field that is missing or
//! malformed (`entries[3].proposal.commands[0].meta: required`).

mod commands;

pub use commands::{region_status, region_status_from};

use std::collections::{BTreeMap, BTreeSet};

use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderError, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::EntryPayload;
use proto::v1::{self, raft_append_response, raft_entry, raft_transfer_leader_response};

use crate::raft_types::{Entry, LogId, Member, Membership, SnapshotMeta, StoredMembership, TypeConfig, Vote};

/// The format of the Raft messages and log entries this build writes and
/// reads. Sent as [`FORMAT_HEADER`] on every Raft request; 1 was the JSON
/// of openraft 0.9's types, which sent no header; 3 adds what the leader
/// compiled to a command (`LogCompiled`), which a format 2 build would
/// ignore and apply differently. A format 2 log reads as is: its commands
/// carry nothing compiled, and apply compiles them as format 2 builds did.
/// 4 adds a shard's read replica (`LogShard.replica_endpoint`), which a
/// format 3 build would drop; a format 3 log reads as is (no replicas).
pub const FORMAT: u32 = 4;

/// The metadata key that carries [`FORMAT`].
pub const FORMAT_HEADER: &str = "x-tenantry-raft-format";

/// A message that does not decode: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn required<T>(value: Option<T>, at: &str) -> Result<T, Invalid> {
    value.ok_or_else(|| Invalid(format!("{at}: required")))
}

pub fn log_id(log_id: &LogId) -> v1::RaftLogId {
    v1::RaftLogId { term: log_id.leader_id.term, node_id: log_id.leader_id.node_id, index: log_id.index }
}

pub fn log_id_from(message: v1::RaftLogId) -> LogId {
    crate::raft_types::log_id(message.term, message.node_id, message.index)
}

fn optional_log_id(value: &Option<LogId>) -> Option<v1::RaftLogId> {
    value.as_ref().map(log_id)
}

fn optional_log_id_from(message: Option<v1::RaftLogId>) -> Option<LogId> {
    message.map(log_id_from)
}

pub fn vote(vote: &Vote) -> v1::RaftVote {
    v1::RaftVote { term: vote.leader_id.term, node_id: vote.leader_id.node_id, committed: vote.is_committed() }
}

pub fn vote_from(message: Option<v1::RaftVote>, at: &str) -> Result<Vote, Invalid> {
    let message = required(message, at)?;
    Ok(match message.committed {
        true => Vote::new_committed(message.term, message.node_id),
        false => Vote::new(message.term, message.node_id),
    })
}

fn membership(membership: &Membership) -> v1::RaftMembership {
    v1::RaftMembership {
        configs: membership
            .get_joint_config()
            .iter()
            .map(|config| v1::RaftNodeIds { ids: config.iter().copied().collect() })
            .collect(),
        nodes: membership
            .nodes()
            .map(|(id, member)| {
                (*id, v1::RaftMember { region: member.region.clone(), grpc_addr: member.grpc_addr.clone() })
            })
            .collect(),
    }
}

fn membership_from(message: v1::RaftMembership, at: &str) -> Result<Membership, Invalid> {
    let configs: Vec<BTreeSet<u64>> =
        message.configs.into_iter().map(|config| config.ids.into_iter().collect()).collect();
    let nodes: BTreeMap<u64, Member> = message
        .nodes
        .into_iter()
        .map(|(id, member)| (id, Member { region: member.region, grpc_addr: member.grpc_addr }))
        .collect();
    Membership::new(configs, nodes).map_err(|error| Invalid(format!("{at}: {error}")))
}

fn stored_membership(stored: &StoredMembership) -> v1::RaftStoredMembership {
    v1::RaftStoredMembership {
        log_id: optional_log_id(stored.log_id()),
        membership: Some(membership(stored.membership())),
    }
}

fn stored_membership_from(message: Option<v1::RaftStoredMembership>, at: &str) -> Result<StoredMembership, Invalid> {
    let message = required(message, at)?;
    let membership = membership_from(required(message.membership, &format!("{at}.membership"))?, at)?;
    Ok(StoredMembership::new(optional_log_id_from(message.log_id), membership))
}

pub fn entry(entry: &Entry) -> v1::RaftEntry {
    let payload = match &entry.payload {
        EntryPayload::Blank => raft_entry::Payload::Blank(v1::RaftBlank {}),
        EntryPayload::Normal(proposal) => raft_entry::Payload::Proposal(commands::proposal(proposal)),
        EntryPayload::Membership(config) => raft_entry::Payload::Membership(membership(config)),
    };
    v1::RaftEntry { log_id: Some(log_id(&entry.log_id)), payload: Some(payload) }
}

pub fn entry_from(message: v1::RaftEntry, at: &str) -> Result<Entry, Invalid> {
    let log_id = log_id_from(required(message.log_id, &format!("{at}.log_id"))?);
    let payload = match required(message.payload, &format!("{at}.payload"))? {
        raft_entry::Payload::Blank(_) => EntryPayload::Blank,
        raft_entry::Payload::Proposal(proposal) => {
            EntryPayload::Normal(commands::proposal_from(proposal, &format!("{at}.proposal"))?)
        }
        raft_entry::Payload::Membership(config) => {
            EntryPayload::Membership(membership_from(config, &format!("{at}.membership"))?)
        }
    };
    Ok(Entry { log_id, payload })
}

pub fn append_request(request: &AppendEntriesRequest<TypeConfig>) -> v1::RaftAppendRequest {
    v1::RaftAppendRequest {
        vote: Some(vote(&request.vote)),
        prev_log_id: optional_log_id(&request.prev_log_id),
        entries: request.entries.iter().map(entry).collect(),
        leader_commit: optional_log_id(&request.leader_commit),
    }
}

pub fn append_request_from(message: v1::RaftAppendRequest) -> Result<AppendEntriesRequest<TypeConfig>, Invalid> {
    Ok(AppendEntriesRequest {
        vote: vote_from(message.vote, "vote")?,
        prev_log_id: optional_log_id_from(message.prev_log_id),
        entries: message
            .entries
            .into_iter()
            .enumerate()
            .map(|(index, message)| entry_from(message, &format!("entries[{index}]")))
            .collect::<Result<_, _>>()?,
        leader_commit: optional_log_id_from(message.leader_commit),
    })
}

pub fn append_response(response: &AppendEntriesResponse<TypeConfig>) -> v1::RaftAppendResponse {
    let result = match response {
        AppendEntriesResponse::Success => raft_append_response::Result::Success(v1::RaftBlank {}),
        AppendEntriesResponse::PartialSuccess(last) => {
            raft_append_response::Result::PartialSuccess(v1::RaftPartialSuccess { last_log_id: optional_log_id(last) })
        }
        AppendEntriesResponse::Conflict => raft_append_response::Result::Conflict(v1::RaftBlank {}),
        AppendEntriesResponse::HigherVote(higher) => raft_append_response::Result::HigherVote(vote(higher)),
    };
    v1::RaftAppendResponse { result: Some(result) }
}

pub fn append_response_from(message: v1::RaftAppendResponse) -> Result<AppendEntriesResponse<TypeConfig>, Invalid> {
    Ok(match required(message.result, "result")? {
        raft_append_response::Result::Success(_) => AppendEntriesResponse::Success,
        raft_append_response::Result::PartialSuccess(partial) => {
            AppendEntriesResponse::PartialSuccess(optional_log_id_from(partial.last_log_id))
        }
        raft_append_response::Result::Conflict(_) => AppendEntriesResponse::Conflict,
        raft_append_response::Result::HigherVote(higher) => {
            AppendEntriesResponse::HigherVote(vote_from(Some(higher), "result.higher_vote")?)
        }
    })
}

pub fn vote_request(request: &VoteRequest<TypeConfig>) -> v1::RaftVoteRequest {
    v1::RaftVoteRequest {
        vote: Some(vote(&request.vote)),
        last_log_id: optional_log_id(&request.last_log_id),
        leadership_transfer: request.leadership_transfer,
    }
}

pub fn vote_request_from(message: v1::RaftVoteRequest) -> Result<VoteRequest<TypeConfig>, Invalid> {
    let mut request = VoteRequest::new(vote_from(message.vote, "vote")?, optional_log_id_from(message.last_log_id));
    request.leadership_transfer = message.leadership_transfer;
    Ok(request)
}

pub fn vote_response(response: &VoteResponse<TypeConfig>) -> v1::RaftVoteResponse {
    v1::RaftVoteResponse {
        vote: Some(vote(&response.vote)),
        vote_granted: response.vote_granted,
        last_log_id: optional_log_id(&response.last_log_id),
    }
}

pub fn vote_response_from(message: v1::RaftVoteResponse) -> Result<VoteResponse<TypeConfig>, Invalid> {
    let vote = vote_from(message.vote, "vote")?;
    Ok(VoteResponse::new(vote, optional_log_id_from(message.last_log_id), message.vote_granted))
}

pub fn snapshot_meta(meta: &SnapshotMeta) -> v1::RaftSnapshotMeta {
    v1::RaftSnapshotMeta {
        last_log_id: optional_log_id(&meta.last_log_id),
        last_membership: Some(stored_membership(&meta.last_membership)),
    }
}

pub fn snapshot_meta_from(message: Option<v1::RaftSnapshotMeta>, at: &str) -> Result<SnapshotMeta, Invalid> {
    let message = required(message, at)?;
    Ok(SnapshotMeta {
        last_log_id: optional_log_id_from(message.last_log_id),
        last_membership: stored_membership_from(message.last_membership, &format!("{at}.last_membership"))?,
    })
}

pub fn snapshot_response(response: &SnapshotResponse<TypeConfig>) -> v1::RaftSnapshotResponse {
    v1::RaftSnapshotResponse { vote: Some(vote(&response.vote)) }
}

pub fn snapshot_response_from(message: v1::RaftSnapshotResponse) -> Result<SnapshotResponse<TypeConfig>, Invalid> {
    Ok(SnapshotResponse::new(vote_from(message.vote, "vote")?))
}

pub fn transfer_request(request: &TransferLeaderRequest<TypeConfig>) -> v1::RaftTransferLeaderRequest {
    v1::RaftTransferLeaderRequest {
        from_leader: Some(vote(request.from_leader())),
        to_node_id: *request.to_node_id(),
        last_log_id: request.last_log_id().map(log_id),
    }
}

pub fn transfer_request_from(
    message: v1::RaftTransferLeaderRequest,
) -> Result<TransferLeaderRequest<TypeConfig>, Invalid> {
    let from = vote_from(message.from_leader, "from_leader")?;
    Ok(TransferLeaderRequest::new(from, message.to_node_id, optional_log_id_from(message.last_log_id)))
}

pub fn transfer_response(response: &TransferLeaderResponse<TypeConfig>) -> v1::RaftTransferLeaderResponse {
    let result = match response {
        Ok(()) => raft_transfer_leader_response::Result::Ok(v1::RaftBlank {}),
        Err(TransferLeaderError::VoteChanged { expected, actual }) => {
            raft_transfer_leader_response::Result::VoteChanged(v1::RaftVoteChanged {
                expected: Some(vote(expected)),
                actual: Some(vote(actual)),
            })
        }
        Err(TransferLeaderError::LogNotFlushed { expected, actual }) => {
            raft_transfer_leader_response::Result::LogNotFlushed(v1::RaftLogNotFlushed {
                expected: optional_log_id(expected),
                actual: optional_log_id(actual),
            })
        }
    };
    v1::RaftTransferLeaderResponse { result: Some(result) }
}

pub fn transfer_response_from(
    message: v1::RaftTransferLeaderResponse,
) -> Result<TransferLeaderResponse<TypeConfig>, Invalid> {
    Ok(match required(message.result, "result")? {
        raft_transfer_leader_response::Result::Ok(_) => Ok(()),
        raft_transfer_leader_response::Result::VoteChanged(changed) => Err(TransferLeaderError::VoteChanged {
            expected: vote_from(changed.expected, "result.vote_changed.expected")?,
            actual: vote_from(changed.actual, "result.vote_changed.actual")?,
        }),
        raft_transfer_leader_response::Result::LogNotFlushed(not_flushed) => Err(TransferLeaderError::LogNotFlushed {
            expected: optional_log_id_from(not_flushed.expected),
            actual: optional_log_id_from(not_flushed.actual),
        }),
    })
}

#[cfg(test)]
mod tests;
