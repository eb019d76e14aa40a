//! Guarantee 3 (a compacted revision is answered with a snapshot, then
//! deltas): an agent that comes back within the node's history window is
//! replayed the deltas it missed; one that comes back after the window moved
//! on gets a snapshot, then deltas, never an error.

use std::sync::atomic::Ordering;

use agent::Kind;
use registry_client::WriteOptions;

use super::{documents, phase};
use cluster_tests::{agents, ClusterOptions, RegistryCluster};

async fn write(cluster: &RegistryCluster, prefix: &str, count: u64) -> anyhow::Result<u64> {
    let client = cluster.client();
    let mut revision = 0;
    for n in 0..count {
        revision =
            client.create_tenant(&format!("{prefix}-{n:02}"), documents(n), &WriteOptions::default()).await?.revision;
    }
    Ok(revision)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_replays_inside_the_window_and_snapshots_outside_it() -> anyhow::Result<()> {
    let options = ClusterOptions::new("agent-history").with_args(&["--watch-history-deltas-max", "10"]);
    let cluster = RegistryCluster::start(options).await?;
    let data_dir = cluster.dir.join("agent-data");

    phase("an agent syncs and stops");
    let revision = write(&cluster, "a", 3).await?;
    let agent = agents::start(&cluster, "api-history", 1, Kind::Api, Some(data_dir.clone())).await?;
    agents::wait_for(&agent, revision).await?;
    agent.shutdown().await;

    phase("5 writes (inside the window of 10): the restarted agent is replayed deltas");
    let revision = write(&cluster, "b", 5).await?;
    let agent = agents::start(&cluster, "api-history", 1, Kind::Api, Some(data_dir.clone())).await?;
    agents::wait_for(&agent, revision).await?;
    assert_eq!(agent.stats().snapshots.load(Ordering::Relaxed), 0, "no snapshot inside the window");
    assert_eq!(agent.stats().deltas.load(Ordering::Relaxed), 5);
    agent.shutdown().await;

    phase("30 writes (past the window): the restarted agent gets a snapshot, then deltas");
    let revision = write(&cluster, "c", 30).await?;
    let agent = agents::start(&cluster, "api-history", 1, Kind::Api, Some(data_dir.clone())).await?;
    agents::wait_for(&agent, revision).await?;
    assert_eq!(agent.stats().snapshots.load(Ordering::Relaxed), 1, "one snapshot");
    let revision = write(&cluster, "d", 3).await?;
    agents::wait_for(&agent, revision).await?;
    assert_eq!(agent.stats().deltas.load(Ordering::Relaxed), 3, "then deltas");
    let (tenants, _) = cluster.tenants().await?;
    agents::assert_matches(&agent, &tenants);

    agent.shutdown().await;
    cluster.passed();
    Ok(())
}
