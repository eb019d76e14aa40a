//! Membership changes: add a learner (it replicates, serves agents and stale
//! reads, but does not vote), promote it to voter, remove a member. They run
//! on the leader (a follower forwards once) through openraft's joint
//! consensus, and answer once the new membership is committed.

use openraft::async_runtime::WatchReceiver;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::error::RaftError;
use openraft::{ChangeMembers, RaftMetrics};
use proto::v1::{self};
use tonic::{Response, Status};

use super::leader::{Leader, Origin};
use super::status;
use crate::limits::MEMBERSHIP_CHANGE_MS_MAX;
use crate::raft_types::{Member, NodeId, TypeConfig};

/// What to change.
pub(crate) enum MembershipChange {
    AddLearner { id: NodeId, member: Member },
    Promote(NodeId),
    Remove(NodeId),
}

/// The members as this node's metrics see them.
pub(crate) fn members(metrics: &RaftMetrics<TypeConfig>) -> Vec<v1::Member> {
    let membership = metrics.membership_config.membership();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let matched = |id: &NodeId| {
        metrics
            .replication
            .as_ref()
            .map(|replication| replication.get(id).and_then(|matched| matched.map(|log_id| log_id.index)).unwrap_or(0))
    };
    membership
        .nodes()
        .map(|(id, member)| v1::Member {
            id: *id,
            region: member.region.clone(),
            grpc_addr: member.grpc_addr.clone(),
            voter: voters.contains(id),
            matched_index: matched(id),
        })
        .collect()
}

/// Checks an AddLearner request; the learner to add.
pub(crate) fn learner(request: &v1::AddLearnerRequest) -> Result<MembershipChange, Status> {
    let id = node_id(request.node_id)?;
    proto::Region::parse(&request.region).map_err(|error| status::from_domain_error(&error))?;
    let valid_addr = request
        .grpc_addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port > 0));
    if !valid_addr {
        return Err(Status::invalid_argument(format!("grpc_addr `{}`: must be host:port", request.grpc_addr)));
    }
    let member = Member { region: request.region.clone(), grpc_addr: request.grpc_addr.clone() };
    Ok(MembershipChange::AddLearner { id, member })
}

pub(crate) fn node_id(id: u64) -> Result<NodeId, Status> {
    if id == 0 {
        return Err(Status::invalid_argument("node_id: must be a positive integer"));
    }
    Ok(id)
}

/// Runs `change` on the leader; on a follower, forwards `message` once.
pub(crate) async fn change<Req: prost::Message + 'static>(
    leader: &Leader,
    origin: &Origin,
    message: Req,
    change: MembershipChange,
) -> Result<Response<v1::MembershipResponse>, Status> {
    let changes: ChangeMembers<NodeId, Member> = match change {
        MembershipChange::AddLearner { id, member } => ChangeMembers::AddNodes(BTreeMap::from([(id, member)])),
        MembershipChange::Promote(id) => ChangeMembers::AddVoterIds(BTreeSet::from([id])),
        MembershipChange::Remove(id) => {
            let membership = leader.raft.metrics().borrow_watched().membership_config.membership().clone();
            if membership.voter_ids().any(|voter| voter == id) {
                ChangeMembers::RemoveVoters(BTreeSet::from([id]))
            } else if membership.get_node(&id).is_some() {
                ChangeMembers::RemoveNodes(BTreeSet::from([id]))
            } else {
                return Err(Status::not_found(format!("node {id} is not a member")));
            }
        }
    };
    let run = async {
        match changes {
            // add_learner waits until the learner has caught up.
            ChangeMembers::AddNodes(nodes) => match nodes.into_iter().next() {
                Some((id, member)) => leader.raft.add_learner(id, member, true).await,
                None => Err(RaftError::Fatal(crate::raft_types::Fatal::Stopped)),
            },
            changes => leader.raft.change_membership(changes, false).await,
        }
    };
    let timeout = Duration::from_millis(MEMBERSHIP_CHANGE_MS_MAX);
    let Ok(decided) = tokio::time::timeout(timeout, run).await else {
        return Err(Status::deadline_exceeded(format!(
            "membership: not committed within {} s; check `regctl cluster status`",
            timeout.as_secs()
        )));
    };
    leader
        .or_forward(origin, message, "membership", decided, |response| {
            let metrics = leader.raft.metrics().borrow_watched().clone();
            Ok(v1::MembershipResponse { revision: response.log_id.index, members: members(&metrics) })
        })
        .await
}
