//! The typed failure: what went wrong (class), who caused it (blame) and whether another try
//! can succeed (retry), decided once where the error is made — by a provider or by the
//! server. Routing (failover, blacklist), the request record and stats read these fields;
//! nothing downstream maps status codes to classes again.

use std::time::Duration;

use http::StatusCode;
use serde::Serialize;

/// What went wrong, as records, stats and metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    RateLimit,
    Auth,
    Upstream5xx,
    Timeout,
    Network,
    /// The request itself is wrong (a 400, malformed JSON, too large, a wrong client key).
    ClientError,
    /// The input does not fit this model's context window; a bigger model may take it.
    ContextTooLong,
    /// ccr cannot express the request for this provider (a content kind it does not take).
    Conversion,
    /// The upstream broke off a response that had started.
    StreamCut,
    /// The upstream's answer broke its own protocol (events out of order, invalid tool JSON).
    BadResponse,
    /// The client left, or shutdown ended the response.
    Cancelled,
}

impl Class {
    pub const ALL: [Class; 11] = [
        Class::RateLimit,
        Class::Auth,
        Class::Upstream5xx,
        Class::Timeout,
        Class::Network,
        Class::ClientError,
        Class::ContextTooLong,
        Class::Conversion,
        Class::StreamCut,
        Class::BadResponse,
        Class::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::RateLimit => "rate_limit",
            Class::Auth => "auth",
            Class::Upstream5xx => "upstream_5xx",
            Class::Timeout => "timeout",
            Class::Network => "network",
            Class::ClientError => "client_error",
            Class::ContextTooLong => "context_too_long",
            Class::Conversion => "conversion",
            Class::StreamCut => "stream_cut",
            Class::BadResponse => "bad_response",
            Class::Cancelled => "cancelled",
        }
    }

    /// Position in [`Class::ALL`], for counters kept in an array.
    pub fn index(self) -> usize {
        Class::ALL
            .iter()
            .position(|c| *c == self)
            .expect("every class is in ALL")
    }
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who caused the failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Blame {
    /// The client's request or credential: never retried, never blacklists a target.
    Client,
    /// The upstream target (or the network to it).
    Upstream,
    /// ccr itself (a conversion it cannot do, a shutdown).
    Ccr,
}

/// Whether, and where, another try may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Retry {
    /// Answer the client now.
    Never,
    /// Another target may succeed; this one would fail again (a refused key, a model
    /// whose context is too small, a request this provider cannot take).
    AnotherTarget,
    /// A passing trouble (overload, a 5xx, a timeout, a short `Retry-After`): another
    /// target first, else this one again after the backoff or the delay, whichever is
    /// longer.
    SameTargetAfter(Duration),
    /// What failed was fixed on this target (its token was just renewed): this target
    /// again, at once. Granted once per request, beyond `router.max_attempts`.
    SameTargetNow,
}

/// One failure, typed where it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub class: Class,
    pub blame: Blame,
    pub retry: Retry,
    /// How long the target is out when the maker knows better than the class's default
    /// (a `Retry-After`, a used-up quota); `Some(ZERO)` keeps it in. Routing only.
    #[serde(skip)]
    pub out_for: Option<Duration>,
}

impl Failure {
    /// A failure of the upstream target. A refused credential will be refused again; other
    /// troubles may pass, so the same target may be tried again after a backoff.
    pub fn upstream(class: Class) -> Failure {
        let retry = match class {
            Class::Auth | Class::BadResponse => Retry::AnotherTarget,
            _ => Retry::SameTargetAfter(Duration::ZERO),
        };
        Failure {
            class,
            blame: Blame::Upstream,
            retry,
            out_for: None,
        }
    }

    /// A failure of the client's own making: answered at once.
    pub fn client(class: Class) -> Failure {
        Failure {
            class,
            blame: Blame::Client,
            retry: Retry::Never,
            out_for: None,
        }
    }

    /// A failure of ccr's own making.
    pub fn ccr(class: Class, retry: Retry) -> Failure {
        Failure {
            class,
            blame: Blame::Ccr,
            retry,
            out_for: None,
        }
    }

    /// The input is too long for this target's model; the next target may take it, and
    /// this one stays healthy.
    pub fn context_too_long() -> Failure {
        Failure {
            class: Class::ContextTooLong,
            blame: Blame::Client,
            retry: Retry::AnotherTarget,
            out_for: Some(Duration::ZERO),
        }
    }

    /// ccr cannot convert the request for this provider; another provider may take it.
    pub fn conversion() -> Failure {
        Failure {
            out_for: Some(Duration::ZERO),
            ..Failure::ccr(Class::Conversion, Retry::AnotherTarget)
        }
    }

    /// A response that had started broke off: never retried (the client has bytes), but
    /// it counts against the target's health.
    pub fn after_start(class: Class) -> Failure {
        Failure {
            class,
            blame: Blame::Upstream,
            retry: Retry::Never,
            out_for: None,
        }
    }

    /// An upstream's error status, judged by the status, its `Retry-After` and its message.
    /// `client_credential` says the request carried the client's own key (pass-through
    /// without `server.api_key`), so an auth refusal is the client's.
    pub fn of_upstream_status(
        status: StatusCode,
        retry_after: Option<Duration>,
        message: &str,
        client_credential: bool,
    ) -> Failure {
        let code = status.as_u16();
        if matches!(code, 400 | 413 | 422) && mentions_context_limit(message) {
            return Failure::context_too_long();
        }
        let mut failure = match code {
            429 => Failure::upstream(Class::RateLimit),
            401 | 403 if client_credential => Failure::client(Class::Auth),
            401 | 403 => Failure::upstream(Class::Auth),
            408 => Failure::upstream(Class::Timeout),
            500..=599 => Failure::upstream(Class::Upstream5xx),
            _ => Failure::client(Class::ClientError),
        };
        if failure.blame == Blame::Upstream
            && let Some(after) = retry_after
        {
            failure.retry = Retry::SameTargetAfter(after);
            failure.out_for = Some(after);
        }
        failure
    }

    /// Whether a target that failed like this should sit out, and for how long, given the
    /// class's default durations.
    pub fn blacklist_for(&self, defaults: &BlacklistDefaults) -> Option<Duration> {
        if self.blame == Blame::Client {
            return None;
        }
        let default = match self.class {
            Class::RateLimit => defaults.rate_limited,
            Class::Auth => defaults.auth,
            Class::Network | Class::Timeout | Class::StreamCut => defaults.network,
            Class::Upstream5xx | Class::BadResponse => defaults.server_error,
            Class::ClientError | Class::ContextTooLong | Class::Conversion | Class::Cancelled => {
                return None;
            }
        };
        match self.out_for.unwrap_or(default) {
            Duration::ZERO => None,
            duration => Some(duration),
        }
    }
}

/// How long each class of failure sends a target out when the failure does not say.
#[derive(Debug, Clone, Copy)]
pub struct BlacklistDefaults {
    pub rate_limited: Duration,
    pub auth: Duration,
    pub network: Duration,
    pub server_error: Duration,
}

/// Whether an upstream's error message says the input exceeds the model's context window,
/// in any provider's words: OpenAI's `context_length_exceeded` / "maximum context length",
/// Anthropic's "prompt is too long", CodeWhisperer's "Input is too long", Gemini's "input
/// token count … exceeds the maximum".
pub fn mentions_context_limit(message: &str) -> bool {
    const PHRASES: [&str; 7] = [
        "context_length_exceeded",
        "maximum context length",
        "prompt is too long",
        "input is too long",
        "context window",
        "contentlengthexceeded",
        "exceeds the maximum number of tokens",
    ];
    let lower = message.to_ascii_lowercase();
    PHRASES.iter().any(|phrase| lower.contains(phrase))
}

/// A `Retry-After` header value in seconds, saturating: huge, negative, fractional, NaN and
/// HTTP-date forms never panic. An HTTP date counts as absent.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    // A day is longer than any blacklist worth keeping; beyond it, cap.
    Some(Duration::from_secs_f64(seconds.min(86_400.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: BlacklistDefaults = BlacklistDefaults {
        rate_limited: Duration::from_secs(60),
        auth: Duration::from_secs(300),
        network: Duration::from_secs(120),
        server_error: Duration::from_secs(60),
    };

    #[test]
    fn the_client_own_key_refused_is_the_clients_fault() {
        let f = Failure::of_upstream_status(StatusCode::UNAUTHORIZED, None, "bad key", true);
        assert_eq!(
            (f.class, f.blame, f.retry),
            (Class::Auth, Blame::Client, Retry::Never)
        );
        assert_eq!(f.blacklist_for(&DEFAULTS), None);
        let f = Failure::of_upstream_status(StatusCode::UNAUTHORIZED, None, "bad key", false);
        assert_eq!((f.blame, f.retry), (Blame::Upstream, Retry::AnotherTarget));
        assert_eq!(f.blacklist_for(&DEFAULTS), Some(Duration::from_secs(300)));
    }

    #[test]
    fn context_length_moves_on_without_blacklisting() {
        for message in [
            r#"{"error":{"code":"context_length_exceeded"}}"#,
            "prompt is too long: 210000 tokens > 200000 maximum",
            "Input is too long for requested model.",
            "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
        ] {
            let f = Failure::of_upstream_status(StatusCode::BAD_REQUEST, None, message, false);
            assert_eq!(f.class, Class::ContextTooLong, "{message}");
            assert_eq!(f.retry, Retry::AnotherTarget);
            assert_eq!(f.blacklist_for(&DEFAULTS), None);
        }
        let f = Failure::of_upstream_status(StatusCode::BAD_REQUEST, None, "bad field", false);
        assert_eq!((f.class, f.retry), (Class::ClientError, Retry::Never));
    }

    #[test]
    fn retry_after_says_the_same_target_may_succeed() {
        let after = Some(Duration::from_secs(2));
        let f = Failure::of_upstream_status(StatusCode::TOO_MANY_REQUESTS, after, "", false);
        assert_eq!(f.retry, Retry::SameTargetAfter(Duration::from_secs(2)));
        assert_eq!(f.blacklist_for(&DEFAULTS), Some(Duration::from_secs(2)));
        let f = Failure::of_upstream_status(StatusCode::BAD_GATEWAY, None, "", false);
        assert_eq!(
            (f.class, f.retry),
            (Class::Upstream5xx, Retry::SameTargetAfter(Duration::ZERO))
        );
    }

    #[test]
    fn retry_after_never_panics() {
        assert_eq!(parse_retry_after("1e20"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("NaN"), None);
        assert_eq!(parse_retry_after("inf"), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(
            parse_retry_after(" 1.5 "),
            Some(Duration::from_millis(1500))
        );
    }
}
