//! The agent's view of the registry and the pure functions that advance it.
//!
//! A [`View`] is immutable; applying a delta or a snapshot makes a new one
//! that shares everything unchanged (a persistent map), so the agent swaps it
//! in atomically and readers never lock.
//!
//! Architecture Invariant: a view's revision never goes back, and a delta
//! applies only to the view of the revision just before it.

use std::sync::{Arc, OnceLock};

use proto::v1::{self, TenantRecord, TenantStatus};
use proto::TenantId;

/// What this agent may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// API node: public and private bundles.
    Api,
    /// Frontend node: public bundles only.
    Frontend,
}

impl Kind {
    pub fn wire(self) -> v1::AgentKind {
        match self {
            Kind::Api => v1::AgentKind::Api,
            Kind::Frontend => v1::AgentKind::Frontend,
        }
    }

    /// The kind an agent certificate names for this agent.
    pub fn certified(self) -> trust::AgentKind {
        match self {
            Kind::Api => trust::AgentKind::Api,
            Kind::Frontend => trust::AgentKind::Frontend,
        }
    }
}

impl From<trust::AgentKind> for Kind {
    fn from(kind: trust::AgentKind) -> Self {
        match kind {
            trust::AgentKind::Api => Kind::Api,
            trust::AgentKind::Frontend => Kind::Frontend,
        }
    }
}

/// What `/config/{tenant}.json` serves in this agent's region: the
/// public bundle with the region's variant merged in and `configVersion`
/// and `region` added ([`compiler::regions::served_json`]), and its
/// SHA-256 (the ETag).
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    pub json: prost::bytes::Bytes,
    pub sha256: String,
}

impl Served {
    /// Of a checked public bundle (a JSON object, so `served_json` cannot
    /// refuse it; were it to, the bundle is served as it is).
    fn new(bundle: &v1::Bundle, region: &str, config_version: u64) -> Self {
        match compiler::regions::served_json(&bundle.json, region, config_version) {
            Ok(json) => Self { sha256: compiler::document::sha256_hex(json.as_bytes()), json: json.into() },
            Err(_) => Self { json: bundle.json.clone(), sha256: bundle.sha256.clone() },
        }
    }
}

/// One tenant as the agent holds it: the record, and what its region
/// serves, made on first use (an agent's cold start applies every record
/// but serves few of them at once; the sidecar's files ask for each).
#[derive(Debug, Clone, PartialEq)]
pub struct TenantEntry {
    pub record: TenantRecord,
    region: Arc<str>,
    served: OnceLock<Served>,
    canary_served: OnceLock<Option<Served>>,
}

impl TenantEntry {
    /// The entry of a checked record, served in `region`.
    pub fn new(record: TenantRecord, region: Arc<str>) -> Self {
        Self { record, region, served: OnceLock::new(), canary_served: OnceLock::new() }
    }

    /// The runtime config this region serves.
    pub fn served(&self) -> &Served {
        self.served.get_or_init(|| {
            let bundle = self.record.public_bundle.clone().unwrap_or_default();
            Served::new(&bundle, &self.region, self.record.config_revision)
        })
    }

    /// The staged canary's runtime config, if one is staged.
    pub fn canary_served(&self) -> Option<&Served> {
        self.canary_served
            .get_or_init(|| match &self.record.canary_public_bundle {
                Some(bundle) if self.record.canary_revision > 0 => {
                    Some(Served::new(bundle, &self.region, self.record.canary_revision))
                }
                _ => None,
            })
            .as_ref()
    }

    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// The tenant's configVersion: the revision of its live bundles.
    pub fn config_version(&self) -> u64 {
        self.record.config_revision
    }

    /// The public bundle's JSON bytes (what a browser may see).
    pub fn public_json(&self) -> &[u8] {
        self.record.public_bundle.as_ref().map_or(&[], |bundle| &bundle.json)
    }

    pub fn public_sha256(&self) -> &str {
        self.record.public_bundle.as_ref().map_or("", |bundle| &bundle.sha256)
    }

    /// The private bundle's JSON bytes; `None` on frontend agents.
    pub fn private_json(&self) -> Option<&[u8]> {
        self.record.private_bundle.as_ref().map(|bundle| bundle.json.as_ref())
    }
}

/// An immutable view of every live tenant at one revision.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub revision: u64,
    pub cluster_id: String,
    tenants: imbl::HashMap<String, Arc<TenantEntry>>,
}

/// A record the agent refused, and why (becomes a NACK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub revision: u64,
    pub tenant_id: String,
    pub reason: String,
}

/// A delta that does not follow the view: the stream is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("delta for revision {got} does not follow the view at revision {have}")]
pub struct SequenceError {
    pub have: u64,
    pub got: u64,
}

/// The agent's own rules for a record (on top of the registry's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub kind: Kind,
    pub bundle_bytes_max: usize,
    /// The agent's region, whose variant of each tenant it serves.
    pub region: Arc<str>,
}

/// Checks a record with the same rules the registry uses (the bundles'
/// hashes, and the config compiler's check that a public bundle holds only
/// public parts and no secrets), plus the agent's scope and size limits.
pub fn validate(record: &TenantRecord, revision: u64, rules: &Rules) -> Result<(), String> {
    TenantId::parse(&record.id).map_err(|error| error.to_string())?;
    if record.mod_revision > revision || record.config_revision > record.mod_revision {
        return Err(format!(
            "mod_revision {} / config_revision {}: after the delta's revision {revision}",
            record.mod_revision, record.config_revision
        ));
    }
    if is_deleted(record) {
        // A tombstone is applied by removing the tenant: it needs no
        // bundles (registries before compacted tombstones sent them still).
        if rules.kind == Kind::Frontend && (record.private_bundle.is_some() || record.canary_private_bundle.is_some()) {
            return Err("private_bundle: a frontend agent must never hold private data".to_owned());
        }
        return Ok(());
    }
    if rules.kind == Kind::Frontend && !record.shards.is_empty() {
        return Err("shards: a frontend agent is sent no shard endpoints".to_owned());
    }
    validate_bundles(("public_bundle", "private_bundle"), &record.public_bundle, &record.private_bundle, rules)?;
    if record.canary_revision > 0 {
        let names = ("canary_public_bundle", "canary_private_bundle");
        validate_bundles(names, &record.canary_public_bundle, &record.canary_private_bundle, rules)?;
    }
    Ok(())
}

fn validate_bundles(
    (public_name, private_name): (&str, &str),
    public: &Option<v1::Bundle>,
    private: &Option<v1::Bundle>,
    rules: &Rules,
) -> Result<(), String> {
    let Some(public) = public else {
        return Err(format!("{public_name}: missing"));
    };
    compiler::document::verify_bundle(public_name, &public.json, &public.sha256, rules.bundle_bytes_max)
        .map_err(|error| error.to_string())?;
    compiler::check_public_bundle(&public.json).map_err(|problem| format!("{public_name}: {problem}"))?;
    match (rules.kind, private) {
        (Kind::Api, Some(private)) => {
            compiler::document::verify_bundle(private_name, &private.json, &private.sha256, rules.bundle_bytes_max)
                .map_err(|error| error.to_string())?;
        }
        (Kind::Api, None) => return Err(format!("{private_name}: missing for an API agent")),
        (Kind::Frontend, Some(_)) => {
            return Err(format!("{private_name}: a frontend agent must never hold private data"));
        }
        (Kind::Frontend, None) => {}
    }
    Ok(())
}

fn is_deleted(record: &TenantRecord) -> bool {
    record.status == TenantStatus::Deleted as i32
}

/// A record validated and made into its entry; `None` for a tombstone.
fn checked(record: TenantRecord, revision: u64, rules: &Rules) -> Result<Option<TenantEntry>, String> {
    validate(&record, revision, rules)?;
    if is_deleted(&record) {
        return Ok(None);
    }
    Ok(Some(TenantEntry::new(record, rules.region.clone())))
}

impl View {
    /// A tenant by id; takes no lock and allocates nothing.
    pub fn tenant(&self, id: &str) -> Option<&Arc<TenantEntry>> {
        self.tenants.get(id)
    }

    pub fn len(&self) -> usize {
        self.tenants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }

    pub fn tenants(&self) -> impl Iterator<Item = &Arc<TenantEntry>> {
        self.tenants.values()
    }

    /// Applies the delta of the entry right after this view. Records that
    /// fail validation are refused; their tenants keep their last good
    /// version.
    pub fn apply_delta(&self, delta: v1::Delta, rules: &Rules) -> Result<(View, Vec<Refusal>), SequenceError> {
        if delta.revision != self.revision + 1 {
            return Err(SequenceError { have: self.revision, got: delta.revision });
        }
        let mut next = self.clone();
        next.revision = delta.revision;
        let mut refusals = Vec::new();
        for record in delta.tenants {
            let id = record.id.clone();
            match checked(record, delta.revision, rules) {
                Err(reason) => refusals.push(Refusal { revision: delta.revision, tenant_id: id, reason }),
                Ok(None) => {
                    next.tenants.remove(&id);
                }
                Ok(Some(entry)) => {
                    next.tenants.insert(id, Arc::new(entry));
                }
            }
        }
        Ok((next, refusals))
    }

    /// Replaces the view with a snapshot. A refused record keeps this view's
    /// version of the tenant, if it has one.
    pub fn apply_snapshot(
        &self,
        revision: u64,
        cluster_id: String,
        records: Vec<TenantRecord>,
        rules: &Rules,
    ) -> (View, Vec<Refusal>) {
        let mut tenants = imbl::HashMap::new();
        let mut refusals = Vec::new();
        for record in records {
            let id = record.id.clone();
            match checked(record, revision, rules) {
                Ok(Some(entry)) => {
                    tenants.insert(id, Arc::new(entry));
                }
                Ok(None) => {}
                Err(reason) => {
                    if let Some(kept) = self.tenants.get(&id) {
                        tenants.insert(id.clone(), kept.clone());
                    }
                    refusals.push(Refusal { revision, tenant_id: id, reason });
                }
            }
        }
        (View { revision, cluster_id, tenants }, refusals)
    }

    /// A view rebuilt from the agent's disk: the records it applied before,
    /// served in `region`.
    pub fn restored(
        revision: u64,
        cluster_id: String,
        records: impl IntoIterator<Item = TenantRecord>,
        region: &str,
    ) -> View {
        let region: Arc<str> = Arc::from(region);
        let tenants = records
            .into_iter()
            .map(|record| (record.id.clone(), Arc::new(TenantEntry::new(record, region.clone()))))
            .collect();
        View { revision, cluster_id, tenants }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> Rules {
        Rules { kind: Kind::Api, bundle_bytes_max: 1024, region: Arc::from("eu-west") }
    }

    fn frontend() -> Rules {
        Rules { kind: Kind::Frontend, ..api() }
    }

    fn bundle(json: &str) -> v1::Bundle {
        v1::Bundle { json: json.as_bytes().to_vec().into(), sha256: compiler::document::sha256_hex(json.as_bytes()) }
    }

    fn record(id: &str, revision: u64, private: bool) -> TenantRecord {
        TenantRecord {
            id: id.to_owned(),
            uid: "01".to_owned(),
            status: TenantStatus::Active as i32,
            create_revision: revision,
            mod_revision: revision,
            placement: None,
            public_bundle: Some(bundle(&format!(r#"{{"config":{{"n":{revision}}},"tenant":"{id}"}}"#))),
            private_bundle: private.then(|| bundle(r#"{"secret_ref":"vault:kv/x"}"#)),
            config_revision: revision,
            ..Default::default()
        }
    }

    fn delta(revision: u64, tenants: Vec<TenantRecord>) -> v1::Delta {
        v1::Delta { revision, tenants, ..Default::default() }
    }

    #[test]
    fn deltas_apply_in_order_and_gaps_are_refused() {
        let view = View::default();
        let (view, refusals) = view.apply_delta(delta(1, vec![record("acme", 1, true)]), &api()).expect("in order");
        assert!(refusals.is_empty());
        let (view, _) = view.apply_delta(delta(2, vec![]), &api()).expect("an empty delta advances the revision");
        assert_eq!(view.revision, 2);
        assert_eq!(view.apply_delta(delta(4, vec![]), &api()).expect_err("gap"), SequenceError { have: 2, got: 4 });
        assert_eq!(view.apply_delta(delta(2, vec![]), &api()).expect_err("replay"), SequenceError { have: 2, got: 2 });
        assert_eq!(view.tenant("acme").map(|entry| entry.config_version()), Some(1));
    }

    #[test]
    fn a_refused_record_keeps_the_last_good_version() {
        let (view, _) = View::default().apply_delta(delta(1, vec![record("acme", 1, true)]), &api()).expect("ok");
        let mut bad = record("acme", 2, true);
        bad.public_bundle = Some(v1::Bundle { json: b"{}".to_vec().into(), sha256: "0".repeat(64) });
        let (view, refusals) = view.apply_delta(delta(2, vec![bad]), &api()).expect("in order");
        assert_eq!(view.revision, 2, "the revision still advances");
        assert_eq!(view.tenant("acme").map(|entry| entry.config_version()), Some(1));
        assert_eq!(refusals.len(), 1);
        assert!(refusals[0].reason.contains("sha256"), "{}", refusals[0].reason);

        let mut big = record("acme", 3, true);
        let text = format!(r#"{{"x":"{}"}}"#, "y".repeat(2000));
        big.private_bundle = Some(bundle(&text));
        let (_, refusals) = view.apply_delta(delta(3, vec![big]), &api()).expect("in order");
        assert!(refusals[0].reason.contains("over the limit"), "{}", refusals[0].reason);
    }

    #[test]
    fn public_bundles_with_secrets_and_bad_canaries_are_refused() {
        let mut leaky = record("acme", 1, true);
        leaky.public_bundle = Some(bundle(r#"{"config":{"apiToken":"abc"},"tenant":"acme"}"#));
        let (view, refusals) = View::default().apply_delta(delta(1, vec![leaky]), &api()).expect("ok");
        assert!(view.tenant("acme").is_none());
        assert!(refusals[0].reason.contains("names a secret"), "{}", refusals[0].reason);

        let mut staged = record("acme", 2, true);
        staged.canary_revision = 2;
        staged.canary_public_bundle = Some(bundle(r#"{"config":{"n":3},"tenant":"acme"}"#));
        let (view, refusals) = view.apply_delta(delta(2, vec![staged.clone()]), &api()).expect("ok");
        assert!(refusals[0].reason.contains("canary_private_bundle: missing"), "{}", refusals[0].reason);
        staged.canary_private_bundle = Some(bundle("{}"));
        let (view, refusals) = view.apply_delta(delta(3, vec![staged]), &api()).expect("ok");
        assert!(refusals.is_empty(), "{refusals:?}");
        let entry = view.tenant("acme").expect("applied");
        let canary = entry.canary_served().map(|served| String::from_utf8_lossy(&served.json).into_owned());
        assert_eq!(
            canary.as_deref(),
            Some(r#"{"config":{"n":3},"configVersion":2,"region":"eu-west","tenant":"acme","theme":{}}"#)
        );
    }

    #[test]
    fn scope_is_checked_both_ways() {
        let (_, refusals) =
            View::default().apply_delta(delta(1, vec![record("acme", 1, true)]), &frontend()).expect("ok");
        assert!(refusals[0].reason.contains("never hold private data"));
        let (_, refusals) = View::default().apply_delta(delta(1, vec![record("acme", 1, false)]), &api()).expect("ok");
        assert!(refusals[0].reason.contains("missing"));
        let shard =
            v1::ShardInfo { id: "us-1".to_owned(), endpoint: "postgres://app@db/s".to_owned(), ..Default::default() };
        let with_shards = TenantRecord { shards: vec![shard], ..record("acme", 1, false) };
        let (_, refusals) = View::default().apply_delta(delta(1, vec![with_shards]), &frontend()).expect("ok");
        assert!(refusals[0].reason.starts_with("shards:"), "{}", refusals[0].reason);
    }

    #[test]
    fn deletes_remove_and_snapshots_replace() {
        let (view, _) = View::default()
            .apply_delta(delta(1, vec![record("acme", 1, true), record("globex", 1, true)]), &api())
            .expect("ok");
        let mut gone = record("globex", 2, true);
        gone.status = TenantStatus::Deleted as i32;
        let (view, _) = view.apply_delta(delta(2, vec![gone]), &api()).expect("ok");
        assert!(view.tenant("globex").is_none());
        // A compacted tombstone carries no bundles, and removes alike.
        let tombstone = TenantRecord {
            id: "acme".to_owned(),
            status: TenantStatus::Deleted as i32,
            mod_revision: 1,
            ..Default::default()
        };
        let (view, refusals) = view.apply_delta(delta(3, vec![tombstone.clone()]), &api()).expect("ok");
        assert!(refusals.is_empty() && view.is_empty(), "{refusals:?}");
        let leaky = TenantRecord { private_bundle: record("acme", 3, true).private_bundle, ..tombstone };
        let (_, refusals) = View::default().apply_delta(delta(1, vec![leaky]), &frontend()).expect("ok");
        assert!(refusals[0].reason.contains("never hold private data"), "{refusals:?}");
        let (view, _) = view.apply_snapshot(9, "c1".to_owned(), vec![record("initech", 7, true)], &api());
        assert_eq!((view.revision, view.len()), (9, 1));
        assert!(view.tenant("acme").is_none(), "a snapshot replaces everything");
    }
}
