//! Guarantee 1 (linearizable, replicated writes): a write sent to a follower
//! is forwarded and succeeds; a linearizable read on every node sees it; the
//! errors of bad input reach the client naming field and rule.

use proto::v1::Consistency;

use registry_client::{Error, WriteOptions};

use super::{documents, phase};
use cluster_tests::{ClusterOptions, RegistryCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_write_is_forwarded_and_read_linearizably_everywhere() -> anyhow::Result<()> {
    let cluster = RegistryCluster::start(ClusterOptions::new("replication")).await?;
    let leader = cluster.leader().await?;
    let follower = (1..=3).find(|id| *id != leader).unwrap_or(1);

    phase(&format!("write to follower {follower} (leader is {leader})"));
    let written = cluster.node_client(follower).create_tenant("acme", documents(1), &WriteOptions::default()).await?;
    let tenant = written.tenant.clone().unwrap_or_default();
    assert_eq!(tenant.create_revision, written.revision);
    assert_eq!(tenant.mod_revision, written.revision);

    phase("linearizable read on every node sees it, at once");
    for id in 1..=3 {
        let got = cluster.node_client(id).get_tenant("acme", Consistency::Linearizable).await?;
        let got = got.tenant.unwrap_or_default();
        assert_eq!(got.mod_revision, written.revision, "node {id}");
        assert_eq!(got.config_json, r#"{"public":{"n":1},"sla":"gold"}"#, "node {id}");
    }

    phase("every node's HTTP port: alive, ready, metrics, status");
    for node in &cluster.nodes {
        let get = |path: &'static str| cluster.http_get(node.id, path);
        assert_eq!(get("/healthz").await?.0, 200);
        assert_eq!(get("/readyz").await?.0, 200);
        let (code, metrics) = get("/metrics").await?;
        assert_eq!(code, 200);
        for metric in [
            "tenantry_raft_term ",
            "tenantry_raft_applied_index ",
            "tenantry_tenants 1",
            "tenantry_rpc_duration_seconds_bucket",
        ] {
            assert!(metrics.contains(metric), "node {}: /metrics lacks {metric}", node.id);
        }
        // Every node served a read; the follower and the leader the create
        // (the follower forwarded it).
        let timed =
            |method: &str| metrics.contains(&format!("tenantry_rpc_duration_seconds_count{{method=\"{method}\"}} "));
        assert!(timed("GetTenant"), "node {}: GetTenant is timed", node.id);
        // Each write's stages on this node: flushed (from proposed) on the
        // leader only, committed and applied everywhere.
        let staged = |stage: &str| {
            metrics.lines().any(|line| {
                line.starts_with(&format!("tenantry_write_stage_seconds_count{{stage=\"{stage}\"}} "))
                    && !line.ends_with(" 0")
            })
        };
        assert_eq!(staged("flushed"), node.id == leader, "node {}: proposed -> flushed", node.id);
        assert!(staged("committed") && staged("applied"), "node {}: committed and applied are timed", node.id);
        assert_eq!(timed("CreateTenant"), node.id == leader || node.id == follower, "node {}: CreateTenant", node.id);
        let (code, status) = get("/status").await?;
        assert_eq!(code, 200);
        let status: serde_json::Value = serde_json::from_str(&status)?;
        assert_eq!(status["leader_id"], leader);
        assert_eq!(status["members"].as_array().map(Vec::len), Some(3));
    }

    phase("compare-and-set through a follower: a stale revision is refused with both revisions");
    let stale = WriteOptions { expected_revision: Some(written.revision - 1), ..Default::default() };
    let refused = cluster.node_client(follower).update_tenant("acme", documents(2), &stale).await.unwrap_err();
    let Error::Precondition { rule, current_revision, expected_revision, .. } = refused else {
        panic!("expected FAILED_PRECONDITION, got {refused:?}");
    };
    assert_eq!(rule, "revision-mismatch");
    assert_eq!(current_revision, Some(written.revision));
    assert_eq!(expected_revision, Some(written.revision - 1));
    let fresh = WriteOptions { expected_revision: Some(written.revision), ..Default::default() };
    let updated = cluster.node_client(follower).update_tenant("acme", documents(2), &fresh).await?;
    assert!(updated.revision > written.revision);

    phase("a retried request id applies once, through any node");
    let options = WriteOptions { request_id: Some("retry-1".to_owned()), ..Default::default() };
    let first = cluster.node_client(leader).create_tenant("globex", documents(3), &options).await?;
    let again = cluster.node_client(follower).create_tenant("globex", documents(3), &options).await?;
    assert!(!first.replayed);
    assert!(again.replayed);
    assert_eq!(again.revision, first.revision);

    phase("bad input names field and rule and changes nothing");
    let before = cluster.client().get_tenant("acme", Consistency::Linearizable).await?.revision;
    let bad = v1_documents_with_config("[1,2]");
    let refused = cluster.client().update_tenant("acme", bad, &WriteOptions::default()).await.unwrap_err();
    let Error::Invalid { field, rule, .. } = refused else { panic!("expected INVALID_ARGUMENT, got {refused:?}") };
    assert_eq!((field.as_str(), rule.as_str()), ("documents.config", "json-object"));
    let refused = cluster.client().create_tenant("Bad_Id", documents(1), &WriteOptions::default()).await.unwrap_err();
    assert!(matches!(&refused, Error::Invalid { field, .. } if field == "tenant_id"), "{refused:?}");
    let after = cluster.client().get_tenant("acme", Consistency::Linearizable).await?.revision;
    assert_eq!(before, after, "refused writes commit nothing");

    cluster.passed();
    Ok(())
}

fn v1_documents_with_config(config: &str) -> proto::v1::Documents {
    proto::v1::Documents { config_json: Some(config.to_owned()), ..Default::default() }
}
