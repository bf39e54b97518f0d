//! CodeWhisperer's event-stream messages → Anthropic events, as each frame arrives: the
//! AWS event-stream framing (https://docs.aws.amazon.com/AmazonS3/latest/API/RESTSelectObjectAppendix.html)
//! carrying `assistantResponseEvent`, `toolUseEvent`, metering and exception messages.

use std::collections::HashSet;

use aws_smithy_types::event_stream::Message;
use serde::Deserialize;

use super::eventstream::{FrameError, FrameReader, header};
use crate::anthropic::builder::StreamBuilder;
use crate::anthropic::events::{StopReason, StreamEvent};
use crate::anthropic::{ApiError, ErrorType};
use crate::failure::{Class, Failure};
use crate::providers::WireConverter;

/// The context window `contextUsagePercentage` is a share of.
const CONTEXT_WINDOW_TOKENS: f64 = 200_000.0;
/// An account whose monthly quota is used up stays out this long: trying it again sooner
/// only spends another attempt.
const QUOTA_EXHAUSTED_OUT_FOR: std::time::Duration = std::time::Duration::from_secs(3600);
/// Shorter fragments may legitimately repeat ("\n", " ") and are never deduplicated.
const MIN_DEDUP_CHARS: usize = 4;

#[derive(Deserialize)]
struct TextEvent {
    #[serde(default)]
    content: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolEvent {
    tool_use_id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<String>,
    #[serde(default)]
    stop: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContextUsage {
    context_usage_percentage: f64,
}

#[derive(Deserialize)]
struct Metering {
    #[serde(default)]
    usage: f64,
}

#[derive(Deserialize)]
struct ExceptionBody {
    #[serde(default)]
    message: Option<String>,
}

/// Converts one response: feed it body bytes, end it with [`Converter::finish`].
pub struct Converter {
    frames: FrameReader,
    stream: StreamBuilder,
    /// Ids of the tool calls whose blocks were opened: a repeated call is dropped.
    seen_tools: HashSet<String>,
    /// The upstream id and block index of the last tool call opened.
    current_tool: Option<(String, u32)>,
    last_text: String,
}

impl Converter {
    pub fn new(provider: &str, model: &str, estimated_input_tokens: u64) -> Self {
        Converter {
            frames: FrameReader::default(),
            stream: StreamBuilder::new(provider, model, estimated_input_tokens)
                .explaining_invalid_tool_input(cut_tool_input),
            seen_tools: HashSet::new(),
            current_tool: None,
            last_text: String::new(),
        }
    }

    fn message(&mut self, message: &Message, out: &mut Vec<StreamEvent>) {
        let payload = message.payload();
        match header(message, ":message-type") {
            Some("exception") => return self.exception(message, out),
            Some("error") => {
                let code = header(message, ":error-code").unwrap_or("error");
                let detail = header(message, ":error-message").unwrap_or_default();
                let message = format!("{}: {code}: {detail}", self.stream.provider());
                return self.fail(message, Failure::upstream(Class::Upstream5xx), out);
            }
            _ => {}
        }
        let event_type = header(message, ":event-type").unwrap_or_default();
        match event_type {
            "assistantResponseEvent" => {
                if let Ok(event) = serde_json::from_slice::<TextEvent>(payload) {
                    self.text(event.content, out);
                }
            }
            "toolUseEvent" => match serde_json::from_slice::<ToolEvent>(payload) {
                Ok(event) => self.tool(event, out),
                Err(error) => {
                    let message = format!(
                        "{} sent a tool event that is not valid JSON: {error}",
                        self.stream.provider()
                    );
                    self.fail(message, Failure::upstream(Class::BadResponse), out);
                }
            },
            "contextUsageEvent" => {
                if let Ok(usage) = serde_json::from_slice::<ContextUsage>(payload) {
                    let share = usage.context_usage_percentage.clamp(0.0, 100.0) / 100.0;
                    let tokens = (share * CONTEXT_WINDOW_TOKENS).round() as u64;
                    self.stream.report_input_tokens(tokens);
                }
            }
            "meteringEvent" => {
                if let Ok(metering) = serde_json::from_slice::<Metering>(payload) {
                    self.stream.metering(metering.usage, out);
                }
            }
            // messageMetadataEvent, followupPromptEvent, codeReferenceEvent… carry nothing
            // a client needs.
            _ => {}
        }
    }

    fn exception(&mut self, message: &Message, out: &mut Vec<StreamEvent>) {
        let kind = header(message, ":exception-type").unwrap_or("UnknownException");
        let detail = serde_json::from_slice::<ExceptionBody>(message.payload())
            .ok()
            .and_then(|b| b.message)
            .unwrap_or_default();
        let (error_type, status) = exception_error(kind);
        let message = format!("{}: {kind}: {detail}", self.stream.provider());
        let mut failure = Failure::of_upstream_status(status, None, &message, false);
        if kind.contains("ServiceQuotaExceeded") {
            failure.out_for = Some(QUOTA_EXHAUSTED_OUT_FOR);
        }
        let error = ApiError::new(error_type, message).with_status(status);
        self.stream.fail(error, failure, out);
    }

    fn text(&mut self, content: String, out: &mut Vec<StreamEvent>) {
        // A known quirk: the same fragment sent twice in a row.
        if content == self.last_text && content.trim().chars().count() >= MIN_DEDUP_CHARS {
            return;
        }
        if content.is_empty() {
            return;
        }
        self.last_text.clone_from(&content);
        self.stream.text(content, out);
    }

    fn tool(&mut self, event: ToolEvent, out: &mut Vec<StreamEvent>) {
        let open = self.is_open(&event.tool_use_id);
        if !open && self.seen_tools.contains(&event.tool_use_id) {
            return;
        }
        if !open {
            self.start_tool(&event, out);
        }
        if let Some(fragment) = event.input {
            self.stream.tool_input(fragment, out);
        }
        if event.stop {
            self.stream.close_block(out);
        }
        self.last_text.clear();
    }

    /// Whether the builder's open block is the call with this upstream id.
    fn is_open(&self, tool_use_id: &str) -> bool {
        match (&self.current_tool, self.stream.open_tool()) {
            (Some((id, block)), Some(open)) => id == tool_use_id && *block == open,
            _ => false,
        }
    }

    fn start_tool(&mut self, event: &ToolEvent, out: &mut Vec<StreamEvent>) {
        let id = Some(event.tool_use_id.clone()).filter(|id| !id.is_empty());
        let name = event.name.clone().unwrap_or_default();
        if let Some(block) = self.stream.start_tool(id, name, out) {
            self.seen_tools.insert(event.tool_use_id.clone());
            self.current_tool = Some((event.tool_use_id.clone(), block));
        }
    }

    fn corrupt(&mut self, error: FrameError, out: &mut Vec<StreamEvent>) {
        let message = format!("{}: {error}", self.stream.provider());
        self.fail(message, Failure::upstream(Class::BadResponse), out);
    }

    fn fail(&mut self, message: String, failure: Failure, out: &mut Vec<StreamEvent>) {
        let error = ApiError::new(ErrorType::Api, message);
        self.stream.fail(error, failure, out);
    }
}

/// CodeWhisperer cuts a tool call's input when it grows too large, which leaves JSON that
/// does not parse; the client can avoid it by asking for smaller edits.
fn cut_tool_input(provider: &str, tool: &str) -> String {
    format!(
        "{provider} sent input for tool `{tool}` that does not join into valid JSON (often a very large Write/Edit cut short): ask for smaller edits"
    )
}

/// The Anthropic error for a CodeWhisperer exception type.
fn exception_error(kind: &str) -> (ErrorType, http::StatusCode) {
    let error_type = match kind {
        k if k.contains("Throttling") || k.contains("ServiceQuotaExceeded") => ErrorType::RateLimit,
        k if k.contains("Validation") => ErrorType::InvalidRequest,
        k if k.contains("AccessDenied") => ErrorType::Permission,
        _ => ErrorType::Api,
    };
    (error_type, error_type.default_status())
}

impl WireConverter for Converter {
    fn is_done(&self) -> bool {
        self.stream.is_done()
    }

    fn feed(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        self.frames.push(bytes);
        while !self.is_done() {
            match self.frames.next_message() {
                Ok(Some(message)) => self.message(&message, out),
                Ok(None) => return,
                Err(error) => return self.corrupt(error, out),
            }
        }
    }

    /// The body ended: close what is open and finish the message, unless a frame was cut.
    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.frames.has_partial_frame() {
            let message = format!(
                "{} ended its response in the middle of an event-stream frame",
                self.stream.provider()
            );
            return self.fail(message, Failure::upstream(Class::StreamCut), out);
        }
        // CodeWhisperer has no stop reason; the builder makes it tool_use after tool calls.
        self.stream.finish(StopReason::EndTurn, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anthropic::Failed;
    use crate::anthropic::events::{BlockKind, Delta};
    use crate::providers::codewhisperer::eventstream::tests::frame;

    fn run(frames: &[Vec<u8>], step: usize) -> Vec<StreamEvent> {
        let bytes: Vec<u8> = frames.concat();
        let mut converter = Converter::new("kiro:work", "claude-sonnet-4-5", 500);
        let mut out = Vec::new();
        for piece in bytes.chunks(step) {
            converter.feed(piece, &mut out);
        }
        converter.finish(&mut out);
        out
    }

    #[test]
    fn text_and_two_tool_calls_in_any_split() {
        let frames = [
            frame("assistantResponseEvent", r#"{"content":"Let me lőok."}"#),
            frame("assistantResponseEvent", r#"{"content":"Let me lőok."}"#),
            frame(
                "toolUseEvent",
                r#"{"toolUseId":"t1","name":"Read","input":"{\"file_"}"#,
            ),
            frame(
                "toolUseEvent",
                r#"{"toolUseId":"t1","name":"Read","input":"path\":\"/a\"}"}"#,
            ),
            frame(
                "toolUseEvent",
                r#"{"toolUseId":"t1","name":"Read","stop":true}"#,
            ),
            frame(
                "toolUseEvent",
                r#"{"toolUseId":"t1","name":"Read","input":"{}","stop":true}"#,
            ),
            frame(
                "toolUseEvent",
                r#"{"toolUseId":"t2","name":"Glob","input":"{\"pattern\":\"*.rs\"}","stop":true}"#,
            ),
            frame("contextUsageEvent", r#"{"contextUsagePercentage":1.5}"#),
            frame("meteringEvent", r#"{"unit":"credit","usage":0.25}"#),
        ];
        for step in [1, 5, 4096] {
            let events = run(&frames, step);
            let texts: Vec<&str> = events
                .iter()
                .filter_map(|e| match e {
                    StreamEvent::Delta {
                        delta: Delta::Text(t),
                        ..
                    } => Some(t.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(texts, ["Let me lőok."], "a repeated fragment is sent once");
            let tools = events
                .iter()
                .filter(|e| {
                    matches!(
                        e,
                        StreamEvent::BlockStart {
                            block: BlockKind::ToolUse { .. },
                            ..
                        }
                    )
                })
                .count();
            assert_eq!(tools, 2, "a repeated tool call is sent once");
            assert!(events.contains(&StreamEvent::Metering { credits: 0.25 }));
            let StreamEvent::MessageDelta { stop_reason, usage } = &events[events.len() - 2] else {
                panic!()
            };
            assert_eq!(*stop_reason, StopReason::ToolUse);
            assert_eq!(usage.input_tokens, 3000);
        }
    }

    #[test]
    fn exceptions_cuts_and_broken_tool_input_end_with_errors() {
        let exception = {
            use aws_smithy_types::event_stream::{Header, HeaderValue};
            let message = Message::new(br#"{"message":"Rate exceeded"}"#.to_vec())
                .add_header(Header::new(
                    ":message-type",
                    HeaderValue::String("exception".into()),
                ))
                .add_header(Header::new(
                    ":exception-type",
                    HeaderValue::String("ThrottlingException".into()),
                ));
            let mut out = Vec::new();
            aws_smithy_eventstream::frame::write_message_to(&message, &mut out).unwrap();
            out
        };
        let events = run(
            &[
                frame("assistantResponseEvent", r#"{"content":"a"}"#),
                exception,
            ],
            4096,
        );
        let StreamEvent::Error(Failed { error, failure }) = events.last().unwrap() else {
            panic!("{events:?}")
        };
        assert_eq!(failure.class, Class::RateLimit);
        assert_eq!(
            (error.kind, error.status.as_u16()),
            (ErrorType::RateLimit, 429)
        );
        assert!(error.message.contains("ThrottlingException: Rate exceeded"));

        let whole = frame("assistantResponseEvent", r#"{"content":"abc"}"#);
        let events = run(&[whole[..whole.len() - 3].to_vec()], 4096);
        assert!(
            matches!(events.last(), Some(StreamEvent::Error(e)) if e.error.message.contains("middle of an event-stream frame") && e.failure.class == Class::StreamCut)
        );

        let events = run(
            &[
                frame(
                    "toolUseEvent",
                    r#"{"toolUseId":"t","name":"Write","input":"{\"content\":\"cut"}"#,
                ),
                frame("toolUseEvent", r#"{"toolUseId":"t","stop":true}"#),
            ],
            4096,
        );
        assert!(
            matches!(events.last(), Some(StreamEvent::Error(e)) if e.error.message.contains("does not join into valid JSON"))
        );
    }
}
