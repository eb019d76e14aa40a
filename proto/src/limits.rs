//! The limits of the API contract, which servers and clients both keep.

/// The largest gRPC message a registry node accepts or sends, in bytes.
pub const GRPC_MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// How long a request may take end to end (a forwarded write included)
/// before it fails, in milliseconds.
pub const CLIENT_REQUEST_TIMEOUT_MS: u64 = 10_000;

/// The most audit entries one history call returns.
pub const HISTORY_ENTRIES_MAX: u32 = 1000;
