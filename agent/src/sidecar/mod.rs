//! The `agent` binary's parts, for applications not written in Rust and for
//! frontend nodes: a local HTTP API ([`http`]) and a directory of
//! materialized config files ([`materialize`]).

pub mod http;
pub mod materialize;
