//! `--log-format json` on every binary: a registry node, an api-node, a
//! frontend sidecar and regctl, run for real, write one JSON object per
//! line (timestamp, level, target, fields with the message) and nothing
//! else; an unknown format is refused naming the flag.

use std::process::Command;
use std::time::Duration;

use registry_client::WriteOptions;

use super::phase;
use cluster_tests::binaries::binary;
use cluster_tests::{api_nodes, ClusterOptions, RegistryCluster};

const JSON: [&str; 2] = ["--log-format", "json"];

/// Checks that `log` holds at least one line and that every line is a log
/// record as JSON; the records.
fn records(what: &str, log: &str) -> Vec<serde_json::Value> {
    let lines: Vec<&str> = log.lines().filter(|line| !line.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "{what}: no log lines");
    lines
        .iter()
        .map(|line| {
            let record: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|error| panic!("{what}: not JSON ({error}): {line}"));
            for key in ["timestamp", "level", "target"] {
                assert!(record[key].is_string(), "{what}: no {key}: {line}");
            }
            assert!(record["fields"].is_object(), "{what}: no fields: {line}");
            record
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_binary_writes_json_lines_when_asked() -> anyhow::Result<()> {
    let options = ClusterOptions { extra_args: JSON.map(str::to_owned).to_vec(), ..ClusterOptions::new("log-format") };
    let cluster = RegistryCluster::start(options).await?;
    cluster.client().create_tenant("acme", super::documents(1), &WriteOptions::default()).await?;

    phase("an api-node and a sidecar with --log-format json");
    let api =
        api_nodes::start_with_flags(&cluster, 1, cluster.endpoints_from(1), JSON.map(str::to_owned).to_vec()).await?;
    let sidecar_log = cluster.dir.join("sidecar.log");
    let sidecar = cluster_tests::agents::start_sidecar(&cluster, JSON)?;
    cluster_tests::wait::until("the sidecar to log its session", Duration::from_secs(20), || async {
        std::fs::read_to_string(&sidecar_log).ok().filter(|log| log.contains("\"level\"")).map(drop)
    })
    .await?;
    sidecar.terminate()?;

    phase("regctl with --log-format json (an unreachable endpoint first, so it logs the retry)");
    let endpoints = [vec!["127.0.0.1:1".to_owned()], cluster.endpoints_from(1)].concat();
    let listed = cluster.regctl(&endpoints).args(JSON).args(["tenant", "list"]).env("REGCTL_LOG", "debug").output()?;
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let regctl = records("regctl", &String::from_utf8_lossy(&listed.stderr));
    assert!(regctl.iter().any(|record| record["fields"]["message"] == "retrying at another endpoint"), "{regctl:?}");

    phase("every line of every log is a JSON record");
    let registry = records("registry node 1", &std::fs::read_to_string(cluster.dir.join("node-1.log"))?);
    assert!(registry.iter().any(|record| record["level"] == "INFO"), "{registry:?}");
    let port = api.addr.rsplit(':').next().unwrap_or_default();
    records("api-node", &std::fs::read_to_string(cluster.dir.join(format!("api-node-{port}.log")))?);
    records("sidecar", &std::fs::read_to_string(&sidecar_log)?);

    phase("an unknown format is refused, naming the flag and the rule");
    let refused = Command::new(binary("registry")).args(["--log-format", "xml", "serve"]).output()?;
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--log-format") && stderr.contains("the log format is text or json"), "{stderr}");

    drop(api);
    cluster.passed();
    Ok(())
}
