//! A three-region registry cluster of real processes on loopback.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use proto::v1;
use registry_client::http::get_text_via;
use registry_client::Client;
use std::sync::Arc;
use trust::Role;

use crate::certs::TestCerts;

use crate::binaries::{binary, test_dir};
use crate::wait;

/// The regions of the test cluster, in node-id order.
pub const REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];

/// Knobs for a test cluster; the defaults are faster than production
/// timeouts so that elections take well under a second on loopback.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub test_name: String,
    pub heartbeat_ms: u64,
    pub election_timeout_ms_min: u64,
    pub election_timeout_ms_max: u64,
    pub snapshot_every_entries: u64,
    pub log_kept_after_snapshot_entries: u64,
    /// More `registry serve` flags, e.g. `--watch-history-deltas-max 10`.
    pub extra_args: Vec<String>,
    /// Plaintext without authentication (`--insecure`) instead of mutual
    /// TLS with the cluster's test CA.
    pub insecure: bool,
}

impl ClusterOptions {
    pub fn new(test_name: &str) -> Self {
        Self {
            test_name: test_name.to_owned(),
            heartbeat_ms: 100,
            election_timeout_ms_min: 500,
            election_timeout_ms_max: 1000,
            snapshot_every_entries: 10_000,
            log_kept_after_snapshot_entries: 1_000,
            extra_args: Vec::new(),
            insecure: false,
        }
    }

    /// Runs the cluster with `--insecure`.
    pub fn insecure(mut self) -> Self {
        self.insecure = true;
        self
    }

    /// Adds `registry serve` flags.
    pub fn with_args(mut self, args: &[&str]) -> Self {
        self.extra_args.extend(args.iter().map(|arg| (*arg).to_owned()));
        self
    }
}

/// One node: where it listens and keeps data, and its process if running.
pub struct Node {
    pub id: u64,
    pub region: &'static str,
    pub grpc: String,
    pub http: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

/// A running cluster. Dropping it kills every process; data and logs are
/// removed once the test called [`RegistryCluster::passed`], and kept (path
/// printed) otherwise.
pub struct RegistryCluster {
    pub options: ClusterOptions,
    pub dir: PathBuf,
    pub nodes: Vec<Node>,
    /// More `registry serve` flags for one node (e.g. `--dial` routes).
    pub node_args: std::collections::HashMap<u64, Vec<String>>,
    /// A command that runs a node's process, e.g. `ip netns exec NS`.
    pub node_prefix: std::collections::HashMap<u64, Vec<String>>,
    /// The cluster's CA and certificates; `None` with `--insecure`.
    pub certs: Option<TestCerts>,
    passed: bool,
}

/// A port on loopback for a test server, free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    free_ports(1)
}

/// The first of `count` consecutive ports on loopback, free a moment ago.
///
/// Not from the kernel's ephemeral range (`ip_local_port_range`, 32768 and
/// up by default): outgoing connections take their local ports there, and
/// one did take a port between the harness choosing it and the server
/// binding it ("Address already in use"). Below it, each test process has
/// its own block (by pid), so parallel test processes do not race either.
pub fn free_ports(count: u16) -> anyhow::Result<u16> {
    use std::sync::atomic::{AtomicU16, Ordering};
    const LOW: u16 = 10_000;
    const BLOCKS: u16 = 40;
    const BLOCK: u16 = 550;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let block_start = LOW + (std::process::id() % u32::from(BLOCKS)) as u16 * BLOCK;
    for _ in 0..BLOCK {
        let offset = NEXT.fetch_add(count, Ordering::Relaxed) % BLOCK;
        if offset + count > BLOCK {
            continue;
        }
        let base = block_start + offset;
        let bound: Vec<TcpListener> =
            (0..count).filter_map(|index| TcpListener::bind(("127.0.0.1", base + index)).ok()).collect();
        if bound.len() == usize::from(count) {
            return Ok(base);
        }
    }
    anyhow::bail!("no {count} free consecutive ports in {block_start}..{}", block_start + BLOCK)
}

impl Node {
    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl RegistryCluster {
    /// Starts three nodes (us-east, eu-west, ap-south) and waits until every
    /// one is ready.
    pub async fn start(options: ClusterOptions) -> anyhow::Result<Self> {
        let mut cluster = Self::prepare(options)?;
        for id in 1..=3 {
            cluster.start_node(id)?;
        }
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    /// The three nodes' ports, data dirs and logs, none started (e.g. to
    /// restore a backup into a data dir first).
    pub fn prepare(options: ClusterOptions) -> anyhow::Result<Self> {
        let dir = test_dir(&options.test_name);
        std::fs::create_dir_all(&dir)?;
        let mut nodes = Vec::new();
        for (index, region) in REGIONS.into_iter().enumerate() {
            let id = index as u64 + 1;
            nodes.push(Node {
                id,
                region,
                grpc: format!("127.0.0.1:{}", free_port()?),
                http: format!("127.0.0.1:{}", free_port()?),
                data_dir: dir.join(format!("node-{id}")),
                log: dir.join(format!("node-{id}.log")),
                child: None,
            });
        }
        let certs = if options.insecure { None } else { Some(TestCerts::new(&dir.join("certs"))?) };
        Ok(Self {
            options,
            dir,
            nodes,
            node_args: Default::default(),
            node_prefix: Default::default(),
            certs,
            passed: false,
        })
    }

    /// Adds node `id` in `region` to the harness (ports, data dir, log), not
    /// started and not a member: it joins through a membership change.
    pub fn add_node(&mut self, id: u64, region: &'static str) -> anyhow::Result<&Node> {
        anyhow::ensure!(self.nodes.iter().all(|node| node.id != id), "node {id} exists");
        self.nodes.push(Node {
            id,
            region,
            grpc: format!("127.0.0.1:{}", free_port()?),
            http: format!("127.0.0.1:{}", free_port()?),
            data_dir: self.dir.join(format!("node-{id}")),
            log: self.dir.join(format!("node-{id}.log")),
            child: None,
        });
        Ok(self.node(id))
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Starts (or restarts, with the same data directory) node `id`.
    pub fn start_node(&mut self, id: u64) -> anyhow::Result<()> {
        let options = self.options.clone();
        let node_args = self.node_args.get(&id).cloned().unwrap_or_default();
        let prefix = self.node_prefix.get(&id).cloned().unwrap_or_default();
        let peers: Vec<String> =
            self.nodes.iter().map(|node| format!("{}={}@{}", node.id, node.region, node.grpc)).collect();
        let tls_flags = {
            let node = self.node(id);
            let host = node.grpc.rsplit_once(':').map_or("127.0.0.1", |(host, _)| host);
            self.tls_flags(&crate::certs::node(id, node.region)?, &[host, "127.0.0.1"])?
        };
        let node = self.node_mut(id);
        anyhow::ensure!(node.child.is_none(), "node {id} is already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log)?;
        let mut command = match prefix.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary("registry"));
                command
            }
            None => Command::new(binary("registry")),
        };
        command
            .arg("serve")
            .args(["--id", &id.to_string(), "--region", node.region, "--grpc", &node.grpc, "--http", &node.http])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--heartbeat-ms", &options.heartbeat_ms.to_string()])
            .args(["--election-timeout-ms-min", &options.election_timeout_ms_min.to_string()])
            .args(["--election-timeout-ms-max", &options.election_timeout_ms_max.to_string()])
            .args(["--snapshot-every-entries", &options.snapshot_every_entries.to_string()])
            .args(["--log-kept-after-snapshot-entries", &options.log_kept_after_snapshot_entries.to_string()]);
        for peer in &peers {
            command.args(["--peer", peer]);
        }
        command.args(&options.extra_args).args(&node_args).args(&tls_flags);
        command.env("RUST_LOG", "info,openraft=info,raft_log=warn,chunked_wal=warn,h2=warn,tower=warn,hyper=warn");
        command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        node.child = Some(command.spawn()?);
        Ok(())
    }

    /// kill -9: no shutdown, no flush.
    pub fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.node_mut(id);
        let mut child = node.child.take().ok_or_else(|| anyhow::anyhow!("node {id} is not running"))?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// SIGTERM and wait for a graceful exit (bounded); returns its status.
    pub async fn terminate(&mut self, id: u64) -> anyhow::Result<std::process::ExitStatus> {
        let node = self.node_mut(id);
        let mut child = node.child.take().ok_or_else(|| anyhow::anyhow!("node {id} is not running"))?;
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM)?;
        let exited = wait::until("graceful exit after SIGTERM", Duration::from_secs(20), || {
            let status = child.try_wait().ok().flatten();
            async move { status }
        })
        .await;
        match exited {
            Ok(status) => Ok(status),
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(error)
            }
        }
    }

    /// SIGSTOP: the process stays, but does nothing (a hung node).
    pub fn pause(&self, id: u64) -> anyhow::Result<()> {
        self.signal(id, Signal::SIGSTOP)
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&self, id: u64) -> anyhow::Result<()> {
        self.signal(id, Signal::SIGCONT)
    }

    fn signal(&self, id: u64, signal: Signal) -> anyhow::Result<()> {
        let child = self.node(id).child.as_ref().ok_or_else(|| anyhow::anyhow!("node {id} is not running"))?;
        kill(Pid::from_raw(child.id() as i32), signal)?;
        Ok(())
    }

    /// The gRPC endpoints with node `first` first, then the others in order:
    /// how an agent of `first`'s region lists them.
    pub fn endpoints_from(&self, first: u64) -> Vec<String> {
        let mut endpoints = vec![self.node(first).grpc.clone()];
        endpoints.extend(self.nodes.iter().filter(|node| node.id != first).map(|node| node.grpc.clone()));
        endpoints
    }

    /// The linearizable list of live tenants and the revision it was read at.
    pub async fn tenants(&self) -> anyhow::Result<(Vec<v1::Tenant>, u64)> {
        Ok(self.client().list_tenants(v1::Consistency::Linearizable, false).await?)
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.node(id).child.is_some()
    }

    /// Waits until every running node answers `/readyz` with 200.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        for node in self.nodes.iter().filter(|node| node.child.is_some()) {
            let what = format!("node {} ready (log {})", node.id, node.log.display());
            wait::until(&what, Duration::from_secs(30), || async {
                matches!(self.http_get(node.id, "/readyz").await, Ok((200, _))).then_some(())
            })
            .await?;
        }
        Ok(())
    }

    /// A client over every node, as an admin.
    pub fn client(&self) -> Client {
        self.client_as(Role::Admin)
    }

    /// A client over every node with an operator certificate of `role`.
    pub fn client_as(&self, role: Role) -> Client {
        let endpoints: Vec<_> = self.nodes.iter().map(|node| node.grpc.clone()).collect();
        Client::new(&endpoints, self.operator_tls(role)).unwrap_or_else(|error| panic!("client: {error}"))
    }

    /// A client that talks to node `id` only, as an admin.
    pub fn node_client(&self, id: u64) -> Client {
        Client::new(&[self.node(id).grpc.clone()], self.operator_tls(Role::Admin))
            .unwrap_or_else(|error| panic!("client: {error}"))
    }

    /// An operator certificate of `role` (`None` with `--insecure`).
    pub fn operator_tls(&self, role: Role) -> Option<Arc<trust::Tls>> {
        self.certs.as_ref().map(|certs| certs.operator(role).unwrap_or_else(|error| panic!("certificate: {error}")))
    }

    /// `identity`'s TLS (`None` with `--insecure`).
    pub fn tls(&self, identity: &trust::Identity, hosts: &[&str]) -> anyhow::Result<Option<Arc<trust::Tls>>> {
        self.certs.as_ref().map(|certs| certs.tls(identity, hosts)).transpose()
    }

    /// The TLS flags of a child process of `identity` (`--insecure` without TLS).
    pub fn tls_flags(&self, identity: &trust::Identity, hosts: &[&str]) -> anyhow::Result<Vec<String>> {
        match &self.certs {
            Some(certs) => certs.flags(identity, hosts),
            None => Ok(vec!["--insecure".to_owned()]),
        }
    }

    /// A connector for HTTP ports that need an admin's certificate (a
    /// registry node's, an api-node's operator port).
    pub fn admin_connector(&self) -> trust::Connector {
        trust::Connector::new(self.operator_tls(Role::Admin), false)
    }

    /// `regctl --endpoints ENDPOINTS` with an admin's certificate (or
    /// `--insecure`); add the verb and its arguments.
    pub fn regctl(&self, endpoints: &[String]) -> Command {
        let mut command = Command::new(binary("regctl"));
        command.arg("--endpoints").arg(endpoints.join(","));
        let flags = self.tls_flags(&crate::certs::operator(Role::Admin), &[]);
        command.args(flags.unwrap_or_else(|error| panic!("certificate: {error}")));
        command
    }

    /// `GET path` on node `id`'s HTTP port, as an admin.
    pub async fn http_get(&self, id: u64, path: &str) -> std::io::Result<(u16, String)> {
        get_text_via(&self.admin_connector(), &self.node(id).http, path, Duration::from_secs(5)).await
    }

    /// Node `id`'s own view of the cluster.
    pub async fn status(&self, id: u64) -> anyhow::Result<v1::ClusterStatusResponse> {
        let mut statuses = self.node_client(id).cluster_status().await;
        let (_, status) = statuses.pop().ok_or_else(|| anyhow::anyhow!("no status"))?;
        Ok(status?)
    }

    /// The leader as the running nodes agree on it.
    pub async fn leader(&self) -> anyhow::Result<u64> {
        wait::until("an elected leader", Duration::from_secs(30), || async {
            for node in self.nodes.iter().filter(|node| node.child.is_some()) {
                if let Ok(status) = self.status(node.id).await {
                    if status.state == "leader" {
                        return Some(status.node_id);
                    }
                }
            }
            None
        })
        .await
    }

    /// Waits until node `id` has applied at least `revision`.
    pub async fn wait_applied(&self, id: u64, revision: u64) -> anyhow::Result<()> {
        let what = format!("node {id} to apply revision {revision}");
        wait::until(&what, Duration::from_secs(30), || async {
            let status = self.status(id).await.ok()?;
            (status.applied_index >= revision).then_some(())
        })
        .await
    }
}

impl RegistryCluster {
    /// Marks the test as passed: its data and logs are removed on drop.
    pub fn passed(mut self) {
        self.passed = true;
    }
}

impl Drop for RegistryCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if self.passed {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("cluster data and logs kept in {}", self.dir.display());
        }
    }
}
