//! Graceful shutdown transfers leadership: a leader stopped with SIGTERM
//! hands leadership to another voter before it exits, so the cluster has a
//! new leader at once instead of after an election timeout (here 3–4 s,
//! longer than the test allows), and writes go on.

use std::time::{Duration, Instant};

use registry_client::WriteOptions;

use super::{documents, phase};
use cluster_tests::{ClusterOptions, RegistryCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_leader_hands_leadership_over_before_it_exits() -> anyhow::Result<()> {
    let options = ClusterOptions {
        heartbeat_ms: 300,
        election_timeout_ms_min: 3000,
        election_timeout_ms_max: 4000,
        ..ClusterOptions::new("leader-transfer")
    };
    let mut cluster = RegistryCluster::start(options).await?;
    let client = cluster.client();
    client.create_tenant("acme", documents(1), &WriteOptions::default()).await?;
    let old = cluster.leader().await?;

    phase(&format!("node {old} (the leader) is stopped with SIGTERM"));
    cluster.terminate(old).await?;
    let exited = Instant::now();
    // The old leader exits once it sees the new one; a follower learns of it
    // from the new leader's first append, a few ms later: well inside a
    // second, where an election would take the 3–4 s timeout.
    let other = (1..=3).find(|id| *id != old).expect("another node");
    let new = cluster_tests::wait::until("another node to know a new leader", Duration::from_secs(1), || async {
        cluster.status(other).await.ok()?.leader_id.filter(|leader| *leader != old)
    })
    .await?;
    assert!(exited.elapsed() < Duration::from_secs(1), "node {other} knew leader {new} after {:?}", exited.elapsed());

    phase("writes go on at the new leader without waiting for an election");
    let written = client.create_tenant("globex", documents(2), &WriteOptions::default()).await?;
    assert!(exited.elapsed() < Duration::from_secs(2), "the write took {:?}", exited.elapsed());
    cluster.start_node(old)?;
    cluster.wait_applied(old, written.revision).await?;
    cluster.passed();
    Ok(())
}
