//! Round trips of every Raft message and command, and the field a
//! malformed message is refused for.

use std::collections::{BTreeMap, BTreeSet};

use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, TransferLeaderError, TransferLeaderRequest};
use openraft::EntryPayload;
use proto::{Region, Revision, TenantId};
use registry_core::{
    Command, DocumentsPatch, MoveOp, Op, Proposal, RegionStatus, Shard, ShardDigest, ShardState, WriteMeta,
};

use prost::Message;

use super::*;
use crate::raft_types::{log_id as id, Member};

fn tenant() -> TenantId {
    TenantId::parse("acme").expect("valid")
}

fn region(name: &str) -> Region {
    Region::parse(name).expect("valid")
}

fn every_op() -> Vec<Op> {
    let documents =
        DocumentsPatch { config: Some(r#"{"a":1}"#.to_owned()), theme: None, integrations: Some("{}".to_owned()) };
    let digest = ShardDigest { rows: 3, sha256: "ab".repeat(32) };
    vec![
        Op::CreateTenant {
            tenant: tenant(),
            uid: ulid::Ulid::from_parts(1, 2),
            documents: documents.clone(),
            proposer_region: Some(region("eu-west")),
        },
        Op::CreateTenant {
            tenant: tenant(),
            uid: ulid::Ulid::nil(),
            documents: DocumentsPatch::default(),
            proposer_region: None,
        },
        Op::UpdateTenant { tenant: tenant(), documents: documents.clone() },
        Op::DeleteTenant { tenant: tenant() },
        Op::RollbackTenant { tenant: tenant(), to: Revision(7) },
        Op::StageCanary { tenant: tenant(), documents },
        Op::PromoteCanary { tenant: tenant() },
        Op::FenceTenant { tenant: tenant(), to: Some(region("us-east")) },
        Op::FenceTenant { tenant: tenant(), to: None },
        Op::FailoverTenant { tenant: tenant(), to: region("us-east"), forced: true },
        Op::PinTenant { tenant: tenant(), allowed_regions: vec![region("eu-west"), region("eu-central")] },
        Op::AbortCanary { tenant: tenant() },
        Op::MoveTenant { tenant: tenant(), step: MoveOp::Begin { to_shard: "eu-2".to_owned() } },
        Op::MoveTenant { tenant: tenant(), step: MoveOp::Verify { source: digest.clone(), target: digest } },
        Op::MoveTenant { tenant: tenant(), step: MoveOp::Flip },
        Op::MoveTenant { tenant: tenant(), step: MoveOp::Unlock },
        Op::MoveTenant { tenant: tenant(), step: MoveOp::Abort },
        Op::SetRegionStatus { region: region("eu-west"), status: RegionStatus::Degraded },
        Op::AddShard {
            shard: Shard {
                id: "eu-2".to_owned(),
                region: region("eu-west"),
                endpoint: "postgres://app@db/eu2".to_owned(),
                state: ShardState::Draining,
                replica: Some("postgres://app@db-replica/eu2".to_owned()),
            },
        },
        Op::DrainShard { id: "eu-2".to_owned() },
        Op::InitCluster { cluster_id: ulid::Ulid::from_parts(9, 9) },
    ]
}

fn command(op: Op, n: u64) -> Command {
    Command {
        meta: WriteMeta {
            expected_revision: n.is_multiple_of(2).then_some(n),
            request_id: (!n.is_multiple_of(3)).then(|| format!("req-{n}")),
            actor: "admin:alice via ci".to_owned(),
            reason: "ünïcode \"quoted\"".to_owned(),
            at_unix_ms: 1_700_000_000_000 + n,
            change_id: ulid::Ulid::from_parts(n, u128::from(n)),
        },
        op,
        compiled: None,
        // Every other command is traced: the context round-trips, and its absence too.
        trace: n.is_multiple_of(2).then(|| format!("00-{:032x}-{:016x}-01", n + 1, n + 1)),
    }
}

fn membership() -> Membership {
    let nodes = BTreeMap::from([
        (1, Member { region: "us-east".to_owned(), grpc_addr: "10.0.0.1:7000".to_owned() }),
        (2, Member { region: "eu-west".to_owned(), grpc_addr: "10.0.0.2:7000".to_owned() }),
        (3, Member { region: "ap-south".to_owned(), grpc_addr: "10.0.0.3:7000".to_owned() }),
    ]);
    Membership::new(vec![BTreeSet::from([1, 2]), BTreeSet::from([1, 2, 3])], nodes).expect("valid")
}

/// A create as the leader proposes it: its documents compiled.
fn judged_create() -> Command {
    let op = every_op().swap_remove(0);
    let judged = registry_core::resolve(&registry_core::State::default(), Revision(1), command(op, 1));
    let judged = judged.expect("judged");
    assert!(judged.compiled.is_some());
    judged
}

fn entries() -> Vec<Entry> {
    let mut commands: Vec<_> = every_op().into_iter().enumerate().map(|(n, op)| command(op, n as u64)).collect();
    commands.push(judged_create());
    vec![
        Entry { log_id: id(1, 1, 1), payload: EntryPayload::Blank },
        Entry { log_id: id(1, 1, 2), payload: EntryPayload::Normal(Proposal { commands }) },
        Entry { log_id: id(2, 3, 3), payload: EntryPayload::Membership(membership()) },
    ]
}

#[test]
fn every_entry_and_command_round_trips() {
    for original in entries() {
        let bytes = entry(&original).encode_to_vec();
        let decoded = entry_from(v1::RaftEntry::decode(bytes.as_slice()).expect("decode"), "entry").expect("valid");
        assert_eq!(decoded, original);
    }
}

#[test]
fn every_rpc_round_trips() {
    let request = AppendEntriesRequest {
        vote: Vote::new_committed(4, 2),
        prev_log_id: Some(id(3, 1, 9)),
        entries: entries(),
        leader_commit: Some(id(3, 1, 8)),
    };
    let same = |a: &AppendEntriesRequest<TypeConfig>, b: &AppendEntriesRequest<TypeConfig>| {
        a.vote == b.vote
            && a.prev_log_id == b.prev_log_id
            && a.entries == b.entries
            && a.leader_commit == b.leader_commit
    };
    assert!(same(&append_request_from(append_request(&request)).expect("valid"), &request));
    let heartbeat =
        AppendEntriesRequest { vote: Vote::new(1, 1), prev_log_id: None, entries: vec![], leader_commit: None };
    assert!(same(&append_request_from(append_request(&heartbeat)).expect("valid"), &heartbeat));

    for response in [
        AppendEntriesResponse::Success,
        AppendEntriesResponse::PartialSuccess(Some(id(2, 1, 5))),
        AppendEntriesResponse::PartialSuccess(None),
        AppendEntriesResponse::Conflict,
        AppendEntriesResponse::HigherVote(Vote::new(9, 3)),
    ] {
        assert_eq!(append_response_from(append_response(&response)).expect("valid"), response);
    }

    let mut vote_request = VoteRequest::new(Vote::new(5, 3), Some(id(4, 2, 17)));
    vote_request.leadership_transfer = true;
    assert_eq!(vote_request_from(super::vote_request(&vote_request)).expect("valid"), vote_request);
    let response = VoteResponse::new(Vote::new_committed(5, 3), None, true);
    assert_eq!(vote_response_from(vote_response(&response)).expect("valid"), response);

    let transfer = TransferLeaderRequest::new(Vote::new_committed(6, 1), 2, Some(id(6, 1, 40)));
    assert_eq!(transfer_request_from(transfer_request(&transfer)).expect("valid"), transfer);
    for response in [
        Ok(()),
        Err(TransferLeaderError::VoteChanged { expected: Vote::new_committed(6, 1), actual: Vote::new(7, 3) }),
        Err(TransferLeaderError::LogNotFlushed { expected: Some(id(6, 1, 40)), actual: None }),
    ] {
        assert_eq!(transfer_response_from(transfer_response(&response)).expect("valid"), response);
    }

    let meta = SnapshotMeta {
        last_log_id: Some(id(3, 2, 100)),
        last_membership: StoredMembership::new(Some(id(1, 1, 3)), membership()),
    };
    assert_eq!(snapshot_meta_from(Some(snapshot_meta(&meta)), "meta").expect("valid"), meta);
}

#[test]
fn a_malformed_message_names_its_field() {
    let mut message = entry(&entries()[1]);
    let error = entry_from(v1::RaftEntry { log_id: None, ..message.clone() }, "entries[0]").unwrap_err();
    assert_eq!(error.0, "entries[0].log_id: required");

    let Some(raft_entry::Payload::Proposal(proposal)) = &mut message.payload else { panic!("a proposal") };
    let Some(v1::log_command::Op::CreateTenant(create)) = &mut proposal.commands[0].op else { panic!("a create") };
    create.tenant = "Not A Tenant".to_owned();
    let error = entry_from(message.clone(), "entries[1]").unwrap_err();
    assert!(error.0.starts_with("entries[1].proposal.commands[0].create_tenant.tenant: "), "{error}");

    let mut message = entry(&entries()[1]);
    let Some(raft_entry::Payload::Proposal(proposal)) = &mut message.payload else { panic!("a proposal") };
    proposal.commands[1].meta.as_mut().expect("meta").change_id = vec![1, 2, 3];
    let error = entry_from(message, "e").unwrap_err();
    assert_eq!(error.0, "e.proposal.commands[1].meta.change_id: a ULID is 16 bytes, not 3");

    // A compiled create without its public bundle, or of a topology operation.
    let mut message =
        v1::LogProposal { commands: vec![commands::proposal(&Proposal::single(judged_create())).commands.remove(0)] };
    let judged = message.commands[0].compiled.clone();
    message.commands[0].compiled.as_mut().expect("compiled").public_bundle = None;
    let error = commands::proposal_from(message.clone(), "p").unwrap_err();
    assert_eq!(error.0, "p.commands[0].compiled.public_bundle: required");
    message.commands[0].compiled = judged;
    message.commands[0].op = Some(v1::log_command::Op::DrainShard("s1".to_owned()));
    let error = commands::proposal_from(message, "p").unwrap_err();
    assert_eq!(error.0, "p.commands[0].compiled: only a tenant write carries compiled documents");

    let vote = vote_request_from(v1::RaftVoteRequest::default()).unwrap_err();
    assert_eq!(vote.0, "vote: required");
}
