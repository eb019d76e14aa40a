//! The registry crate's errors.
//!
//! Operational errors (bad input, no leader, a conflict) go back to the
//! caller as gRPC statuses built in [`crate::server::status`]; this type is
//! for setting up and running a node, where errors are fatal.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid; the message names the field.
    #[error("configuration: {0}")]
    Config(String),
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    /// Raft stopped or refused to start (storage broken, shut down).
    #[error("raft: {0}")]
    Raft(String),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}
