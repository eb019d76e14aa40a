//! A shard with a streaming read replica: an api-node serves a list from
//! the replica when it has replayed the caller's last write (the
//! `X-Read-After` position, or the cookie, the write answered with), else
//! from the primary — so a caller always reads its own writes, while
//! readers that wrote nothing take the replica, stale or not; a replica that
//! is down sends every read to the primary.

use std::ffi::OsStr;
use std::time::Duration;

use proto::v1;
use registry_client::WriteOptions;

use super::{phase, regctl};
use cluster_tests::api_nodes;
use cluster_tests::http::{get, post_json, HttpResponse};
use cluster_tests::postgres::{Postgres, APP, SUPERUSER};
use cluster_tests::{wait, ClusterOptions, RegistryCluster};

const HOST: &str = "acme.localhost";

async fn list(addr: &str, bearer: &str, read_after: Option<&str>) -> anyhow::Result<(usize, String)> {
    let mut headers = vec![("Host", HOST), ("Authorization", bearer)];
    headers.extend(read_after.map(|position| ("X-Read-After", position)));
    let response: HttpResponse = get(addr, "/api/items", &headers).await?;
    anyhow::ensure!(response.status == 200, "list: {} {}", response.status, response.text());
    let body: serde_json::Value = serde_json::from_slice(&response.body)?;
    let served = response.header("x-served-from").unwrap_or_default().to_owned();
    Ok((body["items"].as_array().map_or(0, Vec::len), served))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_the_replica_once_it_has_the_callers_last_write() -> anyhow::Result<()> {
    let cluster = RegistryCluster::start(ClusterOptions::new("shard-read-replica")).await?;
    let endpoints = cluster.endpoints_from(1);
    let primary = Postgres::start(&cluster.dir, "primary").await?;
    let endpoint = primary.create_shard("shard").await?;
    let mut replica = primary.start_replica(&cluster.dir, "replica").await?;
    let replica_endpoint = replica.endpoint(APP, "shard");
    let args = ["shard", "add", "us-1", "--region", "us-east", "--endpoint", &endpoint, "--replica", &replica_endpoint];
    assert!(regctl(&cluster, &endpoints, &args.map(OsStr::new)).status.success());
    let same = ["shard", "add", "us-9", "--region", "us-east", "--endpoint", &endpoint, "--replica", &endpoint];
    let refused = regctl(&cluster, &endpoints, &same.map(OsStr::new));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("replica"), "a shard is not its own replica");

    let hash = api_node::auth::hash_password("pw-alice", b"replica", api_node::auth::PBKDF2_ITERATIONS_MIN);
    let config =
        format!(r#"{{"public":{{"n":1}},"placement":{{"homeRegion":"us-east"}},"demoUsers":{{"alice":"{hash}"}}}}"#);
    let documents = v1::Documents { config_json: Some(config), ..Default::default() };
    let written = cluster.client().create_tenant("acme", documents, &WriteOptions::default()).await?;
    assert_eq!(written.tenant.map(|tenant| tenant.shard).as_deref(), Some("us-1"));
    let api = api_nodes::start_on_postgres(&cluster, 1, &[], &primary).await?;
    let login = wait::until("a login", Duration::from_secs(20), || async {
        let body = r#"{"user":"alice","password":"pw-alice"}"#;
        let response = post_json(&api.addr, "/api/login", &[("Host", HOST)], body).await.ok()?;
        (response.status == 200).then_some(response)
    })
    .await?;
    let token: serde_json::Value = serde_json::from_slice(&login.body)?;
    let bearer = format!("Bearer {}", token["token"].as_str().unwrap_or_default());
    let create = |title: &'static str| {
        let (addr, bearer) = (api.addr.clone(), bearer.clone());
        async move {
            let headers = [("Host", HOST), ("Authorization", bearer.as_str())];
            let created = post_json(&addr, "/api/items", &headers, &format!(r#"{{"title":"{title}"}}"#)).await?;
            anyhow::ensure!(created.status == 201, "create: {} {}", created.status, created.text());
            let position = created.header("x-read-after").unwrap_or_default().to_owned();
            let cookie = created.header("set-cookie").unwrap_or_default().to_owned();
            anyhow::ensure!(position.starts_with("us-1@"), "a write names its position: {position:?}");
            anyhow::ensure!(cookie.starts_with(&format!("tenantry_read_after={position};")), "{cookie}");
            anyhow::Ok(position)
        }
    };

    phase("a write, then its reader: the replica serves once it has the write");
    let first = create("first").await?;
    let served = wait::until("the replica to replay the write", Duration::from_secs(10), || async {
        list(&api.addr, &bearer, Some(&first)).await.ok().filter(|(_, served)| served == "replica")
    })
    .await?;
    assert_eq!(served.0, 1, "read your write, from the replica");

    phase("replay paused: the writer reads from the primary, a reader that wrote nothing from the replica");
    let replica_db = replica.connect(SUPERUSER, "postgres").await?;
    replica_db.execute("SELECT pg_wal_replay_pause()", &[]).await?;
    let second = create("second").await?;
    assert_eq!(list(&api.addr, &bearer, Some(&second)).await?, (2, "primary".to_owned()), "its own write, always");
    assert_eq!(list(&api.addr, &bearer, None).await?, (1, "replica".to_owned()), "stale, as allowed");
    let forged = format!("us-1@{}", "F".repeat(8) + "/0");
    assert_eq!(list(&api.addr, &bearer, Some(&forged)).await?.1, "primary", "a position ahead of the replica");
    assert_eq!(list(&api.addr, &bearer, Some("us-1@not-an-lsn")).await?.1, "replica", "nonsense is ignored");

    phase("replay resumed: the replica serves the writer again");
    replica_db.execute("SELECT pg_wal_replay_resume()", &[]).await?;
    let caught_up = wait::until("the replica to catch up", Duration::from_secs(10), || async {
        list(&api.addr, &bearer, Some(&second)).await.ok().filter(|(_, served)| served == "replica")
    })
    .await?;
    assert_eq!(caught_up.0, 2);

    let health = get(&api.addr, "/health?tenant=auto", &[("Host", HOST)]).await?;
    let body: serde_json::Value = serde_json::from_slice(&health.body)?;
    assert_eq!(body["shard"]["replica"]["reachable"], true, "{body}");

    phase("the replica killed: every read goes to the primary, and health says so");
    drop(replica_db);
    replica.kill()?;
    let health = get(&api.addr, "/health?tenant=auto", &[("Host", HOST)]).await?;
    let body: serde_json::Value = serde_json::from_slice(&health.body)?;
    assert_eq!((health.status, &body["shard"]["reachable"]), (200, &serde_json::json!(true)), "{body}");
    assert_eq!(body["shard"]["replica"]["reachable"], false, "{body}");
    assert_eq!(list(&api.addr, &bearer, None).await?, (2, "primary".to_owned()));
    assert_eq!(list(&api.addr, &bearer, Some(&second)).await?, (2, "primary".to_owned()));

    drop(api);
    cluster.passed();
    Ok(())
}
