//! One client connection: HTTP/1.1 through hyper, closed when idle for too long, drained on
//! shutdown. Requests on it are tracked so that "idle" means no response is being written.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::State;
use super::service;

/// What a connection is doing, shared with its requests' bodies.
pub(crate) struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `opened` when the last response ended.
    idle_since_ms: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Self> {
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
    fn idle_deadline(&self, limit: Duration) -> Instant {
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

pub(crate) async fn serve(stream: TcpStream, state: Arc<State>, stop: CancellationToken) {
    let activity = Activity::new();
    let idle_limit = state.idle_timeout;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(state.header_read_timeout);
    let service = {
        let activity = activity.clone();
        service_fn(move |request| service::handle(state.clone(), activity.begin(), request))
    };
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        let idle_deadline = activity.idle_deadline(idle_limit);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "client connection ended with an error");
                }
                return;
            }
            _ = stop.cancelled(), if !draining => {
                connection.as_mut().graceful_shutdown();
                draining = true;
            }
            _ = tokio::time::sleep_until(idle_deadline), if !draining => {
                if activity.idle_deadline(idle_limit) <= Instant::now() {
                    tracing::debug!("closing idle client connection");
                    connection.as_mut().graceful_shutdown();
                    draining = true;
                }
            }
        }
    }
}
