//! `agent`: the Tenantry sidecar. Follows the registry, serves the local
//! HTTP API and, with `--materialize`, keeps a directory of runtime config
//! files for a web server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

mod http;
mod materialize;

use agent::{Agent, AgentConfig, Kind};
use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, ValueEnum)]
enum KindArg {
    Api,
    Frontend,
}

#[derive(Parser)]
#[command(name = "agent", version, about = "The Tenantry agent sidecar.")]
struct Args {
    /// How logs are written to stderr: text, or one JSON object per line.
    #[arg(long, env = "TENANTRY_LOG_FORMAT", default_value = "text")]
    log_format: plumbing::LogFormat,
    /// Where traces go (OTLP/gRPC).
    #[command(flatten)]
    otlp: trust::cli::OtlpArgs,
    /// Stable id of this agent, e.g. web-1@eu-west [default: from the certificate].
    #[arg(long)]
    agent_id: Option<String>,
    /// The region this node serves [default: from the certificate].
    #[arg(long)]
    region: Option<String>,
    /// api: public and private bundles; frontend: public bundles only
    /// [default: from the certificate, else api].
    #[arg(long, value_enum)]
    kind: Option<KindArg>,
    /// Registry gRPC endpoints, this region's first, comma separated.
    #[arg(long, env = "TENANTRY_ENDPOINTS", value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    /// Where the last-known-good copy lives.
    #[arg(long)]
    data_dir: PathBuf,
    /// Local HTTP API: HOST:PORT (keep it on loopback), or unix:PATH for a
    /// socket only this user may connect to (mode 0600).
    #[arg(long, default_value = "127.0.0.1:7301", value_parser = parse_local_api)]
    http: LocalApi,
    /// Keep DIR/config/{tenant}.json and DIR/manifest.json up to date.
    #[arg(long)]
    materialize: Option<PathBuf>,
    /// Domain under which {tenant}.{domain} hosts resolve (repeat).
    #[arg(long = "base-domain", default_value = "localhost")]
    base_domains: Vec<String>,
    /// Largest bundle accepted, in bytes; bigger ones are refused (NACK).
    #[arg(long, default_value_t = agent::limits::BUNDLE_BYTES_MAX_DEFAULT)]
    bundle_bytes_max: usize,
    /// The cluster this agent follows: a registry of another cluster (e.g.
    /// one restored from a backup) is refused instead of followed
    /// [default: follow the cluster the registry names].
    #[arg(long, env = "TENANTRY_CLUSTER_ID")]
    cluster_id: Option<String>,
    #[command(flatten)]
    tls: trust::cli::TlsArgs,
}

/// Where the sidecar's local API listens.
#[derive(Clone, Debug)]
enum LocalApi {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

fn parse_local_api(value: &str) -> Result<LocalApi, String> {
    match value.strip_prefix("unix:") {
        Some("") => Err("unix:PATH: the path is empty".to_owned()),
        Some(path) => Ok(LocalApi::Unix(PathBuf::from(path))),
        None => {
            value.parse().map(LocalApi::Tcp).map_err(|error| format!("`{value}`: not HOST:PORT or unix:PATH ({error})"))
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let tls = args.tls.load("agent")?;
    // Flags not given come from the certificate; given ones must agree with it
    // (Agent::start checks), since the registry believes only the certificate.
    let (cert_id, cert_kind, cert_region) = match tls.as_ref().map(|tls| tls.identity()) {
        Some(trust::Identity::Agent { id, kind, region }) => (Some(id), Some(kind), Some(region.to_string())),
        _ => (None, None, None),
    };
    let kind = match (args.kind, cert_kind) {
        (Some(KindArg::Api), _) | (None, None) => Kind::Api,
        (Some(KindArg::Frontend), _) => Kind::Frontend,
        (None, Some(kind)) => Kind::from(kind),
    };
    let config = AgentConfig {
        agent_id: args
            .agent_id
            .or(cert_id)
            .ok_or_else(|| anyhow::anyhow!("--agent-id: required without a certificate"))?,
        region: args
            .region
            .or(cert_region)
            .ok_or_else(|| anyhow::anyhow!("--region: required without a certificate"))?,
        kind,
        endpoints: args.endpoints,
        data_dir: Some(args.data_dir),
        base_domains: args.base_domains,
        bundle_bytes_max: args.bundle_bytes_max,
        cluster_id: args.cluster_id,
        tls,
    };
    if let Some(tls) = &config.tls {
        tls.reload_on_sighup()?;
    }
    let agent = Arc::new(Agent::start(config).await?);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let materializer = args.materialize.map(|dir| tokio::spawn(materialize::run(agent.clone(), dir, stopped.clone())));
    let listener = match &args.http {
        LocalApi::Tcp(addr) => {
            if !addr.ip().is_loopback() {
                tracing::warn!(http = %addr, "the sidecar's local API is unauthenticated: keep it on loopback");
            }
            trust::net::Listener::Tcp(tokio::net::TcpListener::bind(addr).await?)
        }
        LocalApi::Unix(path) => trust::net::Listener::Unix(trust::net::bind_unix(path)?),
    };
    tracing::info!(http = ?args.http, "agent sidecar serving");
    let options = trust::ListenOptions {
        tls: None,
        client_cert_required: false,
        connections_max: agent::limits::SIDECAR_CONNECTIONS_MAX,
    };
    let router = http::router(agent.clone());
    trust::net::serve_http(listener, options, router, plumbing::termination()).await;
    let _ = stop.send(true);
    if let Some(materializer) = materializer {
        materializer.await??;
    }
    match Arc::try_unwrap(agent) {
        Ok(agent) => agent.shutdown().await,
        Err(_) => tracing::warn!("agent still referenced at shutdown; not flushing"),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let _telemetry = match args.otlp.init_logging("agent", false, "RUST_LOG", "info,h2=warn", args.log_format) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("agent: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("agent: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_api_is_an_address_or_a_unix_socket() {
        assert!(matches!(parse_local_api("127.0.0.1:7301"), Ok(LocalApi::Tcp(addr)) if addr.port() == 7301));
        assert!(
            matches!(parse_local_api("unix:/run/a.sock"), Ok(LocalApi::Unix(path)) if path == std::path::Path::new("/run/a.sock"))
        );
        assert!(parse_local_api("unix:").unwrap_err().contains("empty"));
        assert!(parse_local_api("localhost").unwrap_err().contains("HOST:PORT or unix:PATH"));
    }
}
