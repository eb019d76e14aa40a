//! The cluster test harness: real `registry` processes on loopback, each with
//! its own data directory, ports and log file, and the process faults the
//! suites inject (kill -9, SIGTERM, restart with the same data).
//!
//! Logs and data of a failed test are kept under `target/cluster-tests/`
//! and their path is printed; a passing test removes them.

pub mod agents;
pub mod api_nodes;
pub mod binaries;
pub mod browser;
pub mod certs;
pub mod chaos;
pub mod debian;
pub mod etcd;
pub mod http;
pub mod local_cluster;
pub mod nginx;
pub mod otlp;
pub mod postgres;
pub mod process;
pub mod python;
pub mod registry_cluster;
pub mod wait;

pub use registry_cluster::{ClusterOptions, RegistryCluster};

/// What `/config/{tenant}.json` serves in `region` for a public bundle at
/// configVersion `version`, the api-nodes and the sidecars alike (empty
/// for a bundle that is not a JSON object).
pub fn served(bundle: &Option<proto::v1::Bundle>, region: &str, version: u64) -> Vec<u8> {
    let json = bundle.as_ref().map(|bundle| bundle.json.as_ref()).unwrap_or_default();
    compiler::regions::served_json(json, region, version).map(String::into_bytes).unwrap_or_default()
}
