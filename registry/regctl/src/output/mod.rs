//! Everything regctl prints: human tables by default, JSON with `-o json`.
//! The only module of the crate that writes to stdout.

/// Like `println!`, but a closed stdout (`regctl … | head`) ends regctl
/// quietly instead of panicking.
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(error) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if error.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

mod cluster;
mod pipeline;
mod tenants;

use serde_json::Value;

pub(super) use cluster::{agents, certs, cluster_status, failover, membership, smoke, topology};
pub(super) use pipeline::{diff, problems, publish_plan, publish_summary, DiffRow};
pub(super) use plumbing::progress::Progress;
pub(super) use tenants::{history, tenant, tenant_list, write_response};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Human,
    Json,
}

impl Format {
    /// How long work shows its progress: bars on a terminal for humans;
    /// otherwise lines, as [`info`] prints them (stdout keeps a JSON answer alone).
    pub(crate) fn progress(self) -> plumbing::progress::Show {
        use plumbing::progress::{Lines, Show};
        match self {
            Format::Human => Show { bars: true, lines: Lines::Stdout },
            Format::Json => Show { bars: false, lines: Lines::Stderr },
        }
    }
}

/// Prints an error to stderr.
pub(super) fn error(message: &str) {
    eprintln!("error: {message}");
}

/// Prints a line of progress or information (human format only).
pub(super) fn info(format: Format, message: &str) {
    match format {
        Format::Human => println!("{message}"),
        Format::Json => eprintln!("{message}"),
    }
}

/// Prints a JSON value for scripts.
pub(super) fn json_value(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

fn parse_or_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// Unix milliseconds as RFC 3339 in UTC to the second (`2026-12-01T13:00:31Z`).
pub(super) fn utc(unix_ms: u64) -> String {
    trust::tls::rfc3339((unix_ms / 1000) as i64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_rfc3339_utc_to_the_second() {
        assert_eq!(super::utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc(1_796_130_031_999), "2026-12-01T13:00:31Z");
    }
}
