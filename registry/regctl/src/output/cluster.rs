//! What regctl prints about the cluster: members and their status, agents,
//! smoke checks, membership changes, failovers, topology, certificates.

use proto::v1;
use registry_client::workflows::smoke::SmokeRow;
use registry_client::Error;
use serde_json::json;

use super::{json_value, Format};

pub(crate) fn cluster_status(statuses: &[(String, Result<v1::ClusterStatusResponse, Error>)], format: Format) {
    match format {
        Format::Json => {
            let nodes: Vec<_> = statuses
                .iter()
                .map(|(endpoint, status)| match status {
                    Ok(status) => json!({ "endpoint": endpoint, "status": status }),
                    Err(error) => json!({ "endpoint": endpoint, "error": error.to_string() }),
                })
                .collect();
            json_value(&json!({ "nodes": nodes }));
        }
        Format::Human => {
            println!(
                "{:<22} {:>4} {:<10} {:<9} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>7}  {}",
                "ENDPOINT",
                "ID",
                "REGION",
                "STATE",
                "LEADER",
                "TERM",
                "LAST",
                "COMMITTED",
                "APPLIED",
                "SNAPSHOT",
                "TENANTS",
                "CERT EXPIRES"
            );
            for (endpoint, status) in statuses {
                match status {
                    Ok(status) => println!(
                        "{:<22} {:>4} {:<10} {:<9} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>7}  {}",
                        endpoint,
                        status.node_id,
                        status.region,
                        status.state,
                        status.leader_id.map_or("-".to_owned(), |id| id.to_string()),
                        status.term,
                        status.last_log_index,
                        status.committed_index,
                        status.applied_index,
                        status.snapshot_index,
                        status.tenants,
                        match status.cert_not_after_unix_s {
                            0 => "insecure".to_owned(),
                            unix_s => trust::tls::rfc3339(unix_s),
                        }
                    ),
                    Err(error) => println!("{endpoint:<22} unreachable: {error}"),
                }
            }
            if let Some(status) = statuses.iter().find_map(|(_, status)| status.as_ref().ok()) {
                let members: Vec<_> = status
                    .members
                    .iter()
                    .map(|member| {
                        format!(
                            "{}={}@{}{}",
                            member.id,
                            member.region,
                            member.grpc_addr,
                            if member.voter { "" } else { " (learner)" }
                        )
                    })
                    .collect();
                println!("members: {}", members.join(", "));
                println!("cluster id: {}", status.cluster_id);
            }
        }
    }
}

fn kind_name(kind: i32) -> &'static str {
    match v1::AgentKind::try_from(kind) {
        Ok(v1::AgentKind::Api) => "api",
        Ok(v1::AgentKind::Frontend) => "frontend",
        _ => "unknown",
    }
}

fn ago(unix_ms: u64) -> String {
    if unix_ms == 0 {
        return "never".to_owned();
    }
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |now| now.as_millis() as u64);
    format!("{:.1}s ago", now.saturating_sub(unix_ms) as f64 / 1000.0)
}

/// The agent fleet; `revision` is the newest any node published.
pub(crate) fn agents(agents: &[v1::AgentInfo], revision: u64, format: Format) {
    match format {
        Format::Json => {
            let agents: Vec<_> = agents
                .iter()
                .map(|agent| {
                    json!({
                        "agent_id": agent.agent_id, "region": agent.region, "kind": kind_name(agent.kind),
                        "node_id": agent.node_id, "connected": agent.connected,
                        "acked_revision": agent.acked_revision, "lag": revision.saturating_sub(agent.acked_revision),
                        "last_ack_unix_ms": agent.last_ack_unix_ms, "since_unix_ms": agent.since_unix_ms,
                        "last_nack": agent.last_nack.as_ref().map(|nack| json!({
                            "revision": nack.revision, "tenant": nack.tenant_id, "reason": nack.reason,
                            "at_unix_ms": agent.last_nack_unix_ms,
                        })),
                    })
                })
                .collect();
            json_value(&json!({ "revision": revision, "agents": agents }));
        }
        Format::Human => {
            println!(
                "{:<28} {:<10} {:<9} {:>4} {:<12} {:>9} {:>6} {:<12} {}",
                "AGENT", "REGION", "KIND", "NODE", "STATE", "ACKED", "LAG", "LAST ACK", "LAST NACK"
            );
            for agent in agents {
                let state = if agent.connected { "connected" } else { "gone" };
                let nack = agent
                    .last_nack
                    .as_ref()
                    .map(|nack| format!("rev {} {}: {}", nack.revision, nack.tenant_id, nack.reason))
                    .unwrap_or_default();
                println!(
                    "{:<28} {:<10} {:<9} {:>4} {:<12} {:>9} {:>6} {:<12} {}",
                    agent.agent_id,
                    agent.region,
                    kind_name(agent.kind),
                    agent.node_id,
                    state,
                    agent.acked_revision,
                    revision.saturating_sub(agent.acked_revision),
                    ago(agent.last_ack_unix_ms),
                    nack
                );
            }
            println!("{} agents; newest revision {revision}", agents.len());
        }
    }
}

pub(crate) fn smoke(rows: &[SmokeRow], format: Format) {
    match format {
        Format::Json => {
            let rows: Vec<_> = rows
                .iter()
                .map(|row| {
                    json!({
                        "tenant": row.tenant, "api": row.api, "check": row.check,
                        "ok": row.result.is_ok(), "error": row.result.as_ref().err(),
                    })
                })
                .collect();
            json_value(&json!({ "checks": rows }));
        }
        Format::Human => {
            println!("{:<24} {:<22} {:<24} RESULT", "TENANT", "API", "CHECK");
            for row in rows {
                let result = match &row.result {
                    Ok(()) => "ok".to_owned(),
                    Err(error) => format!("FAIL: {error}"),
                };
                println!("{:<24} {:<22} {:<24} {result}", row.tenant, row.api, row.check);
            }
            let passed = rows.iter().filter(|row| row.result.is_ok()).count();
            println!("{passed} of {} checks passed", rows.len());
        }
    }
}

/// The members after a membership change.
pub(crate) fn membership(verb: &str, response: &v1::MembershipResponse, format: Format) {
    let members: Vec<_> = response
        .members
        .iter()
        .map(|member| {
            json!({ "id": member.id, "region": member.region, "grpc_addr": member.grpc_addr, "voter": member.voter })
        })
        .collect();
    match format {
        Format::Json => json_value(&json!({ "revision": response.revision, "members": members })),
        Format::Human => {
            println!("{verb} at revision {}", response.revision);
            for member in &response.members {
                let role = if member.voter { "voter" } else { "learner" };
                println!("  {:>3}  {:<10} {:<22} {role}", member.id, member.region, member.grpc_addr);
            }
        }
    }
}

/// What a failover did: tenants moved (with their commit revision and new
/// epoch) and tenants not moved (with the reason).
pub(crate) fn failover(
    from: &str,
    to: &str,
    moved: &[(String, u64, u64)],
    not_moved: &[(String, String)],
    format: Format,
) {
    match format {
        Format::Json => json_value(&json!({
            "from": from,
            "to": to,
            "moved": moved.iter().map(|(tenant, revision, epoch)| json!({ "tenant": tenant, "revision": revision, "epoch": epoch })).collect::<Vec<_>>(),
            "not_moved": not_moved.iter().map(|(tenant, reason)| json!({ "tenant": tenant, "reason": reason })).collect::<Vec<_>>(),
        })),
        Format::Human => {
            println!("failover {from} -> {to}: {} moved, {} not moved", moved.len(), not_moved.len());
            for (tenant, revision, epoch) in moved {
                println!("  moved      {tenant:<24} revision {revision}, epoch {epoch}");
            }
            for (tenant, reason) in not_moved {
                println!("  NOT moved  {tenant:<24} {reason}");
            }
        }
    }
}

/// Regions with a declared status, and shards.
pub(crate) fn topology(topology: &v1::TopologyResponse, format: Format) {
    let status = |status: i32| match v1::RegionStatus::try_from(status) {
        Ok(v1::RegionStatus::Healthy) => "healthy",
        Ok(v1::RegionStatus::Degraded) => "degraded",
        Ok(v1::RegionStatus::Evacuated) => "evacuated",
        _ => "unknown",
    };
    match format {
        Format::Json => json_value(&json!({
            "revision": topology.revision,
            "regions": topology.regions.iter().map(|region| json!({ "region": region.region, "status": status(region.status) })).collect::<Vec<_>>(),
            "shards": topology.shards.iter().map(|shard| json!({ "id": shard.id, "region": shard.region, "endpoint": shard.endpoint, "state": shard.state })).collect::<Vec<_>>(),
        })),
        Format::Human => {
            for region in &topology.regions {
                println!("region {:<12} {}", region.region, status(region.status));
            }
            for shard in &topology.shards {
                println!("shard  {:<16} {:<10} {:<9} {}", shard.id, shard.region, shard.state, shard.endpoint);
            }
            if topology.regions.is_empty() && topology.shards.is_empty() {
                println!("(no regions declared, no shards: tenants use their home region's default shard)");
            }
            println!("(revision {})", topology.revision);
        }
    }
}

/// `regctl certs list`.
pub(crate) fn certs(infos: &[trust::certs::CertInfo], format: Format) {
    let identity = |info: &trust::certs::CertInfo| match &info.identity {
        Ok(identity) => identity.uri(),
        Err(_) if info.is_ca => "(CA)".to_owned(),
        Err(error) => format!("(none: {error})"),
    };
    match format {
        Format::Json => {
            let rows: Vec<_> = infos
                .iter()
                .map(|info| {
                    json!({
                        "file": info.file.display().to_string(), "subject": info.subject, "identity": identity(info),
                        "ca": info.is_ca, "not_before_unix_s": info.not_before_unix_s,
                        "not_after_unix_s": info.not_after_unix_s,
                    })
                })
                .collect();
            json_value(&json!({ "certificates": rows }));
        }
        Format::Human => {
            println!("{:<24} {:<52} {:<22} {}", "FILE", "IDENTITY", "EXPIRES", "SUBJECT");
            for info in infos {
                let file = info.file.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
                println!(
                    "{:<24} {:<52} {:<22} {}",
                    file,
                    identity(info),
                    trust::tls::rfc3339(info.not_after_unix_s),
                    info.subject
                );
            }
        }
    }
}
