//! Smoke checks: every tenant (or those given) end to end through real
//! api-nodes. For each tenant: health resolves to it, `/config/{tenant}.json`
//! equals the registry's public bundle and version, its branding is
//! present, api-nodes outside a pin refuse it (421), and login → create →
//! list works on an api-node of its home region. The same checks are
//! publish's gate for golden tenants ([`Checks`]).

use std::future::Future;
use std::io;
use std::time::Duration;

use proto::v1;
use serde_json::Value;
use tokio::time::Instant;

use super::publish::Gate;
use crate::http::HttpResponse;
use crate::Error;

/// How long an api-node may lag the registry before its config counts as wrong.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause between two looks at an api-node that is behind.
const CONVERGE_PAUSE: Duration = Duration::from_millis(200);

/// The api-nodes' public HTTP, as the checks use it.
pub trait Http: Sync {
    fn get(
        &self,
        addr: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> impl Future<Output = io::Result<HttpResponse>> + Send;
    fn post_json(
        &self,
        addr: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> impl Future<Output = io::Result<HttpResponse>> + Send;
}

/// Plaintext HTTP to the api-nodes' public port.
pub struct Direct;

impl Http for Direct {
    async fn get(&self, addr: &str, path: &str, headers: &[(&str, &str)]) -> io::Result<HttpResponse> {
        crate::http::get(addr, path, headers).await
    }

    async fn post_json(
        &self,
        addr: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> io::Result<HttpResponse> {
        crate::http::post_json(addr, path, headers, body).await
    }
}

/// An api-node and the region it serves.
#[derive(Debug, Clone, PartialEq)]
pub struct Api {
    pub addr: String,
    pub region: String,
}

/// How to reach tenants on api-nodes and log in to them.
#[derive(Debug, Clone)]
pub struct Target {
    pub base_domain: String,
    pub user: String,
    /// `{tenant}` stands for the tenant id.
    pub password: String,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq)]
pub struct SmokeRow {
    pub tenant: String,
    /// The api-node checked (`-` when none could be).
    pub api: String,
    pub check: &'static str,
    pub result: Result<(), String>,
}

fn host(target: &Target, tenant: &str, addr: &str) -> String {
    let port = addr.rsplit_once(':').map_or("80", |(_, port)| port);
    format!("{tenant}.{}:{port}", target.base_domain)
}

fn json(response: &HttpResponse) -> Value {
    serde_json::from_slice(&response.body).unwrap_or(Value::Null)
}

/// Checks that each api-node is ready and learns the region it serves.
pub async fn discover(http: &impl Http, addrs: &[String]) -> Result<Vec<Api>, Error> {
    let mut apis = Vec::new();
    for addr in addrs {
        match http.get(addr, "/readyz", &[("Host", "localhost")]).await {
            Ok(ready) if ready.status == 200 => {
                let region = ready.header("x-region").unwrap_or_default().to_owned();
                apis.push(Api { addr: addr.clone(), region });
            }
            Ok(ready) => {
                let message = format!("api-node {addr} is not ready: HTTP {} {}", ready.status, ready.text());
                return Err(Error::Unavailable { message });
            }
            Err(error) => return Err(Error::Unavailable { message: format!("api-node {addr} is not ready: {error}") }),
        }
    }
    Ok(apis)
}

/// Health, config and branding of `tenant` on `api`; the first failure, if any.
pub async fn check_serving(http: &impl Http, target: &Target, api: &Api, tenant: &v1::Tenant) -> Result<(), String> {
    let host = host(target, &tenant.id, &api.addr);
    let health = http
        .get(&api.addr, "/health?tenant=auto", &[("Host", &host)])
        .await
        .map_err(|error| format!("health: {error}"))?;
    if json(&health)["tenant"] != tenant.id {
        return Err(format!("health: resolved to {} (HTTP {})", json(&health)["tenant"], health.status));
    }
    let public = tenant.public_bundle.clone().unwrap_or_default();
    // What the api-node must serve: the public bundle as its region serves it.
    let expected = compiler::regions::served_json(&public.json, &api.region, tenant.config_revision)
        .map_err(|problem| format!("config: the registry's public bundle: {problem}"))?;
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let config = http
            .get(&api.addr, &format!("/config/{}.json", tenant.id), &[("Host", &host)])
            .await
            .map_err(|error| format!("config: {error}"))?;
        let version = config.header("x-config-version").and_then(|version| version.parse::<u64>().ok());
        let equal = config.body == expected.as_bytes();
        if config.status == 200 && equal && version == Some(tenant.config_revision) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "config: HTTP {}, configVersion {version:?} (registry: {}), runtime config {} the registry's in {}",
                config.status,
                tenant.config_revision,
                if equal { "equal to" } else { "different from" },
                api.region
            ));
        }
        tokio::time::sleep(CONVERGE_PAUSE).await;
    }
    let bundle: Value = serde_json::from_slice(&public.json).unwrap_or(Value::Null);
    if bundle["theme"]["colors"]["primary"].as_str().is_none() {
        return Err("branding: theme.colors.primary is missing".to_owned());
    }
    Ok(())
}

/// A pinned tenant must be refused (421, naming its home region) by an
/// api-node outside its allowed regions: its data is never served there.
pub async fn check_refused(http: &impl Http, target: &Target, api: &Api, tenant: &v1::Tenant) -> Result<(), String> {
    let host = host(target, &tenant.id, &api.addr);
    let home = tenant.placement.clone().unwrap_or_default().home_region;
    let config = http
        .get(&api.addr, &format!("/config/{}.json", tenant.id), &[("Host", &host)])
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
    http: &impl Http,
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<HttpResponse, String> {
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let response = http.post_json(addr, path, headers, body).await.map_err(|error| error.to_string())?;
        if response.status != 503 || Instant::now() > deadline {
            return Ok(response);
        }
        tokio::time::sleep(CONVERGE_PAUSE).await;
    }
}

/// Login, create an item, and find it in the list, on an api-node of the
/// tenant's home region: the api-node used.
pub async fn check_data(
    http: &impl Http,
    target: &Target,
    apis: &[Api],
    tenant: &v1::Tenant,
) -> Result<String, String> {
    let home = tenant.placement.clone().unwrap_or_default().home_region;
    let api = apis
        .iter()
        .find(|api| api.region == home)
        .ok_or_else(|| format!("data: no api-node given in home region {home:?}"))?;
    let host = host(target, &tenant.id, &api.addr);
    let password = target.password.replace("{tenant}", &tenant.id);
    let credentials = serde_json::json!({ "user": target.user, "password": password }).to_string();
    let login = post_when_available(http, &api.addr, "/api/login", &[("Host", &host)], &credentials)
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
    let created = post_when_available(http, &api.addr, "/api/items", &headers, &title)
        .await
        .map_err(|error| format!("create: {error}"))?;
    let id = json(&created)["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("create: HTTP {} {}", created.status, created.text()))?;
    let listed = http.get(&api.addr, "/api/items", &headers[..2]).await.map_err(|error| format!("list: {error}"))?;
    let found =
        json(&listed)["items"].as_array().is_some_and(|items| items.iter().any(|item| item["id"] == id.as_str()));
    if !found {
        return Err(format!("list: HTTP {}, the new item {id} is missing", listed.status));
    }
    Ok(api.addr.clone())
}

/// Every check of every tenant on every api-node, each reported to `row`
/// as it is done.
pub async fn run(
    http: &impl Http,
    target: &Target,
    apis: &[Api],
    tenants: &[v1::Tenant],
    row: &mut impl FnMut(&SmokeRow),
) -> Vec<SmokeRow> {
    let mut rows = Vec::new();
    let mut push = |done: SmokeRow| {
        row(&done);
        rows.push(done);
    };
    for tenant in tenants {
        let allowed = tenant.placement.clone().unwrap_or_default().allowed_regions;
        for api in apis {
            let (check, result) = if allowed.is_empty() || allowed.contains(&api.region) {
                ("health+config+branding", check_serving(http, target, api, tenant).await)
            } else {
                ("refused outside its pin", check_refused(http, target, api, tenant).await)
            };
            push(SmokeRow { tenant: tenant.id.clone(), api: api.addr.clone(), check, result });
        }
        let (api, result) = match check_data(http, target, apis, tenant).await {
            Ok(api) => (api, Ok(())),
            Err(error) => ("-".to_owned(), Err(error)),
        };
        push(SmokeRow { tenant: tenant.id.clone(), api, check: "login+create+list", result });
    }
    rows
}

/// The checks as publish's gate: a golden tenant is served right by every
/// api-node of its allowed regions, and its data works in its home region.
pub struct Checks<H> {
    pub http: H,
    pub target: Target,
    pub apis: Vec<Api>,
}

impl<H: Http> Gate for Checks<H> {
    async fn check(&self, tenant: &v1::Tenant) -> Result<(), String> {
        let allowed = tenant.placement.clone().unwrap_or_default().allowed_regions;
        for api in self.apis.iter().filter(|api| allowed.is_empty() || allowed.contains(&api.region)) {
            check_serving(&self.http, &self.target, api, tenant)
                .await
                .map_err(|error| format!("smoke check of golden tenant {} on {}: {error}", tenant.id, api.addr))?;
        }
        check_data(&self.http, &self.target, &self.apis, tenant)
            .await
            .map(drop)
            .map_err(|error| format!("smoke check of golden tenant {}: {error}", tenant.id))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;
    use crate::workflows::fake::tenant;

    /// An answer: status, headers, body.
    type Answer = (u16, Vec<(&'static str, String)>, String);

    /// Scripted api-nodes: `answer(addr, method, path, host)`; every request
    /// is recorded.
    struct Scripted {
        answer: fn(&str, &str, &str, &str) -> Answer,
        asked: Mutex<Vec<String>>,
    }

    impl Scripted {
        fn respond(&self, addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
            let host = headers.iter().find(|(name, _)| *name == "Host").map_or("", |(_, value)| value);
            self.asked.lock().unwrap().push(format!("{method} {addr}{path}"));
            let (status, headers, body) = (self.answer)(addr, method, path, host);
            let headers: BTreeMap<String, String> =
                headers.into_iter().map(|(name, value)| (name.to_owned(), value)).collect();
            HttpResponse { status, headers, body: body.into_bytes() }
        }
    }

    impl Http for Scripted {
        async fn get(&self, addr: &str, path: &str, headers: &[(&str, &str)]) -> io::Result<HttpResponse> {
            Ok(self.respond(addr, "GET", path, headers))
        }

        async fn post_json(
            &self,
            addr: &str,
            path: &str,
            headers: &[(&str, &str)],
            _: &str,
        ) -> io::Result<HttpResponse> {
            Ok(self.respond(addr, "POST", path, headers))
        }
    }

    const BUNDLE: &str = r##"{"theme":{"colors":{"primary":"#123456"}}}"##;

    /// Two api-nodes, us-east on :8081 and eu-west on :8082, serving
    /// `acme` (config version 7) as they should; eu-west refuses pinned
    /// tenants, and globex's data API fails.
    fn healthy(addr: &str, method: &str, path: &str, host: &str) -> Answer {
        let tenant = host.split('.').next().unwrap_or_default();
        let region = if addr.ends_with(":8081") { "us-east" } else { "eu-west" };
        match (method, path) {
            ("GET", "/readyz") => (200, vec![("x-region", region.to_owned())], String::new()),
            ("GET", "/health?tenant=auto") => (200, vec![], format!(r#"{{"tenant":"{tenant}"}}"#)),
            ("GET", _) if path.starts_with("/config/") && region == "eu-west" && tenant == "globex" => {
                (421, vec![("x-home-region", "us-east".to_owned())], String::new())
            }
            ("GET", _) if path.starts_with("/config/") => {
                let served = compiler::regions::served_json(BUNDLE.as_bytes(), region, 7).unwrap_or_default();
                (200, vec![("x-config-version", "7".to_owned())], served)
            }
            ("POST", "/api/login") => (200, vec![], r#"{"token":"t"}"#.to_owned()),
            ("POST", "/api/items") if tenant == "globex" => (500, vec![], "boom".to_owned()),
            ("POST", "/api/items") => (201, vec![], r#"{"id":"item-1"}"#.to_owned()),
            ("GET", "/api/items") => (200, vec![], r#"{"items":[{"id":"item-1"}]}"#.to_owned()),
            _ => (404, vec![], String::new()),
        }
    }

    fn served(id: &str, allowed: &[&str]) -> v1::Tenant {
        let mut tenant = tenant(id, "us-east", allowed);
        tenant.config_revision = 7;
        tenant.public_bundle = Some(v1::Bundle { json: BUNDLE.as_bytes().to_vec().into(), ..Default::default() });
        tenant
    }

    fn target() -> Target {
        Target { base_domain: "localhost".to_owned(), user: "demo".to_owned(), password: "demo-{tenant}".to_owned() }
    }

    #[tokio::test(start_paused = true)]
    async fn every_tenant_is_checked_on_every_api_node_and_a_pin_must_be_refused_outside() {
        let http = Scripted { answer: healthy, asked: Mutex::new(Vec::new()) };
        let apis = discover(&http, &["10.0.0.1:8081".to_owned(), "10.0.0.2:8082".to_owned()]).await.unwrap();
        assert_eq!(apis[1], Api { addr: "10.0.0.2:8082".to_owned(), region: "eu-west".to_owned() });
        let tenants = [served("acme", &[]), served("globex", &["us-east"])];
        let mut seen = 0;
        let rows = run(&http, &target(), &apis, &tenants, &mut |_| seen += 1).await;
        let summary: Vec<(&str, &str, &str, bool)> =
            rows.iter().map(|row| (row.tenant.as_str(), row.api.as_str(), row.check, row.result.is_ok())).collect();
        assert_eq!(
            summary,
            [
                ("acme", "10.0.0.1:8081", "health+config+branding", true),
                ("acme", "10.0.0.2:8082", "health+config+branding", true),
                ("acme", "10.0.0.1:8081", "login+create+list", true),
                ("globex", "10.0.0.1:8081", "health+config+branding", true),
                ("globex", "10.0.0.2:8082", "refused outside its pin", true),
                ("globex", "-", "login+create+list", false),
            ]
        );
        assert_eq!(seen, 6, "each row reported as it is done");
        assert_eq!(rows[5].result, Err("create: HTTP 500 boom".to_owned()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_config_behind_the_registry_fails_after_the_convergence_bound_naming_both_versions() {
        let http = Scripted { answer: healthy, asked: Mutex::new(Vec::new()) };
        let api = Api { addr: "10.0.0.1:8081".to_owned(), region: "us-east".to_owned() };
        let mut ahead = served("acme", &[]);
        ahead.config_revision = 8;
        let started = Instant::now();
        let failed = check_serving(&http, &target(), &api, &ahead).await.unwrap_err();
        assert_eq!(
            failed,
            "config: HTTP 200, configVersion Some(7) (registry: 8), runtime config different from the registry's in \
             us-east"
        );
        assert!(started.elapsed() >= CONVERGE_TIMEOUT);
        let refused = check_refused(&http, &target(), &api, &served("acme", &["eu-west"])).await.unwrap_err();
        assert_eq!(refused, "served outside its pin: HTTP 200 (expected 421 naming us-east)");
    }

    #[tokio::test(start_paused = true)]
    async fn as_a_gate_a_golden_tenant_is_checked_where_it_is_allowed_and_an_unready_api_node_is_refused() {
        let http = Scripted { answer: healthy, asked: Mutex::new(Vec::new()) };
        let apis = vec![
            Api { addr: "10.0.0.1:8081".to_owned(), region: "us-east".to_owned() },
            Api { addr: "10.0.0.2:8082".to_owned(), region: "eu-west".to_owned() },
        ];
        let gate = Checks { http, target: target(), apis };
        assert_eq!(gate.check(&served("acme", &["us-east"])).await, Ok(()));
        let asked = gate.http.asked.lock().unwrap().clone();
        assert!(asked.iter().all(|request| !request.contains(":8082")), "not outside its pin: {asked:?}");
        let failed = gate.check(&served("globex", &["us-east"])).await.unwrap_err();
        assert_eq!(failed, "smoke check of golden tenant globex: create: HTTP 500 boom");

        let down =
            Scripted { answer: |_, _, _, _| (503, vec![], "starting".to_owned()), asked: Mutex::new(Vec::new()) };
        let error = discover(&down, &["10.0.0.9:8081".to_owned()]).await.unwrap_err();
        assert_eq!(error.to_string(), "api-node 10.0.0.9:8081 is not ready: HTTP 503 starting");
    }
}
