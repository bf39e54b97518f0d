//! The one place a failure becomes a response, in the Anthropic error form (or the
//! upstream's own, passed through), and the small builders every response uses.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, StatusCode};

use super::body::{PendingRecord, ResponseBody};
use crate::anthropic::ApiError;
use crate::failure::Failure;
use crate::providers::{Answer, ProviderError};
use crate::record::Outcome;

/// ccr's own time in microseconds up to sending the response headers.
pub(crate) const OVERHEAD_HEADER: &str = "x-ccr-overhead-us";

pub(crate) fn set_overhead(headers: &mut HeaderMap, overhead: std::time::Duration) {
    headers.insert(
        OVERHEAD_HEADER,
        HeaderValue::from(overhead.as_micros().min(u128::from(u64::MAX)) as u64),
    );
}

/// Answers with the upstream's own error status and body where it gave one, else with an
/// error ccr describes.
pub(super) fn upstream_failure(
    mut pending: PendingRecord,
    error: ProviderError,
) -> Response<ResponseBody> {
    let failure = error.failure;
    match error.answer {
        Answer::Upstream {
            status,
            headers,
            body,
        } => {
            pending.record.status = status.as_u16();
            pending.record.failure = Some(failure);
            pending.record.error =
                Some(String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned());
            pending.finish(Outcome::Failed, None);
            let mut response = Response::new(ResponseBody::full(body));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            response
        }
        Answer::Api { headers, error } => {
            let mut response = fail(pending, &error, failure);
            response.headers_mut().extend(headers);
            response
        }
    }
}

pub(super) fn fail(
    mut pending: PendingRecord,
    error: &ApiError,
    failure: Failure,
) -> Response<ResponseBody> {
    pending.record.status = error.status.as_u16();
    pending.record.failure = Some(failure);
    pending.record.error = Some(error.message.clone());
    pending.finish(Outcome::Failed, None);
    error_response(error)
}

pub(crate) fn error_response(error: &ApiError) -> Response<ResponseBody> {
    json(error.status, error.to_json())
}

pub(super) fn json(status: StatusCode, body: Bytes) -> Response<ResponseBody> {
    let mut response = plain(status, ResponseBody::full(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(super) fn plain(status: StatusCode, body: ResponseBody) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}
