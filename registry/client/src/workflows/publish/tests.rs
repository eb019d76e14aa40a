//! The publish workflow against a scripted cluster: plans, cohorts, gates,
//! halts and rollbacks.

use std::sync::Mutex;

use compiler::Bundle;

use super::*;
use crate::workflows::fake::{agent, bundle_hashes, Fake};

/// A compiled tenant whose config carries `version`.
fn compiled(id: &str, version: u32) -> CompiledTenant {
    let config = format!(r#"{{"public":{{"version":{version}}}}}"#);
    let (public, private) = bundle_hashes(&config);
    CompiledTenant {
        id: TenantId::parse(id).unwrap(),
        config,
        theme: "{}".to_owned(),
        integrations: "{}".to_owned(),
        public: Bundle { json: String::new(), sha256: public },
        private: Bundle { json: String::new(), sha256: private },
    }
}

fn repo(tenants: &[(&str, u32)]) -> CompiledRepo {
    CompiledRepo { tenants: tenants.iter().map(|(id, version)| compiled(id, *version)).collect(), golden: Vec::new() }
}

fn publish(cohort_size: usize) -> Publish {
    Publish {
        cohort_size,
        canaries: Vec::new(),
        golden: BTreeSet::new(),
        rollback: true,
        ack_timeout: Duration::from_secs(5),
        actor: "test".to_owned(),
        reason: "publish".to_owned(),
        purge: None,
    }
}

/// A gate that passes every tenant but `failing`, and records whom it checked.
struct Checks {
    failing: Option<&'static str>,
    checked: Mutex<Vec<String>>,
}

impl Checks {
    fn passing() -> Self {
        Self { failing: None, checked: Mutex::new(Vec::new()) }
    }
}

impl Gate for Checks {
    async fn check(&self, tenant: &v1::Tenant) -> Result<(), String> {
        self.checked.lock().unwrap().push(tenant.id.clone());
        match self.failing {
            Some(failing) if failing == tenant.id => Err(format!("smoke check of golden tenant {failing}: 500")),
            _ => Ok(()),
        }
    }
}

async fn publish_all(fake: &Fake, repo: &CompiledRepo, publish: &Publish, gate: &Checks) -> (Report, Vec<Event>) {
    let plan = plan(fake, repo, publish).await.unwrap();
    let mut events = Vec::new();
    let report = run(fake, publish, &plan, gate, &mut |event| events.push(event)).await;
    (report, events)
}

#[tokio::test(start_paused = true)]
async fn canaries_go_first_then_cohorts_unchanged_tenants_are_skipped_and_a_rerun_has_nothing_to_do() {
    let fake = Fake::new(Vec::new());
    let first = repo(&[("acme", 1), ("globex", 1), ("initech", 1), ("umbrella", 1)]);
    fake.write_tenant("globex", true, documents(&first.tenants[1]), &WriteOptions::default()).await.unwrap();
    let changed = repo(&[("acme", 1), ("globex", 1), ("initech", 1), ("umbrella", 2)]);
    let with_canary = Publish {
        canaries: vec![TenantId::parse("umbrella").unwrap()],
        golden: ["acme".to_owned()].into(),
        ..publish(2)
    };
    let plan = plan(&fake, &changed, &with_canary).await.unwrap();
    let planned: Vec<(&str, Vec<&str>)> = plan
        .cohorts
        .iter()
        .map(|cohort| (cohort.label, cohort.steps.iter().map(|step| step.tenant.id.as_str()).collect()))
        .collect();
    assert_eq!(planned, [("canary", vec!["umbrella"]), ("cohort", vec!["acme", "initech"])]);
    assert_eq!((plan.unchanged, plan.only_live), (1, 0));
    assert_eq!(plan.rows()[1].smoked, 1, "acme is golden");

    let gate = Checks::passing();
    let mut events = Vec::new();
    let report = run(&fake, &with_canary, &plan, &gate, &mut |event| events.push(event)).await;
    assert_eq!(report.halted, None);
    assert_eq!(report.cohorts.len(), 2);
    assert!(report.cohorts.iter().all(|row| row.result.is_ok() && row.acked.is_some()));
    assert_eq!(*gate.checked.lock().unwrap(), ["acme"]);
    assert!(matches!(events[0], Event::CohortStarted { number: 1, cohorts: 2, label: "canary", done: 0, total: 3 }));
    assert!(matches!(events[2], Event::CohortStarted { number: 2, done: 1, .. }));
    assert!(matches!(&events[3], Event::CohortFinished(row) if row.revisions == Some((3, 4))), "{events:?}");
    assert_eq!(fake.calls(), ["create globex", "create umbrella", "create acme", "create initech"]);

    let again = super::plan(&fake, &changed, &with_canary).await.unwrap();
    assert!(again.cohorts.is_empty(), "{again:?}");
    assert_eq!(again.unchanged, 4);
}

#[tokio::test(start_paused = true)]
async fn a_nack_in_the_cohort_halts_and_rolls_the_cohort_back_keeping_earlier_cohorts() {
    let fake = Fake::new(Vec::new());
    let old = repo(&[("acme", 1), ("globex", 1)]);
    for tenant in &old.tenants {
        fake.write_tenant(tenant.id.as_str(), true, documents(tenant), &WriteOptions::default()).await.unwrap();
    }
    // The second cohort (revisions 4..) is NACKed for initech.
    fake.script_agents(|_, revision| {
        let mut agent = agent("api-1", "us-east", revision);
        if revision >= 4 {
            agent.last_nack =
                Some(v1::Nack { revision: 5, tenant_id: "initech".to_owned(), reason: "bad logo".to_owned() });
        }
        vec![agent]
    });
    let new = repo(&[("acme", 2), ("globex", 2), ("initech", 1), ("umbrella", 1)]);
    let (report, _) = publish_all(&fake, &new, &publish(2), &Checks::passing()).await;
    let halt = report.halted.expect("halted");
    assert_eq!((halt.number, halt.kept), (2, 2));
    assert_eq!(halt.failure, "agent api-1 NACKed tenant initech at revision 5: bad logo");
    assert!(halt.rolled_back.starts_with("rolled back 2 tenants"), "{halt:?}");
    assert!(report.cohorts[1].result.as_ref().is_err_and(|error| error.starts_with("HALTED: agent api-1")));
    let calls = fake.calls();
    assert_eq!(&calls[2..4], ["update acme", "update globex"], "cohort 1 stays");
    assert_eq!(&calls[4..6], ["create initech", "create umbrella"]);
    let mut undone = calls[6..].to_vec();
    undone.sort();
    assert_eq!(undone, ["delete initech", "delete umbrella"], "created tenants are deleted");
    assert!(fake.tenant("initech").is_none());
    assert!(halt.to_string().contains("run the same command again"), "{halt}");
}

#[tokio::test(start_paused = true)]
async fn a_failed_golden_check_halts_and_no_rollback_leaves_the_cohort_as_written() {
    let fake = Fake::new(Vec::new());
    let new = repo(&[("acme", 1), ("globex", 1)]);
    let golden = Publish { golden: ["globex".to_owned()].into(), rollback: false, ..publish(1) };
    let gate = Checks { failing: Some("globex"), checked: Mutex::new(Vec::new()) };
    let (report, _) = publish_all(&fake, &new, &golden, &gate).await;
    let halt = report.halted.expect("halted");
    assert_eq!(halt.number, 2);
    assert_eq!(halt.failure, "smoke check of golden tenant globex: 500");
    assert_eq!(halt.rolled_back, "left as written (--no-rollback)");
    assert_eq!(fake.calls(), ["create acme", "create globex"]);
    assert!(fake.tenant("globex").is_some());
}

#[tokio::test(start_paused = true)]
async fn agents_that_do_not_acknowledge_in_time_halt_the_cohort_naming_them() {
    let fake = Fake::new(Vec::new());
    fake.script_agents(|_, _| vec![agent("api-1", "us-east", 0), agent("web-1", "eu-west", 0)]);
    let started = Instant::now();
    let (report, _) = publish_all(&fake, &repo(&[("acme", 1)]), &publish(1), &Checks::passing()).await;
    let halt = report.halted.expect("halted");
    assert_eq!(halt.failure, "2 of 2 connected agents had not acknowledged revision 1 after 5 s: api-1, web-1");
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert_eq!(fake.calls(), ["create acme", "delete acme"]);
}

#[tokio::test(start_paused = true)]
async fn a_refused_write_halts_and_bad_plans_are_refused_before_anything_is_written() {
    let fake = Fake::new(Vec::new());
    fake.refuse_writes_of("globex", "documents.theme/logo: too large");
    let (report, _) = publish_all(&fake, &repo(&[("acme", 1), ("globex", 1)]), &publish(5), &Checks::passing()).await;
    let halt = report.halted.expect("halted");
    assert_eq!(halt.failure, "writing globex: documents.theme/logo: too large");
    assert!(fake.tenant("acme").is_none(), "the cohort's other write is rolled back");

    let fake = Fake::new(Vec::new());
    let error = plan(&fake, &repo(&[("acme", 1)]), &publish(0)).await.unwrap_err();
    assert!(matches!(&error, Error::Invalid { field, .. } if field == "--cohort-size"), "{error:?}");
    let unknown = Publish { canaries: vec![TenantId::parse("nobody").unwrap()], ..publish(1) };
    let error = plan(&fake, &repo(&[("acme", 1)]), &unknown).await.unwrap_err();
    assert!(matches!(&error, Error::Invalid { field, .. } if field == "--canary"), "{error:?}");
    assert!(fake.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_tenant_refused_at_its_live_revision_is_named_before_planning() {
    let fake = Fake::new(Vec::new());
    let live = repo(&[("acme", 1)]);
    fake.write_tenant("acme", true, documents(&live.tenants[0]), &WriteOptions::default()).await.unwrap();
    fake.script_agents(|_, revision| {
        let mut agent = agent("api-1", "us-east", revision);
        agent.last_nack = Some(v1::Nack { revision: 1, tenant_id: "acme".to_owned(), reason: "bad logo".to_owned() });
        vec![agent]
    });
    let error = plan(&fake, &live, &publish(1)).await.unwrap_err();
    assert!(
        matches!(&error, Error::Precondition { rule, message, .. }
            if rule == "refused-at-live-revision" && message.contains("acme at revision 1: agent api-1 refused it: bad logo")),
        "{error:?}"
    );
}
