//! Guarantee 3 (resume never goes back): an agent whose node dies fails over
//! to a node that is behind it. That node waits until it has caught up, then
//! serves; the agent's revision never decreases and it keeps following.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agent::Kind;
use registry_client::WriteOptions;

use super::{documents, phase};
use cluster_tests::{agents, ClusterOptions, RegistryCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_a_node_that_is_behind_waits_and_never_goes_back() -> anyhow::Result<()> {
    let mut cluster = RegistryCluster::start(ClusterOptions::new("agent-resume")).await?;
    let leader = cluster.leader().await?;
    // The agent's home node is a follower that is not the leader; the node it
    // fails over to is the third one.
    let home = (1..=3).find(|id| *id != leader).unwrap_or(1);
    let behind = (1..=3).find(|id| *id != leader && *id != home).unwrap_or(3);
    let endpoints = vec![cluster.node(home).grpc.clone(), cluster.node(behind).grpc.clone()];
    let agent = agent::Agent::start(agents::config(&cluster, "api-resume", home, Kind::Api, None, endpoints)?).await?;

    phase("a watcher records the lowest revision ever seen after each higher one");
    let went_back = Arc::new(AtomicU64::new(0));
    let mut changed = agent.changed();
    let watcher = {
        let went_back = went_back.clone();
        tokio::spawn(async move {
            let mut highest = 0;
            while changed.changed().await.is_ok() {
                let revision = *changed.borrow();
                if revision < highest {
                    went_back.store(highest, Ordering::SeqCst);
                }
                highest = highest.max(revision);
            }
        })
    };

    phase(&format!("node {behind} hangs (SIGSTOP) while 30 writes commit; the agent follows them via node {home}"));
    cluster.pause(behind)?;
    let client = cluster.client();
    let mut revision = 0;
    for n in 0..30 {
        revision = client.create_tenant(&format!("r-{n:02}"), documents(n), &WriteOptions::default()).await?.revision;
    }
    agents::wait_for(&agent, revision).await?;
    let snapshots_before = agent.stats().snapshots.load(Ordering::Relaxed);

    phase(&format!("node {home} dies; the agent fails over to node {behind}, still hung and behind"));
    cluster.kill(home)?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(agent.revision(), revision, "nothing newer exists yet");

    phase(&format!("node {behind} wakes up, catches up, then serves the agent from its revision"));
    cluster.resume(behind)?;
    let written = client.create_tenant("after-failover", documents(99), &WriteOptions::default()).await?;
    agents::wait_for(&agent, written.revision).await?;
    assert_eq!(agent.endpoint().as_deref(), Some(cluster.node(behind).grpc.as_str()));
    assert_eq!(went_back.load(Ordering::SeqCst), 0, "the agent's revision never went back");
    assert_eq!(agent.stats().snapshots.load(Ordering::Relaxed), snapshots_before, "resumed by deltas, not a snapshot");
    let (tenants, _) = cluster.tenants().await?;
    agents::assert_matches(&agent, &tenants);

    agent.shutdown().await;
    watcher.abort();
    cluster.passed();
    Ok(())
}
