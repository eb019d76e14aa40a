//! The reference Tenantry API instance: resolves the tenant from the `Host`
//! header, serves `/config/{tenant}.json`, enforces region safety and routes
//! tenant data to its shard, all through its embedded agent.
//!
//! This crate is filled by the api-node work; it exists now so that the
//! workspace layout of DESIGN.md holds from the first commit.
