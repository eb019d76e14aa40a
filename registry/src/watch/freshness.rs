//! When this node was last known current.
//!
//! DESIGN.md: a node is current as of the moment it confirmed the leader's
//! commit index, once it has applied that far. The node measures exactly
//! that with a linearizable read barrier (read index: the leader confirms its
//! leadership with a quorum) at a fixed interval: if the barrier started at
//! `t0` completes, the node was current as of `t0`. In a minority partition
//! the barrier fails, so the age grows, and so do its agents' staleness.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Freshness {
    current_as_of: Mutex<Option<Instant>>,
}

impl Freshness {
    /// Records that the node was current as of `as_of`.
    pub fn record(&self, as_of: Instant) {
        if let Ok(mut current) = self.current_as_of.lock() {
            if current.is_none_or(|known| known < as_of) {
                *current = Some(as_of);
            }
        }
    }

    /// Milliseconds since the node was last known current; `u64::MAX` if never.
    pub fn age_ms(&self) -> u64 {
        match self.current_as_of.lock().ok().and_then(|current| *current) {
            Some(as_of) => as_of.elapsed().as_millis().min(u128::from(u64::MAX - 1)) as u64,
            None => u64::MAX,
        }
    }

    /// How long ago the node was last known current, if ever.
    pub fn age(&self) -> Option<Duration> {
        match self.age_ms() {
            u64::MAX => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_only_moves_forward() {
        let freshness = Freshness::default();
        assert_eq!(freshness.age_ms(), u64::MAX);
        let now = Instant::now();
        freshness.record(now);
        freshness.record(now - Duration::from_secs(60));
        assert!(freshness.age_ms() < 1_000, "an older confirmation does not make the node staler");
    }
}
