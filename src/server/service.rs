//! The request handler: endpoints, client auth, body limit, parsing, and the one place that
//! turns a failure into an Anthropic-shaped response.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tracing::Instrument;

use super::activity::ConnGuard;
use super::answer::{OVERHEAD_HEADER, error_response, fail, json, plain, set_overhead};
use super::body::{PendingRecord, ResponseBody};
use super::state::State;
use crate::anthropic::{ApiError, ErrorType, MessagesRequest, estimate};
use crate::failure::{Class, Failure};

use crate::record::{Outcome, RequestRecord, Timings};
use crate::stats::GroupBy;

/// The longest model name accepted: real ones are under 100 bytes, and the name is echoed
/// in headers, logs and stats labels.
const MAX_MODEL_NAME: usize = 256;

/// `x-ccr-replay-of`, when it names a failure record's id.
fn replay_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-ccr-replay-of")
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
        .map(str::to_string)
}

/// Headers a request may carry (Claude Code sends about 20).
pub(crate) const MAX_HEADERS: usize = 200;

/// The response header naming ccr's id for the request (also in its log lines).
pub const REQUEST_ID_HEADER: &str = "x-ccr-request-id";

pub(crate) async fn handle(
    state: Arc<State>,
    conn: ConnGuard,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let received = Instant::now();
    let id = crate::anthropic::ids::request_id();
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = route(&state, &id, request).instrument(span).await;
    // Proxied responses carry ccr's own share already (without the upstream's wait); for
    // what ccr answered itself, it is all of the time so far.
    if !response.headers().contains_key(OVERHEAD_HEADER) {
        set_overhead(response.headers_mut(), received.elapsed());
    }
    response.body_mut().hold_connection(conn);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    Ok(response)
}

async fn route(state: &Arc<State>, id: &str, request: Request<Incoming>) -> Response<ResponseBody> {
    let path = request.uri().path();
    let method = request.method();
    if request.headers().len() > MAX_HEADERS {
        return error_response(
            &ApiError::new(
                ErrorType::InvalidRequest,
                format!(
                    "the request has {} headers; ccr reads at most {MAX_HEADERS}",
                    request.headers().len()
                ),
            )
            .with_status(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        );
    }
    if let Some(refusal) = state.browser.refusal(method, request.headers()) {
        return error_response(&refusal);
    }
    let guarded = path.starts_with("/v1/") || path.starts_with("/api/") || path == "/metrics";
    if guarded && !client_is_authorized(state, request.headers()) {
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
        (&Method::GET, "/api/stats") => stats_document(state, request.uri().query()),
        (&Method::GET, "/api/failures") => failure_counts(state, request.uri().query()).await,
        (&Method::GET, "/api/targets") => targets_document(state),
        (&Method::GET, _) if path.starts_with(SESSIONS_PREFIX) => {
            session_status(state, &path[SESSIONS_PREFIX.len()..])
        }
        (&Method::GET, "/metrics") => {
            let mut text = crate::stats::render::prometheus(&state.stats);
            let dropped = state.failure_log.as_ref().map_or(0, |log| log.dropped());
            text.push_str(&format!(
                "# HELP ccr_failures_dropped_total Failure records dropped because the log's writer could not keep up.\n# TYPE ccr_failures_dropped_total counter\nccr_failures_dropped_total {dropped}\n"
            ));
            let mut response = plain(StatusCode::OK, ResponseBody::full(text));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        (&Method::POST, "/v1/messages/count_tokens") => count_tokens(state, request).await,
        (&Method::GET, _) if path == "/ui" || path.starts_with("/ui/") => {
            super::ui::serve(path).unwrap_or_else(|| not_found(method, path))
        }
        (_, "/" | "/health" | "/v1/messages" | "/v1/messages/count_tokens") => error_response(
            &ApiError::new(
                ErrorType::InvalidRequest,
                format!("{method} is not allowed on {path}"),
            )
            .with_status(StatusCode::METHOD_NOT_ALLOWED),
        ),
        _ => not_found(method, path),
    }
}

fn not_found(method: &Method, path: &str) -> Response<ResponseBody> {
    error_response(&ApiError::new(
        ErrorType::NotFound,
        format!(
            "no endpoint {method} {path}: ccr serves POST /v1/messages, POST /v1/messages/count_tokens, GET /health and its dashboard at GET /ui"
        ),
    ))
}

/// The value of `name` in a query string (`by=provider&…`), as written.
fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        pair.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
    })
}

/// `/api/failures?since=DURATION` (default 24 h): the failure log's counts by provider,
/// class and hour, read from the files off the async threads.
async fn failure_counts(state: &State, query: Option<&str>) -> Response<ResponseBody> {
    let since = query_param(query, "since").unwrap_or("24h");
    let Ok(back) = humantime::parse_duration(since) else {
        return error_response(&ApiError::new(
            ErrorType::InvalidRequest,
            format!(
                "`since={}` is not a duration such as 1h or 30m",
                since.chars().take(64).collect::<String>()
            ),
        ));
    };
    let from = std::time::SystemTime::now()
        .checked_sub(back)
        .unwrap_or(std::time::UNIX_EPOCH);
    let dir = state.failures_dir.clone();
    let read =
        tokio::task::spawn_blocking(move || crate::failures::reader::read(&dir, from, None)).await;
    match read {
        Ok(Ok(read)) => {
            let counts = crate::failures::reader::counts(&read);
            json(
                StatusCode::OK,
                Bytes::from(serde_json::to_vec(&counts).expect("counts serialize")),
            )
        }
        _ => error_response(&ApiError::new(
            ErrorType::Api,
            "cannot read the failure log",
        )),
    }
}

/// `/api/targets`: every target's live state (health, blacklist and why, in flight, last
/// success and failure).
fn targets_document(state: &State) -> Response<ResponseBody> {
    let document = serde_json::json!({ "targets": state.router.current().targets() });
    json(StatusCode::OK, Bytes::from(document.to_string()))
}

const SESSIONS_PREFIX: &str = "/api/sessions/";

/// `/api/sessions/{id}`: one conversation's scenario, last target, counts and tokens.
fn session_status(state: &State, id: &str) -> Response<ResponseBody> {
    let found = (id.len() <= super::exchange::MAX_SESSION_ID)
        .then(|| state.sessions.status(id))
        .flatten();
    match found {
        Some(status) => json(
            StatusCode::OK,
            Bytes::from(serde_json::to_vec(&status).expect("a session serializes")),
        ),
        None => error_response(&ApiError::new(
            ErrorType::NotFound,
            format!(
                "no session `{}`: it has sent no request yet, or it expired (`router.sessions.ttl`)",
                id.chars().take(64).collect::<String>()
            ),
        )),
    }
}

/// `/api/stats`, optionally `?by=provider|target|model|scenario`.
fn stats_document(state: &State, query: Option<&str>) -> Response<ResponseBody> {
    let by = query_param(query, "by");
    let by = match by.map(|b| (b, GroupBy::parse(b))) {
        None => None,
        Some((_, Some(by))) => Some(by),
        Some((bad, None)) => {
            return error_response(&ApiError::new(
                ErrorType::InvalidRequest,
                format!(
                    "`by={}` is not a grouping: use provider, target, model or scenario",
                    bad.chars().take(64).collect::<String>()
                ),
            ));
        }
    };
    let mut document = crate::stats::render::document(&state.stats, by);
    document.failures_dropped = state.failure_log.as_ref().map_or(0, |log| log.dropped());
    json(
        StatusCode::OK,
        Bytes::from(serde_json::to_vec(&document).expect("stats serialize")),
    )
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
    let read = tokio::time::timeout(state.body_read_timeout, Limited::new(body, limit).collect());
    let too_slow = || {
        ApiError::new(
            ErrorType::InvalidRequest,
            format!(
                "the request body did not arrive within {:?} (`server.body_read_timeout`)",
                state.body_read_timeout
            ),
        )
        .with_status(StatusCode::REQUEST_TIMEOUT)
    };
    let collected = read.await.map_err(|_| too_slow())?.map_err(|error| {
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
            failure: None,
            error: None,
            scenario: None,
            attempts: Vec::new(),
            usage: None,
            credits: None,
            timings: Timings::default(),
            body: None,
            session: None,
            output_started: false,
            replay_of: None,
        },
        received,
        sinks: state.sinks.clone(),
    };
    let (headers, body) = match admit(state, request).await {
        Ok(admitted) => admitted,
        Err(error) => return fail(pending, &error, Failure::client(Class::ClientError)),
    };
    let parsed = match MessagesRequest::parse(body) {
        Ok(parsed) => parsed,
        Err(error) => {
            return fail(
                pending,
                &ApiError::new(ErrorType::InvalidRequest, error.to_string()),
                Failure::client(Class::ClientError),
            );
        }
    };
    if parsed.model().len() > MAX_MODEL_NAME {
        return fail(
            pending,
            &ApiError::new(
                ErrorType::InvalidRequest,
                format!(
                    "`model` is {} bytes long; ccr accepts model names up to {MAX_MODEL_NAME} bytes",
                    parsed.model().len()
                ),
            ),
            Failure::client(Class::ClientError),
        );
    }
    pending.record.model = Some(parsed.model().to_string());
    pending.record.body = Some(parsed.body().clone());
    pending.record.replay_of = replay_of(&headers);
    pending.record.streaming = parsed.stream();

    super::exchange::run(state, pending, parsed, headers).await
}
