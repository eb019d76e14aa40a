//! `api-node`: the reference Tenantry API instance. Embeds an agent (API
//! scope) and serves tenants by Host.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agent::{Agent, AgentConfig, Kind};
use api_node::limits::{CONCURRENT_REQUESTS_MAX, REQUEST_BODY_BYTES_MAX, SHUTDOWN_GRACE_MS, STALENESS_MS_MAX_DEFAULT};
use api_node::resolve::{HostRules, IpNet};
use api_node::server::{router, Metrics, Node};
use clap::Parser;

#[derive(Parser)]
#[command(name = "api-node", version, about = "The reference Tenantry API instance.")]
struct Args {
    /// The region this node serves.
    #[arg(long)]
    region: String,
    /// Registry gRPC endpoints, this region's first, comma separated.
    #[arg(long, env = "TENANTRY_ENDPOINTS", value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    /// Where the embedded agent keeps its last-known-good copy.
    #[arg(long)]
    data_dir: PathBuf,
    /// HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// Domain under which {tenant}.{domain} hosts resolve (repeat); `localhost`
    /// is the dev mode ({tenant}.localhost:PORT).
    #[arg(long = "base-domain", default_value = "localhost")]
    base_domains: Vec<String>,
    /// A proxy (address or CIDR) whose X-Forwarded-Host is believed (repeat).
    #[arg(long = "trusted-proxy")]
    trusted_proxies: Vec<IpNet>,
    /// The staleness bound S: older views make the node read-only.
    #[arg(long, default_value_t = STALENESS_MS_MAX_DEFAULT)]
    staleness_max_ms: u64,
    /// The embedded agent's id [default: api@REGION:PORT].
    #[arg(long)]
    agent_id: Option<String>,
}

async fn run(args: Args) -> anyhow::Result<()> {
    let agent_id = args.agent_id.unwrap_or_else(|| format!("api@{}:{}", args.region, args.http.port()));
    let agent = Arc::new(
        Agent::start(AgentConfig {
            agent_id,
            region: args.region.clone(),
            kind: Kind::Api,
            endpoints: args.endpoints,
            data_dir: Some(args.data_dir),
            base_domains: args.base_domains.clone(),
            bundle_bytes_max: agent::limits::BUNDLE_BYTES_MAX_DEFAULT,
        })
        .await?,
    );
    let node = Arc::new(Node {
        agent: agent.clone(),
        region: args.region,
        rules: HostRules { base_domains: args.base_domains, trusted_proxies: args.trusted_proxies },
        staleness_max: Duration::from_millis(args.staleness_max_ms),
        metrics: Metrics::default(),
    });
    let app = router(node.clone())
        .layer(axum::extract::DefaultBodyLimit::max(REQUEST_BODY_BYTES_MAX))
        .layer(tower::limit::ConcurrencyLimitLayer::new(CONCURRENT_REQUESTS_MAX))
        .into_make_service_with_connect_info::<SocketAddr>();
    let listener = tokio::net::TcpListener::bind(args.http).await?;
    tracing::info!(http = %args.http, "api-node serving");
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    agent::sidecar::termination().await;
    let _ = stopping.send(());
    // In-flight requests get a deadline, then the node exits anyway.
    if tokio::time::timeout(Duration::from_millis(SHUTDOWN_GRACE_MS), server).await.is_err() {
        tracing::warn!("in-flight requests did not finish in time");
    }
    drop(node);
    if let Ok(agent) = Arc::try_unwrap(agent) {
        agent.shutdown().await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sled=warn,h2=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("api-node: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
