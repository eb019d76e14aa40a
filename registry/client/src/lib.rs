//! A client for a registry cluster, used by regctl, the suites and any
//! program that manages tenants.
//!
//! It knows several endpoints, prefers the last one that answered, moves on
//! when a node is unreachable or has no leader (following the leader hint in
//! the error details), and gives up after `CLIENT_RETRY_MS_MAX` (longer
//! than an election, so a call rides out a leader change). Every
//! write carries a request id (generated if the caller gave none), so a retry
//! after a timeout or a leader change applies at most once.

mod error;
pub mod http;
pub mod limits;
mod retry;
pub mod workflows;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proto::limits::{CLIENT_REQUEST_TIMEOUT_MS, GRPC_MESSAGE_BYTES_MAX};
use proto::v1::registry_client::RegistryClient;
use proto::v1::{self, Consistency};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::Status;

pub use crate::error::Error;
use crate::limits::CLIENT_RETRY_MS_MAX;

/// A change of regions or shards.
#[derive(Debug, Clone)]
pub enum TopologyChange {
    RegionStatus(String, v1::RegionStatus),
    AddShard(v1::ShardInfo),
    DrainShard(String),
}

/// How a write is made: compare-and-set, idempotency key, audit fields.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub expected_revision: Option<u64>,
    /// Generated (a ULID) when `None`.
    pub request_id: Option<String>,
    pub actor: String,
    pub reason: String,
}

impl WriteOptions {
    fn meta(&self) -> v1::WriteMeta {
        v1::WriteMeta {
            expected_revision: self.expected_revision,
            request_id: self.request_id.clone().unwrap_or_else(|| ulid::Ulid::new().to_string()),
            actor: self.actor.clone(),
            reason: self.reason.clone(),
        }
    }
}

/// A channel that sends the caller's trace context with every call.
pub type Traced = InterceptedService<Channel, plumbing::trace::Propagate>;

struct Endpoint {
    addr: String,
    channel: Channel,
    client: RegistryClient<Traced>,
}

/// A registry cluster client.
pub struct Client {
    endpoints: Vec<Endpoint>,
    /// The operator's certificate (`None`: plaintext), for other ports too.
    tls: Option<std::sync::Arc<trust::Tls>>,
    /// The index of the endpoint to try first.
    preferred: AtomicUsize,
    request_timeout: Duration,
}

impl Client {
    /// A client for `endpoints` (`host:port`, at least one), over mutual
    /// TLS with `tls` (`None`: plaintext, for `--insecure` clusters).
    pub fn new<S: AsRef<str>>(endpoints: &[S], tls: Option<std::sync::Arc<trust::Tls>>) -> Result<Self, Error> {
        if endpoints.is_empty() {
            return Err(Error::invalid("endpoints", "non-empty", "endpoints: give at least one host:port"));
        }
        let endpoints = endpoints
            .iter()
            .map(|addr| {
                let addr = addr.as_ref().trim().to_owned();
                let channel = trust::Connector::new(tls.clone(), true)
                    .expecting(trust::Expect::AnyNode)
                    .channel(&addr, Duration::from_secs(2))
                    .map_err(|error| Error::invalid("endpoints", "host-port", format!("endpoint `{addr}`: {error}")))?;
                let client = RegistryClient::with_interceptor(channel.clone(), plumbing::trace::Propagate)
                    .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
                    .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
                Ok(Endpoint { addr, channel, client })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Self {
            endpoints,
            tls,
            preferred: AtomicUsize::new(0),
            request_timeout: Duration::from_millis(CLIENT_REQUEST_TIMEOUT_MS + 2_000),
        })
    }

    /// A connector for HTTP ports that take the same certificate (an
    /// api-node's operator port).
    pub fn http_connector(&self) -> trust::Connector {
        trust::Connector::new(self.tls.clone(), false)
    }

    /// The endpoints, in the order given.
    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.endpoints.iter().map(|endpoint| endpoint.addr.as_str())
    }

    /// Calls `call` at the preferred endpoint, moving on to the others (and
    /// round again, with backoff) while the failure is retryable
    /// ([`retry::Policy`]); the endpoint that answered is preferred next.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        F: Fn(RegistryClient<Traced>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let addrs: Vec<&str> = self.endpoints().collect();
        let policy = retry::Policy {
            addrs: &addrs,
            attempt_timeout: self.request_timeout,
            give_up_after: Duration::from_millis(CLIENT_RETRY_MS_MAX),
        };
        let first = self.preferred.load(Ordering::Relaxed);
        let (response, index) = policy.call(first, |index| call(self.endpoints[index].client.clone())).await?;
        self.preferred.store(index, Ordering::Relaxed);
        Ok(response.into_inner())
    }

    pub async fn create_tenant(
        &self,
        tenant_id: &str,
        documents: v1::Documents,
        options: &WriteOptions,
    ) -> Result<v1::WriteResponse, Error> {
        let request = v1::CreateTenantRequest {
            tenant_id: tenant_id.to_owned(),
            documents: Some(documents),
            meta: Some(options.meta()),
        };
        self.call(|mut client| {
            let request = request.clone();
            async move { client.create_tenant(request).await }
        })
        .await
    }

    pub async fn update_tenant(
        &self,
        tenant_id: &str,
        documents: v1::Documents,
        options: &WriteOptions,
    ) -> Result<v1::WriteResponse, Error> {
        let request = v1::UpdateTenantRequest {
            tenant_id: tenant_id.to_owned(),
            documents: Some(documents),
            meta: Some(options.meta()),
        };
        self.call(|mut client| {
            let request = request.clone();
            async move { client.update_tenant(request).await }
        })
        .await
    }

    pub async fn delete_tenant(&self, tenant_id: &str, options: &WriteOptions) -> Result<v1::WriteResponse, Error> {
        let request = v1::DeleteTenantRequest { tenant_id: tenant_id.to_owned(), meta: Some(options.meta()) };
        self.call(|mut client| {
            let request = request.clone();
            async move { client.delete_tenant(request).await }
        })
        .await
    }

    pub async fn rollback_tenant(
        &self,
        tenant_id: &str,
        to_revision: u64,
        options: &WriteOptions,
    ) -> Result<v1::WriteResponse, Error> {
        let request =
            v1::RollbackTenantRequest { tenant_id: tenant_id.to_owned(), to_revision, meta: Some(options.meta()) };
        self.call(|mut client| {
            let request = request.clone();
            async move { client.rollback_tenant(request).await }
        })
        .await
    }

    pub async fn pin_tenant(
        &self,
        tenant_id: &str,
        allowed_regions: &[String],
        options: &WriteOptions,
    ) -> Result<v1::WriteResponse, Error> {
        let request = v1::PinTenantRequest {
            tenant_id: tenant_id.to_owned(),
            allowed_regions: allowed_regions.to_vec(),
            meta: Some(options.meta()),
        };
        self.call(|mut client| {
            let request = request.clone();
            async move { client.pin_tenant(request).await }
        })
        .await
    }

    /// Fences a tenant for a failover to `to` (`None` lifts the fence).
    pub async fn fence_tenant(
        &self,
        tenant_id: &str,
        to: Option<&str>,
        options: &WriteOptions,
    ) -> Result<v1::WriteResponse, Error> {
        let request = v1::FenceTenantRequest {
            tenant_id: tenant_id.to_owned(),
            to: to.unwrap_or_default().to_owned(),
            meta: Some(options.meta()),
        };
        self.call(|mut client| {
            let request = request.clone();
            async move { client.fence_tenant(request).await }
        })
        .await
    }

    pub async fn failover_tenant(
        &self,
        tenant_id: &str,
        to: &str,
        force: bool,
        options: &WriteOptions,
    ) -> Result<v1::WriteResponse, Error> {
        let request = v1::FailoverTenantRequest {
            tenant_id: tenant_id.to_owned(),
            to: to.to_owned(),
            force,
            meta: Some(options.meta()),
        };
        self.call(|mut client| {
            let request = request.clone();
            async move { client.failover_tenant(request).await }
        })
        .await
    }

    /// A consistent backup of the cluster's state: a snapshot file's bytes,
    /// checked against the summary the node sent with them; `received` is
    /// told the bytes received so far after each chunk.
    pub async fn save_snapshot(&self, mut received: impl FnMut(u64)) -> Result<(Vec<u8>, v1::SnapshotSummary), Error> {
        let mut stream =
            self.call(|mut client| async move { client.save_snapshot(v1::SaveSnapshotRequest {}).await }).await?;
        let mut bytes = Vec::new();
        let mut summary = None;
        while let Some(chunk) = stream.message().await? {
            bytes.extend_from_slice(&chunk.data);
            received(bytes.len() as u64);
            summary = chunk.summary.or(summary);
        }
        let summary = summary.ok_or_else(|| {
            Error::Other(Status::data_loss("the snapshot stream ended without its summary: the backup is incomplete"))
        })?;
        let sha256 = compiler::document::sha256_hex(&bytes);
        if summary.bytes != bytes.len() as u64 || summary.sha256 != sha256 {
            return Err(Error::Other(Status::data_loss(format!(
                "received {} bytes hashing to {sha256}; the node sent {} bytes hashing to {}",
                bytes.len(),
                summary.bytes,
                summary.sha256
            ))));
        }
        Ok((bytes, summary))
    }

    /// Regions and shards: a change (`Some`) or a read (`None`).
    pub async fn topology(&self, change: Option<TopologyChange>) -> Result<v1::TopologyResponse, Error> {
        self.call(|mut client| {
            let change = change.clone();
            async move {
                match change {
                    None => client.get_topology(v1::GetTopologyRequest { consistency: 0 }).await,
                    Some(TopologyChange::RegionStatus(region, status)) => {
                        client.set_region_status(v1::SetRegionStatusRequest { region, status: status as i32 }).await
                    }
                    Some(TopologyChange::AddShard(shard)) => {
                        client.add_shard(v1::AddShardRequest { shard: Some(shard) }).await
                    }
                    Some(TopologyChange::DrainShard(id)) => client.drain_shard(v1::DrainShardRequest { id }).await,
                }
            }
        })
        .await
    }

    pub async fn stage_canary(
        &self,
        tenant_id: &str,
        documents: v1::Documents,
        options: &WriteOptions,
    ) -> Result<v1::WriteResponse, Error> {
        let request = v1::StageCanaryRequest {
            tenant_id: tenant_id.to_owned(),
            documents: Some(documents),
            meta: Some(options.meta()),
        };
        self.call(|mut client| {
            let request = request.clone();
            async move { client.stage_canary(request).await }
        })
        .await
    }

    /// Promotes (`promote`) or aborts the staged canary of a tenant.
    pub async fn finish_canary(
        &self,
        tenant_id: &str,
        promote: bool,
        options: &WriteOptions,
    ) -> Result<v1::WriteResponse, Error> {
        let request = v1::TenantActionRequest { tenant_id: tenant_id.to_owned(), meta: Some(options.meta()) };
        self.call(|mut client| {
            let request = request.clone();
            async move {
                if promote {
                    client.promote_canary(request).await
                } else {
                    client.abort_canary(request).await
                }
            }
        })
        .await
    }

    /// One step of a move between shards (`to_shard` for begin, digests for verify).
    pub async fn move_tenant(
        &self,
        tenant_id: &str,
        step: v1::MoveStep,
        to_shard: &str,
        digests: Option<(v1::ShardDigest, v1::ShardDigest)>,
        options: &WriteOptions,
    ) -> Result<v1::WriteResponse, Error> {
        let (source, target) = digests.unzip();
        let request = v1::MoveTenantRequest {
            tenant_id: tenant_id.to_owned(),
            step: step as i32,
            to_shard: to_shard.to_owned(),
            source,
            target,
            meta: Some(options.meta()),
        };
        self.call(|mut client| {
            let request = request.clone();
            async move { client.move_tenant(request).await }
        })
        .await
    }

    /// Adds a learner and waits until it has caught up.
    pub async fn add_learner(
        &self,
        node_id: u64,
        region: &str,
        grpc_addr: &str,
    ) -> Result<v1::MembershipResponse, Error> {
        let request = v1::AddLearnerRequest { node_id, region: region.to_owned(), grpc_addr: grpc_addr.to_owned() };
        self.call(|mut client| {
            let request = request.clone();
            async move { client.add_learner(request).await }
        })
        .await
    }

    /// Promotes a learner to voter (`promote`) or removes a member.
    pub async fn change_member(&self, node_id: u64, promote: bool) -> Result<v1::MembershipResponse, Error> {
        let request = v1::MemberRequest { node_id };
        self.call(|mut client| async move {
            if promote {
                client.promote_member(request).await
            } else {
                client.remove_member(request).await
            }
        })
        .await
    }

    pub async fn get_tenant(&self, tenant_id: &str, consistency: Consistency) -> Result<v1::GetTenantResponse, Error> {
        let request = v1::GetTenantRequest { tenant_id: tenant_id.to_owned(), consistency: consistency as i32 };
        self.call(|mut client| {
            let request = request.clone();
            async move { client.get_tenant(request).await }
        })
        .await
    }

    /// Every tenant, page by page, and the revision of the first page.
    pub async fn list_tenants(
        &self,
        consistency: Consistency,
        include_deleted: bool,
    ) -> Result<(Vec<v1::Tenant>, u64), Error> {
        let mut tenants = Vec::new();
        let mut revision = None;
        loop {
            let request = v1::ListTenantsRequest {
                consistency: consistency as i32,
                include_deleted,
                start_after: tenants.last().map(|tenant: &v1::Tenant| tenant.id.clone()).unwrap_or_default(),
                limit: 0,
            };
            let page = self
                .call(|mut client| {
                    let request = request.clone();
                    async move { client.list_tenants(request).await }
                })
                .await?;
            revision.get_or_insert(page.revision);
            tenants.extend(page.tenants);
            if !page.more {
                return Ok((tenants, revision.unwrap_or(0)));
            }
        }
    }

    /// A tenant's audit entries, newest first; with `documents`, each
    /// entry that changed them carries the documents it left.
    pub async fn history(&self, tenant_id: &str, limit: u32, documents: bool) -> Result<v1::HistoryResponse, Error> {
        let request =
            v1::HistoryRequest { tenant_id: tenant_id.to_owned(), limit, consistency: 0, include_documents: documents };
        self.call(|mut client| {
            let request = request.clone();
            async move { client.history(request).await }
        })
        .await
    }

    /// The status of every endpoint, each as that node sees the cluster.
    pub async fn cluster_status(&self) -> Vec<(String, Result<v1::ClusterStatusResponse, Error>)> {
        let calls = self.endpoints.iter().map(|endpoint| async move {
            let mut client = endpoint.client.clone();
            let status = tokio::time::timeout(self.request_timeout, client.cluster_status(v1::ClusterStatusRequest {}))
                .await
                .unwrap_or_else(|_| Err(Status::deadline_exceeded("no answer")))
                .map(tonic::Response::into_inner)
                .map_err(Error::from);
            (endpoint.addr.clone(), status)
        });
        futures::future::join_all(calls).await
    }
}

impl Client {
    /// Every endpoint's list of its agents.
    pub async fn list_agents(&self) -> Vec<(String, Result<v1::ListAgentsResponse, Error>)> {
        let calls = self.endpoints.iter().map(|endpoint| async move {
            let mut client = v1::agent_admin_client::AgentAdminClient::with_interceptor(
                endpoint.channel.clone(),
                plumbing::trace::Propagate,
            )
            .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX);
            let result = tokio::time::timeout(self.request_timeout, client.list_agents(v1::ListAgentsRequest {}))
                .await
                .unwrap_or_else(|_| Err(Status::deadline_exceeded("no answer")))
                .map(tonic::Response::into_inner)
                .map_err(Error::from);
            (endpoint.addr.clone(), result)
        });
        futures::future::join_all(calls).await
    }
}

/// The whole fleet from every node's list: one entry per agent, the
/// connected one if any (else the most recent), and the highest revision any
/// node had published.
pub fn merge_agents(lists: &[(String, Result<v1::ListAgentsResponse, Error>)]) -> (Vec<v1::AgentInfo>, u64) {
    let mut merged: std::collections::BTreeMap<String, v1::AgentInfo> = std::collections::BTreeMap::new();
    let mut revision = 0;
    for list in lists.iter().filter_map(|(_, list)| list.as_ref().ok()) {
        revision = revision.max(list.revision);
        for agent in &list.agents {
            let better = match merged.get(&agent.agent_id) {
                None => true,
                Some(known) => (agent.connected, agent.since_unix_ms) > (known.connected, known.since_unix_ms),
            };
            if better {
                merged.insert(agent.agent_id.clone(), agent.clone());
            }
        }
    }
    (merged.into_values().collect(), revision)
}
