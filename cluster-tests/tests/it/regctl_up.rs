//! `regctl up` from a clean directory: it starts three nodes, seeds them from
//! configs/, answers `regctl tenant list -o json`, passes `regctl smoke`, and
//! stops cleanly on SIGTERM — with the embedded store, and with
//! `--postgres` (a local PostgreSQL that then holds the items, none of them
//! in an api-node's directory).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::phase;
use cluster_tests::binaries::{binary, test_dir};
use cluster_tests::process::ChildGuard;

fn free_port_block(count: u16) -> u16 {
    cluster_tests::registry_cluster::free_ports(count).expect("a block of free ports")
}

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
    let dir = test_dir(if postgres { "regctl-up-postgres" } else { "regctl-up" });
    let configs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let grpc_base = free_port_block(3);
    let http_base = free_port_block(3);
    let agent_base = free_port_block(3);
    let api_base = free_port_block(3);
    let api_admin_base = free_port_block(3);

    phase("regctl up on a fresh directory");
    let mut up = ChildGuard::new(
        Command::new(binary("regctl"))
            .args(["up", "--grpc-port-base", &grpc_base.to_string(), "--http-port-base", &http_base.to_string()])
            .args(["--agent-port-base", &agent_base.to_string(), "--api-port-base", &api_base.to_string()])
            .args(["--api-admin-port-base", &api_admin_base.to_string()])
            .arg("--dir")
            .arg(&dir)
            .arg("--configs")
            .arg(&configs)
            .args(if postgres {
                vec!["--postgres".to_owned(), "--postgres-port".to_owned(), free_port_block(1).to_string()]
            } else {
                vec![]
            })
            // No CARGO: the harness already built the binaries.
            .env_remove("CARGO")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn regctl up"),
    );
    let stdout = up.child().and_then(|child| child.stdout.take()).expect("stdout");
    let (lines_sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_sender.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut output = Vec::new();
    while !output.iter().any(|line: &String| line == "ready") {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(remaining) {
            Ok(line) => output.push(line),
            Err(_) => panic!("regctl up not ready in time; output so far:\n{}", output.join("\n")),
        }
    }
    assert!(output.iter().any(|line| line.starts_with("seeded 12 tenants")), "{output:?}");

    phase("regctl tenant list -o json against it");
    let endpoints = (0..3).map(|offset| format!("127.0.0.1:{}", grpc_base + offset)).collect::<Vec<_>>().join(",");
    let list = Command::new(binary("regctl"))
        .args(["--endpoints", &endpoints, "tenant", "list", "-o", "json"])
        .args(admin_flags(&dir))
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
    let apis = (0..3).map(|offset| format!("127.0.0.1:{}", api_base + offset)).collect::<Vec<_>>().join(",");
    let smoke = Command::new(binary("regctl"))
        .args(["--endpoints", &endpoints, "smoke", "--api", &apis])
        .args(admin_flags(&dir))
        .output()
        .expect("run regctl smoke");
    let said = String::from_utf8_lossy(&smoke.stdout);
    assert!(smoke.status.success(), "{said}{}", String::from_utf8_lossy(&smoke.stderr));
    assert!(said.contains("48 of 48 checks passed"), "{said}");
    assert!(said.contains("refused outside its pin"), "pinned tenants are checked outside their regions: {said}");
    let wrong = Command::new(binary("regctl"))
        .args(["--endpoints", &endpoints, "smoke", "--api", &apis, "--password", "wrong"])
        .args(admin_flags(&dir))
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
    let status = up.terminate().expect("regctl up stops");
    assert!(status.success(), "regctl up exit: {status}");
    let rest: Vec<String> = lines.try_iter().collect();
    let processes = if postgres { 10 } else { 9 };
    assert_eq!(rest.iter().filter(|line| line.ends_with("stopped")).count(), processes, "{rest:?}");
    let still_listening = (0..3).any(|offset| std::net::TcpStream::connect(("127.0.0.1", grpc_base + offset)).is_ok());
    assert!(!still_listening, "no node is left running");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The admin certificate `regctl up` made in `dir`.
fn admin_flags(dir: &std::path::Path) -> Vec<std::ffi::OsString> {
    let certs = dir.join("certs");
    ["--ca", "ca.crt", "--cert", "operator-admin.crt", "--key", "operator-admin.key"]
        .chunks(2)
        .flat_map(|pair| [pair[0].into(), certs.join(pair[1]).into_os_string()])
        .collect()
}
