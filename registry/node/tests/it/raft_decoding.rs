//! Property tests of Raft message decoding (what `RaftInternal` does with a
//! peer's payload): random bytes and real messages cut, flipped or spliced
//! decode to a message or an error, never a panic, and an intact message
//! decodes to itself. `FUZZ_CASES=N` for a soak.

use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use openraft::{EntryPayload, Vote};
use proptest::prelude::*;
use registry::raft_types::{Entry, TypeConfig};
use registry_core::{Command, Op, Proposal, WriteMeta};

fn config() -> ProptestConfig {
    ProptestConfig { cases: proto::fuzz::cases(), failure_persistence: None, ..ProptestConfig::default() }
}

fn append(term: u64, index: u64, actor: String, tenant: proto::TenantId) -> AppendEntriesRequest<TypeConfig> {
    let log_id = registry::raft_types::log_id(term, 1, index);
    let command = Command {
        meta: WriteMeta {
            expected_revision: Some(index),
            request_id: Some(format!("req-{index}")),
            actor,
            reason: String::new(),
            at_unix_ms: index,
            change_id: ulid::Ulid::from_parts(index, 7),
        },
        op: Op::DeleteTenant { tenant },
    };
    let entry = Entry { log_id, payload: EntryPayload::Normal(Proposal::single(command)) };
    AppendEntriesRequest {
        vote: Vote::new_committed(term, 1),
        prev_log_id: index.checked_sub(1).map(|prev| registry::raft_types::log_id(term, 1, prev)),
        entries: vec![
            entry,
            Entry { log_id: registry::raft_types::log_id(term, 1, index + 1), payload: EntryPayload::Blank },
        ],
        leader_commit: Some(log_id),
    }
}

fn tenant() -> impl Strategy<Value = proto::TenantId> {
    "[a-z][a-z0-9]{0,10}".prop_filter_map("a tenant id", |id| proto::TenantId::parse(&id).ok())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn raft_payloads_decode_or_fail_cleanly(
        term in 0..u64::MAX / 2,
        index in 0..u64::MAX / 2,
        actor in any::<String>(),
        tenant in tenant(),
        noise in prop::collection::vec(any::<u8>(), 0..256),
        cut in any::<usize>(),
        flip in any::<(usize, u8)>(),
    ) {
        let message = append(term, index, actor, tenant);
        let encoded = serde_json::to_vec(&message).unwrap();
        let decoded: AppendEntriesRequest<TypeConfig> = serde_json::from_slice(&encoded).unwrap();
        prop_assert_eq!(serde_json::to_vec(&decoded).unwrap(), encoded.clone());

        let mut mangled = encoded.clone();
        let at = flip.0 % mangled.len();
        mangled[at] ^= flip.1;
        mangled.truncate(cut % (mangled.len() + 1));
        let spliced = [&encoded[..at], &noise[..], &encoded[at..]].concat();
        for bytes in [&noise, &mangled, &spliced] {
            let _ = serde_json::from_slice::<AppendEntriesRequest<TypeConfig>>(bytes);
            let _ = serde_json::from_slice::<VoteRequest<TypeConfig>>(bytes);
            let _ = serde_json::from_slice::<TransferLeaderRequest<TypeConfig>>(bytes);
        }
    }
}
