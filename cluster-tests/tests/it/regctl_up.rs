//! `regctl up` from a clean directory: it starts three nodes, seeds them from
//! configs/, answers `regctl tenant list -o json`, passes `regctl smoke`, and
//! stops cleanly on SIGTERM — with the embedded store, and with
//! `--postgres` (a local PostgreSQL that then holds the items, none of them
//! in an api-node's directory).

use std::process::Command;

use super::phase;
use cluster_tests::binaries::binary;
use cluster_tests::local_cluster::LocalCluster;

#[test]
fn regctl_up_serves_the_seeded_configs_and_stops_cleanly() {
    regctl_up(false);
}

#[test]
fn regctl_up_postgres_keeps_tenant_data_in_postgresql() {
    regctl_up(true);
}

fn regctl_up(postgres: bool) {
    if postgres {
        // Debian's server, installed the serialised way when missing.
        cluster_tests::postgres::bin_dir().expect("PostgreSQL");
    }
    phase("regctl up on a fresh directory");
    let up = LocalCluster::start(if postgres { "regctl-up-postgres" } else { "regctl-up" }, postgres, &[])
        .expect("regctl up");
    let (dir, output, grpc_base, api_base) = (up.dir.clone(), up.output.clone(), up.grpc_base, up.api_base);
    assert!(output.iter().any(|line| line.starts_with("seeded 12 tenants")), "{output:?}");

    phase("regctl tenant list -o json against it");
    let endpoints = up.endpoints();
    let list = Command::new(binary("regctl"))
        .args(["--endpoints", &endpoints, "tenant", "list", "-o", "json"])
        .args(up.admin_flags())
        .output()
        .expect("run regctl tenant list");
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&list.stdout).expect("JSON output");
    let ids: Vec<_> = listed["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .map(|tenant| tenant["id"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        ids,
        [
            "acme",
            "cyberdyne",
            "globex",
            "hooli",
            "initech",
            "oceanic",
            "soylent",
            "stark",
            "tyrell",
            "umbrella",
            "wayne",
            "wonka"
        ]
    );
    assert_eq!(
        listed["tenants"][2]["config"]["placement"]["allowedRegions"][0], "eu-west",
        "globex is pinned to the EU"
    );

    phase("each region's sidecar materialized its runtime configs (acme's EU variant in eu-west only)");
    let acme = &listed["tenants"][0];
    // What each region serves: acme's public bundle at its configVersion.
    let served = |region: &str| {
        let bundle = proto::v1::Bundle {
            json: acme["public_bundle"]["json"].to_string().into_bytes().into(),
            ..Default::default()
        };
        let version = acme["config_revision"].as_u64().expect("config_revision");
        cluster_tests::served(&Some(bundle), region, version)
    };
    for region in ["us-east", "eu-west", "ap-south"] {
        let path = dir.join(format!("frontend-{region}")).join("config").join("acme.json");
        let on_disk = std::fs::read(&path).expect("materialized file");
        assert_eq!(on_disk, served(region), "{}", path.display());
        // configs/tenants/acme/regions/eu-west.json: that region's variant only.
        let document: serde_json::Value = serde_json::from_slice(&on_disk).expect("JSON");
        let banner = document["config"]["legalBanner"].as_str();
        assert_eq!(banner.is_some(), region == "eu-west", "{region}: {document}");
        assert_eq!(document["region"], region);
    }

    phase("each region's api-node serves acme's runtime config by Host");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    for offset in 0..3 {
        let addr = format!("127.0.0.1:{}", api_base + offset);
        let host = format!("acme.localhost:{}", api_base + offset);
        let response = runtime
            .block_on(cluster_tests::http::get(&addr, "/config/acme.json", &[("Host", &host)]))
            .expect("GET /config/acme.json");
        assert_eq!(response.status, 200, "{}", response.text());
        let region = response.header("x-region").expect("X-Region").to_owned();
        assert_eq!(response.body, served(&region));
    }

    phase("regctl smoke passes against it, and fails (exit 1) with a wrong password");
    let apis = up.api_nodes();
    let smoke = Command::new(binary("regctl"))
        .args(["--endpoints", &endpoints, "smoke", "--api", &apis])
        .args(up.admin_flags())
        .output()
        .expect("run regctl smoke");
    let said = String::from_utf8_lossy(&smoke.stdout);
    assert!(smoke.status.success(), "{said}{}", String::from_utf8_lossy(&smoke.stderr));
    assert!(said.contains("48 of 48 checks passed"), "{said}");
    assert!(said.contains("refused outside its pin"), "pinned tenants are checked outside their regions: {said}");
    let wrong = Command::new(binary("regctl"))
        .args(["--endpoints", &endpoints, "smoke", "--api", &apis, "--password", "wrong"])
        .args(up.admin_flags())
        .output()
        .expect("run regctl smoke");
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stdout).contains("FAIL: login"));

    if postgres {
        phase("the items the smoke wrote are in PostgreSQL, and no api-node holds tenant data");
        let port = output.iter().find_map(|line| line.trim().strip_prefix("tenant data: PostgreSQL on 127.0.0.1:"));
        let port: u16 = port.and_then(|rest| rest.split(',').next()?.parse().ok()).expect("the PostgreSQL port");
        let passfile = std::fs::read_to_string(dir.join("postgres/pgpass")).expect("pgpass");
        let password = passfile.lines().next().and_then(|line| line.rsplit(':').next()).expect("a password");
        let items: i64 = runtime.block_on(async {
            let mut config = tokio_postgres::Config::new();
            config.host("127.0.0.1").port(port).user("postgres").password(password).dbname("shard_us_east");
            let (client, connection) = config.connect(tokio_postgres::NoTls).await.expect("connect");
            tokio::spawn(connection);
            client.query_one("SELECT count(*) FROM items", &[]).await.expect("count").get(0)
        });
        assert!(items > 0, "the smoke's items are in us-east's database");
        for region in ["us-east", "eu-west", "ap-south"] {
            let shards = dir.join(format!("api-node-{region}")).join("shards");
            assert!(!shards.exists(), "{} holds tenant data", shards.display());
        }
    }

    phase("SIGTERM stops regctl up, its api-nodes, sidecars and nodes cleanly");
    let (status, rest) = up.terminate().expect("regctl up stops");
    assert!(status.success(), "regctl up exit: {status}");
    let processes = if postgres { 10 } else { 9 };
    assert_eq!(rest.iter().filter(|line| line.ends_with("stopped")).count(), processes, "{rest:?}");
    let still_listening = (0..3).any(|offset| std::net::TcpStream::connect(("127.0.0.1", grpc_base + offset)).is_ok());
    assert!(!still_listening, "no node is left running");
    let _ = std::fs::remove_dir_all(&dir);
}
