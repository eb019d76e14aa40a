//! Guarantee 4 (the registry knows what each agent refused): an update that
//! fails an agent's own validation is refused with a NACK, the agent keeps
//! the tenant's last good version, and `regctl agents` shows the refusal.

use agent::{Agent, AgentConfig, Kind};
use proto::v1;
use registry_client::WriteOptions;

use super::{documents, phase};
use cluster_tests::{agents, ClusterOptions, RegistryCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_update_is_nacked_kept_back_and_visible_in_regctl_agents() -> anyhow::Result<()> {
    let cluster = RegistryCluster::start(ClusterOptions::new("agent-nack")).await?;
    let client = cluster.client();

    phase("an agent that accepts bundles of at most 2 KiB");
    let config = AgentConfig {
        agent_id: "api-small@us-east".to_owned(),
        region: "us-east".to_owned(),
        kind: Kind::Api,
        endpoints: cluster.endpoints_from(1),
        data_dir: None,
        base_domains: vec!["example.com".to_owned()],
        bundle_bytes_max: 2048,
        cluster_id: None,
        tls: agents::tls(&cluster, "api-small@us-east", Kind::Api, "us-east")?,
    };
    let agent = Agent::start(config).await?;
    let good = client.create_tenant("acme", documents(1), &WriteOptions::default()).await?;
    agents::wait_for(&agent, good.revision).await?;

    phase("an update with a 4 KiB theme: valid for the registry, too big for this agent");
    let texts: Vec<String> = (0..10).map(|index| format!(r#""t{index}":"{}""#, "x".repeat(450))).collect();
    let big =
        v1::Documents { theme_json: Some(format!(r#"{{"texts":{{{}}}}}"#, texts.join(","))), ..Default::default() };
    let refused = client.update_tenant("acme", big, &WriteOptions::default()).await?;
    agents::wait_for(&agent, refused.revision).await?;
    let kept = agent.tenant("acme").expect("acme is kept");
    assert_eq!(kept.config_version(), good.revision, "the last good version is kept");

    phase("regctl agents -o json shows the refusal");
    let output = cluster.regctl(&cluster.endpoints_from(1)).args(["agents", "-o", "json"]).output()?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let me = listed["agents"]
        .as_array()
        .and_then(|agents| agents.iter().find(|agent| agent["agent_id"] == "api-small@us-east"))
        .expect("the agent is listed")
        .clone();
    assert_eq!(me["connected"], true);
    assert_eq!(me["last_nack"]["tenant"], "acme");
    assert_eq!(me["last_nack"]["revision"], refused.revision);
    let reason = me["last_nack"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("bundle") && reason.contains("over the limit of 2048 bytes"), "{reason}");
    assert!(me["acked_revision"].as_u64() >= Some(refused.revision), "it still acknowledged the revision");

    agent.shutdown().await;
    cluster.passed();
    Ok(())
}
