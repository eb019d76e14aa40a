//! `regctl tenant create|get|list|set|delete`: one tenant's documents, from
//! files or stdin.

use std::io::Read;
use std::path::PathBuf;

use proto::v1;
use proto::TenantId;
use registry_client::Client;

use super::output::{self, Format};
use super::{parse_tenant_id, Failure, ReadArgs, WriteArgs};

#[derive(clap::Subcommand)]
pub(super) enum TenantCommand {
    /// Create a tenant; documents from files (`-` for stdin).
    Create {
        #[arg(value_parser = parse_tenant_id)]
        tenant: TenantId,
        #[command(flatten)]
        documents: DocumentArgs,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Show one tenant.
    Get {
        #[arg(value_parser = parse_tenant_id)]
        tenant: TenantId,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// List tenants.
    List {
        #[command(flatten)]
        read: ReadArgs,
        /// Include deleted (tombstoned) tenants.
        #[arg(long)]
        include_deleted: bool,
    },
    /// Replace documents of a tenant; documents not given keep their value.
    Set {
        #[arg(value_parser = parse_tenant_id)]
        tenant: TenantId,
        #[command(flatten)]
        documents: DocumentArgs,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Delete (tombstone) a tenant.
    Delete {
        #[arg(value_parser = parse_tenant_id)]
        tenant: TenantId,
        #[command(flatten)]
        write: WriteArgs,
    },
}

#[derive(clap::Args)]
pub(super) struct DocumentArgs {
    /// config.json (features, API base, SLA tier; `public` is browser-visible).
    #[arg(long)]
    config: Option<PathBuf>,
    /// theme.json (colors, logo URL, texts).
    #[arg(long)]
    theme: Option<PathBuf>,
    /// Integrations: a JSON object of name -> object.
    #[arg(long)]
    integrations: Option<PathBuf>,
}

fn read_document(path: &Option<PathBuf>, stdin_used: &mut bool) -> Result<Option<String>, Failure> {
    let Some(path) = path else { return Ok(None) };
    if path.as_os_str() == "-" {
        if std::mem::replace(stdin_used, true) {
            return Err(Failure("only one document can come from stdin (`-`)".to_owned()));
        }
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|error| Failure(format!("stdin: {error}")))?;
        return Ok(Some(text));
    }
    std::fs::read_to_string(path).map(Some).map_err(|error| Failure(format!("{}: {error}", path.display())))
}

impl DocumentArgs {
    fn read(&self) -> Result<v1::Documents, Failure> {
        let mut stdin_used = false;
        Ok(v1::Documents {
            config_json: read_document(&self.config, &mut stdin_used)?,
            theme_json: read_document(&self.theme, &mut stdin_used)?,
            integrations_json: read_document(&self.integrations, &mut stdin_used)?,
        })
    }
}

pub(super) async fn run(command: TenantCommand, client: &Client, format: Format) -> Result<(), Failure> {
    match command {
        TenantCommand::Create { tenant, documents, write } => {
            let written = client.create_tenant(tenant.as_str(), documents.read()?, &write.options()).await?;
            output::write_response("created", &written, format);
        }
        TenantCommand::Set { tenant, documents, write } => {
            let documents = documents.read()?;
            if documents.config_json.is_none()
                && documents.theme_json.is_none()
                && documents.integrations_json.is_none()
            {
                return Err(Failure("give at least one of --config, --theme, --integrations".to_owned()));
            }
            let written = client.update_tenant(tenant.as_str(), documents, &write.options()).await?;
            output::write_response("updated", &written, format);
        }
        TenantCommand::Delete { tenant, write } => {
            let written = client.delete_tenant(tenant.as_str(), &write.options()).await?;
            output::write_response("deleted", &written, format);
        }
        TenantCommand::Get { tenant, read } => {
            let got = client.get_tenant(tenant.as_str(), read.consistency()).await?;
            output::tenant(&got, format);
        }
        TenantCommand::List { read, include_deleted } => {
            let (tenants, revision) = client.list_tenants(read.consistency(), include_deleted).await?;
            output::tenant_list(&tenants, revision, format);
        }
    }
    Ok(())
}
