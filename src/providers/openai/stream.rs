//! OpenAI Chat Completions stream (https://platform.openai.com/docs/api-reference/chat-streaming)
//! → Anthropic stream events (https://docs.anthropic.com/en/api/messages-streaming), fed with
//! raw bytes as they arrive.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::anthropic::builder::StreamBuilder;
use crate::anthropic::events::{StopReason, StreamEvent};
use crate::anthropic::sse::SseReader;
use crate::anthropic::{ApiError, ErrorType, Usage};
use crate::failure::{Class, Failure};
use crate::providers::{DataLines, DataReading, WireConverter};

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

/// One upstream tool call as far as it has arrived. OpenAI streams parallel calls
/// interleaved by `index`; Anthropic blocks never interleave, so a call whose block cannot
/// open yet (another call's is open, or its name has not arrived) is held here.
#[derive(Default)]
struct ToolCall {
    id: Option<String>,
    name: Option<String>,
    /// Argument fragments that arrived before the call's block opened.
    held_arguments: String,
    /// The call's block, once opened.
    block: Option<u32>,
}

/// Converts one response. Feed it bytes with [`Converter::feed`], end it with
/// [`Converter::finish`]; both append the resulting events to `out`.
pub struct Converter {
    lines: SseReader,
    chunks: Chunks,
}

/// Maps the `data:` chunks onto the stream builder.
struct Chunks {
    stream: StreamBuilder,
    tools: BTreeMap<u32, ToolCall>,
    finish_reason: Option<StopReason>,
}

impl Converter {
    /// `model` is the model the client asked for (the one its `message_start` names).
    pub fn new(provider: &str, model: &str, estimated_input_tokens: u64) -> Self {
        Converter {
            lines: SseReader::default(),
            chunks: Chunks {
                stream: StreamBuilder::new(provider, model, estimated_input_tokens),
                tools: BTreeMap::new(),
                finish_reason: None,
            },
        }
    }
}

impl Chunks {
    fn reading<'a>(&'a mut self, out: &'a mut Vec<StreamEvent>) -> DataReading<'a, Self> {
        DataReading { lines: self, out }
    }

    fn chunk(&mut self, chunk: Chunk, out: &mut Vec<StreamEvent>) {
        if let Some(error) = chunk.error {
            return self.upstream_error(error, out);
        }
        self.stream.start(out);
        if let Some(usage) = chunk.usage {
            self.stream.report_usage(anthropic_usage(usage));
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

    fn upstream_error(&mut self, error: UpstreamError, out: &mut Vec<StreamEvent>) {
        let kind = error_type_for(error.kind.as_deref());
        let message = error.message.unwrap_or_else(|| "unknown error".into());
        let failure = Failure::of_upstream_status(kind.default_status(), None, &message, false);
        let error = ApiError::new(kind, format!("{}: {message}", self.stream.provider()));
        self.stream.fail(error, failure, out);
    }

    fn delta(&mut self, delta: ChoiceDelta, out: &mut Vec<StreamEvent>) {
        if let Some(reasoning) = delta.reasoning_content.or(delta.reasoning) {
            self.stream.thinking(reasoning, out);
        }
        if let Some(text) = delta.content {
            self.stream.text(text, out);
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
        let (name, arguments) = fragment
            .function
            .map_or((None, None), |f| (f.name, f.arguments));
        if call.name.is_none() {
            call.name = name.filter(|n| !n.is_empty());
        }
        let arguments = arguments.unwrap_or_default();
        match (call.block, self.stream.open_tool()) {
            (Some(block), Some(open)) if block == open => self.stream.tool_input(arguments, out),
            // A call whose block was closed (by text, say) gets no more input.
            (Some(_), _) => {}
            (None, open) => {
                call.held_arguments.push_str(&arguments);
                // A later call waits while another call's block is open.
                if open.is_none() {
                    self.start_tool(index, out);
                }
            }
        }
    }

    /// Opens the block of call `index` once its name is known, and sends what it holds.
    fn start_tool(&mut self, index: u32, out: &mut Vec<StreamEvent>) {
        let Some(call) = self.tools.get_mut(&index) else {
            return;
        };
        if call.block.is_some() {
            return;
        }
        let Some(name) = call.name.clone() else {
            return;
        };
        call.block = self.stream.start_tool(call.id.clone(), name, out);
        let arguments = std::mem::take(&mut call.held_arguments);
        self.stream.tool_input(arguments, out);
    }

    /// Closes the open block, then gives each held tool call its whole block in turn.
    fn close_blocks(&mut self, out: &mut Vec<StreamEvent>) {
        self.stream.close_block(out);
        let held: Vec<u32> = self
            .tools
            .iter()
            .filter(|(_, call)| call.block.is_none())
            .map(|(index, _)| *index)
            .collect();
        for index in held {
            if self.stream.is_done() {
                return;
            }
            if self.tools.get(&index).is_some_and(|c| c.name.is_none()) {
                let message = format!("{} sent a tool call without a name", self.stream.provider());
                return self.fail(message, Failure::upstream(Class::BadResponse), out);
            }
            self.start_tool(index, out);
            self.stream.close_block(out);
        }
    }

    fn complete(&mut self, out: &mut Vec<StreamEvent>) {
        self.stream.start(out);
        self.close_blocks(out);
        let reason = self.finish_reason.unwrap_or(StopReason::EndTurn);
        self.stream.finish(reason, out);
    }

    fn fail(&mut self, message: String, failure: Failure, out: &mut Vec<StreamEvent>) {
        self.stream
            .fail(ApiError::new(ErrorType::Api, message), failure, out);
    }
}

/// OpenAI counts cached tokens inside `prompt_tokens`; Anthropic counts them apart.
fn anthropic_usage(usage: ChunkUsage) -> Usage {
    let cached = usage
        .prompt_tokens_details
        .and_then(|d| d.cached_tokens)
        .unwrap_or(0);
    Usage {
        input_tokens: usage.prompt_tokens.saturating_sub(cached),
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: cached,
        output_tokens: usage.completion_tokens,
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
        self.chunks.stream.is_done()
    }

    /// Takes the next bytes of the body; lines, JSON and UTF-8 may be cut anywhere.
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        self.lines.feed(bytes, &mut self.chunks.reading(out));
    }

    /// The body has ended. A stream that ends before a finish reason was cut short.
    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.is_done() {
            return;
        }
        self.lines.finish(&mut self.chunks.reading(out));
        if self.chunks.finish_reason.is_none() {
            let message = format!(
                "{} ended its response before finishing it",
                self.chunks.stream.provider()
            );
            return self
                .chunks
                .fail(message, Failure::upstream(Class::StreamCut), out);
        }
        self.chunks.complete(out);
    }
}

impl DataLines for Chunks {
    fn data(&mut self, data: &[u8], out: &mut Vec<StreamEvent>) {
        if data == b"[DONE]" {
            self.finish_reason.get_or_insert(StopReason::EndTurn);
            return self.complete(out);
        }
        // One UTF-8 check of the line, then a parse that trusts it: from bytes, serde
        // checked every string (keys included) on its own.
        let parsed = std::str::from_utf8(data)
            .map_err(|_| "it is not UTF-8".to_string())
            .and_then(|line| serde_json::from_str::<Chunk>(line).map_err(|e| e.to_string()));
        match parsed {
            Ok(chunk) => self.chunk(chunk, out),
            Err(error) => {
                let message = format!(
                    "{} sent a stream chunk that is not valid JSON: {error}",
                    self.stream.provider()
                );
                self.fail(message, Failure::upstream(Class::BadResponse), out);
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
    use super::*;
    use crate::anthropic::events::{BlockKind, Delta};
    use crate::anthropic::{CCR_SIGNATURE_PREFIX, Failed};

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

    #[test]
    fn nothing_follows_the_error_of_a_broken_tool_call() {
        // Text after unfinished arguments closes the tool block, whose JSON fails: the
        // stream ends there instead of opening a text block after the error.
        let events = run(
            &[
                r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"A","arguments":"{\"x\":"}}]}}]}"#,
                r#"{"choices":[{"delta":{"content":"more"},"finish_reason":"stop"}]}"#,
                "[DONE]",
            ],
            None,
        );
        assert_eq!(
            names(&events),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "error"
            ]
        );
    }
}
