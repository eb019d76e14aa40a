//! Everything regctl prints: human tables by default, JSON with `-o json`.
//! The only module of the crate that writes to stdout.

/// Like `println!`, but a closed stdout (`regctl … | head`) ends regctl
/// quietly instead of panicking.
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(error) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if error.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

mod pipeline;

use proto::v1;
use serde_json::{json, Value};
use tonic::Status;

pub(super) use pipeline::{diff, problems, progress, publish_plan, publish_summary, CohortRow, DiffRow};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// Prints an error to stderr.
pub(super) fn error(message: &str) {
    eprintln!("error: {message}");
}

/// Prints a line of progress or information (human format only).
pub(super) fn info(format: Format, message: &str) {
    match format {
        Format::Human => println!("{message}"),
        Format::Json => eprintln!("{message}"),
    }
}

/// Prints a JSON value for scripts.
pub(super) fn json_value(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

fn parse_or_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub(super) fn utc(unix_ms: u64) -> String {
    let seconds = unix_ms / 1000;
    let (days, rest) = ((seconds / 86_400) as i64, seconds % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest / 60 % 60, rest % 60)
}

fn status_name(status: i32) -> &'static str {
    match v1::TenantStatus::try_from(status) {
        Ok(v1::TenantStatus::Active) => "active",
        Ok(v1::TenantStatus::Suspended) => "suspended",
        Ok(v1::TenantStatus::LockedForMove) => "locked-for-move",
        Ok(v1::TenantStatus::Deleted) => "deleted",
        _ => "unknown",
    }
}

fn bundle_json(bundle: &Option<v1::Bundle>) -> Value {
    match bundle {
        Some(bundle) => json!({
            "sha256": bundle.sha256,
            "json": parse_or_text(&String::from_utf8_lossy(&bundle.json)),
        }),
        None => Value::Null,
    }
}

/// A tenant as JSON, documents as objects (not strings).
pub(super) fn tenant_json(tenant: &v1::Tenant) -> Value {
    let placement = tenant.placement.clone().unwrap_or_default();
    json!({
        "id": tenant.id,
        "uid": tenant.uid,
        "status": status_name(tenant.status),
        "create_revision": tenant.create_revision,
        "mod_revision": tenant.mod_revision,
        "config_revision": tenant.config_revision,
        "canary": tenant.canary.as_ref().map(|canary| json!({
            "revision": canary.revision,
            "public_bundle": bundle_json(&canary.public_bundle),
            "private_bundle": bundle_json(&canary.private_bundle),
        })),
        "config": parse_or_text(&tenant.config_json),
        "theme": parse_or_text(&tenant.theme_json),
        "integrations": parse_or_text(&tenant.integrations_json),
        "placement": {
            "home_region": placement.home_region,
            "allowed_regions": placement.allowed_regions,
            "dr_region": placement.dr_region,
            "epoch": placement.epoch,
            "failing_over_to": placement.failing_over_to,
        },
        "shard": tenant.shard,
        "move": tenant.r#move.as_ref().map(|moving| json!({
            "from_shard": moving.from_shard,
            "to_shard": moving.to_shard,
            "step": moving.step,
            "copy_epoch": moving.copy_epoch,
            "began_revision": moving.began_revision,
            "source": moving.source.as_ref().map(|digest| json!({ "rows": digest.rows, "sha256": digest.sha256 })),
            "target": moving.target.as_ref().map(|digest| json!({ "rows": digest.rows, "sha256": digest.sha256 })),
        })),
        "public_bundle": bundle_json(&tenant.public_bundle),
        "private_bundle": bundle_json(&tenant.private_bundle),
    })
}

fn or_none(text: &str) -> &str {
    if text.is_empty() {
        "-"
    } else {
        text
    }
}

pub(super) fn write_response(verb: &str, written: &v1::WriteResponse, format: Format) {
    let tenant = written.tenant.clone().unwrap_or_default();
    match format {
        Format::Json => json_value(&json!({
            "revision": written.revision,
            "replayed": written.replayed,
            "tenant": tenant_json(&tenant),
        })),
        Format::Human => {
            let replayed = if written.replayed { " (retry: first result returned, nothing applied again)" } else { "" };
            println!("{verb} tenant {} at revision {}{replayed}", tenant.id, written.revision);
        }
    }
}

pub(super) fn tenant(got: &v1::GetTenantResponse, format: Format) {
    let tenant = got.tenant.clone().unwrap_or_default();
    let value = tenant_json(&tenant);
    match format {
        Format::Json => json_value(&json!({ "revision": got.revision, "tenant": value })),
        Format::Human => {
            let pretty = |key: &str| serde_json::to_string_pretty(&value[key]).unwrap_or_default();
            println!("tenant:          {}", tenant.id);
            println!("uid:             {}", tenant.uid);
            println!("status:          {}", status_name(tenant.status));
            println!("create_revision: {}", tenant.create_revision);
            println!("mod_revision:    {}", tenant.mod_revision);
            println!("configVersion:   {}", tenant.config_revision);
            let placement = tenant.placement.clone().unwrap_or_default();
            println!(
                "placement:       home {} allowed [{}] dr {} epoch {}{}",
                or_none(&placement.home_region),
                placement.allowed_regions.join(","),
                or_none(&placement.dr_region),
                placement.epoch,
                if placement.failing_over_to.is_empty() {
                    String::new()
                } else {
                    format!(" (failing over to {})", placement.failing_over_to)
                }
            );
            println!(
                "shard:           {}",
                if tenant.shard.is_empty() { "(home region's default)" } else { &tenant.shard }
            );
            if let Some(moving) = &tenant.r#move {
                println!(
                    "move:            {} -> {}, step {} (began at revision {}, copy epoch {})",
                    or_none(&moving.from_shard),
                    moving.to_shard,
                    moving.step,
                    moving.began_revision,
                    moving.copy_epoch
                );
            }
            if let Some(canary) = &tenant.canary {
                let sha = canary.public_bundle.as_ref().map_or("", |bundle| bundle.sha256.as_str());
                println!("canary:          configVersion {} (public sha256 {sha})", canary.revision);
            }
            println!("public bundle:   sha256 {}", tenant.public_bundle.as_ref().map_or("", |b| b.sha256.as_str()));
            println!("private bundle:  sha256 {}", tenant.private_bundle.as_ref().map_or("", |b| b.sha256.as_str()));
            println!("config:\n{}", pretty("config"));
            println!("theme:\n{}", pretty("theme"));
            println!("integrations:\n{}", pretty("integrations"));
            println!("(registry revision {})", got.revision);
        }
    }
}

pub(super) fn tenant_list(tenants: &[v1::Tenant], revision: u64, format: Format) {
    match format {
        Format::Json => {
            let tenants: Vec<_> = tenants.iter().map(tenant_json).collect();
            json_value(&json!({ "revision": revision, "tenants": tenants }));
        }
        Format::Human => {
            println!("{:<32} {:<16} {:>10} {:>10}  {}", "TENANT", "STATUS", "CREATED", "MODIFIED", "PUBLIC SHA256");
            for tenant in tenants {
                let sha =
                    tenant.public_bundle.as_ref().map_or("", |bundle| &bundle.sha256[..12.min(bundle.sha256.len())]);
                println!(
                    "{:<32} {:<16} {:>10} {:>10}  {sha}",
                    tenant.id,
                    status_name(tenant.status),
                    tenant.create_revision,
                    tenant.mod_revision
                );
            }
            println!("{} tenants at revision {revision}", tenants.len());
        }
    }
}

pub(super) fn history(history: &v1::HistoryResponse, format: Format) {
    match format {
        Format::Json => {
            let entries: Vec<_> = history
                .entries
                .iter()
                .map(|entry| {
                    json!({
                        "revision": entry.revision, "id": entry.id, "tenant": entry.tenant_id,
                        "actor": entry.actor, "reason": entry.reason, "summary": entry.summary,
                        "at_unix_ms": entry.at_unix_ms,
                    })
                })
                .collect();
            json_value(&json!({ "revision": history.revision, "entries": entries }));
        }
        Format::Human => {
            println!("{:>10}  {:<20} {:<24} {:<28} {}", "REVISION", "TIME (UTC)", "ACTOR", "SUMMARY", "REASON");
            for entry in &history.entries {
                println!(
                    "{:>10}  {:<20} {:<24} {:<28} {}",
                    entry.revision,
                    utc(entry.at_unix_ms),
                    entry.actor,
                    entry.summary,
                    entry.reason
                );
            }
            if history.entries.is_empty() {
                println!("(no history)");
            }
        }
    }
}

fn status_json(status: &v1::ClusterStatusResponse) -> Value {
    let members: Vec<_> = status
        .members
        .iter()
        .map(|member| {
            json!({
                "id": member.id, "region": member.region, "grpc_addr": member.grpc_addr,
                "voter": member.voter, "matched_index": member.matched_index,
            })
        })
        .collect();
    json!({
        "node_id": status.node_id, "region": status.region, "state": status.state, "cert_not_after_unix_s": status.cert_not_after_unix_s,
        "leader_id": status.leader_id, "term": status.term, "last_log_index": status.last_log_index,
        "committed_index": status.committed_index, "applied_index": status.applied_index,
        "snapshot_index": status.snapshot_index, "purged_index": status.purged_index,
        "tenants": status.tenants, "cluster_id": status.cluster_id, "members": members,
    })
}

pub(super) fn cluster_status(statuses: &[(String, Result<v1::ClusterStatusResponse, Status>)], format: Format) {
    match format {
        Format::Json => {
            let nodes: Vec<_> = statuses
                .iter()
                .map(|(endpoint, status)| match status {
                    Ok(status) => json!({ "endpoint": endpoint, "status": status_json(status) }),
                    Err(error) => json!({ "endpoint": endpoint, "error": error.message() }),
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
                    Err(error) => println!("{endpoint:<22} unreachable: {}", error.message()),
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
pub(super) fn agents(agents: &[v1::AgentInfo], revision: u64, format: Format) {
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

/// One smoke check's result.
pub(super) struct SmokeRow {
    pub(super) tenant: String,
    pub(super) api: String,
    pub(super) check: &'static str,
    pub(super) result: Result<(), String>,
}

pub(super) fn smoke(rows: &[SmokeRow], format: Format) {
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
pub(super) fn membership(verb: &str, response: &v1::MembershipResponse, format: Format) {
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
pub(super) fn failover(
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
pub(super) fn topology(topology: &v1::TopologyResponse, format: Format) {
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
pub(super) fn certs(infos: &[trust::certs::CertInfo], format: Format) {
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
