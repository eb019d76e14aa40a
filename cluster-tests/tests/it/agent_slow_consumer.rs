//! Bounded memory under a slow agent: a subscriber that stops reading is cut
//! with a status telling it to resume, instead of the node buffering for it;
//! it then recovers from its own revision.

use std::time::Duration;

use proto::v1::{self, agent_message, registry_message};
use registry_client::WriteOptions;
use tokio_stream::StreamExt;

use super::{documents, phase};
use cluster_tests::{ClusterOptions, RegistryCluster};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_is_cut_and_recovers() -> anyhow::Result<()> {
    let options = ClusterOptions::new("agent-slow").with_args(&["--watch-queue-deltas-max", "16"]);
    let cluster = RegistryCluster::start(options).await?;
    let node = cluster.node(1);

    phase("a raw subscriber with 64 KiB flow-control windows says Hello, then reads nothing");
    // Small windows, as a slow or stuck agent's would be once its buffers are full.
    let connector =
        trust::Connector::new(cluster_tests::agents::tls(&cluster, "slow-1", agent::Kind::Api, "us-east")?, true);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", node.grpc))?
        .initial_stream_window_size(64 * 1024)
        .initial_connection_window_size(64 * 1024)
        .connect_with_connector(connector.clone())
        .await?;
    let mut client = v1::agent_sync_client::AgentSyncClient::new(channel);
    let hello = v1::AgentMessage {
        kind: Some(agent_message::Kind::Hello(v1::Hello {
            agent_id: "slow-1".to_owned(),
            region: "us-east".to_owned(),
            kind: v1::AgentKind::Api as i32,
            since_revision: 0,
            cluster_id: String::new(),
        })),
    };
    let (_keep_open, outbound) = tokio::sync::mpsc::channel::<v1::AgentMessage>(1);
    let outbound = tokio_stream::once(hello).chain(tokio_stream::wrappers::ReceiverStream::new(outbound));
    let mut inbound = client.sync(outbound).await?.into_inner();

    phase("300 writes of ~1 KiB documents while it does not read");
    let rss_before = rss_kib(node.pid().unwrap_or(0));
    let client = cluster.client();
    let large = v1::Documents { config_json: Some(format!(r#"{{"pad":"{}"}}"#, "x".repeat(1024))), ..documents(0) };
    for n in 0..300u64 {
        client.create_tenant(&format!("s-{n:03}"), large.clone(), &WriteOptions::default()).await?;
    }
    let rss_after = rss_kib(node.pid().unwrap_or(0));
    eprintln!("node 1 RSS: {rss_before} KiB before, {rss_after} KiB after 300 writes with a stalled subscriber");

    phase("when it reads again: what was in flight, then RESOURCE_EXHAUSTED with its resume revision");
    let mut received = 0;
    let mut last_revision = 0;
    let status = loop {
        anyhow::ensure!(received <= 400, "never cut: the node kept sending to a stalled subscriber");
        match tokio::time::timeout(Duration::from_secs(20), inbound.message()).await? {
            Ok(Some(message)) => {
                received += 1;
                if let Some(registry_message::Kind::Delta(delta)) = message.kind {
                    last_revision = delta.revision;
                }
            }
            Ok(None) => anyhow::bail!("stream ended without a status"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("resume from revision"), "{}", status.message());
    assert!(received < 300, "the node did not buffer every delta for it ({received} messages)");
    eprintln!(
        "the stalled subscriber got {received} messages (last delta {last_revision}), then: {}",
        status.message()
    );

    phase("it resumes from its revision on a new stream and catches up");
    let resume = v1::AgentMessage {
        kind: Some(agent_message::Kind::Hello(v1::Hello {
            agent_id: "slow-1".to_owned(),
            region: "us-east".to_owned(),
            kind: v1::AgentKind::Api as i32,
            since_revision: last_revision,
            cluster_id: String::new(),
        })),
    };
    let (_keep_open, outbound) = tokio::sync::mpsc::channel::<v1::AgentMessage>(1);
    let outbound = tokio_stream::once(resume).chain(tokio_stream::wrappers::ReceiverStream::new(outbound));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", node.grpc))?
        .connect_with_connector(connector)
        .await?;
    let mut inbound = v1::agent_sync_client::AgentSyncClient::new(channel).sync(outbound).await?.into_inner();
    let (_, final_revision) = cluster.tenants().await?;
    let mut revision = last_revision;
    while revision < final_revision {
        let message = tokio::time::timeout(Duration::from_secs(20), inbound.message()).await??;
        match message.and_then(|message| message.kind) {
            Some(registry_message::Kind::Delta(delta)) => {
                assert_eq!(delta.revision, revision + 1, "gap-free after the resume");
                revision = delta.revision;
            }
            Some(registry_message::Kind::Snapshot(chunk)) if chunk.last => revision = chunk.revision,
            Some(_) => {}
            None => anyhow::bail!("stream ended at revision {revision}"),
        }
    }

    cluster.passed();
    Ok(())
}
