//! `regctl certs`: the cluster CA and certificates for nodes, agents and
//! operators, each naming its identity (see `trust::identity`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use trust::certs::{self, LeafOptions};
use trust::{AgentKind, Identity, Role};

use super::output::{self, Format};
use super::Failure;

#[derive(Subcommand)]
pub(super) enum CertsCommand {
    /// Create the cluster CA: DIR/ca.crt and DIR/ca.key (0600). Keep ca.key offline.
    Init {
        #[command(flatten)]
        dir: DirArg,
        /// Replace an existing CA (every certificate it signed stops being trusted).
        #[arg(long)]
        replace: bool,
    },
    /// Issue a certificate and key signed by DIR's CA.
    #[command(subcommand)]
    Issue(IssueCommand),
    /// Every certificate in DIR: subject, identity, validity.
    List {
        #[command(flatten)]
        dir: DirArg,
    },
}

#[derive(Args)]
pub(super) struct DirArg {
    /// The certificate directory.
    #[arg(long, default_value = ".tenantry/certs")]
    dir: PathBuf,
}

#[derive(Args)]
pub(super) struct LeafArgs {
    #[command(flatten)]
    dir: DirArg,
    /// Days of validity.
    #[arg(long, default_value_t = certs::LEAF_VALIDITY_DAYS_DEFAULT)]
    days: i64,
}

#[derive(Subcommand)]
pub(super) enum IssueCommand {
    /// A registry node: DIR/node-ID.{crt,key}.
    Node {
        #[arg(long)]
        id: u64,
        #[arg(long)]
        region: String,
        /// Host names or IP addresses it is dialed by (repeat).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        #[command(flatten)]
        leaf: LeafArgs,
    },
    /// An agent (sidecar or embedded in an api-node): DIR/agent-ID.{crt,key}.
    Agent {
        #[arg(long)]
        id: String,
        #[arg(long)]
        region: String,
        #[arg(long, value_parser = ["api", "frontend"])]
        kind: String,
        /// Host names or IP addresses it serves on, if it serves (an api-node's operator port).
        #[arg(long = "host")]
        hosts: Vec<String>,
        #[command(flatten)]
        leaf: LeafArgs,
    },
    /// A person or a tool: DIR/operator-NAME.{crt,key}.
    Operator {
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = ["viewer", "operator", "admin"])]
        role: String,
        #[command(flatten)]
        leaf: LeafArgs,
    },
}

fn failure(error: trust::TrustError) -> Failure {
    Failure(error.to_string())
}

fn region(name: &str) -> Result<proto::Region, Failure> {
    proto::Region::parse(name).map_err(|error| Failure(error.to_string()))
}

/// The identity, hosts and options of an `issue` command.
fn leaf(command: IssueCommand) -> Result<(Identity, Vec<String>, LeafArgs), Failure> {
    Ok(match command {
        IssueCommand::Node { id, region: name, hosts, leaf } => {
            if id == 0 {
                return Err(Failure("--id: node ids start at 1".to_owned()));
            }
            (Identity::Node { id, region: region(&name)? }, hosts, leaf)
        }
        IssueCommand::Agent { id, region: name, kind, hosts, leaf } => {
            trust::identity::check_name("--id", &id).map_err(failure)?;
            let kind = AgentKind::parse(&kind).map_err(failure)?;
            (Identity::Agent { id, kind, region: region(&name)? }, hosts, leaf)
        }
        IssueCommand::Operator { name, role, leaf } => {
            trust::identity::check_name("--name", &name).map_err(failure)?;
            (Identity::Operator { name, role: Role::parse(&role).map_err(failure)? }, Vec::new(), leaf)
        }
    })
}

pub(super) fn run(command: CertsCommand, format: Format) -> Result<(), Failure> {
    match command {
        CertsCommand::Init { dir, replace } => {
            let path = certs::init_ca(&dir.dir, "tenantry", replace).map_err(failure)?;
            output::info(
                format,
                &format!("wrote {} and {} (0600)", path.display(), dir.dir.join(certs::CA_KEY_FILE).display()),
            );
        }
        CertsCommand::Issue(command) => {
            let (identity, hosts, leaf) = leaf(command)?;
            let options = LeafOptions { hosts, days: Some(leaf.days) };
            let (cert, key) = certs::issue(&leaf.dir.dir, &identity, &options).map_err(failure)?;
            output::info(format, &format!("{}: wrote {} and {} (0600)", identity.uri(), cert.display(), key.display()));
        }
        CertsCommand::List { dir } => output::certs(&certs::list(&dir.dir).map_err(failure)?, format),
    }
    Ok(())
}
