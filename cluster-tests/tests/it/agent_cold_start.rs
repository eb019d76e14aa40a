//! The last-known-good copy: an agent restarted while every registry node is
//! down starts from its local disk, serves its last view, and says it is
//! stale; when the registry is back, it resumes from that revision.

use agent::Kind;
use registry_client::WriteOptions;

use super::{documents, phase};
use cluster_tests::{agents, ClusterOptions, RegistryCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_from_disk_with_every_registry_node_down() -> anyhow::Result<()> {
    let mut cluster = RegistryCluster::start(ClusterOptions::new("agent-cold-start")).await?;
    let data_dir = cluster.dir.join("agent-data");
    let client = cluster.client();
    for n in 0..5 {
        client.create_tenant(&format!("c-{n}"), documents(n), &WriteOptions::default()).await?;
    }
    let (tenants, revision) = cluster.tenants().await?;

    phase("the agent syncs, then stops");
    let agent = agents::start(&cluster, "api-cold", 2, Kind::Api, Some(data_dir.clone())).await?;
    agents::wait_for(&agent, revision).await?;
    // Its first Progress (right after the initial sync) proves it current.
    cluster_tests::wait::until(
        "a connected agent to know its staleness",
        std::time::Duration::from_secs(5),
        || async { agent.staleness() },
    )
    .await?;
    agent.shutdown().await;

    phase("every registry node dies; the agent starts from disk");
    for id in 1..=3 {
        cluster.kill(id)?;
    }
    let agent = agents::start(&cluster, "api-cold", 2, Kind::Api, Some(data_dir.clone())).await?;
    assert_eq!(agent.revision(), revision);
    agents::assert_matches(&agent, &tenants);
    assert!(agent.resolve_host("c-3.example.com").is_some());
    assert_eq!(agent.staleness(), None, "marked stale: nothing proved it current");
    assert_eq!(agent.endpoint(), None);

    phase("the registry comes back: the agent resumes from its revision and is fresh again");
    for id in 1..=3 {
        cluster.start_node(id)?;
    }
    cluster.wait_ready().await?;
    let written = cluster.client().create_tenant("c-after", documents(9), &WriteOptions::default()).await?;
    agents::wait_for(&agent, written.revision).await?;
    cluster_tests::wait::until("a fresh staleness", std::time::Duration::from_secs(10), || async {
        agent.staleness().filter(|staleness| staleness.as_secs() < 5)
    })
    .await?;

    agent.shutdown().await;
    cluster.passed();
    Ok(())
}
