//! `GET /api/config/events`: the Host's runtime config, live, as
//! server-sent events. The first event is the config served now; each
//! later one is a new version (what `/config/{tenant}.json` would serve,
//! byte for byte: `configVersion`, `region` and all), so a page shows a
//! publish without a reload. Events are named `config`, or `canary` for a
//! staged canary's version, sent to a request that opts in as `/config`'s
//! are.
//!
//! Streams end when the tenant leaves the view or may no longer be read
//! here (suspended, pinned to other regions), or when the node stops; they are
//! capped at [`CONFIG_EVENT_STREAMS_MAX`], and send a keep-alive comment
//! every [`CONFIG_EVENT_KEEPALIVE_MS`]. `X-Accel-Buffering: no` tells nginx
//! not to buffer them.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream;
use tokio::sync::{watch, OwnedSemaphorePermit};

use crate::limits::{CONFIG_EVENT_KEEPALIVE_MS, RETRY_AFTER_S};
use crate::node::{wants_canary, with_tenant_headers, Node, ReadTenant};
use crate::policy::{decide, Access};

/// What one stream follows, between two events.
struct Follow {
    node: Arc<Node>,
    tenant: String,
    canary: bool,
    /// The SHA-256 of what was sent last.
    sent: Option<String>,
    changed: watch::Receiver<u64>,
    stopping: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
}

impl Follow {
    /// The next event: the config as served now once it differs from what
    /// was sent; `None` once the tenant is gone, no longer readable here
    /// (suspended, or pinned away: a reconnect then gets the refusal), or
    /// the node stops.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            let entry = self.node.agent.tenant(&self.tenant)?;
            decide(&entry.record, &self.node.region, Access::Read, self.node.is_fresh()).ok()?;
            let (kind, version, served) = match entry.canary_served().filter(|_| self.canary) {
                Some(canary) => ("canary", entry.record.canary_revision, canary),
                None => ("config", entry.config_version(), entry.served()),
            };
            if self.sent.as_ref() != Some(&served.sha256) {
                self.sent = Some(served.sha256.clone());
                let data = String::from_utf8_lossy(&served.json).into_owned();
                let event = Event::default().event(kind).id(version.to_string()).data(data);
                return Some((Ok(event), self));
            }
            tokio::select! {
                changed = self.changed.changed() => changed.ok()?,
                _ = self.stopping.wait_for(|stopping| *stopping) => return None,
            }
        }
    }
}

pub(crate) async fn config_events(
    State(node): State<Arc<Node>>,
    ReadTenant(entry): ReadTenant,
    headers: HeaderMap,
) -> Response {
    let Ok(permit) = node.event_streams.clone().try_acquire_owned() else {
        let retry_after = [(header::RETRY_AFTER, RETRY_AFTER_S.to_string())];
        return (StatusCode::SERVICE_UNAVAILABLE, retry_after, "too many live-config streams; retry later\n")
            .into_response();
    };
    let follow = Follow {
        node: node.clone(),
        tenant: entry.id().to_owned(),
        canary: wants_canary(&headers),
        sent: None,
        changed: node.agent.changed(),
        stopping: node.stopping.clone(),
        _permit: permit,
    };
    let events = stream::unfold(follow, Follow::next);
    let keep_alive = KeepAlive::new().interval(Duration::from_millis(CONFIG_EVENT_KEEPALIVE_MS));
    let mut response = Sse::new(events).keep_alive(keep_alive).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    with_tenant_headers(response, &entry, &node.region)
}
