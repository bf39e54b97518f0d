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

use super::activity::ConnGuard;
use crate::anthropic::Usage;
use crate::anthropic::events::{SseWriter, StreamEvent};
use crate::anthropic::framing::WholeEvents;
use crate::anthropic::{Failed, UsageScanner};
use crate::deadline::Deadline;
use crate::failure::{Class, Failure, Retry};
use crate::providers::{BodyStream, EventStream, ProviderError};
use crate::record::{Outcome, RequestRecord, Sinks};
use crate::routing::Health;
use std::time::Duration;

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
        if self.sinks.iter().any(|sink| sink.holds(&self.record)) {
            self.record.own_body();
        }
        let record = std::sync::Arc::new(self.record);
        for sink in self.sinks.iter() {
            sink.record(&record);
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

/// Where a streaming response's bytes come from.
pub(crate) enum Source {
    /// The upstream's bytes, forwarded unchanged, with usage read on the side. An SSE body
    /// goes out in whole events (`framer`), so a cut never leaves half an event behind.
    Bytes {
        first: Option<Bytes>,
        stream: BodyStream,
        usage: UsageScanner,
        framer: Option<WholeEvents>,
        ended: bool,
    },
    /// Anthropic events from a converting provider, written as SSE.
    Events(EventSource),
}

/// A converting provider's events on their way out as SSE. A `ping` goes out after each
/// `ping_every` of upstream silence so that idle timeouts downstream don't fire.
pub(crate) struct EventSource {
    stream: EventStream,
    writer: SseWriter,
    usage: Option<Usage>,
    credits: Option<f64>,
    ping: Deadline,
    ping_every: Duration,
    /// How the stream ends once what was already written has gone out.
    ending: Option<Step>,
}

impl Source {
    pub fn bytes(first: Bytes, stream: BodyStream, mut usage: UsageScanner, sse: bool) -> Self {
        usage.observe(&first);
        Source::Bytes {
            first: Some(first),
            stream,
            usage,
            framer: sse.then(WholeEvents::default),
            ended: false,
        }
    }

    pub fn events(first: StreamEvent, stream: EventStream, ping_every: Duration) -> Self {
        let mut writer = SseWriter::new();
        let (mut usage, mut credits) = (None, None);
        observe_usage(&first, &mut usage, &mut credits);
        writer.write(&first);
        Source::Events(EventSource {
            stream,
            writer,
            usage,
            credits,
            ping: Deadline::new(tokio::time::Instant::now() + ping_every),
            ping_every,
            ending: None,
        })
    }

    fn credits(&self) -> Option<f64> {
        match self {
            Source::Bytes { .. } => None,
            Source::Events(events) => events.credits,
        }
    }

    fn usage(&self) -> Option<Usage> {
        match self {
            Source::Bytes { usage, .. } => usage.usage(),
            Source::Events(events) => events.usage,
        }
    }
}

fn observe_usage(event: &StreamEvent, usage: &mut Option<Usage>, credits: &mut Option<f64>) {
    match event {
        StreamEvent::MessageStart { usage: u, .. } | StreamEvent::MessageDelta { usage: u, .. } => {
            *usage = Some(*u);
        }
        StreamEvent::Metering { credits: charged } => {
            *credits = Some(credits.unwrap_or(0.0) + charged)
        }
        _ => {}
    }
}

/// What one poll of the source produced.
pub(crate) enum Step {
    Data(Bytes),
    End,
    /// The upstream failed; the stream ends with this error.
    Failed(Failed),
    /// The converted stream ended with the upstream's own `error` event (already written).
    EndedWithError(Failed),
}

/// An upstream response on its way to the client.
pub(crate) struct ProxyBody {
    source: Source,
    /// Fires when shutdown's grace period is over.
    force_end: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The body is an SSE stream, so a failure can be told as an `error` event.
    sse: bool,
    done: bool,
    pending: Option<PendingRecord>,
    outcome: Outcome,
    /// The target answering, told of a failure after the first byte.
    health: Health,
}

impl ProxyBody {
    pub fn new(
        source: Source,
        force_end: WaitForCancellationFutureOwned,
        sse: bool,
        pending: PendingRecord,
        health: Health,
    ) -> Self {
        ProxyBody {
            source,
            force_end: Box::pin(force_end),
            sse,
            done: false,
            pending: Some(pending),
            outcome: Outcome::ClientGone,
            health,
        }
    }

    /// Notes why the response ended early; an upstream's failure also reaches its health.
    fn note_failure(&mut self, outcome: Outcome, told: &Failed) {
        self.done = true;
        self.outcome = outcome;
        // Bytes have reached the client: this failure is never retried.
        let failure = Failure {
            retry: Retry::Never,
            ..told.failure
        };
        if outcome == Outcome::UpstreamFailed {
            self.health.failed(&failure);
        }
        if let Some(pending) = &mut self.pending {
            pending.record.error = Some(told.error.message.clone());
            pending.record.failure = Some(failure);
        }
    }

    /// Ends the response after a failure: an SSE client gets an `error` event; any other
    /// client gets a cut connection, the only signal left.
    fn end_with(
        &mut self,
        outcome: Outcome,
        told: Failed,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyCut>>> {
        self.note_failure(outcome, &told);
        if !self.sse {
            return Poll::Ready(Some(Err(BodyCut(told.error.message))));
        }
        // Both sources stop on an event boundary, so the event parses on its own.
        Poll::Ready(Some(Ok(Frame::data(told.error.to_sse_event()))))
    }

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyCut>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let step = match &mut self.source {
            Source::Bytes {
                first,
                stream,
                usage,
                framer,
                ended,
            } => poll_bytes(first, stream, usage, framer, ended, cx),
            Source::Events(events) => events.poll(cx),
        };
        match step {
            Poll::Ready(Step::Data(bytes)) => return Poll::Ready(Some(Ok(Frame::data(bytes)))),
            Poll::Ready(Step::End) => {
                self.done = true;
                self.outcome = Outcome::Completed;
                return Poll::Ready(None);
            }
            Poll::Ready(Step::Failed(told)) => {
                return self.end_with(Outcome::UpstreamFailed, told);
            }
            Poll::Ready(Step::EndedWithError(told)) => {
                self.note_failure(Outcome::UpstreamFailed, &told);
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        if self.force_end.as_mut().poll(cx).is_ready() {
            let told = ProviderError::shutting_down(&self.health.upstream.label).into_failed();
            return self.end_with(Outcome::ShutDown, told);
        }
        Poll::Pending
    }
}

fn poll_bytes(
    first: &mut Option<Bytes>,
    stream: &mut BodyStream,
    usage: &mut UsageScanner,
    framer: &mut Option<WholeEvents>,
    ended: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<Step> {
    if *ended {
        return Poll::Ready(Step::End);
    }
    loop {
        let chunk = match first.take() {
            Some(first) => first,
            None => match stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    usage.observe(&chunk);
                    chunk
                }
                Poll::Ready(Some(Err(error))) => {
                    if let Some(framer) = framer {
                        framer.discard();
                    }
                    return Poll::Ready(Step::Failed(error.into_failed()));
                }
                Poll::Ready(None) => {
                    *ended = true;
                    let rest = framer.as_mut().and_then(WholeEvents::take_rest);
                    return Poll::Ready(rest.map_or(Step::End, Step::Data));
                }
                Poll::Pending => return Poll::Pending,
            },
        };
        match framer {
            None => return Poll::Ready(Step::Data(chunk)),
            Some(framer) => {
                if let Some(events) = framer.push(chunk) {
                    return Poll::Ready(Step::Data(events));
                }
                if framer.holds_too_much() {
                    framer.discard();
                    return Poll::Ready(Step::Failed(oversized_event()));
                }
            }
        }
    }
}

/// An upstream event that outgrew [`crate::anthropic::framing::MAX_EVENT`].
fn oversized_event() -> Failed {
    Failed {
        error: crate::anthropic::ApiError::new(
            crate::anthropic::ErrorType::Api,
            format!(
                "the upstream sent an SSE event over {} bytes",
                crate::anthropic::framing::MAX_EVENT
            ),
        )
        .with_status(http::StatusCode::BAD_GATEWAY),
        failure: Failure::after_start(Class::BadResponse),
    }
}

impl EventSource {
    /// Writes every event that is ready into one chunk, so a burst of small events is one
    /// write.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Step> {
        let EventSource {
            stream,
            writer,
            usage,
            credits,
            ping,
            ping_every,
            ending,
        } = self;
        let ping_every = *ping_every;
        if let Some(step) = ending.take() {
            return Poll::Ready(step);
        }
        loop {
            let end = match stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(event))) => {
                    observe_usage(&event, usage, credits);
                    writer.write(&event);
                    match event {
                        StreamEvent::Error(told) => Step::EndedWithError(told),
                        _ => continue,
                    }
                }
                Poll::Ready(Some(Err(error))) => Step::Failed(error.into_failed()),
                Poll::Ready(None) => Step::End,
                Poll::Pending => {
                    if writer.is_empty() && ping.poll_passed(cx).is_ready() {
                        writer.write(&StreamEvent::Ping);
                    }
                    if writer.is_empty() {
                        return Poll::Pending;
                    }
                    // Silence is counted from what last went out, one clock read a batch.
                    ping.set(tokio::time::Instant::now() + ping_every);
                    return Poll::Ready(Step::Data(writer.take()));
                }
            };
            // The stream is over: send what is written first, then end.
            if writer.is_empty() {
                return Poll::Ready(end);
            }
            *ending = Some(end);
            return Poll::Ready(Step::Data(writer.take()));
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        if let Some(mut pending) = self.pending.take() {
            if self.outcome == Outcome::ClientGone {
                pending.record.failure = Some(Failure::client(Class::Cancelled));
            }
            pending.record.credits = self.source.credits();
            pending.finish(self.outcome, self.source.usage());
        }
    }
}
