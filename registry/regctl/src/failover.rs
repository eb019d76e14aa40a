//! `regctl failover --region R --to R2`: moves the home region of R's
//! tenants to R2 with lease fencing (the workflow is
//! `registry_client::workflows::failover`: fence, wait for R's agents or S
//! plus a margin, commit). It shows what it waits for.

use std::time::Duration;

use proto::TenantId;
use registry_client::workflows::failover::{self, Event, Failover};
use registry_client::Client;

use super::output::{self, Format};
use super::{actor, Failure};

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
    let failover = Failover {
        region: args.region,
        to: args.to,
        tenants: args.tenant,
        force: args.force,
        staleness: Duration::from_millis(args.staleness_ms),
        margin: Duration::from_millis(args.margin_ms),
        actor: actor(),
        reason: args.reason,
    };
    let progress = output::Progress::steps(format.progress());
    let report = failover::run(client, &failover, &mut |event| {
        let said = match event {
            Event::Fenced { tenants, revision } => format!("fenced {tenants} tenants at revision {revision}"),
            Event::Forced => "--force: not waiting for the old region's api-nodes (audited)".to_owned(),
            Event::Waiting { region, revision, left, agents, answered } => format!(
                "waiting for {region} to acknowledge revision {revision} (or {:.1} s, until they are read-only): {}",
                left.as_secs_f64(),
                if answered { agents.join(", ") } else { "no endpoint answered the agent list".to_owned() }
            ),
            Event::Acknowledged { region } => format!("every agent of {region} acknowledged the fence"),
            Event::LeaseExpired { region } => {
                format!("{region} has not acknowledged the fence; its api-nodes are read-only by now")
            }
        };
        progress.step(&said);
    })
    .await;
    progress.finish(if report.is_ok() { "done" } else { "failed" });
    let report = report?;
    output::failover(&failover.region, &failover.to, &report.moved, &report.not_moved, format);
    Ok(())
}
