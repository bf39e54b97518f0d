//! Response bodies: a whole body held in memory, or an upstream stream forwarded chunk by
//! chunk. The streaming body owns the request's record and hands it to the sinks when the
//! response ends, however it ends.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::conn::ConnGuard;
use crate::anthropic::{ApiError, ErrorType, UsageScanner};
use crate::providers::BodyStream;
use crate::record::{Outcome, RequestRecord, Sinks};

/// The record of a request whose response is still being written, and who gets it.
pub(crate) struct PendingRecord {
    pub record: RequestRecord,
    pub received: Instant,
    pub sinks: Sinks,
}

impl PendingRecord {
    pub fn finish(mut self, outcome: Outcome, usage: Option<crate::anthropic::Usage>) {
        self.record.outcome = outcome;
        self.record.usage = usage.or(self.record.usage);
        self.record.timings.total = self.received.elapsed();
        for sink in self.sinks.iter() {
            sink.record(&self.record);
        }
    }
}

/// Why a response body that is not an SSE stream was cut short (the client sees the
/// connection end early; the record and the log say why).
#[derive(Debug, thiserror::Error)]
#[error("response cut short: {0}")]
pub struct BodyCut(String);

pub struct ResponseBody {
    kind: Kind,
    /// Marks the connection busy until the body is done.
    _conn: Option<ConnGuard>,
}

enum Kind {
    Full(Option<Bytes>),
    Proxy(Box<ProxyBody>),
}

impl ResponseBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        ResponseBody {
            kind: Kind::Full(Some(bytes.into())),
            _conn: None,
        }
    }

    pub(crate) fn empty() -> Self {
        ResponseBody {
            kind: Kind::Full(None),
            _conn: None,
        }
    }

    pub(crate) fn proxy(body: ProxyBody) -> Self {
        ResponseBody {
            kind: Kind::Proxy(Box::new(body)),
            _conn: None,
        }
    }

    pub(crate) fn hold_connection(&mut self, guard: ConnGuard) {
        self._conn = Some(guard);
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyCut;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyCut>>> {
        match &mut self.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Proxy(proxy) => Pin::new(proxy.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Proxy(proxy) => proxy.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Proxy(_) => SizeHint::default(),
        }
    }
}

/// An upstream body on its way to the client, unchanged, with usage read on the side.
pub(crate) struct ProxyBody {
    first: Option<Bytes>,
    upstream: BodyStream,
    usage: UsageScanner,
    /// Fires when shutdown's grace period is over.
    force_end: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The body is an SSE stream, so a failure can be told as an `error` event.
    sse: bool,
    done: bool,
    pending: Option<PendingRecord>,
    outcome: Outcome,
}

impl ProxyBody {
    pub fn new(
        first: Bytes,
        upstream: BodyStream,
        mut usage: UsageScanner,
        force_end: WaitForCancellationFutureOwned,
        sse: bool,
        pending: PendingRecord,
    ) -> Self {
        usage.observe(&first);
        ProxyBody {
            first: Some(first),
            upstream,
            usage,
            force_end: Box::pin(force_end),
            sse,
            done: false,
            pending: Some(pending),
            outcome: Outcome::ClientGone,
        }
    }

    /// Ends the response after a failure: an SSE client gets an `error` event (after closing
    /// any half-sent event); any other client gets a cut connection, the only signal left.
    fn end_with(
        &mut self,
        outcome: Outcome,
        error: ApiError,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyCut>>> {
        self.done = true;
        self.outcome = outcome;
        if let Some(pending) = &mut self.pending {
            pending.record.error = Some(error.message.clone());
        }
        if !self.sse {
            return Poll::Ready(Some(Err(BodyCut(error.message))));
        }
        let event = error.to_sse_event();
        if self.usage.at_event_boundary() {
            return Poll::Ready(Some(Ok(Frame::data(event))));
        }
        let mut closed = Vec::with_capacity(event.len() + 2);
        closed.extend_from_slice(b"\n\n");
        closed.extend_from_slice(&event);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(closed)))))
    }

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyCut>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if self.force_end.as_mut().poll(cx).is_ready() {
            let error = ApiError::new(
                ErrorType::Overloaded,
                "ccr is shutting down and its grace period ended before this response finished: retry the request",
            );
            return self.end_with(Outcome::ShutDown, error);
        }
        match self.upstream.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.usage.observe(&chunk);
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Err(error))) => {
                let api_error = error.to_api_error();
                self.end_with(Outcome::UpstreamFailed, api_error)
            }
            Poll::Ready(None) => {
                self.done = true;
                self.outcome = Outcome::Completed;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.finish(self.outcome, self.usage.usage());
        }
    }
}
