//! What the clients saw: every operation's invocation and completion (or
//! timeout), on one clock, for the checkers.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A registry operation on one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// Sets the tenant's value to `value` (unique per write); with
    /// `expected`, a compare-and-set on the tenant's revision.
    Write { value: u64, expected: Option<u64> },
    /// A linearizable read.
    Read,
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A write applied at `revision`; a read saw `value` written at `revision`.
    Ok { revision: u64, value: u64 },
    /// A compare-and-set refused: the tenant was at `current`.
    Mismatch { current: u64 },
    /// Refused for sure (nothing applied), e.g. a read that found no leader.
    Failed(String),
    /// No answer in time: a write may or may not have applied.
    Unknown(String),
}

/// One operation of the history.
#[derive(Debug, Clone)]
pub struct Op {
    /// Which client task ran it.
    pub process: usize,
    pub tenant: String,
    pub call: Call,
    /// Since the history's start.
    pub invoked: Duration,
    pub completed: Duration,
    pub outcome: Outcome,
}

/// An api-node data request (guarantees 5 and 6).
#[derive(Debug, Clone)]
pub struct DataOp {
    pub region: &'static str,
    pub tenant: String,
    /// `true`: a write (POST /api/items); `false`: a read (items or config).
    pub write: bool,
    /// `true`: it reads or writes items (the tenant's shard); `false`: its
    /// runtime config (the agent's view only).
    pub items: bool,
    pub invoked: Duration,
    pub completed: Duration,
    /// HTTP status; 0 when no answer came.
    pub status: u16,
    /// `X-Tenant` of the answer.
    pub answered_tenant: Option<String>,
    /// Every tenant the answer's body names (items' titles carry theirs; a
    /// config its `tenant`).
    pub body_tenants: Vec<String>,
}

/// One view an agent held: its revision and each tenant's revision and value.
#[derive(Debug, Clone)]
pub struct AgentObservation {
    pub agent: String,
    pub at: Duration,
    pub revision: u64,
    /// How many snapshots (resyncs) the agent had applied by then, since it started.
    pub snapshots: u64,
    pub tenants: Vec<(String, u64, Option<u64>)>,
}

/// The whole history of a run.
pub struct History {
    start: Instant,
    pub ops: Mutex<Vec<Op>>,
    pub data: Mutex<Vec<DataOp>>,
    pub agents: Mutex<Vec<AgentObservation>>,
    /// Named moments (faults, heals) for the report.
    pub events: Mutex<Vec<(Duration, String)>>,
}

impl Default for History {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            ops: Mutex::default(),
            data: Mutex::default(),
            agents: Mutex::default(),
            events: Mutex::default(),
        }
    }
}

impl History {
    /// The time since the history started.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn event(&self, what: impl Into<String>) {
        let what = what.into();
        eprintln!("[{:>8.3} s] {what}", self.now().as_secs_f64());
        if let Ok(mut events) = self.events.lock() {
            events.push((self.now(), what));
        }
    }

    pub fn record(&self, op: Op) {
        if let Ok(mut ops) = self.ops.lock() {
            ops.push(op);
        }
    }

    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().map(|ops| ops.clone()).unwrap_or_default()
    }

    pub fn data_ops(&self) -> Vec<DataOp> {
        self.data.lock().map(|ops| ops.clone()).unwrap_or_default()
    }

    pub fn observations(&self) -> Vec<AgentObservation> {
        self.agents.lock().map(|observations| observations.clone()).unwrap_or_default()
    }

    /// Counts for the report: (ok, mismatches, failed, unknown).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let ops = self.ops();
        let count = |test: fn(&Outcome) -> bool| ops.iter().filter(|op| test(&op.outcome)).count();
        (
            count(|outcome| matches!(outcome, Outcome::Ok { .. })),
            count(|outcome| matches!(outcome, Outcome::Mismatch { .. })),
            count(|outcome| matches!(outcome, Outcome::Failed(_))),
            count(|outcome| matches!(outcome, Outcome::Unknown(_))),
        )
    }

    /// The failed and unknown operations, for the report: when each was
    /// invoked, how long it took, its call and what it got.
    pub fn unsettled(&self) -> Vec<String> {
        let ops = self.ops();
        let unsettled = ops.iter().filter_map(|op| {
            let (kind, message) = match &op.outcome {
                Outcome::Failed(message) => ("failed", message),
                Outcome::Unknown(message) => ("unknown", message),
                _ => return None,
            };
            let took = op.completed.saturating_sub(op.invoked);
            Some(format!(
                "{kind} at {:.3} s after {took:.1?}: {} {:?}: {message}",
                op.invoked.as_secs_f64(),
                op.tenant,
                op.call
            ))
        });
        unsettled.collect()
    }
}
