//! Errors in the Anthropic wire form, `{"type":"error","error":{"type":T,"message":M}}`, as a
//! JSON response body or as an SSE `error` event.

use bytes::Bytes;
use http::StatusCode;

/// The Anthropic error types, each with the status the API answers it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    InvalidRequest,
    Authentication,
    Permission,
    NotFound,
    RequestTooLarge,
    RateLimit,
    Api,
    Overloaded,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::InvalidRequest => "invalid_request_error",
            ErrorType::Authentication => "authentication_error",
            ErrorType::Permission => "permission_error",
            ErrorType::NotFound => "not_found_error",
            ErrorType::RequestTooLarge => "request_too_large",
            ErrorType::RateLimit => "rate_limit_error",
            ErrorType::Api => "api_error",
            ErrorType::Overloaded => "overloaded_error",
        }
    }

    pub fn default_status(self) -> StatusCode {
        match self {
            ErrorType::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorType::Authentication => StatusCode::UNAUTHORIZED,
            ErrorType::Permission => StatusCode::FORBIDDEN,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
            ErrorType::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorType::RateLimit => StatusCode::TOO_MANY_REQUESTS,
            ErrorType::Api => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::Overloaded => StatusCode::from_u16(529).expect("529 is a valid status"),
        }
    }
}

/// One error as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: ErrorType,
    pub message: String,
}

/// An error as told to the client, with the typed failure behind it: what an upstream's
/// `error` event or a broken stream becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Failed {
    pub error: ApiError,
    pub failure: crate::failure::Failure,
}

impl ApiError {
    pub fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        ApiError {
            status: kind.default_status(),
            kind,
            message: message.into(),
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The JSON body of a non-streaming error response.
    pub fn to_json(&self) -> Bytes {
        // Fields in the API's own order: `type` first.
        #[derive(serde::Serialize)]
        struct Body<'a> {
            r#type: &'static str,
            error: Inner<'a>,
        }
        #[derive(serde::Serialize)]
        struct Inner<'a> {
            r#type: &'static str,
            message: &'a str,
        }
        let body = Body {
            r#type: "error",
            error: Inner {
                r#type: self.kind.as_str(),
                message: &self.message,
            },
        };
        Bytes::from(serde_json::to_vec(&body).expect("an error body serializes"))
    }

    /// The same error as an SSE `error` event, for a stream that has already started.
    pub fn to_sse_event(&self) -> Bytes {
        let mut out = b"event: error\ndata: ".to_vec();
        out.extend_from_slice(&self.to_json());
        out.extend_from_slice(b"\n\n");
        Bytes::from(out)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.kind.as_str(),
            self.status.as_u16(),
            self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_sse_forms() {
        let e = ApiError::new(ErrorType::Overloaded, "busy \"now\"");
        assert_eq!(e.status.as_u16(), 529);
        let json: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(json["error"]["type"], "overloaded_error");
        assert_eq!(json["error"]["message"], "busy \"now\"");
        assert_eq!(
            e.to_json(),
            r#"{"type":"error","error":{"type":"overloaded_error","message":"busy \"now\""}}"#
        );
        let sse = e.to_sse_event();
        assert!(sse.starts_with(b"event: error\ndata: {"));
        assert!(sse.ends_with(b"}\n\n"));
    }
}
