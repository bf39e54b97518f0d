//! The stats collector: fed by every request's record (streaming or not, cancelled
//! included), per provider, target, model and scenario. Recording touches atomics and one
//! shard of a concurrent map; it never takes a global lock and never blocks a request.

pub mod render;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;

use crate::failure::Class;
use crate::record::{Outcome, RecordSink, RequestRecord};

/// Why a request failed, as stats count it: the typed failure's classes.
pub const FAILURE_CLASSES: [Class; Class::ALL.len()] = Class::ALL;

/// Histogram bucket upper bounds in microseconds: 100 µs to ~10 min, ×1.5 per step.
fn bucket_bounds() -> &'static [u64] {
    static BOUNDS: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    BOUNDS.get_or_init(|| {
        let mut bounds = Vec::new();
        let mut bound = 100.0f64;
        while bound < 600_000_000.0 {
            bounds.push(bound as u64);
            bound *= 1.5;
        }
        bounds
    })
}

/// A lock-free histogram of durations over fixed log-scale buckets.
pub struct Histogram {
    counts: Vec<AtomicU64>,
    /// Beyond the last bound.
    overflow: AtomicU64,
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: bucket_bounds().iter().map(|_| AtomicU64::new(0)).collect(),
            overflow: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn record(&self, value: Duration) {
        let us = value.as_micros().min(u128::from(u64::MAX)) as u64;
        match bucket_bounds().iter().position(|&bound| us <= bound) {
            Some(i) => self.counts[i].fetch_add(1, Ordering::Relaxed),
            None => self.overflow.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_us.load(Ordering::Relaxed))
    }

    /// One histogram holding every sample of `parts`: percentiles of a group are read from
    /// it, not guessed from its members'.
    pub fn merged<'a>(parts: impl IntoIterator<Item = &'a Histogram>) -> Histogram {
        let merged = Histogram::default();
        for part in parts {
            for (into, from) in merged.counts.iter().zip(&part.counts) {
                into.fetch_add(from.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            for (into, from) in [
                (&merged.overflow, &part.overflow),
                (&merged.sum_us, &part.sum_us),
                (&merged.count, &part.count),
            ] {
                into.fetch_add(from.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
        merged
    }

    /// `(upper bound in µs, cumulative count)` per bucket, for Prometheus.
    pub fn cumulative(&self) -> Vec<(u64, u64)> {
        let mut total = 0;
        bucket_bounds()
            .iter()
            .zip(&self.counts)
            .map(|(&bound, count)| {
                total += count.load(Ordering::Relaxed);
                (bound, total)
            })
            .collect()
    }

    /// The `q` quantile (0..1) as the upper bound of the bucket it falls in.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = ((count as f64) * q).ceil().max(1.0) as u64;
        let found = self
            .cumulative()
            .into_iter()
            .find(|&(_, cumulative)| cumulative >= rank);
        let bound = found.map_or(*bucket_bounds().last().expect("buckets"), |(bound, _)| {
            bound
        });
        Some(Duration::from_micros(bound))
    }
}

/// Requests per minute over the last five minutes: five one-minute slots, each stamped with
/// the minute it counts.
#[derive(Default)]
struct Window {
    slots: [(AtomicU64, AtomicU64); 5],
}

impl Window {
    fn record(&self, minute: u64) {
        let (stamp, count) = &self.slots[(minute % 5) as usize];
        if stamp.swap(minute, Ordering::AcqRel) != minute {
            count.store(0, Ordering::Release);
        }
        count.fetch_add(1, Ordering::AcqRel);
    }

    fn per_minute(&self, minute: u64) -> f64 {
        let recent: u64 = self
            .slots
            .iter()
            .filter(|(stamp, _)| minute.saturating_sub(stamp.load(Ordering::Acquire)) < 5)
            .map(|(_, count)| count.load(Ordering::Acquire))
            .sum();
        recent as f64 / 5.0
    }
}

/// Minutes the timeline keeps: the dashboard's last hour.
pub const TIMELINE_MINUTES: u64 = 60;

/// One minute of the whole server: what finished in it.
#[derive(Default)]
pub struct Minute {
    /// The minute counted (Unix seconds / 60); its slot is reused an hour later.
    stamp: AtomicU64,
    pub requests: AtomicU64,
    pub failures: [AtomicU64; FAILURE_CLASSES.len()],
    pub input_tokens: AtomicU64,
    pub output_tokens: AtomicU64,
    pub cache_read_tokens: AtomicU64,
    pub cache_write_tokens: AtomicU64,
}

/// The last hour minute by minute, for charts over time: a ring of slots stamped with
/// their minute, as `Window` does per row. A count that lands while another thread
/// starts the minute may be lost; the rows' totals stay exact.
struct Timeline {
    minutes: Vec<Minute>,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            minutes: (0..TIMELINE_MINUTES).map(|_| Minute::default()).collect(),
        }
    }
}

impl Timeline {
    fn slot(&self, minute: u64) -> &Minute {
        let slot = &self.minutes[(minute % TIMELINE_MINUTES) as usize];
        if slot.stamp.swap(minute, Ordering::AcqRel) != minute {
            for counter in [
                &slot.requests,
                &slot.input_tokens,
                &slot.output_tokens,
                &slot.cache_read_tokens,
                &slot.cache_write_tokens,
            ]
            .into_iter()
            .chain(&slot.failures)
            {
                counter.store(0, Ordering::Release);
            }
        }
        slot
    }

    /// The minutes of the last hour up to `now` that saw requests, oldest first, each with
    /// its start in Unix seconds.
    fn recent(&self, now: SystemTime) -> Vec<(u64, &Minute)> {
        let current = unix_minute(now);
        let mut recent: Vec<(u64, &Minute)> = self
            .minutes
            .iter()
            .map(|slot| (slot.stamp.load(Ordering::Acquire), slot))
            .filter(|(stamp, slot)| {
                current.saturating_sub(*stamp) < TIMELINE_MINUTES
                    && *stamp <= current
                    && slot.requests.load(Ordering::Relaxed) > 0
            })
            .map(|(stamp, slot)| (stamp * 60, slot))
            .collect();
        recent.sort_by_key(|(at, _)| *at);
        recent
    }
}

fn unix_minute(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        / 60
}

/// What a row is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowKey {
    pub provider: String,
    pub target: String,
    pub model: String,
    pub scenario: String,
}

/// What `/api/stats?by=` groups rows by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Provider,
    Target,
    Model,
    Scenario,
}

impl GroupBy {
    pub fn parse(text: &str) -> Option<GroupBy> {
        match text {
            "provider" => Some(GroupBy::Provider),
            "target" => Some(GroupBy::Target),
            "model" => Some(GroupBy::Model),
            "scenario" => Some(GroupBy::Scenario),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Provider => "provider",
            GroupBy::Target => "target",
            GroupBy::Model => "model",
            GroupBy::Scenario => "scenario",
        }
    }

    /// The row's key with every field but the grouped one as `*`.
    pub fn group_key(self, key: &RowKey) -> RowKey {
        let all = || "*".to_string();
        let keep =
            |field: GroupBy, value: &String| if field == self { value.clone() } else { all() };
        RowKey {
            provider: keep(GroupBy::Provider, &key.provider),
            target: keep(GroupBy::Target, &key.target),
            model: keep(GroupBy::Model, &key.model),
            scenario: keep(GroupBy::Scenario, &key.scenario),
        }
    }
}

/// The counters of one row.
#[derive(Default)]
pub struct Row {
    pub requests: AtomicU64,
    pub successes: AtomicU64,
    pub streaming: AtomicU64,
    pub failures: [AtomicU64; FAILURE_CLASSES.len()],
    pub input_tokens: AtomicU64,
    pub output_tokens: AtomicU64,
    pub cache_read_tokens: AtomicU64,
    pub cache_write_tokens: AtomicU64,
    /// CodeWhisperer credits, in millionths.
    pub micro_credits: AtomicU64,
    pub total: Histogram,
    pub ttft: Histogram,
    pub upstream: Histogram,
    pub overhead: Histogram,
    window: Window,
}

impl Row {
    pub fn credits(&self) -> f64 {
        self.micro_credits.load(Ordering::Relaxed) as f64 / 1e6
    }
}

pub struct Stats {
    rows: DashMap<RowKey, Arc<Row>>,
    /// Model names seen, up to [`MAX_MODEL_LABELS`]; later new names count as `other`, so a
    /// client choosing names (through a `provider/*` route) cannot grow stats and metrics.
    models: DashMap<String, ()>,
    timeline: Timeline,
    started: Instant,
}

/// Distinct model labels kept in stats and metrics.
pub const MAX_MODEL_LABELS: usize = 100;

/// The label models beyond [`MAX_MODEL_LABELS`] are counted under.
pub const OTHER_MODEL: &str = "other";

impl Default for Stats {
    fn default() -> Self {
        Stats {
            rows: DashMap::new(),
            models: DashMap::new(),
            timeline: Timeline::default(),
            started: Instant::now(),
        }
    }
}

impl Stats {
    pub fn new() -> Arc<Stats> {
        Arc::new(Stats::default())
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    fn minute(&self) -> u64 {
        self.started.elapsed().as_secs() / 60
    }

    /// Every row, sorted by key.
    pub fn rows(&self) -> Vec<(RowKey, Arc<Row>)> {
        let mut rows: Vec<(RowKey, Arc<Row>)> = self
            .rows
            .iter()
            .map(|entry| (entry.key().clone(), entry.value().clone()))
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    /// The minutes of the last hour that saw requests, oldest first, with their start in
    /// Unix seconds.
    pub fn timeline(&self, now: SystemTime) -> Vec<(u64, &Minute)> {
        self.timeline.recent(now)
    }

    pub fn requests_per_minute(&self, row: &Row) -> f64 {
        row.window.per_minute(self.minute())
    }

    fn row(&self, key: RowKey) -> Arc<Row> {
        if let Some(row) = self.rows.get(&key) {
            return row.clone();
        }
        self.rows.entry(key).or_default().clone()
    }

    /// `model`, or `other` once [`MAX_MODEL_LABELS`] distinct names have been seen.
    fn model_label(&self, model: String) -> String {
        if self.models.contains_key(&model) {
            return model;
        }
        if self.models.len() >= MAX_MODEL_LABELS {
            return OTHER_MODEL.to_string();
        }
        self.models.insert(model.clone(), ());
        model
    }

    pub fn observe(&self, record: &RequestRecord) {
        let last = record.attempts.last();
        let model = last.map_or_else(
            || record.model.clone().unwrap_or_else(|| "-".into()),
            |a| a.model.clone(),
        );
        let key = RowKey {
            provider: last.map_or("-", |a| a.provider.as_str()).to_string(),
            target: last.map_or("-", |a| a.target.as_str()).to_string(),
            model: self.model_label(model),
            scenario: record.scenario.unwrap_or("-").to_string(),
        };
        let row = self.row(key);
        let minute = self
            .timeline
            .slot(unix_minute(record.started_at + record.timings.total));
        row.requests.fetch_add(1, Ordering::Relaxed);
        minute.requests.fetch_add(1, Ordering::Relaxed);
        row.window.record(self.minute());
        if record.streaming {
            row.streaming.fetch_add(1, Ordering::Relaxed);
        }
        match failure_class(record) {
            None => {
                row.successes.fetch_add(1, Ordering::Relaxed);
            }
            Some(class) => {
                row.failures[class.index()].fetch_add(1, Ordering::Relaxed);
                minute.failures[class.index()].fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(usage) = record.usage {
            for (row_count, minute_count, n) in [
                (&row.input_tokens, &minute.input_tokens, usage.input_tokens),
                (
                    &row.output_tokens,
                    &minute.output_tokens,
                    usage.output_tokens,
                ),
                (
                    &row.cache_read_tokens,
                    &minute.cache_read_tokens,
                    usage.cache_read_input_tokens,
                ),
                (
                    &row.cache_write_tokens,
                    &minute.cache_write_tokens,
                    usage.cache_creation_input_tokens,
                ),
            ] {
                row_count.fetch_add(n, Ordering::Relaxed);
                minute_count.fetch_add(n, Ordering::Relaxed);
            }
        }
        if let Some(credits) = record.credits {
            row.micro_credits
                .fetch_add((credits * 1e6).round().max(0.0) as u64, Ordering::Relaxed);
        }
        let timings = &record.timings;
        row.total.record(timings.total);
        row.overhead.record(timings.overhead);
        if let Some(first_byte) = timings.first_byte {
            row.ttft.record(first_byte);
        }
        if !record.attempts.is_empty() {
            row.upstream
                .record(timings.total.saturating_sub(timings.overhead));
        }
    }
}

/// The failure class of a finished request, `None` for a success: read from the typed
/// failure the request ended with.
fn failure_class(record: &RequestRecord) -> Option<Class> {
    match (record.outcome, record.failure) {
        (Outcome::Completed, _) => None,
        (_, Some(failure)) => Some(failure.class),
        // Every other ending carries its failure; a record built without one still counts.
        (Outcome::ClientGone | Outcome::ShutDown, None) => Some(Class::Cancelled),
        (_, None) => Some(Class::BadResponse),
    }
}

impl RecordSink for Stats {
    fn record(&self, record: &Arc<RequestRecord>) {
        self.observe(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_bucket_upper_bounds() {
        let h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile(0.5).unwrap();
        assert!(
            p50 >= Duration::from_millis(50) && p50 <= Duration::from_millis(75),
            "{p50:?}"
        );
        let p99 = h.quantile(0.99).unwrap();
        assert!(
            p99 >= Duration::from_millis(99) && p99 <= Duration::from_millis(150),
            "{p99:?}"
        );
        assert_eq!(h.count(), 100);
    }

    #[test]
    fn a_merged_histogram_has_the_percentiles_of_all_samples() {
        let (fast, slow) = (Histogram::default(), Histogram::default());
        for _ in 0..90 {
            fast.record(Duration::from_millis(10));
        }
        for _ in 0..10 {
            slow.record(Duration::from_secs(5));
        }
        let merged = Histogram::merged([&fast, &slow]);
        assert_eq!(merged.count(), 100);
        assert!(merged.quantile(0.5).unwrap() < Duration::from_millis(20));
        assert!(merged.quantile(0.95).unwrap() >= Duration::from_secs(5));
    }

    #[test]
    fn the_timeline_keeps_the_last_hour_minute_by_minute() {
        let stats = Stats::new();
        let at = |minute: u64| UNIX_EPOCH + Duration::from_secs(minute * 60 + 5);
        for (minute, status) in [(1000, 200), (1000, 429), (1001, 200), (1070, 200)] {
            let mut record = crate::record::tests::record(status);
            record.started_at = at(minute);
            record.usage = Some(crate::anthropic::Usage {
                input_tokens: 3,
                output_tokens: 2,
                ..Default::default()
            });
            stats.observe(&record);
        }
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let seen = |now: u64| -> Vec<(u64, u64, u64, u64)> {
            stats
                .timeline(at(now))
                .into_iter()
                .map(|(start, m)| {
                    let failed = m.failures.iter().map(load).sum();
                    (start / 60, load(&m.requests), failed, load(&m.input_tokens))
                })
                .collect()
        };
        assert_eq!(seen(1001), [(1000, 2, 1, 6), (1001, 1, 0, 3)]);
        assert_eq!(seen(1059), [(1000, 2, 1, 6), (1001, 1, 0, 3)]);
        assert_eq!(seen(1060), [(1001, 1, 0, 3)], "an hour later, gone");
        // Minute 1070 reuses the slot of minute 1010; the slot of 1001 is over an hour old.
        assert_eq!(seen(1070), [(1070, 1, 0, 3)]);
    }

    #[test]
    fn recording_stays_exact_under_contention() {
        let stats = Stats::new();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let stats = stats.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000u64 {
                        let mut record =
                            crate::record::tests::record(if i % 4 == 0 { 429 } else { 200 });
                        record.attempts[0].target = format!("t{}", t % 2);
                        record.usage = Some(crate::anthropic::Usage {
                            input_tokens: 3,
                            output_tokens: 2,
                            ..Default::default()
                        });
                        stats.observe(&record);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let rows = stats.rows();
        assert_eq!(rows.len(), 2);
        let total = |f: fn(&Row) -> u64| rows.iter().map(|(_, r)| f(r)).sum::<u64>();
        assert_eq!(total(|r| r.requests.load(Ordering::Relaxed)), 16_000);
        assert_eq!(total(|r| r.successes.load(Ordering::Relaxed)), 12_000);
        assert_eq!(total(|r| r.failures[0].load(Ordering::Relaxed)), 4_000);
        assert_eq!(total(|r| r.input_tokens.load(Ordering::Relaxed)), 48_000);
        assert_eq!(total(|r| r.total.count()), 16_000);
    }
}
