//! `regctl move T --to-shard S --api-admin ADDR`: moves a tenant's rows to
//! another shard of its home region, as a replicated workflow.
//!
//! 1. begin: the registry locks the tenant's writes (api-nodes answer 503
//!    with `Retry-After`; reads go on) and records the move.
//! 2. copy: the home region's api-node (its operator listener) copies the
//!    rows from the old shard to the new one, as its view of the move record
//!    says, fencing the old shard against writers of the old epoch, and
//!    answers both sides' digests.
//! 3. verify: the registry records both digests (refused unless equal).
//! 4. flip: the routing map names the new shard; the epoch grows.
//! 5. unlock: writes resume, on the new shard.
//!
//! The state of the move lives in the registry, so regctl keeps none: a
//! re-run after any crash reads it and continues from the step it is at;
//! `regctl move T --abort` calls it off at any step before the flip. Every
//! step is idempotent or refused when repeated, never applied twice.

use std::time::{Duration, Instant};

use proto::v1::{self, Consistency, MoveStep};
use proto::TenantId;

use super::output::{self, Format};
use super::{actor, Failure};
use crate::client::{Client, WriteOptions};
use crate::http_client;

/// How long the copy step keeps retrying an api-node that is restarting or
/// behind.
const COPY_RETRY: Duration = Duration::from_secs(30);

#[derive(clap::Args)]
pub(super) struct MoveArgs {
    #[arg(value_parser = super::parse_tenant_id)]
    tenant: TenantId,
    /// The shard to move to: active, in the tenant's home region.
    #[arg(long, required_unless_present = "abort")]
    to_shard: Option<String>,
    /// Call the move off (any step before the flip): the old route stays.
    #[arg(long, conflicts_with_all = ["to_shard", "until"])]
    abort: bool,
    /// The operator listener (`--admin-http`) of an api-node in the tenant's
    /// home region, HOST:PORT: it copies the rows.
    #[arg(long)]
    api_admin: Option<String>,
    /// Stop after this step; run the command again to continue.
    #[arg(long, value_enum)]
    until: Option<Until>,
    /// Why; recorded in the tenant's audit history.
    #[arg(long, default_value = "")]
    reason: String,
}

/// Where `--until` stops.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Until {
    Begun,
    Copied,
    Verified,
    Flipped,
}

pub(super) async fn run(args: MoveArgs, client: &Client, format: Format) -> Result<(), Failure> {
    let tenant_id = args.tenant.as_str();
    // Request ids per call: a later move of the same tenant must not replay this one's answers.
    let options =
        WriteOptions { expected_revision: None, request_id: None, actor: actor(), reason: args.reason.clone() };
    let to_shard = args.to_shard.clone().unwrap_or_default();
    let step = |step: MoveStep, digests| client.move_tenant(tenant_id, step, &to_shard, digests, &options);
    let got = client.get_tenant(tenant_id, Consistency::Linearizable).await?;
    let mut tenant = got.tenant.unwrap_or_default();

    if args.abort {
        let Some(moving) = &tenant.r#move else {
            return Err(Failure(format!("{tenant_id} is not being moved")));
        };
        let written = step(MoveStep::Abort, None).await?;
        output::info(
            format,
            &format!("aborted the move of {tenant_id} to {} at step {}", moving.to_shard, moving.step),
        );
        output::write_response("unlocked", &written, format);
        return Ok(());
    }
    match &tenant.r#move {
        None => {
            let written = step(MoveStep::Begin, None).await?;
            tenant = written.tenant.unwrap_or_default();
            output::info(format, &format!("begun at revision {}: {tenant_id}'s writes are locked", written.revision));
        }
        Some(moving) if moving.to_shard != to_shard => {
            return Err(Failure(format!(
                "{tenant_id} is already moving to {} (step {}): continue that move, or abort it with `regctl move {tenant_id} --abort`",
                moving.to_shard, moving.step
            )));
        }
        Some(moving) => output::info(format, &format!("continuing the move to {to_shard} at step {}", moving.step)),
    }
    let mut last = None;
    let stop_at = |until: Until| args.until == Some(until);
    if stop_at(Until::Begun) {
        return stopped(tenant_id, "begun", format);
    }
    while let Some(moving) = tenant.r#move.clone() {
        let written = match moving.step.as_str() {
            "copying" => {
                let home = tenant.placement.as_ref().map(|placement| placement.home_region.clone()).unwrap_or_default();
                let admin = args.api_admin.as_deref().ok_or_else(|| {
                    Failure(format!("--api-admin: required to copy: the operator listener of an api-node in {home}"))
                })?;
                let (source, target) = copy(&client.http_connector(), admin, tenant_id, moving.began_revision).await?;
                output::info(
                    format,
                    &format!(
                        "copied: {} rows on {} (sha256 {}), {} rows on {} (sha256 {})",
                        source.rows,
                        if moving.from_shard.is_empty() { "the default shard" } else { &moving.from_shard },
                        source.sha256,
                        target.rows,
                        moving.to_shard,
                        target.sha256
                    ),
                );
                if stop_at(Until::Copied) {
                    return stopped(tenant_id, "copied", format);
                }
                let written = step(MoveStep::Verify, Some((source, target))).await?;
                output::info(format, &format!("verified at revision {}", written.revision));
                if stop_at(Until::Verified) {
                    return stopped(tenant_id, "verified", format);
                }
                written
            }
            "verified" => {
                let written = step(MoveStep::Flip, None).await?;
                let epoch = written.tenant.as_ref().and_then(|tenant| tenant.placement.as_ref()).map_or(0, |p| p.epoch);
                output::info(
                    format,
                    &format!(
                        "flipped at revision {}: {tenant_id} lives on {} at epoch {epoch}",
                        written.revision, moving.to_shard
                    ),
                );
                if stop_at(Until::Flipped) {
                    return stopped(tenant_id, "flipped", format);
                }
                written
            }
            "flipped" => step(MoveStep::Unlock, None).await?,
            other => return Err(Failure(format!("{tenant_id}: unknown move step `{other}`; upgrade regctl"))),
        };
        tenant = written.tenant.clone().unwrap_or_default();
        last = Some(written);
    }
    match last {
        Some(written) => output::write_response(&format!("moved to shard {to_shard}:"), &written, format),
        None => output::info(format, &format!("{tenant_id} is not being moved")),
    }
    Ok(())
}

fn stopped(tenant_id: &str, step: &str, format: Format) -> Result<(), Failure> {
    output::info(
        format,
        &format!("stopped after `{step}` (--until); continue with the same command without --until, or abort with `regctl move {tenant_id} --abort`"),
    );
    Ok(())
}

/// Asks the api-node at `admin` to copy the rows of the move begun at
/// `began_revision`; retries while it is unreachable or behind.
async fn copy(
    connector: &trust::Connector,
    admin: &str,
    tenant_id: &str,
    began_revision: u64,
) -> Result<(v1::ShardDigest, v1::ShardDigest), Failure> {
    let path = format!("/admin/moves/{tenant_id}/copy?began_revision={began_revision}");
    let deadline = Instant::now() + COPY_RETRY;
    loop {
        let headers = [("Host", admin), ("Content-Type", "application/json")];
        let request = http_client::HttpRequest::new("POST", &path, &headers);
        let (retry, problem) = match http_client::send(connector, admin, &request).await {
            Ok(response) if response.status == 200 => return digests(&response.body),
            Ok(response) => (response.status == 503, format!("{} {}", response.status, detail(&response.body))),
            Err(error) => (true, error.to_string()),
        };
        if !retry || Instant::now() >= deadline {
            return Err(Failure(format!("copy on the api-node at {admin}: {problem}")));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn detail(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value["detail"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

fn digests(body: &[u8]) -> Result<(v1::ShardDigest, v1::ShardDigest), Failure> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| Failure(format!("copy: not the expected JSON ({error})")))?;
    let digest = |side: &str| {
        let rows = value[side]["rows"].as_u64();
        let sha256 = value[side]["sha256"].as_str();
        match (rows, sha256) {
            (Some(rows), Some(sha256)) => Ok(v1::ShardDigest { rows, sha256: sha256.to_owned() }),
            _ => Err(Failure(format!("copy: the answer has no {side} digest"))),
        }
    };
    Ok((digest("source")?, digest("target")?))
}
