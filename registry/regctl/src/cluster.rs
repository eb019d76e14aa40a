//! `regctl cluster status|add-learner|promote|remove`: membership and Raft
//! state, from every endpoint.

use registry_client::Client;

use super::output::{self, Format};
use super::Failure;

#[derive(clap::Subcommand)]
pub(super) enum ClusterCommand {
    /// Members, regions, leader, term and indexes, from every endpoint.
    Status,
    /// Add a node as a learner (replicates, serves agents and stale reads, does
    /// not vote); returns once it has caught up. Start the node first with
    /// `registry serve --id ID --peer …` listing itself and the cluster.
    AddLearner {
        /// ID=REGION@HOST:PORT, e.g. 4=eu-west@10.0.2.4:7100.
        #[arg(value_parser = parse_member)]
        member: (u64, String, String),
    },
    /// Make a learner a voter.
    Promote { id: u64 },
    /// Remove a voter or a learner from the cluster (then stop its process).
    Remove { id: u64 },
}

fn parse_member(text: &str) -> Result<(u64, String, String), String> {
    let usage = || format!("`{text}`: expected ID=REGION@HOST:PORT, e.g. 4=eu-west@127.0.0.1:7104");
    let (id, rest) = text.split_once('=').ok_or_else(usage)?;
    let (region, addr) = rest.split_once('@').ok_or_else(usage)?;
    let id = id.parse::<u64>().map_err(|_| usage())?;
    Ok((id, region.to_owned(), addr.to_owned()))
}

pub(super) async fn run(command: ClusterCommand, client: &Client, format: Format) -> Result<(), Failure> {
    match command {
        ClusterCommand::AddLearner { member: (id, region, addr) } => {
            let response = client.add_learner(id, &region, &addr).await?;
            output::membership(&format!("added learner {id}"), &response, format);
        }
        ClusterCommand::Promote { id } => {
            let response = client.change_member(id, true).await?;
            output::membership(&format!("promoted {id} to voter"), &response, format);
        }
        ClusterCommand::Remove { id } => {
            let response = client.change_member(id, false).await?;
            output::membership(&format!("removed {id}"), &response, format);
        }
        ClusterCommand::Status => {
            let statuses = client.cluster_status().await;
            let reachable = statuses.iter().any(|(_, status)| status.is_ok());
            output::cluster_status(&statuses, format);
            if !reachable {
                return Err(Failure("no endpoint answered".to_owned()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_member;

    #[test]
    fn members_are_id_region_at_address() {
        assert_eq!(
            parse_member("4=eu-west@127.0.0.1:7104"),
            Ok((4, "eu-west".to_owned(), "127.0.0.1:7104".to_owned()))
        );
        for bad in ["4eu-west@a:1", "x=eu-west@a:1", "4=eu-west"] {
            assert!(parse_member(bad).expect_err(bad).contains("expected ID=REGION@HOST:PORT"));
        }
    }
}
