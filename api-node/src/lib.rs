//! The reference Tenantry API instance: resolves the tenant from the `Host`
//! header, serves `/config/{tenant}.json` with `X-Config-Version`, and
//! answers health, all from its embedded agent.
//!
//! * [`resolve`]: Host (or a trusted proxy's X-Forwarded-Host) to tenant id.
//! * [`policy`]: region safety and tenant status, one pure decision per request.
//! * [`data`], [`auth`], [`shard`]: the tenant-scoped data API, its sessions
//!   and its per-shard stores.
//! * [`server`]: the axum router and handlers.
//!
//! Work in progress toward the full api-node (the demo page, the smoke
//! suite and the routing map's shards come next).

pub mod auth;
pub mod data;
pub mod limits;
pub mod policy;
pub mod resolve;
pub mod server;
pub mod shard;
