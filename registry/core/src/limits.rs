//! Every limit `apply` enforces, in one place, with units in the names.
//! They are part of the replicated behaviour: every replica applies the same
//! entries the same way whatever its flags, so none of them is configurable.

/// The longest request id (idempotency key) in bytes.
pub const REQUEST_ID_BYTES_MAX: usize = 128;

/// The longest actor name in bytes.
pub const ACTOR_BYTES_MAX: usize = 128;

/// The longest reason in bytes.
pub const REASON_BYTES_MAX: usize = 1024;

/// The most remembered request ids (client sessions); the oldest go first.
pub const SESSIONS_MAX: usize = 100_000;

/// How long a request id is remembered, in milliseconds (one hour).
pub const SESSION_AGE_MS_MAX: u64 = 60 * 60 * 1000;

/// The most audit entries kept (in memory and in every snapshot); the
/// oldest go first.
pub const AUDIT_ENTRIES_MAX: usize = 100_000;

/// The hard cap on a document that `apply` enforces on every replica, in
/// bytes. A node's configurable document limit must not exceed it; it exists so that
/// replicas with different flags still apply the same entries identically.
pub const DOCUMENT_BYTES_HARD_MAX: usize = 4 * 1024 * 1024;
