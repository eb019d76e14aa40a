//! `regctl smoke --api HOST:PORT[,…]`: end-to-end checks of every tenant
//! (or those listed in a file) through real api-nodes (the checks are
//! `registry_client::workflows::smoke`). A table of results; exit 1 on any
//! failure.

use std::path::PathBuf;

use proto::v1::Consistency;
use registry_client::workflows::smoke::{self, Direct, Target};
use registry_client::Client;

use super::output::{self, Format};
use super::Failure;

#[derive(clap::Args)]
pub(super) struct SmokeArgs {
    /// api-node HTTP addresses (host:port), comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    api: Vec<String>,
    /// `all`, or a file with one tenant id per line.
    #[arg(long, default_value = "all")]
    tenants: String,
    /// The base domain the api-nodes serve tenants under ({tenant}.{domain}).
    #[arg(long, default_value = "localhost")]
    base_domain: String,
    /// The demo user to log in as.
    #[arg(long, default_value = "demo")]
    user: String,
    /// Its password; `{tenant}` stands for the tenant id.
    #[arg(long, default_value = "demo-{tenant}")]
    password: String,
}

pub(super) async fn run(args: SmokeArgs, client: &Client, format: Format) -> Result<(), Failure> {
    let (mut tenants, _) = client.list_tenants(Consistency::Linearizable, false).await?;
    if args.tenants != "all" {
        let path = PathBuf::from(&args.tenants);
        let wanted = std::fs::read_to_string(&path).map_err(|error| Failure(format!("{}: {error}", path.display())))?;
        let wanted: Vec<&str> =
            wanted.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')).collect();
        tenants.retain(|tenant| wanted.contains(&tenant.id.as_str()));
    }
    let target = Target { base_domain: args.base_domain, user: args.user, password: args.password };
    let apis = smoke::discover(&Direct, &args.api).await?;
    let rows = smoke::run(&Direct, &target, &apis, &tenants, &mut |_| {}).await;
    output::smoke(&rows, format);
    let failed = rows.iter().filter(|row| row.result.is_err()).count();
    if failed > 0 {
        return Err(Failure(format!("{failed} of {} smoke checks failed", rows.len())));
    }
    Ok(())
}
