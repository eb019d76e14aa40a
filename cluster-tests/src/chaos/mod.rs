//! Chaos: a three-region cluster whose every cross-region link goes through
//! a fault proxy, a workload that records what clients saw, seeded fault
//! schedules, and the checkers of DESIGN.md's guarantees 1–6.
//!
//! Sides of the network: each region's registry node (`us-east`, …), apart
//! from it the region's agents and api-nodes (`agents:us-east`, …), so a
//! fault can cut a region's agents off their own node too, and the region's
//! shard database (`db:us-east`: one database per region on one PostgreSQL
//! server, each api-node reaching every region's through its own proxy).
//! Every link between two sides, in each direction, has its own
//! [`proxy::LinkState`].
//!
//! A run: start the cluster, agents and api-nodes, start the workload, play
//! the schedule, heal everything, let agents converge, stop the workload,
//! read what the registry holds ([`checkers::Truth`]) and check. A failure
//! names the seed and the command that replays it.

pub mod checkers;
pub mod history;
pub mod netns;
pub mod proxy;
pub mod schedule;
pub mod workload;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use agent::{Agent, AgentConfig, Kind};
use proto::v1;
use registry_client::{Client, WriteOptions};

use self::checkers::split_brain::CutOff;
use self::checkers::Truth;
use self::history::History;
use self::proxy::{Fault, Network, Region};
use self::schedule::Step;
use self::workload::{Workload, WorkloadTenant};
use crate::api_nodes::{self, ApiNode};
use crate::registry_cluster::{ClusterOptions, RegistryCluster, REGIONS};

/// The agents' side of each region, in [`REGIONS`] order.
pub const AGENT_SIDES: [Region; 3] = ["agents:us-east", "agents:eu-west", "agents:ap-south"];

/// The shard database of each region, in [`REGIONS`] order.
pub const DATABASE_SIDES: [Region; 3] = ["db:us-east", "db:eu-west", "db:ap-south"];

/// One-way delays of the latency profile (us–eu 70 ms, us–ap 150 ms, eu–ap
/// 200 ms round trips), with jitter.
const LATENCY_MS: [(Region, Region, u64, u64); 3] =
    [("us-east", "eu-west", 35, 5), ("us-east", "ap-south", 75, 10), ("eu-west", "ap-south", 100, 10)];

/// Added to the api-nodes' staleness bound S before a cut-off region must
/// have stopped accepting writes: one progress interval and scheduling slack.
const READ_ONLY_MARGIN: Duration = Duration::from_millis(2_000);

/// How a run is set up.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    pub name: String,
    pub seed: u64,
    /// The latency profile on every cross-region link.
    pub latency: bool,
    /// `--watch-history-deltas-max` of the nodes (small: agents cut off for
    /// long resync from a snapshot).
    pub watch_history_deltas_max: Option<usize>,
}

/// A running chaos cluster.
pub struct ChaosCluster {
    pub options: ChaosOptions,
    pub cluster: RegistryCluster,
    pub net: Arc<Network>,
    pub history: Arc<History>,
    pub client: Arc<Client>,
    pub agents: Vec<(String, Arc<Agent>)>,
    pub api: Vec<ApiNode>,
    pub tenants: Vec<WorkloadTenant>,
    /// The regions' shard databases.
    pub database: crate::postgres::Postgres,
    workload: Option<Workload>,
    /// Regions cut off from every registry node, since when.
    cut_since: HashMap<Region, Duration>,
    cut_offs: Vec<CutOff>,
    paused: Vec<u64>,
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Report {
    pub operations: (usize, usize, usize, usize),
    /// The failed and unknown operations, each described.
    pub unsettled: Vec<String>,
    pub data_requests: usize,
    pub data_writes_accepted: usize,
    /// Per agent: distinct views seen, and snapshots (resyncs) applied.
    pub agent_views: BTreeMap<String, (usize, u64)>,
    /// Per agent: time from the heal to holding what was committed by then.
    pub convergence: Vec<(String, Option<Duration>)>,
    pub final_revision: u64,
    pub violations: Vec<String>,
}

/// The demo user's password of every workload tenant.
pub(crate) const DEMO_PASSWORD: &str = "chaos-password";

fn side_of(region: Region) -> usize {
    REGIONS.iter().position(|name| *name == region).unwrap_or(0)
}

impl ChaosCluster {
    /// Starts the cluster behind proxies, its tenants, an agent and an
    /// api-node per region, and the workload.
    pub async fn start(options: ChaosOptions) -> anyhow::Result<Self> {
        let mut cluster_options = ClusterOptions::new(&format!("chaos-{}-{}", options.name, options.seed));
        if options.latency {
            // Every Raft RPC is bounded by the heartbeat interval (openraft's
            // timeout): above the slowest round trip (eu–ap, 200 ms + jitter).
            cluster_options.heartbeat_ms = 300;
            cluster_options.election_timeout_ms_min = 1_200;
            cluster_options.election_timeout_ms_max = 2_400;
        }
        if let Some(deltas) = options.watch_history_deltas_max {
            cluster_options = cluster_options.with_args(&["--watch-history-deltas-max", &deltas.to_string()]);
        }
        let mut cluster = RegistryCluster::prepare(cluster_options)?;
        let net = Network::new();
        // Node → node routes and agent → node proxies.
        let mut agent_endpoints: Vec<Vec<String>> = vec![Vec::new(); REGIONS.len()];
        for (from, region) in REGIONS.into_iter().enumerate() {
            for to in 1..=REGIONS.len() as u64 {
                let target = cluster.node(to).grpc.clone();
                let to_region = REGIONS[(to - 1) as usize];
                if to_region != region {
                    let via = net.proxy(region, to_region, target.clone()).await?;
                    let args = cluster.node_args.entry(from as u64 + 1).or_default();
                    args.extend(["--dial".to_owned(), format!("{target}={via}")]);
                }
                let via = net.proxy(AGENT_SIDES[from], to_region, target).await?;
                // Its own region's node first.
                if to_region == region {
                    agent_endpoints[from].insert(0, via);
                } else {
                    agent_endpoints[from].push(via);
                }
            }
        }
        for id in 1..=3 {
            cluster.start_node(id)?;
        }
        cluster.wait_ready().await?;
        if options.latency {
            for (a, b, delay, jitter) in LATENCY_MS {
                for (from, to) in [(a, b), (b, a)] {
                    net.set_delay(from, to, delay, jitter);
                    net.set_delay(AGENT_SIDES[side_of(from)], to, delay, jitter);
                    net.set_delay(to, AGENT_SIDES[side_of(from)], delay, jitter);
                }
            }
        }

        let client = Arc::new(cluster.client());
        let demo_hash = api_node::auth::hash_password(DEMO_PASSWORD, b"chaos", api_node::auth::PBKDF2_ITERATIONS_MIN);
        let mut tenants = Vec::new();
        for (index, home) in REGIONS.into_iter().enumerate() {
            for n in 0..2 {
                tenants.push(WorkloadTenant { id: format!("t{index}{n}-{home}"), home, allowed: Vec::new() });
            }
        }
        tenants.push(WorkloadTenant { id: "pinned-eu".to_owned(), home: "eu-west", allowed: vec!["eu-west"] });
        for tenant in &tenants {
            let documents = workload::documents(0, tenant, &demo_hash);
            client.create_tenant(&tenant.id, documents, &WriteOptions::default()).await?;
        }

        // Each region's default shard: a database of one PostgreSQL server,
        // reached by each region's api-nodes through a proxy of their own.
        let database = crate::postgres::Postgres::start(&cluster.dir, "shards").await?;
        let mut shard_flags: Vec<Vec<String>> = vec![Vec::new(); REGIONS.len()];
        for (index, region) in REGIONS.into_iter().enumerate() {
            let name = format!("shard_{}", region.replace('-', "_"));
            database.create_shard(&name).await?;
            for (from, flags) in shard_flags.iter_mut().enumerate() {
                let target = format!("127.0.0.1:{}", database.port);
                let via = net.proxy(AGENT_SIDES[from], DATABASE_SIDES[index], target).await?;
                let endpoint = format!("postgres://{}@{via}/{name}?sslmode=disable", crate::postgres::APP);
                flags.extend(["--default-shard".to_owned(), format!("{region}={endpoint}")]);
            }
        }
        for flags in &mut shard_flags {
            flags.extend(api_nodes::shard_flags(&database));
        }

        let history = Arc::new(History::default());
        let mut agents = Vec::new();
        let mut api = Vec::new();
        crate::agents::init_test_logging();
        for (index, region) in REGIONS.into_iter().enumerate() {
            let config = AgentConfig {
                agent_id: format!("chaos-{region}"),
                region: region.to_owned(),
                kind: Kind::Api,
                endpoints: agent_endpoints[index].clone(),
                data_dir: None,
                base_domains: vec!["example.com".to_owned()],
                bundle_bytes_max: agent::limits::BUNDLE_BYTES_MAX_DEFAULT,
                cluster_id: None,
                tls: crate::agents::tls(&cluster, &format!("chaos-{region}"), Kind::Api, region)?,
            };
            agents.push((format!("agent-{region}"), Arc::new(Agent::start(config).await?)));
            let (endpoints, flags) = (agent_endpoints[index].clone(), shard_flags[index].clone());
            api.push(api_nodes::start_with_flags(&cluster, index as u64 + 1, endpoints, flags).await?);
        }

        let mut workload = Workload::new();
        workload.registry_clients(&history, &client, &tenants, &demo_hash, 3, 2, options.seed);
        for (name, agent) in &agents {
            workload.observe_agent(&history, name, agent.clone());
        }
        for (index, node) in api.iter().enumerate() {
            workload.api_node_client(&history, node.region, node.addr.clone(), &tenants, options.seed + index as u64);
        }
        history.event(format!("workload started (seed {})", options.seed));
        Ok(Self {
            options,
            cluster,
            net,
            history,
            client,
            agents,
            api,
            tenants,
            database,
            workload: Some(workload),
            cut_since: HashMap::new(),
            cut_offs: Vec::new(),
            paused: Vec::new(),
        })
    }

    /// Sets every link, both ways, between one region's sides (node, agents)
    /// and the other's node, and between each region's api-nodes and the
    /// other's database.
    fn set_between(&self, a: Region, b: Region, fault: Fault) {
        for (near, far) in [(a, b), (b, a)] {
            for side in [near, AGENT_SIDES[side_of(near)]] {
                self.net.set_fault(side, far, fault);
                self.net.set_fault(far, side, fault);
            }
            let (agents, database) = (AGENT_SIDES[side_of(near)], DATABASE_SIDES[side_of(far)]);
            self.net.set_fault(agents, database, fault);
            self.net.set_fault(database, agents, fault);
        }
    }

    fn mark_cut_off(&mut self, region: Region) {
        let now = self.history.now();
        self.cut_since.entry(region).or_insert(now);
    }

    fn end_cut_offs(&mut self) {
        let now = self.history.now();
        for (region, from) in self.cut_since.drain() {
            self.cut_offs.push(CutOff { region, from, to: now });
        }
    }

    /// Plays one step of a schedule.
    pub async fn step(&mut self, step: &Step) -> anyhow::Result<()> {
        self.history.event(format!("{step:?}"));
        match step {
            Step::Sleep(duration) => tokio::time::sleep(*duration).await,
            Step::WaitRevisions(count) => {
                let (_, from) = self.client.list_tenants(v1::Consistency::Linearizable, false).await?;
                let client = &self.client;
                crate::wait::until(
                    &format!("{count} more revisions after {from}"),
                    Duration::from_secs(30),
                    || async {
                        let (_, now) = client.list_tenants(v1::Consistency::Linearizable, false).await.ok()?;
                        (now >= from + count).then_some(())
                    },
                )
                .await?;
            }
            Step::Partition(region) => {
                for other in REGIONS.into_iter().filter(|other| other != region) {
                    self.set_between(region, other, Fault::Cut);
                }
                self.mark_cut_off(region);
            }
            Step::PartitionLeaderRegion => {
                let leader = self.cluster.leader().await?;
                let region = REGIONS[(leader - 1) as usize];
                self.history.event(format!("the leader is node {leader} in {region}"));
                Box::pin(self.step(&Step::Partition(region))).await?;
            }
            Step::Blackhole(region) => {
                for other in REGIONS.into_iter().filter(|other| other != region) {
                    self.set_between(region, other, Fault::Blackhole);
                }
                self.mark_cut_off(region);
            }
            Step::OneWay(from, to) => {
                for side in [*from, AGENT_SIDES[side_of(from)]] {
                    self.net.set_fault(side, to, Fault::Cut);
                }
                self.net.set_fault(from, AGENT_SIDES[side_of(to)], Fault::Cut);
            }
            Step::CutAgents(region) => {
                for to in REGIONS {
                    self.net.set_fault(AGENT_SIDES[side_of(region)], to, Fault::Cut);
                    self.net.set_fault(to, AGENT_SIDES[side_of(region)], Fault::Cut);
                }
                self.mark_cut_off(region);
            }
            Step::CutDatabase(region) => {
                let (agents, database) = (AGENT_SIDES[side_of(region)], DATABASE_SIDES[side_of(region)]);
                self.net.set_fault(agents, database, Fault::Cut);
                self.net.set_fault(database, agents, Fault::Cut);
            }
            Step::Link(from, to, fault) => self.net.set_fault(from, to, *fault),
            Step::DropConnections(region) => {
                for (other, database) in REGIONS.into_iter().zip(DATABASE_SIDES) {
                    self.net.drop_connections(AGENT_SIDES[side_of(region)], other);
                    self.net.drop_connections(AGENT_SIDES[side_of(region)], database);
                    if other != *region {
                        self.net.drop_connections(region, other);
                    }
                }
            }
            Step::Heal => {
                self.net.heal_all();
                self.end_cut_offs();
            }
            Step::KillLeader => {
                let leader = self.cluster.leader().await?;
                self.history.event(format!("kill -9 node {leader}"));
                self.cluster.kill(leader)?;
            }
            Step::Kill(id) => self.cluster.kill(*id)?,
            Step::RestartDead => {
                for id in 1..=3 {
                    if !self.cluster.is_running(id) {
                        self.cluster.start_node(id)?;
                    }
                }
            }
            Step::PauseLeader(duration) => {
                let leader = self.cluster.leader().await?;
                self.history.event(format!("SIGSTOP node {leader} for {duration:?}"));
                self.cluster.pause(leader)?;
                self.paused.push(leader);
                tokio::time::sleep(*duration).await;
                self.cluster.resume(leader)?;
                self.paused.retain(|id| *id != leader);
            }
            Step::RollingRestart => {
                for id in 1..=3 {
                    self.cluster.terminate(id).await?;
                    self.cluster.start_node(id)?;
                    self.cluster.wait_ready().await?;
                }
            }
            Step::Failover { from, to } => {
                let (from, to) = (from.to_string(), to.to_string());
                let staleness = crate::api_nodes::STALENESS_MS_MAX.to_string();
                let output = tokio::process::Command::from(self.cluster.regctl(&self.cluster.endpoints_from(1)))
                    .args(["failover", "--region", &from, "--to", &to])
                    .args(["--staleness-ms", &staleness, "--reason", "chaos"])
                    .output()
                    .await?;
                let said = String::from_utf8_lossy(&output.stderr);
                self.history.event(format!("regctl failover {from} -> {to}: {} {said}", output.status));
                anyhow::ensure!(output.status.success(), "regctl failover failed: {said}");
            }
        }
        Ok(())
    }

    /// Heals everything, waits for agents to converge, stops the workload,
    /// and runs every checker.
    pub async fn finish(mut self) -> anyhow::Result<(Report, Self)> {
        self.step(&Step::Heal).await?;
        for id in std::mem::take(&mut self.paused) {
            self.cluster.resume(id)?;
        }
        self.step(&Step::RestartDead).await?;
        let healed = self.history.now();
        self.cluster.wait_ready().await?;
        let workload = self.workload.take().unwrap_or_default();
        let report =
            verify(&self.history, &self.client, &self.agents, &self.tenants, &self.cut_offs, healed, workload).await?;
        Ok((report, self))
    }

    /// Marks the run as passed (its data and logs are removed).
    pub fn passed(self) {
        self.cluster.passed();
    }
}

/// Lets the workload go on a little after the heal, stops it, waits for
/// the agents to converge, reads what the registry holds and runs every
/// checker.
pub async fn verify(
    history: &Arc<History>,
    client: &Client,
    agents: &[(String, Arc<Agent>)],
    tenants: &[WorkloadTenant],
    cut_offs: &[CutOff],
    healed: Duration,
    workload: Workload,
) -> anyhow::Result<Report> {
    // Guarantee 4: from the heal, each agent must catch up with what the
    // cluster had committed by then, while the workload goes on.
    let (_, heal_revision) = client.list_tenants(v1::Consistency::Linearizable, false).await?;
    let catch_up = agents.iter().map(|(name, agent)| async move {
        let reached = agent.wait_for_revision(heal_revision, checkers::convergence::CONVERGENCE_MAX).await;
        (name.clone(), reached.then(|| history.now().saturating_sub(healed)))
    });
    let (convergence, ()) = tokio::join!(futures::future::join_all(catch_up), async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        workload.stop().await;
    });
    history.event(format!("revision {heal_revision} committed at the heal: every agent's catch-up measured"));
    let truth = truth(client).await?;
    for (name, agent) in agents {
        if !agent.wait_for_revision(truth.revision, checkers::convergence::CONVERGENCE_MAX).await {
            anyhow::bail!("agent {name} never reached the final revision {}", truth.revision);
        }
    }
    // A last view of each agent, at the final revision.
    for (name, agent) in agents {
        let mut last = Workload::new();
        last.observe_agent(history, name, agent.clone());
        last.stop().await;
    }

    let ops = history.ops();
    let data = history.data_ops();
    let observations = history.observations();
    let known = checkers::known_values(&ops, &truth);
    let allowed: BTreeMap<String, Vec<Region>> = tenants
        .iter()
        .filter(|tenant| !tenant.allowed.is_empty())
        .map(|tenant| (tenant.id.clone(), tenant.allowed.clone()))
        .collect();
    let grace = Duration::from_millis(crate::api_nodes::STALENESS_MS_MAX) + READ_ONLY_MARGIN;
    let mut violations = Vec::new();
    violations.extend(checkers::lost_writes::check(&ops, &truth));
    violations.extend(checkers::linearizable::check(&ops, &truth));
    violations.extend(checkers::agents::check(&observations, &truth, &known));
    violations.extend(checkers::convergence::check(&convergence));
    violations.extend(checkers::split_brain::check(&data, &allowed, cut_offs, grace));
    violations.extend(checkers::isolation::check(&data));
    Ok(Report {
        operations: history.counts(),
        unsettled: history.unsettled(),
        data_requests: data.len(),
        data_writes_accepted: data.iter().filter(|op| op.write && op.status == 201).count(),
        agent_views: checkers::agents::summary(&observations),
        convergence,
        final_revision: truth.revision,
        violations,
    })
}

/// What the registry holds now, read linearizably.
async fn truth(client: &Client) -> anyhow::Result<Truth> {
    let mut truth = Truth::default();
    let (tenants, revision) = client.list_tenants(v1::Consistency::Linearizable, false).await?;
    truth.revision = revision;
    for tenant in &tenants {
        let value = workload::value_of(&tenant.config_json).unwrap_or_default();
        truth.now.insert(tenant.id.clone(), (tenant.mod_revision, value));
        truth.created.insert((tenant.id.clone(), tenant.create_revision), 0);
        let history = client.history(&tenant.id, proto::limits::HISTORY_ENTRIES_MAX, false).await?;
        let mut changes: Vec<u64> = history.entries.iter().map(|entry| entry.revision).collect();
        changes.sort_unstable();
        anyhow::ensure!(
            changes.first() == Some(&tenant.create_revision),
            "{}: more changes than one history page holds; run a shorter schedule",
            tenant.id
        );
        truth.changes.insert(tenant.id.clone(), changes);
    }
    Ok(truth)
}

impl Report {
    /// The report as printed after a run.
    pub fn print(&self, name: &str, seed: u64) {
        let (ok, mismatches, failed, unknown) = self.operations;
        eprintln!("chaos {name} seed {seed}: final revision {}", self.final_revision);
        eprintln!(
            "  registry operations: {ok} ok, {mismatches} compare-and-set refused, {failed} failed, {unknown} unknown"
        );
        for unsettled in &self.unsettled {
            eprintln!("    {unsettled}");
        }
        eprintln!("  api-node requests: {} ({} writes accepted)", self.data_requests, self.data_writes_accepted);
        for (agent, (views, snapshots)) in &self.agent_views {
            let took = self.convergence.iter().find(|(name, _)| name == agent).and_then(|(_, took)| *took);
            eprintln!("  {agent}: {views} views, {snapshots} snapshot resyncs, caught up {took:?} after the heal");
        }
        for violation in &self.violations {
            eprintln!("  VIOLATION: {violation}");
        }
    }
}
