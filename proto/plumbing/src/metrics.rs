//! Every `/metrics` endpoint, encoded by prometheus-client. A scraper that
//! asks for OpenMetrics (`Accept: application/openmetrics-text`, as
//! Prometheus does) gets it; anyone else gets the classic Prometheus text
//! format (0.0.4), which is what `promtool check metrics`, curl and older
//! tools read. Most values are ones the process keeps anyway (atomic
//! counters, a Raft state, a queue length): a [`Scrape`] takes them as
//! constants when it is asked for, beside long-lived metrics such as
//! histograms registered in its [`Registry`]. Times are in seconds, as
//! Prometheus' conventions want.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// The content type of [`Scrape::encode`]'s answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of [`Scrape::encode_classic`]'s answer.
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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

    /// `tenantry_tls_certificate_expiry_timestamp_seconds`: when the
    /// process's own certificate expires (unix seconds), if it has one.
    pub fn certificate_expiry(&mut self, not_after_unix_s: Option<i64>) {
        if let Some(not_after) = not_after_unix_s {
            let help_text = "When this process's certificate expires, in unix seconds";
            self.registry.register(
                "tenantry_tls_certificate_expiry_timestamp_seconds",
                help_text,
                ConstGauge::new(not_after),
            );
        }
    }

    /// A gauge of a time in seconds; `None` is +Inf (e.g. never happened).
    pub fn seconds(&mut self, name: &str, help_text: &str, value: Option<std::time::Duration>) {
        let seconds = value.map_or(f64::INFINITY, |value| value.as_secs_f64());
        self.registry.register(name, help(help_text), ConstGauge::new(seconds));
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
        // prometheus-client writes infinite values as Rust prints them
        // (`inf`); both text formats spell them `+Inf` and `-Inf`.
        if out.contains(" inf\n") || out.contains(" -inf\n") {
            out = out.replace(" inf\n", " +Inf\n").replace(" -inf\n", " -Inf\n");
        }
        out
    }

    /// The classic Prometheus text format: the OpenMetrics text with each
    /// counter's HELP and TYPE named as its samples are (`…_total`), and no
    /// `# UNIT` or `# EOF` lines. One pass to find the counters, one to
    /// write.
    pub fn encode_classic(&self) -> String {
        let open = self.encode();
        let counters: std::collections::HashSet<&str> =
            open.lines().filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
        let mut out = String::with_capacity(open.len() + 16 * counters.len());
        for line in open.lines() {
            if line == "# EOF" || line.starts_with("# UNIT ") {
                continue;
            }
            let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
                let rest = line.strip_prefix(prefix)?;
                let (name, tail) = rest.split_once(' ')?;
                counters.contains(name).then(|| format!("{prefix}{name}_total {tail}"))
            });
            out.push_str(renamed.as_deref().unwrap_or(line));
            out.push('\n');
        }
        out
    }

    /// The scrape as an HTTP answer to a request with `headers`:
    /// OpenMetrics if it accepts that, else the classic format.
    pub fn into_response(self, headers: &axum::http::HeaderMap) -> axum::response::Response {
        use axum::response::IntoResponse;
        let openmetrics = headers
            .get_all(axum::http::header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|accept| accept.contains("application/openmetrics-text"));
        if openmetrics {
            ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], self.encode()).into_response()
        } else {
            ([(axum::http::header::CONTENT_TYPE, CLASSIC_CONTENT_TYPE)], self.encode_classic()).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_and_counters_are_exposed_as_openmetrics() {
        let mut scrape = Scrape::default();
        scrape.gauge("tenantry_raft_term", "Current Raft term.", 3);
        scrape.seconds("tenantry_staleness_seconds", "Never proven current.", None);
        scrape.counter("tenantry_deltas_total", "Deltas applied.", 7);
        let text = scrape.encode();
        assert!(text.contains("# HELP tenantry_raft_term Current Raft term.\n"), "{text}");
        assert!(text.contains("# TYPE tenantry_raft_term gauge\ntenantry_raft_term 3\n"), "{text}");
        assert!(text.contains("tenantry_staleness_seconds +Inf\n"), "{text}");
        assert!(text.contains("# TYPE tenantry_deltas counter\ntenantry_deltas_total 7\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        let classic = scrape.encode_classic();
        assert!(classic.contains("# HELP tenantry_deltas_total Deltas applied.\n"), "{classic}");
        assert!(classic.contains("# TYPE tenantry_deltas_total counter\ntenantry_deltas_total 7\n"), "{classic}");
        assert!(classic.contains("# TYPE tenantry_raft_term gauge\ntenantry_raft_term 3\n"), "{classic}");
        assert!(!classic.contains("# EOF"), "{classic}");
    }
}
