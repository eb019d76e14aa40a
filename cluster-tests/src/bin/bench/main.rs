//! `bench`: the capacity figures operators size a fleet by, as tables (JSON
//! with `--json`), for Tenantry and, side by side, for etcd 3.4 with
//! watches. A program, not a test: it asserts nothing about speed.
//!
//! `cargo run --release -p cluster-tests --bin bench -- SUITE [--target tenantry|etcd] [--json]`
//! starts what it measures (three members on loopback with real fsync),
//! runs the workload, prints a table and stops everything it started.
//! BENCHMARKS.md has the method and a side-by-side run.
#![allow(clippy::print_stdout)]

mod api;
mod catchup;
mod fanout;
mod memory;
mod restart;
mod rolling;
mod stats;
mod target;
mod writes;

use clap::{Parser, Subcommand};

use target::Target;

#[derive(Parser)]
#[command(name = "bench", about = "Tenantry benchmarks (and etcd side by side): programs that print tables.")]
struct Args {
    #[command(subcommand)]
    suite: Suite,
    /// The system to measure.
    #[arg(long, global = true, value_enum, default_value_t = Target::Tenantry)]
    target: Target,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// Run Tenantry in plaintext, to measure what mutual TLS costs.
    #[arg(long, global = true)]
    insecure: bool,
    /// Trace every Tenantry write over OTLP to a receiver in this process
    /// (the bench starts each trace; the nodes export their spans of it), to
    /// measure what tracing costs.
    #[arg(long, global = true)]
    otlp: bool,
}

#[derive(Subcommand)]
enum Suite {
    /// One client, sequential ~1 KiB writes: p50/p90/p99/max.
    PutLatency {
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Concurrent clients for a fixed time: writes/s and p99.
    PutThroughput {
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// A writer at a fixed rate; send -> each subscriber and -> the last one.
    Fanout {
        /// Subscriber counts, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
        subscribers: Vec<usize>,
        /// Writes per second.
        #[arg(long, default_value_t = 100)]
        rate: u64,
        /// Seconds of writing per subscriber count.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// A new subscriber's cold start with N tenants (from the registry, and from local disk).
    Catchup {
        #[arg(long, default_value_t = 100_000)]
        tenants: usize,
    },
    /// An api-node's tenant route against a bare route on the same server (Tenantry only).
    Api {
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Seconds per route.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// A steady writer while each node is restarted in turn: the write pause per restart (Tenantry only).
    RollingRestart {
        /// Writes per second.
        #[arg(long, default_value_t = 200)]
        rate: u64,
    },
    /// A node holding N tenants of ~4 KiB killed and started again: until it is ready and serving (Tenantry only).
    Restart {
        #[arg(long, default_value_t = 100_000)]
        tenants: usize,
    },
    /// Members' resident memory with N tenants of ~4 KiB.
    Memory {
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        tenants: Vec<usize>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (target, json) = (args.target, args.json);
    target::set_insecure(args.insecure);
    if target == Target::Tenantry && !json {
        println!("tenantry over {}", target::transport());
    }
    let collector = if args.otlp { Some(cluster_tests::otlp::Collector::start().await?) } else { None };
    let _telemetry = match &collector {
        Some(collector) => {
            target::set_otlp(&collector.endpoint);
            let otlp = trust::cli::OtlpArgs { otlp_endpoint: Some(collector.endpoint.clone()), otlp_ca: None };
            Some(
                otlp.init_logging("bench", true, "BENCH_LOG", "warn", plumbing::LogFormat::Text)
                    .map_err(anyhow::Error::msg)?,
            )
        }
        None => None,
    };
    run(args.suite, target, json).await?;
    if let Some(collector) = collector {
        eprintln!("otlp: {} spans received", collector.spans().len());
    }
    Ok(())
}

async fn run(suite: Suite, target: Target, json: bool) -> anyhow::Result<()> {
    match suite {
        Suite::PutLatency { seconds } => {
            anyhow::ensure!(seconds > 0, "--seconds must be > 0");
            writes::latency(target, seconds, json).await
        }
        Suite::PutThroughput { clients, seconds } => {
            anyhow::ensure!(clients > 0 && seconds > 0, "--clients and --seconds must be > 0");
            writes::throughput(target, clients, seconds, json).await
        }
        Suite::Fanout { subscribers, rate, seconds } => {
            anyhow::ensure!(rate > 0 && seconds > 0, "--rate and --seconds must be > 0");
            anyhow::ensure!(subscribers.iter().all(|count| *count > 0), "--subscribers must be > 0");
            fanout::run(target, &subscribers, rate, seconds, json).await
        }
        Suite::Catchup { tenants } => {
            anyhow::ensure!(tenants > 0, "--tenants must be > 0");
            catchup::run(target, tenants, json).await
        }
        Suite::Api { connections, seconds } => {
            anyhow::ensure!(target == Target::Tenantry, "api: etcd has no api-node; run it with --target tenantry");
            anyhow::ensure!(connections > 0 && seconds > 0, "--connections and --seconds must be > 0");
            api::run(connections, seconds, json).await
        }
        Suite::RollingRestart { rate } => {
            anyhow::ensure!(
                target == Target::Tenantry,
                "rolling-restart: Tenantry only; run it with --target tenantry"
            );
            anyhow::ensure!(rate > 0, "--rate must be > 0");
            rolling::run(rate, json).await
        }
        Suite::Restart { tenants } => {
            anyhow::ensure!(target == Target::Tenantry, "restart: Tenantry only; run it with --target tenantry");
            anyhow::ensure!(tenants > 0, "--tenants must be > 0");
            restart::run(tenants, json).await
        }
        Suite::Memory { tenants } => {
            anyhow::ensure!(!tenants.is_empty() && tenants.iter().all(|count| *count > 0), "--tenants must be > 0");
            memory::run(target, &tenants, json).await
        }
    }
}
