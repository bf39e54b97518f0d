//! Time for blacklists and sessions, behind a trait so tests can move it by hand instead of
//! sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub trait Clock: Send + Sync {
    /// Milliseconds on a monotonic scale; never 0 (0 means "not set" in timestamps).
    fn now_ms(&self) -> u64;
}

/// The real monotonic clock.
pub struct SystemClock {
    start: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            start: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + 1
    }
}

/// A clock that only moves when told to.
pub struct ManualClock(AtomicU64);

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock(AtomicU64::new(1))
    }
}

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The wall-clock time of clock reading `ms`, given that the clock reads `now_ms` at `now`.
pub fn wall_time(now_ms: u64, now: std::time::SystemTime, ms: u64) -> std::time::SystemTime {
    // Blacklists are bounded by the config, but a saturated reading must not overflow.
    const MAX_AHEAD_MS: u64 = 100 * 365 * 24 * 3600 * 1000;
    if ms >= now_ms {
        now + Duration::from_millis((ms - now_ms).min(MAX_AHEAD_MS))
    } else {
        now.checked_sub(Duration::from_millis(now_ms - ms))
            .unwrap_or(std::time::UNIX_EPOCH)
    }
}
