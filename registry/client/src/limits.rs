//! The client's own limits, with units in the names. Those of the API
//! contract (message size, request timeout, history length) are
//! [`proto::limits`].

/// How long a client goes on retrying failures that may pass (no leader,
/// a node down or cut off) before it gives up, in milliseconds: longer than
/// an election after a leader dies (its lease, then the election timeout,
/// 3 s each at most by default), so a write rides it out.
pub const CLIENT_RETRY_MS_MAX: u64 = 10_000;

/// Pause between two rounds over the endpoints, in milliseconds (doubled each
/// round up to a second, with jitter).
pub const CLIENT_ROUND_BACKOFF_MS: u64 = 200;
