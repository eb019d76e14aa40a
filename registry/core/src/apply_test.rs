//! Tests of `apply`: every command, rejection and session rule, each
//! checking that the emitted changes replay to the same state.

use proto::TenantId;
use ulid::Ulid;

use super::*;
use crate::limits::DOCUMENT_BYTES_HARD_MAX;
use crate::{resolve, Compiled, DocumentsPatch, MoveOp, MoveStep, RegionStatus, ShardDigest, WriteMeta};

pub(super) fn tenant_id(id: &str) -> TenantId {
    TenantId::parse(id).expect("valid id")
}

pub(super) fn meta(at_unix_ms: u64) -> WriteMeta {
    WriteMeta {
        expected_revision: None,
        request_id: None,
        actor: "test".to_owned(),
        reason: "unit test".to_owned(),
        at_unix_ms,
        change_id: Ulid::from_parts(at_unix_ms, 1),
    }
}

pub(super) fn create(id: &str, config: &str) -> Command {
    let documents = DocumentsPatch { config: Some(config.to_owned()), ..Default::default() };
    Command::new(
        meta(1000),
        Op::CreateTenant { tenant: tenant_id(id), uid: Ulid::from_parts(1, 2), documents, proposer_region: None },
    )
}

pub(super) fn update(id: &str, theme: &str) -> Command {
    let documents = DocumentsPatch { theme: Some(theme.to_owned()), ..Default::default() };
    Command::new(meta(2000), Op::UpdateTenant { tenant: tenant_id(id), documents })
}

pub(super) fn written(response: &Response) -> &WriteOutcome {
    match response {
        Response::Written(outcome) => outcome,
        other => panic!("expected a write, got {other:?}"),
    }
}

pub(super) fn rejected(response: &Response) -> &CommandError {
    match response {
        Response::Rejected(error) => error,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// Replays `changes` on `before` and checks that it gives `after`: the
/// storage adapter's mirror stays exact.
fn assert_changes_replay(before: &State, changes: &[Change], after: &State) {
    let mut replayed = before.clone();
    for change in changes {
        match change {
            Change::PutTenant(tenant) => {
                replayed.tenants.insert(tenant.id.clone(), tenant.clone());
            }
            Change::PutAudit(entry) => {
                replayed.audit.insert(entry.position(), entry.clone());
            }
            Change::RemoveAudit(position) => {
                replayed.audit.remove(position);
            }
            Change::PutSession(session) => replayed.insert_session(session.clone()),
            Change::RemoveSession(request_id) => replayed.remove_session(request_id),
            Change::SetClusterId(cluster_id) => replayed.cluster_id = Some(*cluster_id),
            Change::SetTopology(topology) => replayed.topology = topology.clone(),
        }
    }
    assert_eq!(&replayed, after);
    after.validate().expect("state invariants");
}

#[test]
fn create_update_delete() {
    let mut state = State::default();
    let (response, changes) = apply(&mut state, Revision(3), 0, &create("acme", r#"{"b":1,"a":{"public":2}}"#));
    assert_changes_replay(&State::default(), &changes, &state);
    let tenant = written(&response).tenant.as_ref().expect("tenant");
    assert_eq!(tenant.create_revision, Revision(3));
    assert_eq!(tenant.mod_revision, Revision(3));
    assert_eq!(tenant.documents.config, r#"{"a":{"public":2},"b":1}"#, "stored canonical");
    assert_eq!(tenant.documents.theme, "{}");

    let before = state.clone();
    let (response, changes) =
        apply(&mut state, Revision(5), 0, &update("acme", r##"{"colors":{"primary":"#ffffff"}}"##));
    assert_changes_replay(&before, &changes, &state);
    let tenant = written(&response).tenant.as_ref().expect("tenant");
    assert_eq!((tenant.create_revision, tenant.mod_revision), (Revision(3), Revision(5)));
    assert_eq!(tenant.documents.config, r#"{"a":{"public":2},"b":1}"#, "config kept");
    assert_eq!(tenant.config_revision, Revision(5));
    assert!(tenant.public_bundle.json.contains("#ffffff"));

    let delete = Command::new(meta(3000), Op::DeleteTenant { tenant: tenant_id("acme") });
    let (response, _) = apply(&mut state, Revision(6), 0, &delete);
    let tombstone = written(&response).tenant.as_ref().expect("tenant");
    assert_eq!((tombstone.status, tombstone.mod_revision), (TenantStatus::Deleted, Revision(6)));
    assert_eq!((tombstone.create_revision, tombstone.config_revision), (Revision(3), Revision(5)));
    // Compacted: nothing of what the tenant held stays in the tombstone.
    assert!(!tombstone.is_uncompacted_tombstone(), "{tombstone:?}");
    assert_eq!(tombstone.documents.config.len() + tombstone.public_bundle.json.len(), 0);
    assert_eq!(state.live_tenants(), 0);

    let history: Vec<_> = state.audit.values().map(|entry| entry.summary.as_str()).collect();
    assert_eq!(history, ["create", "update theme", "delete"]);
    let last_set = state.audit.values().filter_map(|entry| entry.documents.as_ref()).next_back().expect("documents");
    assert!(last_set.theme.contains("#ffffff"), "the history keeps the documents the tombstone dropped");

    // A tombstoned id can be created again, as a new incarnation.
    let (response, _) = apply(&mut state, Revision(9), 0, &create("acme", "{}"));
    assert_eq!(written(&response).tenant.as_ref().expect("tenant").create_revision, Revision(9));
}

#[test]
fn the_first_cluster_id_wins() {
    let mut state = State::default();
    let init = |n| Command::new(meta(1), Op::InitCluster { cluster_id: Ulid::from_parts(n, 0) });
    let (response, changes) = apply(&mut state, Revision(2), 0, &init(1));
    assert_eq!(response, Response::None);
    assert_changes_replay(&State::default(), &changes, &state);
    let (_, changes) = apply(&mut state, Revision(3), 0, &init(2));
    assert!(changes.is_empty());
    assert_eq!(state.cluster_id, Some(Ulid::from_parts(1, 0)));
}

#[test]
fn create_twice_and_missing_tenants() {
    let mut state = State::default();
    apply(&mut state, Revision(1), 0, &create("acme", "{}"));
    let (response, changes) = apply(&mut state, Revision(2), 0, &create("acme", "{}"));
    assert!(changes.is_empty());
    assert!(matches!(rejected(&response), CommandError::AlreadyExists { revision: Revision(1), .. }));
    let (response, _) = apply(&mut state, Revision(3), 0, &update("ghost", "{}"));
    assert!(matches!(rejected(&response), CommandError::NotFound { .. }));
    let delete = Command::new(meta(1), Op::DeleteTenant { tenant: tenant_id("ghost") });
    assert!(matches!(rejected(&apply(&mut state, Revision(4), 0, &delete).0), CommandError::NotFound { .. }));
}

#[test]
fn compare_and_set_conflict_names_both_revisions() {
    let mut state = State::default();
    apply(&mut state, Revision(4), 0, &create("acme", "{}"));
    let mut stale = update("acme", "{}");
    stale.meta.expected_revision = Some(3);
    let before = state.clone();
    let (response, changes) = apply(&mut state, Revision(5), 0, &stale);
    assert!(changes.is_empty());
    assert_eq!(state, before, "a conflict changes nothing");
    let error = rejected(&response);
    assert_eq!(error, &CommandError::RevisionMismatch { tenant: tenant_id("acme"), expected: 3, current: 4 });
    assert!(error.to_string().contains("expected revision 3 but it is at 4"));

    let mut fresh = update("acme", "{}");
    fresh.meta.expected_revision = Some(4);
    assert_eq!(written(&apply(&mut state, Revision(6), 0, &fresh).0).revision, Revision(6));

    // expected_revision 0 on create means "must not exist yet".
    let mut create_new = create("beta", "{}");
    create_new.meta.expected_revision = Some(0);
    assert!(matches!(apply(&mut state, Revision(7), 0, &create_new).0, Response::Written(_)));
    let mut create_again = create("beta", "{}");
    create_again.meta.expected_revision = Some(0);
    assert!(matches!(
        rejected(&apply(&mut state, Revision(8), 0, &create_again).0),
        CommandError::RevisionMismatch { current: 7, .. }
    ));
}

#[test]
fn retried_request_id_returns_the_first_result() {
    let mut state = State::default();
    let mut first = create("acme", r#"{"v":1}"#);
    first.meta.request_id = Some("req-1".to_owned());
    let (response, _) = apply(&mut state, Revision(1), 0, &first);
    assert!(!written(&response).replayed);

    // The retry carries other documents: it must still apply nothing.
    let mut retry = update("acme", r##"{"texts":{"v":"2"}}"##);
    retry.meta.request_id = Some("req-1".to_owned());
    let before = state.clone();
    let (replay, changes) = apply(&mut state, Revision(2), 0, &retry);
    assert!(changes.is_empty());
    assert_eq!(state, before);
    let outcome = written(&replay);
    assert!(outcome.replayed);
    assert_eq!(outcome.revision, Revision(1));
    assert_eq!(outcome.tenant.as_ref().map(|tenant| tenant.mod_revision), Some(Revision(1)), "unchanged since");

    // Once a later write changed the tenant, a replay reports only the revision.
    apply(&mut state, Revision(3), 0, &update("acme", r##"{"texts":{"v":"3"}}"##));
    let (replay, _) = apply(&mut state, Revision(4), 0, &retry);
    assert_eq!(written(&replay).revision, Revision(1));
    assert_eq!(written(&replay).tenant, None);

    // A rejection is remembered too.
    let mut bad = update("ghost", "{}");
    bad.meta.request_id = Some("req-2".to_owned());
    apply(&mut state, Revision(5), 0, &bad);
    apply(&mut state, Revision(6), 0, &create("ghost", "{}"));
    let (replay, _) = apply(&mut state, Revision(7), 0, &bad);
    assert!(matches!(rejected(&replay), CommandError::NotFound { .. }));
}

#[test]
fn sessions_expire_by_age() {
    let mut state = State::default();
    let mut first = create("acme", "{}");
    first.meta.request_id = Some("req-1".to_owned());
    apply(&mut state, Revision(1), 0, &first);
    let mut later = update("acme", "{}");
    later.meta.at_unix_ms = first.meta.at_unix_ms + SESSION_AGE_MS_MAX + 1;
    let before = state.clone();
    let (_, changes) = apply(&mut state, Revision(2), 0, &later);
    assert!(changes.contains(&Change::RemoveSession("req-1".to_owned())));
    assert_changes_replay(&before, &changes, &state);
    assert!(state.sessions.is_empty());
}

#[test]
fn every_validation_error_names_field_and_rule() {
    let big = format!(r#"{{"x":"{}"}}"#, "y".repeat(DOCUMENT_BYTES_HARD_MAX));
    let cases: Vec<(Command, &str, &str)> = vec![
        (create("acme", "[1]"), "documents.config", "json-object"),
        (create("acme", "{"), "documents.config", "json"),
        (create("acme", r#"{"public":3}"#), "documents.config/public", "json-object"),
        (create("acme", r#"{"public":{"password":"hunter2"}}"#), "documents.config/public/password", "secret-key"),
        (
            create("acme", r#"{"placement":{"homeRegion":"EU"}}"#),
            "documents.config/placement/homeRegion",
            "region-name",
        ),
        (create("acme", &big), "documents.config", "size"),
        (
            Command::new(meta(1), Op::UpdateTenant { tenant: tenant_id("acme"), documents: DocumentsPatch::default() }),
            "documents",
            "required",
        ),
        (
            Command::new(
                meta(1),
                Op::CreateTenant {
                    tenant: tenant_id("acme"),
                    uid: Ulid::nil(),
                    documents: DocumentsPatch {
                        integrations: Some(r#"{"oauth":"x"}"#.to_owned()),
                        ..Default::default()
                    },
                    proposer_region: None,
                },
            ),
            "documents.integrations/oauth",
            "json-object",
        ),
        (
            Command { meta: WriteMeta { request_id: Some("a b".to_owned()), ..meta(1) }, ..create("acme", "{}") },
            "meta.request_id",
            "printable",
        ),
        (
            Command { meta: WriteMeta { request_id: Some("r".repeat(129)), ..meta(1) }, ..create("acme", "{}") },
            "meta.request_id",
            "length",
        ),
        (
            Command { meta: WriteMeta { reason: "r".repeat(1025), ..meta(1) }, ..create("acme", "{}") },
            "meta.reason",
            "length",
        ),
        (
            Command { meta: WriteMeta { actor: "a".repeat(129), ..meta(1) }, ..create("acme", "{}") },
            "meta.actor",
            "length",
        ),
    ];
    let mut base = State::default();
    apply(&mut base, Revision(1), 0, &create("acme", "{}"));
    for (command, field, rule) in cases {
        let mut state = base.clone();
        // Updates need the tenant; creates need it absent.
        if matches!(command.op, Op::CreateTenant { .. }) {
            state.tenants.clear();
        }
        let before = state.clone();
        let judged = resolve(&state, Revision(2), command.clone()).expect_err("the leader refuses it alike");
        let (response, changes) = apply(&mut state, Revision(2), 0, &command);
        assert_eq!(&judged, rejected(&response), "{field}");
        match rejected(&response) {
            CommandError::Invalid { field: got_field, rule_id, message } => {
                assert_eq!((got_field.as_str(), rule_id.as_str()), (field, rule), "{message}");
                assert!(!message.is_empty());
            }
            other => panic!("{field}: expected Invalid, got {other:?}"),
        }
        assert!(changes.is_empty(), "{field}: a rejected write changes nothing");
        assert_eq!(state, before);
    }
}

pub(super) fn op(at_unix_ms: u64, op: Op) -> Command {
    Command::new(meta(at_unix_ms), op)
}

#[test]
fn rollback_restores_old_documents_and_bundles_under_a_new_revision() {
    let mut state = State::default();
    let theme = |color: &str| DocumentsPatch {
        theme: Some(format!(r#"{{"colors":{{"primary":"{color}"}}}}"#)),
        ..Default::default()
    };
    apply(&mut state, Revision(1), 0, &create("acme", "{}"));
    apply(
        &mut state,
        Revision(2),
        0,
        &op(2, Op::UpdateTenant { tenant: tenant_id("acme"), documents: theme("#111111") }),
    );
    let old = state.tenants[&tenant_id("acme")].clone();
    apply(
        &mut state,
        Revision(3),
        0,
        &op(3, Op::UpdateTenant { tenant: tenant_id("acme"), documents: theme("#222222") }),
    );

    let before = state.clone();
    let rollback = op(4, Op::RollbackTenant { tenant: tenant_id("acme"), to: Revision(2) });
    let (response, changes) = apply(&mut state, Revision(4), 0, &rollback);
    assert_changes_replay(&before, &changes, &state);
    let restored = written(&response).tenant.as_ref().expect("tenant");
    assert_eq!(restored.public_bundle, old.public_bundle, "byte-equal bundle");
    assert_eq!(restored.private_bundle(), old.private_bundle(), "byte-equal bundle");
    assert_eq!(restored.documents, old.documents);
    assert_eq!((restored.mod_revision, restored.config_revision), (Revision(4), Revision(4)));
    assert_eq!(state.audit[&(Revision(4), 0)].summary, "rollback to 2");

    // "As of" a revision that changed other things: the documents live then.
    let (response, _) =
        apply(&mut state, Revision(5), 0, &op(5, Op::RollbackTenant { tenant: tenant_id("acme"), to: Revision(3) }));
    assert!(written(&response).tenant.as_ref().expect("tenant").public_bundle.json.contains("#222222"));

    let (response, changes) =
        apply(&mut state, Revision(6), 0, &op(6, Op::RollbackTenant { tenant: tenant_id("acme"), to: Revision(0) }));
    assert!(changes.is_empty());
    assert!(matches!(rejected(&response), CommandError::Invalid { rule_id, .. } if rule_id == "history"));
}

#[test]
fn canary_stage_promote_and_abort() {
    let mut state = State::default();
    let candidate =
        DocumentsPatch { theme: Some(r##"{"colors":{"primary":"#00ff00"}}"##.to_owned()), ..Default::default() };
    apply(&mut state, Revision(1), 0, &create("acme", "{}"));
    let live = state.tenants[&tenant_id("acme")].clone();

    let (response, changes) =
        apply(&mut state, Revision(2), 0, &op(2, Op::PromoteCanary { tenant: tenant_id("acme") }));
    assert!(changes.is_empty());
    assert!(matches!(rejected(&response), CommandError::NoCanary { .. }));

    let before = state.clone();
    let stage = op(2, Op::StageCanary { tenant: tenant_id("acme"), documents: candidate.clone() });
    let (response, changes) = apply(&mut state, Revision(2), 0, &stage);
    assert_changes_replay(&before, &changes, &state);
    let staged = written(&response).tenant.as_ref().expect("tenant");
    assert_eq!(staged.public_bundle, live.public_bundle, "the live version is untouched");
    assert_eq!((staged.mod_revision, staged.config_revision), (Revision(2), Revision(1)));
    let canary = staged.canary.as_ref().expect("staged");
    assert_eq!(canary.revision, Revision(2));
    assert!(canary.public_bundle.json.contains("#00ff00"));

    let before = state.clone();
    let (response, changes) = apply(&mut state, Revision(3), 0, &op(3, Op::AbortCanary { tenant: tenant_id("acme") }));
    assert_changes_replay(&before, &changes, &state);
    let aborted = written(&response).tenant.as_ref().expect("tenant");
    assert!(aborted.canary.is_none());
    assert_eq!(aborted.public_bundle, live.public_bundle);

    apply(&mut state, Revision(4), 0, &op(4, Op::StageCanary { tenant: tenant_id("acme"), documents: candidate }));
    let (response, _) = apply(&mut state, Revision(5), 0, &op(5, Op::PromoteCanary { tenant: tenant_id("acme") }));
    let promoted = written(&response).tenant.as_ref().expect("tenant");
    assert!(promoted.canary.is_none());
    assert!(promoted.public_bundle.json.contains("#00ff00"));
    assert_eq!(promoted.config_revision, Revision(4), "served as canary version 4, live as version 4");
    let summaries: Vec<_> = state.audit.values().map(|entry| entry.summary.as_str()).collect();
    assert_eq!(
        summaries,
        ["create", "stage canary theme", "abort canary", "stage canary theme", "promote canary of 4"]
    );

    // Promote recorded documents: a rollback to it restores the promoted version.
    assert!(state.audit[&(Revision(5), 0)].documents.is_some());
    assert!(state.audit[&(Revision(2), 0)].documents.is_none());
}

#[test]
fn pins_keep_home_and_dr_inside_and_are_audited() {
    let region = |name: &str| proto::Region::parse(name).expect("region");
    let mut state = State::default();
    let placed =
        r#"{"placement":{"homeRegion":"eu-west","allowedRegions":["eu-west","us-east"],"drRegion":"us-east"}}"#;
    apply(&mut state, Revision(1), 0, &create("acme", placed));
    let pin = |regions: &[&str]| {
        op(
            2,
            Op::PinTenant {
                tenant: tenant_id("acme"),
                allowed_regions: regions.iter().map(|name| region(name)).collect(),
            },
        )
    };

    for (regions, message) in [
        (vec!["eu-west"], "the DR region us-east would be outside eu-west: move it first (regctl failover)"),
        (
            vec!["us-east", "ap-south"],
            "the home region eu-west would be outside ap-south,us-east: move it first (regctl failover)",
        ),
        (vec![], "name at least one region"),
    ] {
        let before = state.clone();
        let (response, changes) = apply(&mut state, Revision(2), 0, &pin(&regions));
        match rejected(&response) {
            CommandError::Invalid { field, message: got, .. } => {
                assert_eq!((field.as_str(), got.as_str()), ("allowed_regions", message), "{regions:?}")
            }
            other => panic!("{regions:?}: {other:?}"),
        }
        assert!(changes.is_empty());
        assert_eq!(state, before);
    }

    let before = state.clone();
    let (response, changes) = apply(&mut state, Revision(3), 0, &pin(&["us-east", "eu-west", "eu-central", "us-east"]));
    assert_changes_replay(&before, &changes, &state);
    let tenant = written(&response).tenant.as_ref().expect("tenant");
    assert_eq!(tenant.placement.allowed_regions, [region("eu-central"), region("eu-west"), region("us-east")]);
    assert_eq!(tenant.placement.epoch, 1, "a pin moves nothing");
    assert_eq!((tenant.mod_revision, tenant.config_revision), (Revision(3), Revision(1)));
    assert_eq!(state.audit[&(Revision(3), 0)].summary, "pin eu-central,eu-west,us-east");
}

#[test]
fn failover_needs_a_fence_unless_forced_and_bumps_the_epoch() {
    let region = |name: &str| proto::Region::parse(name).expect("region");
    let mut state = State::default();
    let placed =
        r#"{"placement":{"homeRegion":"us-east","allowedRegions":["us-east","eu-west"],"drRegion":"eu-west"}}"#;
    apply(&mut state, Revision(1), 0, &create("acme", placed));
    let failover = |forced| op(2, Op::FailoverTenant { tenant: tenant_id("acme"), to: region("eu-west"), forced });
    let fence = |to: Option<&str>| op(2, Op::FenceTenant { tenant: tenant_id("acme"), to: to.map(region) });

    let (response, _) = apply(&mut state, Revision(2), 0, &failover(false));
    assert!(matches!(rejected(&response), CommandError::Invalid { rule_id, .. } if rule_id == "fenced"));
    let (response, _) = apply(&mut state, Revision(2), 0, &fence(Some("ap-south")));
    assert_eq!(
        rejected(&response).to_string(),
        "to: ap-south is outside the tenant's allowed regions (us-east,eu-west)"
    );
    let (response, _) = apply(&mut state, Revision(2), 0, &fence(Some("us-east")));
    assert_eq!(rejected(&response).to_string(), "to: us-east is already the home region");

    let (response, _) = apply(&mut state, Revision(3), 0, &fence(Some("eu-west")));
    let fenced = written(&response).tenant.as_ref().expect("tenant");
    assert_eq!(fenced.placement.failing_over_to, Some(region("eu-west")));
    assert_eq!(fenced.placement.epoch, 1);

    let before = state.clone();
    let (response, changes) = apply(&mut state, Revision(4), 0, &failover(false));
    assert_changes_replay(&before, &changes, &state);
    let moved = written(&response).tenant.as_ref().expect("tenant");
    assert_eq!(moved.placement.home_region, Some(region("eu-west")));
    assert_eq!(moved.placement.dr_region, Some(region("us-east")), "the old home becomes the DR region");
    assert_eq!((moved.placement.epoch, moved.placement.failing_over_to.clone()), (2, None));
    assert_eq!(state.audit[&(Revision(4), 0)].summary, "failover to eu-west, epoch 2");

    let back = op(5, Op::FailoverTenant { tenant: tenant_id("acme"), to: region("us-east"), forced: true });
    apply(&mut state, Revision(5), 0, &back);
    assert_eq!(
        state.audit[&(Revision(5), 0)].summary,
        "failover to us-east, epoch 3 (FORCED: no wait for the old region)"
    );
}

#[test]
fn shards_route_new_tenants_and_pins_keep_them_inside() {
    let region = |name: &str| proto::Region::parse(name).expect("region");
    let shard = |id: &str, home: &str| Shard {
        id: id.to_owned(),
        region: region(home),
        endpoint: format!("embedded:{id}"),
        state: ShardState::Active,
        replica: None,
    };
    let mut state = State::default();
    let before = state.clone();
    let (_, changes) = apply(&mut state, Revision(1), 0, &op(1, Op::AddShard { shard: shard("eu-1", "eu-west") }));
    assert_changes_replay(&before, &changes, &state);
    let (response, changes) =
        apply(&mut state, Revision(2), 0, &op(2, Op::AddShard { shard: shard("eu-1", "eu-west") }));
    assert!(changes.is_empty());
    assert_eq!(rejected(&response).to_string(), "shard.id: shard eu-1 exists");
    // Apply checks ids itself (they name directories): a bad proposer's
    // `../x` is refused on every replica.
    for (id, endpoint) in [("../x", "embedded:x"), ("eu-2", ""), ("eu-3", "postgres://app:secret@db/s")] {
        let bad = Shard { endpoint: endpoint.to_owned(), ..shard(id, "eu-west") };
        let (response, changes) = apply(&mut state, Revision(2), 0, &op(2, Op::AddShard { shard: bad }));
        assert!(changes.is_empty(), "{id}");
        assert!(matches!(rejected(&response), CommandError::Invalid { .. }), "{id}");
    }
    // A replica is another PostgreSQL database.
    let primary = "postgres://app@db/s";
    for replica in [primary, "embedded:r", "postgres://app:pw@replica/s"] {
        let bad = Shard { endpoint: primary.to_owned(), replica: Some(replica.to_owned()), ..shard("eu-4", "eu-west") };
        let (response, _) = apply(&mut state, Revision(2), 0, &op(2, Op::AddShard { shard: bad }));
        let error = rejected(&response).to_string();
        assert!(error.starts_with("shard.replica_endpoint"), "{replica}: {error}");
    }

    let placed =
        |home: &str| format!(r#"{{"placement":{{"homeRegion":"{home}","allowedRegions":["{home}","us-east"]}}}}"#);
    apply(&mut state, Revision(3), 0, &create("acme", &placed("eu-west")));
    assert_eq!(state.tenants[&tenant_id("acme")].shard.as_deref(), Some("eu-1"), "the home region's active shard");
    apply(&mut state, Revision(4), 0, &create("globex", &placed("us-east")));
    assert_eq!(state.tenants[&tenant_id("globex")].shard, None, "no shard in us-east: the default one");

    // After a failover the home moves but the rows stay on their shard: a pin must keep the shard's region.
    let failover = op(5, Op::FailoverTenant { tenant: tenant_id("acme"), to: region("us-east"), forced: true });
    apply(&mut state, Revision(5), 0, &failover);
    let pin = op(5, Op::PinTenant { tenant: tenant_id("acme"), allowed_regions: vec![region("us-east")] });
    let (response, _) = apply(&mut state, Revision(5), 0, &pin);
    assert_eq!(
        rejected(&response).to_string(),
        "allowed_regions: the tenant's shard eu-1 is in eu-west, outside the pin: move it first"
    );

    apply(&mut state, Revision(6), 0, &op(6, Op::DrainShard { id: "eu-1".to_owned() }));
    assert_eq!(state.topology.shards["eu-1"].state, ShardState::Draining);
    apply(&mut state, Revision(7), 0, &create("initech", &placed("eu-west")));
    assert_eq!(state.tenants[&tenant_id("initech")].shard, None, "a draining shard takes no new tenants");
    let (response, _) = apply(&mut state, Revision(8), 0, &op(8, Op::DrainShard { id: "nope".to_owned() }));
    assert_eq!(rejected(&response).to_string(), "id: no shard nope");

    apply(
        &mut state,
        Revision(9),
        0,
        &op(9, Op::SetRegionStatus { region: region("eu-west"), status: RegionStatus::Degraded }),
    );
    assert_eq!(state.topology.regions[&region("eu-west")], RegionStatus::Degraded);
}

#[test]
fn a_move_goes_begin_verify_flip_unlock_and_aborts_only_before_the_flip() {
    let region = |name: &str| proto::Region::parse(name).expect("region");
    let mut state = State::default();
    for (revision, id, home) in [(1, "us-1", "us-east"), (2, "us-2", "us-east"), (3, "eu-1", "eu-west")] {
        let shard = Shard {
            id: id.to_owned(),
            region: region(home),
            endpoint: format!("embedded:{id}"),
            state: ShardState::Active,
            replica: None,
        };
        apply(&mut state, Revision(revision), 0, &op(revision, Op::AddShard { shard }));
    }
    apply(&mut state, Revision(4), 0, &create("acme", r#"{"placement":{"homeRegion":"us-east"}}"#));
    let acme = || tenant_id("acme");
    let step = |revision: u64, step: MoveOp| op(revision, Op::MoveTenant { tenant: acme(), step });
    let begin = |to: &str| MoveOp::Begin { to_shard: to.to_owned() };
    let digest = |rows: u64, hex: char| ShardDigest { rows, sha256: hex.to_string().repeat(64) };
    let mut at = 5;
    let mut refused = |state: &mut State, command: Command| {
        at += 1;
        let before = state.clone();
        let (response, changes) = apply(state, Revision(at), 0, &command);
        assert!(changes.is_empty(), "a refused step changes nothing");
        assert_eq!(state, &before);
        rejected(&response).to_string()
    };
    let ok = |state: &mut State, revision: u64, command: Command| {
        let before = state.clone();
        let (response, changes) = apply(state, Revision(revision), 0, &command);
        written(&response);
        assert_changes_replay(&before, &changes, state);
        state.tenants[&acme()].clone()
    };

    assert_eq!(refused(&mut state, step(0, begin("nope"))), "to_shard: no shard nope");
    assert_eq!(
        refused(&mut state, step(0, begin("eu-1"))),
        "to_shard: shard eu-1 is in eu-west, not in the tenant's home region (us-east): fail over first"
    );
    assert_eq!(refused(&mut state, step(0, begin("us-1"))), "to_shard: `acme` already lives on us-1");
    assert_eq!(refused(&mut state, step(0, MoveOp::Flip)), "step: `acme` is not being moved");

    let tenant = ok(&mut state, 20, step(20, begin("us-2")));
    assert_eq!(tenant.status, TenantStatus::LockedForMove);
    let moving = tenant.moving.clone().expect("moving");
    assert_eq!((moving.from_shard.as_deref(), moving.copy_epoch, moving.step), (Some("us-1"), 2, MoveStep::Copying));
    assert_eq!(tenant.placement.epoch, 1, "the tenant still writes at its epoch until the flip");
    assert!(refused(&mut state, step(0, begin("us-2"))).contains("already moving to us-2 (step copying)"));
    assert_eq!(
        refused(&mut state, step(0, MoveOp::Flip)),
        "step: the move of `acme` to us-2 is at step copying, not verified"
    );
    let failover = op(0, Op::FailoverTenant { tenant: acme(), to: region("eu-west"), forced: true });
    assert!(refused(&mut state, failover).contains("finish or abort the move first"));
    assert!(refused(&mut state, op(0, Op::DeleteTenant { tenant: acme() }))
        .contains("is moving to shard us-2 (step copying)"));
    assert_eq!(
        refused(&mut state, step(0, MoveOp::Verify { source: digest(3, 'a'), target: digest(2, 'b') })),
        format!(
            "target: the copy differs: old shard 3 rows sha256 {}, new shard 2 rows sha256 {}; copy again",
            "a".repeat(64),
            "b".repeat(64)
        )
    );

    // Abort before the flip: the old route stays, the epoch fences out the copy.
    let tenant = ok(&mut state, 21, step(21, MoveOp::Abort));
    assert_eq!(
        (tenant.status, tenant.shard.as_deref(), tenant.placement.epoch),
        (TenantStatus::Active, Some("us-1"), 3)
    );
    assert_eq!(tenant.moving, None);

    ok(&mut state, 22, step(22, begin("us-2")));
    let tenant = ok(&mut state, 23, step(23, MoveOp::Verify { source: digest(3, 'a'), target: digest(3, 'a') }));
    assert_eq!(tenant.moving.as_ref().map(|moving| moving.step), Some(MoveStep::Verified));
    let tenant = ok(&mut state, 24, step(24, MoveOp::Flip));
    assert_eq!(
        (tenant.shard.as_deref(), tenant.placement.epoch, tenant.status),
        (Some("us-2"), 5, TenantStatus::LockedForMove)
    );
    assert!(refused(&mut state, step(0, MoveOp::Abort)).contains("already lives on us-2 (flipped)"));
    let tenant = ok(&mut state, 25, step(25, MoveOp::Unlock));
    assert_eq!((tenant.status, tenant.moving.clone()), (TenantStatus::Active, None));
    // After a failover the rows stay on us-2, in the old region: no move can copy them from the new home.
    ok(&mut state, 26, op(26, Op::FailoverTenant { tenant: acme(), to: region("eu-west"), forced: true }));
    assert_eq!(
        refused(&mut state, step(0, begin("eu-1"))),
        "to_shard: the tenant's rows are on shard us-2 in us-east, outside its home region: the home region's api-nodes cannot copy them"
    );
    let summaries: Vec<_> =
        state.audit.values().map(|entry| entry.summary.clone()).filter(|summary| summary.starts_with("move")).collect();
    assert_eq!(
        summaries,
        [
            "move to shard us-2: begin (writes locked)".to_owned(),
            "move aborted: stays on shard us-1, epoch 3".to_owned(),
            "move to shard us-2: begin (writes locked)".to_owned(),
            format!("move to shard us-2: verified 3 rows, sha256 {}", "a".repeat(64)),
            "move to shard us-2: flipped, epoch 5".to_owned(),
            "move to shard us-2: done (unlocked)".to_owned(),
        ]
    );
}

#[path = "resolve_test.rs"]
mod resolve_tests;
