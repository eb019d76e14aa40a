//! Operator workflows as functions: each takes what to do, talks to the
//! cluster through [`Cluster`] (a [`Client`] in regctl, a scripted fake in
//! the unit tests), reports what happens as typed events, and returns a
//! report. They print nothing: regctl's output layer renders the events,
//! and any other program can drive the same workflow.

pub mod failover;
#[cfg(test)]
mod fake;
pub mod moves;
pub mod publish;
pub mod purge;
pub mod smoke;

use std::future::Future;

use proto::v1::{self, Consistency, MoveStep};

use crate::http::{self, HttpRequest};
use crate::{merge_agents, Client, Error, WriteOptions};
use moves::{CopyFailed, CopyProgress};

/// What the workflows ask of a cluster (and of its api-nodes' operator
/// listeners, for a move's copy).
pub trait Cluster: Sync {
    fn list_tenants(&self) -> impl Future<Output = Result<Vec<v1::Tenant>, Error>> + Send;
    /// One tenant, read linearizably.
    fn get_tenant(&self, tenant_id: &str) -> impl Future<Output = Result<v1::Tenant, Error>> + Send;
    /// The fleet merged from every node's list, and whether any node answered.
    fn agents(&self) -> impl Future<Output = (Vec<v1::AgentInfo>, bool)> + Send;
    /// Creates (`create`) or updates a tenant's documents.
    fn write_tenant(
        &self,
        tenant_id: &str,
        create: bool,
        documents: v1::Documents,
        options: &WriteOptions,
    ) -> impl Future<Output = Result<v1::WriteResponse, Error>> + Send;
    fn rollback_tenant(
        &self,
        tenant_id: &str,
        to_revision: u64,
        options: &WriteOptions,
    ) -> impl Future<Output = Result<v1::WriteResponse, Error>> + Send;
    fn delete_tenant(
        &self,
        tenant_id: &str,
        options: &WriteOptions,
    ) -> impl Future<Output = Result<v1::WriteResponse, Error>> + Send;
    fn fence_tenant(
        &self,
        tenant_id: &str,
        to: &str,
        options: &WriteOptions,
    ) -> impl Future<Output = Result<v1::WriteResponse, Error>> + Send;
    fn failover_tenant(
        &self,
        tenant_id: &str,
        to: &str,
        force: bool,
        options: &WriteOptions,
    ) -> impl Future<Output = Result<v1::WriteResponse, Error>> + Send;
    /// One step of a move (`to_shard` for begin, digests for verify).
    fn move_tenant(
        &self,
        tenant_id: &str,
        step: MoveStep,
        to_shard: &str,
        digests: Option<(v1::ShardDigest, v1::ShardDigest)>,
        options: &WriteOptions,
    ) -> impl Future<Output = Result<v1::WriteResponse, Error>> + Send;
    /// Asks the api-node at `admin` (its operator listener) to copy the
    /// rows of the move begun at `began_revision`, telling `progress` how
    /// far it is as it goes: both sides' digests.
    fn copy_rows(
        &self,
        admin: &str,
        tenant_id: &str,
        began_revision: u64,
        progress: &mut (dyn FnMut(CopyProgress) + Send),
    ) -> impl Future<Output = Result<(v1::ShardDigest, v1::ShardDigest), CopyFailed>> + Send;
    /// Asks the api-node at `admin` to remove the old copy of the move begun
    /// at `began_revision` and flipped at `flipped_revision`: how many rows went.
    fn remove_old_copy(
        &self,
        admin: &str,
        tenant_id: &str,
        began_revision: u64,
        flipped_revision: u64,
    ) -> impl Future<Output = Result<u64, CopyFailed>> + Send;
}

impl Cluster for Client {
    async fn list_tenants(&self) -> Result<Vec<v1::Tenant>, Error> {
        Ok(Client::list_tenants(self, Consistency::Linearizable, false).await?.0)
    }

    async fn get_tenant(&self, tenant_id: &str) -> Result<v1::Tenant, Error> {
        Ok(Client::get_tenant(self, tenant_id, Consistency::Linearizable).await?.tenant.unwrap_or_default())
    }

    async fn agents(&self) -> (Vec<v1::AgentInfo>, bool) {
        let lists = self.list_agents().await;
        let answered = lists.iter().any(|(_, list)| list.is_ok());
        (merge_agents(&lists).0, answered)
    }

    async fn write_tenant(
        &self,
        tenant_id: &str,
        create: bool,
        documents: v1::Documents,
        options: &WriteOptions,
    ) -> Result<v1::WriteResponse, Error> {
        if create {
            self.create_tenant(tenant_id, documents, options).await
        } else {
            self.update_tenant(tenant_id, documents, options).await
        }
    }

    async fn rollback_tenant(
        &self,
        tenant_id: &str,
        to_revision: u64,
        options: &WriteOptions,
    ) -> Result<v1::WriteResponse, Error> {
        Client::rollback_tenant(self, tenant_id, to_revision, options).await
    }

    async fn delete_tenant(&self, tenant_id: &str, options: &WriteOptions) -> Result<v1::WriteResponse, Error> {
        Client::delete_tenant(self, tenant_id, options).await
    }

    async fn fence_tenant(
        &self,
        tenant_id: &str,
        to: &str,
        options: &WriteOptions,
    ) -> Result<v1::WriteResponse, Error> {
        Client::fence_tenant(self, tenant_id, Some(to), options).await
    }

    async fn failover_tenant(
        &self,
        tenant_id: &str,
        to: &str,
        force: bool,
        options: &WriteOptions,
    ) -> Result<v1::WriteResponse, Error> {
        Client::failover_tenant(self, tenant_id, to, force, options).await
    }

    async fn move_tenant(
        &self,
        tenant_id: &str,
        step: MoveStep,
        to_shard: &str,
        digests: Option<(v1::ShardDigest, v1::ShardDigest)>,
        options: &WriteOptions,
    ) -> Result<v1::WriteResponse, Error> {
        Client::move_tenant(self, tenant_id, step, to_shard, digests, options).await
    }

    async fn copy_rows(
        &self,
        admin: &str,
        tenant_id: &str,
        began_revision: u64,
        progress: &mut (dyn FnMut(CopyProgress) + Send),
    ) -> Result<(v1::ShardDigest, v1::ShardDigest), CopyFailed> {
        let path = format!("/admin/moves/{tenant_id}/copy?began_revision={began_revision}");
        let mut line = |line: &[u8]| {
            if let Some(told) = CopyProgress::from_line(line) {
                progress(told);
            }
        };
        digests(&admin_post(self, admin, &path, &mut line).await?)
    }

    async fn remove_old_copy(
        &self,
        admin: &str,
        tenant_id: &str,
        began_revision: u64,
        flipped_revision: u64,
    ) -> Result<u64, CopyFailed> {
        let path = format!(
            "/admin/moves/{tenant_id}/remove-old-copy?began_revision={began_revision}&revision={flipped_revision}"
        );
        let body = admin_post(self, admin, &path, &mut |_| {}).await?;
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        value["removed_rows"].as_u64().ok_or_else(|| CopyFailed {
            retry: false,
            problem: format!("not the expected answer: {}", String::from_utf8_lossy(&body)),
        })
    }
}

/// `POST path` on an api-node's operator listener, its answer streamed as
/// lines (each but the last to `line`): the last line of a 200, or what went
/// wrong (worth a retry when unreachable or 503).
async fn admin_post(
    client: &Client,
    admin: &str,
    path: &str,
    line: &mut (dyn FnMut(&[u8]) + Send),
) -> Result<Vec<u8>, CopyFailed> {
    let headers = [("Host", admin), ("Content-Type", "application/json")];
    let request = HttpRequest::new("POST", path, &headers);
    match http::send_lines(&client.http_connector(), admin, &request, line).await {
        Ok(response) if response.status == 200 => Ok(response.body),
        Ok(response) => Err(CopyFailed {
            retry: response.status == 503,
            problem: format!("{} {}", response.status, detail(&response.body)),
        }),
        Err(error) => Err(CopyFailed { retry: true, problem: error.to_string() }),
    }
}

/// The `detail` of a problem answer, or the body as text.
fn detail(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value["detail"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

/// Both sides' digests from a copy's answer (its last line), or the
/// problem that line tells (with its status: worth a retry when 503).
fn digests(body: &[u8]) -> Result<(v1::ShardDigest, v1::ShardDigest), CopyFailed> {
    let broken = |problem: String| CopyFailed { retry: false, problem };
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| broken(format!("not the expected JSON ({error})")))?;
    if let Some(status) = value["status"].as_u64() {
        return Err(CopyFailed { retry: status == 503, problem: format!("{status} {}", detail(body)) });
    }
    let digest = |side: &str| match (value[side]["rows"].as_u64(), value[side]["sha256"].as_str()) {
        (Some(rows), Some(sha256)) => Ok(v1::ShardDigest { rows, sha256: sha256.to_owned() }),
        _ => Err(broken(format!("the answer has no {side} digest"))),
    };
    Ok((digest("source")?, digest("target")?))
}
