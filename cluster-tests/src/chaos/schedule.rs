//! Fault schedules: the steps a scenario plays, and random schedules drawn
//! from a seed (the same seed plays the same schedule).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::proxy::{Fault, Region};
use crate::registry_cluster::REGIONS;

/// One step of a schedule.
#[derive(Debug, Clone)]
pub enum Step {
    Sleep(Duration),
    /// Waits until the cluster committed this many more revisions (at most 30 s).
    WaitRevisions(u64),
    /// Cuts every link between the region (node, agents, api-nodes) and the others.
    Partition(Region),
    /// Partitions the region of the current leader.
    PartitionLeaderRegion,
    /// Drops everything between the region and the others, silently.
    Blackhole(Region),
    /// Cuts what the first region sends to the second (answers included).
    OneWay(Region, Region),
    /// Cuts the region's agents and api-nodes off every registry node, their own included.
    CutAgents(Region),
    /// Cuts the region's api-nodes off the region's shard database.
    CutDatabase(Region),
    /// Sets one directed link.
    Link(Region, Region, Fault),
    /// Resets the open connections of the region's node and agents.
    DropConnections(Region),
    /// Every link back to passing.
    Heal,
    KillLeader,
    Kill(u64),
    /// Restarts every killed node with its data.
    RestartDead,
    /// SIGSTOP of the leader for a while, then SIGCONT.
    PauseLeader(Duration),
    /// SIGTERM and restart of every node in turn, waiting for each.
    RollingRestart,
    /// `regctl failover --region FROM --to TO` (waits for the lease).
    Failover {
        from: Region,
        to: Region,
    },
}

fn seconds(rng: &mut StdRng, low: f64, high: f64) -> Duration {
    Duration::from_secs_f64(rng.random_range(low..high))
}

/// A random schedule of 2 to 4 faults, each held for a while, healed, and
/// followed by a quiet spell.
pub fn random(seed: u64) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut steps = vec![Step::Sleep(seconds(&mut rng, 0.5, 1.5))];
    for _ in 0..rng.random_range(2..=4) {
        let region = REGIONS[rng.random_range(0..REGIONS.len())];
        let other =
            REGIONS.iter().copied().filter(|other| *other != region).nth(rng.random_range(0..2)).unwrap_or(region);
        let fault = match rng.random_range(0..9) {
            0 => Step::Partition(region),
            1 => Step::PartitionLeaderRegion,
            2 => Step::Blackhole(region),
            3 => Step::OneWay(region, other),
            4 => Step::CutAgents(region),
            5 => Step::DropConnections(region),
            6 => Step::KillLeader,
            7 => Step::PauseLeader(seconds(&mut rng, 1.0, 3.0)),
            _ => Step::Kill(rng.random_range(1..=3)),
        };
        steps.push(fault);
        steps.push(Step::Sleep(seconds(&mut rng, 1.0, 4.0)));
        steps.push(Step::Heal);
        steps.push(Step::RestartDead);
        steps.push(Step::Sleep(seconds(&mut rng, 0.5, 2.0)));
    }
    steps
}
