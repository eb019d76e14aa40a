//! Every limit of the agent, in one place, with units in the names.

/// Default largest bundle the agent accepts, in bytes. A bigger one is
/// refused (NACK) and the tenant keeps its last good version.
pub const BUNDLE_BYTES_MAX_DEFAULT: usize = 4 * 1024 * 1024;

/// The most tenants a snapshot may carry (a bound on a hostile or broken
/// registry, far above real fleets).
pub const SNAPSHOT_TENANTS_MAX: usize = 2_000_000;

/// First pause after a failed connection, in milliseconds; doubled per
/// failure up to the maximum, with up to 50 % jitter.
pub const RECONNECT_BACKOFF_MS_MIN: u64 = 100;

/// Longest pause between connection attempts, in milliseconds.
pub const RECONNECT_BACKOFF_MS_MAX: u64 = 5_000;

/// How long a connection attempt may take, in milliseconds.
pub const CONNECT_TIMEOUT_MS: u64 = 3_000;

/// How long opening a stream may take, in milliseconds: above the
/// registry's own bounded wait for a node that is behind the agent (10 s).
pub const OPEN_TIMEOUT_MS: u64 = 15_000;

/// A stream silent for this long (no delta, no progress) is presumed dead
/// and replaced, in milliseconds. Several progress intervals.
pub const STREAM_SILENCE_MS_MAX: u64 = 10_000;

/// A session that lasted this long counts as healthy: the next reconnect
/// starts again from the agent's own region, without backoff.
pub const HEALTHY_SESSION_MS: u64 = 5_000;

/// Refusals queued for sending; beyond it the oldest are dropped (they are
/// also logged).
pub const NACK_QUEUE_MAX: usize = 1024;

/// The longest host name (RFC 1035).
pub const HOST_BYTES_MAX: usize = 253;

/// The longest wait a sidecar client may ask for, in milliseconds.
pub const WAIT_MS_MAX: u64 = 60_000;

/// The default wait of a sidecar client that gives none, in milliseconds.
pub const WAIT_MS_DEFAULT: u64 = 10_000;

/// The journal of the last-known-good copy is folded into a new snapshot
/// file beyond this many bytes.
pub const DISK_JOURNAL_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// The largest frame the disk copy reads (a snapshot chunk of 1,000
/// records of the largest bundles stays below it; a torn length never
/// allocates more than the file holds).
pub const DISK_FRAME_BYTES_MAX: usize = 16 * 1024 * 1024 * 1024;

/// Connections the sidecar's local API holds open at once (long polls
/// included); more wait in the kernel's backlog.
pub const SIDECAR_CONNECTIONS_MAX: usize = 1_024;
