//! Guarantee 5 (data residency) through `regctl pin`: a pin that would leave
//! the home or DR region outside is refused with the rule and changes
//! nothing; an accepted pin reaches the api-nodes, and one outside the pin
//! stops serving the tenant (421 naming its home region); the pin is audited.

use std::ffi::OsStr;
use std::time::Duration;

use proto::v1;
use registry_client::WriteOptions;

use super::{documents, phase, regctl};
use cluster_tests::http::get;
use cluster_tests::{api_nodes, wait, ClusterOptions, RegistryCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_are_checked_audited_and_honoured_by_api_nodes() -> anyhow::Result<()> {
    let cluster = RegistryCluster::start(ClusterOptions::new("placement-pins")).await?;
    let endpoints = cluster.endpoints_from(1);
    let config = r#"{"public":{"n":1},"placement":{"homeRegion":"us-east","allowedRegions":["us-east","eu-west"],"drRegion":"eu-west"}}"#;
    let documents = v1::Documents { config_json: Some(config.to_owned()), ..documents(1) };
    cluster.client().create_tenant("acme", documents, &WriteOptions::default()).await?;
    let eu = api_nodes::start(&cluster, 2).await?;
    let acme = |addr: String| async move { get(&addr, "/config/acme.json", &[("Host", "acme.localhost")]).await };
    assert_eq!(acme(eu.addr.clone()).await?.status, 200, "eu-west is allowed");

    phase("a pin that would leave the DR region outside is refused and changes nothing");
    let pin = |regions: &str| {
        let args = [OsStr::new("pin"), OsStr::new("acme"), OsStr::new("--regions"), OsStr::new(regions)];
        regctl(&cluster, &endpoints, &args)
    };
    let before = cluster.tenants().await?;
    let refused = pin("us-east");
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(
            "allowed_regions: the DR region eu-west would be outside us-east: move it first (regctl failover)"
        ),
        "{stderr}"
    );
    assert_eq!(cluster.tenants().await?.0, before.0, "nothing changed");

    phase("bad region names are refused; a wider pin is accepted");
    let bad_region = pin("us-east,EU");
    assert_eq!(bad_region.status.code(), Some(1));
    let accepted = pin("us-east,eu-west,ap-south");
    assert!(accepted.status.success());
    let (tenants, _) = cluster.tenants().await?;
    let placement = tenants[0].placement.clone().unwrap_or_default();
    assert_eq!(placement.allowed_regions, ["ap-south", "eu-west", "us-east"]);

    // The DR region moves only by failover; a tenant without one can be pinned tighter.
    let documents = v1::Documents {
        config_json: Some(r#"{"public":{"n":2},"placement":{"homeRegion":"us-east"}}"#.to_owned()),
        ..Default::default()
    };
    cluster.client().create_tenant("globex", documents, &WriteOptions::default()).await?;
    let globex = |addr: String| async move { get(&addr, "/config/globex.json", &[("Host", "globex.localhost")]).await };
    wait::until("eu-west to serve globex", Duration::from_secs(10), || async {
        (globex(eu.addr.clone()).await.ok()?.status == 200).then_some(())
    })
    .await?;
    let args = [
        OsStr::new("pin"),
        OsStr::new("globex"),
        OsStr::new("--regions"),
        OsStr::new("us-east"),
        OsStr::new("--reason"),
        OsStr::new("residency"),
    ];
    assert!(regctl(&cluster, &endpoints, &args).status.success());
    let refused = wait::until("eu-west to refuse globex", Duration::from_secs(10), || async {
        let response = globex(eu.addr.clone()).await.ok()?;
        (response.status == 421).then_some(response)
    })
    .await?;
    assert_eq!(refused.header("x-home-region"), Some("us-east"));

    phase("the pin is audited");
    let history = regctl(
        &cluster,
        &endpoints,
        &[OsStr::new("history"), OsStr::new("globex"), OsStr::new("-o"), OsStr::new("json")],
    );
    let history: serde_json::Value = serde_json::from_slice(&history.stdout)?;
    assert_eq!(history["entries"][0]["summary"], "pin us-east");
    assert_eq!(history["entries"][0]["reason"], "residency");

    drop(eu);
    cluster.passed();
    Ok(())
}

/// The routing map through `regctl shard` and `regctl region`: a new tenant
/// goes to its home region's active shard, and the api-node serves its rows
/// from that shard; a drained shard takes no new tenants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_route_new_tenants_and_api_nodes_use_them() -> anyhow::Result<()> {
    let cluster = RegistryCluster::start(ClusterOptions::new("shards")).await?;
    let endpoints = cluster.endpoints_from(1);
    let run = |args: &[&str]| {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).chain([OsStr::new("-o"), OsStr::new("json")]).collect();
        let output = regctl(&cluster, &endpoints, &args);
        assert!(output.status.success(), "{args:?}");
        serde_json::from_slice::<serde_json::Value>(&output.stdout).expect("JSON")
    };
    let added = run(&["shard", "add", "eu-1", "--region", "eu-west", "--endpoint", "embedded:eu-1"]);
    assert_eq!(added["shards"][0]["state"], "active");
    let home_eu = r#"{"public":{"n":1},"placement":{"homeRegion":"eu-west"}}"#;
    let documents = v1::Documents { config_json: Some(home_eu.to_owned()), ..documents(1) };
    let written = cluster.client().create_tenant("acme", documents.clone(), &WriteOptions::default()).await?;
    assert_eq!(written.tenant.map(|tenant| tenant.shard), Some("eu-1".to_owned()));

    let eu = api_nodes::start(&cluster, 2).await?;
    let health = wait::until("the eu-west api-node to serve acme from eu-1", Duration::from_secs(10), || async {
        let response = get(&eu.addr, "/health?tenant=auto", &[("Host", "acme.localhost")]).await.ok()?;
        let health: serde_json::Value = serde_json::from_slice(&response.body).ok()?;
        (health["shard"]["id"] == "eu-1").then_some(health)
    })
    .await?;
    assert_eq!(health["shard"]["reachable"], true);

    let drained = run(&["shard", "drain", "eu-1"]);
    assert_eq!(drained["shards"][0]["state"], "draining");
    let written = cluster.client().create_tenant("globex", documents, &WriteOptions::default()).await?;
    assert_eq!(written.tenant.map(|tenant| tenant.shard), Some(String::new()), "the region's default shard");
    let regions = run(&["region", "set-status", "eu-west", "degraded"]);
    assert_eq!(regions["regions"][0], serde_json::json!({ "region": "eu-west", "status": "degraded" }));
    assert_eq!(run(&["region", "list"])["regions"][0]["status"], "degraded");

    drop(eu);
    cluster.passed();
    Ok(())
}
