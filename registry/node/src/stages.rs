//! Where a write's time goes on this node, per Raft entry: proposed (on the
//! leader) → flushed (in this node's WAL) → committed → applied → first delta
//! sent to an agent → acknowledged by every connected agent of each region.
//! Each stage is timed from the one before it, as histograms in `/metrics`
//! (`tenantry_write_stage_seconds{stage}`, and
//! `tenantry_write_acked_seconds{region}` from the first delta sent).
//!
//! The stores, the proposer, the agent streams and the agent directory mark
//! stages as they pass them; a stage's duration is observed once, when the
//! later of its two ends is marked. Bounded: the last [`WINDOW`] entries.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// How many recent entries are timed.
pub const WINDOW: u64 = 4096;

/// A stage an entry passes on this node, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Proposed = 0,
    Flushed = 1,
    Committed = 2,
    Applied = 3,
    DeltaSent = 4,
}

const STAGES: usize = 5;
const NAMES: [&str; STAGES] = ["proposed", "flushed", "committed", "applied", "delta_sent"];

/// Upper bounds of the buckets, in seconds.
const BUCKETS_SECONDS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegionLabel {
    region: String,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    index: u64,
    at: [Option<Instant>; STAGES],
}

struct Marks {
    slots: Vec<Slot>,
    /// The highest index marked per stage (range marks start after it).
    through: [u64; STAGES],
    /// Per region, the revision every connected agent had acknowledged.
    acked: HashMap<String, u64>,
}

pub struct Stages {
    marks: Mutex<Marks>,
    durations: Family<StageLabel, Histogram, fn() -> Histogram>,
    acked: Family<RegionLabel, Histogram, fn() -> Histogram>,
}

fn histogram() -> Histogram {
    Histogram::new(BUCKETS_SECONDS.iter().copied())
}

impl Default for Stages {
    fn default() -> Self {
        let marks =
            Marks { slots: vec![Slot::default(); WINDOW as usize], through: [0; STAGES], acked: HashMap::new() };
        Self {
            marks: Mutex::new(marks),
            durations: Family::new_with_constructor(histogram),
            acked: Family::new_with_constructor(histogram),
        }
    }
}

impl Marks {
    /// The slot of `index`, emptied if it held an older entry.
    fn slot(&mut self, index: u64) -> &mut Slot {
        let slot = &mut self.slots[(index % WINDOW) as usize];
        if slot.index != index {
            *slot = Slot { index, at: [None; STAGES] };
        }
        slot
    }
}

impl Stages {
    fn marks(&self) -> MutexGuard<'_, Marks> {
        match self.marks.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Sets `stage` of `index` at `at` (once) and observes the stages it ends
    /// or starts whose other end is known.
    fn set(&self, marks: &mut Marks, stage: Stage, index: u64, at: Instant) {
        let stage = stage as usize;
        let slot = marks.slot(index);
        if slot.at[stage].is_some() {
            return;
        }
        slot.at[stage] = Some(at);
        let times = slot.at;
        let observe = |later: usize| {
            if let (Some(start), Some(end)) = (times[later - 1], times[later]) {
                if let Some(took) = end.checked_duration_since(start) {
                    self.durations.get_or_create(&StageLabel { stage: NAMES[later] }).observe(took.as_secs_f64());
                }
            }
        };
        if stage > 0 {
            observe(stage);
        }
        if stage + 1 < STAGES {
            observe(stage + 1);
        }
    }

    /// Every entry up to `through` passed `stage` now (those not marked yet).
    pub fn mark(&self, stage: Stage, through: u64) {
        let now = Instant::now();
        let mut marks = self.marks();
        let from = (marks.through[stage as usize] + 1).max((through + 1).saturating_sub(WINDOW));
        for index in from..=through {
            self.set(&mut marks, stage, index, now);
        }
        marks.through[stage as usize] = marks.through[stage as usize].max(through);
    }

    /// The leader proposed entry `index` at `at` (known once the write returns).
    pub fn proposed(&self, index: u64, at: Instant) {
        let mut marks = self.marks();
        self.set(&mut marks, Stage::Proposed, index, at);
    }

    /// Every connected agent of `region` has now acknowledged `revision`.
    pub fn acked(&self, region: &str, revision: u64) {
        let now = Instant::now();
        let mut marks = self.marks();
        let before = marks.acked.get(region).copied().unwrap_or(revision);
        marks.acked.insert(region.to_owned(), revision);
        let histogram = self.acked.get_or_create(&RegionLabel { region: region.to_owned() });
        for index in (before + 1).max((revision + 1).saturating_sub(WINDOW))..=revision {
            let slot = marks.slots[(index % WINDOW) as usize];
            let sent = slot.at[Stage::DeltaSent as usize].filter(|_| slot.index == index);
            if let Some(took) = sent.and_then(|sent| now.checked_duration_since(sent)) {
                histogram.observe(took.as_secs_f64());
            }
        }
    }

    /// Adds the histograms to a scrape's `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "tenantry_write_stage_seconds",
            "Time a Raft entry spent reaching each stage on this node from the one before: flushed (from proposed, \
             leader only), committed, applied, delta_sent (the first delta to an agent)",
            self.durations.clone(),
        );
        registry.register(
            "tenantry_write_acked_seconds",
            "Time from an entry's first delta to its acknowledgement by every connected agent of a region",
            self.acked.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn scrape(stages: &Stages) -> String {
        let mut registry = Registry::default();
        stages.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        text
    }

    fn count(text: &str, series: &str) -> u64 {
        text.lines()
            .find(|line| line.starts_with(series))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn each_stage_is_timed_once_from_the_one_before() {
        let stages = Stages::default();
        let proposed = Instant::now();
        stages.mark(Stage::Flushed, 3);
        stages.mark(Stage::Committed, 3);
        stages.mark(Stage::Applied, 2);
        stages.proposed(3, proposed - Duration::from_millis(5));
        stages.mark(Stage::Applied, 3);
        stages.mark(Stage::Applied, 3);
        stages.mark(Stage::DeltaSent, 3);
        let text = scrape(&stages);
        assert_eq!(count(&text, r#"tenantry_write_stage_seconds_count{stage="flushed"}"#), 1, "{text}");
        assert_eq!(count(&text, r#"tenantry_write_stage_seconds_count{stage="committed"}"#), 3, "{text}");
        assert_eq!(count(&text, r#"tenantry_write_stage_seconds_count{stage="applied"}"#), 3, "{text}");
        assert_eq!(count(&text, r#"tenantry_write_stage_seconds_count{stage="delta_sent"}"#), 3, "{text}");

        stages.acked("eu-west", 0);
        stages.acked("eu-west", 2);
        stages.acked("eu-west", 3);
        let text = scrape(&stages);
        assert_eq!(count(&text, r#"tenantry_write_acked_seconds_count{region="eu-west"}"#), 3, "{text}");
    }

    #[test]
    fn only_the_last_window_of_entries_is_kept() {
        let stages = Stages::default();
        stages.mark(Stage::Flushed, 3 * WINDOW);
        stages.mark(Stage::Committed, 3 * WINDOW);
        let text = scrape(&stages);
        assert_eq!(count(&text, r#"tenantry_write_stage_seconds_count{stage="committed"}"#), WINDOW, "{text}");
    }
}
