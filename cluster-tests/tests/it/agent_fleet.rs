//! Guarantee 4 at fleet size: 1,000 agents (one gRPC connection each) on one
//! registry node all reach the final revision, and `regctl wait` returns
//! once every one of them has acknowledged it.

use std::time::{Duration, Instant};

use agent::Kind;
use registry_client::WriteOptions;

use super::{documents, phase};
use cluster_tests::{agents, ClusterOptions, RegistryCluster};

const AGENTS: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_agents_on_one_node_reach_the_final_revision() -> anyhow::Result<()> {
    let cluster = RegistryCluster::start(ClusterOptions::new("agent-fleet")).await?;
    let client = cluster.client();
    for n in 0..10 {
        client.create_tenant(&format!("f-{n}"), documents(n), &WriteOptions::default()).await?;
    }

    phase("1,000 agents connect to node 1 only");
    let endpoints = vec![cluster.node(1).grpc.clone()];
    let mut fleet = Vec::with_capacity(AGENTS);
    for n in 0..AGENTS {
        let kind = if n % 2 == 0 { Kind::Api } else { Kind::Frontend };
        fleet.push(
            agent::Agent::start(agents::config(&cluster, &format!("fleet-{n:04}"), 1, kind, None, endpoints.clone())?)
                .await?,
        );
    }

    phase("50 writes while they follow");
    let started = Instant::now();
    let mut revision = 0;
    for n in 0..50 {
        revision =
            client.update_tenant(&format!("f-{}", n % 10), documents(n), &WriteOptions::default()).await?.revision;
    }
    for agent in &fleet {
        agents::wait_for(agent, revision).await?;
    }
    eprintln!(
        "1,000 agents reached revision {revision} {} ms after the first of 50 writes",
        started.elapsed().as_millis()
    );
    let (tenants, _) = cluster.tenants().await?;
    for agent in &fleet {
        agents::assert_matches(agent, &tenants);
    }

    phase("regctl wait returns once all of them acknowledged");
    let output = cluster
        .regctl(&[cluster.node(1).grpc.clone()])
        .args(["wait", "--revision", &revision.to_string(), "--timeout", "30"])
        .output()?;
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains(&format!("all {AGENTS} connected agents acknowledged revision {revision}")), "{said}");

    phase("and it fails, listing who has not, for a revision nobody has");
    let output = cluster
        .regctl(&[cluster.node(1).grpc.clone()])
        .args(["wait", "--revision", &(revision + 1000).to_string(), "--timeout", "1"])
        .output()?;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains(&format!("{AGENTS} of {AGENTS} connected agents")));

    let shutdown = futures::future::join_all(fleet.into_iter().map(agent::Agent::shutdown));
    tokio::time::timeout(Duration::from_secs(30), shutdown).await?;
    cluster.passed();
    Ok(())
}
