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
    /// Milliseconds after `opened` when a request's head began to arrive, or
    /// [`NOT_READING`]: the header-read timeout runs only while a head is arriving, so an
    /// idle keep-alive connection is governed by the idle timeout alone.
    head_since_ms: AtomicU64,
}

const NOT_READING: u64 = u64::MAX;

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            // A new connection owes its first request's head from the start.
            head_since_ms: AtomicU64::new(0),
        })
    }

    pub(crate) fn begin(self: &Arc<Self>) -> ConnGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since_ms.store(NOT_READING, Ordering::Release);
        ConnGuard(self.clone())
    }

    /// Bytes arrived: with no request in flight they begin the next request's head.
    pub(super) fn bytes_arrived(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let now = self.opened.elapsed().as_millis() as u64;
            let _ = self.head_since_ms.compare_exchange(
                NOT_READING,
                now,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    /// When a head that is arriving must be complete, if one is arriving.
    pub(super) fn head_deadline(&self, limit: Duration) -> Option<Instant> {
        match self.head_since_ms.load(Ordering::Acquire) {
            NOT_READING => None,
            since => Some(self.opened + Duration::from_millis(since) + limit),
        }
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
