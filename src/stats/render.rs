//! The collector's two views: `/api/stats` JSON (schema version 1, documented in README.md)
//! and `/metrics` Prometheus text, both rendered from this server's own collector.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{FAILURE_CLASSES, GroupBy, Histogram, Row, RowKey, Stats};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Document {
    pub version: u32,
    /// The version of ccr serving the document.
    #[serde(default)]
    pub ccr_version: String,
    pub uptime_secs: u64,
    /// Failure records dropped because the failure log's writer could not keep up.
    #[serde(default)]
    pub failures_dropped: u64,
    pub totals: Counts,
    pub rows: Vec<RowView>,
    /// The minutes of the last hour that saw requests, oldest first.
    #[serde(default)]
    pub timeline: Vec<MinuteView>,
}

/// What finished in one minute, on the whole server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MinuteView {
    /// The minute's start, Unix seconds.
    pub at: u64,
    pub requests: u64,
    /// By class, as in [`Counts`].
    pub failures: BTreeMap<String, u64>,
    pub tokens: Tokens,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Counts {
    pub requests: u64,
    pub successes: u64,
    pub streaming: u64,
    /// By class: rate_limit, auth, upstream_5xx, timeout, network, client_error, cancelled,
    /// stream_cut.
    pub failures: std::collections::BTreeMap<String, u64>,
    pub tokens: Tokens,
    pub credits: f64,
    /// Over the last five minutes.
    pub requests_per_minute: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RowView {
    pub provider: String,
    pub target: String,
    pub model: String,
    pub scenario: String,
    #[serde(flatten)]
    pub counts: Counts,
    /// Milliseconds.
    pub latency_ms: Percentiles,
    pub ttft_ms: Percentiles,
    pub upstream_ms: Percentiles,
    pub overhead_ms: Percentiles,
}

fn percentiles(h: &Histogram) -> Percentiles {
    let ms = |q| h.quantile(q).map(|d: Duration| d.as_secs_f64() * 1000.0);
    Percentiles {
        p50: ms(0.5),
        p90: ms(0.9),
        p99: ms(0.99),
    }
}

fn counts(stats: &Stats, row: &Row) -> Counts {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    Counts {
        requests: load(&row.requests),
        successes: load(&row.successes),
        streaming: load(&row.streaming),
        failures: FAILURE_CLASSES
            .iter()
            .zip(&row.failures)
            .map(|(class, n)| (class.to_string(), load(n)))
            .filter(|(_, n)| *n > 0)
            .collect(),
        tokens: Tokens {
            input: load(&row.input_tokens),
            output: load(&row.output_tokens),
            cache_read: load(&row.cache_read_tokens),
            cache_write: load(&row.cache_write_tokens),
        },
        credits: row.credits(),
        requests_per_minute: stats.requests_per_minute(row),
    }
}

fn add(total: &mut Counts, row: &Counts) {
    total.requests += row.requests;
    total.successes += row.successes;
    total.streaming += row.streaming;
    for (class, n) in &row.failures {
        *total.failures.entry(class.clone()).or_default() += n;
    }
    total.tokens.input += row.tokens.input;
    total.tokens.output += row.tokens.output;
    total.tokens.cache_read += row.tokens.cache_read;
    total.tokens.cache_write += row.tokens.cache_write;
    total.credits += row.credits;
    total.requests_per_minute += row.requests_per_minute;
}

/// The stats document, one row per provider/target/model/scenario, or grouped `by` one of
/// them (the others shown as `*`) with counters summed and histograms merged.
pub fn document(stats: &Stats, by: Option<GroupBy>) -> Document {
    let mut groups: BTreeMap<RowKey, Vec<Arc<Row>>> = BTreeMap::new();
    for (key, row) in stats.rows() {
        let key = by.map_or_else(|| key.clone(), |by| by.group_key(&key));
        groups.entry(key).or_default().push(row);
    }
    let mut totals = Counts::default();
    let rows = groups
        .into_iter()
        .map(|(key, members)| {
            let mut counts = Counts::default();
            for row in &members {
                add(&mut counts, &self::counts(stats, row));
            }
            add(&mut totals, &counts);
            let merged = |pick: fn(&Row) -> &Histogram| {
                percentiles(&Histogram::merged(members.iter().map(|r| pick(r))))
            };
            RowView {
                provider: key.provider,
                target: key.target,
                model: key.model,
                scenario: key.scenario,
                counts,
                latency_ms: merged(|r| &r.total),
                ttft_ms: merged(|r| &r.ttft),
                upstream_ms: merged(|r| &r.upstream),
                overhead_ms: merged(|r| &r.overhead),
            }
        })
        .collect();
    Document {
        version: SCHEMA_VERSION,
        ccr_version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_secs: stats.uptime().as_secs(),
        failures_dropped: 0,
        totals,
        rows,
        timeline: timeline(stats),
    }
}

fn timeline(stats: &Stats) -> Vec<MinuteView> {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    stats
        .timeline(std::time::SystemTime::now())
        .into_iter()
        .map(|(at, minute)| MinuteView {
            at,
            requests: load(&minute.requests),
            failures: FAILURE_CLASSES
                .iter()
                .zip(&minute.failures)
                .map(|(class, n)| (class.to_string(), load(n)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            tokens: Tokens {
                input: load(&minute.input_tokens),
                output: load(&minute.output_tokens),
                cache_read: load(&minute.cache_read_tokens),
                cache_write: load(&minute.cache_write_tokens),
            },
        })
        .collect()
}

/// Prometheus text exposition (version 0.0.4).
pub fn prometheus(stats: &Stats) -> String {
    let rows = stats.rows();
    let mut out = String::with_capacity(4096);
    let labels = |key: &RowKey| {
        format!(
            "provider=\"{}\",target=\"{}\",model=\"{}\",scenario=\"{}\"",
            escape(&key.provider),
            escape(&key.target),
            escape(&key.model),
            escape(&key.scenario)
        )
    };
    let _ = writeln!(
        out,
        "# HELP ccr_uptime_seconds Seconds since this ccr instance started.\n# TYPE ccr_uptime_seconds gauge\nccr_uptime_seconds {}",
        stats.uptime().as_secs()
    );
    let _ = writeln!(
        out,
        "# HELP ccr_requests_total Finished requests by outcome.\n# TYPE ccr_requests_total counter"
    );
    for (key, row) in &rows {
        let successes = row.successes.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "ccr_requests_total{{{},outcome=\"success\"}} {successes}",
            labels(key)
        );
        for (class, n) in FAILURE_CLASSES.iter().zip(&row.failures) {
            let n = n.load(Ordering::Relaxed);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "ccr_requests_total{{{},outcome=\"{class}\"}} {n}",
                    labels(key)
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP ccr_streaming_requests_total Finished streaming requests.\n# TYPE ccr_streaming_requests_total counter"
    );
    for (key, row) in &rows {
        let _ = writeln!(
            out,
            "ccr_streaming_requests_total{{{}}} {}",
            labels(key),
            row.streaming.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP ccr_tokens_total Tokens by kind.\n# TYPE ccr_tokens_total counter"
    );
    for (key, row) in &rows {
        for (kind, n) in [
            ("input", &row.input_tokens),
            ("output", &row.output_tokens),
            ("cache_read", &row.cache_read_tokens),
            ("cache_write", &row.cache_write_tokens),
        ] {
            let _ = writeln!(
                out,
                "ccr_tokens_total{{{},kind=\"{kind}\"}} {}",
                labels(key),
                n.load(Ordering::Relaxed)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP ccr_credits_total CodeWhisperer credits charged.\n# TYPE ccr_credits_total counter"
    );
    for (key, row) in &rows {
        let _ = writeln!(
            out,
            "ccr_credits_total{{{}}} {}",
            labels(key),
            row.credits()
        );
    }
    for (name, help, pick) in [
        (
            "ccr_request_duration_seconds",
            "Total request time.",
            (|r: &Row| &r.total) as fn(&Row) -> &Histogram,
        ),
        (
            "ccr_ttft_seconds",
            "Time to the first upstream bytes.",
            |r: &Row| &r.ttft,
        ),
        (
            "ccr_upstream_seconds",
            "Time spent on the upstream.",
            |r: &Row| &r.upstream,
        ),
        ("ccr_overhead_seconds", "ccr's own time.", |r: &Row| {
            &r.overhead
        }),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (key, row) in &rows {
            let histogram = pick(row);
            for (bound, cumulative) in histogram.cumulative() {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{{},le=\"{}\"}} {cumulative}",
                    labels(key),
                    bound as f64 / 1e6
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{{},le=\"+Inf\"}} {}",
                labels(key),
                histogram.count()
            );
            let _ = writeln!(
                out,
                "{name}_sum{{{}}} {}",
                labels(key),
                histogram.sum().as_secs_f64()
            );
            let _ = writeln!(out, "{name}_count{{{}}} {}", labels(key), histogram.count());
        }
    }
    out
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
