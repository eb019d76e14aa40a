//! The reference Tenantry API instance: resolves the tenant from the `Host`
//! header, serves `/config/{tenant}.json` (with `configVersion` and `region`
//! in it, and as server-sent events when it changes), a demo
//! page, health, and a small tenant-scoped data API, all from its embedded
//! agent and the shard databases.
//!
//! * [`resolve`]: Host (or a trusted proxy's X-Forwarded-Host) to tenant id.
//! * [`policy`]: region safety and tenant status, one pure decision per request.
//! * [`data`], [`store`]: the tenant-scoped data API and the shards it reads
//!   and writes (PostgreSQL, or the embedded development store).
//! * [`login`], [`auth`], [`limiter`]: demo-user logins and session tokens;
//!   password hashes and token keys; the failed-login limiter.
//! * [`node`]: what every handler shares: [`node::Node`], the tenant
//!   extractors, the tenant response headers.
//! * [`server`]: the axum router and handlers; [`events`]: the runtime
//!   config, live, as server-sent events.
//! * [`admin`]: the operator listener: the copy and clean-up steps of a move
//!   between shards.
//!
//! Architecture Invariant: the api-node never talks to the registry
//! directly; everything it knows comes through its agent.

pub mod admin;
pub mod auth;
pub mod data;
pub mod events;
pub mod limiter;
pub mod limits;
pub mod login;
pub mod node;
pub mod policy;
pub mod resolve;
pub mod server;
pub mod store;
