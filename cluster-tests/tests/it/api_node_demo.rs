//! The demo page in a real browser: headless Chromium (Debian's `chromium`,
//! installed by this test when missing) shows two tenants' branding and
//! configVersion, then a theme changed with the registry client, after a
//! reload.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use proto::v1;
use registry_client::WriteOptions;

use super::phase;
use cluster_tests::http::get;
use cluster_tests::{api_nodes, wait, ClusterOptions, RegistryCluster};

/// The DOM of `url` after its scripts ran.
fn rendered(browser: &Path, profile: &Path, url: &str) -> anyhow::Result<String> {
    let output = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--virtual-time-budget=5000", "--dump-dom", url])
        .output()?;
    anyhow::ensure!(output.status.success(), "chromium failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn theme(primary: &str, name: &str) -> String {
    format!(
        r##"{{"colors":{{"primary":"{primary}","background":"#ffffff"}},"texts":{{"productName":"{name}","welcome":"Hello"}}}}"##
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_page_shows_each_tenants_branding_and_new_versions_after_a_reload() -> anyhow::Result<()> {
    let browser =
        tokio::task::spawn_blocking(|| cluster_tests::debian::ensure("/usr/bin/chromium", "chromium")).await??;
    let cluster = RegistryCluster::start(ClusterOptions::new("api-node-demo")).await?;
    let client = cluster.client();
    for (tenant, primary, name) in [("acme", "#0b5fff", "Acme Portal"), ("globex", "#1f7a3a", "Globex Portal")] {
        let documents = v1::Documents { theme_json: Some(theme(primary, name)), ..Default::default() };
        client.create_tenant(tenant, documents, &WriteOptions::default()).await?;
    }
    let api = api_nodes::start(&cluster, 1).await?;
    let port = api.addr.rsplit(':').next().unwrap_or_default().to_owned();
    let profile = cluster.dir.join("chromium-profile");
    let (tenants, _) = cluster.tenants().await?;
    let version = |id: &str| tenants.iter().find(|tenant| tenant.id == id).map_or(0, |tenant| tenant.config_revision);
    wait::until("the api-node to serve globex", Duration::from_secs(20), || async {
        let response = get(&api.addr, "/config/globex.json", &[("Host", "globex.localhost")]).await.ok()?;
        (response.status == 200).then_some(())
    })
    .await?;

    phase("two tenants, two brandings");
    for (tenant, primary, name) in [("acme", "#0b5fff", "Acme Portal"), ("globex", "#1f7a3a", "Globex Portal")] {
        let url = format!("http://{tenant}.localhost:{port}/");
        let dom = rendered(&browser, &profile, &url)?;
        assert!(dom.contains(&format!("<h1 id=\"name\">{name}</h1>")), "{url}: {dom}");
        assert!(dom.contains(&format!("data-primary=\"{primary}\"")), "{url}: {dom}");
        assert!(dom.contains(&format!("configVersion {}", version(tenant))), "{url}: {dom}");
    }

    phase("a theme change with the registry client, then a reload");
    let documents = v1::Documents { theme_json: Some(theme("#ff0000", "Acme Rebrand")), ..Default::default() };
    let written = client.update_tenant("acme", documents, &WriteOptions::default()).await?;
    wait::until("the api-node to see the change", Duration::from_secs(20), || async {
        let response = get(&api.addr, "/config/acme.json", &[("Host", "acme.localhost")]).await.ok()?;
        (response.header("x-config-version") == Some(written.revision.to_string().as_str())).then_some(())
    })
    .await?;
    let dom = rendered(&browser, &profile, &format!("http://acme.localhost:{port}/"))?;
    assert!(dom.contains("<h1 id=\"name\">Acme Rebrand</h1>"), "{dom}");
    assert!(dom.contains("data-primary=\"#ff0000\""), "{dom}");
    assert!(dom.contains(&format!("configVersion {}", written.revision)), "{dom}");

    drop(api);
    cluster.passed();
    Ok(())
}
