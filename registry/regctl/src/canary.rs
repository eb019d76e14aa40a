//! `regctl canary stage|promote|abort`: a tenant's canary version, compiled
//! from a config repo, served only to requests that opt in.

use std::path::PathBuf;

use proto::TenantId;
use registry_client::Client;

use super::output::{self, Format};
use super::purge::PurgeArgs;
use super::{parse_tenant_id, repo, Failure, WriteArgs};

#[derive(clap::Subcommand)]
pub(super) enum CanaryCommand {
    /// Stage the tenant as compiled from a config repo; api-nodes serve it only
    /// with `X-Config-Canary: 1` or cookie `config_canary=1`.
    Stage {
        #[arg(value_parser = parse_tenant_id)]
        tenant: TenantId,
        /// The config repo holding the candidate.
        dir: PathBuf,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Make the staged canary the live version.
    Promote {
        #[arg(value_parser = parse_tenant_id)]
        tenant: TenantId,
        #[command(flatten)]
        write: WriteArgs,
        #[command(flatten)]
        purge: PurgeArgs,
    },
    /// Drop the staged canary.
    Abort {
        #[arg(value_parser = parse_tenant_id)]
        tenant: TenantId,
        #[command(flatten)]
        write: WriteArgs,
    },
}

pub(super) async fn run(command: CanaryCommand, client: &Client, format: Format) -> Result<(), Failure> {
    match command {
        CanaryCommand::Stage { tenant, dir, write } => {
            let compiled = repo::compile_one(&dir, &tenant, format)?;
            let written = client.stage_canary(tenant.as_str(), repo::documents(&compiled), &write.options()).await?;
            output::write_response("staged a canary of", &written, format);
        }
        CanaryCommand::Promote { tenant, write, purge } => {
            let hook = purge.hook()?;
            let written = client.finish_canary(tenant.as_str(), true, &write.options()).await?;
            output::write_response("promoted the canary of", &written, format);
            if let Some(hook) = &hook {
                super::purge::after_write(hook, client, "canary promote", &written, format).await?;
            }
        }
        CanaryCommand::Abort { tenant, write } => {
            let written = client.finish_canary(tenant.as_str(), false, &write.options()).await?;
            output::write_response("aborted the canary of", &written, format);
        }
    }
    Ok(())
}
