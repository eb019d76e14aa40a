//! api-node's runtime config and tenant resolution, against a real cluster
//! through its embedded agent: `/config/{tenant}.json` is the public bundle
//! as stored with ETag, short Cache-Control, 304 on If-None-Match and the
//! tenant headers; a config change shows up as a new version; anything that
//! is not a tenant host gets the same 404 as an unknown tenant.

use std::time::Duration;

use proto::v1;
use registry_client::WriteOptions;

use super::{documents, phase};
use cluster_tests::http::{get, HttpRequest};
use cluster_tests::{api_nodes, wait, ClusterOptions, RegistryCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_is_served_by_host_with_etags_and_tenant_headers() -> anyhow::Result<()> {
    let cluster = RegistryCluster::start(ClusterOptions::new("api-node-config")).await?;
    let client = cluster.client();
    let placed = |home: &str| v1::Documents {
        config_json: Some(format!(r#"{{"public":{{"n":1}},"placement":{{"homeRegion":"{home}"}}}}"#)),
        ..documents(1)
    };
    client.create_tenant("acme", placed("us-east"), &WriteOptions::default()).await?;
    client.create_tenant("globex", placed("eu-west"), &WriteOptions::default()).await?;

    phase("an api-node in us-east");
    let api_node = api_nodes::start(&cluster, 1).await?;
    let addr = api_node.addr.clone();
    let (tenants, _) = cluster.tenants().await?;
    let acme = tenants.iter().find(|tenant| tenant.id == "acme").cloned().expect("acme");
    wait::until("api-node to serve acme", Duration::from_secs(30), || async {
        let response = get(&addr, "/config/acme.json", &[("Host", "acme.example.com")]).await.ok()?;
        (response.status == 200).then_some(())
    })
    .await?;

    phase("the runtime config (configVersion and region in the JSON), with ETag, Cache-Control and tenant headers");
    let response = get(&addr, "/config/acme.json?v=123", &[("Host", "ACME.example.com:443")]).await?;
    let served = cluster_tests::served(&acme.public_bundle, "us-east", acme.config_revision);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, served, "the public bundle with configVersion and region");
    let document: serde_json::Value = serde_json::from_slice(&response.body)?;
    assert_eq!(document["configVersion"], acme.config_revision);
    assert_eq!(document["region"], "us-east");
    let etag = format!("\"{}\"", compiler::document::sha256_hex(&served));
    assert_eq!(response.header("etag"), Some(etag.as_str()));
    assert_eq!(response.header("cache-control"), Some("public, max-age=5"));
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.header("x-tenant"), Some("acme"));
    assert_eq!(response.header("x-config-version"), Some(acme.config_revision.to_string().as_str()));
    assert_eq!(response.header("x-region"), Some("us-east"));

    phase("If-None-Match with the ETag: 304, no body, same headers");
    let response =
        get(&addr, "/config/acme.json", &[("Host", "acme.localhost:8080"), ("If-None-Match", &etag)]).await?;
    assert_eq!(response.status, 304);
    assert!(response.body.is_empty());
    assert_eq!(response.header("x-config-version"), Some(acme.config_revision.to_string().as_str()));
    let weak = format!("W/{etag}, \"other\"");
    assert_eq!(
        get(&addr, "/config/acme.json", &[("Host", "acme.example.com"), ("If-None-Match", &weak)]).await?.status,
        304
    );

    phase("not a tenant here: the same 404, whatever the reason");
    let unknown = get(&addr, "/config/nope.json", &[("Host", "nope.example.com")]).await?;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.header("content-type"), Some("application/problem+json"));
    let reasons = [
        ("/config/acme.json", "globex.example.com"),
        ("/config/acme.json", "127.0.0.1"),
        ("/config/acme.json", "a.acme.example.com"),
        ("/config/acme.json", "acme.evil.com"),
        ("/config/www.json", "www.example.com"),
        ("/config/acme", "acme.example.com"),
    ];
    for (path, host) in reasons {
        let response = get(&addr, path, &[("Host", host)]).await?;
        assert_eq!((response.status, response.body.clone()), (404, unknown.body.clone()), "{host}{path}");
        assert_eq!(response.header("x-tenant"), None, "{host}{path} reveals no tenant");
    }
    let http10 = cluster_tests::http::HttpRequest { http10: true, ..HttpRequest::new("GET", "/config/acme.json", &[]) };
    let no_host = cluster_tests::http::send(&trust::Connector::new(None, false), &addr, &http10).await?;
    assert_eq!(no_host.status, 400, "{}", no_host.text());
    assert!(no_host.text().contains("host"), "{}", no_host.text());

    phase("health resolves the Host's tenant, fresh once a Progress proved the view current");
    let started = std::time::Instant::now();
    let health = wait::until("a fresh health", Duration::from_secs(5), || async {
        let health = get(&addr, "/health?tenant=auto", &[("Host", "globex.example.com")]).await.ok()?;
        (health.status == 200).then_some(health)
    })
    .await?;
    eprintln!("health fresh after {} ms", started.elapsed().as_millis());
    let body: serde_json::Value = serde_json::from_slice(&health.body)?;
    assert_eq!(body["tenant"], "globex");
    assert_eq!(body["region"], "us-east");
    assert_eq!(body["status"], "ok");
    assert!(body["registry"]["stalenessMs"].as_u64().is_some());
    assert_eq!(body["writes"], "refused: home region is eu-west", "only the home region accepts writes");
    assert_eq!(body["shard"]["reachable"], true, "{body}");
    let health = get(&addr, "/health?tenant=auto", &[("Host", "acme.example.com")]).await?;
    let body: serde_json::Value = serde_json::from_slice(&health.body)?;
    assert_eq!(body["writes"], "accepted", "us-east is acme's home region");

    phase("a theme change: a new version and ETag, and the old ETag no longer matches");
    let theme =
        v1::Documents { theme_json: Some(r##"{"colors":{"primary":"#ff0000"}}"##.to_owned()), ..Default::default() };
    let written = client.update_tenant("acme", theme, &WriteOptions::default()).await?;
    let response = wait::until("the new configVersion", Duration::from_secs(10), || async {
        let response =
            get(&addr, "/config/acme.json", &[("Host", "acme.example.com"), ("If-None-Match", &etag)]).await.ok()?;
        (response.header("x-config-version") == Some(written.revision.to_string().as_str())).then_some(response)
    })
    .await?;
    assert_eq!(response.status, 200);
    assert_ne!(response.header("etag"), Some(etag.as_str()));
    assert!(response.text().contains("#ff0000"));

    phase("live-config events: the config now, and the stream ends once the tenant is pinned away (globex to eu-west)");
    let pinning = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        client.pin_tenant("globex", &["eu-west".to_owned()], &WriteOptions::default()).await
    };
    let (events, pinned) = tokio::join!(get(&addr, "/api/config/events", &[("Host", "globex.example.com")]), pinning);
    pinned?;
    let events = events?;
    assert_eq!(events.status, 200);
    assert_eq!(events.header("content-type"), Some("text/event-stream"));
    assert_eq!(events.header("x-accel-buffering"), Some("no"));
    let text = events.text();
    assert!(text.starts_with("event: config\nid: "), "{text}");
    assert!(text.contains(r#""region":"us-east""#) && text.contains(r#""tenant":"globex""#), "{text}");
    let refused = get(&addr, "/api/config/events", &[("Host", "globex.example.com")]).await?;
    assert_eq!(refused.status, 421, "pinned to eu-west: refused here, as /config is");

    assert!(api_node.process.terminate()?.success(), "api-node stops cleanly on SIGTERM");
    cluster.passed();
    Ok(())
}
