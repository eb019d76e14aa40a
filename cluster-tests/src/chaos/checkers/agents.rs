//! Guarantee 3: every agent applied revisions in order, without gaps, and
//! its state at revision R equals the registry's state at R.
//!
//! For every view an agent was seen holding: its revision never went back,
//! and each tenant in it is at the tenant's last change at or before that
//! revision (from the audit log), with the value written there. A skipped
//! delta would leave some tenant behind its last change, and a reordered
//! one would show the wrong value, so equality at every observed revision
//! is what "gap-free" means here. Resyncs from a snapshot are allowed jumps
//! (and counted).

use std::collections::BTreeMap;

use super::Truth;
use crate::chaos::history::AgentObservation;

pub fn check(observations: &[AgentObservation], truth: &Truth, known: &BTreeMap<(String, u64), u64>) -> Vec<String> {
    let mut violations = Vec::new();
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for observation in observations {
        let agent = observation.agent.as_str();
        let revision = observation.revision;
        if let Some(previous) = last.insert(agent, revision).filter(|previous| *previous > revision) {
            violations.push(format!(
                "agent {agent} went back from revision {previous} to {revision} at {:?}",
                observation.at
            ));
        }
        if revision == 0 {
            continue;
        }
        let held: BTreeMap<&str, (u64, Option<u64>)> =
            observation.tenants.iter().map(|(tenant, at, value)| (tenant.as_str(), (*at, *value))).collect();
        for tenant in truth.changes.keys() {
            let expected = truth.revision_at(tenant, revision);
            let got = held.get(tenant.as_str()).map(|(at, _)| *at);
            if got != expected {
                violations.push(format!(
                    "agent {agent} at revision {revision} ({:?}) holds {tenant} at {got:?}, the registry at {expected:?}",
                    observation.at
                ));
                continue;
            }
            let value = held.get(tenant.as_str()).and_then(|(_, value)| *value);
            let written = expected.and_then(|at| known.get(&(tenant.clone(), at)));
            if let (Some(value), Some(written)) = (value, written) {
                if value != *written {
                    violations.push(format!(
                        "agent {agent} at revision {revision} holds {tenant} = {value}, the registry wrote {written} at {expected:?}"
                    ));
                }
            }
        }
    }
    violations
}

/// How many distinct views each agent was seen holding, and how many
/// snapshots (resyncs) it applied during the run.
pub fn summary(observations: &[AgentObservation]) -> BTreeMap<String, (usize, u64)> {
    let mut summary: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    let mut first_snapshots: BTreeMap<&str, u64> = BTreeMap::new();
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    // Counted from the agent's first view (its initial sync is not a resync).
    for observation in observations.iter().filter(|observation| observation.revision > 0) {
        let first = *first_snapshots.entry(&observation.agent).or_insert(observation.snapshots);
        let entry = summary.entry(observation.agent.clone()).or_default();
        entry.1 = observation.snapshots - first;
        if last.insert(&observation.agent, observation.revision) != Some(observation.revision) {
            entry.0 += 1;
        }
    }
    summary
}
