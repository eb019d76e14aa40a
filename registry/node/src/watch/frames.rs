//! Encoding what agents receive: tenant records per scope, deltas and
//! snapshot chunks, as ready-to-send protobuf bytes.

use std::sync::Arc;

use prost::Message;
use proto::v1::{self, registry_message::Kind};
use registry_core::{Tenant, Topology};
use tonic::codegen::Bytes;

use crate::convert;

/// What an agent may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// API agents: public and private bundles.
    Api,
    /// Frontend agents: the public bundle only, never private data.
    Frontend,
}

impl Scope {
    pub fn of(kind: v1::AgentKind) -> Option<Self> {
        match kind {
            v1::AgentKind::Api => Some(Scope::Api),
            v1::AgentKind::Frontend => Some(Scope::Frontend),
            v1::AgentKind::Unspecified => None,
        }
    }
}

/// A tenant as an agent of `scope` sees it; API agents are also sent the
/// shards it names, from `topology` (a shard's endpoint never changes once
/// added, so a record carries it as long as it names the shard).
pub(crate) fn tenant_record(tenant: &Tenant, scope: Scope, topology: &Topology) -> v1::TenantRecord {
    // Private bundles are rebuilt from the documents, for API agents only;
    // a tombstone holds no bundles.
    let api = scope == Scope::Api;
    let live = tenant.is_live();
    v1::TenantRecord {
        id: tenant.id.to_string(),
        uid: tenant.uid.to_string(),
        status: convert::status(tenant.status) as i32,
        create_revision: tenant.create_revision.get(),
        mod_revision: tenant.mod_revision.get(),
        placement: Some(convert::placement(&tenant.placement)),
        public_bundle: live.then(|| convert::bundle(&tenant.public_bundle)),
        private_bundle: (api && live).then(|| convert::owned_bundle(tenant.private_bundle())),
        config_revision: tenant.config_revision.get(),
        shard: tenant.shard.clone().unwrap_or_default(),
        r#move: tenant.moving.as_deref().map(convert::tenant_move),
        canary_revision: tenant.canary.as_ref().map_or(0, |canary| canary.revision.get()),
        canary_public_bundle: tenant.canary.as_ref().map(|canary| convert::bundle(&canary.public_bundle)),
        canary_private_bundle: tenant
            .canary
            .as_ref()
            .filter(|_| api)
            .map(|canary| convert::owned_bundle(canary.private_bundle(&tenant.id))),
        shards: if api { named_shards(tenant, topology) } else { Vec::new() },
    }
}

/// The shards `tenant` names: its own and, while it moves, both sides.
fn named_shards(tenant: &Tenant, topology: &Topology) -> Vec<v1::ShardInfo> {
    let moving = tenant.moving.as_deref();
    let mut ids: Vec<&str> = [tenant.shard.as_deref(), moving.and_then(|moving| moving.from_shard.as_deref())]
        .into_iter()
        .flatten()
        .chain(moving.map(|moving| moving.to_shard.as_str()))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter().filter_map(|id| topology.shards.get(id)).map(convert::shard_info).collect()
}

/// Encodes a message once, to be sent as is to any number of streams.
pub(crate) fn encode(kind: Kind) -> Bytes {
    Bytes::from(v1::RegistryMessage { kind: Some(kind) }.encode_to_vec())
}

/// The delta of one Raft entry, encoded for each scope.
#[derive(Debug)]
pub struct DeltaFrames {
    pub revision: u64,
    pub published_at: std::time::Instant,
    api: Bytes,
    frontend: Bytes,
}

impl DeltaFrames {
    /// Encodes the delta of the entry at `revision`, which changed
    /// `tenants`; `traceparents`: the spans that sent it, of traced writes.
    pub fn new(revision: u64, tenants: &[Arc<Tenant>], topology: &Topology, traceparents: Vec<String>) -> Self {
        let delta = |scope| {
            let tenants = tenants.iter().map(|tenant| tenant_record(tenant, scope, topology)).collect();
            encode(Kind::Delta(v1::Delta { revision, tenants, traceparents: traceparents.clone() }))
        };
        Self {
            revision,
            published_at: std::time::Instant::now(),
            api: delta(Scope::Api),
            frontend: delta(Scope::Frontend),
        }
    }

    /// The bytes this delta holds, for both scopes.
    pub fn bytes(&self) -> usize {
        self.api.len() + self.frontend.len()
    }

    /// The encoded message for a subscriber of `scope`.
    pub fn frame(&self, scope: Scope) -> Bytes {
        match scope {
            Scope::Api => self.api.clone(),
            Scope::Frontend => self.frontend.clone(),
        }
    }
}
