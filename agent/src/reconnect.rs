//! When and where an agent reconnects: its own region's node first, the
//! others after short sessions, with capped doubling pauses and jitter.

use std::time::Duration;

use rand::Rng;

use crate::limits::{HEALTHY_SESSION_MS, RECONNECT_BACKOFF_MS_MAX, RECONNECT_BACKOFF_MS_MIN};

/// Where and when the next session starts. After a session that stayed up
/// (at least `HEALTHY_SESSION_MS`), the own region's node again, soon;
/// after a short one, the next endpoint, the pause doubling up to
/// `RECONNECT_BACKOFF_MS_MAX`. Every pause has up to half again of jitter,
/// so a fleet cut off together does not come back in step.
#[derive(Debug, Default)]
pub(crate) struct Reconnect {
    /// Short sessions in a row.
    failures: u32,
    /// Into the endpoint list, own region first.
    index: usize,
}

impl Reconnect {
    /// The endpoint to try now.
    pub(crate) fn endpoint<'a>(&self, endpoints: &'a [String]) -> &'a str {
        &endpoints[self.index % endpoints.len()]
    }

    /// Records a session that lasted `lasted`; returns the pause before the next.
    pub(crate) fn ended(&mut self, lasted: Duration) -> Duration {
        if lasted >= Duration::from_millis(HEALTHY_SESSION_MS) {
            *self = Reconnect::default();
        } else {
            self.failures += 1;
            self.index += 1;
        }
        let base = RECONNECT_BACKOFF_MS_MIN.saturating_mul(1 << self.failures.min(10)).min(RECONNECT_BACKOFF_MS_MAX);
        Duration::from_millis(base + rand::rng().random_range(0..=base / 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> Vec<String> {
        ["us-east:7101", "eu-west:7101", "ap-south:7101"].map(str::to_owned).to_vec()
    }

    fn within(pause: Duration, base_ms: u64) -> bool {
        (base_ms..=base_ms + base_ms / 2).contains(&(pause.as_millis() as u64))
    }

    #[test]
    fn short_sessions_rotate_the_endpoints_with_growing_capped_pauses() {
        let (endpoints, mut reconnect) = (endpoints(), Reconnect::default());
        assert_eq!(reconnect.endpoint(&endpoints), "us-east:7101", "own region first");
        let mut tried = vec![];
        for failures in 1..=12u32 {
            let pause = reconnect.ended(Duration::from_millis(10));
            let base = (RECONNECT_BACKOFF_MS_MIN << failures.min(10)).min(RECONNECT_BACKOFF_MS_MAX);
            assert!(within(pause, base), "failure {failures}: {pause:?}, base {base} ms");
            tried.push(reconnect.endpoint(&endpoints).to_owned());
        }
        assert_eq!(tried[..4], ["eu-west:7101", "ap-south:7101", "us-east:7101", "eu-west:7101"]);
        assert!(within(reconnect.ended(Duration::ZERO), RECONNECT_BACKOFF_MS_MAX), "capped");
    }

    #[test]
    fn a_session_that_stayed_up_brings_the_agent_back_to_its_own_region_soon() {
        let (endpoints, mut reconnect) = (endpoints(), Reconnect::default());
        for _ in 0..5 {
            reconnect.ended(Duration::from_millis(10));
        }
        assert_ne!(reconnect.endpoint(&endpoints), "us-east:7101");
        let pause = reconnect.ended(Duration::from_millis(HEALTHY_SESSION_MS));
        assert_eq!(reconnect.endpoint(&endpoints), "us-east:7101");
        assert!(within(pause, RECONNECT_BACKOFF_MS_MIN), "{pause:?}");
    }

    #[test]
    fn pauses_are_jittered() {
        let pauses: std::collections::BTreeSet<_> =
            (0..50).map(|_| Reconnect { failures: 5, index: 0 }.ended(Duration::ZERO)).collect();
        assert!(pauses.len() > 10, "{} distinct pauses of 50", pauses.len());
    }
}
