//! The client's retry policy, apart from gRPC so it can be tested with a
//! scripted cluster: try the preferred endpoint, move on while the failure
//! is one another node (or a moment later) may not have, follow a leader
//! hint that names a known endpoint, back off with jitter between rounds,
//! and give up after a bound with the last error and every endpoint named.

use std::future::Future;
use std::time::{Duration, Instant};

use rand::Rng;
use tonic::{Code, Status};

use proto::status;

use crate::limits::CLIENT_ROUND_BACKOFF_MS;

/// Whether a failed call may succeed at another node or a moment later.
pub(super) fn retryable(status: &Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled)
}

/// How long to pause before round `round` (1, 2, …) over the endpoints:
/// doubling from `CLIENT_ROUND_BACKOFF_MS`, at most 1 s, plus up to half
/// again of jitter.
fn round_pause(round: u32) -> Duration {
    let backoff_ms = (CLIENT_ROUND_BACKOFF_MS << round.min(3)).min(1_000);
    Duration::from_millis(backoff_ms + rand::rng().random_range(0..=backoff_ms / 2))
}

/// How a call is retried.
pub(super) struct Policy<'a> {
    /// Every endpoint, by address (leader hints name one of them).
    pub(super) addrs: &'a [&'a str],
    /// Each attempt's bound.
    pub(super) attempt_timeout: Duration,
    /// No new round starts after this.
    pub(super) give_up_after: Duration,
}

impl Policy<'_> {
    /// Runs `attempt(index)` at endpoint `first`, then as the policy says.
    /// Returns the answer and the index of the endpoint that gave it.
    pub(super) async fn call<T, F, Fut>(&self, first: usize, attempt: F) -> Result<(T, usize), Status>
    where
        F: Fn(usize) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let count = self.addrs.len();
        let mut index = first % count;
        let mut last_error = Status::unavailable("no endpoint tried");
        let give_up_at = Instant::now() + self.give_up_after;
        for tried in 0.. {
            if tried > 0 && tried % count == 0 {
                if Instant::now() >= give_up_at {
                    break;
                }
                tokio::time::sleep(round_pause((tried / count) as u32)).await;
            }
            let status = match tokio::time::timeout(self.attempt_timeout, attempt(index)).await {
                Ok(Ok(answer)) => return Ok((answer, index)),
                Ok(Err(status)) if retryable(&status) => status,
                Ok(Err(status)) => return Err(status),
                Err(_) => {
                    Status::deadline_exceeded(format!("no answer within {} ms", self.attempt_timeout.as_millis()))
                }
            };
            let addr = self.addrs[index];
            tracing::debug!(endpoint = %addr, %status, "retrying at another endpoint");
            let hinted = status::detail(&status)
                .map(|detail| detail.leader_grpc_addr)
                .and_then(|leader| self.addrs.iter().position(|known| *known == leader));
            index = match hinted {
                Some(leader) if leader != index => leader,
                _ => (index + 1) % count,
            };
            last_error = Status::new(
                status.code(),
                format!("{} (last tried {addr}; all of {} failed)", status.message(), self.addrs.join(",")),
            );
        }
        Err(last_error)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    const ADDRS: [&str; 3] = ["10.0.0.1:7101", "10.0.0.2:7101", "10.0.0.3:7101"];

    fn policy(give_up_after: Duration) -> Policy<'static> {
        Policy { addrs: &ADDRS, attempt_timeout: Duration::from_millis(200), give_up_after }
    }

    /// A scripted cluster: what each endpoint answers, and the order of attempts.
    struct Script {
        answer: fn(usize) -> Result<&'static str, Status>,
        tried: Mutex<Vec<usize>>,
    }

    impl Script {
        async fn attempt(&self, index: usize) -> Result<&'static str, Status> {
            self.tried.lock().unwrap().push(index);
            (self.answer)(index)
        }

        fn tried(&self) -> Vec<usize> {
            self.tried.lock().unwrap().clone()
        }
    }

    fn script(answer: fn(usize) -> Result<&'static str, Status>) -> Script {
        Script { answer, tried: Mutex::new(Vec::new()) }
    }

    /// A follower's refusal naming the leader, as `status::no_leader` makes it.
    fn not_leader(leader: &str) -> Status {
        status::with_detail(
            Code::Unavailable,
            "not the leader".to_owned(),
            proto::v1::ErrorDetail { leader_grpc_addr: leader.to_owned(), ..Default::default() },
        )
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_skipped_and_the_one_that_answered_is_returned() {
        let cluster = script(|index| match index {
            1 => Err(Status::unavailable("connection refused")),
            _ => Ok("written"),
        });
        let answer = policy(Duration::from_secs(5)).call(1, |index| cluster.attempt(index)).await.unwrap();
        assert_eq!(answer, ("written", 2));
        assert_eq!(cluster.tried(), [1, 2]);
    }

    #[tokio::test]
    async fn a_leader_hint_is_followed_straight_to_the_leader() {
        let cluster = script(|index| match index {
            2 => Ok("written"),
            _ => Err(not_leader(ADDRS[2])),
        });
        let answer = policy(Duration::from_secs(5)).call(0, |index| cluster.attempt(index)).await.unwrap();
        assert_eq!(answer, ("written", 2));
        assert_eq!(cluster.tried(), [0, 2], "endpoint 1 is not tried: the hint named 2");
    }

    #[tokio::test]
    async fn a_hint_naming_an_unknown_node_moves_on_in_order() {
        let cluster = script(|index| match index {
            1 => Ok("written"),
            _ => Err(not_leader("10.9.9.9:7101")),
        });
        assert_eq!(policy(Duration::from_secs(5)).call(0, |index| cluster.attempt(index)).await.unwrap().1, 1);
        assert_eq!(cluster.tried(), [0, 1]);
    }

    #[tokio::test]
    async fn a_refusal_that_no_retry_can_change_is_returned_at_once() {
        let cluster = script(|_| Err(Status::failed_precondition("expected revision 7, found 9")));
        let error = policy(Duration::from_secs(5)).call(0, |index| cluster.attempt(index)).await.unwrap_err();
        assert_eq!(error.code(), Code::FailedPrecondition);
        assert_eq!(cluster.tried(), [0], "one attempt only");
    }

    #[tokio::test]
    async fn a_cluster_without_a_leader_is_retried_in_rounds_then_given_up_naming_every_endpoint() {
        let cluster = script(|_| Err(Status::unavailable("no leader")));
        let started = Instant::now();
        let error = policy(Duration::from_millis(300)).call(0, |index| cluster.attempt(index)).await.unwrap_err();
        let tried = cluster.tried();
        assert!(tried.len() >= 6 && tried.len().is_multiple_of(3), "whole rounds, at least two: {tried:?}");
        assert_eq!(&tried[..6], [0, 1, 2, 0, 1, 2]);
        assert!(started.elapsed() >= Duration::from_millis(CLIENT_ROUND_BACKOFF_MS * 2), "a pause between rounds");
        assert_eq!(error.code(), Code::Unavailable);
        assert!(error.message().contains(&ADDRS.join(",")), "{}", error.message());
    }

    #[tokio::test]
    async fn a_silent_endpoint_times_out_and_the_next_is_tried() {
        let tried = Mutex::new(Vec::new());
        let attempt = |index: usize| {
            tried.lock().unwrap().push(index);
            async move {
                if index == 0 {
                    std::future::pending::<()>().await;
                }
                Ok::<_, Status>("read")
            }
        };
        assert_eq!(policy(Duration::from_secs(5)).call(0, attempt).await.unwrap(), ("read", 1));
        assert_eq!(*tried.lock().unwrap(), [0, 1]);
    }
}
