//! OpenAI Chat Completions stream (https://platform.openai.com/docs/api-reference/chat-streaming)
//! → Anthropic stream events (https://docs.anthropic.com/en/api/messages-streaming), fed with
//! raw bytes as they arrive.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::anthropic::events::{BlockKind, Delta, StopReason, StreamEvent};
use crate::anthropic::{ApiError, CCR_SIGNATURE_PREFIX, ErrorType, Failed, Usage, ids};
use crate::failure::{Class, Failure};
use crate::providers::WireConverter;

/// One `data:` chunk of the upstream stream; unknown fields are ignored.
#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<ChunkUsage>,
    #[serde(default)]
    error: Option<UpstreamError>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<ChoiceDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct ChoiceDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Deserialize)]
struct ToolCallDelta {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct ChunkUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

/// The error object of an OpenAI-compatible API, in a body or a stream chunk.
#[derive(Deserialize)]
pub(crate) struct UpstreamError {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// A `{"error": {...}}` body.
#[derive(Deserialize)]
pub(crate) struct ErrorBody {
    pub error: UpstreamError,
}

/// Which block is open, in Anthropic's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    /// The tool call with this upstream `index`.
    Tool(u32),
}

/// One upstream tool call as far as it has arrived.
#[derive(Default)]
struct ToolCall {
    id: Option<String>,
    name: Option<String>,
    /// All argument fragments so far, to check the joined JSON at the end.
    arguments: String,
    /// How much of `arguments` has been sent to the client.
    sent: usize,
    /// Its block has been opened (calls wait while another call's block is open).
    started: bool,
    finished: bool,
}

/// Converts one response. Feed it bytes with [`Converter::feed`], end it with
/// [`Converter::finish`]; both append the resulting events to `out`.
pub struct Converter {
    provider: String,
    model: String,
    estimated_input_tokens: u64,
    /// Bytes of an SSE line not yet ended by `\n`.
    partial: Vec<u8>,
    started: bool,
    open: Option<Open>,
    next_index: u32,
    tools: BTreeMap<u32, ToolCall>,
    finish_reason: Option<StopReason>,
    usage: Option<Usage>,
    /// Output bytes seen, for an output estimate when the upstream reports no usage.
    output_bytes: u64,
    done: bool,
}

impl Converter {
    /// `model` is the model the client asked for (the one its `message_start` names).
    pub fn new(provider: &str, model: &str, estimated_input_tokens: u64) -> Self {
        Converter {
            provider: provider.to_string(),
            model: model.to_string(),
            estimated_input_tokens,
            partial: Vec::new(),
            started: false,
            open: None,
            next_index: 0,
            tools: BTreeMap::new(),
            finish_reason: None,
            usage: None,
            output_bytes: 0,
            done: false,
        }
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<StreamEvent>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else {
            // `event:` names, `: keep-alive` comments and blank separators carry nothing.
            return;
        };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        if data == b"[DONE]" {
            if self.finish_reason.is_none() {
                self.finish_reason = Some(StopReason::EndTurn);
            }
            self.complete(out);
            return;
        }
        match serde_json::from_slice::<Chunk>(data) {
            Ok(chunk) => self.chunk(chunk, out),
            Err(error) => self.fail(
                out,
                ErrorType::Api,
                format!(
                    "{} sent a stream chunk that is not valid JSON: {error}",
                    self.provider
                ),
                Failure::upstream(Class::BadResponse),
            ),
        }
    }

    fn chunk(&mut self, chunk: Chunk, out: &mut Vec<StreamEvent>) {
        if let Some(error) = chunk.error {
            let kind = error_type_for(error.kind.as_deref());
            let message = error.message.unwrap_or_else(|| "unknown error".into());
            let failure = Failure::of_upstream_status(kind.default_status(), None, &message, false);
            self.fail(out, kind, format!("{}: {message}", self.provider), failure);
            return;
        }
        self.start(out);
        if let Some(usage) = chunk.usage {
            let cached = usage
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0);
            self.usage = Some(Usage {
                input_tokens: usage.prompt_tokens.saturating_sub(cached),
                cache_creation_input_tokens: 0,
                cache_read_input_tokens: cached,
                output_tokens: usage.completion_tokens,
            });
        }
        for choice in chunk.choices {
            if let Some(delta) = choice.delta {
                self.delta(delta, out);
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(stop_reason_for(&reason));
                self.close_blocks(out);
            }
        }
    }

    fn delta(&mut self, delta: ChoiceDelta, out: &mut Vec<StreamEvent>) {
        if let Some(reasoning) = delta
            .reasoning_content
            .or(delta.reasoning)
            .filter(|r| !r.is_empty())
        {
            self.ensure_open(Open::Thinking, out);
            self.emit_delta(Delta::Thinking(reasoning), out);
        }
        if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
            self.ensure_open(Open::Text, out);
            self.emit_delta(Delta::Text(text), out);
        }
        for (position, call) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
            self.tool_fragment(position as u32, call, out);
        }
    }

    fn tool_fragment(
        &mut self,
        position: u32,
        fragment: ToolCallDelta,
        out: &mut Vec<StreamEvent>,
    ) {
        let index = fragment.index.unwrap_or(position);
        let call = self.tools.entry(index).or_default();
        if call.id.is_none() {
            call.id = fragment.id.filter(|id| !id.is_empty());
        }
        if let Some(function) = fragment.function {
            if call.name.is_none() {
                call.name = function.name.filter(|n| !n.is_empty());
            }
            if let Some(arguments) = function.arguments {
                call.arguments.push_str(&arguments);
            }
        }
        match self.open {
            Some(Open::Tool(open)) if open == index => self.flush_tool_arguments(index, out),
            // Anthropic blocks never interleave: a later call waits for the open one.
            Some(Open::Tool(_)) => {}
            _ => self.start_tool(index, out),
        }
    }

    /// Opens the block of call `index` once its name is known, and sends what it has.
    fn start_tool(&mut self, index: u32, out: &mut Vec<StreamEvent>) {
        let Some(call) = self.tools.get(&index) else {
            return;
        };
        if call.started || call.finished {
            return;
        }
        let Some(name) = call.name.clone() else {
            return;
        };
        let id = call.id.clone().unwrap_or_else(ids::tool_use_id);
        self.close_open(out);
        let block = self.next_index;
        self.next_index += 1;
        out.push(StreamEvent::BlockStart {
            index: block,
            block: BlockKind::ToolUse { id, name },
        });
        self.open = Some(Open::Tool(index));
        if let Some(call) = self.tools.get_mut(&index) {
            call.started = true;
        }
        self.flush_tool_arguments(index, out);
    }

    fn flush_tool_arguments(&mut self, index: u32, out: &mut Vec<StreamEvent>) {
        let Some(call) = self.tools.get_mut(&index) else {
            return;
        };
        if call.sent < call.arguments.len() {
            let fragment = call.arguments[call.sent..].to_string();
            call.sent = call.arguments.len();
            self.output_bytes += fragment.len() as u64;
            out.push(StreamEvent::Delta {
                index: self.next_index - 1,
                delta: Delta::InputJson(fragment),
            });
        }
    }

    /// Closes the open tool block, checking that its arguments joined into valid JSON.
    fn close_tool(&mut self, index: u32, out: &mut Vec<StreamEvent>) -> Result<(), ApiError> {
        let block = self.next_index - 1;
        let Some(call) = self.tools.get_mut(&index) else {
            return Ok(());
        };
        call.finished = true;
        if call.arguments.trim().is_empty() {
            // No arguments at all means an empty input.
            call.arguments = "{}".into();
            call.sent = 2;
            out.push(StreamEvent::Delta {
                index: block,
                delta: Delta::InputJson("{}".into()),
            });
        } else if serde_json::from_str::<serde::de::IgnoredAny>(&call.arguments).is_err() {
            let name = call.name.clone().unwrap_or_default();
            return Err(ApiError::new(
                ErrorType::Api,
                format!(
                    "{} sent arguments for tool `{name}` that are not valid JSON",
                    self.provider
                ),
            ));
        }
        out.push(StreamEvent::BlockStop { index: block });
        Ok(())
    }

    fn ensure_open(&mut self, wanted: Open, out: &mut Vec<StreamEvent>) {
        if self.open == Some(wanted) {
            return;
        }
        self.close_open(out);
        let kind = match wanted {
            Open::Text => BlockKind::Text,
            Open::Thinking => BlockKind::Thinking,
            Open::Tool(_) => unreachable!("tool blocks open through start_tool"),
        };
        out.push(StreamEvent::BlockStart {
            index: self.next_index,
            block: kind,
        });
        self.next_index += 1;
        self.open = Some(wanted);
    }

    fn emit_delta(&mut self, delta: Delta, out: &mut Vec<StreamEvent>) {
        if let Delta::Text(t) | Delta::Thinking(t) = &delta {
            self.output_bytes += t.len() as u64;
        }
        out.push(StreamEvent::Delta {
            index: self.next_index - 1,
            delta,
        });
    }

    /// Closes whatever block is open. A thinking block gets ccr's signature first, since
    /// Claude Code drops a thinking block that has none.
    fn close_open(&mut self, out: &mut Vec<StreamEvent>) {
        let Some(open) = self.open.take() else { return };
        let index = self.next_index - 1;
        match open {
            Open::Thinking => {
                let signature = format!("{CCR_SIGNATURE_PREFIX}{}", ids::message_id());
                out.push(StreamEvent::Delta {
                    index,
                    delta: Delta::Signature(signature),
                });
                out.push(StreamEvent::BlockStop { index });
            }
            Open::Text => out.push(StreamEvent::BlockStop { index }),
            Open::Tool(call) => {
                if let Err(error) = self.close_tool(call, out) {
                    self.done = true;
                    let failure = Failure::upstream(Class::BadResponse);
                    out.push(StreamEvent::Error(Failed { error, failure }));
                }
            }
        }
    }

    /// Closes the open block, then gives each held tool call its whole block in turn.
    fn close_blocks(&mut self, out: &mut Vec<StreamEvent>) {
        self.close_open(out);
        let waiting: Vec<u32> = self
            .tools
            .iter()
            .filter(|(_, c)| !c.started)
            .map(|(i, _)| *i)
            .collect();
        for index in waiting {
            if self.done {
                return;
            }
            if self.tools.get(&index).is_some_and(|c| c.name.is_none()) {
                self.fail(
                    out,
                    ErrorType::Api,
                    format!("{} sent a tool call without a name", self.provider),
                    Failure::upstream(Class::BadResponse),
                );
                return;
            }
            self.start_tool(index, out);
            self.close_open(out);
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

    fn complete(&mut self, out: &mut Vec<StreamEvent>) {
        self.start(out);
        self.close_blocks(out);
        if self.done {
            return;
        }
        let called_tools = self.tools.values().any(|c| c.started);
        let stop_reason = match self.finish_reason.unwrap_or(StopReason::EndTurn) {
            // Some providers say `stop` after tool calls; clients key their loop on tool_use.
            StopReason::EndTurn if called_tools => StopReason::ToolUse,
            reason => reason,
        };
        let usage = self.usage.unwrap_or(Usage {
            input_tokens: self.estimated_input_tokens,
            output_tokens: self.output_bytes.div_ceil(4),
            ..Usage::default()
        });
        out.push(StreamEvent::MessageDelta { stop_reason, usage });
        out.push(StreamEvent::MessageStop);
        self.done = true;
    }

    fn fail(
        &mut self,
        out: &mut Vec<StreamEvent>,
        kind: ErrorType,
        message: String,
        failure: Failure,
    ) {
        self.done = true;
        let error = ApiError::new(kind, message);
        out.push(StreamEvent::Error(Failed { error, failure }));
    }
}

fn stop_reason_for(finish_reason: &str) -> StopReason {
    match finish_reason {
        "length" => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "content_filter" => StopReason::Refusal,
        _ => StopReason::EndTurn,
    }
}

/// The Anthropic error type for an OpenAI-style error `type` seen mid-stream.
fn error_type_for(kind: Option<&str>) -> ErrorType {
    match kind.unwrap_or_default() {
        k if k.contains("rate_limit") => ErrorType::RateLimit,
        k if k.contains("invalid_request") => ErrorType::InvalidRequest,
        k if k.contains("auth") => ErrorType::Authentication,
        k if k.contains("overloaded") || k.contains("capacity") => ErrorType::Overloaded,
        _ => ErrorType::Api,
    }
}

impl WireConverter for Converter {
    /// True once the response has ended (`message_stop` or an `error` was emitted).
    fn is_done(&self) -> bool {
        self.done
    }

    /// Takes the next bytes of the body; lines, JSON and UTF-8 may be cut anywhere.
    fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<StreamEvent>) {
        while !self.done {
            let Some(newline) = bytes.iter().position(|&b| b == b'\n') else {
                self.partial.extend_from_slice(bytes);
                return;
            };
            if self.partial.is_empty() {
                self.line(&bytes[..newline], out);
            } else {
                self.partial.extend_from_slice(&bytes[..newline]);
                let line = std::mem::take(&mut self.partial);
                self.line(&line, out);
                self.partial = line;
                self.partial.clear();
            }
            bytes = &bytes[newline + 1..];
        }
    }

    /// The body has ended. A stream that ends before a finish reason was cut short.
    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.done {
            return;
        }
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&line, out);
            if self.done {
                return;
            }
        }
        if self.finish_reason.is_none() {
            self.fail(
                out,
                ErrorType::Api,
                format!("{} ended its response before finishing it", self.provider),
                Failure::upstream(Class::StreamCut),
            );
            return;
        }
        self.complete(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &[&str], split_every: Option<usize>) -> Vec<StreamEvent> {
        let mut text = String::new();
        for line in lines {
            text.push_str("data: ");
            text.push_str(line);
            text.push_str("\n\n");
        }
        let mut converter = Converter::new("up", "claude-x", 100);
        let mut out = Vec::new();
        match split_every {
            Some(n) => text
                .as_bytes()
                .chunks(n)
                .for_each(|c| converter.feed(c, &mut out)),
            None => converter.feed(text.as_bytes(), &mut out),
        }
        converter.finish(&mut out);
        out
    }

    fn names(events: &[StreamEvent]) -> Vec<&'static str> {
        events.iter().map(StreamEvent::name).collect()
    }

    #[test]
    fn text_stream_with_usage_and_cached_tokens() {
        let events = run(
            &[
                r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#,
                r#"{"choices":[{"delta":{"content":"hé"}}]}"#,
                r#"{"choices":[{"delta":{"content":"llo"},"finish_reason":"stop"}]}"#,
                r#"{"choices":[],"usage":{"prompt_tokens":50,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":20}}}"#,
                "[DONE]",
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
        let StreamEvent::MessageDelta { stop_reason, usage } = &events[5] else {
            panic!()
        };
        assert_eq!(*stop_reason, StopReason::EndTurn);
        assert_eq!(
            (
                usage.input_tokens,
                usage.cache_read_input_tokens,
                usage.output_tokens
            ),
            (30, 20, 3)
        );
        let StreamEvent::MessageStart { usage, model, .. } = &events[0] else {
            panic!()
        };
        assert_eq!((usage.input_tokens, model.as_str()), (100, "claude-x"));
    }

    #[test]
    fn reasoning_gets_a_signed_thinking_block() {
        let events = run(
            &[
                r#"{"choices":[{"delta":{"reasoning_content":"think"}}]}"#,
                r#"{"choices":[{"delta":{"content":"answer"},"finish_reason":"stop"}]}"#,
                "[DONE]",
            ],
            None,
        );
        let signature = events.iter().find_map(|e| match e {
            StreamEvent::Delta {
                index: 0,
                delta: Delta::Signature(s),
            } => Some(s.clone()),
            _ => None,
        });
        assert!(signature.unwrap().starts_with(CCR_SIGNATURE_PREFIX));
        assert!(matches!(events[4], StreamEvent::BlockStop { index: 0 }));
        assert!(matches!(
            events[5],
            StreamEvent::BlockStart {
                index: 1,
                block: BlockKind::Text
            }
        ));
    }

    #[test]
    fn interleaved_tool_calls_are_serialized_and_stop_becomes_tool_use() {
        let events = run(
            &[
                r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_a","function":{"name":"A","arguments":"{\"x\""}}]}}]}"#,
                r#"{"choices":[{"delta":{"tool_calls":[{"index":1,"id":"call_b","function":{"name":"B","arguments":""}}]}}]}"#,
                r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]}"#,
                r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#,
                "[DONE]",
            ],
            Some(7),
        );
        let starts: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::BlockStart {
                    index,
                    block: BlockKind::ToolUse { id, .. },
                } => Some((*index, id.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            starts,
            [(0, "call_a".to_string()), (1, "call_b".to_string())]
        );
        let json_for = |block: u32| -> String {
            events
                .iter()
                .filter_map(|e| match e {
                    StreamEvent::Delta {
                        index,
                        delta: Delta::InputJson(j),
                    } if *index == block => Some(j.as_str()),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(json_for(0), "{\"x\":1}");
        assert_eq!(json_for(1), "{}");
        let StreamEvent::MessageDelta { stop_reason, .. } = &events[events.len() - 2] else {
            panic!()
        };
        assert_eq!(*stop_reason, StopReason::ToolUse);
    }

    #[test]
    fn errors_and_cuts_end_with_an_error_event() {
        let events = run(
            &[
                r#"{"choices":[{"delta":{"content":"a"}}]}"#,
                r#"{"error":{"message":"quota","type":"rate_limit_exceeded"}}"#,
            ],
            None,
        );
        let StreamEvent::Error(Failed { error, .. }) = events.last().unwrap() else {
            panic!()
        };
        assert_eq!(error.kind, ErrorType::RateLimit);
        assert_eq!(error.message, "up: quota");

        let events = run(&[r#"{"choices":[{"delta":{"content":"a"}}]}"#], None);
        let StreamEvent::Error(Failed { error, .. }) = events.last().unwrap() else {
            panic!()
        };
        assert!(
            error
                .message
                .contains("ended its response before finishing it")
        );

        let events = run(
            &[
                r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"A","arguments":"{\"x\":"}}]},"finish_reason":"tool_calls"}]}"#,
                "[DONE]",
            ],
            None,
        );
        let StreamEvent::Error(Failed { error, .. }) = events.last().unwrap() else {
            panic!()
        };
        assert!(
            error.message.contains("not valid JSON"),
            "{}",
            error.message
        );
    }
}
