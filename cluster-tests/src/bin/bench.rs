//! `bench`: Tenantry's capacity figures, as tables (JSON with `--json`).
//! A program, not a test: it asserts nothing about speed.
//!
//! `cargo run --release -p cluster-tests --bin bench -- fanout` starts a
//! three-node registry on loopback (real fsync), connects agents (one gRPC
//! connection each, spread over the three regions), writes at a fixed rate,
//! and measures how long each change takes to reach the agents.
//!
//! `… --bin bench -- api` compares an api-node's tenant route with a bare
//! route on the same server.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use agent::Kind;
use clap::{Parser, Subcommand};
use cluster_tests::{agents, ClusterOptions, RegistryCluster};
use proto::v1;
use registry::client::WriteOptions;
use serde_json::json;

#[derive(Parser)]
#[command(name = "bench", about = "Tenantry benchmarks: programs that print tables.")]
struct Args {
    #[command(subcommand)]
    suite: Suite,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Suite {
    /// Commit -> every agent applied, for several fleet sizes.
    Fanout {
        /// Fleet sizes to measure, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
        agents: Vec<usize>,
        /// Writes per second.
        #[arg(long, default_value_t = 100)]
        rate: u64,
        /// Seconds of writing per fleet size.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// An api-node's tenant route (Host resolution, config lookup, headers)
    /// against a bare route on the same server.
    Api {
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Seconds per route.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Percentiles {
    p50: f64,
    p99: f64,
    max: f64,
}

fn percentiles(mut samples: Vec<Duration>) -> Percentiles {
    samples.sort_unstable();
    let at = |quantile: f64| {
        let index =
            ((samples.len() as f64 * quantile).ceil() as usize).saturating_sub(1).min(samples.len().saturating_sub(1));
        samples.get(index).map_or(0.0, |sample| sample.as_secs_f64() * 1000.0)
    };
    Percentiles { p50: at(0.50), p99: at(0.99), max: at(1.0) }
}

struct FanoutRow {
    agents: usize,
    writes: usize,
    send_to_each: Percentiles,
    send_to_last: Percentiles,
    commit_to_last: Percentiles,
    missed: usize,
}

/// Records, per agent, when it first reached each revision.
fn record_arrivals(agent: &agent::Agent) -> tokio::task::JoinHandle<BTreeMap<u64, Instant>> {
    let mut changed = agent.changed();
    tokio::spawn(async move {
        let mut arrivals = BTreeMap::new();
        let mut last = *changed.borrow();
        while changed.changed().await.is_ok() {
            let now = Instant::now();
            let revision = *changed.borrow();
            // A coalesced jump means every revision in between arrived now.
            for between in last + 1..=revision {
                arrivals.insert(between, now);
            }
            last = last.max(revision);
        }
        arrivals
    })
}

async fn fanout(cluster: &RegistryCluster, fleet: usize, rate: u64, seconds: u64) -> anyhow::Result<FanoutRow> {
    let mut followers = Vec::with_capacity(fleet);
    for n in 0..fleet {
        let home = (n % 3) as u64 + 1;
        followers.push(agents::start(cluster, &format!("bench-{fleet}-{n:04}"), home, Kind::Api, None).await?);
    }
    let (_, revision) = cluster.tenants().await?;
    for agent in &followers {
        agents::wait_for(agent, revision).await?;
    }
    let recorders: Vec<_> = followers.iter().map(record_arrivals).collect();

    let client = cluster.client();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut ticker = tokio::time::interval(interval);
    let mut writes = Vec::new();
    let document =
        v1::Documents { config_json: Some(format!(r#"{{"pad":"{}"}}"#, "x".repeat(900))), ..Default::default() };
    for n in 0..rate * seconds {
        ticker.tick().await;
        let sent = Instant::now();
        let written =
            client.update_tenant(&format!("bench-{}", n % 100), document.clone(), &WriteOptions::default()).await?;
        writes.push((written.revision, sent, Instant::now()));
    }
    let last_revision = writes.last().map_or(revision, |(revision, _, _)| *revision);
    for agent in &followers {
        agents::wait_for(agent, last_revision).await?;
    }
    let mut arrivals = Vec::new();
    for (agent, recorder) in followers.into_iter().zip(recorders) {
        agent.shutdown().await;
        arrivals.push(recorder.await?);
    }

    let (mut to_each, mut to_last, mut commit_to_last, mut missed) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for (revision, sent, committed) in &writes {
        let mut last_arrival = *sent;
        for agent in &arrivals {
            match agent.get(revision) {
                Some(arrived) => {
                    to_each.push(arrived.saturating_duration_since(*sent));
                    last_arrival = last_arrival.max(*arrived);
                }
                None => missed += 1,
            }
        }
        to_last.push(last_arrival.saturating_duration_since(*sent));
        commit_to_last.push(last_arrival.saturating_duration_since(*committed));
    }
    Ok(FanoutRow {
        agents: fleet,
        writes: writes.len(),
        send_to_each: percentiles(to_each),
        send_to_last: percentiles(to_last),
        commit_to_last: percentiles(commit_to_last),
        missed,
    })
}

fn print_fanout(rows: &[FanoutRow], rate: u64, json_output: bool) {
    if json_output {
        let rows: Vec<_> = rows
            .iter()
            .map(|row| {
                let p = |p: Percentiles| json!({ "p50_ms": p.p50, "p99_ms": p.p99, "max_ms": p.max });
                json!({
                    "agents": row.agents, "writes": row.writes, "rate_per_s": rate,
                    "send_to_each": p(row.send_to_each), "send_to_last": p(row.send_to_last),
                    "commit_to_last": p(row.commit_to_last), "missed": row.missed,
                })
            })
            .collect();
        println!("{}", json!({ "suite": "fanout", "target": "tenantry", "rows": rows }));
        return;
    }
    println!("fanout: tenantry, 3 registry nodes on loopback, writes of ~1 KiB at {rate}/s; times in ms");
    println!(
        "{:>7} {:>7} | {:>22} | {:>22} | {:>22} | {:>6}",
        "agents", "writes", "send→each p50/p99/max", "send→last p50/p99/max", "commit→last p50/p99/max", "missed"
    );
    let cell = |p: Percentiles| format!("{:.1} / {:.1} / {:.1}", p.p50, p.p99, p.max);
    for row in rows {
        println!(
            "{:>7} {:>7} | {:>22} | {:>22} | {:>22} | {:>6}",
            row.agents,
            row.writes,
            cell(row.send_to_each),
            cell(row.send_to_last),
            cell(row.commit_to_last),
            row.missed
        );
    }
}

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
        latency: percentiles(latencies),
    })
}

async fn api(connections: usize, seconds: u64, json_output: bool) -> anyhow::Result<()> {
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
    let rows = vec![
        load(&node.addr, "bare /healthz", bare, connections, seconds).await?,
        load(&node.addr, "tenant /config/acme.json", tenant, connections, seconds).await?,
    ];
    let ratio = rows[1].per_second / rows[0].per_second;
    if json_output {
        let rows: Vec<_> = rows
            .iter()
            .map(|row| json!({ "route": row.route, "requests": row.requests, "per_second": row.per_second, "p50_ms": row.latency.p50, "p99_ms": row.latency.p99, "max_ms": row.latency.max }))
            .collect();
        println!("{}", json!({ "suite": "api", "connections": connections, "rows": rows, "tenant_over_bare": ratio }));
    } else {
        println!(
            "api: one api-node on loopback, {connections} keep-alive connections, {seconds} s per route; times in ms"
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.suite {
        Suite::Fanout { agents: sizes, rate, seconds } => {
            anyhow::ensure!(rate > 0 && seconds > 0, "--rate and --seconds must be > 0");
            let options = ClusterOptions {
                heartbeat_ms: 250,
                election_timeout_ms_min: 1500,
                election_timeout_ms_max: 3000,
                ..ClusterOptions::new("bench-fanout")
            };
            let cluster = RegistryCluster::start(options).await?;
            let client = cluster.client();
            for n in 0..100 {
                client.create_tenant(&format!("bench-{n}"), v1::Documents::default(), &WriteOptions::default()).await?;
            }
            let mut rows = Vec::new();
            for fleet in sizes {
                rows.push(fanout(&cluster, fleet, rate, seconds).await?);
            }
            print_fanout(&rows, rate, args.json);
            cluster.passed();
        }
        Suite::Api { connections, seconds } => {
            anyhow::ensure!(connections > 0 && seconds > 0, "--connections and --seconds must be > 0");
            api(connections, seconds, args.json).await?;
        }
    }
    Ok(())
}
