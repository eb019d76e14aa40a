//! Membership while writes continue: a fourth node joins as a learner (it
//! catches up, serves an agent and stale reads, and does not vote), is
//! promoted to voter, and a founding node is removed and stopped. No
//! acknowledged write is lost and the remaining members hold the same state.

use std::ffi::OsStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agent::Kind;
use proto::v1::Consistency;
use registry_client::WriteOptions;

use super::{documents, phase, regctl};
use cluster_tests::{agents, wait, ClusterOptions, RegistryCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_learner_promote_and_remove_while_writes_continue() -> anyhow::Result<()> {
    let mut cluster = RegistryCluster::start(ClusterOptions::new("membership")).await?;
    let endpoints = cluster.endpoints_from(1);

    phase("a writer creates tenants without pause");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let client = cluster.client();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("m-{n:04}");
                // A write may fail while leadership moves; the client retries within its rounds.
                if client.create_tenant(&id, documents(n), &WriteOptions::default()).await.is_ok() {
                    acknowledged.push(id);
                }
                n += 1;
            }
            acknowledged
        })
    };

    phase("node 4 (eu-west) starts and joins as a learner");
    let node4 = cluster.add_node(4, "eu-west")?.grpc.clone();
    cluster.start_node(4)?;
    let member = format!("4=eu-west@{node4}");
    let added = regctl(
        &cluster,
        &endpoints,
        &[OsStr::new("cluster"), OsStr::new("add-learner"), OsStr::new(&member), OsStr::new("-o"), OsStr::new("json")],
    );
    assert!(added.status.success());
    let members: serde_json::Value = serde_json::from_slice(&added.stdout)?;
    let learner =
        members["members"].as_array().and_then(|members| members.iter().find(|member| member["id"] == 4)).cloned();
    assert_eq!(learner.map(|learner| learner["voter"].clone()), Some(serde_json::Value::Bool(false)));
    wait::until("node 4 to report itself a learner", Duration::from_secs(10), || async {
        (cluster.status(4).await.ok()?.state == "learner").then_some(())
    })
    .await?;

    phase("the learner serves an agent and stale reads");
    let agent =
        agent::Agent::start(agents::config(&cluster, "api-learner", 2, Kind::Api, None, vec![node4.clone()])?).await?;
    let (_, revision) = cluster.tenants().await?;
    agents::wait_for(&agent, revision).await?;
    let stale = cluster.node_client(4).list_tenants(Consistency::Stale, false).await?;
    assert!(!stale.0.is_empty(), "a stale read answers from the learner's state");
    agent.shutdown().await;

    phase("promote node 4; remove node 3 and stop it");
    assert!(regctl(&cluster, &endpoints, &[OsStr::new("cluster"), OsStr::new("promote"), OsStr::new("4")])
        .status
        .success());
    wait::until("node 4 to vote", Duration::from_secs(10), || async {
        let status = cluster.status(1).await.ok()?;
        status.members.iter().any(|member| member.id == 4 && member.voter).then_some(())
    })
    .await?;
    let removed = regctl(&cluster, &endpoints, &[OsStr::new("cluster"), OsStr::new("remove"), OsStr::new("3")]);
    assert!(removed.status.success());
    cluster.kill(3)?;
    let missing =
        regctl(&cluster, &cluster.endpoints_from(1), &[OsStr::new("cluster"), OsStr::new("remove"), OsStr::new("9")]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("node 9 is not a member"));

    phase("writes went on; none acknowledged is lost; nodes 1, 2 and 4 agree");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let acknowledged = writer.await?;
    assert!(acknowledged.len() > 20, "the writer kept writing ({} acknowledged)", acknowledged.len());
    let (tenants, revision) = cluster.tenants().await?;
    for id in &acknowledged {
        assert!(tenants.iter().any(|tenant| &tenant.id == id), "acknowledged write {id} is lost");
    }
    for node in [1, 2, 4] {
        cluster.wait_applied(node, revision).await?;
        let (on_node, _) = cluster.node_client(node).list_tenants(Consistency::Stale, false).await?;
        assert_eq!(on_node.len(), tenants.len(), "node {node}");
    }
    let status = cluster.status(1).await?;
    let mut voters: Vec<u64> = status.members.iter().filter(|member| member.voter).map(|member| member.id).collect();
    voters.sort_unstable();
    assert_eq!(voters, [1, 2, 4]);

    cluster.passed();
    Ok(())
}
