//! Target pools: lock-free, O(1) picking. Each route has an atomic cursor over a precomputed
//! smooth-weighted schedule; each upstream has a "blacklisted until" atomic timestamp.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::config::Strategy;
use crate::providers::Provider;

/// One upstream account or key: what is blacklisted and what records and logs name.
pub struct Upstream {
    pub provider: Arc<dyn Provider>,
    /// `deepseek`, `deepseek#2`, `kiro:work`…
    pub label: String,
    /// Clock milliseconds until which this upstream sits out; 0 when healthy.
    blacklisted_until: AtomicU64,
}

impl Upstream {
    pub fn new(provider: Arc<dyn Provider>, label: String) -> Self {
        Upstream {
            provider,
            label,
            blacklisted_until: AtomicU64::new(0),
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

    pub fn clear(&self) {
        self.blacklisted_until.store(0, Ordering::Relaxed);
    }
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
