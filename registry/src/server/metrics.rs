//! Request latency histograms, rendered as Prometheus text with the rest of
//! the node's metrics in [`super::http`].

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use openraft::network::RPCTypes;
use tonic::codegen::{http, BoxFuture, Service};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS_SECONDS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Count per bucket (not cumulative); the last slot is +Inf.
    counts: [u64; BUCKETS_SECONDS.len() + 1],
    sum_seconds: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let bucket = BUCKETS_SECONDS.iter().position(|bound| seconds <= *bound).unwrap_or(BUCKETS_SECONDS.len());
        self.counts[bucket] += 1;
        self.sum_seconds += seconds;
        self.count += 1;
    }
}

/// Latency histograms per RPC, by method name: bounded by the methods the
/// access table knows ([`RpcTimingLayer`]) and the three Raft RPCs.
#[derive(Debug, Default)]
pub struct Metrics {
    rpc: Mutex<BTreeMap<String, Histogram>>,
}

impl Metrics {
    /// Records one call of `method` that took `elapsed`.
    pub fn observe(&self, method: &str, elapsed: Duration) {
        if let Ok(mut rpc) = self.rpc.lock() {
            match rpc.get_mut(method) {
                Some(histogram) => histogram.observe(elapsed.as_secs_f64()),
                None => rpc.entry(method.to_owned()).or_default().observe(elapsed.as_secs_f64()),
            }
        }
    }

    /// Records one outgoing Raft RPC.
    pub fn observe_raft_rpc(&self, action: RPCTypes, elapsed: Duration) {
        let method = match action {
            RPCTypes::Vote => "raft.Vote",
            RPCTypes::AppendEntries => "raft.AppendEntries",
            RPCTypes::InstallSnapshot => "raft.InstallSnapshot",
        };
        self.observe(method, elapsed);
    }

    /// Appends the histograms to `out` in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let Ok(rpc) = self.rpc.lock() else { return };
        let _ =
            writeln!(out, "# HELP tenantry_rpc_duration_seconds Latency of gRPC calls served (and Raft RPCs sent).");
        let _ = writeln!(out, "# TYPE tenantry_rpc_duration_seconds histogram");
        for (method, histogram) in rpc.iter() {
            let mut cumulative = 0;
            for (bound, count) in BUCKETS_SECONDS.iter().zip(histogram.counts.iter()) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "tenantry_rpc_duration_seconds_bucket{{method=\"{method}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "tenantry_rpc_duration_seconds_bucket{{method=\"{method}\",le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(out, "tenantry_rpc_duration_seconds_sum{{method=\"{method}\"}} {}", histogram.sum_seconds);
            let _ = writeln!(out, "tenantry_rpc_duration_seconds_count{{method=\"{method}\"}} {}", histogram.count);
        }
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
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(out.contains(r#"tenantry_rpc_duration_seconds_bucket{method="GetTenant",le="0.0005"} 1"#));
        assert!(out.contains(r#"tenantry_rpc_duration_seconds_bucket{method="GetTenant",le="0.05"} 2"#));
        assert!(out.contains(r#"tenantry_rpc_duration_seconds_bucket{method="GetTenant",le="10"} 2"#));
        assert!(out.contains(r#"tenantry_rpc_duration_seconds_bucket{method="GetTenant",le="+Inf"} 3"#));
        assert!(out.contains(r#"tenantry_rpc_duration_seconds_count{method="GetTenant"} 3"#));
    }
}
