//! The checkers, one file per guarantee of DESIGN.md. Each reads the
//! [`History`](super::history::History) and what the registry holds after
//! the faults healed ([`Truth`]), and returns the violations it found.

pub mod agents;
pub mod convergence;
pub mod isolation;
pub mod linearizable;
pub mod lost_writes;
pub mod split_brain;

use std::collections::BTreeMap;

use super::history::{Call, Op, Outcome};

/// What the registry holds once every fault healed, read linearizably.
#[derive(Debug, Clone, Default)]
pub struct Truth {
    /// Per tenant, the revisions of every change it ever had (its audit
    /// log: the create and each write that applied), ascending.
    pub changes: BTreeMap<String, Vec<u64>>,
    /// Per tenant, its revision and value now.
    pub now: BTreeMap<String, (u64, u64)>,
    /// The revision the reads were answered at.
    pub revision: u64,
    /// Values known at a (tenant, revision): from the creates.
    pub created: BTreeMap<(String, u64), u64>,
}

impl Truth {
    /// The tenant's revision as of `revision`: its last change at or before it.
    pub fn revision_at(&self, tenant: &str, revision: u64) -> Option<u64> {
        let changes = self.changes.get(tenant)?;
        changes.iter().rev().find(|change| **change <= revision).copied()
    }

    /// The change before `revision` of `tenant` (for compare-and-set).
    pub fn previous(&self, tenant: &str, revision: u64) -> Option<u64> {
        let changes = self.changes.get(tenant)?;
        changes.iter().rev().find(|change| **change < revision).copied()
    }
}

/// Values known to have been written at (tenant, revision): acknowledged
/// writes, creates and what reads saw. Two different values at one
/// revision are reported by the linearizability checker.
pub fn known_values(ops: &[Op], truth: &Truth) -> BTreeMap<(String, u64), u64> {
    let mut known = truth.created.clone();
    for op in ops {
        if let Outcome::Ok { revision, value } = op.outcome {
            known.entry((op.tenant.clone(), revision)).or_insert(value);
        }
    }
    for (tenant, (revision, value)) in &truth.now {
        known.entry((tenant.clone(), *revision)).or_insert(*value);
    }
    known
}

/// Whether an operation is a write.
pub fn is_write(op: &Op) -> bool {
    matches!(op.call, Call::Write { .. })
}
