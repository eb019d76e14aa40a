//! Traces across every hop, exported over OTLP to a real receiver
//! (opentelemetry-proto's collector service, `cluster_tests::otlp`): one
//! `regctl tenant set`, sent to a follower, is one trace that holds the
//! follower's call, its forward to the leader, the proposal, each node's
//! apply of the Raft entry, each node's delta, and every agent's apply and
//! ack (the sidecars' and the api-nodes' embedded agents), each span the
//! child of the hop before. The trace answers "when did eu-west's nodes
//! run the config I just published".

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use cluster_tests::binaries::binary;
use cluster_tests::local_cluster::LocalCluster;
use cluster_tests::otlp::{Collector, Received};

use super::phase;

/// Agents in `regctl up`: a sidecar and an api-node per region.
const AGENTS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_write_is_one_trace_from_regctl_to_every_agent() -> anyhow::Result<()> {
    let collector = Collector::start().await?;
    let endpoint = collector.endpoint.clone();
    let up = tokio::task::spawn_blocking(move || {
        LocalCluster::start("traces", false, &[("TENANTRY_OTLP_ENDPOINT", endpoint.as_str())])
    })
    .await??;

    phase("regctl tenant set, sent to a follower only");
    let client = up.admin_client()?;
    let statuses = client.cluster_status().await;
    let leader = statuses.iter().find_map(|(_, status)| status.as_ref().ok()?.leader_id).expect("a leader");
    let (follower_addr, follower) = statuses
        .iter()
        .filter_map(|(addr, status)| Some((addr.clone(), status.as_ref().ok()?.node_id)))
        .find(|(_, id)| *id != leader)
        .expect("a follower");
    let theme = up.dir.join("theme.json");
    std::fs::write(&theme, r##"{"colors":{"primary":"#663399"}}"##)?;
    let set = Command::new(binary("regctl"))
        .args(["--endpoints", &follower_addr, "--otlp-endpoint", &collector.endpoint])
        .args(up.admin_flags())
        .args(["tenant", "set", "acme", "--theme"])
        .arg(&theme)
        .output()?;
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));

    phase("the receiver gets one trace with every hop, each the child of the one before");
    let root = {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let found = collector.spans().into_iter().find(|span| span.span.name == "regctl tenant set");
            if let Some(found) = found {
                break found;
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "no root span from regctl");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert_eq!(root.service, "regctl");
    assert!(root.span.parent_span_id.is_empty(), "regctl starts the trace");
    let named = |spans: &[Received], name: &str| spans.iter().filter(|span| span.span.name == name).count();
    let trace = collector
        .trace_when(
            &root.span.trace_id,
            |spans| named(spans, "agent ack") == AGENTS && named(spans, "delta") == 3,
            Duration::from_secs(30),
        )
        .await?;
    let by_name = |name: &str| trace.iter().filter(|span| span.span.name == name).cloned().collect::<Vec<_>>();
    let parent_of = |span: &Received| trace.iter().find(|parent| parent.span.span_id == span.span.parent_span_id);

    let calls = by_name("registry UpdateTenant");
    assert_eq!(calls.len(), 2, "the follower's call and its forward: {calls:?}");
    let at_follower = calls.iter().find(|call| call.attribute("node") == Some(follower.to_string())).expect("follower");
    let at_leader = calls.iter().find(|call| call.attribute("node") == Some(leader.to_string())).expect("leader");
    assert_eq!(at_follower.span.parent_span_id, root.span.span_id, "regctl → the follower");
    assert_eq!(at_leader.span.parent_span_id, at_follower.span.span_id, "the follower forwards to the leader");

    // The follower tries first (and is told to forward), the leader proposes the entry.
    let proposals = by_name("propose");
    let tried = |call: &Received| proposals.iter().filter(|p| p.span.parent_span_id == call.span.span_id).count();
    assert_eq!((proposals.len(), tried(at_follower), tried(at_leader)), (2, 1, 1), "{proposals:?}");
    let proposals: Vec<_> = proposals.iter().filter(|p| p.span.parent_span_id == at_leader.span.span_id).collect();

    let applies = by_name("apply");
    let nodes: BTreeSet<String> = applies.iter().filter_map(|apply| apply.attribute("node")).collect();
    assert_eq!(nodes.len(), 3, "each node applies the entry: {nodes:?}");
    for apply in &applies {
        assert_eq!(apply.span.parent_span_id, proposals[0].span.span_id, "the Raft entry carries the context");
        assert_eq!(apply.attribute("tenant").as_deref(), Some("acme"));
    }
    for delta in by_name("delta") {
        let apply = parent_of(&delta).expect("a delta's parent");
        assert_eq!((apply.span.name.as_str(), apply.attribute("node")), ("apply", delta.attribute("node")));
    }

    let agent_applies = by_name("agent apply");
    assert_eq!(agent_applies.len(), AGENTS, "every agent applies it");
    let services: BTreeMap<String, usize> = agent_applies.iter().fold(BTreeMap::new(), |mut counts, span| {
        *counts.entry(span.service.clone()).or_default() += 1;
        counts
    });
    assert_eq!(services, BTreeMap::from([("agent".to_owned(), 3), ("api-node".to_owned(), 3)]));
    for apply in &agent_applies {
        assert_eq!(parent_of(apply).map(|parent| parent.span.name.as_str()), Some("delta"), "the delta's child");
    }
    for ack in by_name("agent ack") {
        assert_eq!(parent_of(&ack).map(|parent| parent.span.name.as_str()), Some("agent apply"));
    }

    phase("when eu-west's nodes ran it");
    let start = root.span.start_time_unix_nano;
    for apply in agent_applies.iter().filter(|apply| apply.attribute("region").as_deref() == Some("eu-west")) {
        let after_ms = apply.span.start_time_unix_nano.saturating_sub(start) as f64 / 1e6;
        eprintln!(
            "{} {}: applied {after_ms:.1} ms after regctl began",
            apply.service,
            apply.attribute("agent").unwrap_or_default()
        );
        assert!(apply.span.start_time_unix_nano >= start);
    }

    let (status, _) = tokio::task::spawn_blocking(move || up.terminate()).await??;
    assert!(status.success(), "regctl up exit: {status}");
    Ok(())
}
