//! One client connection: HTTP/1.1 through hyper, closed when idle for too long, drained on
//! shutdown. Requests on it are tracked so that "idle" means no response is being written.

use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::activity::Activity;
use super::service;
use super::state::State;

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
