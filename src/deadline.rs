//! A deadline that moves forward on every chunk or event but is rarely reached: the idle
//! timeouts of an upstream body and of its events, and the keep-alive `ping` of a stream.
//!
//! Moving a `tokio::time::Sleep` re-registers it in the runtime's timer wheel, a lock
//! shared by the worker threads, and a 64-chunk answer moved three of them per chunk.
//! Here pushing the deadline only records it; when the armed timer fires before the recorded
//! deadline it is re-armed once, so it fires exactly when the latest deadline passes.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};

pub struct Deadline {
    timer: Pin<Box<Sleep>>,
    at: Instant,
}

impl Deadline {
    pub fn new(at: Instant) -> Deadline {
        Deadline {
            timer: Box::pin(tokio::time::sleep_until(at)),
            at,
        }
    }

    /// Moves the deadline to `at`, later or earlier.
    pub fn set(&mut self, at: Instant) {
        self.at = at;
        // An earlier deadline cannot wait for the armed timer to fire.
        if at < self.timer.deadline() {
            self.timer.as_mut().reset(at);
        }
    }

    /// Ready once the latest deadline set has passed; registers the waker until then.
    pub fn poll_passed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if self.timer.deadline() >= self.at {
                return Poll::Ready(());
            }
            self.timer.as_mut().reset(self.at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn passed(deadline: &mut Deadline) {
        std::future::poll_fn(|cx| deadline.poll_passed(cx)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_pushed_later_fires_at_the_last_instant_set() {
        let start = Instant::now();
        let mut deadline = Deadline::new(start + Duration::from_secs(1));
        deadline.set(start + Duration::from_secs(3));
        deadline.set(start + Duration::from_secs(5));
        passed(&mut deadline).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_pulled_earlier_fires_then() {
        let start = Instant::now();
        let mut deadline = Deadline::new(start + Duration::from_secs(60));
        deadline.set(start + Duration::from_secs(2));
        passed(&mut deadline).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_passed_deadline_stays_ready_until_it_is_moved() {
        let start = Instant::now();
        let mut deadline = Deadline::new(start + Duration::from_secs(1));
        passed(&mut deadline).await;
        passed(&mut deadline).await;
        deadline.set(Instant::now() + Duration::from_secs(4));
        passed(&mut deadline).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
    }
}
