//! `regctl smoke --api HOST:PORT[,…]`: end-to-end checks of every tenant
//! (or those listed in a file) through real api-nodes. For each tenant:
//! health resolves to it, `/config/{tenant}.json` equals the registry's
//! public bundle and version, its branding is present, api-nodes outside a
//! pin refuse it (421), and login → create → list works on an api-node of
//! its home region. A table of results;
//! exit 1 on any failure.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use proto::v1::{self, Consistency};
use serde_json::Value;

use super::output::{self, Format, SmokeRow};
use super::Failure;
use crate::client::Client;
use crate::http_client::{get, post_json, HttpResponse};

/// How long an api-node may lag the registry before its config counts as wrong.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub(super) struct SmokeArgs {
    /// api-node HTTP addresses (host:port), comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    api: Vec<String>,
    /// `all`, or a file with one tenant id per line.
    #[arg(long, default_value = "all")]
    tenants: String,
    /// The base domain the api-nodes serve tenants under ({tenant}.{domain}).
    #[arg(long, default_value = "localhost")]
    base_domain: String,
    /// The demo user to log in as.
    #[arg(long, default_value = "demo")]
    user: String,
    /// Its password; `{tenant}` stands for the tenant id.
    #[arg(long, default_value = "demo-{tenant}")]
    password: String,
}

/// An api-node and the region it serves.
pub(super) struct Api {
    pub(super) addr: String,
    pub(super) region: String,
}

/// How to reach tenants on api-nodes and log in to them.
pub(super) struct Target {
    pub(super) base_domain: String,
    pub(super) user: String,
    /// `{tenant}` stands for the tenant id.
    pub(super) password: String,
}

impl SmokeArgs {
    fn target(&self) -> Target {
        Target { base_domain: self.base_domain.clone(), user: self.user.clone(), password: self.password.clone() }
    }
}

fn host(target: &Target, tenant: &str, addr: &str) -> String {
    let port = addr.rsplit_once(':').map_or("80", |(_, port)| port);
    format!("{tenant}.{}:{port}", target.base_domain)
}

fn json(response: &HttpResponse) -> Value {
    serde_json::from_slice(&response.body).unwrap_or(Value::Null)
}

/// Health, config and branding of `tenant` on `api`; the first failure, if any.
pub(super) async fn check_serving(target: &Target, api: &Api, tenant: &v1::Tenant) -> Result<(), String> {
    let host = host(target, &tenant.id, &api.addr);
    let health =
        get(&api.addr, "/health?tenant=auto", &[("Host", &host)]).await.map_err(|error| format!("health: {error}"))?;
    if json(&health)["tenant"] != tenant.id {
        return Err(format!("health: resolved to {} (HTTP {})", json(&health)["tenant"], health.status));
    }
    let public = tenant.public_bundle.clone().unwrap_or_default();
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let config = get(&api.addr, &format!("/config/{}.json", tenant.id), &[("Host", &host)])
            .await
            .map_err(|error| format!("config: {error}"))?;
        let version = config.header("x-config-version").and_then(|version| version.parse::<u64>().ok());
        if config.status == 200 && config.body == public.json && version == Some(tenant.config_revision) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "config: HTTP {}, configVersion {version:?} (registry: {}), bundle {}",
                config.status,
                tenant.config_revision,
                if config.body == public.json { "equal" } else { "different" }
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let bundle: Value = serde_json::from_slice(&public.json).unwrap_or(Value::Null);
    if bundle["theme"]["colors"]["primary"].as_str().is_none() {
        return Err("branding: theme.colors.primary is missing".to_owned());
    }
    Ok(())
}

/// A pinned tenant must be refused (421, naming its home region) by an
/// api-node outside its allowed regions: its data is never served there.
async fn check_refused(target: &Target, api: &Api, tenant: &v1::Tenant) -> Result<(), String> {
    let host = host(target, &tenant.id, &api.addr);
    let home = tenant.placement.clone().unwrap_or_default().home_region;
    let config = get(&api.addr, &format!("/config/{}.json", tenant.id), &[("Host", &host)])
        .await
        .map_err(|error| format!("config: {error}"))?;
    if config.status != 421 || config.header("x-home-region") != Some(home.as_str()) {
        return Err(format!("served outside its pin: HTTP {} (expected 421 naming {home})", config.status));
    }
    Ok(())
}

/// POSTs, and again while the api-node answers 503 (a view not yet proven
/// fresh, as right after it starts) for up to [`CONVERGE_TIMEOUT`]. Safe for
/// item creation: it carries an Idempotency-Key.
async fn post_when_available(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<HttpResponse, String> {
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let response = post_json(addr, path, headers, body).await.map_err(|error| error.to_string())?;
        if response.status != 503 || Instant::now() > deadline {
            return Ok(response);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Login, create an item, and find it in the list, on an api-node of the
/// tenant's home region.
pub(super) async fn check_data(target: &Target, apis: &[Api], tenant: &v1::Tenant) -> Result<String, String> {
    let home = tenant.placement.clone().unwrap_or_default().home_region;
    let api = apis
        .iter()
        .find(|api| api.region == home)
        .ok_or_else(|| format!("data: no api-node given in home region {home:?}"))?;
    let host = host(target, &tenant.id, &api.addr);
    let password = target.password.replace("{tenant}", &tenant.id);
    let credentials = serde_json::json!({ "user": target.user, "password": password }).to_string();
    let login = post_when_available(&api.addr, "/api/login", &[("Host", &host)], &credentials)
        .await
        .map_err(|error| format!("login: {error}"))?;
    let token = json(&login)["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("login: HTTP {} {}", login.status, login.text()))?;
    let bearer = format!("Bearer {token}");
    let key = format!("smoke-{}", ulid::Ulid::new());
    let title = serde_json::json!({ "title": format!("smoke {key}") }).to_string();
    let headers = [("Host", host.as_str()), ("Authorization", bearer.as_str()), ("Idempotency-Key", key.as_str())];
    let created = post_when_available(&api.addr, "/api/items", &headers, &title)
        .await
        .map_err(|error| format!("create: {error}"))?;
    let id = json(&created)["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("create: HTTP {} {}", created.status, created.text()))?;
    let listed = get(&api.addr, "/api/items", &headers[..2]).await.map_err(|error| format!("list: {error}"))?;
    let found =
        json(&listed)["items"].as_array().is_some_and(|items| items.iter().any(|item| item["id"] == id.as_str()));
    if !found {
        return Err(format!("list: HTTP {}, the new item {id} is missing", listed.status));
    }
    Ok(api.addr.clone())
}

/// Checks that each api-node is ready and learns the region it serves.
pub(super) async fn discover(addrs: &[String]) -> Result<Vec<Api>, Failure> {
    let mut apis = Vec::new();
    for addr in addrs {
        match get(addr, "/readyz", &[("Host", "localhost")]).await {
            Ok(ready) if ready.status == 200 => {
                let region = ready.header("x-region").unwrap_or_default().to_owned();
                apis.push(Api { addr: addr.clone(), region });
            }
            other => return Err(Failure(format!("api-node {addr} is not ready: {other:?}"))),
        }
    }
    Ok(apis)
}

pub(super) async fn run(args: SmokeArgs, client: &Client, format: Format) -> Result<(), Failure> {
    let (mut tenants, _) = client.list_tenants(Consistency::Linearizable, false).await?;
    if args.tenants != "all" {
        let path = PathBuf::from(&args.tenants);
        let wanted = std::fs::read_to_string(&path).map_err(|error| Failure(format!("{}: {error}", path.display())))?;
        let wanted: Vec<&str> =
            wanted.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')).collect();
        tenants.retain(|tenant| wanted.contains(&tenant.id.as_str()));
    }
    let target = args.target();
    let apis = discover(&args.api).await?;
    let mut rows = Vec::new();
    for tenant in &tenants {
        let allowed = tenant.placement.clone().unwrap_or_default().allowed_regions;
        for api in &apis {
            let (check, result) = if allowed.is_empty() || allowed.contains(&api.region) {
                ("health+config+branding", check_serving(&target, api, tenant).await)
            } else {
                ("refused outside its pin", check_refused(&target, api, tenant).await)
            };
            rows.push(SmokeRow { tenant: tenant.id.clone(), api: api.addr.clone(), check, result });
        }
        let (api, result) = match check_data(&target, &apis, tenant).await {
            Ok(api) => (api, Ok(())),
            Err(error) => ("-".to_owned(), Err(error)),
        };
        rows.push(SmokeRow { tenant: tenant.id.clone(), api, check: "login+create+list", result });
    }
    output::smoke(&rows, format);
    let failed = rows.iter().filter(|row| row.result.is_err()).count();
    if failed > 0 {
        return Err(Failure(format!("{failed} of {} smoke checks failed", rows.len())));
    }
    Ok(())
}
