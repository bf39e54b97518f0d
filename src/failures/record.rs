//! One line of the failure log: everything a person needs to see what went wrong and
//! everything `ccr replay` needs to send the request again — never a credential.

use serde::{Deserialize, Serialize};

use crate::record::{Outcome, RequestRecord};

/// The schema of a failure record; a changed meaning bumps it. Version 2 added
/// `request_as`; a version 1 record always holds its body.
pub const RECORD_VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailureRecord {
    pub version: u32,
    /// This record's id (what `ccr replay --id` and `x-ccr-replay-of` name).
    pub id: String,
    /// When the request arrived, RFC 3339 in UTC.
    pub time: String,
    /// The `x-ccr-request-id` the client got.
    pub request_id: String,
    pub session: Option<String>,
    pub scenario: Option<String>,
    /// The model as the client asked for it.
    pub model: Option<String>,
    pub stream: bool,
    pub attempts: Vec<AttemptLine>,
    /// What the client got.
    pub client_got: ClientGot,
    /// Response bytes had reached the client before it failed.
    pub output_streamed: bool,
    /// The failure this request was itself a replay of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<String>,
    /// Set when an earlier record of the same day file holds the same body (a client
    /// retrying one request): that record's id, and `request` is `null`. A retry storm
    /// then writes its body once, not once a failure. Readers put the body back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_as: Option<String>,
    /// The client's request body, as JSON, as the client wrote it.
    pub request: Box<serde_json::value::RawValue>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AttemptLine {
    pub provider: String,
    pub target: String,
    pub model: String,
    pub status: Option<u16>,
    /// `null` for the attempt that answered.
    pub class: Option<String>,
    pub blame: Option<String>,
    pub message: Option<String>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClientGot {
    pub status: u16,
    /// The failure's class: `rate_limit`, `stream_cut`, `cancelled`…
    pub class: String,
    /// The error as told (a status's body message or the `error` event), credentials cut.
    pub error: Option<String>,
}

impl FailureRecord {
    /// The record for a finished request, if it is one the log keeps: the client did not
    /// get a complete answer from an upstream. What ccr refused itself (a wrong client key,
    /// malformed JSON, a body over the limit) has nothing to replay and is left to stats.
    ///
    /// The body is not copied into the record: the writer splices it into the line
    /// ([`FailureRecord::line_before_body`]).
    pub fn of(request: &RequestRecord, id: String) -> Option<(FailureRecord, bytes::Bytes)> {
        if !Self::keeps(request) {
            return None;
        }
        let body = request.body.clone()?;
        let failure = request.failure?;
        let text = |s: &Option<String>| s.as_deref().map(redact_key_shapes);
        let record = FailureRecord {
            version: RECORD_VERSION,
            id,
            time: humantime::format_rfc3339_millis(request.started_at).to_string(),
            request_id: request.id.clone(),
            session: request.session.clone(),
            scenario: request.scenario.map(str::to_string),
            model: request.model.clone(),
            stream: request.streaming,
            attempts: request
                .attempts
                .iter()
                .map(|a| AttemptLine {
                    provider: a.provider.clone(),
                    target: a.target.clone(),
                    model: a.model.clone(),
                    status: a.status,
                    class: a.failure.map(|f| f.class.as_str().to_string()),
                    blame: a.failure.map(|f| blame_name(f.blame).to_string()),
                    message: text(&a.message),
                    duration_ms: u64::try_from(a.duration.as_millis()).unwrap_or(u64::MAX),
                })
                .collect(),
            client_got: ClientGot {
                status: request.status,
                class: failure.class.as_str().to_string(),
                error: text(&request.error),
            },
            output_streamed: request.output_started,
            replay_of: request.replay_of.clone(),
            request_as: None,
            request: null_json(),
        };
        Some((record, body))
    }

    /// Whether the log keeps `request` (see [`FailureRecord::of`]); cheap, for the request
    /// path.
    pub fn keeps(request: &RequestRecord) -> bool {
        request.outcome != Outcome::Completed
            && !request.attempts.is_empty()
            && request.body.is_some()
            && request.failure.is_some()
    }

    /// The record's line up to where the client's body goes: then [`one_line`] of the
    /// body, then [`LINE_AFTER_BODY`]. The body is written as received (it was validated
    /// then): no second parse, no copy through a `Value`. The writer hands the three to one
    /// vectored `write`, so a large body goes from the request's buffer to the file without
    /// a copy in between.
    pub fn line_before_body(&self, out: &mut Vec<u8>) {
        // `request` is the last field and serializes as `null`: the body replaces it.
        serde_json::to_writer(&mut *out, self).expect("a failure record serializes");
        let null_end = out.len() - 1; // before the closing brace
        out.truncate(null_end - "null".len());
    }

    /// The record as one JSON line whose body is the one in record `earlier`.
    pub fn line_referring_to(&mut self, earlier: String, out: &mut Vec<u8>) {
        self.request_as = Some(earlier);
        serde_json::to_writer(&mut *out, self).expect("a failure record serializes");
        out.push(b'\n');
    }

    /// The UTC day (`YYYY-MM-DD`) the record belongs to, which names its file.
    pub fn day(&self) -> &str {
        self.time.get(..10).unwrap_or("unknown")
    }
}

/// What follows the body in a line.
pub const LINE_AFTER_BODY: &[u8] = b"}\n";

/// The body as it goes in a line: as received, unless it holds raw line breaks. Those can
/// only be whitespace between JSON tokens (strings escape them), and one record a line
/// needs none, so they become spaces in a copy.
pub fn one_line(body: &bytes::Bytes) -> bytes::Bytes {
    if memchr::memchr2(b'\n', b'\r', body).is_none() {
        return body.clone();
    }
    let spaced: Vec<u8> = body
        .iter()
        .map(|&byte| match byte {
            b'\n' | b'\r' => b' ',
            byte => byte,
        })
        .collect();
    spaced.into()
}

fn null_json() -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string("null".into()).expect("null is JSON")
}

fn blame_name(blame: crate::failure::Blame) -> &'static str {
    match blame {
        crate::failure::Blame::Client => "client",
        crate::failure::Blame::Upstream => "upstream",
        crate::failure::Blame::Ccr => "ccr",
    }
}

/// Replaces what looks like a credential in an upstream's words — `sk-…`, Kiro's `aoa…` /
/// `aor…` tokens, Google's `AIza…` keys, a `Bearer …` value — with `[redacted]`. ccr's own
/// keys are cut earlier by the transport; this catches ones it does not know (a client's).
pub fn redact_key_shapes(text: &str) -> String {
    if !may_hold_a_key(text) {
        return text.to_string();
    }
    redact_words(text)
}

const KEY_PREFIXES: [&str; 7] = ["sk-", "sk_", "aoa", "aor", "AIza", "ghp_", "xai-"];

/// Whether some word of `text` starts like a key or is `bearer`: the only words
/// [`redact_words`] changes. One pass over the bytes, so a failure storm's messages cost
/// no word splitting. Any non-ASCII byte counts as a possible word break (Unicode
/// whitespace splits words too), which can only send more texts the slow way.
fn may_hold_a_key(text: &str) -> bool {
    let bytes = text.as_bytes();
    let breaks = |b: u8| b.is_ascii_whitespace() || b == b'"' || b == b'\'' || !b.is_ascii();
    (0..bytes.len()).any(|i| {
        (i == 0 || breaks(bytes[i - 1])) && {
            let rest = &bytes[i..];
            KEY_PREFIXES.iter().any(|p| rest.starts_with(p.as_bytes()))
                || rest
                    .get(..6)
                    .is_some_and(|w| w.eq_ignore_ascii_case(b"bearer"))
        }
    })
}

fn redact_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut after_bearer = false;
    for word in text.split_inclusive(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
        let core = word.trim_end_matches(|c: char| c.is_whitespace() || c == '"' || c == '\'');
        let tail = &word[core.len()..];
        let token = core.trim_end_matches(['.', ',', ';', ')']);
        let punct = &core[token.len()..];
        if (after_bearer && token.len() >= 8) || looks_like_a_key(token) {
            out.push_str("[redacted]");
            out.push_str(punct);
        } else {
            out.push_str(core);
        }
        out.push_str(tail);
        after_bearer = token.eq_ignore_ascii_case("bearer");
    }
    out
}

fn looks_like_a_key(token: &str) -> bool {
    let body_chars = |rest: &str, min: usize| {
        rest.len() >= min
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    KEY_PREFIXES.iter().any(|prefix| {
        token
            .strip_prefix(prefix)
            .is_some_and(|rest| body_chars(rest, 16))
    })
}

#[cfg(test)]
mod tests {
    use super::{redact_key_shapes, redact_words};
    use proptest::prelude::*;

    proptest! {
        /// The fast path never skips a text the word scan would change.
        #[test]
        fn the_quick_check_agrees_with_the_word_scan(
            text in r#"([ \t\n"'.,;()\u{a0}\u{2003}é]|sk-|sk_|aoa|aor|AIza|ghp_|xai-|[Bb]earer|BEARER|[a-zA-Z0-9_-]{1,20}){0,12}"#
        ) {
            prop_assert_eq!(redact_key_shapes(&text), redact_words(&text));
        }
    }

    #[test]
    fn a_key_after_unicode_whitespace_is_cut() {
        let text = "key\u{a0}sk-proj-abcdefghijklmnop1234 and\u{2003}Bearer abcdefghij12";
        assert_eq!(
            redact_key_shapes(text),
            "key\u{a0}[redacted] and\u{2003}Bearer [redacted]"
        );
    }

    #[test]
    fn key_shaped_words_are_cut_and_prose_is_not() {
        assert_eq!(
            redact_key_shapes(
                "Incorrect API key provided: sk-proj-abcdefghijklmnop1234. See docs."
            ),
            "Incorrect API key provided: [redacted]. See docs."
        );
        assert_eq!(
            redact_key_shapes(r#"{"token":"aoaAAAABBBBCCCCDDDDEEEE"} Bearer abcdefghij12"#),
            r#"{"token":"[redacted]"} Bearer [redacted]"#
        );
        assert_eq!(
            redact_key_shapes("prompt is too long: 210000 tokens > 200000 maximum"),
            "prompt is too long: 210000 tokens > 200000 maximum"
        );
        assert_eq!(
            redact_key_shapes("skip-the-line ask sky"),
            "skip-the-line ask sky"
        );
    }
}

#[cfg(test)]
mod line_tests {
    use super::*;

    #[test]
    fn a_pretty_printed_body_becomes_one_line_that_parses_back() {
        let record: FailureRecord = serde_json::from_value(serde_json::json!({
            "version": 1, "id": "f1", "time": "2026-12-02T18:00:00.000Z", "request_id": "req_1",
            "session": null, "scenario": "default", "model": "m", "stream": false,
            "attempts": [], "client_got": {"status": 500, "class": "upstream_5xx", "error": null},
            "output_streamed": false, "request": null
        }))
        .unwrap();
        let body = bytes::Bytes::from_static(
            b"{\n  \"model\": \"m\",\r\n  \"messages\": [{\"content\": \"a\\nb\"}]\n}",
        );
        let mut line = Vec::new();
        record.line_before_body(&mut line);
        line.extend_from_slice(&one_line(&body));
        line.extend_from_slice(LINE_AFTER_BODY);
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        let back: FailureRecord = serde_json::from_slice(&line).unwrap();
        let request: serde_json::Value = serde_json::from_str(back.request.get()).unwrap();
        assert_eq!(request["messages"][0]["content"], "a\nb");
    }
}
