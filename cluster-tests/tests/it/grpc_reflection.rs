//! gRPC server reflection, checked with a client that is not ours:
//! Python's grpcio-reflection (from PyPI, in a virtualenv the suite makes),
//! whose descriptor database speaks only `v1alpha`, and the same client's
//! messages sent to `v1`. Both list the registry's services, and the
//! Registry service's methods come back through v1alpha. Without a client
//! certificate, nothing is answered.

use std::process::Command;

use trust::Role;

use super::phase;
use cluster_tests::{ClusterOptions, RegistryCluster};

/// The client's exact versions (grpcio-reflection's client is v1alpha only).
const REQUIREMENTS: &[&str] = &["grpcio==1.68.1", "grpcio-reflection==1.68.1", "protobuf==5.29.6"];

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/reflection_client.py");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_answers_v1alpha_and_v1_to_pythons_grpcio_reflection() -> anyhow::Result<()> {
    let python = tokio::task::spawn_blocking(|| cluster_tests::python::venv("grpc-reflection", REQUIREMENTS)).await??;
    let cluster = RegistryCluster::start(ClusterOptions::new("grpc-reflection")).await?;
    let flags = cluster.tls_flags(&cluster_tests::certs::operator(Role::Viewer), &[])?;
    let file = |flag: &str| flags.iter().position(|f| f == flag).and_then(|at| flags.get(at + 1)).cloned();
    let (Some(ca), Some(cert), Some(key)) = (file("--ca"), file("--cert"), file("--key")) else {
        anyhow::bail!("no certificate flags in {flags:?}");
    };

    phase("python grpcio-reflection against a registry node, mutual TLS as a viewer");
    let output = Command::new(&python).arg(SCRIPT).args([&cluster.node(1).grpc, &ca, &cert, &key]).output()?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    eprintln!("{listed}");
    for version in ["v1alpha", "v1"] {
        let services: Vec<&str> = listed[version].as_array().into_iter().flatten().filter_map(|s| s.as_str()).collect();
        for service in ["tenantry.v1.Registry", "tenantry.v1.AgentSync"] {
            assert!(services.contains(&service), "{version}: {services:?}");
        }
    }
    let methods: Vec<&str> =
        listed["registry_methods"].as_array().into_iter().flatten().filter_map(|m| m.as_str()).collect();
    assert!(methods.contains(&"GetTenant") && methods.contains(&"UpdateTenant"), "{methods:?}");

    phase("without a client certificate: refused");
    let refused = Command::new(&python).arg(SCRIPT).args([&cluster.node(1).grpc, &ca, "-", "-"]).output()?;
    assert!(!refused.status.success(), "answered without a certificate: {}", String::from_utf8_lossy(&refused.stdout));

    cluster.passed();
    Ok(())
}
