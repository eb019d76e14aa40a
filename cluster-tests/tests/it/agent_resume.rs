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

/// History survives restarts: after every registry node restarted, with
/// snapshots newer than an agent's revision, the agent resumes from the
/// history the nodes rebuilt from their logs instead of a whole snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_full_restart_an_agent_behind_the_snapshots_resumes_from_the_log() -> anyhow::Result<()> {
    let options = ClusterOptions { snapshot_every_entries: 20, ..ClusterOptions::new("agent-resume-restart") };
    let mut cluster = RegistryCluster::start(options).await?;
    let client = cluster.client();
    for n in 0..5 {
        client.create_tenant(&format!("h-{n}"), documents(n), &WriteOptions::default()).await?;
    }
    let data_dir = cluster_tests::binaries::test_dir("agent-resume-restart-data");
    let agent = agents::start(&cluster, "api-restart", 1, Kind::Api, Some(data_dir.clone())).await?;
    let (_, revision) = cluster.tenants().await?;
    agents::wait_for(&agent, revision).await?;
    let behind = agent.revision();
    agent.shutdown().await;

    phase("60 more writes while the agent is away: every node snapshots past it");
    let mut last = 0;
    for n in 0..60u64 {
        let tenant = format!("h-{}", n % 5);
        last = client.update_tenant(&tenant, documents(100 + n), &WriteOptions::default()).await?.revision;
    }
    for id in 1..=3 {
        cluster.wait_applied(id, last).await?;
    }

    phase("every node stops and starts again");
    for id in 1..=3 {
        cluster.terminate(id).await?;
    }
    for id in 1..=3 {
        let snapshot = newest_snapshot_index(&cluster.node(id).data_dir.join("snapshots"))?;
        assert!(snapshot > behind, "node {id}'s snapshot ({snapshot}) is past the agent ({behind})");
        cluster.start_node(id)?;
    }
    cluster.wait_ready().await?;

    phase("the agent resumes by deltas from its revision");
    let agent = agents::start(&cluster, "api-restart", 1, Kind::Api, Some(data_dir.clone())).await?;
    let written = client.create_tenant("after-restart", documents(999), &WriteOptions::default()).await?;
    agents::wait_for(&agent, written.revision).await?;
    assert_eq!(agent.stats().snapshots.load(Ordering::Relaxed), 0, "resumed by deltas, not a snapshot");
    let (tenants, _) = cluster.tenants().await?;
    agents::assert_matches(&agent, &tenants);

    phase("node 1 timed the delta it sent and the region's acknowledgement");
    cluster_tests::wait::until("us-east's acknowledgement in node 1's /metrics", Duration::from_secs(10), || async {
        let (_, metrics) = cluster.http_get(1, "/metrics").await.ok()?;
        let acked = metrics.lines().any(|line| {
            line.starts_with(r#"tenantry_write_acked_seconds_count{region="us-east"} "#) && !line.ends_with(" 0")
        });
        (acked && metrics.contains(r#"tenantry_write_stage_seconds_count{stage="delta_sent"}"#)).then_some(())
    })
    .await?;
    agent.shutdown().await;
    cluster.passed();
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

/// The index of the newest snapshot file in `dir` (`snapshot-<index>.snap`).
fn newest_snapshot_index(dir: &std::path::Path) -> anyhow::Result<u64> {
    let mut newest = 0;
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let index = name.strip_prefix("snapshot-").and_then(|rest| rest.strip_suffix(".snap"));
        if let Some(index) = index.and_then(|index| index.parse().ok()) {
            newest = newest.max(index);
        }
    }
    Ok(newest)
}
