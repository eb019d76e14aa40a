//! api-node processes for the suites: one per call, in the region of a
//! registry node, its agent following that node first.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::binaries::binary;
use crate::process::ChildGuard;
use crate::registry_cluster::{RegistryCluster, REGIONS};
use crate::wait;

/// A running api-node: its HTTP address and region.
pub struct ApiNode {
    pub addr: String,
    pub region: &'static str,
    pub process: ChildGuard,
}

/// The staleness bound `S` of test api-nodes, in milliseconds: the
/// product's default, with room for a loaded test machine.
pub const STALENESS_MS_MAX: u64 = 5_000;

/// Starts an api-node in node `home`'s region, resolving `{tenant}.example.com`
/// and `{tenant}.localhost`, with the cluster's shared session key and a
/// staleness bound of [`STALENESS_MS_MAX`], and waits until it holds a view
/// that the registry has proven current (it accepts writes only then; the
/// proof comes with the stream's first Progress it can vouch for, up to a
/// progress interval after it connects).
pub async fn start(cluster: &RegistryCluster, home: u64) -> anyhow::Result<ApiNode> {
    let region = REGIONS[(home - 1) as usize];
    let port = crate::registry_cluster::free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(cluster.dir.join(format!("api-node-{port}.log")))?;
    let process = ChildGuard::new(
        Command::new(binary("api-node"))
            .args(["--region", region, "--endpoints", &cluster.endpoints_from(home).join(","), "--http", &addr])
            .args(["--base-domain", "example.com", "--base-domain", "localhost"])
            .args(["--staleness-max-ms", &STALENESS_MS_MAX.to_string()])
            .arg("--data-dir")
            .arg(cluster.dir.join(format!("api-node-{port}")))
            .arg("--session-key-file")
            .arg(cluster.dir.join("session.key"))
            .env("RUST_LOG", "info,agent=debug,sled=warn,h2=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?,
    );
    wait::until("the api-node to be ready and fresh", Duration::from_secs(30), || async {
        let ready = crate::http::get(&addr, "/readyz", &[("Host", "localhost")]).await.ok()?;
        let metrics = crate::http::get(&addr, "/metrics", &[("Host", "localhost")]).await.ok()?;
        let fresh = String::from_utf8_lossy(&metrics.body).lines().any(|line| line == "tenantry_api_fresh 1");
        (ready.status == 200 && fresh).then_some(())
    })
    .await?;
    Ok(ApiNode { addr, region, process })
}
