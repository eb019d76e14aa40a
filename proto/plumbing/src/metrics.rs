//! Every `/metrics` endpoint, encoded by prometheus-client in the
//! OpenMetrics text format. Most values are ones the process keeps anyway
//! (atomic counters, a Raft state, a queue length): a [`Scrape`] takes them
//! as constants when it is asked for, beside long-lived metrics such as
//! histograms registered in its [`Registry`].

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// The content type of [`Scrape::encode`]'s answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics of one scrape.
#[derive(Debug, Default)]
pub struct Scrape {
    registry: Registry,
}

/// prometheus-client ends each help text with a full stop itself.
fn help(text: &str) -> &str {
    text.strip_suffix('.').unwrap_or(text)
}

impl Scrape {
    /// A gauge `name` of `value` (saturated at `i64::MAX`).
    pub fn gauge(&mut self, name: &str, help_text: &str, value: u64) {
        let value = i64::try_from(value).unwrap_or(i64::MAX);
        self.registry.register(name, help(help_text), ConstGauge::new(value));
    }

    /// A counter; `name` ends in `_total`, as exposed.
    pub fn counter(&mut self, name: &str, help_text: &str, value: u64) {
        let family = name.strip_suffix("_total").unwrap_or(name);
        self.registry.register(family, help(help_text), ConstCounter::new(value));
    }

    /// For metrics that live longer than a scrape (register a clone).
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The OpenMetrics text, ending in `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String does not fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// The scrape as an HTTP answer.
    pub fn into_response(self) -> axum::response::Response {
        use axum::response::IntoResponse;
        ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], self.encode()).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_and_counters_are_exposed_as_openmetrics() {
        let mut scrape = Scrape::default();
        scrape.gauge("tenantry_raft_term", "Current Raft term.", 3);
        scrape.gauge("tenantry_staleness_ms", "Never proven current.", u64::MAX);
        scrape.counter("tenantry_deltas_total", "Deltas applied.", 7);
        let text = scrape.encode();
        assert!(text.contains("# HELP tenantry_raft_term Current Raft term.\n"), "{text}");
        assert!(text.contains("# TYPE tenantry_raft_term gauge\ntenantry_raft_term 3\n"), "{text}");
        assert!(text.contains(&format!("tenantry_staleness_ms {}\n", i64::MAX)), "{text}");
        assert!(text.contains("# TYPE tenantry_deltas counter\ntenantry_deltas_total 7\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
