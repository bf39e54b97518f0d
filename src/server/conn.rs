//! One client connection: HTTP/1.1 through hyper, closed when idle for too long, drained on
//! shutdown. Requests on it are tracked so that "idle" means no response is being written.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::activity::Activity;
use super::service;
use super::state::State;

/// The most a connection's read buffer grows to. hyper's default (~400 KB) is reached after
/// a few large request bodies and then held for as long as the connection stays open: 1 000
/// idle keep-alive connections of a Claude Code–sized burst kept ~400 MB. Bodies still stream
/// through it in pieces; a request head must fit (header floods are refused long before).
const READ_BUFFER: usize = 32 * 1024;

pub(crate) async fn serve(stream: TcpStream, state: Arc<State>, stop: CancellationToken) {
    let activity = Activity::new();
    let idle_limit = state.idle_timeout;
    let head_limit = state.header_read_timeout;
    let mut builder = http1::Builder::new();
    // hyper's own header-read timeout also runs on an idle keep-alive connection, which
    // would make `idle_timeout` meaningless above it; ccr times heads itself (`Activity`).
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_headers(MAX_HEADERS_READ)
        .max_buf_size(READ_BUFFER);
    let service = {
        let activity = activity.clone();
        service_fn(move |request| service::handle(state.clone(), activity.begin(), request))
    };
    let stream = NoticingReads {
        inner: stream,
        activity: activity.clone(),
    };
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        let idle_deadline = activity.idle_deadline(idle_limit);
        let head_deadline = activity.head_deadline(head_limit);
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
            _ = sleep_until_some(head_deadline) => {
                if activity.head_deadline(head_limit).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!("closing a connection whose request head did not arrive in time");
                    return;
                }
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

/// Headers hyper reads before refusing with its own (empty) 431; ccr refuses beyond
/// `service::MAX_HEADERS` itself, with an Anthropic-shaped error.
const MAX_HEADERS_READ: usize = 1024;

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The client's socket, telling the connection's activity when bytes arrive (the start of
/// a request head on an idle connection).
struct NoticingReads {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for NoticingReads {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for NoticingReads {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
