//! Upstream providers behind one narrow trait. Each module turns a client request into its
//! wire request and its wire response back into what the client gets.
//! Adding a provider is one module, one `ProviderKind` variant and one arm in [`build`].

pub mod anthropic;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Once};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use futures_util::future::BoxFuture;
use http::{HeaderMap, StatusCode};

use crate::anthropic::{ApiError, ErrorType, MessagesRequest, UsageScanner};
use crate::config::{ProviderConfig, ProviderKind, UpstreamTimeouts};

/// A response body coming from an upstream, chunk by chunk.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, ProviderError>> + Send>>;

/// What a provider needs to send one request.
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
    pub body: BodyStream,
    /// Reads usage from the body as it passes.
    pub usage: UsageScanner,
}

/// Why an upstream call failed. Each variant knows who caused it and whether another
/// target could succeed, so that routing can decide and one place can answer the client.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The upstream answered with an error status; its body and headers are kept as sent.
    #[error("{provider} answered {status}")]
    Status {
        provider: String,
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
    #[error("cannot reach {provider} at {url}: {detail}")]
    Connect {
        provider: String,
        url: String,
        detail: String,
    },
    #[error("{provider} at {url} did not {what} within {after:?}")]
    Timeout {
        provider: String,
        url: String,
        what: &'static str,
        after: Duration,
    },
    #[error("{provider} broke off the response: {detail}")]
    Stream { provider: String, detail: String },
}

impl ProviderError {
    /// Short class name used in records and, later, stats and blacklisting.
    pub fn class(&self) -> &'static str {
        match self {
            ProviderError::Status { status, .. } if *status == StatusCode::TOO_MANY_REQUESTS => {
                "rate_limited"
            }
            ProviderError::Status { status, .. }
                if status.is_server_error() || status.as_u16() == 529 =>
            {
                "server_error"
            }
            ProviderError::Status { .. } => "http_4xx",
            ProviderError::Connect { .. } => "connect",
            ProviderError::Timeout { .. } => "timeout",
            ProviderError::Stream { .. } => "stream",
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ProviderError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error as the client sees it when ccr itself must describe it.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            ProviderError::Status { status, .. } => {
                let kind = match status.as_u16() {
                    400 | 422 => ErrorType::InvalidRequest,
                    401 => ErrorType::Authentication,
                    403 => ErrorType::Permission,
                    404 => ErrorType::NotFound,
                    413 => ErrorType::RequestTooLarge,
                    429 => ErrorType::RateLimit,
                    503 | 529 => ErrorType::Overloaded,
                    _ => ErrorType::Api,
                };
                ApiError::new(kind, self.to_string()).with_status(*status)
            }
            ProviderError::Connect { .. } | ProviderError::Stream { .. } => ApiError::new(
                ErrorType::Api,
                format!("{self}: check the provider's base_url and that it is up"),
            )
            .with_status(StatusCode::BAD_GATEWAY),
            ProviderError::Timeout { .. } => ApiError::new(ErrorType::Api, self.to_string())
                .with_status(StatusCode::GATEWAY_TIMEOUT),
        }
    }
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

/// Builds the provider a config entry describes.
pub fn build(name: &str, config: &ProviderConfig) -> Result<Arc<dyn Provider>, BuildError> {
    match config.kind {
        ProviderKind::Anthropic => Ok(Arc::new(anthropic::AnthropicProvider::new(name, config)?)),
    }
}

/// A pooled client for one provider: keep-alive, `TCP_NODELAY`, HTTP/2 where offered, and
/// the connect timeout. First-byte and idle timeouts are applied per call by the provider.
pub(crate) fn http_client(
    provider: &str,
    timeouts: &UpstreamTimeouts,
) -> Result<reqwest::Client, BuildError> {
    static CRYPTO: Once = Once::new();
    CRYPTO.call_once(|| {
        // Another part of the process may have installed one already; either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect.0)
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .map_err(|e| BuildError::Client {
            provider: provider.to_string(),
            detail: e.to_string(),
        })
}

/// Bounds an upstream body in time: its first bytes must arrive by `first_byte_deadline`,
/// then each chunk within `idle` of the previous one. A timeout ends the stream with an error.
pub(crate) fn timed_body(
    inner: BodyStream,
    provider: &str,
    url: &str,
    first_byte_deadline: std::time::Instant,
    idle: Duration,
) -> BodyStream {
    Box::pin(TimedBody {
        inner,
        timer: Box::pin(tokio::time::sleep_until(first_byte_deadline.into())),
        first_byte_wait: first_byte_deadline.saturating_duration_since(std::time::Instant::now()),
        idle,
        started: false,
        done: false,
        provider: provider.to_string(),
        url: url.to_string(),
    })
}

struct TimedBody {
    inner: BodyStream,
    timer: Pin<Box<tokio::time::Sleep>>,
    first_byte_wait: Duration,
    idle: Duration,
    started: bool,
    done: bool,
    provider: String,
    url: String,
}

impl Stream for TimedBody {
    type Item = Result<Bytes, ProviderError>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if self.done {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.started = true;
                let next = tokio::time::Instant::now() + self.idle;
                self.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(other) => {
                self.done = true;
                Poll::Ready(other)
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.done = true;
                    let (what, after) = if self.started {
                        ("send more of its response", self.idle)
                    } else {
                        ("start its response", self.first_byte_wait)
                    };
                    Poll::Ready(Some(Err(ProviderError::Timeout {
                        provider: self.provider.clone(),
                        url: self.url.clone(),
                        what,
                        after,
                    })))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}
