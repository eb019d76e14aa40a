//! The agent crate's errors.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid; the message names the field.
    #[error("configuration: {0}")]
    Config(String),
    /// The local store failed; the agent runs on without it.
    #[error("local store: {0}")]
    Store(String),
}
