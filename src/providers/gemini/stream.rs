//! Gemini `GenerateContentResponse`s
//! (https://ai.google.dev/api/generate-content#v1beta.GenerateContentResponse) → Anthropic
//! stream events (https://docs.anthropic.com/en/api/messages-streaming), fed with raw bytes
//! as they arrive: a stream of SSE `data:` lines (`streamGenerateContent?alt=sse`), or one
//! response as the whole body (`generateContent`).

use std::time::Duration;

use http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::signature;
use crate::anthropic::builder::StreamBuilder;
use crate::anthropic::events::{MAX_FOLD, StopReason, StreamEvent};
use crate::anthropic::sse::SseReader;
use crate::anthropic::{ApiError, ErrorType, Usage};
use crate::failure::{Class, Failure};
use crate::providers::{DataLines, DataReading, WireConverter, error_type_for_status};

/// One response, a stream chunk or the whole answer; unknown fields are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    error: Option<GoogleError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<CandidateContent>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct CandidateContent {
    #[serde(default)]
    parts: Vec<ResponsePart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponsePart {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: bool,
    #[serde(default)]
    function_call: Option<FunctionCall>,
    #[serde(default)]
    thought_signature: Option<String>,
}

#[derive(Deserialize)]
struct FunctionCall {
    #[serde(default)]
    name: Option<String>,
    /// Kept as Gemini's JSON text: it becomes the tool input as is.
    #[serde(default)]
    args: Option<Box<RawValue>>,
    #[serde(default)]
    id: Option<String>,
}

/// Cumulative on every chunk: the last figures are the response's.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    cached_content_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

/// Google's error object (`google.rpc.Status` in JSON), in an error body or a stream.
#[derive(Deserialize, Default)]
pub(crate) struct GoogleError {
    #[serde(default)]
    code: Option<u16>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    details: Vec<Value>,
}

/// A `{"error": {...}}` body.
#[derive(Deserialize)]
struct ErrorBody {
    error: GoogleError,
}

impl GoogleError {
    /// The error of an error body: `{"error": …}`, or the one-element array some of
    /// Google's endpoints wrap it in.
    pub fn of_body(body: &[u8]) -> Option<GoogleError> {
        // The array first: serde would read an array as a struct's fields in order.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shapes {
            Many(Vec<ErrorBody>),
            One(ErrorBody),
        }
        match serde_json::from_slice::<Shapes>(body).ok()? {
            Shapes::One(body) => Some(body.error),
            Shapes::Many(bodies) => bodies.into_iter().next().map(|b| b.error),
        }
    }

    /// The HTTP status the error stands for. Gemini answers `400 INVALID_ARGUMENT` to a
    /// wrong key, which is an authentication failure, not the client's request.
    pub fn judged_status(&self, answered: Option<StatusCode>) -> StatusCode {
        if self.key_invalid() {
            return StatusCode::UNAUTHORIZED;
        }
        answered
            .or_else(|| self.status.as_deref().and_then(status_for_code_name))
            .or_else(|| self.code.and_then(|c| StatusCode::from_u16(c).ok()))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn key_invalid(&self) -> bool {
        self.details
            .iter()
            .any(|detail| detail.get("reason").and_then(Value::as_str) == Some("API_KEY_INVALID"))
    }

    /// How long Gemini asks to wait, from its `RetryInfo` detail (`"retryDelay": "12s"`):
    /// a 429 from Gemini carries no `Retry-After` header.
    pub fn retry_delay(&self) -> Option<Duration> {
        self.details.iter().find_map(|detail| {
            let is_retry_info = detail
                .get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"));
            let delay = detail.get("retryDelay").and_then(Value::as_str)?;
            is_retry_info
                .then(|| delay.strip_suffix('s'))
                .flatten()
                .and_then(crate::failure::parse_retry_after)
        })
    }
}

/// The HTTP status of a `google.rpc.Code` name.
fn status_for_code_name(name: &str) -> Option<StatusCode> {
    let code = match name {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 400,
        "UNAUTHENTICATED" => 401,
        "PERMISSION_DENIED" => 403,
        "NOT_FOUND" => 404,
        "RESOURCE_EXHAUSTED" => 429,
        "CANCELLED" => 499,
        "INTERNAL" | "UNKNOWN" | "DATA_LOSS" => 500,
        "UNIMPLEMENTED" => 501,
        "UNAVAILABLE" => 503,
        "DEADLINE_EXCEEDED" => 504,
        _ => return None,
    };
    StatusCode::from_u16(code).ok()
}

/// Converts one response. Feed it bytes with [`WireConverter::feed`], end it with
/// [`WireConverter::finish`]; both append the resulting events to `out`.
pub struct Converter {
    body: Body,
    responses: Responses,
}

/// How the answer is framed.
enum Body {
    /// `streamGenerateContent?alt=sse`: one response per `data:` line.
    Sse(SseReader),
    /// `generateContent`: one response, read when the body ends.
    Whole(Vec<u8>),
}

/// Maps responses onto the stream builder.
struct Responses {
    stream: StreamBuilder,
}

impl Converter {
    /// For `streamGenerateContent?alt=sse`. `model` is the model the client asked for (the
    /// one its `message_start` names).
    pub fn streaming(provider: &str, model: &str, estimated_input_tokens: u64) -> Self {
        Converter {
            body: Body::Sse(SseReader::default()),
            responses: Responses::new(provider, model, estimated_input_tokens),
        }
    }

    /// For `generateContent`, whose body is one response.
    pub fn whole(provider: &str, model: &str, estimated_input_tokens: u64) -> Self {
        Converter {
            body: Body::Whole(Vec::new()),
            responses: Responses::new(provider, model, estimated_input_tokens),
        }
    }
}

impl Responses {
    fn new(provider: &str, model: &str, estimated_input_tokens: u64) -> Self {
        let stream = StreamBuilder::new(provider, model, estimated_input_tokens)
            .explaining_invalid_tool_input(|provider, tool| {
                format!(
                    "{provider} sent arguments for function `{tool}` that are not a JSON object"
                )
            });
        Responses { stream }
    }

    fn reading<'a>(&'a mut self, out: &'a mut Vec<StreamEvent>) -> DataReading<'a, Self> {
        DataReading { lines: self, out }
    }

    fn response(&mut self, response: Response, out: &mut Vec<StreamEvent>) {
        if let Some(error) = response.error {
            return self.upstream_error(error, out);
        }
        self.stream.start(out);
        if let Some(usage) = response.usage_metadata {
            self.stream.report_usage(anthropic_usage(usage));
        }
        let Some(candidate) = response.candidates.into_iter().next() else {
            // No candidate at all: the prompt itself was blocked.
            if response
                .prompt_feedback
                .and_then(|f| f.block_reason)
                .is_some()
            {
                self.stream.finish(StopReason::Refusal, out);
            }
            return;
        };
        for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
            self.part(part, out);
        }
        if let Some(reason) = candidate.finish_reason {
            self.finish(&reason, out);
        }
    }

    fn part(&mut self, part: ResponsePart, out: &mut Vec<StreamEvent>) {
        if let Some(call) = part.function_call {
            return self.function_call(call, part.thought_signature, out);
        }
        match part.text {
            Some(text) if part.thought => self.stream.thinking(text, out),
            Some(text) => self.stream.text(text, out),
            // A part with only a signature: Gemini validates signatures on function calls
            // alone, and a text's has nowhere to travel.
            None => {}
        }
    }

    /// A call arrives whole: its block opens, takes the whole input and closes at once.
    fn function_call(
        &mut self,
        call: FunctionCall,
        thought_signature: Option<String>,
        out: &mut Vec<StreamEvent>,
    ) {
        let Some(name) = call.name.filter(|n| !n.is_empty()) else {
            let message = format!(
                "{} sent a function call without a name",
                self.stream.provider()
            );
            return self.fail(message, Class::BadResponse, out);
        };
        let id = match thought_signature.filter(|s| !s.is_empty()) {
            Some(signature) => Some(signature::encode(&signature)),
            None => call.id.filter(|id| is_tool_use_id(id)),
        };
        let input = call.args.map_or_else(String::new, |args| match args.get() {
            "null" => String::new(),
            json => json.to_string(),
        });
        self.stream.start_tool(id, name, out);
        self.stream.tool_input(input, out);
        self.stream.close_block(out);
    }

    fn finish(&mut self, reason: &str, out: &mut Vec<StreamEvent>) {
        match stop_reason_for(reason) {
            Some(stop_reason) => self.stream.finish(stop_reason, out),
            None => {
                let message = format!(
                    "{} could not finish its answer (finishReason {reason}): the model wrote a function call it could not complete",
                    self.stream.provider()
                );
                self.fail(message, Class::BadResponse, out);
            }
        }
    }

    fn upstream_error(&mut self, error: GoogleError, out: &mut Vec<StreamEvent>) {
        let status = error.judged_status(None);
        let message = error.message.as_deref().unwrap_or("unknown error");
        let failure = Failure::of_upstream_status(status, error.retry_delay(), message, false);
        let error = ApiError::new(
            error_type_for_status(status),
            format!("{}: {message}", self.stream.provider()),
        );
        self.stream.fail(error, failure, out);
    }

    fn fail(&mut self, message: String, class: Class, out: &mut Vec<StreamEvent>) {
        self.stream.fail(
            ApiError::new(ErrorType::Api, message),
            Failure::upstream(class),
            out,
        );
    }
}

/// Gemini's ids, when it sends any, go to the client only if they are valid Anthropic ids.
fn is_tool_use_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Gemini counts cached tokens inside `promptTokenCount` and thoughts apart from
/// `candidatesTokenCount`; Anthropic counts cache reads apart and thinking as output.
fn anthropic_usage(usage: UsageMetadata) -> Usage {
    Usage {
        input_tokens: usage
            .prompt_token_count
            .saturating_sub(usage.cached_content_token_count),
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: usage.cached_content_token_count,
        output_tokens: usage
            .candidates_token_count
            .saturating_add(usage.thoughts_token_count),
    }
}

/// `None` for the reasons that mean the model broke its own function call.
fn stop_reason_for(finish_reason: &str) -> Option<StopReason> {
    match finish_reason {
        "MAX_TOKENS" => Some(StopReason::MaxTokens),
        "SAFETY" | "RECITATION" | "PROHIBITED_CONTENT" | "BLOCKLIST" | "SPII" | "IMAGE_SAFETY"
        | "LANGUAGE" => Some(StopReason::Refusal),
        "MALFORMED_FUNCTION_CALL" | "UNEXPECTED_TOOL_CALL" | "TOO_MANY_TOOL_CALLS" => None,
        // STOP, OTHER, FINISH_REASON_UNSPECIFIED and reasons newer than ccr.
        _ => Some(StopReason::EndTurn),
    }
}

impl WireConverter for Converter {
    fn is_done(&self) -> bool {
        self.responses.stream.is_done()
    }

    /// Takes the next bytes of the body; lines, JSON and UTF-8 may be cut anywhere.
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        match &mut self.body {
            Body::Sse(lines) => lines.feed(bytes, &mut self.responses.reading(out)),
            Body::Whole(held) if held.len() + bytes.len() > MAX_FOLD => {
                let message = format!(
                    "{} sent an answer over {MAX_FOLD} bytes: ask for it streamed",
                    self.responses.stream.provider()
                );
                self.responses.fail(message, Class::BadResponse, out);
            }
            Body::Whole(held) => held.extend_from_slice(bytes),
        }
    }

    /// The body has ended. A stream that ends before a finish reason was cut short; a whole
    /// response without one (nothing was generated) ends the turn.
    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.is_done() {
            return;
        }
        match &mut self.body {
            Body::Sse(lines) => {
                lines.finish(&mut self.responses.reading(out));
                let message = format!(
                    "{} ended its response before finishing it",
                    self.responses.stream.provider()
                );
                self.responses.fail(message, Class::StreamCut, out);
            }
            Body::Whole(held) => {
                let held = std::mem::take(held);
                self.responses.data(&held, out);
                self.responses.stream.finish(StopReason::EndTurn, out);
            }
        }
    }
}

impl DataLines for Responses {
    fn data(&mut self, data: &[u8], out: &mut Vec<StreamEvent>) {
        match serde_json::from_slice::<Response>(data) {
            Ok(response) => self.response(response, out),
            Err(error) => {
                let message = format!(
                    "{} sent a response that is not valid JSON: {error}",
                    self.stream.provider()
                );
                self.fail(message, Class::BadResponse, out);
            }
        }
    }

    fn stream(&self) -> &StreamBuilder {
        &self.stream
    }

    fn stream_mut(&mut self) -> &mut StreamBuilder {
        &mut self.stream
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::anthropic::events::{BlockKind, Delta};
    use crate::anthropic::{CCR_SIGNATURE_PREFIX, Failed};

    /// The responses as an SSE body in Google's CRLF framing, fed `split_every` bytes at a
    /// time.
    fn run(responses: &[Value], split_every: Option<usize>) -> Vec<StreamEvent> {
        let text: String = responses
            .iter()
            .map(|r| format!("data: {r}\r\n\r\n"))
            .collect();
        let mut converter = Converter::streaming("gm", "claude-x", 100);
        feed(&mut converter, text.as_bytes(), split_every)
    }

    fn feed(
        converter: &mut Converter,
        bytes: &[u8],
        split_every: Option<usize>,
    ) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        match split_every {
            Some(n) => bytes.chunks(n).for_each(|c| converter.feed(c, &mut out)),
            None => converter.feed(bytes, &mut out),
        }
        converter.finish(&mut out);
        out
    }

    fn parts(parts: Value) -> Value {
        json!({"candidates": [{"content": {"role": "model", "parts": parts}}]})
    }

    fn finished(reason: &str, usage: Value) -> Value {
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": reason}], "usageMetadata": usage})
    }

    fn names(events: &[StreamEvent]) -> Vec<&'static str> {
        events.iter().map(StreamEvent::name).collect()
    }

    fn message_delta(events: &[StreamEvent]) -> (StopReason, Usage) {
        match &events[events.len() - 2] {
            StreamEvent::MessageDelta { stop_reason, usage } => (*stop_reason, *usage),
            other => panic!("{other:?}"),
        }
    }

    fn tool_blocks(events: &[StreamEvent]) -> Vec<(String, String, String)> {
        let mut blocks = Vec::new();
        for event in events {
            match event {
                StreamEvent::BlockStart {
                    block: BlockKind::ToolUse { id, name },
                    ..
                } => blocks.push((id.clone(), name.clone(), String::new())),
                StreamEvent::Delta {
                    delta: Delta::InputJson(json),
                    ..
                } => blocks.last_mut().unwrap().2.push_str(json),
                _ => {}
            }
        }
        blocks
    }

    fn last_error(events: &[StreamEvent]) -> &Failed {
        match events.last().unwrap() {
            StreamEvent::Error(failed) => failed,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn text_streams_and_usage_splits_cached_tokens_out_of_the_prompt() {
        let events = run(
            &[
                parts(json!([{"text": "hé"}])),
                json!({"candidates": [{"content": {"parts": [{"text": "llo"}]}}], "usageMetadata": {"promptTokenCount": 1200, "candidatesTokenCount": 2}}),
                finished(
                    "STOP",
                    json!({"promptTokenCount": 1200, "candidatesTokenCount": 50, "cachedContentTokenCount": 1000, "thoughtsTokenCount": 14, "totalTokenCount": 1264}),
                ),
            ],
            Some(1),
        );
        assert_eq!(
            names(&events),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(
            events[2],
            StreamEvent::Delta {
                index: 0,
                delta: Delta::Text("hé".into())
            }
        );
        let (stop_reason, usage) = message_delta(&events);
        assert_eq!(stop_reason, StopReason::EndTurn);
        assert_eq!(
            (
                usage.input_tokens,
                usage.cache_read_input_tokens,
                usage.output_tokens
            ),
            (200, 1000, 64),
            "the last figures, not a sum"
        );
    }

    #[test]
    fn thoughts_become_a_signed_thinking_block() {
        let events = run(
            &[
                parts(json!([{"text": "let me ", "thought": true}])),
                parts(json!([{"text": "think", "thought": true}])),
                parts(json!([{"text": "answer", "thoughtSignature": "c2ln"}])),
                finished("STOP", json!({})),
            ],
            None,
        );
        assert_eq!(
            events[1],
            StreamEvent::BlockStart {
                index: 0,
                block: BlockKind::Thinking
            }
        );
        let signature = events.iter().find_map(|e| match e {
            StreamEvent::Delta {
                index: 0,
                delta: Delta::Signature(s),
            } => Some(s.clone()),
            _ => None,
        });
        assert!(signature.unwrap().starts_with(CCR_SIGNATURE_PREFIX));
        assert!(events.contains(&StreamEvent::Delta {
            index: 1,
            delta: Delta::Text("answer".into())
        }));
    }

    #[test]
    fn function_calls_become_tool_use_blocks_and_stop_becomes_tool_use() {
        let events = run(
            &[
                parts(json!([{"text": "I'll look."}])),
                parts(json!([
                    {"functionCall": {"name": "Glob", "args": {"pattern": "**/*.rs"}}, "thoughtSignature": "CiQB0e2K+/x="},
                    {"functionCall": {"name": "Grep", "args": {"q": "fn main"}, "id": "call-7"}}
                ])),
                parts(json!([{"functionCall": {"name": "Now"}}])),
                finished("STOP", json!({})),
            ],
            Some(5),
        );
        let tools = tool_blocks(&events);
        assert_eq!(tools.len(), 3);
        assert_eq!(
            signature::decode(&tools[0].0).as_deref(),
            Some("CiQB0e2K+/x=")
        );
        assert_eq!(
            (tools[0].1.as_str(), tools[0].2.as_str()),
            ("Glob", r#"{"pattern":"**/*.rs"}"#)
        );
        assert_eq!(
            (
                tools[1].0.as_str(),
                tools[1].1.as_str(),
                tools[1].2.as_str()
            ),
            ("call-7", "Grep", r#"{"q":"fn main"}"#)
        );
        assert!(tools[2].0.starts_with("toolu_"), "ccr makes a missing id");
        assert_eq!(tools[2].2, "{}");
        assert_eq!(message_delta(&events).0, StopReason::ToolUse);
    }

    #[test]
    fn finish_reasons_map_to_stop_reasons() {
        for (reason, expected) in [
            ("STOP", StopReason::EndTurn),
            ("MAX_TOKENS", StopReason::MaxTokens),
            ("SAFETY", StopReason::Refusal),
            ("RECITATION", StopReason::Refusal),
            ("PROHIBITED_CONTENT", StopReason::Refusal),
            ("OTHER", StopReason::EndTurn),
        ] {
            let events = run(
                &[parts(json!([{"text": "a"}])), finished(reason, json!({}))],
                None,
            );
            assert_eq!(message_delta(&events).0, expected, "{reason}");
        }
        let events = run(&[finished("MALFORMED_FUNCTION_CALL", json!({}))], None);
        let failed = last_error(&events);
        assert_eq!(failed.failure.class, Class::BadResponse);
        assert!(failed.error.message.contains("MALFORMED_FUNCTION_CALL"));

        let events = run(
            &[json!({"promptFeedback": {"blockReason": "SAFETY"}})],
            None,
        );
        assert_eq!(message_delta(&events).0, StopReason::Refusal);
    }

    #[test]
    fn errors_and_cuts_end_with_an_error_event() {
        let events = run(
            &[
                parts(json!([{"text": "a"}])),
                json!({"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED", "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}]}}),
            ],
            None,
        );
        let failed = last_error(&events);
        assert_eq!(failed.error.kind, ErrorType::RateLimit);
        assert_eq!(failed.error.message, "gm: Resource has been exhausted");
        assert_eq!(failed.failure.class, Class::RateLimit);
        assert_eq!(failed.failure.out_for, Some(Duration::from_secs(12)));

        let events = run(&[parts(json!([{"text": "a"}]))], None);
        let failed = last_error(&events);
        assert_eq!(failed.failure.class, Class::StreamCut);

        let events = run(
            &[parts(json!([{"functionCall": {"name": "A", "args": [1]}}]))],
            None,
        );
        assert!(
            last_error(&events)
                .error
                .message
                .contains("not a JSON object")
        );

        let events = run(&[parts(json!([{"functionCall": {"args": {}}}]))], None);
        assert!(last_error(&events).error.message.contains("without a name"));
    }

    #[test]
    fn a_whole_response_converts_like_a_stream() {
        let body = json!({"candidates": [{"content": {"role": "model", "parts": [
            {"text": "plan", "thought": true},
            {"text": "Done."},
            {"functionCall": {"name": "Bash", "args": {"command": "ls"}}}
        ]}, "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 5}});
        let pretty = serde_json::to_string_pretty(&body).unwrap();
        let mut converter = Converter::whole("gm", "claude-x", 100);
        let events = feed(&mut converter, pretty.as_bytes(), Some(7));
        let kinds: Vec<&BlockKind> = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::BlockStart { block, .. } => Some(block),
                _ => None,
            })
            .collect();
        assert!(matches!(
            kinds[..],
            [
                BlockKind::Thinking,
                BlockKind::Text,
                BlockKind::ToolUse { .. }
            ]
        ));
        let (stop_reason, usage) = message_delta(&events);
        assert_eq!(
            (stop_reason, usage.input_tokens, usage.output_tokens),
            (StopReason::ToolUse, 30, 5)
        );

        let mut converter = Converter::whole("gm", "claude-x", 100);
        let events = feed(&mut converter, b"{\"candidates\": [", None);
        assert_eq!(last_error(&events).failure.class, Class::BadResponse);
    }

    #[test]
    fn error_bodies_are_read_in_both_shapes_and_a_bad_key_is_auth() {
        let body = br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#;
        let error = GoogleError::of_body(body).unwrap();
        assert_eq!(
            error.judged_status(Some(StatusCode::BAD_REQUEST)),
            StatusCode::UNAUTHORIZED
        );

        let body = br#"[{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}]"#;
        let error = GoogleError::of_body(body).unwrap();
        assert_eq!(error.message.as_deref(), Some("The model is overloaded."));
        assert_eq!(error.judged_status(None), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.retry_delay(), None);

        let error = GoogleError {
            details: vec![
                json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}),
            ],
            ..GoogleError::default()
        };
        assert_eq!(error.retry_delay(), Some(Duration::from_millis(1500)));
        assert!(GoogleError::of_body(b"upstream connect error").is_none());
    }
}
