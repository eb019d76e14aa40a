//! Property tests of Raft message decoding (what `RaftInternal` does with a
//! peer's message): random bytes and real messages cut, flipped or spliced
//! decode to a message or an error, never a panic, and an intact message
//! decodes to itself. `FUZZ_CASES=N` for a soak.

use openraft::raft::AppendEntriesRequest;
use openraft::{EntryPayload, Vote};
use proptest::prelude::*;
use prost::Message;
use proto::v1;
use registry::raft_types::{log_id, Entry, TypeConfig};
use registry::wire;
use registry_core::{Command, Op, Proposal, WriteMeta};

fn config() -> ProptestConfig {
    ProptestConfig { cases: proto::fuzz::cases(), failure_persistence: None, ..ProptestConfig::default() }
}

fn append(term: u64, index: u64, actor: String, tenant: proto::TenantId) -> AppendEntriesRequest<TypeConfig> {
    let command = Command::new(
        WriteMeta {
            expected_revision: Some(index),
            request_id: Some(format!("req-{index}")),
            actor,
            reason: String::new(),
            at_unix_ms: index,
            change_id: ulid::Ulid::from_parts(index, 7),
        },
        Op::DeleteTenant { tenant },
    );
    let entry = Entry { log_id: log_id(term, 1, index), payload: EntryPayload::Normal(Proposal::single(command)) };
    AppendEntriesRequest {
        vote: Vote::new_committed(term, 1),
        prev_log_id: index.checked_sub(1).map(|prev| log_id(term, 1, prev)),
        entries: vec![entry, Entry { log_id: log_id(term, 1, index + 1), payload: EntryPayload::Blank }],
        leader_commit: Some(log_id(term, 1, index)),
    }
}

fn tenant() -> impl Strategy<Value = proto::TenantId> {
    "[a-z][a-z0-9]{0,10}".prop_filter_map("a tenant id", |id| proto::TenantId::parse(&id).ok())
}

/// Decodes `bytes` as each Raft message, as the receiving node does.
fn decode_all(bytes: &[u8]) {
    if let Ok(message) = v1::RaftAppendRequest::decode(bytes) {
        let _ = wire::append_request_from(message);
    }
    if let Ok(message) = v1::RaftVoteRequest::decode(bytes) {
        let _ = wire::vote_request_from(message);
    }
    if let Ok(message) = v1::RaftTransferLeaderRequest::decode(bytes) {
        let _ = wire::transfer_request_from(message);
    }
    if let Ok(message) = v1::RaftEntry::decode(bytes) {
        let _ = wire::entry_from(message, "entry");
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn raft_messages_decode_or_fail_cleanly(
        term in 0..u64::MAX / 2,
        index in 0..u64::MAX / 2,
        actor in any::<String>(),
        tenant in tenant(),
        noise in prop::collection::vec(any::<u8>(), 0..256),
        cut in any::<usize>(),
        flip in any::<(usize, u8)>(),
    ) {
        let message = append(term, index, actor, tenant);
        let encoded = wire::append_request(&message).encode_to_vec();
        let decoded = wire::append_request_from(v1::RaftAppendRequest::decode(encoded.as_slice()).unwrap()).unwrap();
        prop_assert_eq!(&decoded.entries, &message.entries);
        prop_assert_eq!(wire::append_request(&decoded).encode_to_vec(), encoded.clone());

        let mut mangled = encoded.clone();
        let at = flip.0 % mangled.len();
        mangled[at] ^= flip.1;
        mangled.truncate(cut % (mangled.len() + 1));
        let spliced = [&encoded[..at], &noise[..], &encoded[at..]].concat();
        for bytes in [&noise, &mangled, &spliced] {
            decode_all(bytes);
        }
    }
}
