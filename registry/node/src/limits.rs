//! Every limit of the registry, in one place, with units in the names.
//!
//! A limit that an operator may need to change is a default here and a flag
//! or config field in [`crate::config`]; the rest are fixed. The limits of
//! the API contract, which clients keep too, are [`proto::limits`].

pub use proto::limits::{CLIENT_REQUEST_TIMEOUT_MS, GRPC_MESSAGE_BYTES_MAX, HISTORY_ENTRIES_MAX};

/// The largest document (config, theme or integrations) in bytes, by
/// default: the config compiler's limit. Limits of document content (texts,
/// logos, integrations per tenant) are the compiler's ([`compiler::limits`]).
pub const DOCUMENT_BYTES_MAX_DEFAULT: usize = compiler::limits::DOCUMENT_BYTES_MAX;

/// The most tenants one list call returns.
pub const LIST_PAGE_TENANTS_MAX: u32 = 1000;

/// The default number of audit entries a history call returns.
pub const HISTORY_ENTRIES_DEFAULT: u32 = 100;

/// The most concurrent requests one gRPC connection may have in flight.
pub const GRPC_CONCURRENT_STREAMS_MAX: u32 = 1024;

/// gRPC connections one node holds open at once (agents, clients, peers);
/// more wait in the kernel's backlog until one closes.
pub const GRPC_CONNECTIONS_MAX: usize = 12_000;

/// HTTP connections (health, metrics, status) one node holds open at once.
pub const HTTP_CONNECTIONS_MAX: usize = 256;

/// HTTP/2 pings on idle gRPC connections, and how long an answer may take
/// before the connection is closed (a peer that vanished without a FIN).
pub const GRPC_KEEPALIVE_INTERVAL_MS: u64 = 10_000;
pub const GRPC_KEEPALIVE_TIMEOUT_MS: u64 = 5_000;

/// The largest header block a gRPC request may send.
pub const GRPC_HEADER_LIST_BYTES_MAX: u32 = 16 * 1024;

/// Streams a client may open and reset before the connection is closed
/// (the HTTP/2 "rapid reset" flood).
pub const GRPC_PENDING_RESETS_MAX: usize = 64;

/// Longest time any unary gRPC call may take on the server (streams: until
/// their first response); above every bounded wait inside a handler.
pub const GRPC_REQUEST_TIMEOUT_MS: u64 = 120_000;

/// How long a follower waits to apply up to a read index, in milliseconds.
pub const READ_INDEX_WAIT_MS_MAX: u64 = 5_000;

/// How long a node waits for in-flight requests at shutdown, in milliseconds.
pub const SHUTDOWN_GRACE_MS: u64 = 10_000;

/// Default Raft heartbeat interval in milliseconds: a fraction of the
/// election timeout, and above the 200 ms round trip between far regions.
pub const HEARTBEAT_MS_DEFAULT: u64 = 250;

/// Default lower bound of the randomized election timeout, in milliseconds:
/// several heartbeats, so that one lost or delayed heartbeat on a
/// cross-region link does not start an election.
pub const ELECTION_TIMEOUT_MS_MIN_DEFAULT: u64 = 1_500;

/// Default upper bound of the randomized election timeout, in milliseconds.
pub const ELECTION_TIMEOUT_MS_MAX_DEFAULT: u64 = 3_000;

/// Default number of applied entries between two snapshots.
pub const SNAPSHOT_EVERY_ENTRIES_DEFAULT: u64 = 10_000;

/// Bytes of applied commands (about: documents dominate) after which a
/// snapshot is taken, however few entries carried them: openraft's policy
/// counts entries, and one entry may batch hundreds of writes, so without
/// this a restart could read and replay a log many times the state's size.
pub const SNAPSHOT_EVERY_BYTES: u64 = 64 * 1024 * 1024;

/// Default number of entries kept in the log behind the last snapshot, so
/// that a briefly lagging follower catches up from the log, not a snapshot.
pub const LOG_KEPT_AFTER_SNAPSHOT_ENTRIES_DEFAULT: u64 = 1_000;

/// The most bytes of WAL kept behind the last snapshot (whole chunks), on
/// top of the entry count above: one entry may batch hundreds of writes,
/// and a start reads all of the kept log. Half the agents' history window
/// ([`WATCH_HISTORY_BYTES_MAX`] holds both scopes' encodings), which a
/// restarted node seeds from this log.
pub const LOG_KEPT_AFTER_SNAPSHOT_BYTES_MAX: u64 = WATCH_HISTORY_BYTES_MAX as u64 / 2;

/// The largest snapshot chunk streamed in one message, in bytes.
pub const SNAPSHOT_CHUNK_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// Default number of recent deltas a node keeps for agents that resume.
/// Deltas are one per Raft entry; at 100 writes/s this is 100 s of history.
pub const WATCH_HISTORY_DELTAS_MAX_DEFAULT: usize = 10_000;

/// The most bytes of encoded deltas the history keeps (both scopes). A
/// delta carries whole tenant records, so a bulk load of 100,000 tenants
/// would otherwise keep an encoded copy of each, twice, for the whole
/// window; agents further behind than this take a snapshot.
pub const WATCH_HISTORY_BYTES_MAX: usize = 64 * 1024 * 1024;

/// How long a delta stays in the history at most, in milliseconds.
pub const WATCH_HISTORY_AGE_MS_MAX: u64 = 10 * 60 * 1000;

/// Default number of deltas a subscriber may fall behind the newest before
/// it is cut (it then resumes from its own revision). Shared by all
/// subscribers: memory does not grow with their number.
pub const WATCH_QUEUE_DELTAS_MAX_DEFAULT: usize = 4096;

/// Default interval of Progress messages on an idle stream, in milliseconds.
pub const PROGRESS_INTERVAL_MS_DEFAULT: u64 = 1000;

/// Default number of agents one node serves at once.
pub const AGENTS_PER_NODE_MAX_DEFAULT: usize = 10_000;

/// The most agents one node remembers (connected or not); the longest
/// disconnected go first.
pub const AGENTS_TRACKED_MAX: usize = 100_000;

/// Tenants per snapshot chunk sent to an agent.
pub const SNAPSHOT_CHUNK_TENANTS: usize = 1000;

/// How long a node waits to catch up with an agent that is ahead of it, in
/// milliseconds, before it tells the agent to try another node.
pub const SINCE_REVISION_WAIT_MS_MAX: u64 = 10_000;

/// How long a new stream may take to say Hello, in milliseconds.
pub const HELLO_TIMEOUT_MS: u64 = 10_000;

/// Encoded messages queued per stream before it waits for the network.
pub const STREAM_QUEUE_MESSAGES: usize = 16;

/// The longest agent id in bytes.
pub const AGENT_ID_BYTES_MAX: usize = 128;

/// The most writes proposed together as one Raft entry (group commit).
pub const BATCH_COMMANDS_MAX: usize = 256;

/// Writes waiting for the proposer; beyond it, writers wait to enqueue.
pub const PROPOSALS_QUEUED_MAX: usize = 4096;

/// The most bytes of log entries raft-log keeps cached in memory.
pub const LOG_CACHE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The largest WAL chunk file, in bytes: a purge after a snapshot removes
/// the chunks wholly before it, so a start reads at most this much beyond
/// the log the snapshot does not cover.
pub const WAL_CHUNK_BYTES_MAX: usize = 16 * 1024 * 1024;

/// How long a membership change may take, in milliseconds (adding a learner
/// waits until it has caught up, which may mean a snapshot).
pub const MEMBERSHIP_CHANGE_MS_MAX: u64 = 120_000;
