//! `regctl agents` and `regctl wait`: the agent fleet as the registry nodes
//! see it, merged.

use super::output::{self, Format};
use super::Failure;
use registry_client::Client;

/// `regctl agents`: every agent, or those behind the newest revision.
pub(super) async fn agents(
    client: &Client,
    lagging: bool,
    region: Option<String>,
    format: Format,
) -> Result<(), Failure> {
    let lists = client.list_agents().await;
    if lists.iter().all(|(_, list)| list.is_err()) {
        return Err(Failure("no endpoint answered".to_owned()));
    }
    let (agents, revision) = registry_client::merge_agents(&lists);
    let agents: Vec<_> = agents
        .into_iter()
        .filter(|agent| region.as_ref().is_none_or(|region| &agent.region == region))
        .filter(|agent| !lagging || !agent.connected || agent.acked_revision < revision)
        .collect();
    output::agents(&agents, revision, format);
    Ok(())
}

/// `regctl wait`: polls every node's agent list until every connected agent
/// (of `region`) acknowledged `revision`.
pub(super) async fn wait(
    client: &Client,
    revision: u64,
    region: Option<String>,
    timeout_s: u64,
    format: Format,
) -> Result<(), Failure> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout_s);
    loop {
        let lists = client.list_agents().await;
        let answered = lists.iter().any(|(_, list)| list.is_ok());
        let (agents, _) = registry_client::merge_agents(&lists);
        let waiting_for: Vec<_> = agents
            .into_iter()
            .filter(|agent| agent.connected)
            .filter(|agent| region.as_ref().is_none_or(|region| &agent.region == region))
            .collect();
        let behind: Vec<_> = waiting_for.iter().filter(|agent| agent.acked_revision < revision).cloned().collect();
        if answered && behind.is_empty() {
            output::info(
                format,
                &format!("all {} connected agents acknowledged revision {revision}", waiting_for.len()),
            );
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            output::agents(&behind, revision, format);
            return Err(Failure(format!(
                "{} of {} connected agents had not acknowledged revision {revision} after {timeout_s} s (listed above)",
                behind.len(),
                waiting_for.len()
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
