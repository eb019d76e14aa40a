//! Regions and shards over gRPC: the conversions, and the write path of a
//! topology change (proposed like any write; a follower forwards once).

use proto::v1;
use registry_core::{Command, Op, RegionStatus, Response as CoreResponse, Shard, ShardState, Topology};
use tonic::{Response, Status};

use super::leader::{write_meta, Leader, Origin};
use super::status;
use crate::convert;
use crate::store::StateView;
use crate::wire;

pub(crate) fn region_status(status: i32) -> Result<RegionStatus, Status> {
    wire::region_status_from(status)
        .ok_or_else(|| Status::invalid_argument("status: must be healthy, degraded or evacuated"))
}

/// Checks a shard to add.
pub(crate) fn shard(info: Option<v1::ShardInfo>) -> Result<Shard, Status> {
    let info = info.ok_or_else(|| Status::invalid_argument("shard: required"))?;
    let region = proto::Region::parse(&info.region).map_err(|error| status::from_domain_error(&error))?;
    let replica = Some(info.replica_endpoint).filter(|replica| !replica.is_empty());
    let shard = Shard { id: info.id, region, endpoint: info.endpoint, state: ShardState::Active, replica };
    registry_core::check_shard(&shard).map_err(|error| status::from_command_error(&error))?;
    Ok(shard)
}

pub(crate) fn response(topology: &Topology, revision: u64) -> v1::TopologyResponse {
    let status = |status: RegionStatus| wire::region_status(status) as i32;
    v1::TopologyResponse {
        regions: topology
            .regions
            .iter()
            .map(|(region, state)| v1::RegionInfo { region: region.to_string(), status: status(*state) })
            .collect(),
        shards: topology.shards.values().map(convert::shard_info).collect(),
        revision,
    }
}

/// Proposes a topology change; on a follower, forwards `message` once.
pub(crate) async fn change<Req: prost::Message + 'static>(
    leader: &Leader,
    view: &StateView,
    origin: &Origin,
    message: Req,
    op: Op,
) -> Result<Response<v1::TopologyResponse>, Status> {
    let command = Command::new(write_meta(None, &origin.caller)?, op);
    let decided = leader.proposer.propose(command).await;
    leader
        .or_forward(origin, message, "topology", decided, |response| match response {
            CoreResponse::Rejected(error) => Err(status::from_command_error(&error)),
            _ => Ok(applied(view)),
        })
        .await
}

/// The topology as this node has applied it (after a read barrier unless stale).
pub(crate) async fn read(leader: &Leader, view: &StateView, consistency: i32) -> Result<v1::TopologyResponse, Status> {
    leader.ensure_read(consistency).await?;
    Ok(applied(view))
}

fn applied(view: &StateView) -> v1::TopologyResponse {
    let applied = view.read();
    response(&applied.state.topology, applied.last_applied.map_or(0, |log_id| log_id.index))
}
