//! The network-namespace tier: each region's registry node in its own
//! network namespace, joined by veth pairs to a bridge, and partitions made
//! at the network layer (blackhole routes in the namespaces), with no proxy
//! in the path. Needs root and `ip` (iproute2); [`NetnsLab::create`] says
//! why not otherwise, and the scenario is skipped with that reason.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use agent::Kind;
use registry_client::WriteOptions;

use super::history::History;
use super::workload::{self, Workload, WorkloadTenant};
use super::{verify, Report, DEMO_PASSWORD};
use crate::registry_cluster::{ClusterOptions, RegistryCluster, REGIONS};

/// The namespaces, their addresses and the bridge; removed on drop.
pub struct NetnsLab {
    /// Per region (node id - 1): the namespace's name and address.
    pub namespaces: Vec<(String, String)>,
    bridge: String,
    veths: Vec<String>,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip").args(args).output()?;
    anyhow::ensure!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

impl NetnsLab {
    /// Creates `count` namespaces on a private /24, or says why it cannot.
    pub fn create(count: usize) -> Result<Self, String> {
        if !nix::unistd::Uid::effective().is_root() {
            return Err("not running as root: network namespaces need CAP_SYS_ADMIN".to_owned());
        }
        if Command::new("ip").arg("-V").output().is_err() {
            return Err("`ip` (iproute2) is not installed".to_owned());
        }
        let tag = std::process::id() % 10_000;
        // A /24 per test process, so parallel runs do not collide.
        let subnet = format!("10.{}.{}", 100 + tag % 100, tag / 100 % 250);
        let mut lab = Self { namespaces: Vec::new(), bridge: format!("tnbr{tag}"), veths: Vec::new() };
        lab.build(count, tag, &subnet).map_err(|error| format!("cannot build the namespaces: {error:#}"))?;
        Ok(lab)
    }

    fn build(&mut self, count: usize, tag: u32, subnet: &str) -> anyhow::Result<()> {
        ip(&["link", "add", &self.bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{subnet}.254/24"), "dev", &self.bridge])?;
        ip(&["link", "set", &self.bridge, "up"])?;
        for index in 0..count {
            let namespace = format!("tn{tag}-{index}");
            let (outside, inside) = (format!("tv{tag}o{index}"), format!("tv{tag}i{index}"));
            let address = format!("{subnet}.{}", index + 1);
            ip(&["netns", "add", &namespace])?;
            self.namespaces.push((namespace.clone(), address.clone()));
            ip(&["link", "add", &outside, "type", "veth", "peer", "name", &inside])?;
            self.veths.push(outside.clone());
            ip(&["link", "set", &inside, "netns", &namespace])?;
            ip(&["link", "set", &outside, "master", &self.bridge])?;
            ip(&["link", "set", &outside, "up"])?;
            ip(&["-n", &namespace, "addr", "add", &format!("{address}/24"), "dev", &inside])?;
            ip(&["-n", &namespace, "link", "set", &inside, "up"])?;
            ip(&["-n", &namespace, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// Cuts (or restores) the network between namespaces `a` and `b`, both ways.
    pub fn set_cut(&self, a: usize, b: usize, cut: bool) -> anyhow::Result<()> {
        let verb = if cut { "add" } else { "del" };
        for (from, to) in [(a, b), (b, a)] {
            let target = format!("{}/32", self.namespaces[to].1);
            ip(&["-n", &self.namespaces[from].0, "route", verb, "blackhole", &target])?;
        }
        Ok(())
    }
}

impl Drop for NetnsLab {
    fn drop(&mut self) {
        for (namespace, _) in &self.namespaces {
            let _ = ip(&["netns", "del", namespace]);
        }
        for veth in &self.veths {
            let _ = ip(&["link", "del", veth]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

/// The network-namespace scenario: each region's node in its own namespace;
/// the ap-south node, then the leader's, cut off at the network layer (no
/// proxy in the path) while the workload runs. `Err(reason)` inside `Ok`:
/// skipped (not root, no `ip`).
pub async fn run(seed: u64) -> anyhow::Result<Result<Report, String>> {
    let lab = match NetnsLab::create(REGIONS.len()) {
        Ok(lab) => lab,
        Err(reason) => return Ok(Err(reason)),
    };
    let mut cluster = RegistryCluster::prepare(ClusterOptions::new(&format!("chaos-netns-{seed}")))?;
    for (index, (namespace, address)) in lab.namespaces.iter().enumerate() {
        let id = index as u64 + 1;
        let node = &mut cluster.nodes[index];
        node.grpc = format!("{address}:7100");
        node.http = format!("{address}:7200");
        cluster.node_prefix.insert(id, ["ip", "netns", "exec", namespace].map(str::to_owned).to_vec());
    }
    for id in 1..=3 {
        cluster.start_node(id)?;
    }
    cluster.wait_ready().await?;
    let client = Arc::new(cluster.client());
    let demo_hash = api_node::auth::hash_password(DEMO_PASSWORD, b"chaos", api_node::auth::PBKDF2_ITERATIONS_MIN);
    let tenants: Vec<WorkloadTenant> = REGIONS
        .into_iter()
        .map(|home| WorkloadTenant { id: format!("netns-{home}"), home, allowed: Vec::new() })
        .collect();
    for tenant in &tenants {
        client.create_tenant(&tenant.id, workload::documents(0, tenant, &demo_hash), &WriteOptions::default()).await?;
    }
    let history = Arc::new(History::default());
    let mut agents = Vec::new();
    for (index, region) in REGIONS.into_iter().enumerate() {
        let agent =
            crate::agents::start(&cluster, &format!("netns-{region}"), index as u64 + 1, Kind::Frontend, None).await?;
        agents.push((format!("agent-{region}"), Arc::new(agent)));
    }
    let mut load = Workload::new();
    load.registry_clients(&history, &client, &tenants, &demo_hash, 3, 2, seed);
    for (name, agent) in &agents {
        load.observe_agent(&history, name, agent.clone());
    }
    let cut = |a: usize, b: usize, on: bool| lab.set_cut(a, b, on);
    tokio::time::sleep(Duration::from_secs(1)).await;
    history.event("netns: ap-south cut off from us-east and eu-west (blackhole routes)");
    cut(2, 0, true)?;
    cut(2, 1, true)?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    cut(2, 0, false)?;
    cut(2, 1, false)?;
    history.event("netns: healed");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let leader = cluster.leader().await? as usize - 1;
    history.event(format!("netns: the leader's namespace ({}) cut off", REGIONS[leader]));
    let others: Vec<usize> = (0..3).filter(|other| *other != leader).collect();
    for other in &others {
        cut(leader, *other, true)?;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    for other in &others {
        cut(leader, *other, false)?;
    }
    let healed = history.now();
    history.event("netns: healed");
    cluster.wait_ready().await?;
    let report = verify(&history, &client, &agents, &tenants, &[], healed, load).await?;
    if report.violations.is_empty() {
        cluster.passed();
    }
    drop(lab);
    Ok(Ok(report))
}
