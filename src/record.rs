//! The per-request record: what happened to one request, handed to every sink (the access
//! log and stats) once the response has ended.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::anthropic::Usage;
use crate::failure::Failure;

/// How the response ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The whole response reached the client.
    Completed,
    /// The client was answered with an error status (ccr's own or the upstream's).
    Failed,
    /// The upstream failed after the response had started; the stream ended with an error.
    UpstreamFailed,
    /// The client went away before the response ended.
    ClientGone,
    /// Shutdown's grace period ran out while the response was still streaming.
    ShutDown,
}

/// One try of one upstream target.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// The provider's name in the config.
    pub provider: String,
    /// The target's label, e.g. `anthropic` or `deepseek#2`.
    pub target: String,
    pub model: String,
    /// The upstream's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why the attempt failed; `None` when it succeeded.
    pub failure: Option<Failure>,
    pub message: Option<String>,
    pub duration: Duration,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// From the request's arrival to the end of the response.
    pub total: Duration,
    /// From the request's arrival to the first upstream body bytes.
    pub first_byte: Option<Duration>,
    /// ccr's own share: parsing, routing and conversion before the upstream call, and the
    /// time from the first upstream bytes to the response headers.
    pub overhead: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    pub id: String,
    pub started_at: SystemTime,
    pub method: String,
    pub path: String,
    /// The model the client asked for.
    pub model: Option<String>,
    pub streaming: bool,
    /// The status sent to the client.
    pub status: u16,
    pub outcome: Outcome,
    /// Why the client did not get a complete answer; `None` when it did.
    pub failure: Option<Failure>,
    pub error: Option<String>,
    /// The routing scenario (`default`, `background`, `thinking`…).
    pub scenario: Option<&'static str>,
    pub attempts: Vec<Attempt>,
    pub usage: Option<Usage>,
    /// Credits the upstream charged (CodeWhisperer's metering), when it says.
    pub credits: Option<f64>,
    pub timings: Timings,
    /// The client's request body as it arrived (shared, not copied): what a replay resends.
    #[serde(skip)]
    pub body: Option<bytes::Bytes>,
    /// The conversation's session id, when the request names one.
    pub session: Option<String>,
    /// Response bytes had reached the client before it ended.
    pub output_started: bool,
    /// `x-ccr-replay-of`: the failure this request replays.
    pub replay_of: Option<String>,
}

impl RequestRecord {
    /// Makes the body a copy of its own unless it already is. The client's bytes are a
    /// slice of the connection's read buffer, which hyper reuses for that connection's next
    /// request only once nothing else holds them: a record held past the request would make
    /// it allocate a new buffer for each request. Copying is what the failure log's queue
    /// costs a failing request, cheaper than that allocation.
    pub fn own_body(&mut self) {
        if let Some(body) = &mut self.body
            && !body.is_unique()
        {
            *body = bytes::Bytes::copy_from_slice(body);
        }
    }
}

/// Whoever wants to know about finished requests. Called on the task that finished the
/// response, so an implementation must not block: hand heavy work to a background task
/// (the record is shared, so handing it over is a reference count, not a copy).
pub trait RecordSink: Send + Sync {
    fn record(&self, record: &Arc<RequestRecord>);

    /// Whether this sink holds on to `record` after the request has ended (a queue). Such a
    /// record gets a body of its own first ([`RequestRecord::own_body`]).
    fn holds(&self, _record: &RequestRecord) -> bool {
        false
    }
}

/// Sinks are shared by every request.
pub type Sinks = Arc<[Arc<dyn RecordSink>]>;

/// The access log: one line per request at `info`, through `tracing`.
pub struct AccessLog;

impl RecordSink for AccessLog {
    fn record(&self, r: &Arc<RequestRecord>) {
        let target = r.attempts.last().map(|a| a.target.as_str()).unwrap_or("-");
        let usage = r.usage.unwrap_or_default();
        tracing::info!(
            request_id = %r.id,
            method = %r.method,
            path = %r.path,
            status = r.status,
            outcome = ?r.outcome,
            model = r.model.as_deref().unwrap_or("-"),
            target,
            scenario = r.scenario.unwrap_or("-"),
            attempts = r.attempts.len(),
            stream = r.streaming,
            total_ms = r.timings.total.as_millis() as u64,
            first_byte_ms = r.timings.first_byte.map(|d| d.as_millis() as u64),
            overhead_us = r.timings.overhead.as_micros() as u64,
            input_tokens = usage.input_tokens,
            output_tokens = usage.output_tokens,
            class = r.failure.map(|f| f.class.as_str()),
            error = r.error.as_deref(),
            "request finished"
        );
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn failure(status: u16) -> Option<Failure> {
        (status != 200).then(|| Failure::upstream(crate::failure::Class::RateLimit))
    }

    #[test]
    fn a_held_record_owns_its_body_and_an_owned_body_is_not_copied() {
        // A frame hyper handed over: a slice of the connection's read buffer.
        let mut read_buffer = bytes::BytesMut::from(&b"{\"model\":\"m\"}next request"[..]);
        let frame = read_buffer.split_to(13).freeze();
        let mut held = record(500);
        held.body = Some(frame.clone());
        held.own_body();
        let body = held.body.as_ref().unwrap();
        assert_eq!(body, &frame);
        assert_ne!(
            body.as_ptr(),
            frame.as_ptr(),
            "copied out of the read buffer"
        );
        // Joined from pieces into a buffer nothing else holds: kept as it is.
        let joined = bytes::Bytes::from(b"{\"model\":\"m\"}".to_vec());
        let at = joined.as_ptr();
        held.body = Some(joined);
        held.own_body();
        assert_eq!(held.body.as_ref().unwrap().as_ptr(), at);
    }

    /// A finished request to provider `p`, target `t`, answered with `status`.
    pub(crate) fn record(status: u16) -> RequestRecord {
        RequestRecord {
            id: "req_test".into(),
            started_at: SystemTime::now(),
            method: "POST".into(),
            path: "/v1/messages".into(),
            model: Some("m".into()),
            streaming: true,
            status,
            outcome: if status == 200 {
                Outcome::Completed
            } else {
                Outcome::Failed
            },
            failure: failure(status),
            error: None,
            scenario: Some("default"),
            attempts: vec![Attempt {
                provider: "p".into(),
                target: "t".into(),
                model: "m".into(),
                status: Some(status),
                failure: failure(status),
                message: None,
                duration: Duration::from_millis(5),
            }],
            usage: None,
            credits: None,
            timings: Timings {
                total: Duration::from_millis(20),
                first_byte: Some(Duration::from_millis(10)),
                overhead: Duration::from_micros(300),
            },
            body: None,
            session: None,
            output_started: status == 200,
            replay_of: None,
        }
    }
}
