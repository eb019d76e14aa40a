//! Agents for the suites: real `agent` libraries in the test process, one
//! gRPC connection each, as separate nodes would have.

use std::path::PathBuf;
use std::time::Duration;

use agent::{Agent, AgentConfig, Kind};
use proto::v1;

use crate::registry_cluster::{RegistryCluster, REGIONS};
use crate::wait;

/// Starts an agent of node `home`'s region (its node first, then the others).
pub async fn start(
    cluster: &RegistryCluster,
    agent_id: &str,
    home: u64,
    kind: Kind,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<Agent> {
    Ok(Agent::start(config(cluster, agent_id, home, kind, data_dir, cluster.endpoints_from(home))?).await?)
}

/// In-process agents log only when asked: `TEST_LOG=agent=debug`.
pub fn init_test_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("TEST_LOG"))
        .with_test_writer()
        .try_init();
}

/// The configuration of an agent of node `home`'s region with an explicit
/// endpoint list (for `Agent::start`).
pub fn config(
    cluster: &RegistryCluster,
    agent_id: &str,
    home: u64,
    kind: Kind,
    data_dir: Option<PathBuf>,
    endpoints: Vec<String>,
) -> anyhow::Result<AgentConfig> {
    init_test_logging();
    let region = REGIONS[(home - 1) as usize];
    Ok(AgentConfig {
        agent_id: agent_id.to_owned(),
        region: region.to_owned(),
        kind,
        endpoints,
        data_dir,
        base_domains: vec!["example.com".to_owned()],
        bundle_bytes_max: agent::limits::BUNDLE_BYTES_MAX_DEFAULT,
        cluster_id: None,
        tls: tls(cluster, agent_id, kind, region)?,
    })
}

/// The certificate of agent `agent_id` (`None` for an `--insecure` cluster).
pub fn tls(
    cluster: &RegistryCluster,
    agent_id: &str,
    kind: Kind,
    region: &str,
) -> anyhow::Result<Option<std::sync::Arc<trust::Tls>>> {
    cluster.tls(&crate::certs::agent(agent_id, kind.certified(), region)?, &[])
}

/// Waits until `agent` has applied `revision`.
pub async fn wait_for(agent: &Agent, revision: u64) -> anyhow::Result<()> {
    let what = format!("agent {} to reach revision {revision} (at {})", agent.config().agent_id, agent.revision());
    wait::until(&what, Duration::from_secs(30), || async { (agent.revision() >= revision).then_some(()) }).await
}

/// Checks that the agent holds exactly the registry's live tenants, with the
/// same configVersion and bundles (per its scope).
pub fn assert_matches(agent: &Agent, tenants: &[v1::Tenant]) {
    let view = agent.view();
    let id = &agent.config().agent_id;
    assert_eq!(view.len(), tenants.len(), "agent {id}: tenant count at revision {}", view.revision);
    for tenant in tenants {
        let entry = view.tenant(&tenant.id).unwrap_or_else(|| panic!("agent {id}: missing tenant {}", tenant.id));
        assert_eq!(entry.config_version(), tenant.config_revision, "agent {id}: {} configVersion", tenant.id);
        let public = tenant.public_bundle.as_ref().map(|bundle| bundle.json.as_ref()).unwrap_or_default();
        assert_eq!(entry.public_json(), public, "agent {id}: {} public bundle", tenant.id);
        let served = crate::served(&tenant.public_bundle, &agent.config().region, tenant.config_revision);
        assert_eq!(entry.served().json, served, "agent {id}: {} served runtime config", tenant.id);
        match agent.config().kind {
            Kind::Api => {
                let private = tenant.private_bundle.as_ref().map(|bundle| bundle.json.as_ref());
                assert_eq!(entry.private_json(), private, "agent {id}: {} private bundle", tenant.id);
            }
            Kind::Frontend => assert_eq!(entry.private_json(), None, "agent {id}: frontend holds no private bundle"),
        }
    }
}

/// Starts a frontend sidecar process (`agent`) `web-1@eu-west` following
/// node 2 (eu-west) first, with its certificate, its data in
/// `sidecar-data` and its log in `sidecar.log` under the cluster's
/// directory, and `extra` flags (`--http`, `--materialize`, …).
pub fn start_sidecar<S: AsRef<std::ffi::OsStr>>(
    cluster: &RegistryCluster,
    extra: impl IntoIterator<Item = S>,
) -> anyhow::Result<crate::process::ChildGuard> {
    let identity = crate::certs::agent("web-1@eu-west", trust::AgentKind::Frontend, "eu-west")?;
    let child = std::process::Command::new(crate::binaries::binary("agent"))
        .args(["--agent-id", "web-1@eu-west", "--region", "eu-west", "--kind", "frontend"])
        .args(["--endpoints", &cluster.endpoints_from(2).join(",")])
        .args(cluster.tls_flags(&identity, &[])?)
        .arg("--data-dir")
        .arg(cluster.dir.join("sidecar-data"))
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(cluster.dir.join("sidecar.log"))?)
        .spawn()?;
    Ok(crate::process::ChildGuard::new(child))
}
