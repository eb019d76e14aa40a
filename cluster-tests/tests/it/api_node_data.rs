//! Guarantees 5 and 6 on the data API, on real PostgreSQL shards shared by
//! two stateless api-nodes behind no stickiness: login with hashed demo
//! users, items with idempotent retries (a write through one node is read
//! and replayed through the other), region safety on writes, and a
//! tenant-leak canary — thousands of random requests with hosts, paths,
//! tokens, idempotency keys and nodes mixed up never return another
//! tenant's config, item or session. Then the row guard in the database:
//! row-level security hides every row from a query that set no tenant and
//! refuses a row for another; a fence raised in the database refuses a
//! write of an older epoch; and an api-node refuses a shard whose schema is
//! newer than it understands, or a role that would bypass the guard.

use std::collections::HashMap;

use proto::v1;
use rand::{Rng, SeedableRng};
use registry_client::WriteOptions;

use super::phase;
use cluster_tests::http::{get, post_json, HttpResponse};
use cluster_tests::postgres::{Postgres, APP, SUPERUSER};
use cluster_tests::{api_nodes, ClusterOptions, RegistryCluster};

const TENANTS: [(&str, &str, &str); 3] =
    [("acme", "alice", "us-east"), ("globex", "bob", "us-east"), ("initech", "carol", "eu-west")];

async fn post(
    addr: &str,
    path: &str,
    host: &str,
    token: Option<&str>,
    idempotency_key: Option<&str>,
    body: &str,
) -> anyhow::Result<HttpResponse> {
    let bearer = token.map(|token| format!("Bearer {token}"));
    let mut headers = vec![("Host", host)];
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer));
    }
    if let Some(key) = idempotency_key {
        headers.push(("Idempotency-Key", key));
    }
    Ok(post_json(addr, path, &headers, body).await?)
}

async fn login(addr: &str, host: &str, user: &str, password: &str) -> anyhow::Result<HttpResponse> {
    post(addr, "/api/login", host, None, None, &format!(r#"{{"user":"{user}","password":"{password}"}}"#)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_api_on_postgres_is_tenant_scoped_idempotent_region_safe_and_guarded_twice() -> anyhow::Result<()> {
    let cluster = RegistryCluster::start(ClusterOptions::new("api-node-data")).await?;
    let client = cluster.client();
    let postgres = Postgres::start(&cluster.dir, "shards").await?;
    // Encrypted: the api-nodes verify the server's certificate (--shard-ca).
    postgres.create_shard("shard_us_east").await?;
    postgres.create_shard("shard_eu_west").await?;
    let (us_shard, eu_shard) =
        (postgres.tls_endpoint(APP, "shard_us_east"), postgres.tls_endpoint(APP, "shard_eu_west"));
    let default_shards = [us_shard.clone(), format!("eu-west={eu_shard}")];
    for (tenant, user, home) in TENANTS {
        let hash = api_node::auth::hash_password(
            &format!("pw-{user}"),
            tenant.as_bytes(),
            api_node::auth::PBKDF2_ITERATIONS_MIN,
        );
        let config = format!(
            r#"{{"public":{{"name":"{tenant}"}},"placement":{{"homeRegion":"{home}"}},"demoUsers":{{"{user}":"{hash}"}}}}"#
        );
        let documents = v1::Documents { config_json: Some(config), ..Default::default() };
        client.create_tenant(tenant, documents, &WriteOptions::default()).await?;
    }
    let api = api_nodes::start_on_postgres(&cluster, 1, &default_shards, &postgres).await?;
    let other = api_nodes::start_on_postgres(&cluster, 1, &default_shards, &postgres).await?;
    let nodes = [&api.addr, &other.addr];
    let host = |tenant: &str| format!("{tenant}.example.com");

    phase("login: right password only, per tenant");
    let mut tokens = HashMap::new();
    for (tenant, user, _) in TENANTS {
        let response =
            cluster_tests::wait::until("the tenant on the api-node", std::time::Duration::from_secs(20), || async {
                let response = login(&api.addr, &host(tenant), user, &format!("pw-{user}")).await.ok()?;
                (response.status == 200).then_some(response)
            })
            .await?;
        let body: serde_json::Value = serde_json::from_slice(&response.body)?;
        tokens.insert(tenant, body["token"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(login(&api.addr, &host("acme"), "alice", "wrong").await?.status, 401);
    assert_eq!(login(&api.addr, &host("acme"), "bob", "pw-bob").await?.status, 401, "bob is globex's user");
    let bad_body = post(&api.addr, "/api/login", &host("acme"), None, None, "{").await?;
    assert_eq!(bad_body.status, 400, "{}", bad_body.text());

    phase("items: idempotent creates, listed for their tenant only");
    let first =
        post(&api.addr, "/api/items", &host("acme"), Some(&tokens["acme"]), Some("k-1"), r#"{"title":"acme-item-1"}"#)
            .await?;
    assert_eq!(first.status, 201, "{}", first.text());
    let retry =
        post(&api.addr, "/api/items", &host("acme"), Some(&tokens["acme"]), Some("k-1"), r#"{"title":"acme-item-2"}"#)
            .await?;
    assert_eq!(retry.status, 200);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.body, first.body, "a retry returns the first result");
    let elsewhere = post(
        &other.addr,
        "/api/items",
        &host("acme"),
        Some(&tokens["acme"]),
        Some("k-1"),
        r#"{"title":"acme-item-3"}"#,
    )
    .await?;
    assert_eq!(elsewhere.status, 200, "the other api-node knows the key: {}", elsewhere.text());
    assert_eq!(elsewhere.body, first.body, "a retry through another api-node returns the first result");
    let listed = get(
        &other.addr,
        "/api/items",
        &[("Host", &host("acme")), ("Authorization", &format!("Bearer {}", tokens["acme"]))],
    )
    .await?;
    let listed: serde_json::Value = serde_json::from_slice(&listed.body)?;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1), "written through one node, read through the other");
    let theirs = get(
        &api.addr,
        "/api/items",
        &[("Host", &host("globex")), ("Authorization", &format!("Bearer {}", tokens["globex"]))],
    )
    .await?;
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&theirs.body)?["items"], serde_json::json!([]));
    let stolen = get(
        &api.addr,
        "/api/items",
        &[("Host", &host("globex")), ("Authorization", &format!("Bearer {}", tokens["acme"]))],
    )
    .await?;
    assert_eq!(stolen.status, 401, "acme's token is worthless for globex");

    phase("region safety: initech's home is eu-west, so this us-east node refuses its writes with 421");
    let misdirected =
        post(&api.addr, "/api/items", &host("initech"), Some(&tokens["initech"]), None, r#"{"title":"initech-item"}"#)
            .await?;
    assert_eq!(misdirected.status, 421, "{}", misdirected.text());
    assert_eq!(misdirected.header("x-home-region"), Some("eu-west"));
    let read = get(
        &api.addr,
        "/api/items",
        &[("Host", &host("initech")), ("Authorization", &format!("Bearer {}", tokens["initech"]))],
    )
    .await?;
    assert_eq!(read.status, 200, "reads are served in any allowed region");

    phase("the canary: 2,000 random requests with everything mixed up");
    let seed: u64 = std::env::var("CANARY_SEED").ok().and_then(|seed| seed.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("canary seed {seed} (replay: CANARY_SEED={seed} cargo test -p cluster-tests --test it api_node_data)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let names: Vec<&str> = TENANTS.iter().map(|(tenant, _, _)| *tenant).collect();
    for n in 0..2000 {
        let addr = nodes[rng.random_range(0..nodes.len())];
        let tenant = names[rng.random_range(0..names.len())];
        let token = &tokens[names[rng.random_range(0..names.len())]];
        let key = format!("k-{}", rng.random_range(0..20));
        let response = match rng.random_range(0..3) {
            0 => {
                let path_tenant = names[rng.random_range(0..names.len())];
                get(addr, &format!("/config/{path_tenant}.json"), &[("Host", &host(tenant))]).await?
            }
            1 => {
                get(addr, "/api/items", &[("Host", &host(tenant)), ("Authorization", &format!("Bearer {token}"))])
                    .await?
            }
            _ => {
                let body = format!(r#"{{"title":"{tenant}-item-{n}"}}"#);
                post(addr, "/api/items", &host(tenant), Some(token), Some(&key), &body).await?
            }
        };
        if let Some(served) = response.header("x-tenant") {
            assert_eq!(served, tenant, "request {n}: a response for another tenant");
        }
        if response.status < 300 {
            let text = response.text();
            for other in names.iter().filter(|other| **other != tenant) {
                assert!(
                    !text.contains(&format!("\"{other}")) && !text.contains(&format!("{other}-item")),
                    "request {n} for {tenant} leaked {other}: {text}"
                );
            }
        }
    }

    phase("the api-nodes' connections to the database are encrypted");
    let admin_db = postgres.connect(SUPERUSER, "postgres").await?;
    let encrypted = admin_db
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'tenantry-api-node' AND a.datname = 'shard_us_east'",
            &[],
        )
        .await?;
    assert!(
        !encrypted.is_empty() && encrypted.iter().all(|row| row.get::<_, bool>(0)),
        "{} connections",
        encrypted.len()
    );

    phase("row-level security: a query that set no tenant sees no row, and no tenant writes another's");
    let uid = |tenant: &'static str| {
        let client = &client;
        async move {
            let got = client.get_tenant(tenant, v1::Consistency::Linearizable).await?;
            anyhow::Ok(got.tenant.map(|tenant| tenant.uid).unwrap_or_default())
        }
    };
    let (acme_uid, globex_uid) = (uid("acme").await?, uid("globex").await?);
    let count = |rows: Vec<tokio_postgres::Row>| rows.first().map_or(0, |row| row.get::<_, i64>(0));
    let admin_db = postgres.connect(SUPERUSER, "shard_us_east").await?;
    let all = count(admin_db.query("SELECT count(*) FROM items", &[]).await?);
    assert!(all > 1, "the canary wrote rows for both us-east tenants ({all})");
    let mut app_db = postgres.connect(APP, "shard_us_east").await?;
    assert_eq!(count(app_db.query("SELECT count(*) FROM items", &[]).await?), 0, "no tenant set, no row seen");
    let guarded = app_db.transaction().await?;
    guarded.execute("SELECT set_config('tenantry.tenant_id', $1, true)", &[&acme_uid]).await?;
    let acme_rows = count(guarded.query("SELECT count(*) FROM items", &[]).await?);
    let theirs = count(guarded.query("SELECT count(*) FROM items WHERE tenant_id = $1", &[&globex_uid]).await?);
    assert!(acme_rows > 0 && acme_rows < all && theirs == 0, "acme {acme_rows} of {all}; globex's seen: {theirs}");
    let forged = guarded
        .execute(
            "INSERT INTO items (tenant_id, id, title, created_by, created_at_ms) VALUES ($1, 'x', 'forged', 'eve', 0)",
            &[&globex_uid],
        )
        .await
        .expect_err("a row for another tenant is refused");
    let why = forged.as_db_error().map(|error| error.message().to_owned()).unwrap_or_default();
    assert!(why.contains("row-level security"), "{forged:?}");
    drop(guarded);

    phase("a fence raised in the database (a newer writer elsewhere) refuses this node's older epoch");
    admin_db.execute("UPDATE tenant_fences SET epoch = epoch + 5 WHERE tenant_id = $1", &[&acme_uid]).await?;
    let stale =
        post(&other.addr, "/api/items", &host("acme"), Some(&tokens["acme"]), None, r#"{"title":"acme-stale"}"#)
            .await?;
    assert_eq!(stale.status, 503, "{}", stale.text());
    assert!(stale.text().contains("stale epoch"), "{}", stale.text());
    assert!(stale.header("retry-after").is_some());
    assert_eq!(count(admin_db.query("SELECT count(*) FROM items", &[]).await?), all, "nothing written");
    admin_db.execute("UPDATE tenant_fences SET epoch = epoch - 5 WHERE tenant_id = $1", &[&acme_uid]).await?;

    phase("an api-node refuses a shard of a newer schema, and a role that bypasses row-level security");
    let eu_db = postgres.connect(SUPERUSER, "shard_eu_west").await?;
    eu_db
        .execute("INSERT INTO tenantry_schema_migrations VALUES (99, 'a contract step of a later build', 99, 0)", &[])
        .await?;
    let as_superuser = postgres.endpoint(SUPERUSER, "shard_us_east");
    let refusing_shards = [as_superuser, format!("eu-west={eu_shard}")];
    let refusing = api_nodes::start_on_postgres(&cluster, 1, &refusing_shards, &postgres).await?;
    for (tenant, why) in [("acme", "bypasses row-level security"), ("initech", "upgrade the api-node")] {
        let health = get(&refusing.addr, "/health?tenant=auto", &[("Host", &host(tenant))]).await?;
        let body: serde_json::Value = serde_json::from_slice(&health.body)?;
        assert_eq!((health.status, &body["shard"]["reachable"]), (503, &serde_json::json!(false)), "{body}");
        assert!(body["shard"]["error"].as_str().unwrap_or_default().contains(why), "{tenant}: {body}");
        let listed = get(
            &refusing.addr,
            "/api/items",
            &[("Host", &host(tenant)), ("Authorization", &format!("Bearer {}", tokens[tenant]))],
        )
        .await?;
        assert_eq!(listed.status, 503, "{tenant}: {}", listed.text());
    }
    drop(refusing);

    phase("every registry node dies: after S the api-node is read-only (503 + Retry-After), reads go on");
    let mut cluster = cluster;
    for id in 1..=3 {
        cluster.kill(id)?;
    }
    let acme_token = format!("Bearer {}", tokens["acme"]);
    let stale =
        cluster_tests::wait::until("the api-node to turn read-only", std::time::Duration::from_secs(15), || async {
            let response =
                post(&api.addr, "/api/items", &host("acme"), Some(&tokens["acme"]), None, r#"{"title":"acme-late"}"#)
                    .await
                    .ok()?;
            (response.status == 503).then_some(response)
        })
        .await?;
    assert_eq!(stale.header("retry-after"), Some("2"), "{}", stale.text());
    let read = get(&api.addr, "/api/items", &[("Host", &host("acme")), ("Authorization", &acme_token)]).await?;
    assert_eq!(read.status, 200, "degraded mode still serves reads");
    let config = get(&api.addr, "/config/acme.json", &[("Host", &host("acme"))]).await?;
    assert_eq!(config.status, 200);
    let health = get(&api.addr, "/health?tenant=auto", &[("Host", &host("acme"))]).await?;
    assert_eq!(health.status, 503, "{}", health.text());

    drop((api, other));
    cluster.passed();
    Ok(())
}
