//! The CDN purge hook. Content-hashed assets never need a purge, but
//! `/config/{tenant}.json` does: once every agent has acknowledged a change
//! (a publish cohort, a rollback, a canary promote), the hook is told which
//! runtime configs changed, per region: one `POST` per region to a webhook
//! (`--purge-url`), with the token from a file (`--purge-token-file`) as a
//! bearer token and this body:
//!
//! ```json
//! {"region": "eu-west", "paths": ["/config/acme.json"], "tenants": ["acme"],
//!  "revision": 42, "reason": "publish cohort 1 of 3"}
//! ```
//!
//! The regions are those of the connected agents, each told of the
//! changed tenants it serves: everywhere, unless a tenant is pinned to
//! other regions (its served bytes change wherever it is served: its
//! configVersion is in them). A request is retried with backoff on a network error, a 5xx, 408
//! or 429, and sent with an `Idempotency-Key`, so a retried purge is one
//! purge to a hook that honours it; any other answer is final. A purge
//! that does not succeed fails its workflow like a failed gate.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use proto::v1;

use super::Cluster;
use crate::http::{send, HttpRequest};
use crate::Error;

/// Attempts per region, the first included.
pub const PURGE_ATTEMPTS: u32 = 5;

/// The first retry's pause; each next one doubles, up to [`PURGE_BACKOFF_MAX`].
pub const PURGE_BACKOFF: Duration = Duration::from_millis(200);
pub const PURGE_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The longest token file read, in bytes.
const TOKEN_BYTES_MAX: u64 = 4096;

/// A configured purge hook.
#[derive(Clone)]
pub struct PurgeHook {
    url: String,
    /// `host:port` dialed.
    authority: String,
    path: String,
    token: String,
    connector: trust::Connector,
}

impl std::fmt::Debug for PurgeHook {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        formatter.debug_struct("PurgeHook").field("url", &self.url).finish_non_exhaustive()
    }
}

fn invalid(field: &str, rule: &str, message: String) -> Error {
    Error::invalid(field, rule, message)
}

/// Whether `host` is this machine (a hook there may be plain HTTP).
fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl PurgeHook {
    /// A hook at `url` (`https://host[:port]/path`, or `http://` to this
    /// machine only: the token must not cross a network in plaintext), its
    /// token read from `token_file` (readable by its owner only, like an SSH
    /// key), servers verified against `ca` or the system's CA bundle.
    pub fn new(url: &str, token_file: &Path, ca: Option<&Path>) -> Result<Self, Error> {
        let field = "--purge-url";
        let not_a_url = || invalid(field, "url", format!("{field}: {url:?} is not an http(s)://host/path URL"));
        let uri: http::Uri = url.parse().map_err(|_| not_a_url())?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(not_a_url()),
        };
        let authority = uri.authority().ok_or_else(not_a_url)?;
        if authority.as_str().contains('@') {
            return Err(invalid(field, "url", format!("{field}: {url:?} must not carry a user or password")));
        }
        let host = authority.host().trim_matches(['[', ']']);
        if !https && !is_loopback(host) {
            let message = format!("{field}: {url:?} must be https:// (plain http only to this machine)");
            return Err(invalid(field, "https", message));
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = format!("{}:{port}", authority.host());
        let path = uri.path_and_query().map_or("/", |path| path.as_str()).to_owned();
        let token = read_token(token_file)?;
        let connector = if https {
            let config = trust::tls::web_client_config(ca)
                .map_err(|error| invalid("--purge-ca", "ca", format!("--purge-ca: {error}")))?;
            trust::Connector::web(config)
        } else {
            trust::Connector::new(None, false)
        };
        Ok(Self { url: url.to_owned(), authority, path, token, connector })
    }

    /// Posts the changed tenants of `revision` to the hook once per region,
    /// each region told of the tenants it serves (a tenant pinned to other
    /// regions is not served there), each request retried; what was
    /// purged, or why not.
    pub async fn purge(&self, batch: &PurgeBatch<'_>) -> Result<String, String> {
        let mut paths = 0;
        let mut regions = Vec::new();
        for region in batch.regions {
            let tenants: Vec<&str> = batch
                .tenants
                .iter()
                .filter(|tenant| proto::is_served_in(tenant.placement.as_ref(), region))
                .map(|tenant| tenant.id.as_str())
                .collect();
            if !tenants.is_empty() {
                self.purge_region(batch, region, &tenants).await?;
                paths += tenants.len();
                regions.push(region.as_str());
            }
        }
        Ok(format!("purged {paths} paths in {} regions ({})", regions.len(), regions.join(", ")))
    }

    async fn purge_region(&self, batch: &PurgeBatch<'_>, region: &str, tenants: &[&str]) -> Result<(), String> {
        let paths: Vec<String> = tenants.iter().map(|tenant| format!("/config/{tenant}.json")).collect();
        let body = json!({
            "region": region,
            "paths": paths,
            "tenants": tenants,
            "revision": batch.revision,
            "reason": batch.reason,
        })
        .to_string();
        let authorization = format!("Bearer {}", self.token);
        let key = format!("tenantry-{}-{region}-{}", batch.revision, tenants.len());
        let headers = [
            ("Host", self.authority.as_str()),
            ("Authorization", authorization.as_str()),
            ("Content-Type", "application/json"),
            ("Idempotency-Key", key.as_str()),
        ];
        let request = HttpRequest { body: body.as_bytes(), ..HttpRequest::new("POST", &self.path, &headers) };
        let mut pause = PURGE_BACKOFF;
        let mut attempt = 1;
        loop {
            let failure = match send(&self.connector, &self.authority, &request).await {
                Ok(response) if (200..300).contains(&response.status) => return Ok(()),
                Ok(response) => {
                    let retried = response.status >= 500 || matches!(response.status, 408 | 429);
                    let text: String = response.text().chars().take(200).collect();
                    let failure = match text.trim() {
                        "" => format!("HTTP {}", response.status),
                        text => format!("HTTP {}: {text}", response.status),
                    };
                    if !retried {
                        return Err(self.failed(region, attempt, &failure));
                    }
                    failure
                }
                Err(error) => error.to_string(),
            };
            if attempt >= PURGE_ATTEMPTS {
                return Err(self.failed(region, attempt, &failure));
            }
            tracing::warn!(url = %self.url, %region, attempt, %failure, "purge failed; retrying");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(PURGE_BACKOFF_MAX);
            attempt += 1;
        }
    }

    fn failed(&self, region: &str, attempts: u32, failure: &str) -> String {
        format!("purge hook {} for {region} failed after {attempts} attempts: {failure}", self.url)
    }
}

/// One purge: the tenants whose runtime configs changed at `revision`.
#[derive(Debug)]
pub struct PurgeBatch<'a> {
    pub reason: &'a str,
    pub revision: u64,
    pub regions: &'a [String],
    /// The changed tenants, sorted by id, with their placements.
    pub tenants: &'a [v1::Tenant],
}

/// Purges `tenants`, changed up to `revision` and acknowledged by every
/// agent, in every region where agents serve them.
pub async fn purge_acknowledged(
    cluster: &impl Cluster,
    hook: &PurgeHook,
    reason: &str,
    revision: u64,
    tenants: &[v1::Tenant],
) -> Result<String, String> {
    let mut tenants = tenants.to_vec();
    tenants.sort_by(|a, b| a.id.cmp(&b.id));
    let regions = served_regions(cluster).await;
    hook.purge(&PurgeBatch { reason, revision, regions: &regions, tenants: &tenants }).await
}

/// The regions of the cluster's connected agents, sorted: where runtime
/// configs are served.
async fn served_regions(cluster: &impl Cluster) -> Vec<String> {
    let (agents, _) = cluster.agents().await;
    let regions: std::collections::BTreeSet<String> =
        agents.into_iter().filter(|agent| agent.connected).map(|agent| agent.region).collect();
    regions.into_iter().collect()
}

fn read_token(path: &Path) -> Result<String, Error> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let field = "--purge-token-file";
    let shown = path.display();
    let file =
        std::fs::File::open(path).map_err(|error| invalid(field, "read", format!("{field}: {shown}: {error}")))?;
    let metadata = file.metadata().map_err(|error| invalid(field, "read", format!("{field}: {shown}: {error}")))?;
    if metadata.mode() & 0o077 != 0 {
        let message =
            format!("{field}: {shown} is readable by others (mode {:o}); chmod 600 it", metadata.mode() & 0o777);
        return Err(invalid(field, "mode", message));
    }
    let mut text = String::new();
    file.take(TOKEN_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .map_err(|error| invalid(field, "read", format!("{field}: {shown}: {error}")))?;
    let token = text.trim_end_matches(['\n', '\r']);
    if token.is_empty() || token.len() as u64 > TOKEN_BYTES_MAX || token.contains(['\n', '\r']) || !token.is_ascii() {
        let message = format!("{field}: {shown} must hold one line of at most {TOKEN_BYTES_MAX} ASCII bytes");
        return Err(invalid(field, "token", message));
    }
    Ok(token.to_owned())
}
