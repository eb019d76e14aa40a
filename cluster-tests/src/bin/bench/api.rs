//! `api`: requests per second and latency of an api-node's tenant route
//! (`/config/{tenant}.json`: Host resolution, view lookup, region policy,
//! ETag, headers) against a bare route on the same server (`/healthz`), and
//! of its item routes on a PostgreSQL shard (a list of 100 items, and a
//! create: a transaction that locks the fence row, inserts, and commits
//! durably) — the capacity unit operators size api-nodes and shards by. The
//! load comes from `wrk` (Debian's, installed if missing) when it can be
//! had, else from a built-in keep-alive loop. Tenantry only: etcd has no
//! such server.

use std::time::{Duration, Instant};

use cluster_tests::{ClusterOptions, RegistryCluster};
use proto::v1;
use registry_client::WriteOptions;
use serde_json::json;

use crate::stats::Percentiles;

/// One keep-alive connection sending `request` until `deadline`; the
/// latency of each response.
async fn hammer(addr: String, request: String, deadline: Instant) -> anyhow::Result<Vec<Duration>> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut latencies = Vec::new();
    let mut line = String::new();
    while Instant::now() < deadline {
        let sent = Instant::now();
        writer.write_all(request.as_bytes()).await?;
        let mut length = 0usize;
        let mut status_ok = false;
        loop {
            line.clear();
            anyhow::ensure!(reader.read_line(&mut line).await? > 0, "connection closed");
            if line == "\r\n" {
                break;
            }
            if line.starts_with("HTTP/1.1 2") {
                status_ok = true;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse()?;
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).await?;
        anyhow::ensure!(status_ok, "a response was not 2xx");
        latencies.push(sent.elapsed());
    }
    Ok(latencies)
}

/// Debian's wrk.
const WRK: &str = "/usr/bin/wrk";

/// A wrk duration (`512.00us`, `1.20ms`, `1.01s`, `2.00m`) in milliseconds.
fn wrk_ms(text: &str) -> Option<f64> {
    let units = [("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60_000.0)];
    units.iter().find_map(|(unit, factor)| text.strip_suffix(unit)?.parse::<f64>().ok().map(|value| value * factor))
}

/// One request a route is loaded with.
struct Route {
    name: &'static str,
    path: &'static str,
    host: String,
    /// `Authorization` value, if any.
    bearer: Option<String>,
    /// A JSON body to POST, if any (else GET).
    post: Option<&'static str>,
}

impl Route {
    fn raw(&self) -> String {
        let auth = self.bearer.as_ref().map(|bearer| format!("Authorization: {bearer}\r\n")).unwrap_or_default();
        match self.post {
            Some(body) => format!(
                "POST {} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                self.path,
                self.host,
                body.len()
            ),
            None => format!("GET {} HTTP/1.1\r\nHost: {}\r\n{auth}\r\n", self.path, self.host),
        }
    }
}

/// One wrk run (one thread: the other core is the server's); a POST goes
/// through a wrk script written to `dir`.
fn with_wrk(
    addr: &str,
    route: &Route,
    dir: &std::path::Path,
    connections: usize,
    seconds: u64,
) -> anyhow::Result<ApiRow> {
    let mut command = std::process::Command::new(WRK);
    command
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency"])
        .args(["-H", &format!("Host: {}", route.host)]);
    if let Some(bearer) = &route.bearer {
        command.args(["-H", &format!("Authorization: {bearer}")]);
    }
    if let Some(body) = route.post {
        let script = dir.join("post.lua");
        std::fs::write(
            &script,
            format!(
                "wrk.method = \"POST\"\nwrk.body = '{body}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
            ),
        )?;
        command.arg("-s").arg(script);
    }
    let output = command.arg(format!("http://{addr}{}", route.path)).output()?;
    let route = route.name;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(output.status.success(), "wrk failed: {text}{}", String::from_utf8_lossy(&output.stderr));
    anyhow::ensure!(!text.contains("Non-2xx"), "wrk saw errors: {text}");
    let field =
        |prefix: &str| text.lines().find_map(|line| line.trim().strip_prefix(prefix).map(str::trim).map(str::to_owned));
    let per_second: f64 =
        field("Requests/sec:").and_then(|value| value.parse().ok()).ok_or_else(|| anyhow::anyhow!("{text}"))?;
    let requests: usize = text
        .lines()
        .find_map(|line| line.trim().split_once(" requests in ").and_then(|(count, _)| count.parse().ok()))
        .unwrap_or_default();
    let percentile = |name: &str| field(name).and_then(|value| wrk_ms(&value)).unwrap_or_default();
    let max = field("Latency").and_then(|line| line.split_whitespace().nth(2).and_then(wrk_ms)).unwrap_or_default();
    let latency = Percentiles { p50: percentile("50%"), p90: percentile("90%"), p99: percentile("99%"), max };
    Ok(ApiRow { route, requests, per_second, latency })
}

struct ApiRow {
    route: &'static str,
    requests: usize,
    per_second: f64,
    latency: Percentiles,
}

async fn load(addr: &str, route: &Route, connections: usize, seconds: u64) -> anyhow::Result<ApiRow> {
    let (request, route) = (route.raw(), route.name);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let workers: Vec<_> =
        (0..connections).map(|_| tokio::spawn(hammer(addr.to_owned(), request.clone(), deadline))).collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(ApiRow {
        route,
        requests: latencies.len(),
        per_second: latencies.len() as f64 / elapsed,
        latency: Percentiles::of(latencies),
    })
}

/// Items pre-created for the list route.
const LISTED_ITEMS: usize = 100;

pub(crate) async fn run(connections: usize, seconds: u64, json_output: bool) -> anyhow::Result<()> {
    let cluster = RegistryCluster::start(ClusterOptions::new("bench-api")).await?;
    let database = cluster_tests::postgres::Postgres::start(&cluster.dir, "shard").await?;
    let shard = database.create_shard("shard_us_east").await?;
    let theme = r##"{"colors":{"primary":"#0b5fff"},"texts":{"productName":"Acme Portal"}}"##;
    let hash = api_node::auth::hash_password("bench", b"bench", api_node::auth::PBKDF2_ITERATIONS_MIN);
    let config =
        format!(r#"{{"public":{{"n":1}},"placement":{{"homeRegion":"us-east"}},"demoUsers":{{"bench":"{hash}"}}}}"#);
    let documents =
        v1::Documents { theme_json: Some(theme.to_owned()), config_json: Some(config), ..Default::default() };
    cluster.client().create_tenant("acme", documents, &WriteOptions::default()).await?;
    let node = cluster_tests::api_nodes::start_on_postgres(&cluster, 1, &[shard], &database).await?;
    let host = format!("acme.localhost:{}", node.addr.rsplit(':').next().unwrap_or_default());
    let route = |name, path, bearer: Option<&String>, post| Route {
        name,
        path,
        host: host.clone(),
        bearer: bearer.cloned(),
        post,
    };
    let bare = Route { host: "localhost".to_owned(), ..route("bare /healthz", "/healthz", None, None) };
    let config = route("tenant /config/acme.json", "/config/acme.json", None, None);
    // Wait until the api-node holds acme, log in, and give the list its items.
    let login = cluster_tests::wait::until("the api-node to serve acme", Duration::from_secs(20), || async {
        let body = r#"{"user":"bench","password":"bench"}"#;
        let response = cluster_tests::http::post_json(&node.addr, "/api/login", &[("Host", &host)], body).await.ok()?;
        (response.status == 200).then_some(response)
    })
    .await?;
    let login: serde_json::Value = serde_json::from_slice(&login.body)?;
    let bearer = format!("Bearer {}", login["token"].as_str().unwrap_or_default());
    let create = route("items create (PostgreSQL)", "/api/items", Some(&bearer), Some(r#"{"title":"a bench item"}"#));
    let list = route("items list 100 (PostgreSQL)", "/api/items", Some(&bearer), None);
    for _ in 0..LISTED_ITEMS {
        let headers =
            [("Host", host.as_str()), ("Authorization", bearer.as_str()), ("Content-Type", "application/json")];
        let created =
            cluster_tests::http::post_json(&node.addr, "/api/items", &headers, r#"{"title":"listed"}"#).await?;
        anyhow::ensure!(created.status == 201, "seeding items: {} {}", created.status, created.text());
    }
    load(&node.addr, &config, 1, 1).await?;
    let wrk = cluster_tests::debian::ensure(WRK, "wrk").ok();
    // The list first, while it holds exactly its items; then the creates.
    let routes = [&bare, &config, &list, &create];
    let mut rows = Vec::new();
    for route in routes {
        rows.push(match &wrk {
            Some(_) => with_wrk(&node.addr, route, &cluster.dir, connections, seconds)?,
            None => load(&node.addr, route, connections, seconds).await?,
        });
    }
    let generator = if wrk.is_some() { "wrk -t1" } else { "built-in loop" };
    let ratio = rows[1].per_second / rows[0].per_second;
    if json_output {
        let rows: Vec<_> = rows
            .iter()
            .map(|row| json!({ "route": row.route, "requests": row.requests, "per_second": row.per_second, "p50_ms": row.latency.p50, "p99_ms": row.latency.p99, "max_ms": row.latency.max }))
            .collect();
        println!(
            "{}",
            json!({ "suite": "api", "load": generator, "connections": connections, "rows": rows, "tenant_over_bare": ratio })
        );
    } else {
        println!(
            "api: one api-node on loopback, its shard a local PostgreSQL, load from {generator}, {connections} keep-alive connections, {seconds} s per route; times in ms"
        );
        println!("{:<30} {:>10} {:>10} {:>24}", "route", "requests", "req/s", "p50 / p99 / max");
        for row in &rows {
            println!(
                "{:<30} {:>10} {:>10.0} {:>24}",
                row.route,
                row.requests,
                row.per_second,
                format!("{:.2} / {:.2} / {:.2}", row.latency.p50, row.latency.p99, row.latency.max)
            );
        }
        println!("tenant route / bare route: {ratio:.3}");
    }
    drop(node);
    cluster.passed();
    Ok(())
}
