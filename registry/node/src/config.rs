//! A registry node's configuration: flags, or a TOML file with the same fields.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::limits;
use crate::raft_types::NodeId;

/// One member of the cluster: `ID=REGION@HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub id: NodeId,
    pub region: String,
    pub grpc_addr: String,
}

impl FromStr for Peer {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let usage =
            || Error::Config(format!("peer `{text}`: expected ID=REGION@HOST:PORT, e.g. 2=eu-west@127.0.0.1:7102"));
        let (id, rest) = text.split_once('=').ok_or_else(usage)?;
        let (region, grpc_addr) = rest.split_once('@').ok_or_else(usage)?;
        let id = id.parse::<NodeId>().map_err(|_| usage())?;
        proto::Region::parse(region).map_err(|error| Error::Config(format!("peer `{text}`: {error}")))?;
        if grpc_addr.is_empty() {
            return Err(usage());
        }
        Ok(Self { id, region: region.to_owned(), grpc_addr: grpc_addr.to_owned() })
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}@{}", self.id, self.region, self.grpc_addr)
    }
}

/// A dial route: connect to the member advertised at `to` through `via`
/// (a proxy, a tunnel or a NAT address), `TO=VIA`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dial {
    pub to: String,
    pub via: String,
}

impl FromStr for Dial {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        match text.split_once('=') {
            Some((to, via)) if !to.is_empty() && !via.is_empty() => Ok(Self { to: to.to_owned(), via: via.to_owned() }),
            _ => Err(Error::Config(format!("dial `{text}`: expected TO=VIA, e.g. 10.0.2.1:7100=127.0.0.1:17102"))),
        }
    }
}

/// Everything a node needs to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub id: NodeId,
    pub region: String,
    /// gRPC listen address (clients, agents and Raft).
    pub grpc: SocketAddr,
    /// HTTP listen address (health, metrics, status).
    pub http: SocketAddr,
    pub data_dir: PathBuf,
    /// Every voter of the cluster, this node included.
    pub peers: Vec<Peer>,
    /// Routes to other members' advertised addresses through others.
    #[serde(default)]
    pub dial: Vec<Dial>,
    #[serde(default = "defaults::heartbeat_ms")]
    pub heartbeat_ms: u64,
    #[serde(default = "defaults::election_timeout_ms_min")]
    pub election_timeout_ms_min: u64,
    #[serde(default = "defaults::election_timeout_ms_max")]
    pub election_timeout_ms_max: u64,
    #[serde(default = "defaults::snapshot_every_entries")]
    pub snapshot_every_entries: u64,
    #[serde(default = "defaults::log_kept_after_snapshot_entries")]
    pub log_kept_after_snapshot_entries: u64,
    #[serde(default = "defaults::document_bytes_max")]
    pub document_bytes_max: usize,
    /// Deltas kept for agents that resume.
    #[serde(default = "defaults::watch_history_deltas_max")]
    pub watch_history_deltas_max: usize,
    /// Deltas an agent may fall behind before it is cut.
    #[serde(default = "defaults::watch_queue_deltas_max")]
    pub watch_queue_deltas_max: usize,
    /// Interval of Progress messages on idle agent streams.
    #[serde(default = "defaults::progress_interval_ms")]
    pub progress_interval_ms: u64,
    /// Agents this node serves at once.
    #[serde(default = "defaults::agents_max")]
    pub agents_max: usize,
    /// The cluster CA, this node's certificate and key (PEM); all three,
    /// or `insecure`.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Plaintext, no authentication: throwaway local experiments only.
    #[serde(default)]
    pub insecure: bool,
}

mod defaults {
    use crate::limits;
    pub(super) fn heartbeat_ms() -> u64 {
        limits::HEARTBEAT_MS_DEFAULT
    }
    pub(super) fn election_timeout_ms_min() -> u64 {
        limits::ELECTION_TIMEOUT_MS_MIN_DEFAULT
    }
    pub(super) fn election_timeout_ms_max() -> u64 {
        limits::ELECTION_TIMEOUT_MS_MAX_DEFAULT
    }
    pub(super) fn snapshot_every_entries() -> u64 {
        limits::SNAPSHOT_EVERY_ENTRIES_DEFAULT
    }
    pub(super) fn log_kept_after_snapshot_entries() -> u64 {
        limits::LOG_KEPT_AFTER_SNAPSHOT_ENTRIES_DEFAULT
    }
    pub(super) fn document_bytes_max() -> usize {
        limits::DOCUMENT_BYTES_MAX_DEFAULT
    }
    pub(super) fn watch_history_deltas_max() -> usize {
        limits::WATCH_HISTORY_DELTAS_MAX_DEFAULT
    }
    pub(super) fn watch_queue_deltas_max() -> usize {
        limits::WATCH_QUEUE_DELTAS_MAX_DEFAULT
    }
    pub(super) fn progress_interval_ms() -> u64 {
        limits::PROGRESS_INTERVAL_MS_DEFAULT
    }
    pub(super) fn agents_max() -> usize {
        limits::AGENTS_PER_NODE_MAX_DEFAULT
    }
}

impl NodeConfig {
    /// Reads a TOML file with the fields of [`NodeConfig`].
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text =
            std::fs::read_to_string(path).map_err(|error| Error::Config(format!("{}: {error}", path.display())))?;
        toml::from_str(&text).map_err(|error| Error::Config(format!("{}: {error}", path.display())))
    }

    /// Checks the rules between fields; each error names the field.
    pub fn validate(&self) -> Result<(), Error> {
        let fail = |message: String| Err(Error::Config(message));
        proto::Region::parse(&self.region).map_err(|error| Error::Config(error.to_string()))?;
        let Some(me) = self.peers.iter().find(|peer| peer.id == self.id) else {
            return fail(format!("peers: must include this node (id {})", self.id));
        };
        if me.region != self.region {
            return fail(format!(
                "peers: node {} is in region {} there but --region says {}",
                self.id, me.region, self.region
            ));
        }
        let mut ids: Vec<_> = self.peers.iter().map(|peer| peer.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != self.peers.len() {
            return fail("peers: ids must be unique".to_owned());
        }
        if self.heartbeat_ms == 0 || self.heartbeat_ms * 3 > self.election_timeout_ms_min {
            return fail(format!(
                "heartbeat_ms: {} must be > 0 and at most a third of election_timeout_ms_min ({})",
                self.heartbeat_ms, self.election_timeout_ms_min
            ));
        }
        if self.election_timeout_ms_min >= self.election_timeout_ms_max {
            return fail("election_timeout_ms_min: must be below election_timeout_ms_max".to_owned());
        }
        if self.snapshot_every_entries == 0 {
            return fail("snapshot_every_entries: must be > 0".to_owned());
        }
        if self.document_bytes_max == 0 || self.document_bytes_max > registry_core::limits::DOCUMENT_BYTES_HARD_MAX {
            return fail(format!(
                "document_bytes_max: must be 1 to {} bytes (the hard cap every replica enforces)",
                registry_core::limits::DOCUMENT_BYTES_HARD_MAX
            ));
        }
        if self.watch_queue_deltas_max == 0 || self.agents_max == 0 || self.progress_interval_ms == 0 {
            return fail("watch_queue_deltas_max, agents_max, progress_interval_ms: must be > 0".to_owned());
        }
        Ok(())
    }

    /// The watch hub's bounds.
    pub fn watch_limits(&self) -> crate::watch::WatchLimits {
        crate::watch::WatchLimits {
            history_deltas_max: self.watch_history_deltas_max,
            history_age_max: std::time::Duration::from_millis(limits::WATCH_HISTORY_AGE_MS_MAX),
            history_bytes_max: limits::WATCH_HISTORY_BYTES_MAX,
            queue_deltas_max: self.watch_queue_deltas_max,
            progress_interval: std::time::Duration::from_millis(self.progress_interval_ms),
            agents_max: self.agents_max,
        }
    }

    /// The TLS flags of this configuration.
    pub fn tls_args(&self) -> trust::cli::TlsArgs {
        trust::cli::TlsArgs {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            insecure: self.insecure,
        }
    }

    /// Loads this node's TLS (`None` with `insecure`); its certificate must
    /// name this node's id and region.
    pub fn load_tls(&self) -> Result<Option<std::sync::Arc<trust::Tls>>, Error> {
        let tls = self.tls_args().load("registry").map_err(|error| Error::Config(error.to_string()))?;
        if let Some(tls) = &tls {
            let expected = self.identity()?;
            if tls.identity() != expected {
                return Err(Error::Config(format!(
                    "cert: {} is a certificate of {}, but this node is {expected} in {}: issue one with `regctl certs issue node --id {} --region {}`",
                    tls.files().cert.display(),
                    tls.identity(),
                    self.region,
                    self.id,
                    self.region
                )));
            }
        }
        Ok(tls)
    }

    /// The identity this node's certificate must carry.
    pub fn identity(&self) -> Result<trust::Identity, Error> {
        let region = proto::Region::parse(&self.region).map_err(|error| Error::Config(error.to_string()))?;
        Ok(trust::Identity::Node { id: self.id, region })
    }

    /// Whether this node bootstraps a fresh cluster: the lowest id does.
    pub fn is_bootstrapper(&self) -> bool {
        self.peers.iter().map(|peer| peer.id).min() == Some(self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_refuse_with_usage() {
        let peer: Peer = "2=eu-west@127.0.0.1:7102".parse().expect("valid");
        assert_eq!(peer, Peer { id: 2, region: "eu-west".to_owned(), grpc_addr: "127.0.0.1:7102".to_owned() });
        for bad in ["2", "x=eu@a:1", "2=eu-west", "2=EU@a:1", "2=eu@"] {
            assert!(bad.parse::<Peer>().is_err(), "{bad}");
        }
        let dial: Dial = "10.0.2.1:7100=127.0.0.1:17102".parse().expect("valid");
        assert_eq!(dial, Dial { to: "10.0.2.1:7100".to_owned(), via: "127.0.0.1:17102".to_owned() });
        for bad in ["10.0.2.1:7100", "=a:1", "a:1="] {
            let error = bad.parse::<Dial>().expect_err(bad).to_string();
            assert!(error.contains("expected TO=VIA"), "{error}");
        }
    }

    #[test]
    fn toml_round_trip_and_validation() {
        let text = r#"
            id = 1
            region = "us-east"
            grpc = "127.0.0.1:7101"
            http = "127.0.0.1:7201"
            data_dir = "/tmp/n1"
            peers = [
              { id = 1, region = "us-east", grpc_addr = "127.0.0.1:7101" },
              { id = 2, region = "eu-west", grpc_addr = "127.0.0.1:7102" },
            ]
        "#;
        let config: NodeConfig = toml::from_str(text).expect("parse");
        config.validate().expect("valid");
        assert!(config.is_bootstrapper());
        assert_eq!(config.heartbeat_ms, limits::HEARTBEAT_MS_DEFAULT);

        let wrong_region = NodeConfig { region: "eu-west".to_owned(), ..config.clone() };
        assert!(wrong_region.validate().is_err());
        let slow_heartbeat = NodeConfig { heartbeat_ms: 1000, ..config.clone() };
        assert!(slow_heartbeat.validate().expect_err("invalid").to_string().contains("heartbeat_ms"));
        let big_documents =
            NodeConfig { document_bytes_max: registry_core::limits::DOCUMENT_BYTES_HARD_MAX + 1, ..config };
        assert!(big_documents.validate().is_err());
    }
}
