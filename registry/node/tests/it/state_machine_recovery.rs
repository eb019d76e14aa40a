//! The applied state lives in memory: a reopened store holds the last
//! snapshot, and the log after it (which openraft re-applies) brings the rest.

use openraft::storage::{RaftLogReader, RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine};
use openraft::EntryPayload;
use proto::TenantId;
use registry::raft_types::Entry;
use registry::store::{LogStore, StateMachineStore};
use registry::watch::Start;
use registry_core::{Command, DocumentsPatch, Op, Proposal, WriteMeta};

fn create(index: u64, tenant: &str) -> Entry {
    Entry {
        log_id: registry::raft_types::log_id(1, 1, index),
        payload: EntryPayload::Normal(Proposal::single(create_command(index, tenant))),
    }
}

fn create_command(index: u64, tenant: &str) -> Command {
    Command {
        meta: WriteMeta {
            expected_revision: None,
            request_id: Some(format!("req-{index}")),
            actor: "test".to_owned(),
            reason: String::new(),
            at_unix_ms: 1_000 + index,
            change_id: ulid::Ulid::from_parts(index, 0),
        },
        op: Op::CreateTenant {
            tenant: TenantId::parse(tenant).expect("valid id"),
            uid: ulid::Ulid::from_parts(index, 1),
            documents: DocumentsPatch { config: Some(format!(r#"{{"n":{index}}}"#)), ..Default::default() },
            proposer_region: None,
        },
        compiled: None,
        trace: None,
    }
}

/// Applies `entries` as followers do: nobody waits for a response.
async fn apply(store: &mut StateMachineStore, entries: Vec<Entry>) -> std::io::Result<()> {
    store.apply(futures::stream::iter(entries.into_iter().map(|entry| Ok((entry, None))))).await
}

async fn applied_tenants(store: &StateMachineStore) -> Vec<(String, u64)> {
    let applied = store.view();
    let applied = applied.read();
    applied.state.tenants.values().map(|tenant| (tenant.id.to_string(), tenant.mod_revision.get())).collect()
}

#[tokio::test]
async fn a_reopened_store_holds_the_last_snapshot_and_replays_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let expected;
    {
        let mut store = StateMachineStore::open(dir.path(), Default::default()).expect("open");
        apply(&mut store, vec![create(1, "acme"), create(2, "globex")]).await.expect("apply");
        let mut builder = store.get_snapshot_builder().await;
        builder.build_snapshot().await.expect("snapshot");
        apply(&mut store, vec![create(3, "initech")]).await.expect("apply");
        expected = applied_tenants(&store).await;
        assert_eq!(expected.len(), 3);
    }
    // A data directory of the previous format: its sled mirror is removed.
    let legacy_mirror = dir.path().join("sm");
    std::fs::create_dir(&legacy_mirror).expect("mkdir");
    std::fs::write(legacy_mirror.join("db"), b"a sled file").expect("write");

    let mut store = StateMachineStore::open(dir.path(), Default::default()).expect("reopen");
    assert!(!legacy_mirror.exists(), "the previous format's mirror is removed");
    let (last_applied, _) = store.applied_state().await.expect("applied state");
    assert_eq!(last_applied.map(|log_id| log_id.index), Some(2), "the snapshot's index");
    assert_eq!(applied_tenants(&store).await, expected[..2].to_vec());
    apply(&mut store, vec![create(3, "initech")]).await.expect("re-apply");
    assert_eq!(applied_tenants(&store).await, expected);
    let applied = store.view();
    applied.read().state.validate().expect("invariants");
}

/// After a restart, the agents' history window comes from the log the
/// snapshot covers: an agent behind the snapshot replays deltas carrying
/// the snapshot's records instead of taking a whole snapshot.
#[tokio::test]
async fn the_history_window_is_seeded_from_the_log_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let entries = vec![create(1, "acme"), create(2, "globex"), create(3, "initech")];
    {
        let mut store = StateMachineStore::open(dir.path(), Default::default()).expect("open");
        apply(&mut store, entries.clone()).await.expect("apply");
        store.get_snapshot_builder().await.build_snapshot().await.expect("snapshot");
    }
    let store = StateMachineStore::open(dir.path(), Default::default()).expect("reopen");
    let hub = store.hub();
    assert!(matches!(hub.subscribe(1, false).start, Start::Snapshot), "no history before seeding");
    store.seed_history(entries);
    match hub.subscribe(1, false).start {
        Start::Replay(replay) => {
            assert_eq!(replay.iter().map(|delta| delta.revision).collect::<Vec<_>>(), [2, 3]);
        }
        _ => panic!("an agent at revision 1 replays 2 and 3"),
    }
}

/// Group commit: one entry carrying several commands applies each in turn,
/// at the entry's revision, with its own response, audit entry and session,
/// and all of it survives a snapshot and a reopen.
#[tokio::test]
async fn a_batch_entry_applies_each_command_with_its_own_response_and_audit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let batch = Proposal {
        commands: vec![create_command(10, "acme"), create_command(11, "globex"), create_command(12, "acme")],
    };
    let entry = Entry { log_id: registry::raft_types::log_id(1, 1, 1), payload: EntryPayload::Normal(batch) };
    let mut store = StateMachineStore::open(dir.path(), Default::default()).expect("open");
    apply(&mut store, vec![entry]).await.expect("apply");
    let outcomes: Vec<&str> = {
        let applied = store.view();
        let applied = applied.read();
        ["req-10", "req-11", "req-12"]
            .iter()
            .map(|request_id| match applied.state.sessions[*request_id].outcome {
                registry_core::SessionOutcome::Written { .. } => "written",
                registry_core::SessionOutcome::Rejected(_) => "rejected",
            })
            .collect()
    };
    assert_eq!(outcomes, ["written", "written", "rejected"], "the third creates acme again");
    let positions: Vec<(u64, u32)> = {
        let applied = store.view();
        let applied = applied.read();
        applied.state.validate().expect("invariants");
        assert_eq!(applied.state.sessions.len(), 3);
        applied.state.audit.keys().map(|(revision, seq)| (revision.get(), *seq)).collect()
    };
    assert_eq!(positions, [(1, 0), (1, 1)], "two audit entries at revision 1");
    let expected = applied_tenants(&store).await;
    store.get_snapshot_builder().await.build_snapshot().await.expect("snapshot");
    drop(store);
    let store = StateMachineStore::open(dir.path(), Default::default()).expect("reopen");
    assert_eq!(applied_tenants(&store).await, expected);
    let applied = store.view();
    let applied = applied.read();
    assert_eq!(applied.state.audit.len(), 2);
    assert_eq!(applied.state.sessions.len(), 3);
}

#[tokio::test]
async fn vote_and_log_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vote = openraft::Vote::new_committed(3, 2);
    {
        let mut log = LogStore::open(dir.path()).expect("open");
        log.save_vote(&vote).await.expect("save vote");
    }
    let mut log = LogStore::open(dir.path()).expect("reopen");
    assert_eq!(log.read_vote().await.expect("read vote"), Some(vote));
}
