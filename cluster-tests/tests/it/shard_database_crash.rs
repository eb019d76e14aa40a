//! A shard's PostgreSQL server killed (kill -9) under a stream of writes:
//! the tenants on that shard get 503 with `Retry-After` while it is down,
//! the tenants on another database are not disturbed at all, and once it is
//! back no acknowledged item is missing — PostgreSQL acknowledged each
//! commit only once it was durable, and the api-node answered 201 only then.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proto::v1;
use registry_client::WriteOptions;

use super::{phase, regctl};
use cluster_tests::api_nodes::{self, ApiNode};
use cluster_tests::http::post_json;
use cluster_tests::postgres::{Postgres, SUPERUSER};
use cluster_tests::{wait, ClusterOptions, RegistryCluster};

/// What one writer saw.
#[derive(Default, Debug)]
struct Seen {
    /// Items answered 201.
    acknowledged: BTreeSet<String>,
    /// Refusals: (status, had Retry-After).
    refused: Vec<(u16, bool)>,
    /// Requests that got no answer at all.
    unanswered: usize,
}

async fn token(api: &ApiNode, tenant: &str) -> anyhow::Result<String> {
    let host = format!("{tenant}.localhost");
    let response = wait::until("a login", Duration::from_secs(20), || async {
        let body = r#"{"user":"alice","password":"pw-alice"}"#;
        let response = post_json(&api.addr, "/api/login", &[("Host", &host)], body).await.ok()?;
        (response.status == 200).then_some(response)
    })
    .await?;
    let body: serde_json::Value = serde_json::from_slice(&response.body)?;
    Ok(body["token"].as_str().unwrap_or_default().to_owned())
}

/// Writes items for `tenant` one after another until `stop`.
async fn write_until(addr: String, tenant: &'static str, token: String, stop: Arc<AtomicBool>) -> Seen {
    let (host, bearer) = (format!("{tenant}.localhost"), format!("Bearer {token}"));
    let mut seen = Seen::default();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let key = format!("{tenant}-{n}");
        let headers = [("Host", host.as_str()), ("Authorization", &bearer), ("Idempotency-Key", &key)];
        match post_json(&addr, "/api/items", &headers, &format!(r#"{{"title":"{key}"}}"#)).await {
            Ok(response) if response.status == 201 => {
                let item: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
                seen.acknowledged.insert(item["id"].as_str().unwrap_or_default().to_owned());
            }
            Ok(response) => {
                seen.refused.push((response.status, response.header("retry-after").is_some()));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => seen.unanswered += 1,
        }
    }
    seen
}

async fn stored(database: &Postgres, uid: &str) -> anyhow::Result<BTreeSet<String>> {
    let client = database.connect(SUPERUSER, "shard").await?;
    let rows = client.query("SELECT id FROM items WHERE tenant_id = $1", &[&uid]).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_database_fails_only_its_tenants_and_loses_no_acknowledged_item() -> anyhow::Result<()> {
    let cluster = RegistryCluster::start(ClusterOptions::new("shard-database-crash")).await?;
    let endpoints = cluster.endpoints_from(1);
    let mut databases = [Postgres::start(&cluster.dir, "a").await?, Postgres::start(&cluster.dir, "b").await?];
    let hash = api_node::auth::hash_password("pw-alice", b"crash", api_node::auth::PBKDF2_ITERATIONS_MIN);
    let config =
        format!(r#"{{"public":{{"n":1}},"placement":{{"homeRegion":"us-east"}},"demoUsers":{{"alice":"{hash}"}}}}"#);
    let mut uids = Vec::new();
    // acme lands on us-a; us-a is drained, so globex lands on us-b.
    for ((shard, database), tenant) in
        [("us-a", &databases[0]), ("us-b", &databases[1])].into_iter().zip(["acme", "globex"])
    {
        let endpoint = database.create_shard("shard").await?;
        let args = ["shard", "add", shard, "--region", "us-east", "--endpoint", &endpoint];
        assert!(regctl(&cluster, &endpoints, &args.map(OsStr::new)).status.success());
        let documents = v1::Documents { config_json: Some(config.clone()), ..Default::default() };
        let written = cluster.client().create_tenant(tenant, documents, &WriteOptions::default()).await?;
        let written = written.tenant.unwrap_or_default();
        assert_eq!(written.shard, shard);
        uids.push(written.uid);
        assert!(regctl(&cluster, &endpoints, &["shard", "drain", shard].map(OsStr::new)).status.success());
    }
    let api = api_nodes::start_on_postgres(&cluster, 1, &[], &databases[0]).await?;

    phase("writers on both tenants; kill -9 of acme's database after a second");
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for tenant in ["acme", "globex"] {
        let token = token(&api, tenant).await?;
        handles.push(tokio::spawn(write_until(api.addr.clone(), tenant, token, stop.clone())));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    databases[0].kill()?;
    tokio::time::sleep(Duration::from_secs(3)).await;

    phase("acme's database back: its writes resume");
    databases[0].restart().await?;
    let host = "acme.localhost";
    let bearer = format!("Bearer {}", token(&api, "acme").await?);
    wait::until("acme's writes to resume", Duration::from_secs(20), || async {
        let headers = [("Host", host), ("Authorization", bearer.as_str())];
        let response = post_json(&api.addr, "/api/items", &headers, r#"{"title":"after"}"#).await.ok()?;
        (response.status == 201).then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for handle in handles {
        seen.push(handle.await?);
    }
    let (acme, globex) = (&seen[0], &seen[1]);
    eprintln!(
        "acme: {} acknowledged, {} refused, {} unanswered; globex: {} acknowledged, {} refused",
        acme.acknowledged.len(),
        acme.refused.len(),
        acme.unanswered,
        globex.acknowledged.len(),
        globex.refused.len()
    );

    phase("acme was refused with 503 + Retry-After while down; globex was never refused");
    assert!(!acme.refused.is_empty(), "acme's writes failed while its database was down");
    assert!(acme.refused.iter().all(|refusal| *refusal == (503, true)), "{:?}", acme.refused);
    assert_eq!((globex.refused.len(), globex.unanswered), (0, 0), "{globex:?}");
    assert!(globex.acknowledged.len() > 20, "globex kept writing: {}", globex.acknowledged.len());

    phase("no acknowledged item is missing from either database");
    for ((seen, database), uid) in seen.iter().zip(&databases).zip(&uids) {
        let stored = stored(database, uid).await?;
        let missing: Vec<&String> = seen.acknowledged.difference(&stored).collect();
        assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    }
    drop(api);
    cluster.passed();
    Ok(())
}
