//! What the console shows, built from one round of reads of the cluster
//! ([`Reads`]) and from when each drift was first seen ([`DriftClock`]).
//! Pure functions of those, so the rules (who is the leader, who drifts,
//! what is in progress) are unit-tested without a cluster.
//!
//! Nothing here carries a bundle: a tenant row holds versions and
//! placement only, so the page cannot show private data whatever the
//! operator's role.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use proto::v1;
use registry_client::Error;
use serde::Serialize;

/// One round of reads: each endpoint's status and agent list, the
/// topology and every tenant.
pub(super) struct Reads {
    pub statuses: Vec<(String, Result<v1::ClusterStatusResponse, Error>)>,
    pub agents: Vec<(String, Result<v1::ListAgentsResponse, Error>)>,
    pub topology: Result<v1::TopologyResponse, Error>,
    pub tenants: Result<(Vec<v1::Tenant>, u64), Error>,
}

#[derive(Debug, Serialize)]
pub(super) struct Model {
    pub at_unix_ms: u64,
    pub cluster: Cluster,
    pub regions: Vec<RegionRow>,
    pub shards: Vec<ShardRow>,
    /// Sent per page, filtered by its search (see `super::Published`).
    #[serde(skip)]
    pub tenants: Vec<TenantRow>,
    pub agents: Vec<AgentRow>,
    pub drift: Drift,
    pub operations: Operations,
    /// What could not be read this round (an endpoint down, a refusal).
    pub problems: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub(super) struct Cluster {
    pub cluster_id: String,
    pub leader: Option<u64>,
    pub term: u64,
    /// The newest applied revision any node reported.
    pub revision: u64,
    pub members: Vec<MemberRow>,
}

#[derive(Debug, Serialize)]
pub(super) struct MemberRow {
    pub id: u64,
    pub region: String,
    pub addr: String,
    pub voter: bool,
    /// Its own view: leader, follower, learner…, or `unreachable`.
    pub state: String,
    pub term: u64,
    pub last_log_index: u64,
    pub committed_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
    pub purged_index: u64,
    /// What the leader knows it has, and how far that is behind the
    /// leader's log.
    pub matched_index: Option<u64>,
    pub behind: Option<u64>,
    /// Its TLS certificate's expiry (unix seconds; 0: --insecure or unknown).
    pub cert_not_after_unix_s: i64,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct RegionRow {
    pub region: String,
    pub status: String,
    /// Registry nodes in the region.
    pub nodes: Vec<u64>,
    /// Live tenants whose home it is.
    pub home_tenants: usize,
    pub agents_connected: usize,
    pub agents: usize,
}

#[derive(Debug, Serialize)]
pub(super) struct ShardRow {
    /// Empty: the region's default shard (tenants with no routing entry).
    pub id: String,
    pub region: String,
    pub endpoint: String,
    pub state: String,
    pub replica_endpoint: String,
    pub tenants: usize,
}

#[derive(Debug, Serialize)]
pub(super) struct TenantRow {
    pub id: String,
    pub status: String,
    pub config_version: u64,
    pub mod_revision: u64,
    pub home: String,
    pub dr: String,
    pub epoch: u64,
    /// Empty: any region.
    pub pins: Vec<String>,
    pub failing_over_to: String,
    pub shard: String,
    /// The configVersion of its staged canary.
    pub canary: Option<u64>,
    pub moving: Option<MoveRow>,
    /// Per region with agents: `current`, `behind` (some agent there has not
    /// applied this configVersion) or `not served` (pinned elsewhere).
    pub served: BTreeMap<String, &'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct MoveRow {
    pub tenant: String,
    pub from: String,
    pub to: String,
    pub step: String,
}

#[derive(Debug, Serialize)]
pub(super) struct AgentRow {
    pub agent_id: String,
    pub region: String,
    pub kind: &'static str,
    pub node_id: u64,
    pub connected: bool,
    pub acked_revision: u64,
    /// Revisions behind the cluster.
    pub lag: u64,
    pub last_ack_unix_ms: u64,
    pub since_unix_ms: u64,
    pub last_nack: Option<NackRow>,
    /// Since when the console has seen it behind.
    pub behind_since_unix_ms: Option<u64>,
    /// Behind for longer than the drift bound.
    pub drifting: bool,
}

#[derive(Debug, Serialize)]
pub(super) struct NackRow {
    pub tenant: String,
    pub revision: u64,
    pub reason: String,
    pub at_unix_ms: u64,
}

#[derive(Debug, Default, Serialize)]
pub(super) struct Drift {
    pub bound_ms: u64,
    /// Agents behind the cluster for longer than the bound.
    pub agents: Vec<String>,
    /// Tenants served at different versions in different regions for
    /// longer than the bound.
    pub tenants: Vec<TenantDrift>,
}

#[derive(Debug, Serialize)]
pub(super) struct TenantDrift {
    pub tenant: String,
    pub config_version: u64,
    pub since_unix_ms: u64,
    pub behind_in: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub(super) struct Operations {
    /// Changes not yet acknowledged by every connected agent: a publish,
    /// rollback or promote on its way out.
    pub rollout: Option<Rollout>,
    /// Tenants fenced for a failover that has not committed.
    pub failovers: Vec<FailoverRow>,
    pub moves: Vec<MoveRow>,
    /// Tenants with a staged canary, and its configVersion.
    pub canaries: Vec<(String, u64)>,
}

#[derive(Debug, Serialize)]
pub(super) struct Rollout {
    pub revision: u64,
    /// Connected agents that acknowledged it, of all connected.
    pub acked: usize,
    pub connected: usize,
    /// Per region: (acked, connected).
    pub regions: BTreeMap<String, (usize, usize)>,
    /// Tenants whose configVersion some connected agent has not applied,
    /// newest first (at most [`PENDING_SHOWN_MAX`]).
    pub pending: Vec<(String, u64)>,
    pub pending_total: usize,
}

#[derive(Debug, Serialize)]
pub(super) struct FailoverRow {
    pub tenant: String,
    pub from: String,
    pub to: String,
    pub epoch: u64,
}

/// The most pending tenants a rollout lists.
pub(super) const PENDING_SHOWN_MAX: usize = 50;

/// When each drift was first seen, kept between rounds: an agent behind
/// the cluster, a tenant's (id, configVersion) served unevenly. A drift
/// that ends is forgotten. The console can only count from when it first
/// looked, so a drift older than the console shows its start as then.
#[derive(Debug, Default)]
pub(super) struct DriftClock {
    agents: HashMap<String, u64>,
    tenants: HashMap<(String, u64), u64>,
}

/// Keeps in `seen` exactly the keys in `now`, each with when it was first seen.
fn observe<K: Eq + std::hash::Hash>(seen: &mut HashMap<K, u64>, now: HashSet<K>, now_ms: u64) {
    seen.retain(|key, _| now.contains(key));
    for key in now {
        seen.entry(key).or_insert(now_ms);
    }
}

fn status_name(status: i32) -> String {
    match v1::RegionStatus::try_from(status) {
        Ok(v1::RegionStatus::Healthy) => "healthy",
        Ok(v1::RegionStatus::Degraded) => "degraded",
        Ok(v1::RegionStatus::Evacuated) => "evacuated",
        _ => "unknown",
    }
    .to_owned()
}

fn tenant_status(status: i32) -> String {
    match v1::TenantStatus::try_from(status) {
        Ok(v1::TenantStatus::Active) => "active",
        Ok(v1::TenantStatus::Suspended) => "suspended",
        Ok(v1::TenantStatus::LockedForMove) => "locked for move",
        Ok(v1::TenantStatus::Deleted) => "deleted",
        _ => "unknown",
    }
    .to_owned()
}

/// The model of one round of reads at `now_ms`, advancing `clock`.
pub(super) fn build(reads: &Reads, clock: &mut DriftClock, bound_ms: u64, now_ms: u64) -> Model {
    let mut problems = Vec::new();
    let mut note = |what: &str, addr: &str, error: &Error| problems.push(format!("{what} from {addr}: {error}"));
    let statuses: Vec<&v1::ClusterStatusResponse> = reads
        .statuses
        .iter()
        .filter_map(|(addr, status)| status.as_ref().inspect_err(|error| note("status", addr, error)).ok())
        .collect();
    for (addr, list) in &reads.agents {
        if let Err(error) = list {
            note("agents", addr, error);
        }
    }
    if let Err(error) = &reads.topology {
        note("topology", "the cluster", error);
    }
    if let Err(error) = &reads.tenants {
        note("tenants", "the cluster", error);
    }
    let cluster = cluster(&reads.statuses, &statuses);
    let (agent_infos, agents_revision) = registry_client::merge_agents(&reads.agents);
    let revision = cluster.revision.max(agents_revision);
    let tenants: &[v1::Tenant] = reads.tenants.as_ref().map(|(tenants, _)| tenants.as_slice()).unwrap_or(&[]);
    let topology = reads.topology.as_ref().ok();

    // The lowest revision applied by the connected agents of each region.
    let mut region_floor: BTreeMap<String, u64> = BTreeMap::new();
    for agent in agent_infos.iter().filter(|agent| agent.connected) {
        let floor = region_floor.entry(agent.region.clone()).or_insert(u64::MAX);
        *floor = (*floor).min(agent.acked_revision);
    }

    let behind_now = agent_infos
        .iter()
        .filter(|agent| agent.acked_revision < revision)
        .map(|agent| agent.agent_id.clone())
        .collect();
    observe(&mut clock.agents, behind_now, now_ms);
    let agents_since = &clock.agents;
    let drifting = |since: Option<&u64>| since.is_some_and(|since| now_ms.saturating_sub(*since) > bound_ms);
    let agents: Vec<AgentRow> = agent_infos
        .iter()
        .map(|agent| {
            let since = agents_since.get(&agent.agent_id);
            AgentRow {
                agent_id: agent.agent_id.clone(),
                region: agent.region.clone(),
                kind: match v1::AgentKind::try_from(agent.kind) {
                    Ok(v1::AgentKind::Api) => "api",
                    Ok(v1::AgentKind::Frontend) => "frontend",
                    _ => "unknown",
                },
                node_id: agent.node_id,
                connected: agent.connected,
                acked_revision: agent.acked_revision,
                lag: revision.saturating_sub(agent.acked_revision),
                last_ack_unix_ms: agent.last_ack_unix_ms,
                since_unix_ms: agent.since_unix_ms,
                last_nack: agent.last_nack.as_ref().map(|nack| NackRow {
                    tenant: nack.tenant_id.clone(),
                    revision: nack.revision,
                    reason: nack.reason.clone(),
                    at_unix_ms: agent.last_nack_unix_ms,
                }),
                behind_since_unix_ms: since.copied(),
                drifting: drifting(since),
            }
        })
        .collect();

    let mut rows = Vec::with_capacity(tenants.len());
    let mut uneven_now = HashSet::new();
    let mut operations = Operations::default();
    for tenant in tenants {
        let placement = tenant.placement.clone().unwrap_or_default();
        let served: BTreeMap<String, &'static str> = region_floor
            .iter()
            .map(|(region, floor)| {
                let state = if !proto::is_served_in(tenant.placement.as_ref(), region) {
                    "not served"
                } else if *floor >= tenant.config_revision {
                    "current"
                } else {
                    "behind"
                };
                (region.clone(), state)
            })
            .collect();
        let live = tenant.status != v1::TenantStatus::Deleted as i32;
        if live && served.values().any(|state| *state == "behind") && served.values().any(|state| *state == "current") {
            uneven_now.insert((tenant.id.clone(), tenant.config_revision));
        }
        let moving = tenant.r#move.as_ref().map(|moving| MoveRow {
            tenant: tenant.id.clone(),
            from: moving.from_shard.clone(),
            to: moving.to_shard.clone(),
            step: moving.step.clone(),
        });
        if let Some(moving) = &moving {
            operations.moves.push(moving.clone());
        }
        if !placement.failing_over_to.is_empty() {
            operations.failovers.push(FailoverRow {
                tenant: tenant.id.clone(),
                from: placement.home_region.clone(),
                to: placement.failing_over_to.clone(),
                epoch: placement.epoch,
            });
        }
        let canary = tenant.canary.as_ref().map(|canary| canary.revision);
        if let Some(revision) = canary {
            operations.canaries.push((tenant.id.clone(), revision));
        }
        rows.push(TenantRow {
            id: tenant.id.clone(),
            status: tenant_status(tenant.status),
            config_version: tenant.config_revision,
            mod_revision: tenant.mod_revision,
            home: placement.home_region,
            dr: placement.dr_region,
            epoch: placement.epoch,
            pins: placement.allowed_regions,
            failing_over_to: placement.failing_over_to,
            shard: tenant.shard.clone(),
            canary,
            moving,
            served,
        });
    }
    observe(&mut clock.tenants, uneven_now, now_ms);
    let mut drifting_tenants: Vec<TenantDrift> = clock
        .tenants
        .iter()
        .filter(|(_, since)| drifting(Some(since)))
        .map(|((tenant, version), since)| TenantDrift {
            tenant: tenant.clone(),
            config_version: *version,
            since_unix_ms: *since,
            behind_in: rows
                .iter()
                .find(|row| &row.id == tenant)
                .map(|row| {
                    row.served
                        .iter()
                        .filter(|(_, state)| **state == "behind")
                        .map(|(region, _)| region.clone())
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    drifting_tenants.sort_by(|a, b| a.tenant.cmp(&b.tenant));

    operations.rollout = rollout(&agent_infos, revision, &rows);
    let regions = regions(topology, &cluster, &rows, &agent_infos);
    let shards = shards(topology, &rows);
    Model {
        at_unix_ms: now_ms,
        drift: Drift {
            bound_ms,
            agents: agents.iter().filter(|agent| agent.drifting).map(|agent| agent.agent_id.clone()).collect(),
            tenants: drifting_tenants,
        },
        cluster: Cluster { revision, ..cluster },
        regions,
        shards,
        tenants: rows,
        agents,
        operations,
        problems,
    }
}

/// Members as the leader lists them (else any node), each with its own
/// status where it answered.
fn cluster(
    reads: &[(String, Result<v1::ClusterStatusResponse, Error>)],
    statuses: &[&v1::ClusterStatusResponse],
) -> Cluster {
    let term = statuses.iter().map(|status| status.term).max().unwrap_or(0);
    // The leader of the newest term, as its voters report it.
    let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
    for status in statuses.iter().filter(|status| status.term == term) {
        if let Some(leader) = status.leader_id {
            *votes.entry(leader).or_default() += 1;
        }
    }
    let leader = votes.into_iter().max_by_key(|(id, count)| (*count, std::cmp::Reverse(*id))).map(|(id, _)| id);
    let leader_status = statuses.iter().find(|status| Some(status.node_id) == leader && status.state == "leader");
    let listing = leader_status.or_else(|| statuses.first());
    let members = listing
        .map(|listing| {
            listing
                .members
                .iter()
                .map(|member| {
                    let own = statuses.iter().find(|status| status.node_id == member.id);
                    let error = reads
                        .iter()
                        .find(|(addr, _)| *addr == member.grpc_addr)
                        .and_then(|(_, read)| read.as_ref().err())
                        .map(|error| error.to_string())
                        .or_else(|| own.is_none().then(|| "not among the endpoints, or did not answer".to_owned()));
                    let matched = leader_status.and_then(|leader| {
                        leader.members.iter().find(|known| known.id == member.id).and_then(|known| known.matched_index)
                    });
                    MemberRow {
                        id: member.id,
                        region: member.region.clone(),
                        addr: member.grpc_addr.clone(),
                        voter: member.voter,
                        state: own.map_or_else(|| "unreachable".to_owned(), |own| own.state.clone()),
                        term: own.map_or(0, |own| own.term),
                        last_log_index: own.map_or(0, |own| own.last_log_index),
                        committed_index: own.map_or(0, |own| own.committed_index),
                        applied_index: own.map_or(0, |own| own.applied_index),
                        snapshot_index: own.map_or(0, |own| own.snapshot_index),
                        purged_index: own.map_or(0, |own| own.purged_index),
                        matched_index: matched,
                        behind: matched
                            .zip(leader_status)
                            .map(|(matched, leader)| leader.last_log_index.saturating_sub(matched)),
                        cert_not_after_unix_s: own.map_or(0, |own| own.cert_not_after_unix_s),
                        error,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Cluster {
        cluster_id: listing.map(|listing| listing.cluster_id.clone()).unwrap_or_default(),
        leader,
        term,
        revision: statuses.iter().map(|status| status.applied_index).max().unwrap_or(0),
        members,
    }
}

fn rollout(agents: &[v1::AgentInfo], revision: u64, tenants: &[TenantRow]) -> Option<Rollout> {
    let connected: Vec<&v1::AgentInfo> = agents.iter().filter(|agent| agent.connected).collect();
    let floor = connected.iter().map(|agent| agent.acked_revision).min()?;
    if floor >= revision {
        return None;
    }
    let mut regions: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for agent in &connected {
        let counts = regions.entry(agent.region.clone()).or_default();
        counts.0 += usize::from(agent.acked_revision >= revision);
        counts.1 += 1;
    }
    let mut pending: Vec<(String, u64)> = tenants
        .iter()
        .filter(|tenant| tenant.config_version > floor)
        .map(|tenant| (tenant.id.clone(), tenant.config_version))
        .collect();
    pending.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let pending_total = pending.len();
    pending.truncate(PENDING_SHOWN_MAX);
    Some(Rollout {
        revision,
        acked: connected.iter().filter(|agent| agent.acked_revision >= revision).count(),
        connected: connected.len(),
        regions,
        pending,
        pending_total,
    })
}

fn regions(
    topology: Option<&v1::TopologyResponse>,
    cluster: &Cluster,
    tenants: &[TenantRow],
    agents: &[v1::AgentInfo],
) -> Vec<RegionRow> {
    let mut names: BTreeSet<String> = cluster.members.iter().map(|member| member.region.clone()).collect();
    names.extend(topology.iter().flat_map(|topology| topology.regions.iter().map(|region| region.region.clone())));
    names.extend(agents.iter().map(|agent| agent.region.clone()));
    names
        .into_iter()
        .map(|region| RegionRow {
            status: topology
                .and_then(|topology| topology.regions.iter().find(|known| known.region == region))
                .map_or_else(|| "healthy".to_owned(), |known| status_name(known.status)),
            nodes: cluster.members.iter().filter(|member| member.region == region).map(|member| member.id).collect(),
            home_tenants: tenants.iter().filter(|tenant| tenant.home == region && tenant.status != "deleted").count(),
            agents_connected: agents.iter().filter(|agent| agent.region == region && agent.connected).count(),
            agents: agents.iter().filter(|agent| agent.region == region).count(),
            region,
        })
        .collect()
}

/// The shards the topology lists, then each region's default shard where
/// tenants live on it.
fn shards(topology: Option<&v1::TopologyResponse>, tenants: &[TenantRow]) -> Vec<ShardRow> {
    let mut counts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for tenant in tenants.iter().filter(|tenant| tenant.status != "deleted") {
        *counts.entry((tenant.home.as_str(), tenant.shard.as_str())).or_default() += 1;
    }
    let mut rows: Vec<ShardRow> = topology
        .iter()
        .flat_map(|topology| topology.shards.iter())
        .map(|shard| ShardRow {
            id: shard.id.clone(),
            region: shard.region.clone(),
            endpoint: shard.endpoint.clone(),
            state: shard.state.clone(),
            replica_endpoint: shard.replica_endpoint.clone(),
            tenants: counts.iter().filter(|((_, id), _)| *id == shard.id).map(|(_, count)| count).sum(),
        })
        .collect();
    for ((region, _), count) in counts.iter().filter(|((_, id), _)| id.is_empty()) {
        rows.push(ShardRow {
            id: String::new(),
            region: (*region).to_owned(),
            endpoint: String::new(),
            state: "default".to_owned(),
            replica_endpoint: String::new(),
            tenants: *count,
        });
    }
    rows
}
