//! Request latency histograms, rendered as Prometheus text with the rest of
//! the node's metrics in [`super::http`].

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use openraft::network::RPCTypes;

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

/// Latency histograms per RPC, keyed by a static name so the map is bounded
/// by the number of methods.
#[derive(Debug, Default)]
pub struct Metrics {
    rpc: Mutex<BTreeMap<&'static str, Histogram>>,
}

impl Metrics {
    /// Records one call of `method` that took `elapsed`.
    pub fn observe(&self, method: &'static str, elapsed: Duration) {
        if let Ok(mut rpc) = self.rpc.lock() {
            rpc.entry(method).or_default().observe(elapsed.as_secs_f64());
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

/// Records the time from its creation to its drop.
pub struct Timer<'a> {
    metrics: &'a Metrics,
    method: &'static str,
    started: std::time::Instant,
}

impl<'a> Timer<'a> {
    pub fn start(metrics: &'a Metrics, method: &'static str) -> Self {
        Self { metrics, method, started: std::time::Instant::now() }
    }
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        self.metrics.observe(self.method, self.started.elapsed());
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
