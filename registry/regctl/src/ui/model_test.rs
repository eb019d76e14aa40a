//! The console's rules without a cluster: the leader and its members, drift
//! and its clock, the work in progress.

use proto::v1;
use registry_client::Error;

use super::model::{build, DriftClock, Reads};

fn agent(id: &str, region: &str, acked: u64, connected: bool) -> v1::AgentInfo {
    v1::AgentInfo {
        agent_id: id.to_owned(),
        region: region.to_owned(),
        kind: v1::AgentKind::Frontend as i32,
        node_id: 1,
        connected,
        acked_revision: acked,
        ..Default::default()
    }
}

fn tenant(id: &str, version: u64, pins: &[&str]) -> v1::Tenant {
    v1::Tenant {
        id: id.to_owned(),
        status: v1::TenantStatus::Active as i32,
        config_revision: version,
        mod_revision: version,
        placement: Some(v1::Placement {
            home_region: "us-east".to_owned(),
            allowed_regions: pins.iter().map(|pin| (*pin).to_owned()).collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn status(id: u64, state: &str, leader: u64, term: u64, applied: u64) -> v1::ClusterStatusResponse {
    v1::ClusterStatusResponse {
        node_id: id,
        region: "us-east".to_owned(),
        leader_id: Some(leader),
        term,
        last_log_index: applied,
        applied_index: applied,
        state: state.to_owned(),
        members: (1..=3)
            .map(|member| v1::Member {
                id: member,
                region: "us-east".to_owned(),
                grpc_addr: format!("n{member}"),
                voter: true,
                matched_index: (state == "leader").then_some(applied - member + 1),
            })
            .collect(),
        ..Default::default()
    }
}

fn reads(agents: Vec<v1::AgentInfo>, tenants: Vec<v1::Tenant>, revision: u64) -> Reads {
    Reads {
        statuses: vec![
            ("n1".to_owned(), Ok(status(1, "leader", 1, 4, revision))),
            ("n2".to_owned(), Ok(status(2, "follower", 1, 4, revision))),
            ("n3".to_owned(), Err(Error::Unavailable { message: "down".to_owned() })),
        ],
        agents: vec![("n1".to_owned(), Ok(v1::ListAgentsResponse { node_id: 1, revision, agents }))],
        topology: Ok(v1::TopologyResponse::default()),
        tenants: Ok((tenants, revision)),
    }
}

#[test]
fn members_from_the_leader_with_what_it_matched() {
    let model = build(&reads(vec![], vec![], 10), &mut DriftClock::default(), 1_000, 0);
    assert_eq!((model.cluster.leader, model.cluster.term, model.cluster.revision), (Some(1), 4, 10));
    let members = &model.cluster.members;
    assert_eq!(
        members.iter().map(|member| member.state.as_str()).collect::<Vec<_>>(),
        ["leader", "follower", "unreachable"]
    );
    assert_eq!(members[2].behind, Some(2));
    assert!(members[2].error.as_deref().is_some_and(|error| error.contains("down")));
    assert_eq!(model.problems.len(), 1, "{:?}", model.problems);
}

#[test]
fn an_agent_drifts_once_behind_for_longer_than_the_bound() {
    let agents = || vec![agent("fe-eu", "eu-west", 8, true), agent("fe-us", "us-east", 10, true)];
    let tenants = || vec![tenant("acme", 9, &[]), tenant("globex", 5, &["us-east"])];
    let mut clock = DriftClock::default();
    let first = build(&reads(agents(), tenants(), 10), &mut clock, 1_000, 5_000);
    assert_eq!(first.agents[0].behind_since_unix_ms, Some(5_000));
    assert!(first.drift.agents.is_empty() && first.drift.tenants.is_empty(), "not yet: {:?}", first.drift);
    // acme's version 9 is applied in us-east only; globex is not served in eu-west.
    assert_eq!(first.tenants[0].served.get("eu-west"), Some(&"behind"));
    assert_eq!(first.tenants[1].served.get("eu-west"), Some(&"not served"));
    let rollout = first.operations.rollout.as_ref().expect("a rollout");
    assert_eq!((rollout.acked, rollout.connected, rollout.pending.clone()), (1, 2, vec![("acme".to_owned(), 9)]));

    let later = build(&reads(agents(), tenants(), 10), &mut clock, 1_000, 6_001);
    assert_eq!(later.drift.agents, ["fe-eu"]);
    assert_eq!(later.drift.tenants.len(), 1);
    assert_eq!((later.drift.tenants[0].tenant.as_str(), later.drift.tenants[0].since_unix_ms), ("acme", 5_000));
    assert_eq!(later.drift.tenants[0].behind_in, ["eu-west"]);

    // Caught up: the drift is forgotten, and counts again from zero next time.
    let caught = vec![agent("fe-eu", "eu-west", 10, true), agent("fe-us", "us-east", 10, true)];
    let done = build(&reads(caught, tenants(), 10), &mut clock, 1_000, 7_000);
    assert!(done.drift.agents.is_empty() && done.drift.tenants.is_empty());
    assert!(done.operations.rollout.is_none());
    let again = build(&reads(agents(), tenants(), 10), &mut clock, 1_000, 7_500);
    assert_eq!(again.agents[0].behind_since_unix_ms, Some(7_500));
}

#[test]
fn failovers_moves_and_canaries_in_progress() {
    let mut fenced = tenant("hooli", 3, &[]);
    if let Some(placement) = fenced.placement.as_mut() {
        placement.failing_over_to = "eu-west".to_owned();
        placement.epoch = 2;
    }
    fenced.canary = Some(v1::Canary { revision: 4, ..Default::default() });
    let mut moving = tenant("stark", 2, &[]);
    moving.r#move =
        Some(v1::TenantMove { to_shard: "us-east-2".to_owned(), step: "copying".to_owned(), ..Default::default() });
    let model = build(&reads(vec![], vec![fenced, moving], 5), &mut DriftClock::default(), 1_000, 0);
    let failover = &model.operations.failovers[0];
    assert_eq!(
        (failover.tenant.as_str(), failover.from.as_str(), failover.to.as_str()),
        ("hooli", "us-east", "eu-west")
    );
    assert_eq!(model.operations.canaries, [("hooli".to_owned(), 4)]);
    assert_eq!(model.operations.moves[0].step, "copying");
    assert_eq!(model.shards.len(), 1, "us-east's default shard: {:?}", model.shards);
    assert_eq!(model.shards[0].tenants, 2);
}
