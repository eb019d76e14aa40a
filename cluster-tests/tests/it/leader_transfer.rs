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
    let other = (1..=3).find(|id| *id != old).expect("another node");
    let status = cluster.status(other).await?;
    assert!(
        status.leader_id.is_some_and(|leader| leader != old),
        "node {other} knows a new leader the moment node {old} has exited: {status:?}"
    );

    phase("writes go on at the new leader without waiting for an election");
    let written = client.create_tenant("globex", documents(2), &WriteOptions::default()).await?;
    assert!(exited.elapsed() < Duration::from_secs(2), "the write took {:?}", exited.elapsed());
    cluster.start_node(old)?;
    cluster.wait_applied(old, written.revision).await?;
    cluster.passed();
    Ok(())
}
