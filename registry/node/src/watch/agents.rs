//! The agents a node knows: who is connected, what each acknowledged and
//! refused. Bounded: the longest-disconnected agents are forgotten first.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use plumbing::now_unix_ms;
use proto::v1::agent_admin_server::AgentAdmin;
use proto::v1::{self, AgentInfo};
use tonic::{Request, Response, Status};

use super::WatchHub;
use crate::limits::AGENTS_TRACKED_MAX;
use crate::raft_types::NodeId;
use crate::stages::Stages;

struct Tracked {
    info: AgentInfo,
    /// Which stream owns the entry, so a stale stream's end does not mark a
    /// reconnected agent as gone, and a stale stream's acks do not count.
    connection: u64,
    /// Notifies the owning stream that a newer one took its place.
    superseded: Arc<tokio::sync::Notify>,
}

/// The agents, and per region the acknowledged revisions of its connected
/// agents (a multiset: revision -> how many), whose least is what every
/// connected agent of the region has.
#[derive(Default)]
struct Agents {
    by_id: HashMap<String, Tracked>,
    acked_by_region: HashMap<String, BTreeMap<u64, usize>>,
}

impl Agents {
    fn least_acked(&self, region: &str) -> Option<u64> {
        self.acked_by_region.get(region).and_then(|acked| acked.keys().next().copied())
    }

    fn add_acked(&mut self, region: &str, revision: u64) {
        *self.acked_by_region.entry(region.to_owned()).or_default().entry(revision).or_default() += 1;
    }

    fn remove_acked(&mut self, region: &str, revision: u64) {
        if let Some(acked) = self.acked_by_region.get_mut(region) {
            if let Some(count) = acked.get_mut(&revision) {
                *count -= 1;
                if *count == 0 {
                    acked.remove(&revision);
                }
            }
        }
    }
}

/// Per-agent state of one node.
pub struct AgentDirectory {
    node_id: NodeId,
    agents: Mutex<Agents>,
    next_connection: std::sync::atomic::AtomicU64,
    stages: Arc<Stages>,
}

impl AgentDirectory {
    /// A directory that marks in `stages` when every connected agent of a
    /// region has acknowledged an entry.
    pub fn new(node_id: NodeId, stages: Arc<Stages>) -> Self {
        Self { node_id, agents: Mutex::default(), next_connection: Default::default(), stages }
    }

    fn agents(&self) -> MutexGuard<'_, Agents> {
        match self.agents.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Records a new stream; returns its connection number.
    pub fn connected(&self, hello: &v1::Hello) -> (u64, Arc<tokio::sync::Notify>) {
        let connection = self.next_connection.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let superseded = Arc::new(tokio::sync::Notify::new());
        let mut agents = self.agents();
        let previous = agents.by_id.remove(&hello.agent_id);
        if let Some(previous) = &previous {
            // A permit is stored if the old stream is not waiting yet.
            previous.superseded.notify_one();
            if previous.info.connected {
                agents.remove_acked(&previous.info.region, previous.info.acked_revision);
            }
        }
        let info = AgentInfo {
            agent_id: hello.agent_id.clone(),
            region: hello.region.clone(),
            kind: hello.kind,
            node_id: self.node_id,
            connected: true,
            acked_revision: previous
                .as_ref()
                .map_or(0, |tracked| tracked.info.acked_revision)
                .max(hello.since_revision),
            last_ack_unix_ms: previous.as_ref().map_or(0, |tracked| tracked.info.last_ack_unix_ms),
            since_unix_ms: now_unix_ms(),
            last_nack: previous.as_ref().and_then(|tracked| tracked.info.last_nack.clone()),
            last_nack_unix_ms: previous.as_ref().map_or(0, |tracked| tracked.info.last_nack_unix_ms),
        };
        agents.add_acked(&info.region, info.acked_revision);
        agents.by_id.insert(hello.agent_id.clone(), Tracked { info, connection, superseded: superseded.clone() });
        if agents.by_id.len() > AGENTS_TRACKED_MAX {
            let oldest = agents
                .by_id
                .iter()
                .filter(|(_, tracked)| !tracked.info.connected)
                .min_by_key(|(_, tracked)| tracked.info.since_unix_ms)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                agents.by_id.remove(&oldest);
            }
        }
        (connection, superseded)
    }

    /// The agent applied up to `revision` (never goes back), said on its
    /// newest stream `connection`.
    pub fn ack(&self, agent_id: &str, connection: u64, revision: u64) {
        let mut agents = self.agents();
        let Some(tracked) = agents.by_id.get_mut(agent_id).filter(|tracked| tracked.connection == connection) else {
            return;
        };
        let before = tracked.info.acked_revision;
        tracked.info.acked_revision = before.max(revision);
        tracked.info.last_ack_unix_ms = now_unix_ms();
        let (region, after, connected) =
            (tracked.info.region.clone(), tracked.info.acked_revision, tracked.info.connected);
        if connected && after > before {
            let least = agents.least_acked(&region);
            agents.remove_acked(&region, before);
            agents.add_acked(&region, after);
            self.region_advanced(&agents, &region, least);
        }
    }

    /// Marks the entries every connected agent of `region` now has, if the
    /// least of them moved past `least_before`.
    fn region_advanced(&self, agents: &Agents, region: &str, least_before: Option<u64>) {
        if let Some(least) = agents.least_acked(region).filter(|least| Some(*least) > least_before) {
            self.stages.acked(region, least);
        }
    }

    /// The agent refused a record.
    pub fn nack(&self, agent_id: &str, connection: u64, nack: v1::Nack) {
        tracing::warn!(agent_id, revision = nack.revision, tenant = %nack.tenant_id, reason = %nack.reason, "agent refused an update");
        if let Some(tracked) = self.agents().by_id.get_mut(agent_id).filter(|tracked| tracked.connection == connection)
        {
            tracked.info.last_nack = Some(nack);
            tracked.info.last_nack_unix_ms = now_unix_ms();
        }
    }

    /// The stream `connection` of the agent ended.
    pub fn disconnected(&self, agent_id: &str, connection: u64) {
        let mut agents = self.agents();
        let Some(tracked) = agents.by_id.get_mut(agent_id).filter(|tracked| tracked.connection == connection) else {
            return;
        };
        tracked.info.connected = false;
        tracked.info.since_unix_ms = now_unix_ms();
        let (region, acked) = (tracked.info.region.clone(), tracked.info.acked_revision);
        let least = agents.least_acked(&region);
        agents.remove_acked(&region, acked);
        self.region_advanced(&agents, &region, least);
    }

    /// Every known agent, sorted by id.
    pub fn list(&self) -> Vec<AgentInfo> {
        let mut agents: Vec<_> = self.agents().by_id.values().map(|tracked| tracked.info.clone()).collect();
        agents.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        agents
    }

    /// Connected agents (for metrics).
    pub fn connected_count(&self) -> usize {
        self.agents().by_id.values().filter(|tracked| tracked.info.connected).count()
    }
}

/// `AgentAdmin`: this node's view of its agents.
pub struct AgentAdminService {
    pub directory: Arc<AgentDirectory>,
    pub hub: Arc<WatchHub>,
}

#[tonic::async_trait]
impl AgentAdmin for AgentAdminService {
    async fn list_agents(
        &self,
        _request: Request<v1::ListAgentsRequest>,
    ) -> Result<Response<v1::ListAgentsResponse>, Status> {
        Ok(Response::new(v1::ListAgentsResponse {
            node_id: self.directory.node_id,
            revision: self.hub.published(),
            agents: self.directory.list(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(agent_id: &str, since_revision: u64) -> v1::Hello {
        v1::Hello {
            agent_id: agent_id.to_owned(),
            region: "eu-west".to_owned(),
            kind: v1::AgentKind::Api as i32,
            since_revision,
            cluster_id: String::new(),
        }
    }

    #[test]
    fn acks_never_go_back_and_stale_streams_do_not_count() {
        let directory = AgentDirectory::new(2, Arc::default());
        let (first, first_superseded) = directory.connected(&hello("a", 5));
        directory.ack("a", first, 9);
        directory.ack("a", first, 7);
        assert_eq!(directory.list()[0].acked_revision, 9);
        let (second, _) = directory.connected(&hello("a", 9));
        // The old stream is told to end, and its acks no longer count.
        assert!(futures::FutureExt::now_or_never(first_superseded.notified()).is_some());
        directory.ack("a", first, 50);
        assert_eq!(directory.list()[0].acked_revision, 9);
        directory.disconnected("a", first);
        assert!(directory.list()[0].connected, "the old stream's end does not count");
        directory.nack(
            "a",
            second,
            v1::Nack { revision: 10, tenant_id: "acme".to_owned(), reason: "too big".to_owned() },
        );
        directory.disconnected("a", second);
        let agent = &directory.list()[0];
        assert!(!agent.connected);
        assert_eq!(agent.last_nack.as_ref().map(|nack| nack.revision), Some(10));
    }
}
