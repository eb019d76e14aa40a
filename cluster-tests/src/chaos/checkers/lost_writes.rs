//! Guarantee 1: no acknowledged registry write is lost. Every write the
//! registry acknowledged is in the tenant's audit log at the revision it
//! was acknowledged with, and the tenant now is at its last change, so
//! nothing acknowledged was rolled back by an election, a crash or a
//! partition.

use super::Truth;
use crate::chaos::history::{Call, Op, Outcome};

pub fn check(ops: &[Op], truth: &Truth) -> Vec<String> {
    let mut violations = Vec::new();
    for op in ops {
        let (Call::Write { value, .. }, Outcome::Ok { revision, .. }) = (&op.call, &op.outcome) else { continue };
        let kept = truth.changes.get(&op.tenant).is_some_and(|changes| changes.binary_search(revision).is_ok());
        if !kept {
            violations.push(format!(
                "lost write: {} = {value} acknowledged at revision {revision} (process {}, at {:?}) is not in its audit log",
                op.tenant, op.process, op.completed
            ));
        }
    }
    for (tenant, changes) in &truth.changes {
        let now = truth.now.get(tenant).map(|(revision, _)| *revision);
        if now != changes.last().copied() {
            violations.push(format!("{tenant} is at revision {now:?} but its last change was {:?}", changes.last()));
        }
    }
    violations
}
