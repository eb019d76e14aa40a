//! `regctl failover --region R --to R2`: moves the home region of R's
//! tenants to R2 with lease fencing (DESIGN.md guarantee 5).
//!
//! 1. Tenants homed in R (or those named with `--tenant`) whose pin allows
//!    R2 are fenced: from that revision on, no api-node accepts their writes.
//!    Tenants whose pin excludes R2 are listed as not moved, with the reason.
//! 2. Unless `--force`, wait until R's api-nodes can no longer be accepting
//!    writes: every agent of region R has acknowledged the fencing revision,
//!    or the fence is older than the staleness bound `S` plus a margin. An
//!    agent that has not received the fence has received no proof of
//!    freshness since it was published either (deltas and progress share
//!    one ordered stream), so its api-node went read-only by its own
//!    staleness rule. The command shows what it waits for.
//! 3. Commit: each fenced tenant's home becomes R2 and its epoch grows.
//!    `--force` skips step 2 and the audit entry says so.
//!
//! Every step is idempotent by itself, so a re-run after an interruption
//! continues: it finds the tenants fenced and commits them.

use std::time::{Duration, Instant};

use proto::v1::{self, Consistency};
use proto::TenantId;

use super::output::{self, Format};
use super::{actor, Failure};
use crate::client::{merge_agents, Client, WriteOptions};

#[derive(clap::Args)]
pub(super) struct FailoverArgs {
    /// The region whose tenants fail over.
    #[arg(long)]
    region: String,
    /// The region they fail over to.
    #[arg(long)]
    to: String,
    /// Only these tenants (comma separated); default: every tenant homed in --region.
    #[arg(long, value_delimiter = ',', value_parser = super::parse_tenant_id)]
    tenant: Vec<TenantId>,
    /// Why; recorded in every tenant's audit history.
    #[arg(long, default_value = "")]
    reason: String,
    /// Commit at once, without waiting for the region's api-nodes to stop accepting writes.
    #[arg(long)]
    force: bool,
    /// The api-nodes' staleness bound S, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    staleness_ms: u64,
    /// Added to S before a silent agent counts as read-only, in milliseconds.
    #[arg(long, default_value_t = 2_000)]
    margin_ms: u64,
}

pub(super) async fn run(args: FailoverArgs, client: &Client, format: Format) -> Result<(), Failure> {
    for (flag, region) in [("--region", &args.region), ("--to", &args.to)] {
        proto::Region::parse(region).map_err(|error| Failure(format!("{flag}: {error}")))?;
    }
    if args.region == args.to {
        return Err(Failure("--to: must differ from --region".to_owned()));
    }
    let (tenants, _) = client.list_tenants(Consistency::Linearizable, false).await?;
    let wanted = |tenant: &v1::Tenant| args.tenant.is_empty() || args.tenant.iter().any(|id| id.as_str() == tenant.id);
    let mut movable = Vec::new();
    let mut not_moved = Vec::new();
    for tenant in tenants.iter().filter(|tenant| wanted(tenant)) {
        let placement = tenant.placement.clone().unwrap_or_default();
        let fenced_here = placement.failing_over_to == args.to;
        if placement.home_region != args.region && !fenced_here {
            if !args.tenant.is_empty() {
                not_moved.push((tenant.id.clone(), format!("its home region is {}", placement.home_region)));
            }
            continue;
        }
        if !placement.allowed_regions.is_empty() && !placement.allowed_regions.contains(&args.to) {
            let reason =
                format!("{} is outside its allowed regions ({})", args.to, placement.allowed_regions.join(","));
            not_moved.push((tenant.id.clone(), reason));
            continue;
        }
        movable.push(tenant.id.clone());
    }
    // Each step is idempotent by itself (fencing twice fences once; a second
    // commit is refused as already home), so a re-run continues; request ids
    // stay per call, not per tenant: a later failover of the same tenant
    // must not replay this one's answers.
    let options =
        WriteOptions { expected_revision: None, request_id: None, actor: actor(), reason: args.reason.clone() };

    let mut fenced_at = 0;
    for tenant in &movable {
        let written = client.fence_tenant(tenant, Some(&args.to), &options).await?;
        fenced_at = fenced_at.max(written.revision);
    }
    // Every fence was committed before this instant.
    let fenced_by = Instant::now();
    output::info(format, &format!("fenced {} tenants at revision {fenced_at}", movable.len()));
    if args.force {
        output::info(format, "--force: not waiting for the old region's api-nodes (audited)");
    } else if !movable.is_empty() {
        wait_for_lease(client, &args, fenced_at, fenced_by, format).await?;
    }
    let mut moved = Vec::new();
    for tenant in &movable {
        let written = client.failover_tenant(tenant, &args.to, args.force, &options).await?;
        let epoch = written.tenant.and_then(|tenant| tenant.placement).map_or(0, |placement| placement.epoch);
        moved.push((tenant.clone(), written.revision, epoch));
    }
    output::failover(&args.region, &args.to, &moved, &not_moved, format);
    Ok(())
}

/// Waits until every agent of the old region acknowledged `fenced_at`, or
/// until S plus the margin have passed since `fenced_by` (bounded by that).
async fn wait_for_lease(
    client: &Client,
    args: &FailoverArgs,
    fenced_at: u64,
    fenced_by: Instant,
    format: Format,
) -> Result<(), Failure> {
    let read_only_by = fenced_by + Duration::from_millis(args.staleness_ms + args.margin_ms);
    let mut shown = Vec::new();
    loop {
        let lists = client.list_agents().await;
        let answered = lists.iter().any(|(_, list)| list.is_ok());
        let (agents, _) = merge_agents(&lists);
        let waiting: Vec<String> = agents
            .iter()
            .filter(|agent| agent.region == args.region && agent.acked_revision < fenced_at)
            .map(|agent| agent.agent_id.clone())
            .collect();
        if answered && waiting.is_empty() {
            output::info(format, &format!("every agent of {} acknowledged the fence", args.region));
            return Ok(());
        }
        let left = read_only_by.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let message = format!("{} has not acknowledged the fence; its api-nodes are read-only by now", args.region);
            output::info(format, &message);
            return Ok(());
        }
        if waiting != shown {
            output::info(
                format,
                &format!(
                    "waiting for {} to acknowledge revision {fenced_at} (or {:.1} s, until they are read-only): {}",
                    args.region,
                    left.as_secs_f64(),
                    if answered { waiting.join(", ") } else { "no endpoint answered the agent list".to_owned() }
                ),
            );
            shown = waiting;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
