//! `regctl snapshot save FILE`: a consistent backup, taken at a
//! linearizable read point, checked against the checksum the node sent and
//! fsynced before it is named FILE. `registry snapshot status FILE` checks
//! one offline; `registry snapshot restore FILE` builds a new cluster from it.

use std::fs::File;
use std::path::{Path, PathBuf};

use registry_client::Client;

use super::output::{self, Format};
use super::Failure;

#[derive(clap::Subcommand)]
pub(super) enum SnapshotCommand {
    /// Save a consistent backup to FILE (with its revision and checksum).
    Save { file: PathBuf },
}

fn io_failure(path: &Path, error: impl std::fmt::Display) -> Failure {
    Failure(format!("{}: {error}", path.display()))
}

pub(super) async fn run(command: SnapshotCommand, client: &Client, format: Format) -> Result<(), Failure> {
    let SnapshotCommand::Save { file } = command;
    let progress = output::Progress::bytes(format.progress());
    let (bytes, summary) = client.save_snapshot(|received| progress.set(received, "")).await?;
    progress.finish("checked");
    let temporary = file.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        std::fs::write(&temporary, &bytes)?;
        File::open(&temporary)?.sync_all()?;
        std::fs::rename(&temporary, &file)
    };
    write().map_err(|error| io_failure(&file, error))?;
    output::info(
        format,
        &format!(
            "saved {}: revision {}, {} tenants, {} audit entries, {} bytes, sha256 {}",
            file.display(),
            summary.revision,
            summary.tenants,
            summary.audit_entries,
            summary.bytes,
            summary.sha256
        ),
    );
    Ok(())
}
