//! Publishing a compiled config repo in gated cohorts.
//!
//! 1. [`plan`] against the registry: tenants whose bundles differ (content
//!    hashes) are published, canaries first (a cohort each), then cohorts
//!    of `cohort_size` in id order. Unchanged tenants are skipped, so a
//!    re-run after a halt or a crash continues where it stopped.
//! 2. [`run`], per cohort: write each tenant (compare-and-set on the planned
//!    revision, and a request id derived from the content, so a retried
//!    write applies once); wait until every connected agent acknowledged
//!    the cohort's last revision (a NACK of any of its revisions halts);
//!    purge the cohort's runtime configs from the CDN through the purge
//!    hook, if one is set ([`super::purge`]); check the cohort's golden
//!    tenants through the [`Gate`].
//! 3. A failed gate (a purge that fails included) halts the publish and
//!    rolls the cohort back (each tenant to its revision before, created
//!    tenants deleted, and the rollback purged in its turn) unless
//!    `rollback` is off; earlier cohorts stay.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use compiler::repo::{CompiledRepo, CompiledTenant};
use futures::stream::{self, StreamExt};
use proto::v1;
use proto::TenantId;
use tokio::time::Instant;

use super::purge::{purge_acknowledged, PurgeHook};
use super::Cluster;
use crate::{Error, WriteOptions};

/// The largest cohort.
pub const COHORT_SIZE_MAX: usize = 1000;

/// Writes in flight at once within a cohort.
const WRITES_IN_FLIGHT: usize = 32;

/// How often the agent list is read while a cohort's gate waits.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How to publish.
#[derive(Debug, Clone)]
pub struct Publish {
    /// Tenants per cohort (1 to [`COHORT_SIZE_MAX`]).
    pub cohort_size: usize,
    /// Tenants published first, one cohort each.
    pub canaries: Vec<TenantId>,
    /// Tenants checked through the gate after their cohort.
    pub golden: BTreeSet<String>,
    /// On a failed gate, roll the cohort back (else leave it as written).
    pub rollback: bool,
    /// How long the agents may take to acknowledge a cohort.
    pub ack_timeout: Duration,
    /// Who and why, recorded in every tenant's audit history.
    pub actor: String,
    pub reason: String,
    /// The CDN purge hook, told of each cohort once it is acknowledged.
    pub purge: Option<PurgeHook>,
}

/// The check of one golden tenant after its cohort is acknowledged (regctl's
/// smoke checks through the api-nodes).
pub trait Gate: Sync {
    fn check(&self, tenant: &v1::Tenant) -> impl Future<Output = Result<(), String>> + Send;
}

/// One tenant to publish.
#[derive(Debug)]
pub struct Step<'a> {
    pub tenant: &'a CompiledTenant,
    /// Its mod_revision in the registry when planned; `None`: it is created.
    pub before: Option<u64>,
    pub golden: bool,
}

#[derive(Debug)]
pub struct Cohort<'a> {
    /// `canary` or `cohort`.
    pub label: &'static str,
    pub steps: Vec<Step<'a>>,
}

/// What a publish will do.
#[derive(Debug)]
pub struct Plan<'a> {
    pub cohorts: Vec<Cohort<'a>>,
    /// Tenants the registry serves as compiled.
    pub unchanged: usize,
    /// Tenants only in the registry (left alone).
    pub only_live: usize,
}

impl Plan<'_> {
    pub fn tenants(&self) -> usize {
        self.cohorts.iter().map(|cohort| cohort.steps.len()).sum()
    }

    /// The cohorts as rows, before any ran.
    pub fn rows(&self) -> Vec<CohortRow> {
        self.cohorts
            .iter()
            .enumerate()
            .map(|(index, cohort)| CohortRow {
                number: index + 1,
                label: cohort.label,
                tenants: cohort.steps.len(),
                revisions: None,
                acked: None,
                smoked: cohort.steps.iter().filter(|step| step.golden).count(),
                result: Ok(()),
            })
            .collect()
    }
}

/// One cohort of a publish, as planned or as it went.
#[derive(Debug, Clone, PartialEq)]
pub struct CohortRow {
    pub number: usize,
    pub label: &'static str,
    pub tenants: usize,
    /// First and last revision written.
    pub revisions: Option<(u64, u64)>,
    /// How long writing and gating took, when the gate passed.
    pub acked: Option<Duration>,
    /// Golden tenants checked.
    pub smoked: usize,
    pub result: Result<(), String>,
}

/// What happens, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Cohort `number` of `cohorts` starts; `done` of `total` tenants are
    /// behind it.
    CohortStarted { number: usize, cohorts: usize, label: &'static str, done: usize, total: usize },
    /// A cohort passed its gate or halted the publish.
    CohortFinished(CohortRow),
}

/// Why and where a publish halted.
#[derive(Debug, Clone, PartialEq)]
pub struct Halt {
    pub number: usize,
    pub cohorts: usize,
    pub label: &'static str,
    pub failure: String,
    /// What became of the halted cohort.
    pub rolled_back: String,
    /// Tenants of earlier cohorts, which stay published.
    pub kept: usize,
}

impl std::fmt::Display for Halt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "publish halted at {} {} of {}: {}. Cohort {}: {}. Earlier cohorts ({} tenants) stay published; cohorts \
             after it were not started. Fix the cause and run the same command again: it continues from here.",
            self.label, self.number, self.cohorts, self.failure, self.number, self.rolled_back, self.kept
        )
    }
}

/// What a publish did: every cohort that ran, and the halt if one failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub cohorts: Vec<CohortRow>,
    pub halted: Option<Halt>,
}

/// All three documents of a compiled tenant, as a write sends them.
pub fn documents(tenant: &CompiledTenant) -> v1::Documents {
    v1::Documents {
        config_json: Some(tenant.config.clone()),
        theme_json: Some(tenant.theme.clone()),
        integrations_json: Some(tenant.integrations.clone()),
    }
}

/// Whether the registry already serves exactly what the repo compiles to
/// (bundles are content-addressed, so equal hashes mean equal content).
pub fn is_live(compiled: &CompiledTenant, live: &v1::Tenant) -> bool {
    let sha = |bundle: &Option<v1::Bundle>| bundle.as_ref().map(|bundle| bundle.sha256.clone()).unwrap_or_default();
    sha(&live.public_bundle) == compiled.public.sha256 && sha(&live.private_bundle) == compiled.private.sha256
}

/// Plans publishing `repo`: what changed, in which cohorts.
pub async fn plan<'a>(cluster: &impl Cluster, repo: &'a CompiledRepo, publish: &Publish) -> Result<Plan<'a>, Error> {
    if !(1..=COHORT_SIZE_MAX).contains(&publish.cohort_size) {
        let message = format!("--cohort-size: {} is not from 1 to {COHORT_SIZE_MAX}", publish.cohort_size);
        return Err(Error::invalid("--cohort-size", "range", message));
    }
    let in_repo: HashSet<&str> = repo.tenants.iter().map(|tenant| tenant.id.as_str()).collect();
    if let Some(unknown) = publish.canaries.iter().find(|canary| !in_repo.contains(canary.as_str())) {
        return Err(Error::invalid("--canary", "in-repo", format!("--canary: {unknown} is not a tenant of the repo")));
    }
    let live = cluster.list_tenants().await?;
    let live_by_id: HashMap<&str, &v1::Tenant> = live.iter().map(|tenant| (tenant.id.as_str(), tenant)).collect();
    let mut changed = Vec::new();
    // Unchanged tenants and the revision they are live at.
    let mut unchanged: HashMap<&str, u64> = HashMap::new();
    for tenant in &repo.tenants {
        match live_by_id.get(tenant.id.as_str()) {
            Some(current) if is_live(tenant, current) => {
                unchanged.insert(tenant.id.as_str(), current.mod_revision);
            }
            current => changed.push(Step {
                tenant,
                before: current.map(|current| current.mod_revision),
                golden: publish.golden.contains(tenant.id.as_str()),
            }),
        }
    }
    refused_at_live_revision(cluster, &unchanged).await?;
    let only_live = live.iter().filter(|tenant| !in_repo.contains(tenant.id.as_str())).count();
    let mut cohorts = Vec::new();
    for canary in &publish.canaries {
        if let Some(index) = changed.iter().position(|step| &step.tenant.id == canary) {
            cohorts.push(Cohort { label: "canary", steps: vec![changed.remove(index)] });
        }
    }
    while !changed.is_empty() {
        let rest = changed.split_off(publish.cohort_size.min(changed.len()));
        cohorts.push(Cohort { label: "cohort", steps: std::mem::replace(&mut changed, rest) });
    }
    Ok(Plan { cohorts, unchanged: unchanged.len(), only_live })
}

/// A publish that crashed after writing a cohort but before its gate left
/// tenants live that no gate judged. If an agent refused one of them at its
/// live revision, say so before anything else: republishing the same
/// content cannot fix it.
async fn refused_at_live_revision(cluster: &impl Cluster, unchanged: &HashMap<&str, u64>) -> Result<(), Error> {
    let (agents, _) = cluster.agents().await;
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
    Err(Error::Precondition {
        rule: "refused-at-live-revision".to_owned(),
        current_revision: None,
        expected_revision: None,
        message: format!(
            "live tenants that agents refused, unchanged in the repo (republishing them cannot help; change them \
             or `regctl rollback` them):\n  {}",
            refusals.join("\n  ")
        ),
    })
}

/// A write that applied.
struct Written {
    tenant: v1::Tenant,
    before: Option<u64>,
    golden: bool,
}

/// Runs `plan`, cohort by cohort, reporting each to `event`.
pub async fn run(
    cluster: &impl Cluster,
    publish: &Publish,
    plan: &Plan<'_>,
    gate: &impl Gate,
    event: &mut impl FnMut(Event),
) -> Report {
    let total = plan.tenants();
    let cohorts = plan.cohorts.len();
    let mut done = 0;
    let mut rows = Vec::new();
    for (mut row, cohort) in plan.rows().into_iter().zip(&plan.cohorts) {
        event(Event::CohortStarted { number: row.number, cohorts, label: cohort.label, done, total });
        let started = Instant::now();
        let (written, failure) = write_cohort(cluster, publish, cohort).await;
        row.revisions = revision_range(&written);
        let what = format!("publish {} {} of {cohorts}", cohort.label, row.number);
        let gated = match (failure, row.revisions) {
            (Some(failure), _) => Err(failure),
            (None, Some(revisions)) => check(cluster, publish, gate, &written, revisions, &what).await,
            (None, None) => Ok(()),
        };
        row.acked = gated.is_ok().then(|| started.elapsed());
        done += cohort.steps.len();
        if let Err(failure) = gated {
            let rolled_back = if publish.rollback {
                roll_back(cluster, publish, &written, row.number).await
            } else {
                "left as written (--no-rollback)".to_owned()
            };
            let kept = rows.iter().map(|row: &CohortRow| row.tenants).sum();
            let halt = Halt { number: row.number, cohorts, label: cohort.label, failure, rolled_back, kept };
            row.result = Err(format!("HALTED: {}", halt.failure));
            event(Event::CohortFinished(row.clone()));
            rows.push(row);
            return Report { cohorts: rows, halted: Some(halt) };
        }
        event(Event::CohortFinished(row.clone()));
        rows.push(row);
    }
    Report { cohorts: rows, halted: None }
}

fn revision_range(written: &[Written]) -> Option<(u64, u64)> {
    let revisions = written.iter().map(|written| written.tenant.mod_revision);
    Some((revisions.clone().min()?, revisions.max()?))
}

/// Writes a cohort's tenants; what applied, and the first failure if any.
async fn write_cohort(
    cluster: &impl Cluster,
    publish: &Publish,
    cohort: &Cohort<'_>,
) -> (Vec<Written>, Option<String>) {
    let results: Vec<(&Step, Result<v1::WriteResponse, Error>)> = stream::iter(&cohort.steps)
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
                actor: publish.actor.clone(),
                reason: publish.reason.clone(),
            };
            let create = step.before.is_none();
            let result = cluster.write_tenant(step.tenant.id.as_str(), create, documents(step.tenant), &options).await;
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
            Err(error) => {
                failure.get_or_insert(format!("writing {}: {error}", step.tenant.id));
            }
        }
    }
    (written, failure)
}

/// The cohort's gate: every agent acknowledged `last` with no NACK in
/// `first..=last`, the purge hook (if any) purged the cohort's runtime
/// configs, then the golden tenants pass the gate's check.
async fn check(
    cluster: &impl Cluster,
    publish: &Publish,
    gate: &impl Gate,
    written: &[Written],
    (first, last): (u64, u64),
    what: &str,
) -> Result<(), String> {
    wait_for_acks(cluster, first, last, publish.ack_timeout).await?;
    if let Some(hook) = &publish.purge {
        let tenants: Vec<v1::Tenant> = written.iter().map(|written| written.tenant.clone()).collect();
        purge_acknowledged(cluster, hook, what, last, &tenants).await?;
    }
    for written in written.iter().filter(|written| written.golden) {
        gate.check(&written.tenant).await?;
    }
    Ok(())
}

/// Waits until every connected agent acknowledged `last`; a NACK of a
/// revision in `first..=last` fails at once.
pub async fn wait_for_acks(cluster: &impl Cluster, first: u64, last: u64, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let (agents, answered) = cluster.agents().await;
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
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Restores each tenant of a failed cohort to its revision before the
/// publish (created tenants are deleted); says what it did.
async fn roll_back(cluster: &impl Cluster, publish: &Publish, written: &[Written], cohort: usize) -> String {
    let mut restored = Vec::new();
    let mut failed = Vec::new();
    for written in written {
        let tenant = &written.tenant;
        let options = WriteOptions {
            // Only if nothing else changed it since.
            expected_revision: Some(tenant.mod_revision),
            request_id: Some(format!("publish-rollback-{}-{}", tenant.id, tenant.mod_revision)),
            actor: publish.actor.clone(),
            reason: format!("publish halted: cohort {cohort} rolled back"),
        };
        let result = match written.before {
            Some(before) => cluster.rollback_tenant(&tenant.id, before, &options).await,
            None => cluster.delete_tenant(&tenant.id, &options).await,
        };
        match result {
            Ok(response) => restored.push(response.revision),
            Err(error) => failed.push(format!("{}: {error}", tenant.id)),
        }
    }
    let mut said = match (restored.iter().min(), restored.iter().max()) {
        (Some(first), Some(last)) => format!("rolled back {} tenants (revisions {first}..{last})", restored.len()),
        _ => "nothing to roll back".to_owned(),
    };
    if !failed.is_empty() {
        said.push_str(&format!("; {} could NOT be rolled back: {}", failed.len(), failed.join("; ")));
    }
    // The CDN may have fetched the halted version meanwhile: the rolled
    // back configs are purged too, once acknowledged.
    if let (Some(hook), Some(first), Some(last)) = (&publish.purge, restored.iter().min(), restored.iter().max()) {
        let tenants: Vec<v1::Tenant> = written.iter().map(|written| written.tenant.clone()).collect();
        let reason = format!("publish cohort {cohort} rolled back");
        let purged = match wait_for_acks(cluster, *first, *last, publish.ack_timeout).await {
            Ok(()) => purge_acknowledged(cluster, hook, &reason, *last, &tenants).await,
            Err(failure) => Err(failure),
        };
        match purged {
            Ok(purged) => said.push_str(&format!("; {purged}")),
            Err(failure) => said.push_str(&format!("; the rollback was NOT purged: {failure}")),
        }
    }
    said
}

#[cfg(test)]
mod tests;
