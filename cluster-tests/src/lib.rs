//! The cluster test harness: real `registry` processes on loopback, each with
//! its own data directory, ports and log file, and the process faults the
//! suites inject (kill -9, SIGTERM, restart with the same data).
//!
//! Logs and data of a failed test are kept under `target/cluster-tests/`
//! and their path is printed; a passing test removes them.

pub mod agents;
pub mod api_nodes;
pub mod binaries;
pub mod certs;
pub mod chaos;
pub mod debian;
pub mod etcd;
pub mod http;
pub mod postgres;
pub mod process;
pub mod registry_cluster;
pub mod wait;

pub use registry_cluster::{ClusterOptions, RegistryCluster};
