//! `regctl ui`: a live console in the browser. Like `kubectl proxy`, it
//! serves on loopback and talks to the cluster with the operator's
//! certificate, so no browser needs one.
//!
//! * One task reads the cluster every `--refresh-ms` (statuses and agent
//!   lists from every endpoint, the topology, every tenant) and builds the
//!   [`model::Model`]; each open page gets it as a server-sent event,
//!   with the tenants its search matches.
//! * `GET /api/history/{tenant}`: the tenant's audit entries with what each
//!   changed in its documents ([`diff`]).
//! * It only reads. It answers only requests whose `Host` is a loopback
//!   name with its port (another name is a DNS-rebinding page, refused), and
//!   its pages may not be framed or load anything from elsewhere.
//! * What a page can see is what the certificate's role can read: a
//!   viewer's console has no integrations, and no console shows bundles.

mod diff;
mod model;
#[cfg(test)]
mod model_test;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::StreamExt;
use proto::v1::{self, Consistency};
use proto::TenantId;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;

use super::output::{self, Format};
use super::Failure;
use registry_client::Client;

/// The most tenants one page is sent; a search narrows them.
const TENANTS_SHOWN_MAX: usize = 500;

/// The longest search.
const SEARCH_CHARS_MAX: usize = 64;

/// History entries a tenant's page shows by default, and at most.
const HISTORY_ENTRIES_DEFAULT: u32 = 20;
const HISTORY_ENTRIES_MAX: u32 = 100;

/// A comment on every quiet event stream this often, so proxies keep it.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

const PAGE: &str = include_str!("console.html");
const SCRIPT: &str = include_str!("console.js");
const STYLE: &str = include_str!("console.css");

/// Everything a page loads comes from the console itself; nothing may frame it.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

#[derive(clap::Args)]
pub(super) struct UiArgs {
    /// Where to serve the console: a loopback address (it has no login of
    /// its own; reach it from elsewhere through an SSH tunnel). Port 0 picks one.
    #[arg(long, default_value = "127.0.0.1:7180")]
    listen: SocketAddr,
    /// How often the cluster is read, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    refresh_ms: u64,
    /// An agent behind the cluster, or a tenant served at different
    /// versions in different regions, for longer than this is drift.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    drift_after_s: u64,
}

/// One round's model, ready to send: everything but the tenants as JSON,
/// and each tenant row as JSON, so each page's event is spliced together
/// without serializing again.
struct Published {
    /// The model without tenants: a JSON object.
    rest: String,
    tenants: Vec<(String, String)>,
}

#[derive(Clone)]
struct Console {
    client: Arc<Client>,
    models: watch::Receiver<Option<Arc<Published>>>,
    port: u16,
    /// True once the console stops: open event streams end, so that a
    /// graceful shutdown does not wait for the browser to close them.
    stopping: watch::Receiver<bool>,
}

pub(super) async fn run(args: UiArgs, client: Client, format: Format) -> Result<(), Failure> {
    if !args.listen.ip().is_loopback() {
        return Err(Failure(format!(
            "--listen: {} is not a loopback address (rule loopback): the console has no login of its own and \
             answers with the operator's certificate; reach it from elsewhere through an SSH tunnel",
            args.listen
        )));
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|error| Failure(format!("--listen {}: {error}", args.listen)))?;
    let addr = listener.local_addr().map_err(|error| Failure(format!("--listen {}: {error}", args.listen)))?;
    let client = Arc::new(client);
    let (sender, models) = watch::channel(None);
    let bound_ms = args.drift_after_s * 1000;
    tokio::spawn(read_cluster(client.clone(), sender, Duration::from_millis(args.refresh_ms), bound_ms));
    let (stop, stopping) = watch::channel(false);
    let console = Console { client, models, port: addr.port(), stopping: stopping.clone() };
    let app = Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", PAGE) }))
        .route("/console.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/console.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
        .route("/events", get(events))
        .route("/api/history/{tenant}", get(history))
        .layer(middleware::from_fn_with_state(console.clone(), guard))
        .with_state(console);
    output::info(format, &format!("console on http://{addr}/ (Ctrl-C stops it)"));
    let shutdown = async move {
        plumbing::termination().await;
        stop.send_replace(true);
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|error| Failure(format!("the console's server failed: {error}")))
}

/// Reads the cluster every `refresh` and publishes the model.
async fn read_cluster(
    client: Arc<Client>,
    sender: watch::Sender<Option<Arc<Published>>>,
    refresh: Duration,
    bound_ms: u64,
) {
    let mut clock = model::DriftClock::default();
    let mut ticks = tokio::time::interval(refresh);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let (statuses, agents, topology, tenants) = tokio::join!(
            client.cluster_status(),
            client.list_agents(),
            client.topology(None),
            client.list_tenants(Consistency::Linearizable, false),
        );
        let reads = model::Reads { statuses, agents, topology, tenants };
        let model = model::build(&reads, &mut clock, bound_ms, plumbing::now_unix_ms());
        let tenants =
            model.tenants.iter().map(|row| (row.id.clone(), serde_json::to_string(row).unwrap_or_default())).collect();
        let rest = serde_json::to_string(&model).unwrap_or_else(|_| "{}".to_owned());
        sender.send_replace(Some(Arc::new(Published { rest, tenants })));
    }
}

/// Refuses a request whose `Host` is not this console's loopback name
/// (DNS rebinding), and sets the headers every answer carries.
async fn guard(State(console): State<Console>, request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|host| host.to_str().ok()).unwrap_or("");
    let port = console.port;
    let local = [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("[::1]:{port}")];
    if !local.iter().any(|name| name == host) {
        return plumbing::problem(
            StatusCode::FORBIDDEN,
            &format!(
                "Host `{host}`: the console answers only to 127.0.0.1:{port}, localhost:{port} or [::1]:{port} \
                 (rule local-host), so that no other site's page can read it"
            ),
        );
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

#[derive(Deserialize)]
struct Search {
    #[serde(default)]
    q: String,
}

/// The tenants of `published` whose id contains `search`, at most
/// [`TENANTS_SHOWN_MAX`], spliced into the model's JSON.
fn event_json(published: &Published, search: &str) -> String {
    let mut matched = 0;
    let mut rows = Vec::new();
    for (id, row) in &published.tenants {
        if id.contains(search) {
            matched += 1;
            if rows.len() < TENANTS_SHOWN_MAX {
                rows.push(row.as_str());
            }
        }
    }
    let rest = published.rest.strip_prefix('{').unwrap_or("}");
    let separator = if rest.starts_with('}') { "" } else { "," };
    format!(
        "{{\"tenants\":[{}],\"tenants_matched\":{matched},\"tenants_total\":{},\"tenants_shown_max\":{TENANTS_SHOWN_MAX}{separator}{rest}",
        rows.join(","),
        published.tenants.len(),
    )
}

/// `GET /events?q=SEARCH`: the model now (once there is one), then each new one.
async fn events(State(console): State<Console>, Query(search): Query<Search>) -> Response {
    let search = search.q.trim().to_lowercase();
    if search.chars().count() > SEARCH_CHARS_MAX {
        return plumbing::problem(
            StatusCode::BAD_REQUEST,
            &format!("q: at most {SEARCH_CHARS_MAX} characters (rule search-length)"),
        );
    }
    let mut stopping = console.stopping;
    let stream = WatchStream::new(console.models)
        .filter_map(move |published| {
            let data = published.map(|published| event_json(&published, &search));
            async move { data.map(|data| Ok::<_, std::convert::Infallible>(Event::default().event("model").data(data))) }
        })
        .take_until(async move {
            let _ = stopping.wait_for(|stopping| *stopping).await;
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response()
}

#[derive(Deserialize)]
struct HistoryQuery {
    limit: Option<u32>,
}

#[derive(Serialize)]
struct HistoryEntry {
    revision: u64,
    at_unix_ms: u64,
    actor: String,
    reason: String,
    summary: String,
    /// What it changed in the documents; `None`: it changed none, or the
    /// version before it is older than the entries read.
    changes: Option<Vec<diff::Change>>,
    changes_total: usize,
}

/// `GET /api/history/{tenant}?limit=N`: the newest N audit entries, each
/// with what it changed.
async fn history(
    State(console): State<Console>,
    Path(tenant): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    let tenant = match TenantId::parse(&tenant) {
        Ok(tenant) => tenant,
        Err(error) => return plumbing::problem(StatusCode::BAD_REQUEST, &format!("tenant: {error}")),
    };
    let limit = query.limit.unwrap_or(HISTORY_ENTRIES_DEFAULT);
    if !(1..=HISTORY_ENTRIES_MAX).contains(&limit) {
        return plumbing::problem(
            StatusCode::BAD_REQUEST,
            &format!("limit: from 1 to {HISTORY_ENTRIES_MAX} (rule history-limit)"),
        );
    }
    // One more than shown: the base the oldest shown entry is diffed against.
    match console.client.history(tenant.as_str(), limit + 1, true).await {
        Ok(history) => {
            let mut entries = history_entries(history.entries);
            entries.truncate(limit as usize);
            axum::Json(
                serde_json::json!({ "tenant": tenant.as_str(), "revision": history.revision, "entries": entries }),
            )
            .into_response()
        }
        Err(error) => {
            let status = match error.code() {
                tonic::Code::NotFound => StatusCode::NOT_FOUND,
                tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
                tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
                _ => StatusCode::BAD_GATEWAY,
            };
            plumbing::problem(status, &error.to_string())
        }
    }
}

/// Audit entries (newest first) with each documented entry diffed against
/// the documents the one before it left. A create is diffed against
/// nothing. Integrations are diffed only where both sides have them (a
/// viewer's history has none).
fn history_entries(audited: Vec<v1::AuditEntry>) -> Vec<HistoryEntry> {
    let mut entries = Vec::with_capacity(audited.len());
    let mut previous: Option<v1::Documents> = None;
    for entry in audited.into_iter().rev() {
        let base = if entry.summary == "create" { Some(v1::Documents::default()) } else { previous.take() };
        let (changes, changes_total) = match (&base, &entry.documents) {
            (Some(before), Some(after)) => {
                let mut changes = Vec::new();
                let mut total =
                    diff::document("config", before.config_json.as_deref(), after.config_json.as_deref(), &mut changes);
                total +=
                    diff::document("theme", before.theme_json.as_deref(), after.theme_json.as_deref(), &mut changes);
                if let Some(integrations) = after.integrations_json.as_deref() {
                    if before.integrations_json.is_some() || entry.summary == "create" {
                        total += diff::document(
                            "integrations",
                            before.integrations_json.as_deref(),
                            Some(integrations),
                            &mut changes,
                        );
                    }
                }
                (Some(changes), total)
            }
            _ => (None, 0),
        };
        previous = entry.documents.or(base);
        entries.push(HistoryEntry {
            revision: entry.revision,
            at_unix_ms: entry.at_unix_ms,
            actor: entry.actor,
            reason: entry.reason,
            summary: entry.summary,
            changes,
            changes_total,
        });
    }
    entries.reverse();
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(revision: u64, summary: &str, theme: Option<&str>) -> v1::AuditEntry {
        v1::AuditEntry {
            revision,
            summary: summary.to_owned(),
            documents: theme.map(|theme| v1::Documents {
                config_json: Some("{}".to_owned()),
                theme_json: Some(theme.to_owned()),
                integrations_json: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn each_change_is_diffed_against_the_documents_before_it() {
        let entries = history_entries(vec![
            entry(9, "update theme", Some(r#"{"c":3}"#)),
            entry(7, "pin eu-west", None),
            entry(5, "update theme", Some(r#"{"c":2}"#)),
            entry(2, "create", Some(r#"{"c":1}"#)),
        ]);
        let pointers = |index: usize| {
            entries[index].changes.as_ref().map(|changes| {
                changes.iter().map(|change| (change.pointer.clone(), change.after.clone())).collect::<Vec<_>>()
            })
        };
        assert_eq!(pointers(0), Some(vec![("/c".to_owned(), Some(serde_json::json!(3)))]));
        assert_eq!(pointers(1), None, "a pin changes no document");
        assert_eq!(pointers(2), Some(vec![("/c".to_owned(), Some(serde_json::json!(2)))]));
        assert_eq!(pointers(3), Some(vec![("/c".to_owned(), Some(serde_json::json!(1)))]));
        // The oldest entry read is only a base when it is not a create.
        let window =
            history_entries(vec![entry(9, "update theme", Some(r#"{"c":3}"#)), entry(5, "update theme", Some("{}"))]);
        assert!(window[1].changes.is_none());
    }

    #[test]
    fn a_search_splices_only_its_tenants_into_the_model() {
        let published = Published {
            rest: r#"{"at_unix_ms":1}"#.to_owned(),
            tenants: vec![
                ("acme".to_owned(), r#"{"id":"acme"}"#.to_owned()),
                ("globex".to_owned(), r#"{"id":"globex"}"#.to_owned()),
            ],
        };
        let event: serde_json::Value = serde_json::from_str(&event_json(&published, "glo")).expect("JSON");
        assert_eq!(event["tenants"], serde_json::json!([{"id": "globex"}]));
        assert_eq!((event["tenants_matched"].as_u64(), event["tenants_total"].as_u64()), (Some(1), Some(2)));
        assert_eq!(event["at_unix_ms"], 1);
    }
}
