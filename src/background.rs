//! Background chores (token refresh, stats logging, failure-log writes…) run here, each in its
//! own task, never on the request path. Shutdown cancels them and waits, within a time box,
//! for each to finish its last flush.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone, Default)]
pub struct Background {
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl Background {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a chore. It receives the token that is cancelled at shutdown and should return
    /// soon after, having flushed what it holds.
    pub fn spawn<F, Fut>(&self, name: &'static str, chore: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let fut = chore(self.stop.clone());
        self.tasks.spawn(async move {
            fut.await;
            tracing::debug!(task = name, "background task finished");
        });
    }

    /// Signals every chore to stop and waits up to `limit` for them. Returns false if some
    /// were still running when the time ran out.
    pub async fn shutdown(&self, limit: Duration) -> bool {
        self.stop.cancel();
        self.tasks.close();
        tokio::time::timeout(limit, self.tasks.wait()).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn shutdown_lets_chores_flush() {
        let bg = Background::new();
        let flushed = Arc::new(AtomicBool::new(false));
        let seen = flushed.clone();
        bg.spawn("flusher", move |stop| async move {
            stop.cancelled().await;
            seen.store(true, Ordering::SeqCst);
        });
        assert!(bg.shutdown(Duration::from_secs(5)).await);
        assert!(flushed.load(Ordering::SeqCst));
    }
}
