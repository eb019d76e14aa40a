//! The node's errors as gRPC statuses ([`proto::status`]): refused
//! commands, bad values, no leader, Raft failures.

use openraft::errors::LinearizableReadError;
pub(crate) use proto::status::with_detail;
use proto::v1::ErrorDetail;
use proto::DomainError;
use registry_core::CommandError;
use tonic::{Code, Status};

use crate::raft_types::{ClientWriteError, Fatal, ForwardToLeader, RaftError, ReadError, WriteError};

/// A refused command.
pub(crate) fn from_command_error(error: &CommandError) -> Status {
    let message = error.to_string();
    match error {
        CommandError::Invalid { field, rule_id, .. } => with_detail(
            Code::InvalidArgument,
            message,
            ErrorDetail { field: field.clone(), rule: rule_id.clone(), ..Default::default() },
        ),
        CommandError::NotFound { .. } => with_detail(
            Code::NotFound,
            message,
            ErrorDetail { field: "tenant_id".to_owned(), rule: "exists".to_owned(), ..Default::default() },
        ),
        CommandError::AlreadyExists { revision, .. } => with_detail(
            Code::AlreadyExists,
            message,
            ErrorDetail {
                field: "tenant_id".to_owned(),
                rule: "unique".to_owned(),
                current_revision: Some(revision.get()),
                ..Default::default()
            },
        ),
        CommandError::RevisionMismatch { expected, current, .. } => with_detail(
            Code::FailedPrecondition,
            message,
            ErrorDetail {
                field: "meta.expected_revision".to_owned(),
                rule: "revision-mismatch".to_owned(),
                current_revision: Some(*current),
                expected_revision: Some(*expected),
                ..Default::default()
            },
        ),
        // A retry (with the same request id) is judged again.
        CommandError::Stale { .. } => Status::unavailable(message),
        CommandError::NoCanary { .. } => with_detail(
            Code::FailedPrecondition,
            message,
            ErrorDetail { field: "tenant_id".to_owned(), rule: "canary-staged".to_owned(), ..Default::default() },
        ),
    }
}

/// A value that broke a domain rule.
pub(crate) fn from_domain_error(error: &DomainError) -> Status {
    with_detail(
        Code::InvalidArgument,
        error.to_string(),
        ErrorDetail { field: error.field.clone(), rule: error.rule_id.to_owned(), ..Default::default() },
    )
}

/// No leader reachable from here: the client should retry, preferably at
/// the leader whose address the detail names.
pub(crate) fn no_leader(forward: &ForwardToLeader, what: &str) -> Status {
    let leader_grpc_addr = forward.leader_node.as_ref().map(|node| node.grpc_addr.clone()).unwrap_or_default();
    let message = match forward.leader_id {
        Some(leader) => {
            format!("{what}: this node could not reach the leader (node {leader} at {leader_grpc_addr}); retry")
        }
        None => format!("{what}: no leader is known (election in progress or no quorum); retry shortly"),
    };
    with_detail(Code::Unavailable, message, ErrorDetail { leader_grpc_addr, ..Default::default() })
}

fn fatal(error: &Fatal) -> Status {
    Status::unavailable(format!("this registry node is stopping or broken ({error}); use another endpoint"))
}

/// A failed leadership check (read index).
pub(crate) fn from_read(error: ReadError) -> Status {
    match error {
        RaftError::APIError(LinearizableReadError::ForwardToLeader(forward)) => no_leader(&forward, "read"),
        RaftError::APIError(LinearizableReadError::QuorumNotEnough(error)) => {
            Status::unavailable(format!("read: the leader cannot reach a quorum ({error}); retry"))
        }
        RaftError::Fatal(error) => fatal(&error),
    }
}

/// A failed proposal, other than "forward to the leader".
pub(crate) fn from_client_write(error: &WriteError) -> Status {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => no_leader(forward, "write"),
        RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)) => Status::unavailable(
            "write: the leader changed before the write committed, so it may or may not have applied; \
             retry with the same request id, which applies it at most once",
        ),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(error)) => {
            Status::failed_precondition(error.to_string())
        }
        RaftError::APIError(ClientWriteError::PreconditionFailed(error)) => {
            Status::failed_precondition(error.to_string())
        }
        RaftError::Fatal(error) => fatal(error),
    }
}
