//! `regctl ui`, the live console, in headless Chromium over the DevTools
//! protocol, against `regctl up` (three regions, the 12 example tenants,
//! six agents): each view shows the cluster as it is, and changes as the
//! cluster changes without a reload (a new configVersion, an agent that
//! stops acknowledging and drifts, a fenced failover, a staged canary, the
//! history with its diff). A viewer's console shows no integrations, no
//! console carries a bundle, and a page from another Host is refused.
//! A screenshot of each view is kept in `target/cluster-tests/artefacts/`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use chromiumoxide::Page;
use cluster_tests::binaries::{artefact, binary};
use cluster_tests::browser::{self, Browser};
use cluster_tests::local_cluster::LocalCluster;
use cluster_tests::process::ChildGuard;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use proto::v1;
use registry_client::WriteOptions;

use super::phase;

const TIMEOUT: Duration = Duration::from_secs(20);

/// `regctl ui` on a free loopback port with `tls_flags`; its URL.
fn start_console(up: &LocalCluster, tls_flags: &[String], extra: &[&str]) -> anyhow::Result<(ChildGuard, String)> {
    let mut console = ChildGuard::new(
        Command::new(binary("regctl"))
            .args(["--endpoints", &up.endpoints()])
            .args(tls_flags)
            .args(["ui", "--listen", "127.0.0.1:0", "--refresh-ms", "200", "--drift-after-s", "2"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?,
    );
    let stdout = console.child().and_then(|child| child.stdout.take()).ok_or_else(|| anyhow::anyhow!("stdout"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let url = line
        .strip_prefix("console on ")
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| anyhow::anyhow!("regctl ui said {line:?}"))?;
    Ok((console, url.trim_end_matches('/').to_owned()))
}

/// The pid of the process whose command line has every one of `needles`
/// as an argument (suites running at once each have their own `regctl up`).
fn pid_of(needles: &[&str]) -> anyhow::Result<Pid> {
    for entry in std::fs::read_dir("/proc")? {
        let path = entry?.path();
        let Some(pid) = path.file_name().and_then(|name| name.to_str()).and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(path.join("cmdline")) {
            let arguments: Vec<&[u8]> = cmdline.split(|byte| *byte == 0).collect();
            if needles.iter().all(|needle| arguments.contains(&needle.as_bytes())) {
                return Ok(Pid::from_raw(pid));
            }
        }
    }
    anyhow::bail!("no process has the arguments {needles:?}")
}

async fn count(page: &Page, selector: &str) -> anyhow::Result<usize> {
    let selector = serde_json::to_string(selector)?;
    Ok(page.evaluate(format!("document.querySelectorAll({selector}).length")).await?.into_value::<usize>()?)
}

async fn count_when(page: &Page, selector: &str, wanted: usize) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let found = count(page, selector).await?;
        if found == wanted {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("{selector}: {found} elements, not {wanted}, after {TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn show(page: &Page, view: &str) -> anyhow::Result<()> {
    page.evaluate(format!("location.hash = {}", serde_json::to_string(view)?)).await?;
    Ok(())
}

/// Types `text` into the tenants' search box.
async fn type_search(page: &Page, text: &str) -> anyhow::Result<()> {
    let text = serde_json::to_string(text)?;
    page.evaluate(format!(
        "(() => {{ const box = document.getElementById('search'); box.value = {text}; box.dispatchEvent(new Event('input')); return true; }})()"
    ))
    .await?;
    Ok(())
}

/// The page's fetch of `path` on its own origin: (status, body).
async fn fetch(page: &Page, path: &str) -> anyhow::Result<(u16, String)> {
    let script = format!(
        "fetch({}).then(async (r) => JSON.stringify([r.status, await r.text()]))",
        serde_json::to_string(path)?
    );
    let text = page.evaluate(script).await?.into_value::<String>()?;
    Ok(serde_json::from_str(&text)?)
}

fn contains(wanted: &'static str) -> impl Fn(&str) -> bool {
    move |text: &str| text.contains(wanted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_the_cluster_live_and_a_viewer_no_private_data() -> anyhow::Result<()> {
    let up = tokio::task::spawn_blocking(|| LocalCluster::start("console", false, &[])).await??;
    let viewer_flags = up.certs.flags(&cluster_tests::certs::operator(trust::Role::Viewer), &[])?;
    let (admin_console, url) = start_console(&up, &up.admin_flags(), &[])?;
    let (viewer_console, viewer_url) = start_console(&up, &viewer_flags, &[])?;
    let client = up.admin_client()?;
    let browser = Browser::start(&up.dir.join("chromium-profile")).await?;

    phase("cluster: three members, a leader, its term, indexes and certificate expiry");
    let page = browser.open(&format!("{url}/#cluster")).await?;
    let leader = browser::text_when(&page, "#leader", |text| text.starts_with("node "), TIMEOUT).await?;
    count_when(&page, "#members tbody tr", 3).await?;
    let states = page
        .evaluate(
            "[...document.querySelectorAll('#members td.state')].map((cell) => cell.textContent).sort().join(',')",
        )
        .await?
        .into_value::<String>()?;
    assert_eq!(states, "follower,follower,leader", "leader {leader}");
    let expiry = browser::text(&page, "#members tbody tr td.expiry").await?.unwrap_or_default();
    assert!(expiry.contains(" d)"), "a certificate's expiry date and days left: {expiry:?}");
    browser::screenshot(&page, &artefact("console-cluster.png")?).await?;

    phase("regions and shards: three regions with their nodes, tenants by home region");
    show(&page, "#regions").await?;
    count_when(&page, "#regions tbody tr", 3).await?;
    let us_east = browser::text(&page, "#regions tr[data-region=us-east]").await?.unwrap_or_default();
    assert!(us_east.contains("healthy") && us_east.contains("2 of 2"), "{us_east}");
    assert!(count(&page, "#shards tbody tr").await? >= 1);
    browser::screenshot(&page, &artefact("console-regions.png")?).await?;

    phase("tenants: the 12 example tenants, each with configVersion, home, epoch and pins");
    show(&page, "#tenants").await?;
    browser::text_when(&page, "#tenant-count", |text| text == "12 tenants", TIMEOUT).await?;
    count_when(&page, "#tenants tbody tr", 12).await?;
    let (tenants, _) = client.list_tenants(v1::Consistency::Linearizable, false).await?;
    let globex = tenants.iter().find(|tenant| tenant.id == "globex").expect("globex");
    let row = |tenant: &str, cell: &str| format!("#tenants tr[data-tenant={tenant}] td.{cell}");
    assert_eq!(browser::text(&page, &row("globex", "config-version")).await?, Some(globex.config_revision.to_string()));
    assert_eq!(browser::text(&page, &row("globex", "pins")).await?.as_deref(), Some("eu-west"));
    assert_eq!(browser::text(&page, &row("globex", "home")).await?.as_deref(), Some("eu-west"));
    browser::screenshot(&page, &artefact("console-tenants.png")?).await?;

    phase("search narrows the list on the server side");
    type_search(&page, "glo").await?;
    browser::text_when(&page, "#tenant-count", |text| text == "1 of 12 tenants", TIMEOUT).await?;
    count_when(&page, "#tenants tbody tr[data-tenant=globex]", 1).await?;
    type_search(&page, "").await?;
    browser::text_when(&page, "#tenant-count", |text| text == "12 tenants", TIMEOUT).await?;

    phase("agents: six, two per region, all caught up, no drift");
    show(&page, "#agents").await?;
    count_when(&page, "#agents tbody tr", 6).await?;
    for region in ["us-east", "eu-west", "ap-south"] {
        let heading = browser::text(&page, &format!("#agents [data-region={region}] h2")).await?;
        assert_eq!(heading, Some(format!("{region}: 2 of 2 connected")));
    }
    browser::text_when(&page, "#drift", |text| text.starts_with("No drift"), TIMEOUT).await?;
    browser::screenshot(&page, &artefact("console-agents.png")?).await?;

    phase("eu-west's sidecar stops acknowledging; a theme change lands: the rollout, then drift");
    let sidecar_dir = up.dir.join("frontend-eu-west").display().to_string();
    let sidecar = pid_of(&["frontend@eu-west", &sidecar_dir])?;
    kill(sidecar, Signal::SIGSTOP)?;
    let acme = tenants.iter().find(|tenant| tenant.id == "acme").expect("acme");
    let mut theme: serde_json::Value = serde_json::from_str(&acme.theme_json)?;
    theme["colors"]["primary"] = "#c0392b".into();
    let options =
        WriteOptions { reason: "console suite: red".to_owned(), actor: "suite".to_owned(), ..Default::default() };
    let documents = v1::Documents { theme_json: Some(theme.to_string()), ..Default::default() };
    let written = client.update_tenant("acme", documents, &options).await?;
    let agent = "#agents tr[data-agent='frontend@eu-west']";
    browser::text_when(&page, &format!("{agent} td.lag"), |lag| lag != "0", TIMEOUT).await?;
    browser::text_when(&page, "#drift", contains("frontend@eu-west"), TIMEOUT).await?;
    assert!(browser::text(&page, &format!("{agent} td.drift")).await?.unwrap_or_default().starts_with("behind since"));
    browser::screenshot(&page, &artefact("console-drift.png")?).await?;
    show(&page, "#tenants").await?;
    browser::text_when(&page, &row("acme", "config-version"), |text| text == written.revision.to_string(), TIMEOUT)
        .await?;
    assert_eq!(browser::text(&page, &row("acme", "served")).await?.as_deref(), Some("behind in eu-west"));

    phase("a fenced failover and a staged canary are in progress");
    client.fence_tenant("hooli", Some("eu-west"), &WriteOptions::default()).await?;
    let mut canary_theme: serde_json::Value = serde_json::from_str(&tenants[11].theme_json)?;
    canary_theme["colors"]["primary"] = "#123456".into();
    let canary = v1::Documents { theme_json: Some(canary_theme.to_string()), ..Default::default() };
    let staged = client.stage_canary("wonka", canary, &WriteOptions::default()).await?;
    show(&page, "#operations").await?;
    browser::text_when(&page, "#failovers li[data-tenant=hooli]", contains("us-east → eu-west, fenced"), TIMEOUT)
        .await?;
    let canaries = browser::text_when(&page, "#canaries li[data-tenant=wonka]", contains("staged"), TIMEOUT).await?;
    assert_eq!(canaries, format!("wonka: configVersion {} staged", staged.revision));
    browser::text_when(&page, "#rollout", contains("acknowledged by 5 of 6 connected agents"), TIMEOUT).await?;
    browser::text_when(&page, "#drift-tenants li[data-tenant=acme]", contains("not applied in eu-west"), TIMEOUT)
        .await?;
    browser::screenshot(&page, &artefact("console-operations.png")?).await?;

    phase("the sidecar resumes: the drift and the rollout end");
    kill(sidecar, Signal::SIGCONT)?;
    client.fence_tenant("hooli", None, &WriteOptions::default()).await?;
    client.finish_canary("wonka", false, &WriteOptions::default()).await?;
    browser::text_when(&page, "#rollout", contains("every connected agent has acknowledged"), TIMEOUT).await?;
    browser::text_when(&page, "#failovers", |text| text == "none", TIMEOUT).await?;
    browser::text_when(&page, "#canaries", |text| text == "none", TIMEOUT).await?;
    show(&page, "#agents").await?;
    browser::text_when(&page, "#drift", |text| text.starts_with("No drift"), TIMEOUT).await?;

    phase("a tenant's page: its facts and its history with what each change did");
    show(&page, "#tenants/acme").await?;
    let change = "#history li.entry .change[data-pointer='theme/colors/primary']";
    browser::text_when(&page, &format!("{change} .after"), |text| text == "\"#c0392b\"", TIMEOUT).await?;
    assert_eq!(browser::text(&page, &format!("{change} .before")).await?.as_deref(), Some("\"#0b5fff\""));
    let newest = browser::text(&page, "#history li.entry").await?.unwrap_or_default();
    assert!(newest.contains("console suite: red") && newest.contains("suite"), "{newest}");
    browser::screenshot(&page, &artefact("console-tenant.png")?).await?;
    let (status, admin_history) = fetch(&page, "/api/history/acme").await?;
    assert_eq!(status, 200);
    assert!(admin_history.contains("\"document\":\"integrations\""), "an operator sees integrations change");

    phase("a viewer's console: the same views, no integrations; no console carries a bundle");
    let viewer_page = browser.open(&format!("{viewer_url}/#tenants/acme")).await?;
    browser::text_when(&viewer_page, &format!("{change} .after"), |text| text == "\"#c0392b\"", TIMEOUT).await?;
    let (status, viewer_history) = fetch(&viewer_page, "/api/history/acme").await?;
    assert_eq!(status, 200);
    assert!(!viewer_history.contains("integrations"), "{viewer_history}");
    assert!(!viewer_history.contains("0oa1acme9xyz"), "acme's OAuth client id is private");
    for shown in [&page, &viewer_page] {
        let model = shown.evaluate("JSON.stringify(model)").await?.into_value::<String>()?;
        assert!(!model.contains("bundle") && !model.contains("0oa1acme9xyz"), "a bundle in the console's model");
    }

    phase("the console refuses another Host (DNS rebinding) and a non-loopback listen address");
    let addr = url.trim_start_matches("http://");
    let port = addr.rsplit(':').next().unwrap_or_default();
    let rebound = cluster_tests::http::get(addr, "/events", &[("Host", &format!("evil.example:{port}"))]).await?;
    assert_eq!(rebound.status, 403, "{}", rebound.text());
    assert!(rebound.text().contains("rule local-host"), "{}", rebound.text());
    let (status, _) = fetch(&page, "/api/history/Not_A_Tenant").await?;
    assert_eq!(status, 400);
    let wide = Command::new(binary("regctl"))
        .args(["--endpoints", &up.endpoints()])
        .args(up.admin_flags())
        .args(["ui", "--listen", "0.0.0.0:0"])
        .output()?;
    assert_eq!(wide.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&wide.stderr).contains("rule loopback"),
        "{}",
        String::from_utf8_lossy(&wide.stderr)
    );

    browser.close().await?;
    for console in [admin_console, viewer_console] {
        let status = console.terminate()?;
        assert!(status.success(), "regctl ui exit: {status}");
    }
    let (status, _) = tokio::task::spawn_blocking(move || up.terminate()).await??;
    assert!(status.success(), "regctl up exit: {status}");
    Ok(())
}
