//! Compiles the `.proto` contract with protox (pure Rust), so that a fresh
//! machine needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/tenantry/v1/registry.proto", "proto/tenantry/v1/raft.proto", "proto/tenantry/v1/agent.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("tenantry_descriptor.bin");
    std::fs::write(&descriptor_path, prost::Message::encode_to_vec(&descriptors))?;
    // Bundles as shared bytes: an api-node's response body is then a
    // reference-count bump, not a copy of the bundle per request.
    // The cluster status is also JSON (a node's `/status`, `regctl cluster
    // status -o json`), with the field names of the contract.
    tonic_prost_build::configure()
        .bytes(".tenantry.v1.Bundle.json")
        .type_attribute(".tenantry.v1.ClusterStatusResponse", "#[derive(serde::Serialize)]")
        .type_attribute(".tenantry.v1.Member", "#[derive(serde::Serialize)]")
        .compile_fds(descriptors)?;
    Ok(())
}
