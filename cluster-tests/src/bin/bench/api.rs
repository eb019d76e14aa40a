//! `api`: requests per second and latency of an api-node's tenant route
//! (`/config/{tenant}.json`: Host resolution, view lookup, region policy,
//! ETag, headers) against a bare route on the same server (`/healthz`). The
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
            if line.starts_with("HTTP/1.1 200") {
                status_ok = true;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse()?;
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).await?;
        anyhow::ensure!(status_ok, "a response was not 200");
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

/// One wrk run (one thread: the other core is the server's).
fn with_wrk(
    addr: &str,
    route: &'static str,
    host: &str,
    path: &str,
    connections: usize,
    seconds: u64,
) -> anyhow::Result<ApiRow> {
    let output = std::process::Command::new(WRK)
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency"])
        .args(["-H", &format!("Host: {host}")])
        .arg(format!("http://{addr}{path}"))
        .output()?;
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

async fn load(
    addr: &str,
    route: &'static str,
    request: String,
    connections: usize,
    seconds: u64,
) -> anyhow::Result<ApiRow> {
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

pub(crate) async fn run(connections: usize, seconds: u64, json_output: bool) -> anyhow::Result<()> {
    let cluster = RegistryCluster::start(ClusterOptions::new("bench-api")).await?;
    let theme = r##"{"colors":{"primary":"#0b5fff"},"texts":{"productName":"Acme Portal"}}"##;
    let documents = v1::Documents { theme_json: Some(theme.to_owned()), ..Default::default() };
    cluster.client().create_tenant("acme", documents, &WriteOptions::default()).await?;
    let node = cluster_tests::api_nodes::start(&cluster, 1).await?;
    let tenant = format!(
        "GET /config/acme.json HTTP/1.1\r\nHost: acme.localhost:{}\r\n\r\n",
        node.addr.rsplit(':').next().unwrap_or_default()
    );
    let bare = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n".to_owned();
    // Warm up both routes (and wait until the api-node holds acme).
    cluster_tests::wait::until("the api-node to serve acme", Duration::from_secs(20), || async {
        load(&node.addr, "warm-up", tenant.clone(), 1, 1).await.ok().filter(|row| row.requests > 0)
    })
    .await?;
    let wrk = cluster_tests::debian::ensure(WRK, "wrk").ok();
    let host = format!("acme.localhost:{}", node.addr.rsplit(':').next().unwrap_or_default());
    let rows = match &wrk {
        Some(_) => vec![
            with_wrk(&node.addr, "bare /healthz", "localhost", "/healthz", connections, seconds)?,
            with_wrk(&node.addr, "tenant /config/acme.json", &host, "/config/acme.json", connections, seconds)?,
        ],
        None => vec![
            load(&node.addr, "bare /healthz", bare, connections, seconds).await?,
            load(&node.addr, "tenant /config/acme.json", tenant, connections, seconds).await?,
        ],
    };
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
            "api: one api-node on loopback, load from {generator}, {connections} keep-alive connections, {seconds} s per route; times in ms"
        );
        println!("{:<26} {:>10} {:>10} {:>24}", "route", "requests", "req/s", "p50 / p99 / max");
        for row in &rows {
            println!(
                "{:<26} {:>10} {:>10.0} {:>24}",
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
