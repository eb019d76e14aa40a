//! Chaos suites: partitions (symmetric, one-way, blackholes), kill -9 and
//! SIGSTOP of nodes, rolling restarts and failovers under a live workload,
//! every guarantee of DESIGN.md checked from the history
//! (`cluster_tests::chaos::checkers`). The default run plays each scenario
//! with a fixed seed; `CHAOS_SEEDS=N` plays N random schedules from
//! `CHAOS_SEED` (default 1). A failure prints the seed and the command that
//! replays it. See cluster-tests/README.md.

use std::time::Duration;

use cluster_tests::chaos::proxy::Fault;
use cluster_tests::chaos::schedule::{self, Step};
use cluster_tests::chaos::{ChaosCluster, ChaosOptions, Report};

/// Plays `steps` on a fresh chaos cluster and fails with every violation
/// and the replay command.
async fn play(options: ChaosOptions, steps: &[Step], replay: &str) -> anyhow::Result<Report> {
    let (name, seed) = (options.name.clone(), options.seed);
    let mut chaos = ChaosCluster::start(options).await?;
    for step in steps {
        chaos.step(step).await?;
    }
    let (report, chaos) = chaos.finish().await?;
    report.print(&name, seed);
    if !report.violations.is_empty() {
        anyhow::bail!(
            "chaos {name} seed {seed}: {} violations (logs kept above); replay with:\n  {replay}",
            report.violations.len()
        );
    }
    chaos.passed();
    Ok(report)
}

fn options(name: &str, seed: u64) -> ChaosOptions {
    ChaosOptions { name: name.to_owned(), seed, latency: false, watch_history_deltas_max: None }
}

fn replay(test: &str) -> String {
    format!("cargo test -p cluster-tests --test it chaos::{test} -- --nocapture")
}

const S: Duration = Duration::from_millis(cluster_tests::api_nodes::STALENESS_MS_MAX);

fn secs(seconds: f64) -> Step {
    Step::Sleep(Duration::from_secs_f64(seconds))
}

/// A region's api-nodes cut off their shard database: there, the items of
/// the region's own tenants are answered 503 (none served, none hanging)
/// while runtime configs go on, and every other region is undisturbed;
/// after the heal they are served again. Every guarantee is checked as in
/// every run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn region_cut_off_its_database() -> anyhow::Result<()> {
    let (region, seed) = ("eu-west", 21);
    let mut chaos = ChaosCluster::start(options("database-cut", seed)).await?;
    chaos.step(&secs(1.5)).await?;
    let cut = chaos.history.now();
    chaos.step(&Step::CutDatabase(region)).await?;
    chaos.step(&secs(8.0)).await?;
    let healed = chaos.history.now();
    chaos.step(&Step::Heal).await?;
    chaos.step(&secs(3.0)).await?;
    let (report, chaos) = chaos.finish().await?;
    report.print("database-cut", seed);
    assert!(report.violations.is_empty(), "{:?}", report.violations);

    let home: std::collections::HashMap<&str, &str> =
        chaos.tenants.iter().map(|tenant| (tenant.id.as_str(), tenant.home)).collect();
    let data = chaos.history.data.lock().map(|data| data.clone()).unwrap_or_default();
    let during = |op: &&cluster_tests::chaos::history::DataOp| {
        op.invoked > cut + Duration::from_millis(500) && op.completed < healed
    };
    let own = |op: &&cluster_tests::chaos::history::DataOp| home.get(op.tenant.as_str()) == Some(&op.region);
    let statuses = |ops: Vec<&cluster_tests::chaos::history::DataOp>| {
        let mut statuses: Vec<u16> = ops.iter().map(|op| op.status).collect();
        statuses.sort_unstable();
        statuses.dedup();
        (ops.len(), statuses)
    };
    let cut_off =
        statuses(data.iter().filter(during).filter(own).filter(|op| op.items && op.region == region).collect());
    eprintln!("{region}'s items of its own tenants while cut off: {cut_off:?}");
    assert!(cut_off.0 >= 1 && cut_off.1 == [503], "{cut_off:?}");
    let configs = statuses(data.iter().filter(during).filter(|op| !op.items && op.region == region).collect());
    assert!(configs.1.contains(&200), "runtime configs are served from the view: {configs:?}");
    let elsewhere =
        statuses(data.iter().filter(during).filter(own).filter(|op| op.items && op.region != region).collect());
    assert!(elsewhere.1.iter().all(|status| *status < 500), "other regions undisturbed: {elsewhere:?}");
    let after = statuses(
        data.iter()
            .filter(|op| op.invoked > healed + Duration::from_secs(1))
            .filter(own)
            .filter(|op| op.items && op.region == region)
            .collect(),
    );
    assert!(after.1.iter().any(|status| (200..300).contains(status)), "served again after the heal: {after:?}");
    chaos.passed();
    Ok(())
}

/// A minority region partitioned: its agents keep serving their last view,
/// its api-node turns read-only after S (checked), the majority keeps
/// committing; heal → convergence. With the latency profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn minority_region_partitioned() -> anyhow::Result<()> {
    let options = ChaosOptions { latency: true, ..options("minority", 11) };
    let steps =
        [secs(1.0), Step::Partition("ap-south"), Step::Sleep(S + Duration::from_secs(4)), Step::Heal, secs(1.0)];
    let report = play(options, &steps, &replay("minority_region_partitioned")).await?;
    assert!(report.operations.0 > 50, "the majority kept committing: {:?}", report.operations);
    Ok(())
}

/// The leader's region partitioned (a new leader elsewhere, the old one
/// steps down), then a one-way partition, then a blackhole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_region_partitioned_one_way_and_blackholed() -> anyhow::Result<()> {
    let steps = [
        secs(1.0),
        Step::PartitionLeaderRegion,
        secs(4.0),
        Step::Heal,
        secs(1.0),
        Step::OneWay("us-east", "eu-west"),
        secs(3.0),
        Step::Heal,
        secs(1.0),
        Step::Blackhole("eu-west"),
        secs(3.0),
        Step::Heal,
        secs(1.0),
    ];
    play(options("leader-partition", 12), &steps, &replay("leader_region_partitioned_one_way_and_blackholed")).await?;
    Ok(())
}

/// kill -9 of the leader during the write storm, SIGSTOP of the leader
/// beyond the election timeout, and a rolling restart of every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_killed_paused_and_rolling_restart() -> anyhow::Result<()> {
    let steps = [
        secs(1.0),
        Step::KillLeader,
        secs(2.0),
        Step::RestartDead,
        secs(1.0),
        Step::PauseLeader(Duration::from_secs(3)),
        secs(1.0),
        Step::RollingRestart,
        secs(1.0),
    ];
    play(options("kill-pause-restart", 13), &steps, &replay("leader_killed_paused_and_rolling_restart")).await?;
    Ok(())
}

/// An agent fails over to a node that is behind it: ap-south falls behind
/// in a partition; us-east's node dies and its agents lose eu-west, so they
/// can reach only the lagging ap-south node. They must not go back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_fails_over_to_a_node_behind_it() -> anyhow::Result<()> {
    let us_agents = cluster_tests::chaos::AGENT_SIDES[0];
    let steps = [
        secs(1.0),
        Step::Partition("ap-south"),
        secs(3.0),
        Step::Link(us_agents, "eu-west", Fault::Cut),
        Step::Link("eu-west", us_agents, Fault::Cut),
        Step::Kill(1),
        Step::Link(us_agents, "ap-south", Fault::Pass),
        Step::Link("ap-south", us_agents, Fault::Pass),
        secs(3.0),
        Step::Heal,
        Step::RestartDead,
        secs(1.0),
    ];
    play(options("agent-behind", 14), &steps, &replay("agent_fails_over_to_a_node_behind_it")).await?;
    Ok(())
}

/// The history window (20 deltas) exceeded while a region's agents are cut
/// off for 60 revisions: they resync from a snapshot on heal.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_window_exceeded_then_snapshot_resync() -> anyhow::Result<()> {
    let options = ChaosOptions { watch_history_deltas_max: Some(20), ..options("history-window", 15) };
    // Cut off for more revisions than the nodes keep, however slow the machine.
    let steps = [secs(1.0), Step::CutAgents("eu-west"), Step::WaitRevisions(60), Step::Heal, secs(1.0)];
    let report = play(options, &steps, &replay("history_window_exceeded_then_snapshot_resync")).await?;
    let (_, snapshots) = report.agent_views.get("agent-eu-west").copied().unwrap_or_default();
    assert!(snapshots >= 1, "eu-west's agent resynced from a snapshot: {:?}", report.agent_views);
    Ok(())
}

/// Failover of a partitioned region's tenants while it is cut off: regctl
/// waits until its api-node is read-only by its own staleness rule, then
/// commits; no two regions ever accept the same tenant's writes (checked).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failover_of_a_cut_off_region_then_heal() -> anyhow::Result<()> {
    let steps = [
        secs(1.0),
        Step::Partition("us-east"),
        Step::Failover { from: "us-east", to: "eu-west" },
        secs(2.0),
        Step::Heal,
        secs(2.0),
    ];
    play(options("failover-cut-off", 16), &steps, &replay("failover_of_a_cut_off_region_then_heal")).await?;
    Ok(())
}

/// Each region's node in its own network namespace, cut at the network
/// layer. Skipped, with the reason, where namespaces are not available.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn network_namespaces_partition() -> anyhow::Result<()> {
    match cluster_tests::chaos::netns::run(17).await? {
        Err(reason) => eprintln!("SKIPPED network_namespaces_partition: {reason}"),
        Ok(report) => {
            report.print("netns", 17);
            anyhow::ensure!(
                report.violations.is_empty(),
                "chaos netns: violations; replay with:\n  {}",
                replay("network_namespaces_partition")
            );
        }
    }
    Ok(())
}

/// Random schedules: `CHAOS_SEEDS=N` of them from seed `CHAOS_SEED` (default
/// 1); by default two short ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_schedules() -> anyhow::Result<()> {
    let env = |name: &str| std::env::var(name).ok().and_then(|value| value.parse::<u64>().ok());
    let count = env("CHAOS_SEEDS").unwrap_or(2);
    let first = env("CHAOS_SEED").unwrap_or(1);
    let mut failed = Vec::new();
    for seed in first..first + count {
        let steps = schedule::random(seed);
        eprintln!("seed {seed}: {steps:?}");
        let replay = format!("CHAOS_SEEDS=1 CHAOS_SEED={seed} {}", replay("random_schedules"));
        if let Err(error) = play(options("random", seed), &steps, &replay).await {
            eprintln!("{error:#}");
            failed.push(seed);
        }
    }
    eprintln!(
        "random schedules: {} of {count} passed (seeds {first}..{}); failed: {failed:?}",
        count as usize - failed.len(),
        first + count
    );
    anyhow::ensure!(failed.is_empty(), "failed seeds: {failed:?}");
    Ok(())
}
