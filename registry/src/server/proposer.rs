//! Group commit: writes that arrive while a proposal is in flight are
//! proposed together as one Raft entry.
//!
//! openraft 0.9's core appends one entry at a time and waits for its
//! fsync before it handles the next, so proposing each write alone costs
//! every write its own fsync and replication round (about 550 writes/s on
//! the reference machine, whatever the concurrency). The proposer never
//! waits to fill a batch: a lone write goes out at once; concurrent ones
//! share the next entry, up to [`BATCH_COMMANDS_MAX`], each tenant at most
//! once per batch (so a replayed request id's answer stays exact).
//!
//! Before it proposes, the leader judges each tenant write against its
//! applied state ([`registry_core::judge`]) when everything in its log is
//! applied, so that view is exactly the state the entry will apply to: a
//! refused write is answered at once and takes no log index.

use std::collections::HashSet;

use openraft::error::{ClientWriteError, RaftError};
use registry_core::{Command, Proposal, Response};
use tokio::sync::{mpsc, oneshot};

use crate::limits::{BATCH_COMMANDS_MAX, PROPOSALS_QUEUED_MAX};
use crate::raft_types::{Member, NodeId, Raft};
use crate::store::StateView;

/// Why a proposal did not apply (e.g. this node does not lead).
pub(crate) type WriteError = RaftError<NodeId, ClientWriteError<NodeId, Member>>;

type Reply = oneshot::Sender<Result<Response, WriteError>>;

/// The handle writers propose through.
pub(crate) struct Proposer {
    sender: mpsc::Sender<(Command, Reply)>,
}

impl Proposer {
    pub(crate) fn start(raft: Raft, view: StateView) -> Self {
        let (sender, receiver) = mpsc::channel(PROPOSALS_QUEUED_MAX);
        tokio::spawn(run(raft, view, receiver));
        Self { sender }
    }

    /// Proposes `command` (in a batch with whatever else is waiting) and
    /// returns its own response once the entry applied.
    pub(crate) async fn propose(&self, command: Command) -> Result<Response, WriteError> {
        let (reply, response) = oneshot::channel();
        let stopped = || RaftError::Fatal(openraft::error::Fatal::Stopped);
        self.sender.send((command, reply)).await.map_err(|_| stopped())?;
        response.await.map_err(|_| stopped())?
    }
}

async fn run(raft: Raft, view: StateView, mut receiver: mpsc::Receiver<(Command, Reply)>) {
    let mut carried = None;
    loop {
        let first = match carried.take() {
            Some(first) => first,
            None => match receiver.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let mut tenants = HashSet::new();
        tenants.extend(first.0.op.tenant().cloned());
        let mut batch = vec![first];
        while batch.len() < BATCH_COMMANDS_MAX {
            let Ok(next) = receiver.try_recv() else { break };
            if next.0.op.tenant().is_some_and(|tenant| !tenants.insert(tenant.clone())) {
                carried = Some(next);
                break;
            }
            batch.push(next);
        }
        let batch = judged(&raft, &view, batch);
        if batch.is_empty() {
            continue;
        }
        let (commands, replies): (Vec<Command>, Vec<Reply>) = batch.into_iter().unzip();
        match raft.client_write(Proposal { commands }).await {
            Ok(written) => {
                for (reply, response) in replies.into_iter().zip(written.data) {
                    let _ = reply.send(Ok(response));
                }
            }
            Err(error) => {
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// Answers the writes of `batch` that apply would refuse and returns the
/// rest. Only on a leader whose applied state is its whole log (otherwise
/// the entry would apply to a newer state than the one judged); tenant
/// writes after a topology operation in the same batch are left to apply.
fn judged(raft: &Raft, view: &StateView, batch: Vec<(Command, Reply)>) -> Vec<(Command, Reply)> {
    let next = {
        let metrics = raft.metrics();
        let metrics = metrics.borrow();
        let applied = view.applied_revision().get();
        if !metrics.state.is_leader() || metrics.last_log_index != Some(applied) {
            return batch;
        }
        proto::Revision(applied + 1)
    };
    let state = view.read();
    let mut topology_first = false;
    let mut kept = Vec::with_capacity(batch.len());
    for (command, reply) in batch {
        topology_first |= command.op.tenant().is_none();
        match registry_core::judge(&state.state, next, &command).filter(|_| !topology_first) {
            Some(error) => {
                let _ = reply.send(Ok(Response::Rejected(error)));
            }
            None => kept.push((command, reply)),
        }
    }
    kept
}
