//! The watch hub: one delta per applied Raft entry, fanned out to every
//! subscriber through a bounded broadcast ring, and a bounded history window
//! for agents that resume.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use super::DeltaFrames;
use crate::limits;

/// The hub's bounds; see `limits.rs` for the defaults and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchLimits {
    /// Deltas kept for resuming agents.
    pub history_deltas_max: usize,
    /// How long a delta stays in the history at most.
    pub history_age_max: Duration,
    /// The most bytes of encoded deltas the history keeps.
    pub history_bytes_max: usize,
    /// Deltas a subscriber may fall behind before it is cut.
    pub queue_deltas_max: usize,
    /// How often an idle stream gets a Progress message.
    pub progress_interval: Duration,
    /// Agents one node serves at once.
    pub agents_max: usize,
}

impl Default for WatchLimits {
    fn default() -> Self {
        Self {
            history_deltas_max: limits::WATCH_HISTORY_DELTAS_MAX_DEFAULT,
            history_age_max: Duration::from_millis(limits::WATCH_HISTORY_AGE_MS_MAX),
            history_bytes_max: limits::WATCH_HISTORY_BYTES_MAX,
            queue_deltas_max: limits::WATCH_QUEUE_DELTAS_MAX_DEFAULT,
            progress_interval: Duration::from_millis(limits::PROGRESS_INTERVAL_MS_DEFAULT),
            agents_max: limits::AGENTS_PER_NODE_MAX_DEFAULT,
        }
    }
}

/// What the ring carries.
#[derive(Debug, Clone)]
pub enum HubEvent {
    Delta(Arc<DeltaFrames>),
    /// The node installed a snapshot: the delta sequence restarts, and every
    /// subscriber must resume.
    Reset,
}

/// Where a new subscriber starts.
pub enum Start {
    /// It is current: live deltas only.
    Live,
    /// Replay these history deltas (contiguous, after its revision), then live.
    Replay(Vec<Arc<DeltaFrames>>),
    /// Its revision has left the history window: a snapshot, then live.
    Snapshot,
}

/// A new subscription: where to start, and the live ring from that moment.
pub struct Subscription {
    pub start: Start,
    pub events: broadcast::Receiver<HubEvent>,
}

/// The recent deltas, oldest first, and the bytes they hold.
#[derive(Default)]
struct History {
    deltas: VecDeque<Arc<DeltaFrames>>,
    bytes: usize,
}

impl History {
    fn push(&mut self, delta: Arc<DeltaFrames>) {
        self.bytes += delta.bytes();
        self.deltas.push_back(delta);
    }

    fn clear(&mut self) {
        self.deltas.clear();
        self.bytes = 0;
    }

    /// Drops the oldest deltas beyond the count, byte and age bounds.
    fn trim(&mut self, limits: &WatchLimits) {
        while self.deltas.len() > limits.history_deltas_max
            || self.bytes > limits.history_bytes_max
            || self.deltas.front().is_some_and(|oldest| oldest.published_at.elapsed() > limits.history_age_max)
        {
            let Some(oldest) = self.deltas.pop_front() else { break };
            self.bytes -= oldest.bytes();
        }
    }
}

pub struct WatchHub {
    history: Mutex<History>,
    events: broadcast::Sender<HubEvent>,
    /// The revision of the last delta published (the applied revision).
    published: watch::Sender<u64>,
    limits: WatchLimits,
}

impl WatchHub {
    /// A hub whose sequence continues after `applied_revision`.
    pub fn new(applied_revision: u64, limits: WatchLimits) -> Arc<Self> {
        let (events, _) = broadcast::channel(limits.queue_deltas_max.max(1));
        Arc::new(Self {
            history: Mutex::new(History::default()),
            events,
            published: watch::Sender::new(applied_revision),
            limits,
        })
    }

    pub fn limits(&self) -> WatchLimits {
        self.limits
    }

    fn history(&self) -> MutexGuard<'_, History> {
        match self.history.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Publishes the deltas of consecutive entries, in order. The state
    /// machine applies entries gap-free, so a gap means the sequence was
    /// broken elsewhere: subscribers then resume (as after a reset) rather
    /// than ever see a gap.
    ///
    /// Revision 0 (the initial membership entry) is the empty state every
    /// agent starts from, not a delta.
    pub fn publish(&self, mut deltas: Vec<DeltaFrames>) {
        deltas.retain(|delta| delta.revision > 0);
        let Some(last) = deltas.last().map(|delta| delta.revision) else { return };
        let mut history = self.history();
        let mut expected = *self.published.borrow() + 1;
        for delta in deltas {
            if delta.revision != expected {
                tracing::error!(expected, revision = delta.revision, "delta sequence gap; subscribers resume");
                history.clear();
                let _ = self.events.send(HubEvent::Reset);
            }
            expected = delta.revision + 1;
            let delta = Arc::new(delta);
            history.push(delta.clone());
            // No receiver is fine: nobody is watching.
            let _ = self.events.send(HubEvent::Delta(delta));
        }
        history.trim(&self.limits);
        // Published last: a subscriber that sees this revision and an empty
        // ring has every delta up to it.
        self.published.send_replace(last);
    }

    /// Fills the empty history of a hub that has published nothing since it
    /// started with `deltas`, which end at its revision (a restart, see
    /// `StateMachineStore::seed_history`). Anything else is left alone.
    pub fn seed(&self, deltas: Vec<DeltaFrames>) {
        let mut history = self.history();
        let published = self.published();
        let contiguous = deltas.windows(2).all(|pair| pair[1].revision == pair[0].revision + 1);
        if !history.deltas.is_empty() || !contiguous || deltas.last().map(|delta| delta.revision) != Some(published) {
            tracing::warn!(published, "history not seeded: the deltas do not end at the hub's revision");
            return;
        }
        for delta in deltas {
            history.push(Arc::new(delta));
        }
        history.trim(&self.limits);
    }

    /// The node installed a snapshot at `revision`: forget the history and
    /// make every subscriber resume.
    pub fn reset(&self, revision: u64) {
        let mut history = self.history();
        history.clear();
        let _ = self.events.send(HubEvent::Reset);
        self.published.send_replace(revision);
    }

    /// The revision of the last published delta.
    pub fn published(&self) -> u64 {
        *self.published.borrow()
    }

    /// Waits until the published revision reaches `revision`, at most `timeout`.
    pub async fn wait_published(&self, revision: u64, timeout: Duration) -> Result<(), u64> {
        let mut receiver = self.published.subscribe();
        let reached = tokio::time::timeout(timeout, receiver.wait_for(|published| *published >= revision)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(self.published()),
        }
    }

    /// Subscribes an agent that has applied `since`. Taken under the history
    /// lock, so the start and the live ring meet without a gap or an overlap
    /// (except that a snapshot may already contain what the ring will carry;
    /// the stream skips those).
    pub fn subscribe(&self, since: u64, force_snapshot: bool) -> Subscription {
        let history = self.history();
        let events = self.events.subscribe();
        let published = self.published();
        let start = if force_snapshot {
            Start::Snapshot
        } else if since >= published {
            Start::Live
        } else if history.deltas.front().is_some_and(|oldest| oldest.revision <= since + 1) {
            Start::Replay(history.deltas.iter().filter(|delta| delta.revision > since).cloned().collect())
        } else {
            Start::Snapshot
        };
        Subscription { start, events }
    }

    /// How many deltas the history holds (for metrics).
    pub fn history_len(&self) -> usize {
        self.history().deltas.len()
    }

    /// How many bytes of encoded deltas the history holds (for metrics).
    pub fn history_bytes(&self) -> usize {
        self.history().bytes
    }

    /// How many streams are subscribed now (for metrics).
    pub fn subscribers(&self) -> usize {
        self.events.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(history_deltas_max: usize) -> Arc<WatchHub> {
        WatchHub::new(10, WatchLimits { history_deltas_max, queue_deltas_max: 4, ..Default::default() })
    }

    fn deltas(revisions: std::ops::RangeInclusive<u64>) -> Vec<DeltaFrames> {
        revisions.map(|revision| DeltaFrames::new(revision, &[], &Default::default(), Vec::new())).collect()
    }

    #[test]
    fn start_is_live_replay_or_snapshot() {
        let hub = hub(5);
        assert!(matches!(hub.subscribe(10, false).start, Start::Live));
        assert!(matches!(hub.subscribe(3, false).start, Start::Snapshot), "behind the (empty) history");
        hub.publish(deltas(11..=20));
        assert_eq!(hub.published(), 20);
        assert_eq!(hub.history_len(), 5, "history is bounded by count");
        match hub.subscribe(17, false).start {
            Start::Replay(replay) => {
                assert_eq!(replay.iter().map(|delta| delta.revision).collect::<Vec<_>>(), [18, 19, 20]);
            }
            _ => panic!("expected a replay"),
        }
        assert!(matches!(hub.subscribe(15, false).start, Start::Replay(_)), "16 is the oldest kept");
        assert!(matches!(hub.subscribe(14, false).start, Start::Snapshot), "15 left the window");
    }

    #[test]
    fn the_history_is_bounded_by_bytes_too() {
        // A tenant with a 10 KB document, made the way apply makes it.
        let tenant = |id: &str| {
            let command = registry_core::Command::new(
                registry_core::WriteMeta {
                    expected_revision: None,
                    request_id: None,
                    actor: "test".to_owned(),
                    reason: String::new(),
                    at_unix_ms: 1,
                    change_id: ulid::Ulid::nil(),
                },
                registry_core::Op::CreateTenant {
                    tenant: proto::TenantId::parse(id).expect("valid"),
                    uid: ulid::Ulid::nil(),
                    documents: registry_core::DocumentsPatch {
                        config: Some(format!(r#"{{"public":{{"pad":"{}"}}}}"#, "x".repeat(10_000))),
                        ..Default::default()
                    },
                    proposer_region: None,
                },
            );
            let mut state = registry_core::State::default();
            registry_core::apply(&mut state, proto::Revision(1), 0, &command);
            state.tenants.values().next().expect("created").clone()
        };
        let one = DeltaFrames::new(11, &[tenant("acme")], &Default::default(), Vec::new()).bytes();
        let hub = WatchHub::new(10, WatchLimits { history_bytes_max: 3 * one, ..Default::default() });
        hub.publish(
            (11..=20)
                .map(|revision| DeltaFrames::new(revision, &[tenant("acme")], &Default::default(), Vec::new()))
                .collect(),
        );
        assert_eq!(hub.history_len(), 3, "three deltas of {one} bytes fit");
        assert!(hub.history_bytes() <= 3 * one);
        assert!(matches!(hub.subscribe(17, false).start, Start::Replay(_)));
        assert!(matches!(hub.subscribe(16, false).start, Start::Snapshot), "beyond the byte bound");
    }

    #[test]
    fn a_slow_subscriber_lags_instead_of_growing_memory() {
        let hub = hub(100);
        let mut slow = hub.subscribe(10, false).events;
        hub.publish(deltas(11..=20));
        assert!(matches!(slow.try_recv(), Err(broadcast::error::TryRecvError::Lagged(6))));
    }

    #[test]
    fn a_gap_makes_subscribers_resume() {
        let hub = hub(5);
        let mut subscriber = hub.subscribe(10, false).events;
        hub.publish(deltas(12..=12));
        assert!(matches!(subscriber.try_recv(), Ok(HubEvent::Reset)));
        assert!(matches!(hub.subscribe(10, false).start, Start::Snapshot));
    }

    #[test]
    fn a_restarted_hub_is_seeded_with_the_entries_up_to_its_revision() {
        let hub = hub(5);
        hub.seed(deltas(3..=9));
        assert_eq!(hub.history_len(), 0, "deltas that do not end at the hub's revision are refused");
        hub.seed(deltas(2..=10));
        assert_eq!(hub.history_len(), 5, "bounded like any history");
        match hub.subscribe(7, false).start {
            Start::Replay(replay) => {
                assert_eq!(replay.iter().map(|delta| delta.revision).collect::<Vec<_>>(), [8, 9, 10])
            }
            _ => panic!("expected a replay"),
        }
        assert!(matches!(hub.subscribe(5, false).start, Start::Replay(_)), "6 is the oldest kept");
        assert!(matches!(hub.subscribe(4, false).start, Start::Snapshot), "4 is behind the window");
        hub.publish(deltas(11..=11));
        hub.seed(deltas(7..=11));
        assert_eq!(hub.history_len(), 5, "a hub that has history is not seeded again");
    }

    #[test]
    fn reset_restarts_the_sequence() {
        let hub = hub(5);
        let mut subscriber = hub.subscribe(10, false).events;
        hub.publish(deltas(11..=11));
        hub.reset(50);
        assert!(matches!(subscriber.try_recv(), Ok(HubEvent::Delta(_))));
        assert!(matches!(subscriber.try_recv(), Ok(HubEvent::Reset)));
        assert!(matches!(hub.subscribe(11, false).start, Start::Snapshot));
        hub.publish(deltas(51..=51));
    }
}
