//! What one client connection is doing, shared by the connection and its responses'
//! bodies: "idle" means no response is being produced or written.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// What a connection is doing, shared with its requests' bodies.
pub(crate) struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `opened` when the last response ended.
    idle_since_ms: AtomicU64,
}

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    pub(crate) fn begin(self: &Arc<Self>) -> ConnGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        ConnGuard(self.clone())
    }

    /// When the connection will have been idle for `limit`, if nothing starts before then.
    pub(super) fn idle_deadline(&self, limit: Duration) -> Instant {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Instant::now() + limit;
        }
        self.opened + Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire)) + limit
    }
}

/// Keeps the connection counted as busy while a response is being produced or written.
pub(crate) struct ConnGuard(Arc<Activity>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let now = self.0.opened.elapsed().as_millis() as u64;
        self.0.idle_since_ms.store(now, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
