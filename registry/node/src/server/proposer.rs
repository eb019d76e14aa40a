//! Group commit: writes that arrive while a proposal is in flight are
//! proposed together as one Raft entry, and the leader judges each of them
//! once, before proposing.
//!
//! The proposer never waits to fill a batch: a lone write goes out at once;
//! concurrent ones share the next entry, up to [`BATCH_COMMANDS_MAX`], each
//! tenant at most once per batch (so a replayed request id's answer stays
//! exact), a topology operation alone in its entry.
//!
//! Before it proposes, a leader whose log is all applied (it waits for that,
//! briefly) judges each tenant write against that state — exactly the state
//! the entry will apply to ([`registry_core::resolve`]): a refused write is
//! answered at once and takes no log index; the rest carry their documents
//! validated and compiled, so replicas only check what depends on state.
//! Elsewhere (a follower: the write is forwarded) nothing is judged.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use registry_core::{Command, Proposal, Response};
use tokio::sync::{mpsc, oneshot};

use crate::limits::{BATCH_COMMANDS_MAX, PROPOSALS_QUEUED_MAX};
use crate::raft_types::{Fatal, Raft, RaftError, WriteError};
use crate::stages::Stages;
use crate::store::StateView;

type Reply = oneshot::Sender<Result<Response, WriteError>>;

/// What the proposer needs of Raft: a seam, so that group commit and the
/// leader's judgement are unit-tested against a scripted log.
pub(crate) trait RaftLog: Send + Sync + 'static {
    /// Proposes `proposal` as one entry; its log index and each command's
    /// response, in order, once it applied.
    fn write(&self, proposal: Proposal) -> impl Future<Output = Result<(u64, Vec<Response>), WriteError>> + Send;

    /// The index of the last entry of this node's log when it leads (and
    /// has one); `None` otherwise.
    fn leader_log_index(&self) -> Option<u64>;

    /// Waits (bounded) until this node applied its log up to `index`.
    fn wait_applied(&self, index: u64) -> impl Future<Output = ()> + Send;
}

impl RaftLog for Raft {
    async fn write(&self, proposal: Proposal) -> Result<(u64, Vec<Response>), WriteError> {
        self.client_write(proposal).await.map(|written| (written.log_id.index, written.data))
    }

    fn leader_log_index(&self) -> Option<u64> {
        let metrics = self.metrics();
        let metrics = metrics.borrow_watched();
        metrics.last_log_index.filter(|_| metrics.state.is_leader())
    }

    async fn wait_applied(&self, index: u64) {
        // About one election: longer, and a leader that lost its quorum
        // would hold every write back well past the client's retry.
        let timeout = Duration::from_millis(self.config().election_timeout_max);
        // On a timeout the batch goes unjudged: apply then compiles it.
        let _ = self.wait(Some(timeout)).applied_index_at_least(Some(index), "the leader's log applied").await;
    }
}

/// The handle writers propose through.
pub(crate) struct Proposer {
    sender: mpsc::Sender<(Command, Reply)>,
}

impl Proposer {
    /// Starts proposing to `log`; each entry's proposal time goes to `stages`.
    pub(crate) fn start(log: impl RaftLog, view: StateView, stages: Arc<Stages>) -> Self {
        let (sender, receiver) = mpsc::channel(PROPOSALS_QUEUED_MAX);
        tokio::spawn(run(log, view, stages, receiver));
        Self { sender }
    }

    /// Proposes `command` (in a batch with whatever else is waiting) and
    /// returns its own response once the entry applied.
    ///
    /// A traced write gets a `propose` span (until its entry applied here),
    /// whose context the command carries into the log.
    pub(crate) async fn propose(&self, mut command: Command) -> Result<Response, WriteError> {
        let span = tracing::info_span!(target: plumbing::trace::TARGET, "propose", otel.kind = "producer");
        command.trace = plumbing::trace::traceparent(&span);
        let (reply, response) = oneshot::channel();
        let stopped = || RaftError::Fatal(Fatal::Stopped);
        let proposed = async move {
            self.sender.send((command, reply)).await.map_err(|_| stopped())?;
            response.await.map_err(|_| stopped())?
        };
        tracing::Instrument::instrument(proposed, span).await
    }
}

async fn run(log: impl RaftLog, view: StateView, stages: Arc<Stages>, mut receiver: mpsc::Receiver<(Command, Reply)>) {
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
        let alone = first.0.op.tenant().is_none();
        tenants.extend(first.0.op.tenant().cloned());
        let mut batch = vec![first];
        while !alone && batch.len() < BATCH_COMMANDS_MAX {
            let Ok(next) = receiver.try_recv() else { break };
            if next.0.op.tenant().is_none_or(|tenant| !tenants.insert(tenant.clone())) {
                carried = Some(next);
                break;
            }
            batch.push(next);
        }
        let batch = resolved(&log, &view, batch).await;
        if batch.is_empty() {
            continue;
        }
        let (commands, replies): (Vec<Command>, Vec<Reply>) = batch.into_iter().unzip();
        let proposed = std::time::Instant::now();
        match log.write(Proposal { commands }).await {
            Ok((index, responses)) => {
                stages.proposed(index, proposed);
                for (reply, response) in replies.into_iter().zip(responses) {
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
/// rest, judged ([`registry_core::resolve`]). Only on a leader whose applied
/// state is its whole log: otherwise the entry would apply to a newer state
/// than the one judged.
async fn resolved(log: &impl RaftLog, view: &StateView, batch: Vec<(Command, Reply)>) -> Vec<(Command, Reply)> {
    let Some(last) = log.leader_log_index() else {
        return batch;
    };
    if view.applied_revision().get() < last {
        log.wait_applied(last).await;
    }
    let applied = view.applied_revision().get();
    if log.leader_log_index() != Some(applied) {
        return batch;
    }
    let next = proto::Revision(applied + 1);
    let state = view.read();
    let mut kept = Vec::with_capacity(batch.len());
    for (command, reply) in batch {
        match registry_core::resolve(&state.state, next, command) {
            Ok(command) => kept.push((command, reply)),
            Err(error) => {
                let _ = reply.send(Ok(Response::Rejected(error)));
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use proto::TenantId;
    use registry_core::{CommandError, Op, WriteMeta};
    use tokio::sync::Semaphore;

    use super::*;

    /// A scripted log: records each proposal's commands (as their tenants,
    /// marked when they carry compiled documents, or `-` for a topology
    /// operation), answers each command with
    /// `Response::None`, and holds each write until the test releases it.
    struct ScriptedLog {
        proposals: Arc<Mutex<Vec<Vec<String>>>>,
        release: Arc<Semaphore>,
        leader_log_index: Option<u64>,
    }

    impl RaftLog for ScriptedLog {
        async fn write(&self, proposal: Proposal) -> Result<(u64, Vec<Response>), WriteError> {
            let names = proposal.commands.iter().map(|command| match (command.op.tenant(), &command.compiled) {
                (None, _) => "-".to_owned(),
                (Some(tenant), None) => tenant.to_string(),
                (Some(tenant), Some(_)) => format!("{tenant} (compiled)"),
            });
            self.proposals.lock().unwrap().push(names.collect());
            let index = self.proposals.lock().unwrap().len() as u64;
            self.release.acquire().await.unwrap().forget();
            Ok((index, proposal.commands.iter().map(|_| Response::None).collect()))
        }

        fn leader_log_index(&self) -> Option<u64> {
            self.leader_log_index
        }

        async fn wait_applied(&self, _index: u64) {}
    }

    struct Harness {
        proposer: Arc<Proposer>,
        proposals: Arc<Mutex<Vec<Vec<String>>>>,
        release: Arc<Semaphore>,
    }

    fn harness(leader_log_index: Option<u64>) -> Harness {
        let (proposals, release) = (Arc::default(), Arc::new(Semaphore::new(0)));
        let log = ScriptedLog { proposals: Arc::clone(&proposals), release: Arc::clone(&release), leader_log_index };
        let proposer = Arc::new(Proposer::start(log, StateView::default(), Arc::default()));
        Harness { proposer, proposals, release }
    }

    impl Harness {
        fn propose(&self, command: Command) -> tokio::task::JoinHandle<Result<Response, WriteError>> {
            let proposer = Arc::clone(&self.proposer);
            tokio::spawn(async move { proposer.propose(command).await })
        }

        async fn proposals_reach(&self, count: usize) -> Vec<Vec<String>> {
            for _ in 0..500 {
                let proposals = self.proposals.lock().unwrap().clone();
                if proposals.len() >= count {
                    return proposals;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            panic!("fewer than {count} proposals: {:?}", self.proposals.lock().unwrap());
        }
    }

    fn command(op: Op) -> Command {
        let meta = WriteMeta {
            expected_revision: None,
            request_id: None,
            actor: "operator:alice".to_owned(),
            reason: String::new(),
            at_unix_ms: 0,
            change_id: ulid::Ulid::new(),
        };
        Command::new(meta, op)
    }

    fn create(tenant: &str) -> Command {
        let documents = registry_core::DocumentsPatch { config: Some("{}".to_owned()), ..Default::default() };
        let tenant = TenantId::parse(tenant).unwrap();
        command(Op::CreateTenant { tenant, uid: ulid::Ulid::new(), documents, proposer_region: None })
    }

    fn delete(tenant: &str) -> Command {
        command(Op::DeleteTenant { tenant: TenantId::parse(tenant).unwrap() })
    }

    #[tokio::test]
    async fn a_lone_write_goes_out_at_once_and_writes_that_wait_share_the_next_entry() {
        let cluster = harness(None);
        let first = cluster.propose(delete("acme"));
        assert_eq!(cluster.proposals_reach(1).await, [["acme"]], "no waiting to fill a batch");

        // While the first entry is in flight, three writes queue up.
        let queued: Vec<_> = ["globex", "initech", "hooli"].map(|tenant| cluster.propose(delete(tenant))).into();
        tokio::time::sleep(Duration::from_millis(50)).await;
        cluster.release.add_permits(1);
        assert!(matches!(first.await.unwrap(), Ok(Response::None)));
        let proposals = cluster.proposals_reach(2).await;
        let mut second = proposals[1].clone();
        second.sort();
        assert_eq!(second, ["globex", "hooli", "initech"], "one entry for the three: {proposals:?}");
        cluster.release.add_permits(1);
        for write in queued {
            assert!(matches!(write.await.unwrap(), Ok(Response::None)), "each gets its own answer");
        }
    }

    #[tokio::test]
    async fn a_tenant_is_written_at_most_once_per_entry() {
        let cluster = harness(None);
        let first = cluster.propose(delete("acme"));
        cluster.proposals_reach(1).await;
        let again = [cluster.propose(delete("globex")), cluster.propose(delete("globex"))];
        tokio::time::sleep(Duration::from_millis(50)).await;
        cluster.release.add_permits(3);
        first.await.unwrap().unwrap();
        for write in again {
            write.await.unwrap().unwrap();
        }
        assert_eq!(cluster.proposals_reach(3).await, [vec!["acme"], vec!["globex"], vec!["globex"]]);
    }

    #[tokio::test]
    async fn a_leader_whose_log_is_applied_answers_a_refused_write_without_proposing_it() {
        // The default state has applied revision 0: a leader with log index 0 judges.
        let cluster = harness(Some(0));
        let refused = cluster.propose(delete("acme")).await.unwrap();
        assert!(
            matches!(refused, Ok(Response::Rejected(CommandError::NotFound { .. }))),
            "deleting a tenant that does not exist: {refused:?}"
        );
        assert!(cluster.proposals.lock().unwrap().is_empty(), "it took no log index");

        // A write it accepts goes out with its documents compiled.
        let create = cluster.propose(create("acme"));
        assert_eq!(cluster.proposals_reach(1).await, [["acme (compiled)"]]);
        cluster.release.add_permits(1);
        create.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_topology_operation_goes_alone_in_its_entry() {
        let cluster = harness(None);
        let first = cluster.propose(delete("acme"));
        cluster.proposals_reach(1).await;
        let queued = [
            cluster.propose(delete("globex")),
            cluster.propose(command(Op::InitCluster { cluster_id: ulid::Ulid::new() })),
            cluster.propose(delete("initech")),
        ];
        tokio::time::sleep(Duration::from_millis(50)).await;
        cluster.release.add_permits(4);
        first.await.unwrap().unwrap();
        for write in queued {
            write.await.unwrap().unwrap();
        }
        assert_eq!(cluster.proposals_reach(4).await, [vec!["acme"], vec!["globex"], vec!["-"], vec!["initech"]]);
    }

    #[tokio::test]
    async fn a_follower_or_a_leader_behind_its_log_does_not_judge() {
        for leader_log_index in [None, Some(7)] {
            let cluster = harness(leader_log_index);
            let write = cluster.propose(delete("acme"));
            assert_eq!(cluster.proposals_reach(1).await, [["acme"]], "{leader_log_index:?}: proposed, apply decides");
            cluster.release.add_permits(1);
            assert!(matches!(write.await.unwrap(), Ok(Response::None)));
        }
    }
}
