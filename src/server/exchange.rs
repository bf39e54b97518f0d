//! One request's trip upstream: walk the routing plan, try each candidate until one starts
//! answering, and turn the first upstream bytes or event into the client's response. Retry
//! and failover happen only here, before anything has gone to the client.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};

use super::answer::{set_overhead, upstream_failure};
use super::body::{PendingRecord, ProxyBody, ResponseBody, Source};
use super::state::State;
use crate::anthropic::events::{Fold, StreamEvent};
use crate::anthropic::{MessagesRequest, Usage, UsageScanner};
use crate::failure::{Class, Failure};
use crate::providers::{BodyStream, Call, ProviderError, ReplyBody};
use crate::record::{Attempt, Outcome};
use crate::routing::{Candidate, Health, NextStep};

/// An upstream that has started answering.
enum Started {
    /// Streamed to the client as it arrives.
    Stream {
        status: StatusCode,
        headers: HeaderMap,
        source: Source,
        sse: bool,
    },
    /// A converted stream folded into one message for a non-streaming client.
    Whole {
        headers: HeaderMap,
        message: Bytes,
        usage: Usage,
        credits: Option<f64>,
    },
}

/// Headers naming how the request was routed.
struct Routed {
    scenario: &'static str,
    provider: String,
    model: String,
    attempts: usize,
}

impl Routed {
    fn apply(&self, headers: &mut HeaderMap) {
        let mut set = |name: &'static str, value: &str| {
            if let Ok(value) = HeaderValue::try_from(value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        set("x-ccr-scenario", self.scenario);
        set("x-ccr-provider", &self.provider);
        set("x-ccr-model", &self.model);
        set("x-ccr-attempts", &self.attempts.to_string());
    }
}

pub(super) async fn run(
    state: &State,
    mut pending: PendingRecord,
    request: MessagesRequest,
    client_headers: HeaderMap,
) -> Response<ResponseBody> {
    let router = state.router.current();
    let mut plan = router.plan(&request);
    pending.record.scenario = Some(plan.scenario.as_str());
    let session = session_key(&request, &client_headers);
    pending.record.session.clone_from(&session);
    if let Some(label) = session
        .as_deref()
        .and_then(|key| state.sessions.preferred(key, plan.scenario))
    {
        plan.prefer(&label, router.now_ms());
    }
    let scenario = plan.scenario;
    // The session's counters come from the finished record (`Sessions` is a sink); only
    // who answered is told here, at the first byte, so the next turn can prefer it.
    let remember = |label: &str| {
        if let Some(key) = &session {
            state.sessions.answered(key, scenario, label);
        }
    };
    let overhead_before = pending.received.elapsed();
    let mut attempt = 0;
    let mut current = 0;
    loop {
        let candidate = &plan.candidates[current];
        attempt += 1;
        let routed = Routed {
            scenario: plan.scenario.as_str(),
            provider: candidate.upstream.provider.name().to_string(),
            model: candidate.model.clone(),
            attempts: attempt,
        };
        let started_at = Instant::now();
        let flight = candidate.upstream.begin();
        let error = match try_candidate(state, candidate, &request, &client_headers).await {
            Ok(started) => {
                router.succeeded(candidate.upstream);
                remember(&candidate.upstream.label);
                pending.record.attempts.push(attempt_record(
                    candidate,
                    Some(started.status()),
                    None,
                    started_at,
                ));
                let health = Health {
                    router: router.clone(),
                    upstream: candidate.upstream.clone(),
                    flight,
                };
                return respond(state, pending, started, &routed, overhead_before, health);
            }
            Err(error) => error,
        };
        // The attempt is over; a wait before the next one is not in flight anywhere.
        drop(flight);
        pending.record.attempts.push(attempt_record(
            candidate,
            error.status(),
            Some(&error),
            started_at,
        ));
        let failed_upstream = candidate.upstream;
        let give_up = |mut pending: PendingRecord, error: ProviderError, request| {
            // The parsed request shares the client's body: let it go first, so the record
            // is that body's only holder and a failure log queueing it need not copy it.
            drop::<MessagesRequest>(request);
            // ccr's own time only: waiting on upstreams and between retries is not ours.
            pending.record.timings.overhead = overhead_before;
            let mut response = upstream_failure(pending, error);
            routed.apply(response.headers_mut());
            set_overhead(response.headers_mut(), overhead_before);
            response
        };
        let (next, wait) = match router.failed(&mut plan, current, &error.failure, attempt) {
            NextStep::GiveUp => return give_up(pending, error, request),
            NextStep::Retry { candidate, wait } => (candidate, wait),
        };
        tracing::info!(
            target = %failed_upstream.label,
            class = %error.failure.class,
            next = %plan.candidates[next].upstream.label,
            ?wait,
            "attempt failed, trying again"
        );
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = state.force_end.cancelled() => return give_up(pending, error, request),
        }
        current = next;
    }
}

/// The session a request belongs to: `metadata.user_id`'s session id, else Claude Code's
/// `X-Claude-Code-Session-Id` header.
fn session_key(request: &MessagesRequest, headers: &HeaderMap) -> Option<String> {
    let from_header = || {
        headers
            .get("x-claude-code-session-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    // Claude Code's session ids are UUIDs; anything much longer is not kept.
    request
        .facts()
        .session
        .clone()
        .or_else(from_header)
        .filter(|id| id.len() <= MAX_SESSION_ID)
}

/// The longest session id remembered.
pub(super) const MAX_SESSION_ID: usize = 128;

impl Started {
    fn status(&self) -> StatusCode {
        match self {
            Started::Stream { status, .. } => *status,
            Started::Whole { .. } => StatusCode::OK,
        }
    }
}

fn attempt_record(
    candidate: &Candidate<'_>,
    status: Option<StatusCode>,
    error: Option<&ProviderError>,
    started: Instant,
) -> Attempt {
    Attempt {
        provider: candidate.upstream.provider.name().to_string(),
        target: candidate.upstream.label.clone(),
        model: candidate.model.clone(),
        status: status.map(|s| s.as_u16()),
        failure: error.map(|e| e.failure),
        message: error.map(ToString::to_string),
        duration: started.elapsed(),
    }
}

/// Sends to one candidate and waits for its first bytes (or, for a non-streaming client of a
/// converting provider, its whole answer). Any failure up to then can still be retried.
async fn try_candidate(
    state: &State,
    candidate: &Candidate<'_>,
    request: &MessagesRequest,
    client_headers: &HeaderMap,
) -> Result<Started, ProviderError> {
    let provider = &candidate.upstream.provider;
    let call = Call {
        request,
        client_headers,
        model: &candidate.model,
        forward_client_auth: state.client_key.is_none(),
    };
    let reply = until_shutdown(state, provider.name(), provider.send(call)).await?;
    let label = candidate.upstream.label.as_str();
    match reply.body {
        ReplyBody::Bytes { mut stream, usage } => {
            let first = first_item(state, label, &mut stream)
                .await
                .transpose()?
                .unwrap_or_default();
            let sse = reply
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.starts_with("text/event-stream"));
            Ok(Started::Stream {
                status: reply.status,
                headers: reply.headers,
                source: bytes_source(first, stream, usage, sse),
                sse,
            })
        }
        ReplyBody::Events(mut events) if request.stream() => {
            let first = match first_item(state, label, &mut events).await {
                Some(Ok(StreamEvent::Error(told))) => {
                    return Err(ProviderError::told(label, reply.headers, told));
                }
                Some(Ok(first)) => first,
                Some(Err(error)) => return Err(error),
                None => {
                    return Err(ProviderError::broken(
                        label,
                        "the response was empty",
                        Failure::upstream(Class::StreamCut),
                    ));
                }
            };
            let mut headers = reply.headers;
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream; charset=utf-8"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            let source = Source::events(first, events, state.ping_interval);
            Ok(Started::Stream {
                status: StatusCode::OK,
                headers,
                source,
                sse: true,
            })
        }
        ReplyBody::Events(mut events) => {
            let mut fold = Fold::new();
            while let Some(event) = first_item(state, label, &mut events).await {
                if let Err(told) = fold.push(event?) {
                    return Err(ProviderError::told(label, reply.headers, told));
                }
            }
            let (usage, credits) = (fold.usage(), fold.credits());
            let message = fold
                .finish()
                .map_err(|told| ProviderError::told(label, reply.headers.clone(), told))?;
            let mut headers = reply.headers;
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(Started::Whole {
                headers,
                message,
                usage,
                credits,
            })
        }
    }
}

fn bytes_source(first: Bytes, stream: BodyStream, usage: UsageScanner, sse: bool) -> Source {
    Source::bytes(first, stream, usage, sse)
}

async fn until_shutdown<T>(
    state: &State,
    provider: &str,
    work: impl Future<Output = Result<T, ProviderError>>,
) -> Result<T, ProviderError> {
    tokio::select! {
        result = work => result,
        _ = state.force_end.cancelled() => Err(ProviderError::shutting_down(provider)),
    }
}

/// The next item of an upstream stream, unless shutdown's grace runs out first.
async fn first_item<T>(
    state: &State,
    provider: &str,
    stream: &mut (impl Stream<Item = Result<T, ProviderError>> + Unpin),
) -> Option<Result<T, ProviderError>> {
    tokio::select! {
        item = stream.next() => item,
        _ = state.force_end.cancelled() => Some(Err(ProviderError::shutting_down(provider))),
    }
}

fn respond(
    state: &State,
    mut pending: PendingRecord,
    started: Started,
    routed: &Routed,
    overhead_before: Duration,
    health: Health,
) -> Response<ResponseBody> {
    pending.record.timings.first_byte = Some(pending.received.elapsed());
    pending.record.status = started.status().as_u16();
    // ccr's share: reading, parsing and routing before the upstream call. Building the
    // response from the first upstream bytes is a few header copies and is not timed.
    let overhead = overhead_before;
    let mut response = match started {
        Started::Stream {
            status,
            headers,
            source,
            sse,
        } => {
            pending.record.timings.overhead = overhead;
            pending.record.output_started = true;
            let body = ProxyBody::new(
                source,
                state.force_end.clone().cancelled_owned(),
                sse,
                pending,
                health,
            );
            let mut response = Response::new(ResponseBody::proxy(body));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            response
        }
        Started::Whole {
            headers,
            message,
            usage,
            credits,
        } => {
            pending.record.timings.overhead = overhead;
            pending.record.credits = credits;
            pending.finish(Outcome::Completed, Some(usage));
            let mut response = Response::new(ResponseBody::full(message));
            *response.headers_mut() = headers;
            response
        }
    };
    routed.apply(response.headers_mut());
    set_overhead(response.headers_mut(), overhead);
    response
}
