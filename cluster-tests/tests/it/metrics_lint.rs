//! Every `/metrics` passes `promtool check metrics` (Debian's `prometheus`,
//! installed by this test when missing): a registry node's, an api-node's
//! operator port's and a sidecar's, scraped from a running cluster, in the
//! classic text format they answer when not asked for OpenMetrics; asked
//! for it, as Prometheus asks, they answer OpenMetrics. The alert rules
//! (`deploy/prometheus/`) and the dashboard (`deploy/grafana/`) name only
//! metrics these endpoints expose.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use registry_client::WriteOptions;

use super::phase;
use cluster_tests::{api_nodes, ClusterOptions, RegistryCluster};

const PROMTOOL: &str = "/usr/bin/promtool";

/// What `promtool check metrics` says of `text`: Ok if it finds nothing.
fn promtool_check(promtool: &std::path::Path, text: &str) -> anyhow::Result<Result<(), String>> {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().ok_or_else(|| anyhow::anyhow!("no stdin"))?.write_all(text.as_bytes())?;
    let output = child.wait_with_output()?;
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Ok(if output.status.success() && said.trim().is_empty() { Ok(()) } else { Err(said) })
}

/// The sample names of an exposition (histograms' `_bucket`, `_sum` and
/// `_count` included).
fn metric_names(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// Every `tenantry_…` name in `text`.
fn referenced(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("tenantry_") {
        let name: String = rest[at..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metrics_endpoint_passes_promtool_check_metrics() -> anyhow::Result<()> {
    let promtool = tokio::task::spawn_blocking(|| cluster_tests::debian::ensure(PROMTOOL, "prometheus")).await??;
    let cluster = RegistryCluster::start(ClusterOptions::new("metrics-lint")).await?;
    cluster.client().create_tenant("acme", super::documents(1), &WriteOptions::default()).await?;
    let api = api_nodes::start(&cluster, 1).await?;
    let http = format!("127.0.0.1:{}", cluster_tests::registry_cluster::free_port()?);
    let _sidecar = cluster_tests::agents::start_sidecar(&cluster, ["--http", &http])?;
    let sidecar = cluster_tests::wait::until("the sidecar's metrics", Duration::from_secs(20), || async {
        let (code, text) = cluster_tests::http::get_text(&http, "/metrics", Duration::from_secs(2)).await.ok()?;
        (code == 200 && text.contains("tenantry_agent_revision")).then_some(text)
    })
    .await?;

    phase("promtool check metrics on each");
    let (code, registry) = cluster.http_get(1, "/metrics").await?;
    assert_eq!(code, 200);
    let api_metrics = api.admin_get("/metrics").await?;
    assert_eq!(api_metrics.status, 200);
    let mut failed = Vec::new();
    let mut exposed = std::collections::BTreeSet::new();
    for (what, text) in [("registry node", registry), ("api-node", api_metrics.text()), ("sidecar", sidecar)] {
        if let Err(said) = promtool_check(&promtool, &text)? {
            failed.push(format!("{what}:\n{said}"));
        }
        exposed.extend(metric_names(&text));
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));

    phase("the alert rules and the dashboard name only metrics that are exposed");
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    for file in ["prometheus/tenantry.rules.yml", "grafana/tenantry.json"] {
        let text = std::fs::read_to_string(deploy.join(file))?;
        let unknown: Vec<String> = referenced(&text).into_iter().filter(|name| !exposed.contains(name)).collect();
        assert!(unknown.is_empty(), "{file} names metrics no endpoint exposes: {unknown:?}");
    }

    phase("a scraper that asks for OpenMetrics (as Prometheus does) gets it");
    let node = &cluster.node(1).http;
    let headers = [("Host", node.as_str()), ("Accept", "application/openmetrics-text;version=1.0.0,text/plain;q=0.5")];
    let request = cluster_tests::http::HttpRequest::new("GET", "/metrics", &headers);
    let open = cluster_tests::http::send(&cluster.admin_connector(), node, &request).await?;
    assert_eq!(open.header("content-type"), Some(plumbing::metrics::CONTENT_TYPE));
    assert!(open.text().ends_with("# EOF\n"), "{}", open.text());

    drop(api);
    cluster.passed();
    Ok(())
}
