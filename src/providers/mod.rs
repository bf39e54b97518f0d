//! Upstream providers behind one narrow trait. Each module turns a client request into its
//! wire request and its wire response back into what the client gets.
//! Adding a provider is one module, one `ProviderConfig` variant and one arm in `build_one`.

pub mod anthropic;
pub mod codewhisperer;
pub mod gemini;
pub mod openai;
mod transport;

pub(crate) use transport::{Answered, EventTiming, Transport};

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use futures_util::future::BoxFuture;
use http::{HeaderMap, StatusCode};

use crate::anthropic::events::StreamEvent;
use crate::anthropic::{ApiError, ErrorType, Failed, MessagesRequest, UsageScanner};
use crate::config::ProviderConfig;
use crate::deadline::Deadline;
use crate::failure::{Class, Failure, Retry};

/// A response body coming from an upstream, chunk by chunk.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, ProviderError>> + Send>>;

/// A converted response: Anthropic events as the upstream's answer arrives.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, ProviderError>> + Send>>;

/// What a provider needs to send one request.
#[derive(Clone, Copy)]
pub struct Call<'a> {
    pub request: &'a MessagesRequest,
    /// The client's request headers.
    pub client_headers: &'a HeaderMap,
    /// The upstream model to ask for.
    pub model: &'a str,
    /// The client's credential may be forwarded (ccr has no `server.api_key` of its own).
    pub forward_client_auth: bool,
}

/// An upstream response whose status and headers have arrived.
pub struct Reply {
    pub status: StatusCode,
    /// Headers to pass back to the client (content type, request id, rate limits…).
    pub headers: HeaderMap,
    pub body: ReplyBody,
}

pub enum ReplyBody {
    /// The upstream speaks the client's format: its bytes go to the client unchanged, and
    /// `usage` reads them on the side.
    Bytes {
        stream: BodyStream,
        usage: UsageScanner,
    },
    /// A converting provider's events, written as SSE or folded into one message.
    Events(EventStream),
}

/// Why an upstream call failed: the typed [`Failure`] decided where the error was made,
/// and what the client is told if this is the last try.
#[derive(Debug)]
pub struct ProviderError {
    /// The target's label (`deepseek#2`, `kiro:work`).
    pub provider: String,
    pub failure: Failure,
    pub answer: Answer,
}

/// What the client gets for a failure.
#[derive(Debug)]
pub enum Answer {
    /// The upstream's own error response, passed back as sent (the pass-through).
    Upstream {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    /// An error told in the Anthropic form, with headers to pass back.
    Api { headers: HeaderMap, error: ApiError },
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.answer {
            Answer::Upstream { status, body, .. } => {
                let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
                write!(
                    f,
                    "{} answered {}: {}",
                    self.provider,
                    status.as_u16(),
                    text.trim()
                )
            }
            Answer::Api { error, .. } => f.write_str(&error.message),
        }
    }
}

impl std::error::Error for ProviderError {}

impl ProviderError {
    /// An upstream error told in the Anthropic form. A context-length error is worded as
    /// Anthropic words it, whatever the upstream said, since that wording is what makes
    /// Claude Code compact the conversation.
    pub fn api(provider: &str, headers: HeaderMap, mut error: ApiError, failure: Failure) -> Self {
        if failure.class == Class::ContextTooLong && !error.message.contains("prompt is too long") {
            error = ApiError::new(
                ErrorType::InvalidRequest,
                format!("prompt is too long: {}", error.message),
            );
        }
        ProviderError {
            provider: provider.to_string(),
            failure,
            answer: Answer::Api { headers, error },
        }
    }

    /// An error the upstream told inside its stream, before anything reached the client.
    pub fn told(provider: &str, headers: HeaderMap, told: Failed) -> Self {
        ProviderError::api(provider, headers, told.error, told.failure)
    }

    /// ccr cannot express the request for this provider.
    pub fn conversion(provider: &str, message: String) -> Self {
        let error = ApiError::new(ErrorType::InvalidRequest, format!("{provider}: {message}"));
        ProviderError::api(provider, HeaderMap::new(), error, Failure::conversion())
    }

    /// The upstream broke off or sent something ccr cannot read.
    pub fn broken(provider: &str, detail: &str, failure: Failure) -> Self {
        let error = ApiError::new(
            ErrorType::Api,
            format!("{provider} broke off the response: {detail}"),
        )
        .with_status(StatusCode::BAD_GATEWAY);
        ProviderError::api(provider, HeaderMap::new(), error, failure)
    }

    /// ccr is shutting down and its grace period ended.
    pub fn shutting_down(provider: &str) -> Self {
        let error = ApiError::new(
            ErrorType::Overloaded,
            "ccr is shutting down and its grace period ended before this response finished: retry the request",
        );
        ProviderError::api(
            provider,
            HeaderMap::new(),
            error,
            Failure::ccr(Class::Cancelled, Retry::Never),
        )
    }

    /// The upstream's HTTP status, if it answered with one.
    pub fn status(&self) -> Option<StatusCode> {
        match &self.answer {
            Answer::Upstream { status, .. } => Some(*status),
            Answer::Api { error, .. } => Some(error.status).filter(|_| self.upstream_answered()),
        }
    }

    /// Whether the upstream answered at all (not a connection error or a timeout).
    fn upstream_answered(&self) -> bool {
        !matches!(
            self.failure.class,
            Class::Network | Class::Timeout | Class::Cancelled
        )
    }

    /// The error as the client sees it when ccr itself must describe it.
    pub fn to_api_error(&self) -> ApiError {
        match &self.answer {
            Answer::Upstream { status, .. } => {
                ApiError::new(error_type_for_status(*status), self.to_string()).with_status(*status)
            }
            Answer::Api { error, .. } => error.clone(),
        }
    }

    /// The error and its failure, for a stream that has already started.
    pub fn into_failed(self) -> Failed {
        Failed {
            error: self.to_api_error(),
            failure: self.failure,
        }
    }
}

/// A body that is valid JSON but not a Messages request: the client's to fix.
pub(crate) fn malformed(
    provider: &str,
    error: &crate::anthropic::types::BodyError,
) -> ProviderError {
    let error = ApiError::new(ErrorType::InvalidRequest, error.to_string());
    ProviderError::api(
        provider,
        HeaderMap::new(),
        error,
        Failure::client(Class::ClientError),
    )
}

/// The Anthropic error type for an upstream HTTP status.
pub(crate) fn error_type_for_status(status: StatusCode) -> ErrorType {
    match status.as_u16() {
        400 | 422 => ErrorType::InvalidRequest,
        401 => ErrorType::Authentication,
        403 => ErrorType::Permission,
        404 => ErrorType::NotFound,
        413 => ErrorType::RequestTooLarge,
        429 => ErrorType::RateLimit,
        503 | 529 => ErrorType::Overloaded,
        _ => ErrorType::Api,
    }
}

/// The upstream's `Retry-After`, parsed saturating.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()
        .and_then(crate::failure::parse_retry_after)
}

/// Upstream response headers a client is given back: its request id, `retry-after` and
/// rate limits.
pub(crate) fn rate_limit_headers(upstream: &HeaderMap) -> HeaderMap {
    upstream
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            matches!(name, "request-id" | "retry-after")
                || name.starts_with("anthropic-ratelimit-")
                || name.starts_with("x-ratelimit-")
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// One upstream provider.
pub trait Provider: Send + Sync {
    /// The provider's name in the config, used in labels and messages.
    fn name(&self) -> &str;

    /// Sends one request and returns once the status and headers have arrived.
    fn send<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Reply, ProviderError>>;
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("bad route: {0}")]
    UnknownProvider(String),
    #[error("cannot build the HTTP client for provider `{provider}`: {detail}")]
    Client { provider: String, detail: String },
}

/// What building a provider needs beside its own config entry.
pub struct BuildContext {
    /// CodeWhisperer accounts' tokens, shared by every provider of this configuration.
    pub tokens: Arc<dyn crate::credentials::TokenSource>,
}

/// A provider and the label its target goes by (`deepseek#2`).
pub type Labelled = (String, Arc<dyn Provider>);

/// Builds the upstreams a config entry describes: one per key of `api_keys` or per
/// CodeWhisperer account, each with its label, else one.
pub fn build(
    name: &str,
    config: &ProviderConfig,
    context: &BuildContext,
) -> Result<Vec<Labelled>, BuildError> {
    config
        .per_key(name)
        .into_iter()
        .map(|(label, one)| Ok((label, build_one(name, &one, context)?)))
        .collect()
}

fn build_one(
    name: &str,
    config: &ProviderConfig,
    context: &BuildContext,
) -> Result<Arc<dyn Provider>, BuildError> {
    match config {
        ProviderConfig::Codewhisperer(c) => {
            Ok(Arc::new(codewhisperer::CodeWhispererProvider::new(
                name,
                c,
                config.base_url(),
                context.tokens.clone(),
            )?))
        }
        ProviderConfig::Anthropic(c) => Ok(Arc::new(anthropic::AnthropicProvider::new(
            name,
            c,
            config.base_url(),
        )?)),
        ProviderConfig::Openai(c) => Ok(Arc::new(openai::OpenAiProvider::new(
            name,
            c,
            config.base_url(),
        )?)),
        ProviderConfig::Gemini(c) => Ok(Arc::new(gemini::GeminiProvider::new(
            name,
            c,
            config.base_url(),
        )?)),
    }
}

/// A converter from an upstream's wire bytes to Anthropic events, fed as bytes arrive:
/// `feed` each chunk, `finish` when the body ends.
pub trait WireConverter: Send + Unpin + 'static {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>);
    /// The body ended.
    fn finish(&mut self, out: &mut Vec<StreamEvent>);
    /// The response is over (`message_stop` or an `error` was emitted).
    fn is_done(&self) -> bool;
}

/// A converter's wire `data:` lines, the part of it the one SSE reader feeds.
pub(crate) trait DataLines {
    fn data(&mut self, data: &[u8], out: &mut Vec<StreamEvent>);
    fn stream(&self) -> &crate::anthropic::builder::StreamBuilder;
    fn stream_mut(&mut self) -> &mut crate::anthropic::builder::StreamBuilder;
}

/// The SSE reader's handler for a converter: `data:` lines go to it (`event:` names and
/// blank separators carry nothing), and a line over the reader's limit ends the stream as
/// a bad response.
pub(crate) struct DataReading<'a, D> {
    pub lines: &'a mut D,
    pub out: &'a mut Vec<StreamEvent>,
}

impl<D: DataLines> crate::anthropic::sse::SseHandler for DataReading<'_, D> {
    fn line(&mut self, line: crate::anthropic::sse::SseLine<'_>) {
        if let crate::anthropic::sse::SseLine::Data(data) = line {
            self.lines.data(data, self.out);
        }
    }

    fn is_done(&self) -> bool {
        self.lines.stream().is_done()
    }

    fn oversized(&mut self) {
        let stream = self.lines.stream_mut();
        let message = format!(
            "{} sent a stream line over {} bytes",
            stream.provider(),
            crate::anthropic::sse::MAX_LINE
        );
        stream.fail(
            ApiError::new(ErrorType::Api, message),
            Failure::upstream(Class::BadResponse),
            self.out,
        );
    }
}

/// Upstream bytes in, Anthropic events out, as they arrive, each event in time: a trickle
/// of bytes that carries no event does not keep the stream alive.
pub(crate) fn converted_events(
    bytes: BodyStream,
    converter: impl WireConverter,
    timing: EventTiming,
) -> EventStream {
    Box::pin(ConvertedEvents {
        bytes,
        converter,
        ready: std::collections::VecDeque::new(),
        scratch: Vec::new(),
        deadline: Deadline::new(timing.first_deadline.into()),
        first_wait: timing
            .first_deadline
            .saturating_duration_since(std::time::Instant::now()),
        started: false,
        timed_out: false,
        timing,
    })
}

struct ConvertedEvents<C> {
    bytes: BodyStream,
    converter: C,
    ready: std::collections::VecDeque<StreamEvent>,
    scratch: Vec<StreamEvent>,
    /// When the next event must have come.
    deadline: Deadline,
    first_wait: Duration,
    started: bool,
    timed_out: bool,
    timing: EventTiming,
}

impl<C: WireConverter> ConvertedEvents<C> {
    fn event_arrived(&mut self) {
        self.started = true;
        let next = tokio::time::Instant::now() + self.timing.idle;
        self.deadline.set(next);
    }

    fn timeout(&mut self) -> ProviderError {
        self.timed_out = true;
        let (what, after) = match self.started {
            true => ("send its next event", self.timing.idle),
            false => ("send its first event", self.first_wait),
        };
        transport::timeout_error(&self.timing.label, &self.timing.url, what, after)
    }
}

impl<C: WireConverter> Stream for ConvertedEvents<C> {
    type Item = Result<StreamEvent, ProviderError>;

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        // Every field is Unpin (boxed stream and timer, plain data).
        let this = Pin::into_inner(self);
        loop {
            if let Some(event) = this.ready.pop_front() {
                // The clock starts when the last event of a batch has been taken: the deadline
                // is only watched once none are left, and reading the clock per event cost
                // more than the rest of the hand-over.
                if this.ready.is_empty() {
                    this.event_arrived();
                }
                return Poll::Ready(Some(Ok(event)));
            }
            if this.converter.is_done() || this.timed_out {
                return Poll::Ready(None);
            }
            match this.bytes.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => this.converter.feed(&chunk, &mut this.scratch),
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Ready(None) => this.converter.finish(&mut this.scratch),
                Poll::Pending => {
                    if this.deadline.poll_passed(cx).is_ready() {
                        return Poll::Ready(Some(Err(this.timeout())));
                    }
                    return Poll::Pending;
                }
            }
            this.ready.extend(this.scratch.drain(..));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_length_error_is_worded_as_anthropic_words_it() {
        let upstream = ApiError::new(
            ErrorType::InvalidRequest,
            "deepseek answered 400: This model's maximum context length is 65536 tokens",
        );
        let error = ProviderError::api(
            "deepseek",
            HeaderMap::new(),
            upstream,
            Failure::context_too_long(),
        );
        let told = error.to_api_error();
        assert!(
            told.message
                .starts_with("prompt is too long: deepseek answered 400"),
            "{}",
            told.message
        );
        assert_eq!(
            (told.kind, told.status.as_u16()),
            (ErrorType::InvalidRequest, 400)
        );
    }
}
