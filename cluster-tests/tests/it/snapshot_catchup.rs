//! Guarantee 1 with log compaction: a node that was down while the others
//! snapshotted and purged their logs past its last entry catches up by
//! installing a snapshot, and serves the same state.

use std::time::Duration;

use proto::v1::Consistency;
use registry_client::WriteOptions;

use super::{documents, phase};
use cluster_tests::{wait, ClusterOptions, RegistryCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_node_catches_up_by_snapshot_after_purge() -> anyhow::Result<()> {
    let options = ClusterOptions {
        snapshot_every_entries: 20,
        log_kept_after_snapshot_entries: 0,
        ..ClusterOptions::new("snapshot-catchup")
    };
    let mut cluster = RegistryCluster::start(options).await?;
    let lagging = 3;

    phase("node 3 stops; the others take 100 writes, snapshot and purge");
    cluster.terminate(lagging).await?;
    let lagging_last = cluster.status(1).await?.last_log_index;
    let client = cluster.client();
    let mut last_revision = 0;
    for n in 0..100u64 {
        let written = client.create_tenant(&format!("s-{n:03}"), documents(n), &WriteOptions::default()).await?;
        last_revision = written.revision;
    }
    let leader = cluster.leader().await?;
    wait::until("the leader to purge past node 3's log", Duration::from_secs(30), || async {
        let status = cluster.status(leader).await.ok()?;
        (status.purged_index > lagging_last).then_some(status.purged_index)
    })
    .await?;

    phase("node 3 restarts and installs a snapshot");
    cluster.start_node(lagging)?;
    cluster.wait_applied(lagging, last_revision).await?;
    let status = cluster.status(lagging).await?;
    assert!(status.snapshot_index > lagging_last, "node 3 has a snapshot past its old log: {status:?}");

    phase("node 3 serves the same state, even from its local view");
    let (tenants, _) = cluster.node_client(lagging).list_tenants(Consistency::Stale, false).await?;
    assert_eq!(tenants.len(), 100);
    let (leader_tenants, _) = cluster.node_client(leader).list_tenants(Consistency::Linearizable, false).await?;
    assert_eq!(tenants, leader_tenants);

    phase("node 3 restarts again and loads its snapshot and state from disk");
    cluster.terminate(lagging).await?;
    cluster.start_node(lagging)?;
    cluster.wait_ready().await?;
    let (tenants, _) = cluster.node_client(lagging).list_tenants(Consistency::Stale, false).await?;
    assert_eq!(tenants, leader_tenants);

    cluster.passed();
    Ok(())
}
