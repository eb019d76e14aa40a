//! When this node was last known current, per revision.
//!
//! DESIGN.md: a node is current as of the moment it confirmed the leader's
//! commit index, once it has applied that far. The node measures exactly
//! that with a linearizable read barrier (read index: the leader confirms its
//! leadership with a quorum) at a fixed interval: a barrier started at `t0`
//! that returned read index `i` proves that the state at revision `i` was
//! current at `t0`. An agent stream that has sent up to revision `r` is then
//! current as of the latest `t0` whose `i <= r`. In a minority partition the
//! barrier fails, so the age grows, and so do its agents' staleness.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

/// Confirmations kept; at one probe per 500 ms, half a minute.
const CONFIRMATIONS_MAX: usize = 64;

#[derive(Debug, Default)]
pub struct Freshness {
    /// (when, read index), oldest first; both grow.
    confirmations: Mutex<VecDeque<(Instant, u64)>>,
}

impl Freshness {
    /// Records that the state at `read_index` was current at `as_of`.
    pub fn record(&self, as_of: Instant, read_index: u64) {
        let Ok(mut confirmations) = self.confirmations.lock() else { return };
        if confirmations.back().is_some_and(|(last, _)| *last >= as_of) {
            return;
        }
        confirmations.push_back((as_of, read_index));
        while confirmations.len() > CONFIRMATIONS_MAX {
            confirmations.pop_front();
        }
    }

    /// Milliseconds since a state at `revision` (or older) was last known
    /// current; `u64::MAX` if not known.
    pub fn age_ms_at(&self, revision: u64) -> u64 {
        let Ok(confirmations) = self.confirmations.lock() else { return u64::MAX };
        confirmations
            .iter()
            .rev()
            .find(|(_, read_index)| *read_index <= revision)
            .map_or(u64::MAX, |(as_of, _)| as_of.elapsed().as_millis().min(u128::from(u64::MAX - 1)) as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn age_is_measured_for_what_the_stream_has_sent() {
        let freshness = Freshness::default();
        assert_eq!(freshness.age_ms_at(100), u64::MAX);
        let now = Instant::now();
        freshness.record(now - Duration::from_secs(10), 5);
        freshness.record(now, 9);
        assert!(freshness.age_ms_at(9) < 1_000, "revision 9 was current just now");
        assert!(freshness.age_ms_at(7) >= 10_000, "revision 7 was only known current 10 s ago");
        assert_eq!(freshness.age_ms_at(4), u64::MAX, "never known current");
    }
}
