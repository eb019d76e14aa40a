//! `--purge-url`, `--purge-token-file`, `--purge-ca`: the CDN purge hook of
//! `publish`, `rollback` and `canary promote` (the hook itself is
//! `registry_client::workflows::purge`). Once every agent has acknowledged
//! the change, the changed runtime configs are purged in every region; a
//! purge that fails after its retries fails the command (exit 1).

use std::path::PathBuf;
use std::time::Duration;

use proto::v1;
use registry_client::workflows::publish::wait_for_acks;
use registry_client::workflows::purge::{purge_acknowledged, PurgeHook};
use registry_client::Client;

use super::output::{self, Format};
use super::Failure;

#[derive(clap::Args, Clone, Default)]
pub(super) struct PurgeArgs {
    /// Webhook told which runtime configs changed, per region, once agents acknowledged them
    /// (https://, or http:// to this machine).
    #[arg(long, env = "TENANTRY_PURGE_URL")]
    purge_url: Option<String>,
    /// File holding the webhook's bearer token (one line; mode 0600).
    #[arg(long, env = "TENANTRY_PURGE_TOKEN_FILE", requires = "purge_url")]
    purge_token_file: Option<PathBuf>,
    /// CA certificates (PEM) the webhook's server must be signed by; default: the system's.
    #[arg(long, env = "TENANTRY_PURGE_CA", requires = "purge_url")]
    purge_ca: Option<PathBuf>,
}

impl PurgeArgs {
    /// The hook, if one is configured.
    pub(super) fn hook(&self) -> Result<Option<PurgeHook>, Failure> {
        let Some(url) = &self.purge_url else { return Ok(None) };
        let Some(token_file) = &self.purge_token_file else {
            return Err(Failure("--purge-url needs --purge-token-file (the webhook's bearer token)".to_owned()));
        };
        Ok(Some(PurgeHook::new(url, token_file, self.purge_ca.as_deref())?))
    }
}

/// How long agents may take to acknowledge a rollback or a promote before
/// its purge.
const ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// After a single tenant's write at `revision`: waits for every agent's
/// acknowledgement, then purges its runtime config.
pub(super) async fn after_write(
    hook: &PurgeHook,
    client: &Client,
    what: &str,
    written: &v1::WriteResponse,
    format: Format,
) -> Result<(), Failure> {
    let revision = written.revision;
    let Some(tenant) = written.tenant.clone() else {
        return Err(Failure(format!(
            "{what} is live (revision {revision}), but the registry named no tenant to purge"
        )));
    };
    let purged = async {
        wait_for_acks(client, revision, revision, ACK_TIMEOUT).await?;
        purge_acknowledged(client, hook, what, revision, std::slice::from_ref(&tenant)).await
    };
    match purged.await {
        Ok(purged) => {
            output::info(format, &purged);
            Ok(())
        }
        Err(failure) => Err(Failure(format!("{what} of {} is live (revision {revision}), but: {failure}", tenant.id))),
    }
}
