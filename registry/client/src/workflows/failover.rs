//! Failover: moves the home region of a region's tenants to another with
//! lease fencing (DESIGN.md guarantee 5).
//!
//! 1. Tenants homed in `region` (or only those named) whose pin allows `to`
//!    are fenced: from that revision on, no api-node accepts their writes.
//!    Tenants whose pin excludes `to` are reported as not moved, with why.
//! 2. Unless `force`, wait until the region's api-nodes can no longer be
//!    accepting writes: every agent of the region has acknowledged the
//!    fencing revision, or the fence is older than the staleness bound S
//!    plus a margin. An agent that has not received the fence has received
//!    no proof of freshness since it was published either (deltas and
//!    progress share one ordered stream), so its api-node went read-only by
//!    its own staleness rule.
//! 3. Commit: each fenced tenant's home becomes `to` and its epoch grows.
//!    `force` skips step 2, and the audit entry says so.
//!
//! Every step is idempotent by itself, so a re-run after an interruption
//! continues: it finds the tenants fenced and commits them.

use std::time::Duration;

use proto::v1;
use proto::TenantId;
use tokio::time::Instant;

use super::Cluster;
use crate::{Error, WriteOptions};

/// How often the agent list is read while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// A failover to run.
#[derive(Debug, Clone)]
pub struct Failover {
    /// The region whose tenants fail over.
    pub region: String,
    /// The region they fail over to.
    pub to: String,
    /// Only these tenants; empty: every tenant homed in `region`.
    pub tenants: Vec<TenantId>,
    /// Commit at once, without waiting for the region's api-nodes (audited).
    pub force: bool,
    /// The api-nodes' staleness bound S.
    pub staleness: Duration,
    /// Added to S before a silent agent counts as read-only.
    pub margin: Duration,
    /// Who and why, recorded in every tenant's audit history.
    pub actor: String,
    pub reason: String,
}

/// What happens, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The tenants to move are fenced, the last at `revision`.
    Fenced { tenants: usize, revision: u64 },
    /// `force`: not waiting for the old region's api-nodes.
    Forced,
    /// Still waiting for these agents of the region (empty with `answered`
    /// false: no node answered the agent list); at most `left` more.
    Waiting { region: String, revision: u64, left: Duration, agents: Vec<String>, answered: bool },
    /// Every agent of the region acknowledged the fence.
    Acknowledged { region: String },
    /// S plus the margin passed: the region's api-nodes are read-only by now.
    LeaseExpired { region: String },
}

/// What a failover did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Tenant, the revision of its commit, its new epoch.
    pub moved: Vec<(String, u64, u64)>,
    /// Tenant and why it was not moved.
    pub not_moved: Vec<(String, String)>,
}

/// Runs `failover` against `cluster`, reporting each step to `event`.
pub async fn run(cluster: &impl Cluster, failover: &Failover, event: &mut impl FnMut(Event)) -> Result<Report, Error> {
    for (field, region) in [("--region", &failover.region), ("--to", &failover.to)] {
        proto::Region::parse(region)
            .map_err(|error| Error::invalid(field, error.rule_id, format!("{field}: {error}")))?;
    }
    if failover.region == failover.to {
        return Err(Error::invalid("--to", "differs", "--to: must differ from --region"));
    }
    let tenants = cluster.list_tenants().await?;
    let (movable, not_moved) = plan(failover, &tenants);
    // Each step is idempotent by itself (fencing twice fences once; a second
    // commit is refused as already home), so a re-run continues; request ids
    // stay per call, not per tenant: a later failover of the same tenant
    // must not replay this one's answers.
    let options = WriteOptions {
        expected_revision: None,
        request_id: None,
        actor: failover.actor.clone(),
        reason: failover.reason.clone(),
    };
    let mut fenced_at = 0;
    for tenant in &movable {
        let written = cluster.fence_tenant(tenant, &failover.to, &options).await?;
        fenced_at = fenced_at.max(written.revision);
    }
    // Every fence was committed before this instant.
    let fenced_by = Instant::now();
    event(Event::Fenced { tenants: movable.len(), revision: fenced_at });
    if failover.force {
        event(Event::Forced);
    } else if !movable.is_empty() {
        wait_for_lease(cluster, failover, fenced_at, fenced_by, event).await;
    }
    let mut moved = Vec::new();
    for tenant in &movable {
        let written = cluster.failover_tenant(tenant, &failover.to, failover.force, &options).await?;
        let epoch = written.tenant.and_then(|tenant| tenant.placement).map_or(0, |placement| placement.epoch);
        moved.push((tenant.clone(), written.revision, epoch));
    }
    Ok(Report { moved, not_moved })
}

/// The tenants to move, and those not moved with why.
fn plan(failover: &Failover, tenants: &[v1::Tenant]) -> (Vec<String>, Vec<(String, String)>) {
    let named = |tenant: &v1::Tenant| failover.tenants.iter().any(|id| id.as_str() == tenant.id);
    let mut movable = Vec::new();
    let mut not_moved = Vec::new();
    for tenant in tenants.iter().filter(|tenant| failover.tenants.is_empty() || named(tenant)) {
        let placement = tenant.placement.clone().unwrap_or_default();
        let fenced_here = placement.failing_over_to == failover.to;
        if placement.home_region != failover.region && !fenced_here {
            if !failover.tenants.is_empty() {
                not_moved.push((tenant.id.clone(), format!("its home region is {}", placement.home_region)));
            }
            continue;
        }
        if !placement.allowed_regions.is_empty() && !placement.allowed_regions.contains(&failover.to) {
            let reason =
                format!("{} is outside its allowed regions ({})", failover.to, placement.allowed_regions.join(","));
            not_moved.push((tenant.id.clone(), reason));
            continue;
        }
        movable.push(tenant.id.clone());
    }
    (movable, not_moved)
}

/// Waits until every agent of the old region acknowledged `fenced_at`, or
/// until S plus the margin have passed since `fenced_by`.
async fn wait_for_lease(
    cluster: &impl Cluster,
    failover: &Failover,
    fenced_at: u64,
    fenced_by: Instant,
    event: &mut impl FnMut(Event),
) {
    let region = &failover.region;
    let read_only_by = fenced_by + failover.staleness + failover.margin;
    let mut shown = None;
    loop {
        let (agents, answered) = cluster.agents().await;
        let waiting: Vec<String> = agents
            .iter()
            .filter(|agent| &agent.region == region && agent.acked_revision < fenced_at)
            .map(|agent| agent.agent_id.clone())
            .collect();
        if answered && waiting.is_empty() {
            event(Event::Acknowledged { region: region.clone() });
            return;
        }
        let left = read_only_by.saturating_duration_since(Instant::now());
        if left.is_zero() {
            event(Event::LeaseExpired { region: region.clone() });
            return;
        }
        if shown.as_ref() != Some(&(waiting.clone(), answered)) {
            event(Event::Waiting {
                region: region.clone(),
                revision: fenced_at,
                left,
                agents: waiting.clone(),
                answered,
            });
            shown = Some((waiting, answered));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflows::fake::{agent, tenant, Fake};

    fn failover(force: bool) -> Failover {
        Failover {
            region: "us-east".to_owned(),
            to: "eu-west".to_owned(),
            tenants: Vec::new(),
            force,
            staleness: Duration::from_secs(5),
            margin: Duration::from_secs(2),
            actor: "test".to_owned(),
            reason: "drill".to_owned(),
        }
    }

    async fn run_collecting(fake: &Fake, failover: &Failover) -> (Result<Report, Error>, Vec<Event>) {
        let mut events = Vec::new();
        let report = run(fake, failover, &mut |event| events.push(event)).await;
        (report, events)
    }

    #[tokio::test(start_paused = true)]
    async fn fences_waits_for_the_regions_agents_then_commits_and_skips_pinned_tenants() {
        let fake = Fake::new(vec![
            tenant("acme", "us-east", &[]),
            tenant("globex", "us-east", &["us-east", "us-west"]),
            tenant("initech", "eu-west", &[]),
        ]);
        // The us-east agent acknowledges the fence on the third look.
        fake.script_agents(|looks, fenced_at| {
            let acked = if looks >= 3 { fenced_at } else { fenced_at - 1 };
            vec![agent("api-use-1", "us-east", acked), agent("api-euw-1", "eu-west", 0)]
        });
        let (report, events) = run_collecting(&fake, &failover(false)).await;
        let report = report.unwrap();
        assert_eq!(fake.calls(), ["fence acme eu-west", "failover acme eu-west"]);
        assert_eq!(report.moved.len(), 1);
        assert_eq!(report.moved[0].0, "acme");
        assert_eq!(report.moved[0].2, 2, "the epoch grew");
        assert_eq!(
            report.not_moved,
            [("globex".to_owned(), "eu-west is outside its allowed regions (us-east,us-west)".to_owned())]
        );
        assert!(matches!(&events[0], Event::Fenced { tenants: 1, .. }));
        assert!(
            matches!(&events[1], Event::Waiting { agents, answered: true, .. } if agents == &["api-use-1".to_owned()]),
            "{events:?}"
        );
        assert_eq!(events.last(), Some(&Event::Acknowledged { region: "us-east".to_owned() }));
        assert_eq!(events.len(), 3, "a wait is reported once while nothing changes: {events:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_region_is_waited_out_for_s_plus_the_margin_and_no_longer() {
        let fake = Fake::new(vec![tenant("acme", "us-east", &[])]);
        fake.script_agents(|_, fenced_at| vec![agent("api-use-1", "us-east", fenced_at - 1)]);
        let started = Instant::now();
        let (report, events) = run_collecting(&fake, &failover(false)).await;
        let waited = started.elapsed();
        assert_eq!(report.unwrap().moved.len(), 1);
        assert!(waited >= Duration::from_secs(7) && waited < Duration::from_millis(7_500), "{waited:?}");
        assert_eq!(events.last(), Some(&Event::LeaseExpired { region: "us-east".to_owned() }));
    }

    #[tokio::test(start_paused = true)]
    async fn force_commits_at_once_and_says_so() {
        let fake = Fake::new(vec![tenant("acme", "us-east", &[])]);
        fake.script_agents(|_, fenced_at| vec![agent("api-use-1", "us-east", fenced_at - 1)]);
        let started = Instant::now();
        let (report, events) = run_collecting(&fake, &failover(true)).await;
        assert_eq!(report.unwrap().moved.len(), 1);
        assert!(started.elapsed() < POLL_INTERVAL, "no wait");
        assert_eq!(events[1], Event::Forced);
        assert_eq!(fake.calls(), ["fence acme eu-west", "failover! acme eu-west"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_named_tenant_of_another_region_is_reported_and_bad_regions_are_refused() {
        let fake = Fake::new(vec![tenant("initech", "eu-west", &[])]);
        let named = Failover { tenants: vec![TenantId::parse("initech").unwrap()], ..failover(false) };
        let (report, _) = run_collecting(&fake, &named).await;
        assert_eq!(report.unwrap().not_moved, [("initech".to_owned(), "its home region is eu-west".to_owned())]);
        assert!(fake.calls().is_empty(), "nothing fenced");

        let same = Failover { to: "us-east".to_owned(), ..failover(false) };
        let error = run_collecting(&fake, &same).await.0.unwrap_err();
        assert!(matches!(&error, Error::Invalid { field, .. } if field == "--to"), "{error:?}");
        let bad = Failover { region: "US East".to_owned(), ..failover(false) };
        let error = run_collecting(&fake, &bad).await.0.unwrap_err();
        assert!(matches!(&error, Error::Invalid { field, .. } if field == "--region"), "{error:?}");
    }
}
