//! Percentiles and a little table printing shared by the suites.

use std::time::Duration;

use serde_json::{json, Value};

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Percentiles {
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

impl Percentiles {
    pub(crate) fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let at = |quantile: f64| {
            let index = ((samples.len() as f64 * quantile).ceil() as usize)
                .saturating_sub(1)
                .min(samples.len().saturating_sub(1));
            samples.get(index).map_or(0.0, |sample| sample.as_secs_f64() * 1000.0)
        };
        Self { p50: at(0.50), p90: at(0.90), p99: at(0.99), max: at(1.0) }
    }

    /// `p50 / p99 / max`.
    pub(crate) fn cell(self) -> String {
        format!("{:.1} / {:.1} / {:.1}", self.p50, self.p99, self.max)
    }

    pub(crate) fn json(self) -> Value {
        json!({ "p50_ms": self.p50, "p90_ms": self.p90, "p99_ms": self.p99, "max_ms": self.max })
    }
}

/// Resident set size of a process, in bytes (from /proc).
pub(crate) fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for pid {pid}"))?;
    Ok(kib * 1024)
}
