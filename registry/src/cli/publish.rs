//! `regctl publish DIR`: the config repo to the registry, in gated cohorts.
//!
//! 1. Compile the whole repo; any problem stops here and nothing is sent.
//! 2. Plan against the registry: tenants whose bundles differ (content
//!    hashes) are published, canaries first (a cohort each), then cohorts
//!    of `--cohort-size` in id order. Unchanged tenants are skipped, so a
//!    re-run after a halt or a crash continues where it stopped.
//! 3. Per cohort: write each tenant (compare-and-set on the planned
//!    revision, and a request id derived from the content, so a retried
//!    write applies once); wait until every connected agent acknowledged
//!    the cohort's last revision (a NACK of any of its revisions halts);
//!    smoke-check the cohort's golden tenants through the api-nodes.
//! 4. A failed gate halts the publish and rolls the cohort back (each
//!    tenant to its revision before, created tenants deleted) unless
//!    `--no-rollback`; earlier cohorts stay.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use compiler::repo::CompiledTenant;
use futures::stream::{self, StreamExt};
use proto::v1::{self, Consistency};
use proto::TenantId;

use super::output::{self, CohortRow, Format};
use super::smoke::{self, Api, Target};
use super::{actor, repo, Failure};
use crate::client::{merge_agents, Client, WriteOptions};

/// The api-nodes `regctl up` starts.
pub(super) const DEFAULT_API: &str = "127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083";

/// The largest cohort.
const COHORT_SIZE_MAX: usize = 1000;

/// Writes in flight at once within a cohort.
const WRITES_IN_FLIGHT: usize = 32;

#[derive(clap::Args)]
pub(super) struct PublishArgs {
    /// The config repo (tenants/, branding/, golden.txt).
    dir: PathBuf,
    /// Tenants per cohort (1 to 1000).
    #[arg(long, default_value_t = 25)]
    cohort_size: usize,
    /// Tenants published first, one cohort each (comma separated).
    #[arg(long, value_delimiter = ',', value_parser = super::parse_tenant_id)]
    canary: Vec<TenantId>,
    /// Golden tenants (one per line) to smoke-check after their cohort; default: the repo's golden.txt.
    #[arg(long)]
    golden: Option<PathBuf>,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    /// On a failed gate, halt but leave the cohort as written.
    #[arg(long)]
    no_rollback: bool,
    /// api-node HTTP addresses for the smoke checks, comma separated.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_API)]
    api: Vec<String>,
    /// The base domain the api-nodes serve tenants under.
    #[arg(long, default_value = "localhost")]
    base_domain: String,
    /// How long the agents may take to acknowledge a cohort, in seconds.
    #[arg(long, default_value_t = 60)]
    ack_timeout: u64,
}

/// One tenant to publish.
struct Step<'a> {
    tenant: &'a CompiledTenant,
    /// Its mod_revision in the registry when planned; `None`: it is created.
    before: Option<u64>,
    golden: bool,
}

struct Cohort<'a> {
    label: &'static str,
    steps: Vec<Step<'a>>,
}

/// A write that applied.
struct Written {
    tenant: v1::Tenant,
    before: Option<u64>,
    golden: bool,
}

fn golden_list(args: &PublishArgs, repo_golden: &[TenantId]) -> Result<BTreeSet<String>, Failure> {
    let Some(path) = &args.golden else {
        return Ok(repo_golden.iter().map(ToString::to_string).collect());
    };
    let text = std::fs::read_to_string(path).map_err(|error| Failure(format!("{}: {error}", path.display())))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

pub(super) async fn run(args: PublishArgs, client: &Client, format: Format) -> Result<(), Failure> {
    if !(1..=COHORT_SIZE_MAX).contains(&args.cohort_size) {
        return Err(Failure(format!("--cohort-size: {} is not from 1 to {COHORT_SIZE_MAX}", args.cohort_size)));
    }
    let compiled = repo::compile(&args.dir, format)?;
    let golden = golden_list(&args, &compiled.golden)?;
    let (live, _) = client.list_tenants(Consistency::Linearizable, false).await?;
    let live_by_id: HashMap<&str, &v1::Tenant> = live.iter().map(|tenant| (tenant.id.as_str(), tenant)).collect();

    let mut changed = Vec::new();
    // Unchanged tenants and the revision they are live at.
    let mut unchanged: HashMap<&str, u64> = HashMap::new();
    for tenant in &compiled.tenants {
        match live_by_id.get(tenant.id.as_str()) {
            Some(current) if repo::is_live(tenant, current) => {
                unchanged.insert(tenant.id.as_str(), current.mod_revision);
            }
            current => changed.push(Step {
                tenant,
                before: current.map(|current| current.mod_revision),
                golden: golden.contains(tenant.id.as_str()),
            }),
        }
    }
    refused_at_live_revision(client, &unchanged).await?;
    let in_repo: HashSet<&str> = compiled.tenants.iter().map(|tenant| tenant.id.as_str()).collect();
    let only_live = live.iter().filter(|tenant| !in_repo.contains(tenant.id.as_str())).count();
    if let Some(unknown) = args.canary.iter().find(|canary| !in_repo.contains(canary.as_str())) {
        return Err(Failure(format!("--canary: {unknown} is not a tenant of {}", args.dir.display())));
    }
    let mut cohorts: Vec<Cohort> = Vec::new();
    for canary in &args.canary {
        if let Some(index) = changed.iter().position(|step| &step.tenant.id == canary) {
            cohorts.push(Cohort { label: "canary", steps: vec![changed.remove(index)] });
        }
    }
    while !changed.is_empty() {
        let rest = changed.split_off(args.cohort_size.min(changed.len()));
        cohorts.push(Cohort { label: "cohort", steps: std::mem::replace(&mut changed, rest) });
    }
    let planned: Vec<CohortRow> = cohorts
        .iter()
        .enumerate()
        .map(|(index, cohort)| CohortRow {
            number: index + 1,
            label: cohort.label.to_owned(),
            tenants: cohort.steps.len(),
            revisions: None,
            acked_ms: None,
            smoked: cohort.steps.iter().filter(|step| step.golden).count(),
            result: Ok(()),
        })
        .collect();
    let unchanged = unchanged.len();
    output::publish_plan(&planned, unchanged, only_live, format);
    if cohorts.is_empty() {
        output::info(format, &format!("nothing to publish: the registry serves {} as compiled", args.dir.display()));
        return Ok(());
    }
    if args.dry_run {
        output::info(format, "dry run: nothing was changed");
        return Ok(());
    }
    confirm(&args, cohorts.iter().map(|cohort| cohort.steps.len()).sum(), cohorts.len())?;

    let target =
        Target { base_domain: args.base_domain.clone(), user: "demo".to_owned(), password: "demo-{tenant}".to_owned() };
    let needs_smoke = cohorts.iter().any(|cohort| cohort.steps.iter().any(|step| step.golden));
    let apis = if needs_smoke { smoke::discover(&args.api).await? } else { Vec::new() };
    let total: usize = cohorts.iter().map(|cohort| cohort.steps.len()).sum();
    let mut done = 0;
    let mut rows = Vec::new();
    let reason = format!("publish {}", args.dir.display());
    for (mut row, cohort) in planned.into_iter().zip(&cohorts) {
        output::progress(done, total, &format!("{} {} of {}", cohort.label, row.number, cohorts.len()));
        let started = Instant::now();
        let (written, failure) = write_cohort(client, cohort, &reason).await;
        row.revisions = revision_range(&written);
        let gate = match (failure, row.revisions) {
            (Some(failure), _) => Err(failure),
            (None, Some((first, last))) => gate(client, &args, &apis, &target, &written, (first, last)).await,
            (None, None) => Ok(()),
        };
        row.acked_ms = gate.is_ok().then(|| started.elapsed().as_millis() as u64);
        done += cohort.steps.len();
        if let Err(failure) = gate {
            let number = row.number;
            let rolled_back = if args.no_rollback {
                "left as written (--no-rollback)".to_owned()
            } else {
                roll_back(client, &written, number).await
            };
            row.result = Err(format!("HALTED: {failure}"));
            rows.push(row);
            output::progress(total, total, "halted");
            output::publish_summary(&rows, format);
            let kept: usize = rows.iter().take(rows.len() - 1).map(|row| row.tenants).sum();
            return Err(Failure(format!(
                "publish halted at {} {number} of {}: {failure}. Cohort {number}: {rolled_back}. Earlier cohorts \
                 ({kept} tenants) stay published; cohorts after it were not started. Fix the cause and run the same \
                 command again: it continues from here.",
                cohort.label,
                cohorts.len()
            )));
        }
        rows.push(row);
    }
    output::progress(total, total, "done");
    output::publish_summary(&rows, format);
    output::info(format, &format!("published {total} tenants in {} cohorts ({unchanged} unchanged)", rows.len()));
    Ok(())
}

/// A publish that crashed after writing a cohort but before its gate left
/// tenants live that no gate judged. If an agent refused one of them at its
/// live revision, say so before anything else: republishing the same
/// content cannot fix it.
async fn refused_at_live_revision(client: &Client, unchanged: &HashMap<&str, u64>) -> Result<(), Failure> {
    let (agents, _) = merge_agents(&client.list_agents().await);
    let refusals: Vec<String> = agents
        .iter()
        .filter_map(|agent| agent.last_nack.as_ref().map(|nack| (agent, nack)))
        .filter(|(_, nack)| unchanged.get(nack.tenant_id.as_str()) == Some(&nack.revision))
        .map(|(agent, nack)| {
            format!(
                "{} at revision {}: agent {} refused it: {}",
                nack.tenant_id, nack.revision, agent.agent_id, nack.reason
            )
        })
        .collect();
    if refusals.is_empty() {
        return Ok(());
    }
    Err(Failure(format!(
        "live tenants that agents refused, unchanged in the repo (republishing them cannot help; change them or \
         `regctl rollback` them):\n  {}",
        refusals.join("\n  ")
    )))
}

fn confirm(args: &PublishArgs, tenants: usize, cohorts: usize) -> Result<(), Failure> {
    use std::io::{BufRead, IsTerminal, Write};
    if args.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure("not a terminal: pass --yes to publish without a confirmation".to_owned()));
    }
    eprint!("publish {tenants} tenants in {cohorts} cohorts? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(|error| Failure(format!("stdin: {error}")))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure("not confirmed; nothing was changed".to_owned()))
    }
}

fn revision_range(written: &[Written]) -> Option<(u64, u64)> {
    let revisions = written.iter().map(|written| written.tenant.mod_revision);
    Some((revisions.clone().min()?, revisions.max()?))
}

/// Writes a cohort's tenants; what applied, and the first failure if any.
async fn write_cohort(client: &Client, cohort: &Cohort<'_>, reason: &str) -> (Vec<Written>, Option<String>) {
    let results: Vec<(&Step, Result<v1::WriteResponse, tonic::Status>)> = stream::iter(&cohort.steps)
        .map(|step| async move {
            // Derived from the content and the planned revision: a retry of
            // this very step is recognised, a new plan is a new request.
            let request_id = format!(
                "publish-{}-{}-{}",
                step.tenant.id,
                &step.tenant.private.sha256[..16],
                step.before.unwrap_or(0)
            );
            let options = WriteOptions {
                expected_revision: Some(step.before.unwrap_or(0)),
                request_id: Some(request_id),
                actor: actor(),
                reason: reason.to_owned(),
            };
            let documents = repo::documents(step.tenant);
            let result = match step.before {
                None => client.create_tenant(step.tenant.id.as_str(), documents, &options).await,
                Some(_) => client.update_tenant(step.tenant.id.as_str(), documents, &options).await,
            };
            (step, result)
        })
        .buffer_unordered(WRITES_IN_FLIGHT)
        .collect()
        .await;
    let mut written = Vec::new();
    let mut failure = None;
    for (step, result) in results {
        match result {
            Ok(response) => written.push(Written {
                tenant: response.tenant.unwrap_or_else(|| v1::Tenant {
                    id: step.tenant.id.to_string(),
                    mod_revision: response.revision,
                    ..Default::default()
                }),
                before: step.before,
                golden: step.golden,
            }),
            Err(status) => {
                failure.get_or_insert(format!("writing {}: {}", step.tenant.id, status.message()));
            }
        }
    }
    (written, failure)
}

/// The cohort's gate: every agent acknowledged `last` with no NACK in
/// `first..=last`, then the golden tenants pass their smoke checks.
async fn gate(
    client: &Client,
    args: &PublishArgs,
    apis: &[Api],
    target: &Target,
    written: &[Written],
    (first, last): (u64, u64),
) -> Result<(), String> {
    wait_for_acks(client, first, last, Duration::from_secs(args.ack_timeout)).await?;
    for written in written.iter().filter(|written| written.golden) {
        let tenant = &written.tenant;
        let allowed = tenant.placement.clone().unwrap_or_default().allowed_regions;
        for api in apis.iter().filter(|api| allowed.is_empty() || allowed.contains(&api.region)) {
            smoke::check_serving(target, api, tenant)
                .await
                .map_err(|error| format!("smoke check of golden tenant {} on {}: {error}", tenant.id, api.addr))?;
        }
        smoke::check_data(target, apis, tenant)
            .await
            .map_err(|error| format!("smoke check of golden tenant {}: {error}", tenant.id))?;
    }
    Ok(())
}

/// Waits until every connected agent acknowledged `last`; a NACK of a
/// revision in `first..=last` fails at once.
async fn wait_for_acks(client: &Client, first: u64, last: u64, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let lists = client.list_agents().await;
        let answered = lists.iter().any(|(_, list)| list.is_ok());
        let (agents, _) = merge_agents(&lists);
        for agent in &agents {
            if let Some(nack) = agent.last_nack.as_ref().filter(|nack| (first..=last).contains(&nack.revision)) {
                return Err(format!(
                    "agent {} NACKed tenant {} at revision {}: {}",
                    agent.agent_id, nack.tenant_id, nack.revision, nack.reason
                ));
            }
        }
        let connected: Vec<_> = agents.iter().filter(|agent| agent.connected).collect();
        let behind: Vec<&str> =
            connected.iter().filter(|agent| agent.acked_revision < last).map(|agent| agent.agent_id.as_str()).collect();
        if answered && behind.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{} of {} connected agents had not acknowledged revision {last} after {} s: {}",
                behind.len(),
                connected.len(),
                timeout.as_secs(),
                behind.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Restores each tenant of a failed cohort to its revision before the
/// publish (created tenants are deleted); says what it did.
async fn roll_back(client: &Client, written: &[Written], cohort: usize) -> String {
    let mut restored = Vec::new();
    let mut failed = Vec::new();
    for written in written {
        let tenant = &written.tenant;
        let options = WriteOptions {
            // Only if nothing else changed it since.
            expected_revision: Some(tenant.mod_revision),
            request_id: Some(format!("publish-rollback-{}-{}", tenant.id, tenant.mod_revision)),
            actor: actor(),
            reason: format!("publish halted: cohort {cohort} rolled back"),
        };
        let result = match written.before {
            Some(before) => client.rollback_tenant(&tenant.id, before, &options).await,
            None => client.delete_tenant(&tenant.id, &options).await,
        };
        match result {
            Ok(response) => restored.push(response.revision),
            Err(status) => failed.push(format!("{}: {}", tenant.id, status.message())),
        }
    }
    let mut said = match (restored.iter().min(), restored.iter().max()) {
        (Some(first), Some(last)) => format!("rolled back {} tenants (revisions {first}..{last})", restored.len()),
        _ => "nothing to roll back".to_owned(),
    };
    if !failed.is_empty() {
        said.push_str(&format!("; {} could NOT be rolled back: {}", failed.len(), failed.join("; ")));
    }
    said
}
