//! Request latency histograms (prometheus-client), exposed with the rest of
//! the node's metrics in [`super::http`].

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tonic::codegen::{http, BoxFuture, Service};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS_SECONDS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Method {
    method: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS_SECONDS.iter().copied())
}

/// Latency histograms per RPC, by method name: bounded by the methods the
/// access table knows ([`RpcTimingLayer`]) and the Raft RPCs.
#[derive(Debug)]
pub struct Metrics {
    rpc: Family<Method, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self { rpc: Family::new_with_constructor(latency_histogram) }
    }
}

impl Metrics {
    /// Records one call of `method` that took `elapsed`.
    pub fn observe(&self, method: &str, elapsed: Duration) {
        self.rpc.get_or_create(&Method { method: method.to_owned() }).observe(elapsed.as_secs_f64());
    }

    /// Adds the histograms to a scrape's `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "tenantry_rpc_duration_seconds",
            "Latency of gRPC calls served (and Raft RPCs sent)",
            self.rpc.clone(),
        );
    }
}

/// The gRPC service whose calls are timed, per method.
const TIMED_SERVICE: &str = "/tenantry.v1.Registry/";

/// Times every call of the operators' API from its arrival until its
/// response (forwarding to the leader included), in one place instead of in
/// each handler. It sits inside the authorization layer, so only methods
/// of the access table reach it and the per-method map stays bounded.
#[derive(Clone)]
pub(crate) struct RpcTimingLayer {
    pub(crate) metrics: Arc<Metrics>,
}

impl<S> tower::Layer<S> for RpcTimingLayer {
    type Service = RpcTiming<S>;

    fn layer(&self, inner: S) -> RpcTiming<S> {
        RpcTiming { inner, metrics: self.metrics.clone() }
    }
}

#[derive(Clone)]
pub(crate) struct RpcTiming<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B> Service<http::Request<B>> for RpcTiming<S>
where
    S: Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().strip_prefix(TIMED_SERVICE).map(str::to_owned);
        let started = Instant::now();
        let response = self.inner.call(request);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let response = response.await;
            if let Some(method) = method {
                metrics.observe(&method, started.elapsed());
            }
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.observe("GetTenant", Duration::from_micros(300));
        metrics.observe("GetTenant", Duration::from_millis(30));
        metrics.observe("GetTenant", Duration::from_secs(60));
        let mut scrape = plumbing::metrics::Scrape::default();
        metrics.register(scrape.registry());
        let out = scrape.encode();
        assert!(out.contains(r#"tenantry_rpc_duration_seconds_bucket{le="0.0005",method="GetTenant"} 1"#), "{out}");
        assert!(out.contains(r#"tenantry_rpc_duration_seconds_bucket{le="0.05",method="GetTenant"} 2"#), "{out}");
        assert!(out.contains(r#"tenantry_rpc_duration_seconds_bucket{le="10.0",method="GetTenant"} 2"#), "{out}");
        assert!(out.contains(r#"tenantry_rpc_duration_seconds_bucket{le="+Inf",method="GetTenant"} 3"#), "{out}");
        assert!(out.contains(r#"tenantry_rpc_duration_seconds_count{method="GetTenant"} 3"#), "{out}");
    }
}
