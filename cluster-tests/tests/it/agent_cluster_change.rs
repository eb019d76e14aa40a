//! An agent holding another cluster's state (as after a restore from backup,
//! which names the cluster anew) resyncs from a snapshot, even when its old
//! revision is higher than anything the new cluster has; unless it is pinned
//! to its cluster, and then it refuses the other one and keeps its copy.

use std::sync::atomic::Ordering;

use agent::{Agent, Kind};
use registry_client::WriteOptions;

use super::{documents, phase};
use cluster_tests::{agents, ClusterOptions, RegistryCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_from_another_cluster_resyncs_from_a_snapshot() -> anyhow::Result<()> {
    let first = RegistryCluster::start(ClusterOptions::new("agent-cluster-a")).await?;
    // Outlives cluster A's directory.
    let data_dir = cluster_tests::binaries::test_dir("agent-cluster-data");
    let client = first.client();
    for n in 0..20 {
        client.create_tenant(&format!("old-{n:02}"), documents(n), &WriteOptions::default()).await?;
    }
    let (_, old_revision) = first.tenants().await?;

    phase("the agent follows cluster A, then stops");
    let agent = agents::start(&first, "api-moving", 1, Kind::Api, Some(data_dir.clone())).await?;
    agents::wait_for(&agent, old_revision).await?;
    let old_cluster = agent.view().cluster_id.clone();
    assert_eq!(old_cluster.len(), 26, "the agent learned cluster A's id (a ULID): {old_cluster:?}");
    agent.shutdown().await;
    first.passed();

    phase("a different cluster B, with fewer revisions, and the same agent data");
    let second = RegistryCluster::start(ClusterOptions::new("agent-cluster-b")).await?;
    let written = second.client().create_tenant("new-1", documents(1), &WriteOptions::default()).await?;
    assert!(written.revision < old_revision);

    phase("pinned to cluster A, the agent refuses B and keeps A's copy");
    let mut pinned =
        agents::config(&second, "api-moving", 1, Kind::Api, Some(data_dir.clone()), second.endpoints_from(1))?;
    pinned.cluster_id = Some(old_cluster.clone());
    let agent = Agent::start(pinned).await?;
    cluster_tests::wait::until("two refused sessions", std::time::Duration::from_secs(30), || async {
        (agent.stats().sessions.load(Ordering::Relaxed) >= 2).then_some(())
    })
    .await?;
    assert_eq!((agent.view().cluster_id.as_str(), agent.revision()), (old_cluster.as_str(), old_revision));
    assert!(agent.tenant("old-00").is_some() && agent.tenant("new-1").is_none());
    assert_eq!(agent.stats().snapshots.load(Ordering::Relaxed), 0, "no snapshot of B installed");
    agent.shutdown().await;

    phase("not pinned, it follows B");
    let agent = agents::start(&second, "api-moving", 1, Kind::Api, Some(data_dir.clone())).await?;
    cluster_tests::wait::until("the agent to hold cluster B", std::time::Duration::from_secs(30), || async {
        (agent.view().cluster_id != old_cluster && agent.revision() >= written.revision).then_some(())
    })
    .await?;
    let (tenants, _) = second.tenants().await?;
    agents::assert_matches(&agent, &tenants);
    assert!(agent.tenant("old-00").is_none(), "nothing of cluster A is left");

    assert_eq!(agent.stats().snapshots.load(Ordering::Relaxed), 1);
    agent.shutdown().await;
    second.passed();
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}
