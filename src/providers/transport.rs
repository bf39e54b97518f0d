//! The transport every provider sends through: one pooled client per upstream, the
//! first-byte deadline and idle timeout, status and header capture, and error bodies read
//! with a size cap and a short deadline of their own.

use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, StatusCode};

use super::{BodyStream, BuildError, ProviderError};
use crate::anthropic::{ApiError, ErrorType};
use crate::config::UpstreamTimeouts;
use crate::deadline::Deadline;
use crate::failure::{Class, Failure};
use crate::secret::Secret;

/// The most of an upstream error body ccr reads: enough for any real error message, and a
/// bound on what a broken upstream can make ccr hold.
pub(crate) const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// How long an error body may take once its status has arrived.
const ERROR_BODY_DEADLINE: Duration = Duration::from_secs(10);

/// What an upstream answered once its status and headers arrived.
pub(crate) enum Answered {
    /// A success: the body streams on, bounded in time.
    Success {
        status: StatusCode,
        headers: HeaderMap,
        body: BodyStream,
        /// The same bounds for a converter's events (bytes that carry no event do not count).
        timing: EventTiming,
    },
    /// An error status and (up to [`ERROR_BODY_LIMIT`] of) its body.
    Refused {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
}

/// When a converted stream's events must come: the first by the first-byte deadline, then
/// each within `idle` of the one before.
#[derive(Clone)]
pub(crate) struct EventTiming {
    pub first_deadline: Instant,
    pub idle: Duration,
    pub label: String,
    pub url: url::Url,
}

/// One upstream endpoint: its client, URL and timeouts.
pub(crate) struct Transport {
    client: reqwest::Client,
    url: url::Url,
    timeouts: UpstreamTimeouts,
    /// ccr's own credentials for this upstream, cut out of any error body that echoes them.
    secrets: Vec<Secret>,
}

impl Transport {
    pub fn new(
        provider: &str,
        url: url::Url,
        timeouts: UpstreamTimeouts,
        secrets: Vec<Secret>,
    ) -> Result<Self, BuildError> {
        Ok(Transport {
            secrets,
            client: crate::http_client::pooled(provider, timeouts.connect.0).map_err(|e| {
                BuildError::Client {
                    provider: provider.to_string(),
                    detail: e.detail,
                }
            })?,
            url,
            timeouts,
        })
    }

    /// A POST to the endpoint, for the provider to add its headers and body to.
    pub fn post(&self) -> reqwest::RequestBuilder {
        self.client.post(self.url.clone())
    }

    /// A POST to another endpoint of the same upstream, for providers whose path names the
    /// model (Gemini); send it with [`Transport::send_to`] so errors name that URL.
    pub fn post_to(&self, url: &url::Url) -> reqwest::RequestBuilder {
        self.client.post(url.clone())
    }

    /// Sends and waits for the status and headers within the first-byte deadline. `label`
    /// names the target in errors.
    pub async fn send(
        &self,
        label: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Answered, ProviderError> {
        self.send_with_secret(label, request, None).await
    }

    /// [`Transport::send`] with one more credential to cut out of error bodies (a
    /// CodeWhisperer access token of the moment).
    pub async fn send_with_secret(
        &self,
        label: &str,
        request: reqwest::RequestBuilder,
        also: Option<&Secret>,
    ) -> Result<Answered, ProviderError> {
        self.exchange(label, &self.url, request, also).await
    }

    /// [`Transport::send`] for a request made with [`Transport::post_to`] `url`.
    pub async fn send_to(
        &self,
        label: &str,
        url: &url::Url,
        request: reqwest::RequestBuilder,
    ) -> Result<Answered, ProviderError> {
        self.exchange(label, url, request, None).await
    }

    async fn exchange(
        &self,
        label: &str,
        url: &url::Url,
        request: reqwest::RequestBuilder,
        also: Option<&Secret>,
    ) -> Result<Answered, ProviderError> {
        let sent_at = Instant::now();
        let end = self
            .timeouts
            .total
            .map(|total| (sent_at + total.0, total.0));
        let first_byte_deadline =
            (sent_at + self.timeouts.first_byte.0).min(end.map_or(far_future(), |(at, _)| at));
        let response = tokio::time::timeout_at(first_byte_deadline.into(), request.send())
            .await
            .map_err(|_| timeout_error(label, url, "answer", self.timeouts.first_byte.0))?
            .map_err(|e| request_error(label, url, e, self.timeouts.connect.0))?;
        let status = response.status();
        let headers = response.headers().clone();
        if status.is_success() {
            let body = response_body(
                response,
                label,
                url,
                first_byte_deadline,
                self.timeouts.idle.0,
                end,
            );
            let timing = EventTiming {
                first_deadline: first_byte_deadline,
                idle: self.timeouts.idle.0,
                label: label.to_string(),
                url: url.clone(),
            };
            return Ok(Answered::Success {
                status,
                headers,
                body,
                timing,
            });
        }
        let deadline = first_byte_deadline.min(Instant::now() + ERROR_BODY_DEADLINE);
        let secrets = self.secrets.iter().chain(also);
        let body = redacted(capped_body(response, deadline).await, secrets);
        Ok(Answered::Refused {
            status,
            headers,
            body,
        })
    }
}

/// A deadline later than any response lasts.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

/// A URL as messages show it: without a query string or user info, where a key could be.
fn shown(url: &url::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// `body` with every credential of `secrets` replaced: some upstreams echo the key they were
/// given, and the body goes on to the client, the log and the record.
fn redacted<'a>(body: Bytes, secrets: impl Iterator<Item = &'a Secret>) -> Bytes {
    let mut text: Option<Vec<u8>> = None;
    for secret in secrets {
        let needle = secret.expose().as_bytes();
        // A short value would match ordinary text; real keys are long.
        if needle.len() < 8 {
            continue;
        }
        let current = text.as_deref().unwrap_or(&body);
        if memchr::memmem::find(current, needle).is_none() {
            continue;
        }
        let mut out = Vec::with_capacity(current.len());
        let mut rest = current;
        while let Some(at) = memchr::memmem::find(rest, needle) {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(b"[redacted]");
            rest = &rest[at + needle.len()..];
        }
        out.extend_from_slice(rest);
        text = Some(out);
    }
    text.map_or(body, Bytes::from)
}

/// Reads at most [`ERROR_BODY_LIMIT`] bytes of a body, until `deadline`; what arrived by
/// then is what the error says.
async fn capped_body(response: reqwest::Response, deadline: Instant) -> Bytes {
    let mut body = BytesMut::new();
    let mut chunks = response.bytes_stream();
    let read = async {
        while let Some(Ok(chunk)) = chunks.next().await {
            let room = ERROR_BODY_LIMIT - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= ERROR_BODY_LIMIT {
                break;
            }
        }
    };
    let _ = tokio::time::timeout_at(deadline.into(), read).await;
    body.freeze()
}

/// A request that failed before any response: a timeout or a connection error.
fn request_error(
    provider: &str,
    url: &url::Url,
    error: reqwest::Error,
    connect: Duration,
) -> ProviderError {
    if error.is_timeout() {
        return timeout_error(provider, url, "accept the connection", connect);
    }
    let error = ApiError::new(
        ErrorType::Api,
        format!(
            "cannot reach {provider} at {}: {}: check the provider's base_url and that it is up",
            shown(url),
            // reqwest names the URL in its message; the shown one above is enough.
            error_chain(&error.without_url())
        ),
    )
    .with_status(StatusCode::BAD_GATEWAY);
    ProviderError::api(
        provider,
        HeaderMap::new(),
        error,
        Failure::upstream(Class::Network),
    )
}

pub(super) fn timeout_error(
    provider: &str,
    url: &url::Url,
    what: &'static str,
    after: Duration,
) -> ProviderError {
    let error = ApiError::new(
        ErrorType::Api,
        format!(
            "{provider} at {} did not {what} within {after:?}",
            shown(url)
        ),
    )
    .with_status(StatusCode::GATEWAY_TIMEOUT);
    ProviderError::api(
        provider,
        HeaderMap::new(),
        error,
        Failure::upstream(Class::Timeout),
    )
}

/// An error and its causes on one line; reqwest's top-level message alone hides the cause.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A response's body as a stream of chunks, bounded in time by [`timed_body`].
fn response_body(
    response: reqwest::Response,
    provider: &str,
    url: &url::Url,
    first_byte_deadline: std::time::Instant,
    idle: Duration,
    end: Option<(Instant, Duration)>,
) -> BodyStream {
    let name = provider.to_string();
    let stream: BodyStream = Box::pin(futures_util::TryStreamExt::map_err(
        response.bytes_stream(),
        move |e| {
            ProviderError::broken(&name, &error_chain(&e), Failure::upstream(Class::StreamCut))
        },
    ));
    timed_body(stream, provider, url, first_byte_deadline, idle, end)
}

/// Bounds an upstream body in time: its first bytes must arrive by `first_byte_deadline`,
/// then each chunk within `idle` of the previous one. A timeout ends the stream with an error.
fn timed_body(
    inner: BodyStream,
    provider: &str,
    url: &url::Url,
    first_byte_deadline: std::time::Instant,
    idle: Duration,
    end: Option<(Instant, Duration)>,
) -> BodyStream {
    Box::pin(TimedBody {
        end,
        inner,
        timer: Deadline::new(first_byte_deadline.into()),
        first_byte_wait: first_byte_deadline.saturating_duration_since(std::time::Instant::now()),
        idle,
        started: false,
        done: false,
        provider: provider.to_string(),
        url: url.clone(),
    })
}

struct TimedBody {
    /// `timeouts.total`: when the whole response must be over, and that duration.
    end: Option<(Instant, Duration)>,
    inner: BodyStream,
    timer: Deadline,
    first_byte_wait: Duration,
    idle: Duration,
    started: bool,
    done: bool,
    provider: String,
    url: url::Url,
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
                let next = Instant::now() + self.idle;
                let next = self.end.map_or(next, |(end, _)| end.min(next));
                self.timer.set(next.into());
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(other) => {
                self.done = true;
                Poll::Ready(other)
            }
            Poll::Pending => match self.timer.poll_passed(cx) {
                Poll::Ready(()) => {
                    self.done = true;
                    let (what, after) = match self.end {
                        Some((end, total)) if Instant::now() >= end => {
                            ("finish its response", total)
                        }
                        _ if self.started => ("send more of its response", self.idle),
                        _ => ("start its response", self.first_byte_wait),
                    };
                    Poll::Ready(Some(Err(timeout_error(
                        &self.provider,
                        &self.url,
                        what,
                        after,
                    ))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}
