//! What regctl prints about tenants: a tenant, a list, its history, a
//! write's result.

use proto::v1;
use serde_json::{json, Value};

use super::{json_value, parse_or_text, utc, Format};

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
fn tenant_json(tenant: &v1::Tenant) -> Value {
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

pub(crate) fn write_response(verb: &str, written: &v1::WriteResponse, format: Format) {
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

pub(crate) fn tenant(got: &v1::GetTenantResponse, format: Format) {
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

pub(crate) fn tenant_list(tenants: &[v1::Tenant], revision: u64, format: Format) {
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

pub(crate) fn history(history: &v1::HistoryResponse, format: Format) {
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
