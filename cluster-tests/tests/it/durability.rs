//! Guarantee 1 (durable writes): nothing acknowledged is lost when the leader
//! is killed with SIGKILL mid-stream, nor when the whole cluster stops and
//! starts again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use proto::v1::Consistency;
use registry_client::WriteOptions;
use tokio::sync::Mutex;

use super::{documents, phase};
use cluster_tests::{wait, ClusterOptions, RegistryCluster};

/// Acknowledged writes: tenant id -> the revision the registry answered.
type Acked = Arc<Mutex<BTreeMap<String, u64>>>;

/// Creates tenants `w-00000`, `w-00001`, … one after another until told to
/// stop, recording each acknowledged write. Writes that fail (no leader for a
/// moment) are simply not acknowledged: they may or may not have applied.
fn spawn_writer(
    cluster: &RegistryCluster,
    acked: Acked,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<u64> {
    let client = cluster.client();
    tokio::spawn(async move {
        let mut failures = 0;
        for n in 0u64.. {
            if *stop.borrow() {
                break;
            }
            let tenant = format!("w-{n:05}");
            let options = WriteOptions { request_id: Some(format!("writer-{n}")), ..Default::default() };
            match client.create_tenant(&tenant, documents(n), &options).await {
                Ok(written) => {
                    acked.lock().await.insert(tenant, written.revision);
                }
                Err(_) => failures += 1,
            }
        }
        failures
    })
}

async fn assert_all_acked_readable(cluster: &RegistryCluster, acked: &BTreeMap<String, u64>) -> anyhow::Result<()> {
    for id in 1..=3 {
        let (tenants, _) = cluster.node_client(id).list_tenants(Consistency::Linearizable, false).await?;
        let found: BTreeMap<_, _> = tenants.iter().map(|tenant| (tenant.id.clone(), tenant.mod_revision)).collect();
        for (tenant, revision) in acked {
            assert_eq!(found.get(tenant), Some(revision), "node {id}: acknowledged write of {tenant} at {revision}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_write_is_lost_to_kill_9_or_full_restart() -> anyhow::Result<()> {
    let mut cluster = RegistryCluster::start(ClusterOptions::new("durability")).await?;
    let acked: Acked = Arc::default();
    let (stop, stop_receiver) = tokio::sync::watch::channel(false);

    phase("a loop of acknowledged writes");
    let writer = spawn_writer(&cluster, acked.clone(), stop_receiver);
    let count = |acked: Acked| async move { acked.lock().await.len() };
    wait::until("50 acknowledged writes", Duration::from_secs(30), || async {
        (count(acked.clone()).await >= 50).then_some(())
    })
    .await?;

    phase("kill -9 the leader mid-stream");
    let old_leader = cluster.leader().await?;
    cluster.kill(old_leader)?;
    let acked_at_kill = count(acked.clone()).await;

    phase("a new leader is elected and writes resume");
    let new_leader = cluster.leader().await?;
    assert_ne!(new_leader, old_leader);
    wait::until("50 more acknowledged writes under the new leader", Duration::from_secs(30), || async {
        (count(acked.clone()).await >= acked_at_kill + 50).then_some(())
    })
    .await?;

    phase("the old leader restarts with its data and catches up");
    cluster.start_node(old_leader)?;
    let _ = stop.send(true);
    let failures = writer.await?;
    let acked = acked.lock().await.clone();
    let last_revision = acked.values().copied().max().unwrap_or(0);
    eprintln!("{} writes acknowledged, {failures} failed or unknown around the kill", acked.len());
    cluster.wait_ready().await?;
    cluster.wait_applied(old_leader, last_revision).await?;
    assert_all_acked_readable(&cluster, &acked).await?;

    phase("stop all three (SIGTERM) and start them again: state and revisions intact");
    let applied_before = cluster.status(1).await?.applied_index;
    for id in 1..=3 {
        let exit = cluster.terminate(id).await?;
        assert!(exit.success(), "node {id} exits cleanly on SIGTERM: {exit}");
    }
    for id in 1..=3 {
        cluster.start_node(id)?;
    }
    cluster.wait_ready().await?;
    assert_all_acked_readable(&cluster, &acked).await?;
    for id in 1..=3 {
        assert!(cluster.status(id).await?.applied_index >= applied_before, "node {id} kept its revision");
    }

    phase("kill -9 all three at once, then start them: still intact");
    for id in 1..=3 {
        cluster.kill(id)?;
    }
    for id in 1..=3 {
        cluster.start_node(id)?;
    }
    cluster.wait_ready().await?;
    assert_all_acked_readable(&cluster, &acked).await?;

    cluster.passed();
    Ok(())
}
