//! The reference Tenantry API instance: resolves the tenant from the `Host`
//! header, serves `/config/{tenant}.json` with `X-Config-Version`, and
//! answers health, all from its embedded agent.
//!
//! * [`resolve`]: Host (or a trusted proxy's X-Forwarded-Host) to tenant id.
//! * [`policy`]: region safety and tenant status, one pure decision per request.
//! * [`server`]: the axum router and handlers.
//!
//! Work in progress toward the full api-node (region safety, the
//! tenant-scoped data API, the demo page and the smoke suite come next).

pub mod limits;
pub mod policy;
pub mod resolve;
pub mod server;
