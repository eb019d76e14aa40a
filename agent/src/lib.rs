//! The Tenantry agent: the sidecar on every API and frontend node that
//! subscribes to its region's registry node, applies versioned updates in
//! order, acknowledges them and keeps a last-known-good copy on disk.
//!
//! This crate is filled by the agent stream work; it exists now so that the
//! workspace layout of DESIGN.md holds from the first commit.
