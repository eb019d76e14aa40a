//! api-node processes for the suites: one per call, in the region of a
//! registry node, its agent following that node first.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::binaries::binary;
use crate::process::ChildGuard;
use crate::registry_cluster::{RegistryCluster, REGIONS};
use crate::wait;

/// A running api-node: its HTTP and operator addresses and its region.
pub struct ApiNode {
    pub addr: String,
    /// The operator listener (`--admin-http`).
    pub admin: String,
    pub region: &'static str,
    pub process: ChildGuard,
    home: u64,
    endpoints: Vec<String>,
    /// More flags (e.g. `--default-shard`), kept for restarts.
    extra: Vec<String>,
    /// Dials the operator port with an admin's certificate.
    pub connector: trust::Connector,
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
    start_with(cluster, home, cluster.endpoints_from(home)).await
}

/// [`start`] with an explicit endpoint list (e.g. through fault proxies).
pub async fn start_with(cluster: &RegistryCluster, home: u64, endpoints: Vec<String>) -> anyhow::Result<ApiNode> {
    start_with_flags(cluster, home, endpoints, Vec::new()).await
}

/// [`start`] on PostgreSQL shards: `default_shards` as `--default-shard`
/// values (`[REGION=]ENDPOINT`), the passwords and the CA of `database`.
pub async fn start_on_postgres(
    cluster: &RegistryCluster,
    home: u64,
    default_shards: &[String],
    database: &crate::postgres::Postgres,
) -> anyhow::Result<ApiNode> {
    let mut flags = shard_flags(database);
    for shard in default_shards {
        flags.extend(["--default-shard".to_owned(), shard.clone()]);
    }
    start_with_flags(cluster, home, cluster.endpoints_from(home), flags).await
}

/// `--shard-passfile` and `--shard-ca` for shards on `database` (and, as all
/// suite servers share their passwords, on any other).
pub fn shard_flags(database: &crate::postgres::Postgres) -> Vec<String> {
    let (passfile, ca) = (database.passfile.display().to_string(), database.ca.display().to_string());
    vec!["--shard-passfile".to_owned(), passfile, "--shard-ca".to_owned(), ca]
}

/// [`start_with`], with more api-node flags.
pub async fn start_with_flags(
    cluster: &RegistryCluster,
    home: u64,
    endpoints: Vec<String>,
    extra: Vec<String>,
) -> anyhow::Result<ApiNode> {
    let region = REGIONS[(home - 1) as usize];
    let port = crate::registry_cluster::free_ports(2)?;
    let addr = format!("127.0.0.1:{port}");
    let admin = format!("127.0.0.1:{}", port + 1);
    let process = spawn(cluster, &endpoints, &extra, home, &addr, &admin)?;
    let connector = cluster.admin_connector();
    let node = ApiNode { addr, admin, region, process, home, endpoints, extra, connector };
    node.wait_fresh().await?;
    Ok(node)
}

impl ApiNode {
    /// kill -9, then start again on the same addresses and data dir, and
    /// wait until it is fresh.
    pub async fn restart_killed(&mut self, cluster: &RegistryCluster) -> anyhow::Result<()> {
        self.process.kill()?;
        self.process = spawn(cluster, &self.endpoints, &self.extra, self.home, &self.addr, &self.admin)?;
        self.wait_fresh().await
    }

    async fn wait_fresh(&self) -> anyhow::Result<()> {
        let addr = &self.addr;
        wait::until("the api-node to be ready and fresh", Duration::from_secs(30), || async {
            let ready = crate::http::get(addr, "/readyz", &[("Host", "localhost")]).await.ok()?;
            let metrics = self.admin_get("/metrics").await.ok()?;
            let fresh = String::from_utf8_lossy(&metrics.body).lines().any(|line| line == "tenantry_api_fresh 1");
            (ready.status == 200 && fresh).then_some(())
        })
        .await
    }
}

impl ApiNode {
    /// `GET path` on the operator port, as an admin.
    pub async fn admin_get(&self, path: &str) -> std::io::Result<crate::http::HttpResponse> {
        let headers = [("Host", self.admin.as_str())];
        let request = crate::http::HttpRequest::new("GET", path, &headers);
        crate::http::send(&self.connector, &self.admin, &request).await
    }
}

/// The embedded agent's id of the api-node listening on `port`.
pub fn agent_id(region: &str, port: &str) -> String {
    format!("api-{region}-{port}")
}

fn spawn(
    cluster: &RegistryCluster,
    endpoints: &[String],
    extra: &[String],
    home: u64,
    addr: &str,
    admin: &str,
) -> anyhow::Result<ChildGuard> {
    let region = REGIONS[(home - 1) as usize];
    let port = addr.rsplit(':').next().unwrap_or_default();
    let log =
        std::fs::OpenOptions::new().create(true).append(true).open(cluster.dir.join(format!("api-node-{port}.log")))?;
    let agent_id = agent_id(region, port);
    let identity = crate::certs::agent(&agent_id, trust::AgentKind::Api, region)?;
    let tls_flags = cluster.tls_flags(&identity, &["127.0.0.1"])?;
    Ok(ChildGuard::new(
        Command::new(binary("api-node"))
            .args(["--region", region, "--endpoints", &endpoints.join(","), "--http", addr])
            .args(["--admin-http", admin, "--agent-id", &agent_id])
            .args(&tls_flags)
            .args(["--base-domain", "example.com", "--base-domain", "localhost"])
            .args(["--staleness-max-ms", &STALENESS_MS_MAX.to_string()])
            .args(extra)
            .arg("--data-dir")
            .arg(cluster.dir.join(format!("api-node-{port}")))
            .arg("--session-key-file")
            .arg(cluster.dir.join("session.key"))
            .env("RUST_LOG", "info,agent=debug,h2=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?,
    ))
}
