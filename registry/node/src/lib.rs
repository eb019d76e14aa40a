//! The Tenantry registry node: a Raft-replicated store of tenant
//! configuration, placement and history, one node per region.
//!
//! The pure state machine is the `registry-core` crate; [`store`] persists it
//! and the Raft log; [`watch`] fans applied changes out to agents;
//! [`server`] runs a node (openraft, gRPC, HTTP); [`wire`] is the Raft wire
//! and log format (protobuf); [`stages`] times each write's stages; [`backup`] is the offline
//! work on backups. Clients (regctl, the suites) use the `registry-client`
//! crate and never this one.

pub mod backup;
pub mod config;
pub(crate) mod convert;
pub mod error;
pub mod limits;
pub mod raft_types;
pub mod server;
pub mod stages;
pub mod store;
pub mod watch;
pub mod wire;
