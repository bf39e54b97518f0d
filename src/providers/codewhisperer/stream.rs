//! CodeWhisperer's event-stream messages → Anthropic events, as each frame arrives: the
//! AWS event-stream framing (https://docs.aws.amazon.com/AmazonS3/latest/API/RESTSelectObjectAppendix.html)
//! carrying `assistantResponseEvent`, `toolUseEvent`, metering and exception messages.

use std::collections::HashSet;

use aws_smithy_types::event_stream::Message;
use serde::Deserialize;

use super::eventstream::{FrameError, FrameReader, header};
use crate::anthropic::events::{BlockKind, Delta, StopReason, StreamEvent};
use crate::anthropic::{ApiError, ErrorType, Failed, Usage, ids};
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

enum Open {
    Text,
    Tool {
        id: String,
        name: String,
        input: String,
    },
}

/// Converts one response: feed it body bytes, end it with [`Converter::finish`].
pub struct Converter {
    provider: String,
    model: String,
    estimated_input_tokens: u64,
    frames: FrameReader,
    started: bool,
    open: Option<Open>,
    next_index: u32,
    /// Tool calls already sent: a repeated call with the same id is dropped.
    finished_tools: HashSet<String>,
    called_tools: bool,
    last_text: String,
    context_tokens: Option<u64>,
    output_bytes: u64,
    done: bool,
}

impl Converter {
    pub fn new(provider: &str, model: &str, estimated_input_tokens: u64) -> Self {
        Converter {
            provider: provider.to_string(),
            model: model.to_string(),
            estimated_input_tokens,
            frames: FrameReader::default(),
            started: false,
            open: None,
            next_index: 0,
            finished_tools: HashSet::new(),
            called_tools: false,
            last_text: String::new(),
            context_tokens: None,
            output_bytes: 0,
            done: false,
        }
    }

    fn message(&mut self, message: &Message, out: &mut Vec<StreamEvent>) {
        let payload = message.payload();
        match header(message, ":message-type") {
            Some("exception") => {
                let kind = header(message, ":exception-type").unwrap_or("UnknownException");
                let detail = serde_json::from_slice::<ExceptionBody>(payload)
                    .ok()
                    .and_then(|b| b.message)
                    .unwrap_or_default();
                let (error_type, status) = exception_error(kind);
                let message = format!("{}: {kind}: {detail}", self.provider);
                let mut failure = Failure::of_upstream_status(status, None, &message, false);
                if kind.contains("ServiceQuotaExceeded") {
                    failure.out_for = Some(QUOTA_EXHAUSTED_OUT_FOR);
                }
                self.done = true;
                let error = ApiError::new(error_type, message).with_status(status);
                out.push(StreamEvent::Error(Failed { error, failure }));
                return;
            }
            Some("error") => {
                let code = header(message, ":error-code").unwrap_or("error");
                let detail = header(message, ":error-message").unwrap_or_default();
                return self.fail(
                    out,
                    format!("{}: {code}: {detail}", self.provider),
                    Failure::upstream(Class::Upstream5xx),
                );
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
                        self.provider
                    );
                    self.fail(out, message, Failure::upstream(Class::BadResponse));
                }
            },
            "contextUsageEvent" => {
                if let Ok(usage) = serde_json::from_slice::<ContextUsage>(payload) {
                    let share = usage.context_usage_percentage.clamp(0.0, 100.0) / 100.0;
                    self.context_tokens = Some((share * CONTEXT_WINDOW_TOKENS).round() as u64);
                }
            }
            "meteringEvent" => {
                if let Ok(metering) = serde_json::from_slice::<Metering>(payload) {
                    out.push(StreamEvent::Metering {
                        credits: metering.usage,
                    });
                }
            }
            // messageMetadataEvent, followupPromptEvent, codeReferenceEvent… carry nothing
            // a client needs.
            _ => {}
        }
    }

    fn text(&mut self, content: String, out: &mut Vec<StreamEvent>) {
        if content.is_empty() {
            return;
        }
        // A known quirk: the same fragment sent twice in a row.
        if content == self.last_text && content.trim().chars().count() >= MIN_DEDUP_CHARS {
            return;
        }
        self.start(out);
        if !matches!(self.open, Some(Open::Text)) {
            self.close_open(out);
            self.open_block(BlockKind::Text, Open::Text, out);
        }
        self.output_bytes += content.len() as u64;
        self.last_text.clone_from(&content);
        out.push(StreamEvent::Delta {
            index: self.next_index - 1,
            delta: Delta::Text(content),
        });
    }

    fn tool(&mut self, event: ToolEvent, out: &mut Vec<StreamEvent>) {
        if self.finished_tools.contains(&event.tool_use_id) {
            return;
        }
        self.start(out);
        let same_call =
            matches!(&self.open, Some(Open::Tool { id, .. }) if *id == event.tool_use_id);
        if !same_call {
            self.close_open(out);
            if self.done {
                return;
            }
            let name = event.name.clone().unwrap_or_default();
            let id = if event.tool_use_id.is_empty() {
                ids::tool_use_id()
            } else {
                event.tool_use_id.clone()
            };
            let kind = BlockKind::ToolUse {
                id: id.clone(),
                name: name.clone(),
            };
            self.open_block(
                kind,
                Open::Tool {
                    id: event.tool_use_id.clone(),
                    name,
                    input: String::new(),
                },
                out,
            );
            self.called_tools = true;
        }
        if let Some(fragment) = event.input.filter(|f| !f.is_empty()) {
            if let Some(Open::Tool { input, .. }) = &mut self.open {
                input.push_str(&fragment);
            }
            self.output_bytes += fragment.len() as u64;
            out.push(StreamEvent::Delta {
                index: self.next_index - 1,
                delta: Delta::InputJson(fragment),
            });
        }
        if event.stop {
            self.close_open(out);
        }
        self.last_text.clear();
    }

    fn open_block(&mut self, kind: BlockKind, open: Open, out: &mut Vec<StreamEvent>) {
        out.push(StreamEvent::BlockStart {
            index: self.next_index,
            block: kind,
        });
        self.next_index += 1;
        self.open = Some(open);
    }

    /// Closes the open block; a tool block's joined input must be valid JSON, else the
    /// response ends with an error rather than hand broken JSON to the client.
    fn close_open(&mut self, out: &mut Vec<StreamEvent>) {
        let index = self.next_index.saturating_sub(1);
        match self.open.take() {
            None => {}
            Some(Open::Text) => out.push(StreamEvent::BlockStop { index }),
            Some(Open::Tool { id, name, input }) => {
                self.finished_tools.insert(id);
                if input.trim().is_empty() {
                    out.push(StreamEvent::Delta {
                        index,
                        delta: Delta::InputJson("{}".into()),
                    });
                } else if serde_json::from_str::<serde::de::IgnoredAny>(&input).is_err() {
                    let message = format!(
                        "{} sent input for tool `{name}` that does not join into valid JSON (often a very large Write/Edit cut short): ask for smaller edits",
                        self.provider
                    );
                    return self.fail(out, message, Failure::upstream(Class::BadResponse));
                }
                out.push(StreamEvent::BlockStop { index });
            }
        }
    }

    fn start(&mut self, out: &mut Vec<StreamEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(StreamEvent::message_start(
            &self.model,
            self.estimated_input_tokens,
        ));
    }

    fn corrupt(&mut self, error: FrameError, out: &mut Vec<StreamEvent>) {
        let message = format!("{}: {error}", self.provider);
        self.fail(out, message, Failure::upstream(Class::BadResponse));
    }

    fn fail(&mut self, out: &mut Vec<StreamEvent>, message: String, failure: Failure) {
        self.done = true;
        let error = ApiError::new(ErrorType::Api, message);
        out.push(StreamEvent::Error(Failed { error, failure }));
    }
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
        self.done
    }

    fn feed(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        self.frames.push(bytes);
        while !self.done {
            match self.frames.next_message() {
                Ok(Some(message)) => self.message(&message, out),
                Ok(None) => return,
                Err(error) => return self.corrupt(error, out),
            }
        }
    }

    /// The body ended: close what is open and finish the message, unless a frame was cut.
    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.done {
            return;
        }
        if self.frames.has_partial_frame() {
            let message = format!(
                "{} ended its response in the middle of an event-stream frame",
                self.provider
            );
            return self.fail(out, message, Failure::upstream(Class::StreamCut));
        }
        self.start(out);
        self.close_open(out);
        if self.done {
            return;
        }
        let stop_reason = if self.called_tools {
            StopReason::ToolUse
        } else {
            StopReason::EndTurn
        };
        let usage = Usage {
            input_tokens: self.context_tokens.unwrap_or(self.estimated_input_tokens),
            output_tokens: self.output_bytes.div_ceil(4),
            ..Usage::default()
        };
        out.push(StreamEvent::MessageDelta { stop_reason, usage });
        out.push(StreamEvent::MessageStop);
        self.done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
