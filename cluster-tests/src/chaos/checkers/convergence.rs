//! Guarantee 4: after faults heal, every agent reaches the final revision
//! within a bound. The run reads the revision committed when the faults
//! healed and measures how long each agent takes, from the heal, to hold it
//! (while the workload goes on); this checks it against the bound (the
//! times are printed). Every agent must also reach the final revision once
//! the workload stopped.

use std::time::Duration;

/// The bound: generous for a loaded two-core machine (a resync from a
/// snapshot included); the measured times go in the report.
pub const CONVERGENCE_MAX: Duration = Duration::from_secs(30);

/// `caught_up`: per agent, how long after the heal it held what was
/// committed by then (`None`: not within the bound).
pub fn check(caught_up: &[(String, Option<Duration>)]) -> Vec<String> {
    caught_up
        .iter()
        .filter(|(_, took)| took.is_none_or(|took| took > CONVERGENCE_MAX))
        .map(|(agent, took)| {
            format!("agent {agent} did not reach the final revision within {CONVERGENCE_MAX:?} ({took:?})")
        })
        .collect()
}
