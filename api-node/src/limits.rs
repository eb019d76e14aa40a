//! Every limit of the api-node, in one place, with units in the names.

/// Default staleness bound `S`: a view older than this makes the node
/// read-only (DESIGN.md guarantee 5). A few Progress intervals.
pub const STALENESS_MS_MAX_DEFAULT: u64 = 5_000;

/// `Cache-Control: max-age` of `/config/{tenant}.json`, in seconds: short,
/// so a browser revalidates soon after a change (cheap with the ETag).
pub const CONFIG_MAX_AGE_S: u64 = 5;

/// `Retry-After` of a 503 (stale view or tenant being moved), in seconds.
pub const RETRY_AFTER_S: u64 = 2;

/// The largest request body, in bytes.
pub const REQUEST_BODY_BYTES_MAX: usize = 64 * 1024;

/// Requests served at once; more wait for a slot.
pub const CONCURRENT_REQUESTS_MAX: usize = 4_096;

/// How long in-flight requests get at shutdown, in milliseconds.
pub const SHUTDOWN_GRACE_MS: u64 = 10_000;

/// The most bytes of a tenant's rows one move copies: they go to the new
/// shard in one transaction, held in memory.
pub const MOVE_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Rows of a move's copy per `INSERT` on the new shard (all in one
/// transaction): its progress is told after each.
pub const MOVE_CHUNK_ROWS: usize = 10_000;

/// How often the copy step of a move tells its progress (a line of its
/// streamed answer), in milliseconds; the caller's idle timeout is far longer.
pub const MOVE_PROGRESS_EVERY_MS: u64 = 250;

/// How long the copy step of a move waits for this node's view to reach the
/// revision that began the move, in milliseconds.
pub const MOVE_VIEW_WAIT_MS: u64 = 10_000;

/// Connections the public port holds open at once; more wait in the
/// kernel's backlog (behind a load balancer, a few hundred suffice).
pub const CONNECTIONS_MAX: usize = 4_096;

/// Failed logins one user of one tenant may have in a burst; then one more
/// per [`LOGIN_FAILURE_PER_USER_REFILL_MS`]. Slows password guessing against
/// one account from any number of addresses.
pub const LOGIN_FAILURES_PER_USER_BURST: u32 = 5;

/// How often a user's failed-login allowance grows back by one, in
/// milliseconds.
pub const LOGIN_FAILURE_PER_USER_REFILL_MS: u64 = 60_000;

/// Failed logins one client address may have in a burst, over all tenants
/// and users; then one more per [`LOGIN_FAILURE_PER_ADDRESS_REFILL_MS`].
/// Slows one client spraying passwords over many accounts. IPv6 clients
/// count per /64, the block one host usually gets.
pub const LOGIN_FAILURES_PER_ADDRESS_BURST: u32 = 20;

/// How often a client address's failed-login allowance grows back by one,
/// in milliseconds.
pub const LOGIN_FAILURE_PER_ADDRESS_REFILL_MS: u64 = 6_000;

/// The most keys each failed-login table (per user, per address) tracks;
/// past it the least recently touched key is forgotten. About 100 bytes a
/// key: a few MiB per table at most.
pub const LOGIN_LIMITER_KEYS_MAX: usize = 65_536;

/// The most `X-Forwarded-For` hops walked back to find the client behind
/// trusted proxies.
pub const FORWARDED_FOR_HOPS_MAX: usize = 16;

/// The most previous session keys (`--session-key-previous`) whose tokens
/// still verify.
pub const SESSION_KEYS_PREVIOUS_MAX: usize = 4;

/// Connections an api-node opens to one shard database at most; more
/// requests wait for one (up to [`SHARD_WAIT_MS`]).
pub const SHARD_CONNECTIONS_MAX_DEFAULT: usize = 16;

/// How long a request waits for a free connection to its shard, in
/// milliseconds, before it is answered 503 with `Retry-After`.
pub const SHARD_WAIT_MS: u64 = 2_000;

/// How long opening a connection to a shard may take, in milliseconds.
pub const SHARD_CONNECT_MS: u64 = 2_000;

/// The longest one statement may run on a shard, in milliseconds (the
/// database's `statement_timeout`); a move's copy gets [`MOVE_STATEMENT_MS`].
pub const SHARD_STATEMENT_MS: u64 = 5_000;

/// The longest one statement of a move's copy may run, in milliseconds.
pub const MOVE_STATEMENT_MS: u64 = 120_000;

/// How long an idempotency key is remembered, in milliseconds: a retry
/// within it returns the first answer.
pub const IDEMPOTENCY_KEY_TTL_MS: u64 = 24 * 60 * 60 * 1000;

/// Expired idempotency keys one write removes at most (the rest go with
/// later writes), so a write's cost stays bounded.
pub const IDEMPOTENCY_KEYS_PRUNED_PER_WRITE_MAX: i64 = 100;

/// How long `/health` waits for a shard to answer, in milliseconds.
pub const SHARD_HEALTH_MS: u64 = 1_000;

/// Live-config event streams (`/api/config/events`) open at once; more are
/// refused with 503 and `Retry-After`. Each holds a connection, not a slot
/// of [`CONCURRENT_REQUESTS_MAX`].
pub const CONFIG_EVENT_STREAMS_MAX: usize = 2_048;

/// How often an idle event stream sends a comment, in milliseconds, so
/// proxies and load balancers keep it open.
pub const CONFIG_EVENT_KEEPALIVE_MS: u64 = 15_000;
