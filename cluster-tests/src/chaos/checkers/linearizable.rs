//! Guarantee 2: registry operations are linearizable per tenant.
//!
//! The registry names the order it applied writes in: each write's
//! revision (Raft log index), and each read answers the revision of what it
//! read. So the checker needs no search: it checks that this order is a
//! valid linearization of the history (the version-order technique of
//! Jepsen's and Elle's register checkers):
//!
//! * every acknowledged write has its own revision, in the audit log;
//! * a read saw a value at a revision where that value was written;
//! * a compare-and-set that applied came right after the revision it
//!   expected; one refused named a revision other than the one it expected;
//! * real time: an operation that completed before another was invoked is
//!   not ordered after it (writes at their revision, reads and refused
//!   compare-and-sets just after the revision they saw).
//!
//! Timed-out writes may or may not have applied: one whose value a read or
//! an agent saw is placed at that revision, with no completion; the others
//! constrain nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{known_values, Truth};
use crate::chaos::history::{Call, Op, Outcome};

/// Where an operation sits in the registry's order: (revision, 0) for a
/// write, (revision, 1) for what read that revision.
type Position = (u64, u8);

pub fn check(ops: &[Op], truth: &Truth) -> Vec<String> {
    let mut violations = Vec::new();
    let known = known_values(ops, truth);
    let mut per_tenant: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops {
        per_tenant.entry(op.tenant.as_str()).or_default().push(op);
    }
    for (tenant, ops) in per_tenant {
        // Values seen at revisions (by reads): they place timed-out writes.
        let mut seen_at: BTreeMap<u64, u64> = BTreeMap::new();
        for op in &ops {
            if let (Call::Read, Outcome::Ok { revision, value }) = (&op.call, &op.outcome) {
                if let Some(other) = seen_at.insert(*revision, *value).filter(|other| other != value) {
                    violations.push(format!("{tenant}: revision {revision} read as {other} and as {value}"));
                }
            }
        }
        let mut placed: Vec<(Position, Duration, Option<Duration>, String)> = Vec::new();
        let mut write_revisions: BTreeMap<u64, u64> = BTreeMap::new();
        for op in &ops {
            let describe = || {
                format!(
                    "{:?} -> {:?} (process {}, {:?}..{:?})",
                    op.call, op.outcome, op.process, op.invoked, op.completed
                )
            };
            match (&op.call, &op.outcome) {
                (Call::Write { value, expected }, Outcome::Ok { revision, .. }) => {
                    if let Some(other) = write_revisions.insert(*revision, *value) {
                        violations.push(format!(
                            "{tenant}: writes of {other} and {value} both acknowledged at revision {revision}"
                        ));
                    }
                    if let Some(expected) = expected {
                        let previous = truth.previous(tenant, *revision);
                        if previous != Some(*expected) {
                            violations.push(format!(
                                "{tenant}: compare-and-set expecting {expected} applied at {revision}, after {previous:?}: {}",
                                describe()
                            ));
                        }
                    }
                    placed.push(((*revision, 0), op.invoked, Some(op.completed), describe()));
                }
                (Call::Write { value, .. }, Outcome::Unknown(_)) => {
                    if let Some((revision, _)) = seen_at.iter().find(|(_, seen)| *seen == value) {
                        write_revisions.entry(*revision).or_insert(*value);
                        placed.push(((*revision, 0), op.invoked, None, describe()));
                    }
                }
                (Call::Write { expected, .. }, Outcome::Mismatch { current }) => {
                    if Some(*current) == *expected {
                        violations.push(format!(
                            "{tenant}: compare-and-set refused though the tenant was at the expected {current}: {}",
                            describe()
                        ));
                    }
                    if truth.revision_at(tenant, *current) != Some(*current) {
                        violations.push(format!(
                            "{tenant}: refusal names revision {current}, never one of its changes: {}",
                            describe()
                        ));
                    }
                    placed.push(((*current, 1), op.invoked, Some(op.completed), describe()));
                }
                (Call::Read, Outcome::Ok { revision, value }) => {
                    if truth.revision_at(tenant, *revision) != Some(*revision) {
                        violations.push(format!(
                            "{tenant}: read a revision {revision} that was never one of its changes: {}",
                            describe()
                        ));
                    }
                    if let Some(written) =
                        known.get(&(tenant.to_owned(), *revision)).filter(|written| *written != value)
                    {
                        violations.push(format!(
                            "{tenant}: read {value} at revision {revision}, where {written} was written: {}",
                            describe()
                        ));
                    }
                    placed.push(((*revision, 1), op.invoked, Some(op.completed), describe()));
                }
                _ => {}
            }
        }
        violations.extend(real_time_violations(tenant, placed));
    }
    violations
}

/// An operation invoked after another completed must not sit before it.
fn real_time_violations(tenant: &str, placed: Vec<(Position, Duration, Option<Duration>, String)>) -> Vec<String> {
    let mut violations = Vec::new();
    let mut by_completion: Vec<(Duration, Position, usize)> = placed
        .iter()
        .enumerate()
        .filter_map(|(index, (position, _, completed, _))| completed.map(|completed| (completed, *position, index)))
        .collect();
    by_completion.sort();
    let mut order: Vec<usize> = (0..placed.len()).collect();
    order.sort_by_key(|index| placed[*index].1);
    let mut completed = by_completion.into_iter().peekable();
    let mut latest: Option<(Position, usize)> = None;
    for index in order {
        let invoked = placed[index].1;
        while let Some((_, position, before)) = completed.next_if(|(done, _, _)| *done < invoked) {
            if latest.is_none_or(|(latest, _)| position > latest) {
                latest = Some((position, before));
            }
        }
        if let Some((latest, before)) = latest {
            if placed[index].0 < latest {
                violations.push(format!(
                    "{tenant}: not linearizable: `{}` completed before `{}` was invoked but sits after it",
                    placed[before].3, placed[index].3
                ));
            }
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(call: Call, outcome: Outcome, invoked: u64, completed: u64) -> Op {
        Op {
            process: 0,
            tenant: "t".to_owned(),
            call,
            invoked: Duration::from_millis(invoked),
            completed: Duration::from_millis(completed),
            outcome,
        }
    }

    fn truth(changes: &[u64], now: (u64, u64)) -> Truth {
        Truth {
            changes: [("t".to_owned(), changes.to_vec())].into(),
            now: [("t".to_owned(), now)].into(),
            revision: now.0,
            created: [(("t".to_owned(), changes[0]), 0)].into(),
        }
    }

    #[test]
    fn accepts_a_valid_history_and_catches_each_kind_of_anomaly() {
        let write = |value, expected| Call::Write { value, expected };
        let ok = |revision, value| Outcome::Ok { revision, value };
        let valid = [
            op(write(1, None), ok(5, 1), 0, 10),
            op(Call::Read, ok(5, 1), 11, 12),
            op(write(2, Some(5)), ok(7, 2), 8, 20),
            op(write(3, Some(5)), Outcome::Mismatch { current: 7 }, 21, 22),
            op(write(4, None), Outcome::Unknown("timeout".to_owned()), 23, 40),
            op(Call::Read, ok(9, 4), 41, 42),
        ];
        assert_eq!(check(&valid, &truth(&[1, 5, 7, 9], (9, 4))), Vec::<String>::new());

        let stale_read = [op(write(1, None), ok(5, 1), 0, 10), op(Call::Read, ok(1, 0), 11, 12)];
        let found = check(&stale_read, &truth(&[1, 5], (5, 1)));
        assert!(found.iter().any(|violation| violation.contains("not linearizable")), "{found:?}");

        let wrong_value = [op(write(1, None), ok(5, 1), 0, 10), op(Call::Read, ok(5, 2), 11, 12)];
        let found = check(&wrong_value, &truth(&[1, 5], (5, 1)));
        assert!(found.iter().any(|violation| violation.contains("where 1 was written")), "{found:?}");

        let lost_cas = [op(write(1, Some(1)), ok(7, 1), 0, 10)];
        let found = check(&lost_cas, &truth(&[1, 5, 7], (7, 1)));
        assert!(
            found.iter().any(|violation| violation.contains("expecting 1 applied at 7, after Some(5)")),
            "{found:?}"
        );

        let time_travel = [op(write(1, None), ok(7, 1), 0, 10), op(write(2, None), ok(5, 2), 11, 20)];
        let found = check(&time_travel, &truth(&[1, 5, 7], (7, 1)));
        assert!(found.iter().any(|violation| violation.contains("not linearizable")), "{found:?}");
    }
}
