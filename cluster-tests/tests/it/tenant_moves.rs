//! Moves between two PostgreSQL databases (`regctl move`): a process killed
//! (kill -9) at each step — the api-node that copies, the registry leader,
//! either database, regctl itself (while the api-node, stopped, has its
//! copy request) — leaves the move resumable or abortable, never
//! half-flipped, and no row is lost or duplicated: the same items, each
//! database's digest of them equal, an idempotent retry from before the
//! move still recognised after it, and the old copy gone from the old
//! database once the move is done (its fence row stays). Writes are refused
//! (503, `Retry-After`) while the tenant is locked; reads go on.

use std::ffi::OsStr;
use std::time::Duration;

use proto::v1;
use registry_client::WriteOptions;

use super::{phase, regctl};
use cluster_tests::api_nodes::{self, ApiNode};
use cluster_tests::http::{get, post_json};
use cluster_tests::postgres::{Postgres, SUPERUSER};
use cluster_tests::{wait, ClusterOptions, RegistryCluster};

const ITEMS: usize = 12;

/// The rows of the tenant whose copy shows its progress.
const LARGE_ROWS: u64 = 100_000;

/// One tenant's run: where regctl stops (`--until`, or killed mid-run), and
/// whether the move is then resumed or aborted.
struct Case {
    tenant: &'static str,
    until: Option<&'static str>,
    resume: bool,
    kill_leader: bool,
    /// Which database is killed (and restarted) too: the old shard's, the new one's.
    kill_database: Option<Side>,
}

#[derive(Clone, Copy, Debug)]
enum Side {
    Old,
    New,
}

const CASES: [Case; 8] = [
    Case { tenant: "t-begun-resume", until: Some("begun"), resume: true, kill_leader: true, kill_database: None },
    Case {
        tenant: "t-begun-abort",
        until: Some("begun"),
        resume: false,
        kill_leader: false,
        kill_database: Some(Side::Old),
    },
    Case {
        tenant: "t-copied-resume",
        until: Some("copied"),
        resume: true,
        kill_leader: false,
        kill_database: Some(Side::New),
    },
    Case { tenant: "t-copied-abort", until: Some("copied"), resume: false, kill_leader: true, kill_database: None },
    Case {
        tenant: "t-verified-resume",
        until: Some("verified"),
        resume: true,
        kill_leader: true,
        kill_database: Some(Side::Old),
    },
    Case {
        tenant: "t-verified-abort",
        until: Some("verified"),
        resume: false,
        kill_leader: false,
        kill_database: Some(Side::New),
    },
    Case {
        tenant: "t-flipped-resume",
        until: Some("flipped"),
        resume: true,
        kill_leader: false,
        kill_database: Some(Side::Old),
    },
    Case { tenant: "t-killed-resume", until: None, resume: true, kill_leader: true, kill_database: Some(Side::New) },
];

/// The tenant's rows in one database (as its superuser: no row guard), and
/// whether its fence row is there.
async fn rows_in(database: &Postgres, name: &str, uid: &str) -> anyhow::Result<(i64, bool)> {
    let client = database.connect(SUPERUSER, name).await?;
    let count = |table: &str| format!("SELECT count(*) FROM {table} WHERE tenant_id = $1");
    let items: i64 = client.query_one(&count("items"), &[&uid]).await?.get(0);
    let keys: i64 = client.query_one(&count("idempotency_keys"), &[&uid]).await?.get(0);
    let fenced: i64 = client.query_one(&count("tenant_fences"), &[&uid]).await?.get(0);
    Ok((items + keys, fenced == 1))
}

fn host(tenant: &str) -> String {
    format!("{tenant}.localhost")
}

async fn token(api: &ApiNode, tenant: &str) -> anyhow::Result<String> {
    let body = r#"{"user":"alice","password":"pw-alice"}"#;
    let response = wait::until("a login", Duration::from_secs(20), || async {
        let response = post_json(&api.addr, "/api/login", &[("Host", &host(tenant))], body).await.ok()?;
        (response.status == 200).then_some(response)
    })
    .await?;
    let body: serde_json::Value = serde_json::from_slice(&response.body)?;
    Ok(body["token"].as_str().unwrap_or_default().to_owned())
}

async fn create_item(
    api: &ApiNode,
    tenant: &str,
    token: &str,
    key: &str,
) -> anyhow::Result<cluster_tests::http::HttpResponse> {
    let bearer = format!("Bearer {token}");
    let headers = [("Host", host(tenant)), ("Authorization", bearer), ("Idempotency-Key", key.to_owned())];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(name, value)| (*name, value.as_str())).collect();
    Ok(post_json(&api.addr, "/api/items", &headers, &format!(r#"{{"title":"{key}"}}"#)).await?)
}

/// The tenant's item ids, in order, and the shard the api-node serves them from.
async fn items(api: &ApiNode, tenant: &str, token: &str) -> anyhow::Result<(Vec<String>, String)> {
    let bearer = format!("Bearer {token}");
    let response = get(&api.addr, "/api/items", &[("Host", &host(tenant)), ("Authorization", &bearer)]).await?;
    anyhow::ensure!(response.status == 200, "list: {} {}", response.status, response.text());
    let body: serde_json::Value = serde_json::from_slice(&response.body)?;
    let ids = body["items"].as_array().into_iter().flatten().map(|item| item["id"].as_str().unwrap_or("").to_owned());
    let health = get(&api.addr, "/health?tenant=auto", &[("Host", &host(tenant))]).await?;
    let health: serde_json::Value = serde_json::from_slice(&health.body)?;
    Ok((ids.collect(), health["shard"]["id"].as_str().unwrap_or_default().to_owned()))
}

async fn record(cluster: &RegistryCluster, tenant: &str) -> anyhow::Result<v1::Tenant> {
    let got = cluster.client().get_tenant(tenant, v1::Consistency::Linearizable).await?;
    got.tenant.ok_or_else(|| anyhow::anyhow!("no tenant {tenant}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_killed_at_every_step_resume_or_abort_without_losing_rows() -> anyhow::Result<()> {
    let mut cluster = RegistryCluster::start(ClusterOptions::new("tenant-moves")).await?;
    let endpoints = cluster.endpoints_from(1);
    let mut databases = [Postgres::start(&cluster.dir, "us-1").await?, Postgres::start(&cluster.dir, "us-2").await?];
    for (shard, database) in ["us-1", "us-2"].iter().zip(&databases) {
        let endpoint = database.create_shard("shard").await?;
        let args = ["shard", "add", shard, "--region", "us-east", "--endpoint", &endpoint];
        assert!(regctl(&cluster, &endpoints, &args.map(OsStr::new)).status.success());
    }
    let hash = api_node::auth::hash_password("pw-alice", b"moves", api_node::auth::PBKDF2_ITERATIONS_MIN);
    let config =
        format!(r#"{{"public":{{"n":1}},"placement":{{"homeRegion":"us-east"}},"demoUsers":{{"alice":"{hash}"}}}}"#);
    for case in &CASES {
        let documents = v1::Documents { config_json: Some(config.clone()), ..Default::default() };
        let written = cluster.client().create_tenant(case.tenant, documents, &WriteOptions::default()).await?;
        assert_eq!(written.tenant.map(|tenant| tenant.shard).as_deref(), Some("us-1"));
    }
    let mut api = api_nodes::start_on_postgres(&cluster, 1, &[], &databases[0]).await?;

    for case in &CASES {
        let tenant = case.tenant;
        phase(&format!("{tenant}: {ITEMS} items on us-1"));
        let token = token(&api, tenant).await?;
        for n in 0..ITEMS {
            assert_eq!(create_item(&api, tenant, &token, &format!("k{n}")).await?.status, 201);
        }
        let (before, shard) = items(&api, tenant, &token).await?;
        assert_eq!((before.len(), shard.as_str()), (ITEMS, "us-1"));

        let mut args = vec!["move", tenant, "--to-shard", "us-2", "--api-admin", &api.admin, "--reason", "rebalance"];
        match case.until {
            Some(until) => {
                phase(&format!("{tenant}: regctl move --until {until}"));
                args.extend(["--until", until]);
                assert!(regctl(&cluster, &endpoints, &args.iter().map(OsStr::new).collect::<Vec<_>>())
                    .status
                    .success());
            }
            None => {
                phase(&format!("{tenant}: the api-node stopped (SIGSTOP); regctl move, kill -9 while it copies"));
                let pid = api.process.child().map(|child| child.id()).ok_or_else(|| anyhow::anyhow!("no pid"))?;
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGSTOP)?;
                let mut child = cluster
                    .regctl(&endpoints)
                    .args(&args)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()?;
                wait::until("the move to begin", Duration::from_secs(20), || async {
                    record(&cluster, tenant).await.ok()?.r#move.map(|_| ())
                })
                .await?;
                child.kill()?;
                child.wait()?;
            }
        }
        let locked = record(&cluster, tenant).await?;
        let step = locked.r#move.as_ref().map(|moving| moving.step.clone());
        eprintln!("{tenant}: stopped at step {step:?}");
        assert_eq!(locked.status, v1::TenantStatus::LockedForMove as i32, "locked until unlocked");

        phase(&format!(
            "{tenant}: kill -9 the api-node{}",
            if case.kill_leader { " and the registry leader" } else { "" }
        ));
        api.restart_killed(&cluster).await?;
        if case.kill_leader {
            let leader = cluster.leader().await?;
            cluster.kill(leader)?;
            cluster.start_node(leader)?;
            cluster.wait_ready().await?;
        }
        if let Some(side) = case.kill_database {
            phase(&format!("{tenant}: kill -9 the {side:?} shard's database, and start it again"));
            let database = &mut databases[side as usize];
            database.kill()?;
            database.restart().await?;
        }

        phase(&format!("{tenant}: writes are refused with Retry-After, reads go on, after the restarts"));
        let refused = wait::until("the api-node to see the lock", Duration::from_secs(10), || async {
            let response = create_item(&api, tenant, &token, "during").await.ok()?;
            (response.status == 503).then_some(response)
        })
        .await?;
        assert!(refused.header("retry-after").is_some());
        assert_eq!(items(&api, tenant, &token).await?.0.len(), ITEMS);

        let expected_shard = if case.resume { "us-2" } else { "us-1" };
        if case.resume {
            phase(&format!("{tenant}: the same command resumes the move"));
            let args = ["move", tenant, "--to-shard", "us-2", "--api-admin", &api.admin];
            assert!(regctl(&cluster, &endpoints, &args.map(OsStr::new)).status.success());
        } else {
            phase(&format!("{tenant}: regctl move --abort"));
            assert!(regctl(&cluster, &endpoints, &["move", tenant, "--abort"].map(OsStr::new)).status.success());
        }
        let done = record(&cluster, tenant).await?;
        assert_eq!((done.status, done.shard.as_str()), (v1::TenantStatus::Active as i32, expected_shard));
        assert!(done.r#move.is_none());
        assert_eq!(
            done.placement.as_ref().map(|placement| placement.epoch),
            Some(3),
            "moved or not, the epoch grew past the copy's"
        );

        phase(&format!("{tenant}: the same rows on {expected_shard}, writes resume, old retries are recognised"));
        let (after, shard) =
            wait::until("the api-node to serve the unlocked tenant", Duration::from_secs(10), || async {
                let (ids, shard) = items(&api, tenant, &token).await.ok()?;
                (shard == expected_shard).then_some((ids, shard))
            })
            .await?;
        assert_eq!(after, before, "{tenant}: no row lost or duplicated on {shard}");
        let retry = wait::until("writes to resume", Duration::from_secs(10), || async {
            let response = create_item(&api, tenant, &token, "k0").await.ok()?;
            (response.status != 503).then_some(response)
        })
        .await?;
        assert_eq!(retry.status, 200, "an idempotent retry from before the move: {}", retry.text());
        assert_eq!(retry.header("idempotent-replayed"), Some("true"));
        assert_eq!(create_item(&api, tenant, &token, "after").await?.status, 201);
        assert_eq!(items(&api, tenant, &token).await?.0.len(), ITEMS + 1);

        let (old, new) =
            (rows_in(&databases[0], "shard", &done.uid).await?, rows_in(&databases[1], "shard", &done.uid).await?);
        eprintln!("{tenant}: rows and fence, old database {old:?}, new database {new:?}");
        if case.resume {
            assert_eq!(old, (0, true), "{tenant}: the old copy is gone, its fence stays");
            assert_eq!(new.0 as usize, 2 * ITEMS + 2, "{tenant}: every item and key, and the two written after");
        } else {
            assert_eq!(old.0 as usize, 2 * ITEMS + 2, "{tenant}: aborted, the rows stay on the old database");
        }
    }

    phase("the history tells the steps");
    let history = regctl(&cluster, &endpoints, &["history", "t-killed-resume", "-o", "json"].map(OsStr::new));
    let history: serde_json::Value = serde_json::from_slice(&history.stdout)?;
    let summaries: Vec<&str> =
        history["entries"].as_array().into_iter().flatten().filter_map(|entry| entry["summary"].as_str()).collect();
    assert_eq!(summaries[0], "move to shard us-2: done (unlocked)");
    assert!(summaries[1].starts_with("move to shard us-2: flipped, epoch 3"), "{summaries:?}");
    assert!(summaries[2].starts_with(&format!("move to shard us-2: verified {} rows", 2 * ITEMS)), "{summaries:?}");

    phase("refusals name the rule and change nothing");
    let refused = regctl(
        &cluster,
        &endpoints,
        &["move", "t-begun-resume", "--to-shard", "us-2", "--api-admin", &api.admin].map(OsStr::new),
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already lives on us-2"));
    let refused = regctl(&cluster, &endpoints, &["move", "t-begun-abort", "--abort"].map(OsStr::new));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is not being moved"));

    phase("a large tenant's copy tells its progress: a bar in a terminal, lines when piped");
    let documents = v1::Documents { config_json: Some(config.clone()), ..Default::default() };
    cluster.client().create_tenant("t-large", documents, &WriteOptions::default()).await?;
    let uid = record(&cluster, "t-large").await?.uid;
    let superuser = databases[0].connect(SUPERUSER, "shard").await?;
    let insert = "INSERT INTO items (tenant_id, id, title, created_by, created_at_ms) \
                  SELECT $1, lpad(n::text, 26, '0'), 'item ' || n, 'alice', n FROM generate_series(1, $2::bigint) AS n";
    superuser.execute(insert, &[&uid, &(LARGE_ROWS as i64)]).await?;
    let mut command = cluster.regctl(&endpoints);
    command.args(["move", "t-large", "--to-shard", "us-2", "--api-admin", &api.admin]);
    let drawn = tokio::task::block_in_place(|| super::regctl_progress::in_terminal(&command))?;
    for shown in [
        format!("/{LARGE_ROWS} rows writing"),
        format!("read {LARGE_ROWS} rows from the old shard, fenced"),
        format!("wrote {LARGE_ROWS} rows to us-2"),
        format!("copied: {LARGE_ROWS} rows on us-1"),
    ] {
        assert!(drawn.contains(&shown) && drawn.contains('\r'), "{shown:?} in {drawn:?}");
    }
    let args = ["move", "t-large", "--to-shard", "us-1", "--api-admin", &api.admin];
    let piped = regctl(&cluster, &endpoints, &args.map(OsStr::new));
    let lines = String::from_utf8_lossy(&piped.stdout);
    assert!(piped.status.success() && !lines.contains('\r'), "{lines:?}");
    let lines: Vec<&str> = lines.lines().collect();
    assert!(lines.contains(&format!("read {LARGE_ROWS} rows from the old shard, fenced").as_str()), "{lines:?}");
    assert!(lines.contains(&format!("wrote {LARGE_ROWS} rows to us-1").as_str()), "{lines:?}");
    let (old, new) = (rows_in(&databases[1], "shard", &uid).await?, rows_in(&databases[0], "shard", &uid).await?);
    assert_eq!((old, new), ((0, true), (LARGE_ROWS as i64, true)), "there and back, every row");

    drop(api);
    cluster.passed();
    Ok(())
}
