//! Progress of long work (regctl's `publish`, `snapshot save`, `failover`
//! waits and `move`; the registry's offline `snapshot restore`): on a
//! terminal, an indicatif bar (a spinner when the end is unknown) on stderr,
//! each finished step printed above it; otherwise each step as a plain line,
//! so a log or a pipe reads them, on the stream the caller names (stderr
//! when stdout holds a JSON answer).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// How often a spinner turns while nothing happens.
const TICK: Duration = Duration::from_millis(120);

/// A spinner with the current step.
const STEPS: &str = "{spinner} {msg} ({elapsed})";

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Show {
    /// Draw a bar when stderr is a terminal (human output only).
    pub bars: bool,
    /// Where steps go as plain lines when no bar is drawn.
    pub lines: Lines,
}

/// A standard stream for plain lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    Stdout,
    Stderr,
}

pub struct Progress {
    bar: Option<ProgressBar>,
    lines: Lines,
}

fn style(template: &str, fallback: fn() -> ProgressStyle) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| fallback()).progress_chars("#>.")
}

fn count_template(unit: &str) -> String {
    format!("[{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}} ({{elapsed}})")
}

impl Progress {
    fn with(show: Show, make: impl FnOnce() -> ProgressBar) -> Self {
        let drawn = show.bars && std::io::stderr().is_terminal();
        Self { bar: drawn.then(make), lines: show.lines }
    }

    /// Work of `total` units (tenants, …) named `unit`.
    pub fn count(total: u64, unit: &str, show: Show) -> Self {
        Self::with(show, || {
            ProgressBar::new(total).with_style(style(&count_template(unit), ProgressStyle::default_bar))
        })
    }

    /// `total` bytes to read or write.
    pub fn bytes_of(total: u64, show: Show) -> Self {
        let template = "[{bar:30}] {bytes}/{total_bytes} ({binary_bytes_per_sec}) {msg}";
        Self::with(show, || ProgressBar::new(total).with_style(style(template, ProgressStyle::default_bar)))
    }

    /// A spinner drawn with `template`, turning on its own.
    fn spinner(show: Show, template: &str) -> Self {
        Self::with(show, || {
            let bar = ProgressBar::new_spinner().with_style(style(template, ProgressStyle::default_spinner));
            bar.enable_steady_tick(TICK);
            bar
        })
    }

    /// Bytes arriving, their total unknown until the end.
    pub fn bytes(show: Show) -> Self {
        Self::spinner(show, "{spinner} {bytes} received ({binary_bytes_per_sec}) {msg}")
    }

    /// Steps whose end is unknown (waits).
    pub fn steps(show: Show) -> Self {
        Self::spinner(show, STEPS)
    }

    /// A step: on the bar (the last one printed above it), else a line.
    pub fn step(&self, message: &str) {
        match &self.bar {
            Some(bar) => {
                bar.println(message);
                bar.set_message(message.to_owned());
            }
            #[allow(clippy::print_stdout)] // The stream the calling program chose for its lines.
            None if self.lines == Lines::Stdout => println!("{message}"),
            None => eprintln!("{message}"),
        }
    }

    /// Moves the bar to `done` (no line: a count or bytes, not a step).
    pub fn set(&self, done: u64, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            bar.set_message(message.to_owned());
        }
    }

    /// Within steps, a count of its own: `done` of `total` `unit` on a bar
    /// (`done` alone on the spinner while the total is unknown), until
    /// [`Progress::spin`]. No line.
    pub fn measure(&self, done: u64, total: Option<u64>, unit: &str, message: &str) {
        let Some(bar) = &self.bar else { return };
        match total {
            Some(total) => {
                bar.set_style(style(&count_template(unit), ProgressStyle::default_bar));
                bar.set_length(total);
            }
            None => bar.set_style(style(
                &format!("{{spinner}} {{pos}} {unit} {{msg}} ({{elapsed}})"),
                ProgressStyle::default_spinner,
            )),
        }
        bar.set_position(done);
        bar.set_message(message.to_owned());
    }

    /// Back to a spinner after [`Progress::measure`].
    pub fn spin(&self) {
        if let Some(bar) = &self.bar {
            bar.set_style(style(STEPS, ProgressStyle::default_spinner));
        }
    }

    /// Wraps `reader` so that what it reads moves the bar.
    pub fn wrap_read<R: std::io::Read + 'static>(&self, reader: R) -> Box<dyn std::io::Read> {
        match &self.bar {
            Some(bar) => Box::new(bar.wrap_read(reader)),
            None => Box::new(reader),
        }
    }

    /// Ends the bar, leaving it on the screen with `message`.
    pub fn finish(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_with_message(message.to_owned());
        }
    }
}
