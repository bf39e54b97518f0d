//! The request handler: endpoints, client auth, body limit, parsing, and the one place that
//! turns a failure into an Anthropic-shaped response.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tracing::Instrument;

use super::State;
use super::body::{PendingRecord, ProxyBody, ResponseBody, Source};
use super::conn::ConnGuard;
use crate::anthropic::UsageScanner;
use crate::anthropic::events::{Fold, StreamEvent};
use crate::anthropic::{ApiError, ErrorType, MessagesRequest, estimate};
use crate::providers::{BodyStream, Call, EventStream, ProviderError, ReplyBody};
use crate::record::{Attempt, Outcome, RequestRecord, Timings};

/// The response header naming ccr's id for the request (also in its log lines).
pub const REQUEST_ID_HEADER: &str = "x-ccr-request-id";

pub(crate) async fn handle(
    state: Arc<State>,
    conn: ConnGuard,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let id = crate::anthropic::ids::request_id();
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = route(&state, &id, request).instrument(span).await;
    response.body_mut().hold_connection(conn);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    Ok(response)
}

async fn route(state: &Arc<State>, id: &str, request: Request<Incoming>) -> Response<ResponseBody> {
    let path = request.uri().path();
    let method = request.method();
    if path.starts_with("/v1/") && !client_is_authorized(state, request.headers()) {
        return error_response(&ApiError::new(
            ErrorType::Authentication,
            "missing or wrong API key: send ccr's `server.api_key` as `x-api-key` or `Authorization: Bearer`",
        ));
    }
    match (method, path) {
        (&Method::HEAD, "/") => plain(StatusCode::OK, ResponseBody::empty()),
        (&Method::GET, "/health") | (&Method::HEAD, "/health") => {
            json(StatusCode::OK, Bytes::from_static(b"{\"status\":\"ok\"}"))
        }
        (&Method::POST, "/v1/messages") => messages(state, id, request).await,
        (&Method::POST, "/v1/messages/count_tokens") => count_tokens(state, request).await,
        (_, "/" | "/health" | "/v1/messages" | "/v1/messages/count_tokens") => error_response(
            &ApiError::new(
                ErrorType::InvalidRequest,
                format!("{method} is not allowed on {path}"),
            )
            .with_status(StatusCode::METHOD_NOT_ALLOWED),
        ),
        _ => error_response(&ApiError::new(
            ErrorType::NotFound,
            format!(
                "no endpoint {method} {path}: ccr serves POST /v1/messages, POST /v1/messages/count_tokens and GET /health"
            ),
        )),
    }
}

async fn count_tokens(state: &State, request: Request<Incoming>) -> Response<ResponseBody> {
    let body = match admit(state, request).await {
        Ok((_, body)) => body,
        Err(error) => return error_response(&error),
    };
    if let Err(error) = MessagesRequest::parse(body.clone()) {
        return error_response(&ApiError::new(ErrorType::InvalidRequest, error.to_string()));
    }
    let answer = serde_json::json!({ "input_tokens": estimate::input_tokens(&body) });
    json(StatusCode::OK, Bytes::from(answer.to_string()))
}

/// With `server.api_key` set, `/v1/*` needs it; `HEAD /` and `/health` stay open.
fn client_is_authorized(state: &State, headers: &HeaderMap) -> bool {
    match &state.client_key {
        Some(expected) => super::auth::presented_key_matches(headers, expected),
        None => true,
    }
}

/// Reads the body within the size limit.
async fn admit(state: &State, request: Request<Incoming>) -> Result<(HeaderMap, Bytes), ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorType::RequestTooLarge,
            format!(
                "request body is larger than ccr's limit of {} bytes (`server.body_limit`)",
                state.body_limit
            ),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > state.body_limit) {
        return Err(too_large());
    }
    let (parts, body) = request.into_parts();
    let limit = usize::try_from(state.body_limit).unwrap_or(usize::MAX);
    let collected = Limited::new(body, limit).collect().await.map_err(|error| {
        if error.is::<http_body_util::LengthLimitError>() {
            too_large()
        } else {
            ApiError::new(
                ErrorType::InvalidRequest,
                format!("could not read the request body: {error}"),
            )
        }
    })?;
    Ok((parts.headers, collected.to_bytes()))
}

async fn messages(
    state: &Arc<State>,
    id: &str,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let received = Instant::now();
    let mut pending = PendingRecord {
        record: RequestRecord {
            id: id.to_string(),
            started_at: SystemTime::now(),
            method: request.method().to_string(),
            path: request.uri().path().to_string(),
            model: None,
            streaming: false,
            status: 0,
            outcome: Outcome::Failed,
            error: None,
            attempts: Vec::new(),
            usage: None,
            timings: Timings::default(),
        },
        received,
        sinks: state.sinks.clone(),
    };
    let (headers, body) = match admit(state, request).await {
        Ok(admitted) => admitted,
        Err(error) => return fail(pending, &error),
    };
    let parsed = match MessagesRequest::parse(body) {
        Ok(parsed) => parsed,
        Err(error) => {
            return fail(
                pending,
                &ApiError::new(ErrorType::InvalidRequest, error.to_string()),
            );
        }
    };
    pending.record.model = Some(parsed.model().to_string());
    pending.record.streaming = parsed.stream();

    let target = state.router.pick(&parsed);
    let model = target.model_for(&parsed);
    let call = Call {
        request: &parsed,
        client_headers: &headers,
        model,
        forward_client_auth: state.client_key.is_none(),
    };
    let overhead_before = received.elapsed();
    let attempt_started = Instant::now();
    let sent = tokio::select! {
        result = target.provider.send(call) => result,
        _ = state.force_end.cancelled() => Err(ProviderError::Stream {
            provider: target.label.clone(),
            detail: "ccr is shutting down".into(),
        }),
    };
    let attempt =
        |status: Option<StatusCode>, class: &'static str, message: Option<String>| Attempt {
            target: target.label.clone(),
            model: model.to_string(),
            status: status.map(|s| s.as_u16()),
            class,
            message,
            duration: attempt_started.elapsed(),
        };
    let reply = match sent {
        Ok(reply) => reply,
        Err(error) => {
            pending.record.attempts.push(attempt(
                error.status(),
                error.class(),
                Some(error.to_string()),
            ));
            return upstream_failure(pending, error);
        }
    };
    let status = reply.status;
    let relay = Relay {
        state,
        label: &target.label,
        overhead_before,
        attempt_ok: attempt(Some(status), "ok", None),
    };
    match reply.body {
        ReplyBody::Bytes { stream, usage } => {
            relay
                .bytes(pending, status, reply.headers, stream, usage)
                .await
        }
        ReplyBody::Events(events) if parsed.stream() => {
            relay.events(pending, reply.headers, events).await
        }
        ReplyBody::Events(events) => relay.fold(pending, reply.headers, events).await,
    }
}

/// Turns an upstream reply into the client's response. Status and headers go out only once
/// the first upstream bytes or event have arrived, so a failure up to then is still
/// answered with a proper error status.
struct Relay<'a> {
    state: &'a State,
    label: &'a str,
    overhead_before: std::time::Duration,
    attempt_ok: Attempt,
}

impl Relay<'_> {
    /// Waits for the first item of an upstream stream, unless shutdown's grace runs out.
    async fn first<T>(
        &self,
        stream: &mut (impl futures_util::Stream<Item = Result<T, ProviderError>> + Unpin),
    ) -> Option<Result<T, ProviderError>> {
        tokio::select! {
            first = stream.next() => first,
            _ = self.state.force_end.cancelled() => Some(Err(self.shutting_down())),
        }
    }

    fn shutting_down(&self) -> ProviderError {
        ProviderError::Stream {
            provider: self.label.to_string(),
            detail: "ccr is shutting down".into(),
        }
    }

    /// Records the successful attempt and builds the streaming response.
    fn start(
        self,
        mut pending: PendingRecord,
        status: StatusCode,
        headers: HeaderMap,
        source: Source,
        sse: bool,
    ) -> Response<ResponseBody> {
        let received = pending.received;
        pending.record.attempts.push(self.attempt_ok);
        pending.record.timings.first_byte = Some(received.elapsed());
        pending.record.status = status.as_u16();
        let headers_ready = Instant::now();
        pending.record.timings.overhead = self.overhead_before + headers_ready.elapsed();
        let body = ProxyBody::new(
            source,
            self.state.force_end.clone().cancelled_owned(),
            sse,
            pending,
        );
        let mut response = Response::new(ResponseBody::proxy(body));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }

    fn failed(
        self,
        mut pending: PendingRecord,
        status: Option<StatusCode>,
        error: ProviderError,
    ) -> Response<ResponseBody> {
        let mut attempt = self.attempt_ok;
        attempt.status = status
            .map(|s| s.as_u16())
            .or(error.status().map(|s| s.as_u16()));
        attempt.class = error.class();
        attempt.message = Some(error.to_string());
        pending.record.attempts.push(attempt);
        upstream_failure(pending, error)
    }

    /// A pass-through: the upstream's bytes, unchanged.
    async fn bytes(
        self,
        pending: PendingRecord,
        status: StatusCode,
        headers: HeaderMap,
        mut stream: BodyStream,
        usage: UsageScanner,
    ) -> Response<ResponseBody> {
        let first = match self.first(&mut stream).await {
            Some(Ok(first)) => first,
            None => Bytes::new(),
            Some(Err(error)) => return self.failed(pending, Some(status), error),
        };
        let sse = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        self.start(
            pending,
            status,
            headers,
            Source::bytes(first, stream, usage, sse),
            sse,
        )
    }

    /// A converted stream written as SSE.
    async fn events(
        self,
        pending: PendingRecord,
        mut headers: HeaderMap,
        mut events: EventStream,
    ) -> Response<ResponseBody> {
        let first = match self.first(&mut events).await {
            Some(Ok(StreamEvent::Error(error))) => return fail(pending, &error),
            Some(Ok(first)) => first,
            None => {
                let empty = ProviderError::Stream {
                    provider: self.label.to_string(),
                    detail: "the response was empty".into(),
                };
                return self.failed(pending, None, empty);
            }
            Some(Err(error)) => return self.failed(pending, None, error),
        };
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        let source = Source::events(first, events, self.state.ping_interval);
        self.start(pending, StatusCode::OK, headers, source, true)
    }

    /// A converted stream folded into one message for a client that did not ask to stream.
    async fn fold(
        self,
        mut pending: PendingRecord,
        mut headers: HeaderMap,
        mut events: EventStream,
    ) -> Response<ResponseBody> {
        let mut fold = Fold::new();
        loop {
            match self.first(&mut events).await {
                Some(Ok(event)) => {
                    if let Err(error) = fold.push(event) {
                        return fail(pending, &error);
                    }
                }
                Some(Err(error)) => return self.failed(pending, None, error),
                None => break,
            }
        }
        let usage = fold.usage();
        let message = match fold.finish() {
            Ok(message) => message,
            Err(error) => return fail(pending, &error),
        };
        pending.record.attempts.push(self.attempt_ok);
        pending.record.timings.first_byte = Some(pending.received.elapsed());
        pending.record.status = 200;
        pending.finish(Outcome::Completed, Some(usage));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let mut response = Response::new(ResponseBody::full(message));
        *response.headers_mut() = headers;
        response
    }
}

/// Answers with the upstream's own error status and body where it gave one, else with an
/// error ccr describes.
fn upstream_failure(mut pending: PendingRecord, error: ProviderError) -> Response<ResponseBody> {
    match error {
        ProviderError::Status {
            status,
            headers,
            body,
            ..
        } => {
            pending.record.status = status.as_u16();
            pending.record.error =
                Some(String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned());
            pending.finish(Outcome::Failed, None);
            let mut response = Response::new(ResponseBody::full(body));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            response
        }
        ProviderError::Api { headers, error, .. } => {
            let mut response = fail(pending, &error);
            response.headers_mut().extend(headers);
            response
        }
        other => fail(pending, &other.to_api_error()),
    }
}

fn fail(mut pending: PendingRecord, error: &ApiError) -> Response<ResponseBody> {
    pending.record.status = error.status.as_u16();
    pending.record.error = Some(error.message.clone());
    pending.finish(Outcome::Failed, None);
    error_response(error)
}

pub(crate) fn error_response(error: &ApiError) -> Response<ResponseBody> {
    json(error.status, error.to_json())
}

fn json(status: StatusCode, body: Bytes) -> Response<ResponseBody> {
    let mut response = plain(status, ResponseBody::full(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn plain(status: StatusCode, body: ResponseBody) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}
