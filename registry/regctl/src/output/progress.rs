//! Progress of long work (`publish`, `snapshot save`, `failover` waits,
//! `move`): on a terminal, with human output, an indicatif bar (a spinner
//! when the end is unknown) on stderr, each finished step printed above
//! it; otherwise the steps as plain lines, as `info` prints them, so a log
//! or a pipe reads them and `-o json` keeps stdout for the answer.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::Format;

/// How often a spinner turns while nothing happens.
const TICK: Duration = Duration::from_millis(120);

pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    format: Format,
}

impl Progress {
    fn with(format: Format, make: impl FnOnce() -> ProgressBar) -> Self {
        let shown = format == Format::Human && std::io::stderr().is_terminal();
        Self { bar: shown.then(make), format }
    }

    /// Work of `total` units (tenants, …) named `unit`.
    pub(crate) fn count(total: u64, unit: &str, format: Format) -> Self {
        Self::with(format, || {
            let template = format!("[{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}} ({{elapsed}})");
            let style = ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar());
            ProgressBar::new(total).with_style(style.progress_chars("#>."))
        })
    }

    /// A spinner drawn with `template`, turning on its own.
    fn spinner(format: Format, template: &str) -> Self {
        Self::with(format, || {
            let style = ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner());
            let bar = ProgressBar::new_spinner().with_style(style);
            bar.enable_steady_tick(TICK);
            bar
        })
    }

    /// Bytes arriving, their total unknown until the end.
    pub(crate) fn bytes(format: Format) -> Self {
        Self::spinner(format, "{spinner} {bytes} received ({binary_bytes_per_sec}) {msg}")
    }

    /// Steps whose end is unknown (waits).
    pub(crate) fn steps(format: Format) -> Self {
        Self::spinner(format, "{spinner} {msg} ({elapsed})")
    }

    /// A step: on the bar (the last one printed above it), else a line.
    pub(crate) fn step(&self, message: &str) {
        match &self.bar {
            Some(bar) => {
                bar.println(message);
                bar.set_message(message.to_owned());
            }
            None => super::info(self.format, message),
        }
    }

    /// Moves the bar to `done` (no line: a count or bytes, not a step).
    pub(crate) fn set(&self, done: u64, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            bar.set_message(message.to_owned());
        }
    }

    /// Ends the bar, leaving it on the screen with `message`.
    pub(crate) fn finish(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_with_message(message.to_owned());
        }
    }
}
