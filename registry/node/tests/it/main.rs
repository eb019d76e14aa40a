//! Integration tests of the registry crate: storage against openraft's
//! conformance suite and recovery of the state machine store.

// Tests may unwrap: a panic is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod raft_decoding;
mod state_machine_recovery;
mod storage_suite;
