//! openraft's storage conformance suite against the real on-disk stores
//! (raft-log WAL and the in-memory state machine with snapshot files), each test in a fresh
//! temporary directory.

use openraft::testing::log::{StoreBuilder, Suite};
use registry::raft_types::TypeConfig;
use registry::store::{LogStore, StateMachineStore};
use tempfile::TempDir;

struct OnDiskStores;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for OnDiskStores {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), openraft::StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let log_store = LogStore::open(&dir.path().join("raft-log")).expect("open raft-log");
        let state_machine = StateMachineStore::open(dir.path(), Default::default()).expect("open state machine");
        Ok((dir, log_store, state_machine))
    }
}

#[tokio::test]
async fn openraft_storage_suite_passes_on_disk() {
    let _ = tracing_subscriber::fmt().with_env_filter("info,raft_log=warn").with_test_writer().try_init();
    Suite::test_all(OnDiskStores).await.expect("openraft storage suite");
}
