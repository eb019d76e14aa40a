//! `regctl publish DIR`: the config repo to the registry, in gated cohorts
//! (the workflow is `registry_client::workflows::publish`).
//!
//! Compile the whole repo (any problem stops here and nothing is sent),
//! plan, show the plan, confirm, then run it: the gate of each cohort is
//! every agent's acknowledgement, the CDN purge of its runtime configs
//! (with `--purge-url`), and the smoke checks of its golden tenants through
//! the api-nodes.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use proto::TenantId;
use registry_client::workflows::publish::{self, Event, Publish};
use registry_client::workflows::smoke::{self, Checks, Direct, Target};
use registry_client::Client;

use super::output::{self, Format};
use super::{actor, repo, Failure};

/// The api-nodes `regctl up` starts.
pub(super) const DEFAULT_API: &str = "127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083";

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
    #[command(flatten)]
    purge: super::purge::PurgeArgs,
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
    let compiled = repo::compile(&args.dir, format)?;
    let publish = Publish {
        cohort_size: args.cohort_size,
        canaries: args.canary.clone(),
        golden: golden_list(&args, &compiled.golden)?,
        rollback: !args.no_rollback,
        ack_timeout: Duration::from_secs(args.ack_timeout),
        actor: actor(),
        reason: format!("publish {}", args.dir.display()),
        purge: args.purge.hook()?,
    };
    let plan = publish::plan(client, &compiled, &publish).await?;
    output::publish_plan(&plan.rows(), plan.unchanged, plan.only_live, format);
    if plan.cohorts.is_empty() {
        output::info(format, &format!("nothing to publish: the registry serves {} as compiled", args.dir.display()));
        return Ok(());
    }
    if args.dry_run {
        output::info(format, "dry run: nothing was changed");
        return Ok(());
    }
    confirm(&args, plan.tenants(), plan.cohorts.len())?;

    let target =
        Target { base_domain: args.base_domain.clone(), user: "demo".to_owned(), password: "demo-{tenant}".to_owned() };
    let needs_smoke = plan.cohorts.iter().any(|cohort| cohort.steps.iter().any(|step| step.golden));
    let apis = if needs_smoke { smoke::discover(&Direct, &args.api).await? } else { Vec::new() };
    let total = plan.tenants();
    let gate = Checks { http: Direct, target, apis };
    let progress = output::Progress::count(total as u64, "tenants", format.progress());
    let report = publish::run(client, &publish, &plan, &gate, &mut |event| match event {
        Event::CohortStarted { number, cohorts, label, done, .. } => {
            progress.set(done as u64, &format!("{label} {number} of {cohorts}"));
        }
        Event::CohortFinished(row) => {
            let revisions = row.revisions.map_or(String::new(), |(first, last)| format!(", revisions {first}..{last}"));
            let result = match &row.result {
                Ok(()) => "acknowledged".to_owned(),
                Err(failure) => failure.clone(),
            };
            progress.step(&format!("{} {}: {} tenants{revisions}: {result}", row.label, row.number, row.tenants));
        }
    })
    .await;
    let done: usize = report.cohorts.iter().filter(|row| row.result.is_ok()).map(|row| row.tenants).sum();
    progress.set(done as u64, "");
    progress.finish(if report.halted.is_some() { "halted" } else { "done" });
    output::publish_summary(&report.cohorts, format);
    if let Some(halt) = report.halted {
        return Err(Failure(halt.to_string()));
    }
    output::info(
        format,
        &format!("published {total} tenants in {} cohorts ({} unchanged)", report.cohorts.len(), plan.unchanged),
    );
    Ok(())
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
