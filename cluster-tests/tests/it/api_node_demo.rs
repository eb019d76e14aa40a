//! The demo page in a real browser: headless Chromium (Debian's `chromium`,
//! installed by this test when missing), driven over the DevTools
//! protocol, shows two tenants' branding and configVersion, then a theme
//! changed with the registry client without a reload (the page follows the
//! api-node's live-config events). The screenshot is kept in
//! `target/cluster-tests/artefacts/`.

use std::time::Duration;

use proto::v1;
use registry_client::WriteOptions;

use super::phase;
use cluster_tests::browser::{self, Browser};
use cluster_tests::{api_nodes, ClusterOptions, RegistryCluster};

fn theme(primary: &str, name: &str) -> String {
    format!(
        r##"{{"colors":{{"primary":"{primary}","background":"#ffffff"}},"texts":{{"productName":"{name}","welcome":"Hello"}}}}"##
    )
}

const TIMEOUT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_page_shows_each_tenants_branding_and_follows_new_versions_without_a_reload() -> anyhow::Result<()> {
    let cluster = RegistryCluster::start(ClusterOptions::new("api-node-demo")).await?;
    let client = cluster.client();
    let mut versions = Vec::new();
    for (tenant, primary, name) in [("acme", "#0b5fff", "Acme Portal"), ("globex", "#1f7a3a", "Globex Portal")] {
        let documents = v1::Documents { theme_json: Some(theme(primary, name)), ..Default::default() };
        versions.push(client.create_tenant(tenant, documents, &WriteOptions::default()).await?.revision);
    }
    let api = api_nodes::start(&cluster, 1).await?;
    let port = api.addr.rsplit(':').next().unwrap_or_default().to_owned();
    let browser = Browser::start(&cluster.dir.join("chromium-profile")).await?;
    let shows = |revision: u64| move |text: &str| text == format!("configVersion {revision}");

    phase("two tenants, two brandings, each with its configVersion and region from the JSON");
    let mut tabs = Vec::new();
    for ((tenant, primary, name), version) in
        [("acme", "#0b5fff", "Acme Portal"), ("globex", "#1f7a3a", "Globex Portal")].into_iter().zip(&versions)
    {
        let tab = browser.open(&format!("http://{tenant}.localhost:{port}/")).await?;
        browser::text_when(&tab, "#version", shows(*version), TIMEOUT).await?;
        assert_eq!(browser::text(&tab, "#name").await?.as_deref(), Some(name));
        assert_eq!(browser::text(&tab, "#region").await?.as_deref(), Some(api.region));
        let shown = tab.evaluate("document.body.dataset.primary").await?.into_value::<String>()?;
        assert_eq!(shown, primary, "{tenant}");
        tabs.push(tab);
    }

    phase("a theme change with the registry client: shown without a reload, only in acme's tab");
    let documents = v1::Documents { theme_json: Some(theme("#ff0000", "Acme Rebrand")), ..Default::default() };
    let written = client.update_tenant("acme", documents, &WriteOptions::default()).await?;
    browser::text_when(&tabs[0], "#version", shows(written.revision), TIMEOUT).await?;
    assert_eq!(browser::text(&tabs[0], "#name").await?.as_deref(), Some("Acme Rebrand"));
    let shown = tabs[0].evaluate("document.body.dataset.primary").await?.into_value::<String>()?;
    assert_eq!(shown, "#ff0000");
    browser::screenshot(&tabs[0], &cluster_tests::binaries::artefact("demo-acme.png")?).await?;
    assert_eq!(browser::text(&tabs[1], "#version").await?, Some(format!("configVersion {}", versions[1])));

    for tab in tabs {
        tab.close().await?;
    }
    browser.close().await?;
    drop(api);
    cluster.passed();
    Ok(())
}
