//! The edge, as users run it: Debian's nginx with the shipped
//! `deploy/nginx/tenantry.conf` serves the static build and each tenant's
//! runtime config straight from a frontend sidecar's materialized
//! directory, and proxies `/api/` to an api-node of the same region; a
//! headless Chromium loads the page through nginx.
//!
//! * A theme change reaches the file nginx serves within a second of the
//!   sidecar applying it, and the page shows the new configVersion without
//!   a reload (server-sent events through nginx's `/api/` proxy).
//! * The tenant comes from the Host only: another tenant's path, unknown
//!   or hostile Hosts, and no Host get nothing; a tenant pinned to another
//!   region has no file here.
//! * Cache-Control is the api-node's, `?v=` is ignored, ETags revalidate,
//!   and two versions of equal size written within a second have
//!   different ETags.
//! * The region's variant is merged (acme's EU legal banner), and the JSON
//!   names configVersion and region.

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use proto::v1;
use registry_client::http::{send, HttpRequest, HttpResponse};
use registry_client::WriteOptions;

use super::phase;
use cluster_tests::browser::{self, Browser};
use cluster_tests::http::get;
use cluster_tests::nginx::Nginx;
use cluster_tests::{api_nodes, wait, ClusterOptions, RegistryCluster};

const REGION: &str = "eu-west";

/// The node of [`REGION`] in the suite's cluster (us-east, eu-west, ap-south).
const REGION_NODE: u64 = 2;

fn config(api_base: &str) -> String {
    format!(
        r#"{{"public":{{"apiBase":"{api_base}"}},"allowedHosts":["*.acme.example"],
            "regions":{{"eu-west":{{"public":{{"legalBanner":"Acme Europe GmbH: cookies only with consent"}}}}}}}}"#
    )
}

fn theme(primary: &str) -> String {
    format!(r##"{{"colors":{{"primary":"{primary}"}},"texts":{{"productName":"Acme Portal"}}}}"##)
}

fn documents(primary: &str) -> v1::Documents {
    v1::Documents {
        config_json: Some(config("https://api.acme.example")),
        theme_json: Some(theme(primary)),
        integrations_json: None,
    }
}

async fn nginx_get(nginx: &Nginx, path: &str, host: &str, extra: &[(&str, &str)]) -> std::io::Result<HttpResponse> {
    let mut headers = vec![("Host", host)];
    headers.extend_from_slice(extra);
    get(&nginx.addr, path, &headers).await
}

fn json(response: &HttpResponse) -> serde_json::Value {
    serde_json::from_slice(&response.body).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_serves_materialized_configs_by_host_and_the_page_follows_new_versions_live() -> anyhow::Result<()> {
    let cluster = RegistryCluster::start(ClusterOptions::new("edge-nginx")).await?;
    let client = cluster.client();
    let acme = client.create_tenant("acme", documents("#0b5fff"), &WriteOptions::default()).await?;
    client.create_tenant("globex", super::documents(1), &WriteOptions::default()).await?;
    let pinned = v1::Documents {
        config_json: Some(r#"{"placement":{"homeRegion":"us-east","allowedRegions":["us-east"]}}"#.to_owned()),
        ..Default::default()
    };
    client.create_tenant("initech", pinned, &WriteOptions::default()).await?;

    phase("a frontend sidecar materializing for nginx, an api-node, nginx with deploy/nginx/tenantry.conf");
    let materialized = cluster.dir.join("frontend");
    let sidecar_http = format!("127.0.0.1:{}", cluster_tests::registry_cluster::free_port()?);
    let extra =
        [OsStr::new("--http"), OsStr::new(&sidecar_http), OsStr::new("--materialize"), materialized.as_os_str()];
    let _sidecar = cluster_tests::agents::start_sidecar(&cluster, extra)?;
    let api = api_nodes::start(&cluster, REGION_NODE).await?;
    // The static build: the demo page, as a file.
    let www = cluster.dir.join("www");
    std::fs::create_dir_all(www.join("assets"))?;
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/../api-node/assets/demo.html"), www.join("index.html"))?;
    std::fs::write(www.join("assets/app.3f9a1c.js"), "console.log('hashed asset');\n")?;
    let nginx = Nginx::start(&cluster.dir.join("nginx"), &www, &materialized, &api.addr).await?;
    let port = nginx.addr.rsplit(':').next().unwrap_or_default().to_owned();
    let host = format!("acme.localhost:{port}");
    let first = wait::until("nginx to serve acme's runtime config", Duration::from_secs(30), || async {
        let response = nginx_get(&nginx, "/config/acme.json", &host, &[]).await.ok()?;
        (response.status == 200).then_some(response)
    })
    .await?;

    phase("the file as the region serves it: configVersion, region and the EU variant in the JSON");
    let expected =
        cluster_tests::served(&acme.tenant.as_ref().and_then(|t| t.public_bundle.clone()), REGION, acme.revision);
    assert_eq!(first.body, expected);
    let document = json(&first);
    assert_eq!((document["configVersion"].as_u64(), document["region"].as_str()), (Some(acme.revision), Some(REGION)));
    assert_eq!(document["config"]["legalBanner"], "Acme Europe GmbH: cookies only with consent");
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.header("x-tenant"), Some("acme"));

    phase("Cache-Control as the api-node's; ?v= ignored; the ETag revalidates");
    let from_api = get(&api.addr, "/config/acme.json", &[("Host", "acme.localhost")]).await?;
    assert_eq!(from_api.body, first.body, "nginx and the api-node of one region serve the same bytes");
    assert_eq!(first.header("cache-control"), from_api.header("cache-control"));
    let versioned = nginx_get(&nginx, "/config/acme.json?v=1", &host, &[]).await?;
    assert_eq!((versioned.status, &versioned.body), (200, &first.body));
    assert_eq!(versioned.header("etag"), first.header("etag"));
    let etag = first.header("etag").expect("an ETag").to_owned();
    let revalidated = nginx_get(&nginx, "/config/acme.json", &host, &[("If-None-Match", &etag)]).await?;
    assert_eq!(revalidated.status, 304);
    assert_eq!(revalidated.header("cache-control"), from_api.header("cache-control"));

    phase("the tenant comes from the Host only; hostile Hosts get nothing");
    let other = nginx_get(&nginx, "/config/acme.json", &format!("globex.localhost:{port}"), &[]).await?;
    assert_eq!(other.status, 404, "globex's Host never reads acme's file");
    assert!(!other.text().contains("acme"), "{}", other.text());
    assert_eq!(nginx_get(&nginx, "/config/globex.json", &host, &[]).await?.status, 404);
    let upper = nginx_get(&nginx, "/config/acme.json", &format!("ACME.LOCALHOST:{port}"), &[]).await?;
    assert_eq!((upper.status, &upper.body), (200, &first.body), "Host names are case-insensitive");
    for path in ["/config/../manifest.json", "/manifest.json", "/config/.materialize-x.tmp", "/config/acme.json/"] {
        let response = nginx_get(&nginx, path, &host, &[]).await?;
        assert!(response.status == 404 || !response.text().contains("clusterId"), "{path}: {}", response.status);
    }
    let manifest = nginx_get(&nginx, "/config/manifest.json", &format!("manifest.localhost:{port}"), &[]).await?;
    assert_eq!(manifest.status, 404, "the manifest is not a tenant's file");
    // A Host nginx finds malformed is a 400; any other Host that names no
    // tenant gets its connection closed without an answer.
    for hostile in
        ["acme.localhost.evil.example", "acme.evil.example", "acme..localhost", "-acme.localhost", "localhost"]
    {
        match nginx_get(&nginx, "/config/acme.json", hostile, &[]).await {
            Err(_) => {}
            Ok(response) => assert!(
                response.status == 400 && !response.text().contains("acme"),
                "{hostile}: {} {}",
                response.status,
                response.text()
            ),
        }
    }
    let no_host = HttpRequest { http10: true, ..HttpRequest::new("GET", "/config/acme.json", &[]) };
    let answered = send(&trust::Connector::new(None, false), &nginx.addr, &no_host).await;
    assert!(answered.is_err(), "no Host: no answer, got {answered:?}");
    // Pinned to us-east: eu-west's api-node refuses it (421), and its
    // sidecar wrote no file for nginx to serve.
    let initech = format!("initech.localhost:{port}");
    assert_eq!(nginx_get(&nginx, "/config/initech.json", &initech, &[]).await?.status, 404);
    assert_eq!(get(&api.addr, "/config/initech.json", &[("Host", "initech.localhost")]).await?.status, 421);
    assert!(!materialized.join("config/initech.json").exists());
    let asset = nginx_get(&nginx, "/assets/app.3f9a1c.js", &host, &[]).await?;
    assert_eq!(asset.header("cache-control"), Some("public, max-age=31536000, immutable"));
    let page = nginx_get(&nginx, "/tenants/acme/settings", &host, &[]).await?;
    assert_eq!((page.status, page.header("cache-control")), (200, Some("no-cache")), "the app's routes get index.html");

    phase("the page through nginx in Chromium: branding, region, banner and configVersion");
    let browser = Browser::start(&cluster.dir.join("chromium-profile")).await?;
    let tab = browser.open(&format!("http://{host}/")).await?;
    let version = |revision: u64| move |text: &str| text == format!("configVersion {revision}");
    let timeout = Duration::from_secs(10);
    browser::text_when(&tab, "#version", version(acme.revision), timeout).await?;
    assert_eq!(browser::text(&tab, "#region").await?.as_deref(), Some(REGION));
    assert_eq!(browser::text(&tab, "#banner").await?.as_deref(), Some("Acme Europe GmbH: cookies only with consent"));
    browser::screenshot(&tab, &cluster_tests::binaries::artefact("edge-nginx-before.png")?).await?;

    phase("a theme change: in nginx's file within a second of the sidecar applying it, and live in the page");
    let written = client.update_tenant("acme", documents("#ff0000"), &WriteOptions::default()).await?;
    let sidecar_wait = format!("/v1/tenants/acme?wait={}&timeout=20000", written.revision);
    let (code, _) = cluster_tests::http::get_text(&sidecar_http, &sidecar_wait, Duration::from_secs(25)).await?;
    assert_eq!(code, 200);
    let applied = Instant::now();
    let served = wait::until("nginx to serve the new version", Duration::from_secs(5), || async {
        let response = nginx_get(&nginx, "/config/acme.json", &host, &[]).await.ok()?;
        (json(&response)["configVersion"].as_u64() == Some(written.revision)).then_some(response)
    })
    .await?;
    let lag = applied.elapsed();
    eprintln!("sidecar applied -> nginx served the new version: {lag:?}");
    assert!(lag < Duration::from_secs(1), "{lag:?}");
    assert!(served.text().contains("#ff0000"));
    assert_ne!(served.header("etag"), Some(etag.as_str()), "a new version, a new ETag");
    let stale = nginx_get(&nginx, "/config/acme.json", &host, &[("If-None-Match", &etag)]).await?;
    assert_eq!(stale.status, 200, "the old ETag no longer revalidates");
    browser::text_when(&tab, "#version", version(written.revision), timeout).await?;
    let primary = tab.evaluate("document.body.dataset.primary").await?.into_value::<String>()?;
    assert_eq!(primary, "#ff0000", "the new theme, without a reload");
    browser::screenshot(&tab, &cluster_tests::binaries::artefact("edge-nginx-after.png")?).await?;

    phase("two versions of equal size within a second: different ETags");
    let mut etags = Vec::new();
    for primary in ["#00aa00", "#00bb00"] {
        let written = client.update_tenant("acme", documents(primary), &WriteOptions::default()).await?;
        let response = wait::until("nginx to serve it", Duration::from_secs(5), || async {
            let response = nginx_get(&nginx, "/config/acme.json", &host, &[]).await.ok()?;
            (json(&response)["configVersion"].as_u64() == Some(written.revision)).then_some(response)
        })
        .await?;
        etags.push((response.body.len(), response.header("etag").map(str::to_owned)));
    }
    assert_eq!(etags[0].0, etags[1].0, "equal sizes: {etags:?}");
    assert_ne!(etags[0].1, etags[1].1, "{etags:?}");

    tab.close().await?;
    browser.close().await?;
    drop(nginx);
    drop(api);
    cluster.passed();
    Ok(())
}
