//! `api-node`: the reference Tenantry API instance. Embeds an agent (API
//! scope) and serves tenants by Host.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agent::{Agent, AgentConfig, Kind};
use api_node::auth::SessionKeys;
use api_node::limits::{
    CONCURRENT_REQUESTS_MAX, CONFIG_EVENT_STREAMS_MAX, CONNECTIONS_MAX, REQUEST_BODY_BYTES_MAX,
    SESSION_KEYS_PREVIOUS_MAX, SHARD_CONNECTIONS_MAX_DEFAULT, SHARD_HEALTH_MS, SHUTDOWN_GRACE_MS,
    STALENESS_MS_MAX_DEFAULT,
};
use api_node::login::Logins;
use api_node::node::{Metrics, Node};
use api_node::resolve::{HostRules, IpNet};
use api_node::server::router;
use api_node::store::{ShardOptions, Shards};
use clap::Parser;

/// `api-node migrate`: applies the schema steps a PostgreSQL shard lacks
/// (connecting as the schema's owner), then exits. Safe to run again, and
/// from several hosts at once.
#[derive(Parser)]
#[command(name = "api-node migrate", version)]
struct MigrateArgs {
    /// How logs are written to stderr: text, or one JSON object per line.
    #[arg(long, env = "TENANTRY_LOG_FORMAT", default_value = "text")]
    log_format: plumbing::LogFormat,
    /// The shard, as `regctl shard add` names it: postgres://OWNER@HOST:PORT/DB.
    #[arg(long)]
    endpoint: String,
    /// The libpq passfile [default: PGPASSFILE, else ~/.pgpass].
    #[arg(long, value_name = "FILE")]
    shard_passfile: Option<PathBuf>,
    /// The CA (PEM) the database's server certificate chains to.
    #[arg(long, value_name = "FILE")]
    shard_ca: Option<PathBuf>,
    /// A role the api-nodes connect as, granted what they need (repeat).
    /// It must not be a superuser or BYPASSRLS: row-level security guards it.
    #[arg(long = "grant", value_name = "ROLE")]
    grant_to: Vec<String>,
}

#[derive(Parser)]
#[command(
    name = "api-node",
    version,
    about = "The reference Tenantry API instance.",
    after_help = "Shard schemas: `api-node migrate --help`."
)]
struct Args {
    /// How logs are written to stderr: text, or one JSON object per line.
    #[arg(long, env = "TENANTRY_LOG_FORMAT", default_value = "text")]
    log_format: plumbing::LogFormat,
    /// Where traces go (OTLP/gRPC).
    #[command(flatten)]
    otlp: trust::cli::OtlpArgs,
    /// The region this node serves.
    #[arg(long)]
    region: String,
    /// Registry gRPC endpoints, this region's first, comma separated.
    #[arg(long, env = "TENANTRY_ENDPOINTS", value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    /// Where the embedded agent's last-known-good copy (`agent/`) lives, and
    /// embedded development shards (`shards/`), if any.
    #[arg(long)]
    data_dir: PathBuf,
    /// A region's default shard: where its tenants live that the routing map
    /// names no shard for; `ENDPOINT` alone is this node's region's, and
    /// `REGION=ENDPOINT` another's (to serve reads of its tenants; repeat).
    /// In production a PostgreSQL database (postgres://USER@HOST:PORT/DB, the
    /// password in the passfile) [default for this region:
    /// embedded:default-REGION, a SQLite file in --data-dir, for development
    /// on one machine only].
    #[arg(long = "default-shard", value_name = "[REGION=]ENDPOINT")]
    default_shards: Vec<String>,
    /// The libpq passfile with the shards' passwords
    /// (host:port:database:user:password, mode 0600) [default: PGPASSFILE,
    /// else ~/.pgpass].
    #[arg(long, value_name = "FILE")]
    shard_passfile: Option<PathBuf>,
    /// Connections to each shard database at most.
    #[arg(long, default_value_t = SHARD_CONNECTIONS_MAX_DEFAULT)]
    shard_connections_max: usize,
    /// The CA (PEM) that shard databases' server certificates chain to:
    /// connections are then encrypted as each endpoint's sslmode says
    /// (prefer: when the server offers TLS) and the certificate must name
    /// the endpoint's host. Without it, connections are not encrypted.
    #[arg(long, value_name = "FILE")]
    shard_ca: Option<PathBuf>,
    /// The key that signs session tokens; every api-node of a fleet shares it.
    /// Created (32 random bytes, hex) if missing. A token names its key by an
    /// id derived from the key, so keys can rotate (see --session-key-previous).
    #[arg(long, value_name = "FILE")]
    session_key_file: PathBuf,
    /// A key that no longer signs tokens but whose tokens still verify until
    /// they expire (12 h); hex, as --session-key-file, never created (repeat,
    /// at most 4). To rotate without logging anyone out: give every node the
    /// new key here first; once all have it, swap (the new file as
    /// --session-key-file, the old one here); 12 h later drop the old one.
    #[arg(long = "session-key-previous", value_name = "FILE")]
    session_key_previous: Vec<PathBuf>,
    /// HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// The operator listener (the copy step of moves between shards); keep it
    /// off the public network. None: this node copies no rows.
    #[arg(long)]
    admin_http: Option<SocketAddr>,
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
    /// The embedded agent's id [default: the certificate's, else api-REGION-PORT].
    #[arg(long)]
    agent_id: Option<String>,
    /// The cluster the embedded agent follows: a registry of another cluster
    /// is refused [default: follow the cluster the registry names].
    #[arg(long, env = "TENANTRY_CLUSTER_ID")]
    cluster_id: Option<String>,
    /// The embedded agent's certificate (kind api); the operator port serves with it too.
    #[command(flatten)]
    tls: trust::cli::TlsArgs,
}

async fn run(args: Args) -> anyhow::Result<()> {
    let data_dir = args.data_dir.clone();
    anyhow::ensure!(
        (1..=1024).contains(&args.shard_connections_max),
        "--shard-connections-max: must be 1 to 1024, got {}",
        args.shard_connections_max
    );
    let default_shards = default_shards(&args.region, &args.default_shards)?;
    let tls = args.tls.load("api-node")?;
    let cert_id = match tls.as_ref().map(|tls| tls.identity()) {
        Some(trust::Identity::Agent { id, .. }) => Some(id),
        _ => None,
    };
    let agent_id = args.agent_id.or(cert_id).unwrap_or_else(|| format!("api-{}-{}", args.region, args.http.port()));
    let agent = Arc::new(
        Agent::start(AgentConfig {
            agent_id,
            region: args.region.clone(),
            kind: Kind::Api,
            endpoints: args.endpoints,
            data_dir: Some(data_dir.join("agent")),
            base_domains: args.base_domains.clone(),
            bundle_bytes_max: agent::limits::BUNDLE_BYTES_MAX_DEFAULT,
            cluster_id: args.cluster_id,
            tls: tls.clone(),
        })
        .await?,
    );
    let (stop, stop_receiver) = tokio::sync::watch::channel(false);
    let node = Arc::new(Node {
        agent: agent.clone(),
        region: args.region,
        rules: HostRules { base_domains: args.base_domains, trusted_proxies: args.trusted_proxies },
        staleness_max: Duration::from_millis(args.staleness_max_ms),
        metrics: Metrics::default(),
        shards: Shards::new(ShardOptions {
            embedded_dir: data_dir.join("shards"),
            passfile: args.shard_passfile.clone(),
            connections_max: args.shard_connections_max,
            tls: shard_tls(args.shard_ca.as_deref())?,
        }),
        default_shards,
        logins: Logins::new(session_keys(&args.session_key_file, &args.session_key_previous)?),
        event_streams: Arc::new(tokio::sync::Semaphore::new(CONFIG_EVENT_STREAMS_MAX)),
        stopping: stop_receiver,
    });
    tokio::spawn(check_shards(node.clone()));
    // One limit of requests in flight for the whole node (a Router's layer
    // is cloned per route; the global layer shares one semaphore).
    let app = router(node.clone())
        .layer(axum::extract::DefaultBodyLimit::max(REQUEST_BODY_BYTES_MAX))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(CONCURRENT_REQUESTS_MAX));
    let listener = tokio::net::TcpListener::bind(args.http).await?;
    let mut admin_server = None;
    if let Some(admin) = args.admin_http {
        let listener = tokio::net::TcpListener::bind(admin).await?;
        let app = api_node::admin::router(node.clone());
        tracing::info!(%admin, tls = tls.is_some(), "operator listener");
        // Mutual TLS with operator certificates; this node serves with its
        // agent certificate (issued with --host for this address).
        let options = trust::ListenOptions { tls: tls.clone(), client_cert_required: true, connections_max: 64 };
        admin_server = Some(tokio::spawn(trust::net::serve_http(listener, options, app, std::future::pending())));
    }
    if let Some(tls) = &tls {
        tls.reload_on_sighup()?;
    }
    tracing::info!(http = %args.http, "api-node serving");
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    // The public port is plain HTTP behind the load balancer, with the
    // listeners' connection cap and header-read timeout.
    let options = trust::ListenOptions { tls: None, client_cert_required: false, connections_max: CONNECTIONS_MAX };
    let server = tokio::spawn(trust::net::serve_http(listener, options, app, async {
        let _ = stopped.await;
    }));
    plumbing::termination().await;
    let _ = stopping.send(());
    let _ = stop.send(true);
    // In-flight requests get a deadline, then the node exits anyway.
    if tokio::time::timeout(Duration::from_millis(SHUTDOWN_GRACE_MS), server).await.is_err() {
        tracing::warn!("in-flight requests did not finish in time");
    }
    if let Some(admin_server) = admin_server {
        admin_server.abort();
        let _ = admin_server.await;
    }
    drop(node);
    if let Ok(agent) = Arc::try_unwrap(agent) {
        agent.shutdown().await;
    }
    Ok(())
}

/// At start: opens every shard this node may serve (the default one and
/// those its view names) and says in the log which it cannot use and why
/// (unreachable, a schema it does not understand, a role the row guard
/// would not hold). Requests for a tenant on such a shard get 503.
async fn check_shards(node: Arc<Node>) {
    let mut endpoints: Vec<String> = node.default_shards.values().cloned().collect();
    endpoints.extend(
        node.agent.view().tenants().flat_map(|entry| entry.record.shards.iter().map(|shard| shard.endpoint.clone())),
    );
    endpoints.sort();
    endpoints.dedup();
    for endpoint in endpoints {
        let within = Duration::from_millis(SHARD_HEALTH_MS);
        let checked = match node.shards.shard(&endpoint) {
            Ok(shard) => tokio::time::timeout(within, shard.ping()).await.unwrap_or_else(|_| {
                Err(api_node::store::ShardError::Unavailable { endpoint: endpoint.clone(), reason: "no answer".into() })
            }),
            Err(error) => Err(error),
        };
        match checked {
            Ok(()) => tracing::info!(%endpoint, "shard ready"),
            Err(error) => tracing::error!(%error, "shard not usable"),
        }
    }
}

/// `--default-shard` values by region: `REGION=ENDPOINT`, or `ENDPOINT` for
/// `region`, whose default is its embedded store.
fn default_shards(region: &str, given: &[String]) -> anyhow::Result<std::collections::HashMap<String, String>> {
    let mut shards = std::collections::HashMap::new();
    for value in given {
        let (shard_region, endpoint) = match value.split_once('=') {
            Some((named, endpoint)) if !named.contains(':') => {
                proto::Region::parse(named).map_err(|error| anyhow::anyhow!("--default-shard {value}: {error}"))?;
                (named, endpoint)
            }
            _ => (region, value.as_str()),
        };
        proto::ShardEndpoint::parse(endpoint).map_err(|error| anyhow::anyhow!("--default-shard {value}: {error}"))?;
        anyhow::ensure!(
            shards.insert(shard_region.to_owned(), endpoint.to_owned()).is_none(),
            "--default-shard: region {shard_region} named twice"
        );
    }
    shards.entry(region.to_owned()).or_insert_with(|| format!("embedded:default-{region}"));
    Ok(shards)
}

/// `--shard-ca`'s client configuration.
fn shard_tls(ca: Option<&std::path::Path>) -> anyhow::Result<Option<Arc<rustls::ClientConfig>>> {
    let Some(ca) = ca else { return Ok(None) };
    let pem = std::fs::read(ca).map_err(|error| anyhow::anyhow!("--shard-ca {}: {error}", ca.display()))?;
    let config = api_node::store::tls::client_config(&pem)
        .map_err(|error| anyhow::anyhow!("--shard-ca {}: {error}", ca.display()))?;
    Ok(Some(config))
}

async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let parsed = proto::ShardEndpoint::parse(&args.endpoint).map_err(|error| anyhow::anyhow!("--endpoint: {error}"))?;
    anyhow::ensure!(
        matches!(parsed, proto::ShardEndpoint::Postgres { .. }),
        "--endpoint: an embedded shard migrates itself when an api-node opens it; give a postgres:// endpoint"
    );
    let tls = shard_tls(args.shard_ca.as_deref())?;
    let passfile = args.shard_passfile.as_deref();
    let applied =
        api_node::store::postgres::migrate(&args.endpoint, &parsed, passfile, tls.as_ref(), &args.grant_to).await?;
    let said = match applied.as_slice() {
        [] => format!("{}: schema up to date (version {})", args.endpoint, api_node::store::schema::SCHEMA_VERSION),
        steps => format!("{}: applied schema steps {steps:?}", args.endpoint),
    };
    std::io::Write::write_all(&mut std::io::stdout(), format!("{said}\n").as_bytes())?;
    Ok(())
}

/// The current session key (created if missing) and the previous ones.
fn session_keys(current: &std::path::Path, previous: &[PathBuf]) -> anyhow::Result<SessionKeys> {
    anyhow::ensure!(
        previous.len() <= SESSION_KEYS_PREVIOUS_MAX,
        "--session-key-previous: at most {SESSION_KEYS_PREVIOUS_MAX} previous keys, got {}; drop the oldest",
        previous.len()
    );
    let current = session_key(current)?;
    let previous = previous.iter().map(|path| read_session_key(path)).collect::<anyhow::Result<Vec<_>>>()?;
    let keys = SessionKeys::with_previous(current, previous);
    let previous: Vec<&str> = keys.ids().skip(1).collect();
    tracing::info!(current = keys.current_id(), ?previous, "session keys");
    Ok(keys)
}

/// Reads the session key, creating it (readable by its owner only) if
/// missing. Created whole or not at all (temp file, then a hard link), so
/// api-nodes starting together agree on one key.
fn session_key(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if !path.exists() {
        let mut fresh = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut fresh);
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        file.write_all(hex::encode(fresh).as_bytes())?;
        file.sync_all()?;
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(anyhow::anyhow!("session key {}: {error}", path.display())),
        }
    }
    read_session_key(path)
}

/// Reads a session key file: hex, at least 16 bytes.
fn read_session_key(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let text =
        std::fs::read_to_string(path).map_err(|error| anyhow::anyhow!("session key {}: {error}", path.display()))?;
    let key = hex::decode(text.trim()).map_err(|_| anyhow::anyhow!("session key {}: must be hex", path.display()))?;
    anyhow::ensure!(key.len() >= 16, "session key {}: at least 16 bytes", path.display());
    Ok(key)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let done = if std::env::args_os().nth(1).is_some_and(|first| first == "migrate") {
        let args = MigrateArgs::parse_from(std::env::args_os().skip(1));
        match plumbing::init_logging("RUST_LOG", "info,h2=warn", args.log_format, None) {
            Ok(_telemetry) => migrate(args).await,
            Err(error) => Err(anyhow::anyhow!(error)),
        }
    } else {
        let args = Args::parse();
        match args.otlp.init_logging("api-node", false, "RUST_LOG", "info,h2=warn", args.log_format) {
            Ok(_telemetry) => run(args).await,
            Err(error) => Err(anyhow::anyhow!(error)),
        }
    };
    match done {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("api-node: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
