//! Tenantry's wire contract and the small validated domain types that every
//! crate shares.
//!
//! The generated gRPC code lives in [`v1`]; [`TenantId`], [`Region`] and
//! [`Revision`] are the domain types that make invalid values unrepresentable
//! past the edge of the system.

mod error;
pub mod fuzz;
pub mod limits;
mod region;
mod revision;
mod shard_endpoint;
pub mod status;
mod tenant_id;

pub use error::DomainError;
pub use region::is_served_in;
pub use region::{Region, REGION_LEN_MAX};
pub use revision::Revision;
pub use shard_endpoint::{ShardEndpoint, SslMode, POSTGRES_PORT_DEFAULT, SHARD_ENDPOINT_BYTES_MAX};
pub use tenant_id::{TenantId, RESERVED_TENANT_IDS, TENANT_ID_LEN_MAX};

/// Generated protobuf messages and tonic services (package `tenantry.v1`).
#[allow(unreachable_pub, clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("tenantry.v1");

    /// The encoded file descriptor set, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("tenantry_descriptor");
}
