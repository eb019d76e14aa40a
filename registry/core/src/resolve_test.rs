//! Tests of `resolve`, the leader's judgement: what it proposes applies as
//! the compiling apply of format 2 did, apply runs no document rule on it,
//! and a judgement made on another state is refused and not remembered.

use super::*;

/// A write that sets a request id.
fn with_request_id(command: Command, request_id: &str) -> Command {
    Command { meta: WriteMeta { request_id: Some(request_id.to_owned()), ..command.meta.clone() }, ..command }
}

#[test]
fn what_the_leader_judged_applies_as_the_compiling_apply_did() {
    let candidate =
        DocumentsPatch { theme: Some(r##"{"colors":{"primary":"#000000"}}"##.to_owned()), ..Default::default() };
    let writes = [
        create("acme", r#"{"public":{"name":"Acme"},"placement":{"homeRegion":"eu-west"}}"#),
        update("acme", r##"{"colors":{"primary":"#ffffff"}}"##),
        op(3, Op::StageCanary { tenant: tenant_id("acme"), documents: candidate }),
        op(4, Op::PromoteCanary { tenant: tenant_id("acme") }),
        op(5, Op::RollbackTenant { tenant: tenant_id("acme"), to: Revision(1) }),
    ];
    let (mut judged, mut compiled) = (State::default(), State::default());
    for (index, command) in writes.into_iter().enumerate() {
        let revision = Revision(index as u64 + 1);
        let proposed = resolve(&judged, revision, command.clone()).expect("judged");
        let sets_documents = !matches!(command.op, Op::PromoteCanary { .. });
        assert_eq!(proposed.compiled.is_some(), sets_documents, "{:?}", command.op);
        if let Op::CreateTenant { documents, .. }
        | Op::UpdateTenant { documents, .. }
        | Op::StageCanary { documents, .. } = &proposed.op
        {
            assert_eq!(documents, &DocumentsPatch::default(), "the patch is folded into what was compiled");
        }
        let (judged_response, _) = apply(&mut judged, revision, 0, &proposed);
        let (compiled_response, _) = apply(&mut compiled, revision, 0, &command);
        assert_eq!(judged_response, compiled_response, "{:?}", command.op);
    }
    assert_eq!(judged, compiled);
    let summaries: Vec<_> = judged.audit.values().map(|entry| entry.summary.as_str()).collect();
    assert_eq!(summaries, ["create", "update theme", "stage canary theme", "promote canary of 3", "rollback to 1"]);
}

#[test]
fn apply_runs_no_document_rule_on_what_the_leader_compiled() {
    // Documents today's rules refuse (a secret-looking key in public config),
    // compiled by a leader whose rules allowed them: a later build replays
    // the entry as it was applied, instead of disagreeing with its snapshot.
    let mut proposed = resolve(&State::default(), Revision(1), create("acme", "{}")).expect("judged");
    let documents = TenantDocuments { config: r#"{"public":{"password":"x"}}"#.to_owned(), ..Default::default() };
    let (public_bundle, private_bundle) = compiler::compile_bundles(
        "acme",
        &compiler::Documents {
            config: serde_json::from_str(&documents.config).expect("object"),
            theme: Default::default(),
            integrations: Default::default(),
        },
    );
    let placement = proposed.compiled.as_ref().and_then(|compiled| compiled.placement.clone());
    proposed.compiled = Some(Arc::new(Compiled {
        based_on: 0,
        documents: Arc::new(documents),
        public_bundle,
        private_sha256: private_bundle.sha256,
        placement,
    }));
    let mut state = State::default();
    let (response, _) = apply(&mut state, Revision(1), 0, &proposed);
    let tenant = written(&response).tenant.as_ref().expect("tenant");
    assert!(tenant.public_bundle.json.contains("password"), "applied as compiled: {}", tenant.public_bundle.json);
}

#[test]
fn a_judgement_on_another_state_is_refused_and_not_remembered() {
    let mut state = State::default();
    apply(&mut state, Revision(1), 0, &create("acme", "{}"));
    // Judged at revision 1; another update of the tenant applies first.
    let proposed =
        resolve(&state, Revision(2), with_request_id(update("acme", r##"{"colors":{"primary":"#111111"}}"##), "r-1"))
            .expect("judged");
    apply(&mut state, Revision(2), 0, &update("acme", r##"{"colors":{"primary":"#222222"}}"##));
    let before = state.clone();
    let (response, changes) = apply(&mut state, Revision(3), 0, &proposed);
    assert_eq!(
        rejected(&response),
        &CommandError::Stale { tenant: tenant_id("acme"), judged: 1, current: 2 },
        "the leader judged it on revision 1"
    );
    assert!(changes.is_empty() && state == before, "nothing changed, the request id is not remembered");

    // The retry is judged again, on the state it applies to.
    let retried =
        resolve(&state, Revision(4), with_request_id(update("acme", r##"{"colors":{"primary":"#111111"}}"##), "r-1"))
            .expect("judged");
    let (response, _) = apply(&mut state, Revision(4), 0, &retried);
    assert_eq!(written(&response).revision, Revision(4));
}
