//! `regctl move T --to-shard S --api-admin ADDR`: moves a tenant's rows to
//! another shard of its home region, as a replicated workflow
//! (`registry_client::workflows::moves`).
//! The state of a move lives in the registry, so a re-run after any crash
//! continues from the step it is at; `--until` stops after a step and
//! `--abort` calls the move off before the flip.

use proto::TenantId;
use registry_client::workflows::moves::{self, CopyPhase, Event, Move, Outcome};
use registry_client::Client;

use super::output::{self, Format};
use super::{actor, Failure};

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

impl Until {
    fn step(self) -> moves::Until {
        match self {
            Self::Begun => moves::Until::Begun,
            Self::Copied => moves::Until::Copied,
            Self::Verified => moves::Until::Verified,
            Self::Flipped => moves::Until::Flipped,
        }
    }
}

pub(super) async fn run(args: MoveArgs, client: &Client, format: Format) -> Result<(), Failure> {
    let tenant_id = args.tenant.as_str();
    if args.abort {
        let (moving, written) = moves::abort(client, tenant_id, &actor(), &args.reason).await?;
        output::info(
            format,
            &format!("aborted the move of {tenant_id} to {} at step {}", moving.to_shard, moving.step),
        );
        output::write_response("unlocked", &written, format);
        return Ok(());
    }
    let to_shard = args.to_shard.unwrap_or_default();
    let request = Move {
        tenant: tenant_id.to_owned(),
        to_shard: to_shard.clone(),
        api_admin: args.api_admin,
        until: args.until.map(Until::step),
        actor: actor(),
        reason: args.reason,
    };
    let progress = output::Progress::steps(format.progress());
    let mut phase_told = CopyPhase::Reading;
    let outcome = moves::run(client, &request, &mut |event| {
        let said = match event {
            Event::Begun { revision } => format!("begun at revision {revision}: {tenant_id}'s writes are locked"),
            Event::Continuing { step } => format!("continuing the move to {to_shard} at step {step}"),
            Event::Copying(told) => {
                // A line as each phase ends (the api-node may tell a later
                // phase first); the bar, on a terminal, as often as told.
                let total = told.rows_total.unwrap_or_default();
                if told.phase > CopyPhase::Reading && phase_told == CopyPhase::Reading {
                    progress.step(&format!("read {total} rows from the old shard, fenced"));
                }
                if told.phase == CopyPhase::Digesting && phase_told < CopyPhase::Digesting {
                    progress.step(&format!("wrote {total} rows to {to_shard}"));
                }
                phase_told = told.phase; // A retried copy starts again.
                progress.measure(told.rows, told.rows_total, "rows", told.phase.name());
                return;
            }
            Event::Copied { from_shard, to_shard, source, target } => {
                progress.spin();
                format!(
                    "copied: {} rows on {from_shard} (sha256 {}), {} rows on {to_shard} (sha256 {})",
                    source.rows, source.sha256, target.rows, target.sha256
                )
            }
            Event::Verified { revision } => format!("verified at revision {revision}"),
            Event::Flipped { revision, shard, epoch } => {
                format!("flipped at revision {revision}: {tenant_id} lives on {shard} at epoch {epoch}")
            }
            Event::OldCopyRemoved { shard, rows, waited_for } if waited_for.is_empty() => {
                format!("removed the old copy on {shard} ({rows} rows), once every api-node had the flip")
            }
            Event::OldCopyRemoved { shard, rows, waited_for } => format!(
                "removed the old copy on {shard} ({rows} rows); still without the flip after the grace: {}",
                waited_for.join(", ")
            ),
        };
        progress.step(&said);
    })
    .await;
    progress.finish(if outcome.is_ok() { "done" } else { "failed" });
    match outcome? {
        Outcome::Moved(written) => output::write_response(&format!("moved to shard {to_shard}:"), &written, format),
        Outcome::Stopped(step) => output::info(
            format,
            &format!(
                "stopped after `{}` (--until); continue with the same command without --until, or abort with \
                 `regctl move {tenant_id} --abort`",
                format!("{step:?}").to_lowercase()
            ),
        ),
        Outcome::NotMoving => output::info(format, &format!("{tenant_id} is not being moved")),
    }
    Ok(())
}
