//! Cluster suites: real registry processes on loopback. Each file names the
//! guarantee of DESIGN.md it checks.

// Tests may unwrap: a panic is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod adversary;
mod agent_cluster_change;
mod agent_cold_start;
mod agent_fleet;
mod agent_frontend_scope;
mod agent_history_window;
mod agent_materialize;
mod agent_nack;
mod agent_ordering;
mod agent_resume;
mod agent_slow_consumer;
mod api_node_config;
mod api_node_data;
mod api_node_demo;
mod backup_restore;
mod bench_smoke;
mod cdn_purge;
mod chaos;
mod config_canary;
mod config_publish;
mod console;
mod deploy_units;
mod durability;
mod edge_nginx;
mod failover;
mod grpc_reflection;
mod leader_transfer;
mod log_format;
mod membership;
mod metrics_lint;
mod placement_pins;
mod prometheus_rules;
mod regctl_progress;
mod regctl_up;
mod replication;
mod shard_database_crash;
mod shard_read_replica;
mod snapshot_catchup;
mod tenant_moves;
mod tidy;
mod traces;

use proto::v1;

/// A small document set for tenant `id`, carrying `n` so reads can check it.
pub(crate) fn documents(n: u64) -> v1::Documents {
    v1::Documents {
        config_json: Some(format!(r#"{{"public":{{"n":{n}}},"sla":"gold"}}"#)),
        theme_json: Some(r##"{"colors":{"primary":"#123456"}}"##.to_owned()),
        integrations_json: None,
    }
}

/// Sets `tenant`'s primary color in the config repo at `repo`.
pub(crate) fn set_primary(repo: &std::path::Path, tenant: &str, color: &str) -> anyhow::Result<()> {
    let path = repo.join("tenants").join(tenant).join("theme.json");
    let mut theme: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    theme["colors"]["primary"] = serde_json::Value::String(color.to_owned());
    std::fs::write(&path, theme.to_string())?;
    Ok(())
}

/// Runs regctl against `endpoints`; its exit status, stdout and stderr.
pub(crate) fn regctl(
    cluster: &cluster_tests::RegistryCluster,
    endpoints: &[String],
    args: &[&std::ffi::OsStr],
) -> std::process::Output {
    let output = cluster.regctl(endpoints).args(args).output().expect("regctl runs");
    eprintln!("regctl {args:?}: {}\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    output
}

/// Logs a test phase, openraft style.
pub(crate) fn phase(text: &str) {
    eprintln!("--- {text}");
}
