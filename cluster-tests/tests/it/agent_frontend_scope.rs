//! Guarantee 6 and scope: a frontend agent never receives private bundles or
//! integrations, even for tenants full of private data; an API agent does.

use agent::Kind;
use proto::v1;
use registry_client::WriteOptions;

use super::phase;
use cluster_tests::{agents, ClusterOptions, RegistryCluster};

const PRIVATE_MARKER: &str = "private-marker-7f3c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frontend_agents_never_hold_private_data() -> anyhow::Result<()> {
    let cluster = RegistryCluster::start(ClusterOptions::new("agent-scope")).await?;
    let frontend = agents::start(&cluster, "web-1", 2, Kind::Frontend, None).await?;
    let api = agents::start(&cluster, "api-1", 2, Kind::Api, None).await?;

    phase("tenants whose config and integrations carry private data");
    let client = cluster.client();
    let mut revision = 0;
    for n in 0..5 {
        let documents = v1::Documents {
            config_json: Some(format!(r#"{{"public":{{"n":{n}}},"billing":"{PRIVATE_MARKER}"}}"#)),
            theme_json: Some(r##"{"colors":{"primary":"#000000"}}"##.to_owned()),
            integrations_json: Some(format!(r#"{{"oauth":{{"client_id":"{PRIVATE_MARKER}"}}}}"#)),
        };
        revision = client.create_tenant(&format!("p-{n}"), documents, &WriteOptions::default()).await?.revision;
    }
    agents::wait_for(&frontend, revision).await?;
    agents::wait_for(&api, revision).await?;

    phase("the frontend view has public bundles only, without the marker");
    let (tenants, _) = cluster.tenants().await?;
    agents::assert_matches(&frontend, &tenants);
    for entry in frontend.view().tenants() {
        assert_eq!(entry.private_json(), None);
        let public = String::from_utf8_lossy(entry.public_json());
        assert!(!public.contains(PRIVATE_MARKER), "{}: {public}", entry.id());
        assert!(public.contains(r#""n":"#), "the public part is there");
    }
    phase("the API view has the private bundle with it");
    agents::assert_matches(&api, &tenants);
    let private =
        api.tenant("p-0").and_then(|entry| entry.private_json().map(|json| String::from_utf8_lossy(json).into_owned()));
    assert!(private.is_some_and(|private| private.contains(PRIVATE_MARKER)));

    frontend.shutdown().await;
    api.shutdown().await;
    cluster.passed();
    Ok(())
}
