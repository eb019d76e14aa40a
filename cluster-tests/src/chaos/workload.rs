//! Workload generators: operator writes (blind and compare-and-set, each
//! with its own request id), linearizable reads, agents observing their
//! views, and api-node data requests. Each runs until told to stop and
//! records every operation in the [`History`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agent::Agent;
use proto::v1;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use registry_client::{Client, Error, WriteOptions};
use tokio::task::JoinHandle;

use super::history::{AgentObservation, Call, DataOp, History, Op, Outcome};

/// How long a client waits for one operation before calling it unknown.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(4);

/// The documents that give a tenant the value `value` (and, for the data
/// API, a demo user).
pub fn documents(value: u64, tenant: &WorkloadTenant, demo_hash: &str) -> v1::Documents {
    let allowed: Vec<String> = tenant.allowed.iter().map(|region| format!("\"{region}\"")).collect();
    let config = format!(
        r#"{{"public":{{"n":{value}}},"placement":{{"homeRegion":"{}","allowedRegions":[{}]}},"demoUsers":{{"chaos":"{demo_hash}"}}}}"#,
        tenant.home,
        allowed.join(",")
    );
    v1::Documents { config_json: Some(config), ..Default::default() }
}

/// The value a tenant's config holds.
pub fn value_of(config_json: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(config_json).ok()?["public"]["n"].as_u64()
}

/// A tenant of the workload: its id and home region.
#[derive(Debug, Clone)]
pub struct WorkloadTenant {
    pub id: String,
    pub home: &'static str,
    /// Its pin (empty: none).
    pub allowed: Vec<&'static str>,
}

/// The running generators.
pub struct Workload {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Workload {
    pub fn new() -> Self {
        Self { stop: Arc::new(AtomicBool::new(false)), tasks: Vec::new() }
    }

    /// Stops every generator and waits for their last operations.
    pub async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// `writers` tasks writing (half of their writes compare-and-set on the
    /// revision they last saw) and `readers` tasks reading, over `tenants`.
    #[allow(clippy::too_many_arguments)]
    pub fn registry_clients(
        &mut self,
        history: &Arc<History>,
        client: &Arc<Client>,
        tenants: &[WorkloadTenant],
        demo_hash: &str,
        writers: usize,
        readers: usize,
        seed: u64,
    ) {
        static VALUES: AtomicU64 = AtomicU64::new(1_000);
        for process in 0..writers + readers {
            let (history, client, stop) = (history.clone(), client.clone(), self.stop.clone());
            let tenants = tenants.to_vec();
            let demo_hash = demo_hash.to_owned();
            let writer = process < writers;
            self.tasks.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(process as u64));
                let mut last_seen = std::collections::HashMap::<String, u64>::new();
                while !stop.load(Ordering::SeqCst) {
                    let tenant = &tenants[rng.random_range(0..tenants.len())];
                    let invoked = history.now();
                    let (call, outcome) = if writer {
                        let value = VALUES.fetch_add(1, Ordering::Relaxed);
                        let expected = last_seen.get(&tenant.id).copied().filter(|_| rng.random_bool(0.5));
                        let options = WriteOptions { expected_revision: expected, ..WriteOptions::default() };
                        let documents = documents(value, tenant, &demo_hash);
                        let written = tokio::time::timeout(
                            OPERATION_TIMEOUT,
                            client.update_tenant(&tenant.id, documents, &options),
                        )
                        .await;
                        let outcome = match written {
                            Ok(Ok(written)) => Outcome::Ok { revision: written.revision, value },
                            Ok(Err(error)) => write_error(&error),
                            Err(_) => Outcome::Unknown("timed out".to_owned()),
                        };
                        (Call::Write { value, expected }, outcome)
                    } else {
                        let read = tokio::time::timeout(
                            OPERATION_TIMEOUT,
                            client.get_tenant(&tenant.id, v1::Consistency::Linearizable),
                        )
                        .await;
                        let outcome = match read {
                            Ok(Ok(got)) => {
                                let tenant = got.tenant.unwrap_or_default();
                                match value_of(&tenant.config_json) {
                                    Some(value) => Outcome::Ok { revision: tenant.mod_revision, value },
                                    None => Outcome::Failed("no value in the config".to_owned()),
                                }
                            }
                            Ok(Err(error)) => Outcome::Failed(error.to_string()),
                            Err(_) => Outcome::Failed("timed out".to_owned()),
                        };
                        (Call::Read, outcome)
                    };
                    match &outcome {
                        Outcome::Ok { revision, .. } | Outcome::Mismatch { current: revision } => {
                            last_seen.insert(tenant.id.clone(), *revision);
                        }
                        _ => {}
                    }
                    let failed = !matches!(outcome, Outcome::Ok { .. } | Outcome::Mismatch { .. });
                    history.record(Op {
                        process,
                        tenant: tenant.id.clone(),
                        call,
                        invoked,
                        completed: history.now(),
                        outcome,
                    });
                    // Pace: about 25 operations a second per task, fewer while failing
                    // (a tenant's audit history must fit one page for the checkers).
                    let pause = if failed { 100 } else { rng.random_range(20..60) };
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            }));
        }
    }

    /// Records every view `agent` holds, as it changes.
    pub fn observe_agent(&mut self, history: &Arc<History>, name: &str, agent: Arc<Agent>) {
        let (history, stop, name) = (history.clone(), self.stop.clone(), name.to_owned());
        self.tasks.push(tokio::spawn(async move {
            let mut changed = agent.changed();
            loop {
                // Checked before the view is read, so the view held when the
                // run stopped is always recorded (the summary counts
                // snapshots from the last observation).
                let stopped = stop.load(Ordering::SeqCst);
                let view = agent.view();
                let tenants = view
                    .tenants()
                    .map(|entry| {
                        let public: Option<serde_json::Value> = serde_json::from_slice(entry.public_json()).ok();
                        let value = public.and_then(|public| public["config"]["n"].as_u64());
                        (entry.id().to_owned(), entry.record.mod_revision, value)
                    })
                    .collect();
                let observation = AgentObservation {
                    agent: name.clone(),
                    at: history.now(),
                    revision: view.revision,
                    snapshots: agent.stats().snapshots.load(Ordering::Relaxed),
                    tenants,
                };
                drop(view);
                if let Ok(mut observations) = history.agents.lock() {
                    observations.push(observation);
                }
                if stopped {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(200), changed.changed()).await;
            }
        }));
    }

    /// Writes and lists items of `tenants`, and reads their runtime config,
    /// through the api-node at `addr` in `region`, logged in as the demo user.
    pub fn api_node_client(
        &mut self,
        history: &Arc<History>,
        region: &'static str,
        addr: String,
        tenants: &[WorkloadTenant],
        seed: u64,
    ) {
        let (history, stop, tenants) = (history.clone(), self.stop.clone(), tenants.to_vec());
        self.tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut tokens = std::collections::HashMap::<String, String>::new();
            while !stop.load(Ordering::SeqCst) {
                let tenant = &tenants[rng.random_range(0..tenants.len())];
                let host = format!("{}.example.com", tenant.id);
                if !tokens.contains_key(&tenant.id) {
                    let body = r#"{"user":"chaos","password":"chaos-password"}"#;
                    match crate::http::post_json(&addr, "/api/login", &[("Host", &host)], body).await {
                        Ok(response) if response.status == 200 => {
                            let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
                            let token = body["token"].as_str().unwrap_or_default().to_owned();
                            tokens.insert(tenant.id.clone(), token);
                        }
                        _ => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    }
                }
                let bearer = format!("Bearer {}", tokens[&tenant.id]);
                // A write, a list of items, or the tenant's runtime config.
                let kind = rng.random_range(0..3);
                let write = kind == 0;
                let invoked = history.now();
                let response = match kind {
                    0 => {
                        let body = format!(r#"{{"title":"{}:{}"}}"#, tenant.id, rng.random::<u32>());
                        let headers = [("Host", host.as_str()), ("Authorization", &bearer)];
                        crate::http::post_json(&addr, "/api/items", &headers, &body).await
                    }
                    1 => crate::http::get(&addr, "/api/items", &[("Host", &host), ("Authorization", &bearer)]).await,
                    _ => crate::http::get(&addr, &format!("/config/{}.json", tenant.id), &[("Host", &host)]).await,
                };
                let completed = history.now();
                let (status, answered_tenant, body_tenants) = match response {
                    Ok(response) => {
                        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
                        // Items carry their tenant in their title; a config names it.
                        let titles: Vec<&serde_json::Value> = match body["items"].as_array() {
                            Some(items) => items.iter().map(|item| &item["title"]).collect(),
                            None => vec![&body["title"]],
                        };
                        let mut body_tenants: Vec<String> = titles
                            .iter()
                            .filter_map(|title| title.as_str()?.split_once(':').map(|(tenant, _)| tenant.to_owned()))
                            .collect();
                        body_tenants.extend(body["tenant"].as_str().map(str::to_owned));
                        (response.status, response.header("x-tenant").map(str::to_owned), body_tenants)
                    }
                    Err(_) => (0, None, Vec::new()),
                };
                if status == 401 {
                    tokens.remove(&tenant.id);
                }
                if let Ok(mut data) = history.data.lock() {
                    data.push(DataOp {
                        region,
                        tenant: tenant.id.clone(),
                        write,
                        items: kind < 2,
                        invoked,
                        completed,
                        status,
                        answered_tenant,
                        body_tenants,
                    });
                }
                tokio::time::sleep(Duration::from_millis(rng.random_range(10..40))).await;
            }
        }));
    }
}

impl Default for Workload {
    fn default() -> Self {
        Self::new()
    }
}

/// What a refused write tells: a compare-and-set mismatch, a refusal that
/// applied nothing, or an answer that leaves it open.
fn write_error(error: &Error) -> Outcome {
    match error {
        Error::Precondition { current_revision: Some(current), .. } => Outcome::Mismatch { current: *current },
        Error::Precondition { .. }
        | Error::Invalid { .. }
        | Error::NotFound { .. }
        | Error::AlreadyExists { .. }
        | Error::Denied { .. } => Outcome::Failed(error.to_string()),
        Error::Unavailable { .. } | Error::Other(_) => Outcome::Unknown(error.to_string()),
    }
}
