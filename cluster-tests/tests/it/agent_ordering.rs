//! Guarantee 3 (agents apply in order, no gaps, never back): three agents,
//! one per region, follow four concurrent writers that create, update and
//! delete; every agent sees each revision exactly once, in order, and ends
//! holding exactly the registry's state.

use std::sync::Arc;

use agent::{Applied, Kind};
use registry_client::WriteOptions;

use super::{documents, phase};
use cluster_tests::{agents, ClusterOptions, RegistryCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_apply_every_revision_once_in_order_under_concurrent_writes() -> anyhow::Result<()> {
    let cluster = RegistryCluster::start(ClusterOptions::new("agent-ordering")).await?;

    phase("three agents, one per region, record every step they apply");
    let mut followers = Vec::new();
    for home in 1..=3 {
        let agent = agents::start(&cluster, &format!("api-{home}"), home, Kind::Api, None).await?;
        let mut applied = agent.applied();
        let recorder = tokio::spawn(async move {
            let mut steps = Vec::new();
            while let Ok(step) = applied.recv().await {
                steps.push(step);
            }
            steps
        });
        followers.push((agent, recorder));
    }

    phase("four writers create, update and delete concurrently");
    let client = Arc::new(cluster.client());
    let writers = (0..4u64).map(|writer| {
        let client = client.clone();
        tokio::spawn(async move {
            let mut revisions = Vec::new();
            for n in 0..25u64 {
                let tenant = format!("t{writer}-{:02}", n % 8);
                let options = WriteOptions::default();
                // Creates, then updates of the same tenants, and some deletes.
                let result = match n / 8 {
                    0 => client.create_tenant(&tenant, documents(n), &options).await,
                    1 | 2 => client.update_tenant(&tenant, documents(n), &options).await,
                    _ => client.delete_tenant(&tenant, &options).await,
                };
                revisions.push(result?.revision);
            }
            anyhow::Ok(revisions)
        })
    });
    // Concurrent writes may share an entry (group commit): one revision, one delta.
    let mut written = std::collections::BTreeSet::new();
    for writer in writers {
        written.extend(writer.await??);
    }
    let (tenants, revision) = cluster.tenants().await?;

    phase("every agent reaches the final revision and holds exactly the registry's state");
    for (agent, recorder) in followers {
        agents::wait_for(&agent, revision).await?;
        agents::assert_matches(&agent, &tenants);
        let id = agent.config().agent_id.clone();
        agent.shutdown().await;
        let steps = recorder.await?;
        // A snapshot may start the sequence; every delta then follows the
        // step before it by exactly one revision.
        let mut previous = None;
        for step in &steps {
            match (*step, previous) {
                (Applied::Delta { revision }, Some(before)) => {
                    assert_eq!(revision, before + 1, "agent {id}: {steps:?}")
                }
                (Applied::Delta { revision }, None) => assert!(revision >= 1, "agent {id}"),
                (Applied::Snapshot { revision }, before) => {
                    assert!(before.is_none_or(|before| revision >= before), "agent {id} went back: {steps:?}")
                }
            }
            previous = Some(match *step {
                Applied::Delta { revision } | Applied::Snapshot { revision } => revision,
            });
        }
        assert!(previous >= Some(revision), "agent {id} ends at the final revision");
        // Every write's revision after the starting snapshot (if any) arrived as a delta.
        let start = match steps.first() {
            Some(Applied::Snapshot { revision }) => *revision,
            _ => 0,
        };
        let deltas: std::collections::BTreeSet<u64> = steps
            .iter()
            .filter_map(|step| match step {
                Applied::Delta { revision } => Some(*revision),
                Applied::Snapshot { .. } => None,
            })
            .collect();
        let missing: Vec<_> =
            written.iter().filter(|revision| **revision > start && !deltas.contains(revision)).collect();
        assert!(missing.is_empty(), "agent {id} never applied the writes at {missing:?} as deltas");
        assert!(written.len() >= 25, "the 100 writes took at least 25 entries ({})", written.len());
    }

    cluster.passed();
    Ok(())
}
