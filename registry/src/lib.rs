//! The Tenantry registry: a Raft-replicated store of tenant configuration,
//! placement and history, one node per region.
//!
//! The pure state machine is the `registry-core` crate; [`store`] persists it
//! and the Raft log;
//! [`server`] runs a node (openraft, gRPC, HTTP); [`client`] is what regctl and
//! tests use to talk to a cluster; [`cli`] is regctl.

pub mod cli;
pub mod client;
pub mod config;
pub(crate) mod convert;
pub mod error;
pub mod http_client;
pub mod limits;
pub mod raft_types;
pub mod server;
pub mod store;
pub mod watch;
