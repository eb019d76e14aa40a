//! The systems under test, behind one small interface: start three members
//! on loopback, write a document, know the member processes.
//!
//! * Tenantry: three registry nodes (real fsync); a document is a tenant's
//!   config, written with `UpdateTenant` (created first with `CreateTenant`)
//!   through the product's client, so every write is validated, compiled
//!   into bundles and audited, as in production.
//! * etcd: three members of Debian's etcd 3.4 (WAL fsync on); a document is
//!   the value of key `/tenants/{id}`, written with `Put`.

use std::sync::Arc;

use cluster_tests::etcd::{self, pb, EtcdCluster};
use cluster_tests::{ClusterOptions, RegistryCluster};
use futures::stream::{self, StreamExt, TryStreamExt};
use proto::v1;
use registry_client::{Client, WriteOptions};
use tonic::transport::Channel;
use tracing::Instrument;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Target {
    Tenantry,
    Etcd,
}

impl Target {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Target::Tenantry => "tenantry",
            Target::Etcd => "etcd",
        }
    }
}

/// Whether Tenantry runs in plaintext (`--insecure`), to measure what mutual
/// TLS costs; set once by `main` before any suite starts.
static INSECURE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

pub(crate) fn set_insecure(insecure: bool) {
    let _ = INSECURE.set(insecure);
}

/// Whether Tenantry runs in plaintext (`--insecure`).
pub(crate) fn insecure() -> bool {
    INSECURE.get().copied().unwrap_or(false)
}

/// The transport a Tenantry run uses, for the table's title.
pub(crate) fn transport() -> &'static str {
    if insecure() {
        "plaintext (--insecure)"
    } else {
        "mutual TLS"
    }
}

/// The OTLP receiver Tenantry's nodes export to (`--otlp`), if any; set
/// once by `main` before any suite starts.
static OTLP: std::sync::OnceLock<String> = std::sync::OnceLock::new();

pub(crate) fn set_otlp(endpoint: &str) {
    let _ = OTLP.set(endpoint.to_owned());
}

/// The etcd key prefix of tenant documents.
pub(crate) const ETCD_PREFIX: &str = "/tenants/";

pub(crate) enum Store {
    Tenantry(Box<RegistryCluster>),
    Etcd(EtcdCluster),
}

impl Store {
    pub(crate) async fn start(target: Target, name: &str) -> anyhow::Result<Self> {
        Ok(match target {
            Target::Tenantry => {
                // Heartbeats and elections as a WAN deployment would set them; loopback does not need faster.
                let base = ClusterOptions::new(name);
                let mut base = if insecure() { base.insecure() } else { base };
                if let Some(endpoint) = OTLP.get() {
                    base.extra_args.extend(["--otlp-endpoint".to_owned(), endpoint.clone()]);
                }
                let options = ClusterOptions {
                    heartbeat_ms: 250,
                    election_timeout_ms_min: 1500,
                    election_timeout_ms_max: 3000,
                    snapshot_every_entries: 100_000,
                    ..base
                };
                Store::Tenantry(Box::new(RegistryCluster::start(options).await?))
            }
            Target::Etcd => Store::Etcd(EtcdCluster::start(name).await?),
        })
    }

    pub(crate) async fn writer(&self) -> anyhow::Result<Writer> {
        Ok(match self {
            Store::Tenantry(cluster) => Writer::Tenantry(Arc::new(cluster.client())),
            Store::Etcd(cluster) => {
                Writer::Etcd(pb::kv_client::KvClient::new(etcd::connect(&cluster.endpoints[0]).await?))
            }
        })
    }

    /// The member processes (three).
    pub(crate) fn pids(&mut self) -> Vec<u32> {
        match self {
            Store::Tenantry(cluster) => cluster.nodes.iter().filter_map(|node| node.pid()).collect(),
            Store::Etcd(cluster) => cluster.pids(),
        }
    }

    /// Marks a Tenantry run as passed (its data is removed).
    pub(crate) fn finish(self) {
        if let Store::Tenantry(cluster) = self {
            cluster.passed();
        }
    }
}

/// A document of about `bytes` bytes for tenant `id` (a JSON object, valid
/// for the registry's rules; `n` makes each version different).
pub(crate) fn document(id: &str, n: u64, bytes: usize) -> String {
    let pad = bytes.saturating_sub(64);
    format!(r#"{{"public":{{"name":"{id}","n":{n}}},"pad":"{}"}}"#, "x".repeat(pad))
}

#[derive(Clone)]
pub(crate) enum Writer {
    Tenantry(Arc<Client>),
    Etcd(pb::kv_client::KvClient<Channel>),
}

impl Writer {
    /// Writes `document` as tenant `id`'s (creating it when `create`);
    /// returns the revision of the write.
    pub(crate) async fn put(&mut self, id: &str, document: String, create: bool) -> anyhow::Result<u64> {
        match self {
            Writer::Tenantry(client) => {
                let documents = v1::Documents { config_json: Some(document), ..Default::default() };
                let options = WriteOptions::default();
                // A trace of its own per write, exported only under `--otlp`.
                let span = tracing::info_span!(target: plumbing::trace::TARGET, "bench put");
                let written = if create {
                    client.create_tenant(id, documents, &options).instrument(span).await?
                } else {
                    client.update_tenant(id, documents, &options).instrument(span).await?
                };
                Ok(written.revision)
            }
            Writer::Etcd(client) => {
                let request =
                    pb::PutRequest { key: format!("{ETCD_PREFIX}{id}").into_bytes(), value: document.into_bytes() };
                let response = client.put(request).await?.into_inner();
                Ok(response.header.map_or(0, |header| header.revision as u64))
            }
        }
    }

    /// Creates `count` tenants `{prefix}-{n}` with documents of `bytes`
    /// bytes, 64 writes in flight; the last revision.
    pub(crate) async fn preload(
        &self,
        prefix: &str,
        range: std::ops::Range<usize>,
        bytes: usize,
    ) -> anyhow::Result<u64> {
        let revisions: Vec<u64> = stream::iter(range)
            .map(|n| {
                let mut writer = self.clone();
                async move {
                    let id = format!("{prefix}-{n:06}");
                    writer.put(&id, document(&id, 0, bytes), true).await
                }
            })
            .buffer_unordered(64)
            .try_collect()
            .await?;
        Ok(revisions.into_iter().max().unwrap_or(0))
    }
}
