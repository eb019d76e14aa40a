//! Integration tests of the registry crate: storage against openraft's
//! conformance suite and recovery of the state machine store.

mod state_machine_recovery;
mod storage_suite;
