//! A scripted cluster for the workflows' unit tests: tenants in memory,
//! revisions that grow by one per write, compare-and-set, scripted agents
//! and refusals, and a log of every write in order.

use std::collections::BTreeMap;
use std::sync::Mutex;

use proto::v1;

use proto::v1::MoveStep;

use super::moves::{CopyFailed, CopyPhase, CopyProgress};
use super::Cluster;
use crate::{Error, WriteOptions};

/// What the agents report on the `looks`-th look at revision `revision`.
type AgentScript = Box<dyn Fn(u32, u64) -> Vec<v1::AgentInfo> + Send>;

struct State {
    tenants: BTreeMap<String, v1::Tenant>,
    revision: u64,
    calls: Vec<String>,
    looks: u32,
    agents: AgentScript,
    /// Writes of this tenant are refused with this message.
    refuse: Option<(String, String)>,
    /// What the next copies answer, in order (then: equal digests).
    copies: Vec<Result<(v1::ShardDigest, v1::ShardDigest), CopyFailed>>,
}

pub(super) struct Fake {
    state: Mutex<State>,
}

/// A live tenant homed in `home`, pinned to `allowed` (empty: anywhere).
pub(super) fn tenant(id: &str, home: &str, allowed: &[&str]) -> v1::Tenant {
    v1::Tenant {
        id: id.to_owned(),
        placement: Some(v1::Placement {
            home_region: home.to_owned(),
            allowed_regions: allowed.iter().map(|region| (*region).to_owned()).collect(),
            epoch: 1,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A connected agent of `region` that acknowledged `acked`.
pub(super) fn agent(id: &str, region: &str, acked: u64) -> v1::AgentInfo {
    v1::AgentInfo {
        agent_id: id.to_owned(),
        region: region.to_owned(),
        acked_revision: acked,
        connected: true,
        ..Default::default()
    }
}

/// The bundle hashes the fake gives a config (the compiler's stand-in).
pub(super) fn bundle_hashes(config: &str) -> (String, String) {
    (format!("public-of-{config}"), format!("private-of-{config}"))
}

impl Fake {
    /// A cluster holding `tenants` at revisions 1, 2, …; its agents are
    /// always current until scripted otherwise.
    pub(super) fn new(tenants: Vec<v1::Tenant>) -> Self {
        let mut revision = 0;
        let tenants = tenants
            .into_iter()
            .map(|mut tenant| {
                revision += 1;
                tenant.mod_revision = revision;
                (tenant.id.clone(), tenant)
            })
            .collect();
        let agents: AgentScript = Box::new(|_, revision| vec![agent("api-1", "us-east", revision)]);
        Self {
            state: Mutex::new(State {
                tenants,
                revision,
                calls: Vec::new(),
                looks: 0,
                agents,
                refuse: None,
                copies: Vec::new(),
            }),
        }
    }

    pub(super) fn script_agents(&self, script: impl Fn(u32, u64) -> Vec<v1::AgentInfo> + Send + 'static) {
        self.lock().agents = Box::new(script);
    }

    pub(super) fn refuse_writes_of(&self, tenant: &str, message: &str) {
        self.lock().refuse = Some((tenant.to_owned(), message.to_owned()));
    }

    pub(super) fn script_copies(&self, copies: Vec<Result<(v1::ShardDigest, v1::ShardDigest), CopyFailed>>) {
        self.lock().copies = copies;
    }

    /// Every write so far, in order: `verb tenant [argument]`.
    pub(super) fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    pub(super) fn tenant(&self, id: &str) -> Option<v1::Tenant> {
        self.lock().tenants.get(id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Logs `call`, checks the refusal and the expected revision, then
    /// changes tenant `id` with `change` (`None`: deletes it) at the next
    /// revision.
    fn write(
        &self,
        call: String,
        id: &str,
        options: &WriteOptions,
        change: impl FnOnce(Option<v1::Tenant>) -> Option<v1::Tenant>,
    ) -> Result<v1::WriteResponse, Error> {
        let mut state = self.lock();
        state.calls.push(call);
        if let Some((_, message)) = state.refuse.as_ref().filter(|(tenant, _)| tenant == id) {
            return Err(Error::invalid("documents", "scripted", message.clone()));
        }
        let current = state.tenants.get(id).cloned();
        let at = current.as_ref().map_or(0, |tenant| tenant.mod_revision);
        if let Some(expected) = options.expected_revision.filter(|expected| *expected != at) {
            return Err(Error::Precondition {
                rule: "revision-mismatch".to_owned(),
                current_revision: Some(at),
                expected_revision: Some(expected),
                message: format!("{id} is at revision {at}, not {expected}"),
            });
        }
        state.revision += 1;
        let revision = state.revision;
        let written = change(current).map(|mut tenant| {
            tenant.id = id.to_owned();
            tenant.mod_revision = revision;
            tenant
        });
        match &written {
            Some(tenant) => state.tenants.insert(id.to_owned(), tenant.clone()),
            None => state.tenants.remove(id),
        };
        Ok(v1::WriteResponse { revision, tenant: written, ..Default::default() })
    }
}

impl Cluster for Fake {
    async fn list_tenants(&self) -> Result<Vec<v1::Tenant>, Error> {
        Ok(self.lock().tenants.values().cloned().collect())
    }

    async fn get_tenant(&self, tenant_id: &str) -> Result<v1::Tenant, Error> {
        self.lock()
            .tenants
            .get(tenant_id)
            .cloned()
            .ok_or_else(|| Error::NotFound { message: format!("tenant {tenant_id} does not exist") })
    }

    async fn agents(&self) -> (Vec<v1::AgentInfo>, bool) {
        let mut state = self.lock();
        state.looks += 1;
        ((state.agents)(state.looks, state.revision), true)
    }

    async fn write_tenant(
        &self,
        tenant_id: &str,
        create: bool,
        documents: v1::Documents,
        options: &WriteOptions,
    ) -> Result<v1::WriteResponse, Error> {
        let verb = if create { "create" } else { "update" };
        self.write(format!("{verb} {tenant_id}"), tenant_id, options, |current| {
            let mut tenant = current.unwrap_or_else(|| tenant(tenant_id, "us-east", &[]));
            tenant.config_json = documents.config_json.unwrap_or_default();
            tenant.theme_json = documents.theme_json.unwrap_or_default();
            let (public, private) = bundle_hashes(&tenant.config_json);
            tenant.public_bundle = Some(v1::Bundle { sha256: public, ..Default::default() });
            tenant.private_bundle = Some(v1::Bundle { sha256: private, ..Default::default() });
            Some(tenant)
        })
    }

    async fn rollback_tenant(
        &self,
        tenant_id: &str,
        to_revision: u64,
        options: &WriteOptions,
    ) -> Result<v1::WriteResponse, Error> {
        self.write(format!("rollback {tenant_id} {to_revision}"), tenant_id, options, |current| current)
    }

    async fn delete_tenant(&self, tenant_id: &str, options: &WriteOptions) -> Result<v1::WriteResponse, Error> {
        self.write(format!("delete {tenant_id}"), tenant_id, options, |_| None)
    }

    async fn fence_tenant(
        &self,
        tenant_id: &str,
        to: &str,
        options: &WriteOptions,
    ) -> Result<v1::WriteResponse, Error> {
        self.write(format!("fence {tenant_id} {to}"), tenant_id, options, |current| {
            current.map(|mut tenant| {
                tenant.placement.get_or_insert_default().failing_over_to = to.to_owned();
                tenant
            })
        })
    }

    async fn failover_tenant(
        &self,
        tenant_id: &str,
        to: &str,
        force: bool,
        options: &WriteOptions,
    ) -> Result<v1::WriteResponse, Error> {
        let verb = if force { "failover!" } else { "failover" };
        self.write(format!("{verb} {tenant_id} {to}"), tenant_id, options, |current| {
            current.map(|mut tenant| {
                let placement = tenant.placement.get_or_insert_default();
                placement.home_region = to.to_owned();
                placement.failing_over_to.clear();
                placement.epoch += 1;
                tenant
            })
        })
    }

    async fn move_tenant(
        &self,
        tenant_id: &str,
        step: MoveStep,
        to_shard: &str,
        digests: Option<(v1::ShardDigest, v1::ShardDigest)>,
        options: &WriteOptions,
    ) -> Result<v1::WriteResponse, Error> {
        let at = self.lock().tenants.get(tenant_id).and_then(|tenant| tenant.r#move.clone()).map(|moving| moving.step);
        let expected = match step {
            MoveStep::Begin => None,
            MoveStep::Verify => Some("copying"),
            MoveStep::Flip => Some("verified"),
            MoveStep::Unlock => Some("flipped"),
            _ => at.as_deref(),
        };
        let equal = digests.as_ref().is_none_or(|(source, target)| source == target);
        if at.as_deref() != expected || (step == MoveStep::Abort && at.is_none()) || !equal {
            return Err(Error::Precondition {
                rule: "move-step".to_owned(),
                current_revision: None,
                expected_revision: None,
                message: format!("{tenant_id}: {step:?} at step {at:?}"),
            });
        }
        let revision = self.lock().revision + 1;
        let call = format!("move {tenant_id} {}", format!("{step:?}").to_lowercase());
        self.write(call, tenant_id, options, |current| {
            current.map(|mut tenant| {
                let placement = tenant.placement.get_or_insert_default();
                match step {
                    MoveStep::Begin => {
                        tenant.r#move = Some(v1::TenantMove {
                            from_shard: tenant.shard.clone(),
                            to_shard: to_shard.to_owned(),
                            step: "copying".to_owned(),
                            began_revision: revision,
                            ..Default::default()
                        });
                    }
                    MoveStep::Verify => tenant.r#move.get_or_insert_default().step = "verified".to_owned(),
                    MoveStep::Flip => {
                        placement.epoch += 1;
                        let moving = tenant.r#move.get_or_insert_default();
                        moving.step = "flipped".to_owned();
                        tenant.shard = moving.to_shard.clone();
                    }
                    MoveStep::Abort => {
                        placement.epoch += 1;
                        tenant.r#move = None;
                    }
                    _ => tenant.r#move = None,
                }
                tenant
            })
        })
    }

    async fn copy_rows(
        &self,
        _admin: &str,
        tenant_id: &str,
        _began_revision: u64,
        progress: &mut (dyn FnMut(CopyProgress) + Send),
    ) -> Result<(v1::ShardDigest, v1::ShardDigest), CopyFailed> {
        progress(CopyProgress { phase: CopyPhase::Writing, rows: 1, rows_total: Some(3) });
        let mut state = self.lock();
        state.calls.push(format!("copy {tenant_id}"));
        if state.copies.is_empty() {
            let digest = v1::ShardDigest { rows: 3, sha256: "ab".repeat(32) };
            return Ok((digest.clone(), digest));
        }
        state.copies.remove(0)
    }

    async fn remove_old_copy(
        &self,
        _admin: &str,
        tenant_id: &str,
        _began: u64,
        _flipped: u64,
    ) -> Result<u64, CopyFailed> {
        self.lock().calls.push(format!("remove old copy {tenant_id}"));
        Ok(3)
    }
}
