//! Target pools: lock-free, O(1) picking. Each route has an atomic cursor over a precomputed
//! smooth-weighted schedule; each upstream has a "blacklisted until" atomic timestamp.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::SystemTime;

use serde::Serialize;

use super::clock::wall_time;
use crate::config::Strategy;
use crate::failure::Class;
use crate::providers::Provider;

/// `reason` when no failure has blacklisted the upstream.
const NO_REASON: u8 = u8::MAX;

/// One upstream account or key: what is blacklisted and what records and logs name. Its
/// live state (blacklist, in-flight count, last success and failure) is atomics, read by
/// `/api/targets` without stopping anyone.
pub struct Upstream {
    pub provider: Arc<dyn Provider>,
    /// `deepseek`, `deepseek#2`, `kiro:work`…
    pub label: String,
    /// Clock milliseconds until which this upstream sits out; 0 when healthy.
    blacklisted_until: AtomicU64,
    /// The class (its index in `Class::ALL`) of the failure that set the blacklist.
    reason: AtomicU8,
    /// Attempts sent to it whose response has not ended.
    in_flight: AtomicU64,
    /// Clock milliseconds of its last answer and its last failure of its own; 0 for never.
    last_success: AtomicU64,
    last_failure: AtomicU64,
}

impl Upstream {
    pub fn new(provider: Arc<dyn Provider>, label: String) -> Self {
        Upstream {
            provider,
            label,
            blacklisted_until: AtomicU64::new(0),
            reason: AtomicU8::new(NO_REASON),
            in_flight: AtomicU64::new(0),
            last_success: AtomicU64::new(0),
            last_failure: AtomicU64::new(0),
        }
    }

    pub fn is_healthy(&self, now_ms: u64) -> bool {
        self.blacklisted_until.load(Ordering::Relaxed) <= now_ms
    }

    pub fn blacklisted_until(&self) -> u64 {
        self.blacklisted_until.load(Ordering::Relaxed)
    }

    /// Sits out until `until_ms`; a longer blacklist already in place is kept.
    pub fn blacklist(&self, until_ms: u64) {
        self.blacklisted_until
            .fetch_max(until_ms, Ordering::Relaxed);
    }

    /// Sits out until `until_ms` because of a failure of `class`, which becomes the reason
    /// shown unless a longer blacklist is already in place.
    pub fn blacklist_because(&self, until_ms: u64, class: Class) {
        let before = self
            .blacklisted_until
            .fetch_max(until_ms, Ordering::Relaxed);
        if until_ms >= before {
            self.reason.store(class.index() as u8, Ordering::Relaxed);
        }
    }

    pub fn clear(&self) {
        self.blacklisted_until.store(0, Ordering::Relaxed);
    }

    /// It answered at `now_ms`.
    pub fn answered(&self, now_ms: u64) {
        self.last_success.store(now_ms, Ordering::Relaxed);
    }

    /// It failed at `now_ms`, by its own fault.
    pub fn failed(&self, now_ms: u64) {
        self.last_failure.store(now_ms, Ordering::Relaxed);
    }

    /// Counts an attempt in flight until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Takes over what `previous` (the same label in the config before a reload) knew: its
    /// blacklist, the reason and the last times. Attempts in flight stay counted there.
    pub fn inherit(&self, previous: &Upstream) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        self.blacklist(load(&previous.blacklisted_until));
        self.reason
            .store(previous.reason.load(Ordering::Relaxed), Ordering::Relaxed);
        self.last_success
            .fetch_max(load(&previous.last_success), Ordering::Relaxed);
        self.last_failure
            .fetch_max(load(&previous.last_failure), Ordering::Relaxed);
    }

    /// Its live state, with clock times turned into wall-clock times around `now`.
    pub fn status(&self, now_ms: u64, now: SystemTime) -> TargetStatus {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let at = |ms: u64| (ms != 0).then(|| rfc3339(wall_time(now_ms, now, ms)));
        let healthy = self.is_healthy(now_ms);
        let reason = Class::ALL
            .get(usize::from(self.reason.load(Ordering::Relaxed)))
            .filter(|_| !healthy);
        TargetStatus {
            target: self.label.clone(),
            provider: self.provider.name().to_string(),
            healthy,
            blacklisted_until: (!healthy)
                .then(|| rfc3339(wall_time(now_ms, now, self.blacklisted_until()))),
            reason: reason.map(|class| class.as_str()),
            in_flight: load(&self.in_flight),
            last_success: at(load(&self.last_success)),
            last_failure: at(load(&self.last_failure)),
        }
    }
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// An attempt in flight to an upstream; dropping it (when the response ends, however it
/// ends) takes it off the count.
pub struct InFlight(Arc<Upstream>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One target's live state, as `/api/targets` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    /// The upstream's label: `deepseek`, `deepseek#2`, `kiro:work`.
    pub target: String,
    pub provider: String,
    pub healthy: bool,
    /// RFC 3339 UTC; `None` while healthy.
    pub blacklisted_until: Option<String>,
    /// The failure class that blacklisted it; `None` while healthy.
    pub reason: Option<&'static str>,
    pub in_flight: u64,
    pub last_success: Option<String>,
    /// Its last failure of its own (one blamed on the upstream), RFC 3339 UTC.
    pub last_failure: Option<String>,
}

/// A place a route sends requests: an upstream and the model to ask it for.
#[derive(Clone)]
pub struct Target {
    pub upstream: Arc<Upstream>,
    /// `None` keeps the client's model.
    pub model: Option<String>,
}

pub struct Pool {
    strategy: Strategy,
    targets: Vec<Target>,
    /// Target indexes in smooth weighted round-robin order; one entry per unit of weight.
    schedule: Vec<usize>,
    cursor: AtomicUsize,
}

impl Pool {
    pub fn new(strategy: Strategy, weighted: Vec<(Target, u32)>) -> Pool {
        let weights: Vec<u32> = weighted.iter().map(|(_, w)| (*w).max(1)).collect();
        Pool {
            strategy,
            schedule: smooth_weighted_schedule(&weights),
            targets: weighted.into_iter().map(|(t, _)| t).collect(),
            cursor: AtomicUsize::new(0),
        }
    }

    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// The targets in the order to try them: healthy ones first, starting where the
    /// strategy says, then the blacklisted ones, soonest back first (never fail untried).
    pub fn order(&self, now_ms: u64) -> Vec<&Target> {
        let n = self.targets.len();
        let start = match self.strategy {
            Strategy::RoundRobin => {
                let turn = self.cursor.fetch_add(1, Ordering::Relaxed);
                self.schedule[turn % self.schedule.len()]
            }
            Strategy::Priority => 0,
        };
        let rotated = (0..n).map(|k| &self.targets[(start + k) % n]);
        let (mut healthy, mut resting): (Vec<&Target>, Vec<&Target>) =
            rotated.partition(|t| t.upstream.is_healthy(now_ms));
        resting.sort_by_key(|t| t.upstream.blacklisted_until());
        healthy.append(&mut resting);
        healthy
    }
}

/// Smooth weighted round robin (as in nginx), unrolled once into a schedule: weights 5,1,1
/// give a a b a c a a, spreading the heavy target instead of bunching it.
fn smooth_weighted_schedule(weights: &[u32]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    (0..total)
        .map(|_| {
            for (c, &w) in current.iter_mut().zip(weights) {
                *c += i64::from(w);
            }
            let best = (0..current.len())
                .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
                .unwrap_or(0);
            current[best] -= total;
            best
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_spreads_weights() {
        assert_eq!(
            smooth_weighted_schedule(&[5, 1, 1]),
            vec![0, 0, 1, 0, 2, 0, 0]
        );
        assert_eq!(smooth_weighted_schedule(&[1, 1, 1]), vec![0, 1, 2]);
        assert_eq!(
            smooth_weighted_schedule(&[2, 1])
                .iter()
                .filter(|&&i| i == 0)
                .count(),
            2
        );
    }
}
