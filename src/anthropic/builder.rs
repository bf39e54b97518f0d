//! The Anthropic stream grammar (https://docs.anthropic.com/en/api/messages-streaming) for
//! every converting provider. A converter maps its upstream's wire events onto these calls;
//! the builder numbers the blocks, opens and closes them one at a time, signs thinking,
//! checks tool input, fixes the stop reason, fills in usage and ends the stream exactly once.
//!
//! Every call appends the events it makes to `out`. Once the stream has ended
//! (`message_stop` or an `error` event) every call is a no-op, so a converter never has to
//! ask whether it may still write.

use super::events::{BlockKind, Delta, StopReason, StreamEvent};
use super::{ApiError, CCR_SIGNATURE_PREFIX, ErrorType, Failed, Usage, ids};
use crate::failure::{Class, Failure};

/// The message a client gets when a tool call's input does not join into valid JSON, from
/// the provider's and the tool's names. Upstreams break tool input for their own reasons,
/// so a converter may say what usually causes it.
pub type InvalidToolInput = fn(provider: &str, tool: &str) -> String;

fn invalid_arguments(provider: &str, tool: &str) -> String {
    format!("{provider} sent arguments for tool `{tool}` that are not valid JSON")
}

/// The block that is open; Anthropic blocks never interleave, so there is at most one.
enum Open {
    Text,
    Thinking,
    /// A tool call, with its input as far as it has arrived, checked when the block closes.
    Tool {
        name: String,
        input: String,
    },
}

/// Builds one Anthropic response stream.
pub struct StreamBuilder {
    provider: String,
    model: String,
    estimated_input_tokens: u64,
    invalid_tool_input: InvalidToolInput,
    started: bool,
    open: Option<Open>,
    /// Index of the next block to open.
    next_index: u32,
    called_tools: bool,
    reported_usage: Option<Usage>,
    reported_input_tokens: Option<u64>,
    /// Bytes of text, thinking and tool input the upstream sent, for an output estimate
    /// when it reports no usage.
    output_bytes: u64,
    done: bool,
}

impl StreamBuilder {
    /// `provider` names the upstream in error messages; `model` is the model the client
    /// asked for, which its `message_start` names.
    pub fn new(provider: &str, model: &str, estimated_input_tokens: u64) -> Self {
        StreamBuilder {
            provider: provider.to_string(),
            model: model.to_string(),
            estimated_input_tokens,
            invalid_tool_input: invalid_arguments,
            started: false,
            open: None,
            next_index: 0,
            called_tools: false,
            reported_usage: None,
            reported_input_tokens: None,
            output_bytes: 0,
            done: false,
        }
    }

    /// Replaces the message told when a tool's input is not valid JSON.
    pub fn explaining_invalid_tool_input(mut self, message: InvalidToolInput) -> Self {
        self.invalid_tool_input = message;
        self
    }

    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// True once the stream has ended with `message_stop` or an `error` event.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Sends `message_start` unless it went out already. Every block starts the message
    /// itself; a converter calls this only to start on an upstream event that carries no
    /// content.
    pub fn start(&mut self, out: &mut Vec<StreamEvent>) {
        if self.started || self.done {
            return;
        }
        self.started = true;
        out.push(StreamEvent::message_start(
            &self.model,
            self.estimated_input_tokens,
        ));
    }

    /// Appends text, in the open text block or a new one. Empty text sends nothing.
    pub fn text(&mut self, text: String, out: &mut Vec<StreamEvent>) {
        if text.is_empty() || !self.ensure_open(Open::Text, out) {
            return;
        }
        self.content_delta(Delta::Text(text), out);
    }

    /// Appends reasoning, in the open thinking block or a new one. Empty reasoning sends
    /// nothing.
    pub fn thinking(&mut self, thinking: String, out: &mut Vec<StreamEvent>) {
        if thinking.is_empty() || !self.ensure_open(Open::Thinking, out) {
            return;
        }
        self.content_delta(Delta::Thinking(thinking), out);
    }

    /// Opens a tool_use block, closing the open block first. Without an upstream id the
    /// call gets one of ccr's. Returns the new block's index, or `None` if the stream has
    /// ended (closing the previous block can end it).
    pub fn start_tool(
        &mut self,
        id: Option<String>,
        name: String,
        out: &mut Vec<StreamEvent>,
    ) -> Option<u32> {
        self.start(out);
        self.close_block(out);
        if self.done {
            return None;
        }
        let id = id.unwrap_or_else(ids::tool_use_id);
        let block = BlockKind::ToolUse {
            id,
            name: name.clone(),
        };
        let index = self.open_block(
            block,
            Open::Tool {
                name,
                input: String::new(),
            },
            out,
        );
        self.called_tools = true;
        Some(index)
    }

    /// The index of the open block if it is a tool call.
    pub fn open_tool(&self) -> Option<u32> {
        match self.open {
            Some(Open::Tool { .. }) => Some(self.open_index()),
            _ => None,
        }
    }

    /// Appends a fragment of the open tool call's input JSON; fragments may cut the JSON
    /// anywhere. Without an open tool block, or empty, it sends nothing.
    pub fn tool_input(&mut self, fragment: String, out: &mut Vec<StreamEvent>) {
        if fragment.is_empty() || self.done {
            return;
        }
        let Some(Open::Tool { input, .. }) = &mut self.open else {
            return;
        };
        input.push_str(&fragment);
        self.content_delta(Delta::InputJson(fragment), out);
    }

    /// Closes the open block, if any. A thinking block gets ccr's signature first, since
    /// Claude Code drops a thinking block that has none. A tool block's joined input must
    /// be valid JSON (none at all is `{}`), else the stream ends with an error rather than
    /// hand broken JSON to the client.
    pub fn close_block(&mut self, out: &mut Vec<StreamEvent>) {
        let Some(open) = self.open.take() else {
            return;
        };
        let index = self.open_index();
        match open {
            Open::Text => {}
            Open::Thinking => out.push(StreamEvent::Delta {
                index,
                delta: Delta::Signature(ccr_signature()),
            }),
            Open::Tool { input, .. } if input.trim().is_empty() => out.push(StreamEvent::Delta {
                index,
                delta: Delta::InputJson("{}".into()),
            }),
            Open::Tool { name, input } => {
                // Anthropic's `input` is an object: valid JSON of another kind is refused too.
                let object = input.trim_start().starts_with('{');
                if !object || serde_json::from_str::<serde::de::IgnoredAny>(&input).is_err() {
                    let message = (self.invalid_tool_input)(&self.provider, &name);
                    let error = ApiError::new(ErrorType::Api, message);
                    return self.fail(error, Failure::upstream(Class::BadResponse), out);
                }
            }
        }
        out.push(StreamEvent::BlockStop { index });
    }

    /// The upstream's own usage figures; they replace ccr's estimates.
    pub fn report_usage(&mut self, usage: Usage) {
        self.reported_usage = Some(usage);
    }

    /// The upstream told only its input size; output is still estimated.
    pub fn report_input_tokens(&mut self, input_tokens: u64) {
        self.reported_input_tokens = Some(input_tokens);
    }

    /// Credits the upstream charged, for the request's record.
    pub fn metering(&mut self, credits: f64, out: &mut Vec<StreamEvent>) {
        if !self.done {
            out.push(StreamEvent::Metering { credits });
        }
    }

    /// Ends the message: closes the open block, then `message_delta` and `message_stop`.
    /// A turn that called tools stops with `tool_use` even when the upstream said it
    /// ended its turn, since clients run their tool loop on `tool_use`.
    pub fn finish(&mut self, stop_reason: StopReason, out: &mut Vec<StreamEvent>) {
        self.start(out);
        self.close_block(out);
        if self.done {
            return;
        }
        let stop_reason = match stop_reason {
            StopReason::EndTurn if self.called_tools => StopReason::ToolUse,
            reason => reason,
        };
        let usage = self.usage();
        out.push(StreamEvent::MessageDelta { stop_reason, usage });
        out.push(StreamEvent::MessageStop);
        self.done = true;
    }

    /// Ends the stream with an `error` event, whatever is open.
    pub fn fail(&mut self, error: ApiError, failure: Failure, out: &mut Vec<StreamEvent>) {
        if self.done {
            return;
        }
        self.done = true;
        self.open = None;
        out.push(StreamEvent::Error(Failed { error, failure }));
    }

    /// What the upstream reported, else ccr's input estimate and about four bytes a token
    /// of what it sent.
    fn usage(&self) -> Usage {
        self.reported_usage.unwrap_or(Usage {
            input_tokens: self
                .reported_input_tokens
                .unwrap_or(self.estimated_input_tokens),
            output_tokens: self.output_bytes.div_ceil(4),
            ..Usage::default()
        })
    }

    /// Opens a text or thinking block unless one of that kind is open, closing another
    /// first. False when the stream has ended.
    fn ensure_open(&mut self, wanted: Open, out: &mut Vec<StreamEvent>) -> bool {
        if self.done {
            return false;
        }
        let same_kind =
            |open: &Open| std::mem::discriminant(open) == std::mem::discriminant(&wanted);
        if self.open.as_ref().is_some_and(same_kind) {
            return true;
        }
        self.start(out);
        self.close_block(out);
        if self.done {
            return false;
        }
        let kind = match wanted {
            Open::Thinking => BlockKind::Thinking,
            _ => BlockKind::Text,
        };
        self.open_block(kind, wanted, out);
        true
    }

    fn open_block(&mut self, kind: BlockKind, open: Open, out: &mut Vec<StreamEvent>) -> u32 {
        let index = self.next_index;
        out.push(StreamEvent::BlockStart { index, block: kind });
        self.next_index += 1;
        self.open = Some(open);
        index
    }

    /// A delta of the open block, counted towards the output estimate.
    fn content_delta(&mut self, delta: Delta, out: &mut Vec<StreamEvent>) {
        if let Delta::Text(t) | Delta::Thinking(t) | Delta::InputJson(t) = &delta {
            self.output_bytes += t.len() as u64;
        }
        out.push(StreamEvent::Delta {
            index: self.open_index(),
            delta,
        });
    }

    /// The index of the open (or just closed) block: always the last one opened.
    fn open_index(&self) -> u32 {
        self.next_index.saturating_sub(1)
    }
}

/// ccr's signature on a thinking block it built: never Anthropic's, so it can be told apart
/// (and removed) if the history goes to Anthropic later.
fn ccr_signature() -> String {
    format!("{CCR_SIGNATURE_PREFIX}{}", ids::message_id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> StreamBuilder {
        StreamBuilder::new("up", "claude-x", 100)
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

    fn delta(index: u32, delta: Delta) -> StreamEvent {
        StreamEvent::Delta { index, delta }
    }

    #[test]
    fn text_starts_the_message_lazily_and_shares_one_block() {
        let mut stream = builder();
        let mut out = Vec::new();
        stream.text(String::new(), &mut out);
        assert!(
            out.is_empty(),
            "empty text sends nothing, not even message_start"
        );
        stream.text("hé".into(), &mut out);
        stream.text("llo".into(), &mut out);
        stream.finish(StopReason::EndTurn, &mut out);
        assert_eq!(
            names(&out),
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
        let StreamEvent::MessageStart { model, usage, .. } = &out[0] else {
            panic!()
        };
        assert_eq!((model.as_str(), usage.input_tokens), ("claude-x", 100));
        assert_eq!(out[2], delta(0, Delta::Text("hé".into())));
        assert!(stream.is_done());
        stream.text("late".into(), &mut out);
        assert_eq!(out.len(), 7, "nothing after message_stop");
    }

    #[test]
    fn thinking_is_signed_by_ccr_when_it_closes() {
        let mut stream = builder();
        let mut out = Vec::new();
        stream.thinking("hm".into(), &mut out);
        stream.text("answer".into(), &mut out);
        stream.finish(StopReason::EndTurn, &mut out);
        assert_eq!(
            out[1],
            StreamEvent::BlockStart {
                index: 0,
                block: BlockKind::Thinking
            }
        );
        let StreamEvent::Delta {
            index: 0,
            delta: Delta::Signature(signature),
        } = &out[3]
        else {
            panic!("{:?}", out[3])
        };
        assert!(signature.starts_with(CCR_SIGNATURE_PREFIX), "{signature}");
        assert_eq!(out[4], StreamEvent::BlockStop { index: 0 });
        assert_eq!(
            out[5],
            StreamEvent::BlockStart {
                index: 1,
                block: BlockKind::Text
            }
        );
    }

    #[test]
    fn two_tools_in_one_turn_get_their_own_blocks_in_turn() {
        let mut stream = builder();
        let mut out = Vec::new();
        stream.text("Reading.".into(), &mut out);
        let first = stream.start_tool(Some("call_a".into()), "Read".into(), &mut out);
        stream.tool_input("{\"path\"".into(), &mut out);
        stream.tool_input(":\"/a\"}".into(), &mut out);
        assert_eq!(stream.open_tool(), first);
        let second = stream.start_tool(None, "Glob".into(), &mut out);
        assert_eq!((first, second), (Some(1), Some(2)));
        stream.finish(StopReason::ToolUse, &mut out);

        let tools: Vec<(u32, &str, &str)> = out
            .iter()
            .filter_map(|e| match e {
                StreamEvent::BlockStart {
                    index,
                    block: BlockKind::ToolUse { id, name },
                } => Some((*index, id.as_str(), name.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(tools[0], (1, "call_a", "Read"));
        assert!(tools[1].1.starts_with("toolu_"), "ccr makes a missing id");
        assert_eq!(out[0].name(), "message_start");
        assert_eq!(out[3], StreamEvent::BlockStop { index: 0 });
        assert_eq!(out[6], delta(1, Delta::InputJson(":\"/a\"}".into())));
        assert_eq!(out[7], StreamEvent::BlockStop { index: 1 });
        assert_eq!(
            out[9],
            delta(2, Delta::InputJson("{}".into())),
            "no input is an empty object"
        );
        assert_eq!(out[10], StreamEvent::BlockStop { index: 2 });
        assert_eq!(message_delta(&out).0, StopReason::ToolUse);
        assert_eq!(out.len(), 13);
    }

    #[test]
    fn tool_input_that_is_not_json_ends_the_stream_with_a_bad_response() {
        let mut stream = builder();
        let mut out = Vec::new();
        stream.start_tool(Some("t".into()), "Write".into(), &mut out);
        stream.tool_input("{\"content\":\"cut".into(), &mut out);
        stream.text("after".into(), &mut out);
        let StreamEvent::Error(Failed { error, failure }) = out.last().unwrap() else {
            panic!("{out:?}")
        };
        assert_eq!(
            error.message,
            "up sent arguments for tool `Write` that are not valid JSON"
        );
        assert_eq!(error.kind, ErrorType::Api);
        assert_eq!(*failure, Failure::upstream(Class::BadResponse));
        let failure = *failure;
        assert!(stream.is_done());
        let before = out.len();
        stream.finish(StopReason::EndTurn, &mut out);
        stream.fail(ApiError::new(ErrorType::Api, "again"), failure, &mut out);
        assert_eq!(
            out.len(),
            before,
            "one error ends the stream, nothing follows"
        );

        let mut stream = builder().explaining_invalid_tool_input(|p, t| format!("{p}/{t}"));
        let mut out = Vec::new();
        stream.start_tool(None, "Edit".into(), &mut out);
        stream.tool_input("[".into(), &mut out);
        stream.close_block(&mut out);
        assert!(matches!(out.last(), Some(StreamEvent::Error(e)) if e.error.message == "up/Edit"));
    }

    #[test]
    fn end_turn_after_tool_calls_becomes_tool_use() {
        let mut stream = builder();
        let mut out = Vec::new();
        stream.start_tool(Some("c".into()), "A".into(), &mut out);
        stream.tool_input("{}".into(), &mut out);
        stream.finish(StopReason::EndTurn, &mut out);
        assert_eq!(message_delta(&out).0, StopReason::ToolUse);

        let mut stream = builder();
        let mut out = Vec::new();
        stream.start_tool(Some("c".into()), "A".into(), &mut out);
        stream.finish(StopReason::MaxTokens, &mut out);
        assert_eq!(
            message_delta(&out).0,
            StopReason::MaxTokens,
            "only end_turn changes"
        );

        let mut stream = builder();
        let mut out = Vec::new();
        stream.text("no tools".into(), &mut out);
        stream.finish(StopReason::EndTurn, &mut out);
        assert_eq!(message_delta(&out).0, StopReason::EndTurn);
    }

    #[test]
    fn usage_falls_back_to_estimates_unless_the_upstream_reports_it() {
        // 9 bytes of text, 2 of thinking and 3 of tool input: 14 bytes, about 4 tokens.
        let send = |stream: &mut StreamBuilder, out: &mut Vec<StreamEvent>| {
            stream.thinking("hm".into(), out);
            stream.text("hello wor".into(), out);
            stream.start_tool(None, "A".into(), out);
            stream.tool_input("{ }".into(), out);
            stream.finish(StopReason::ToolUse, out);
        };
        let mut stream = builder();
        let mut out = Vec::new();
        send(&mut stream, &mut out);
        let usage = message_delta(&out).1;
        assert_eq!((usage.input_tokens, usage.output_tokens), (100, 4));

        let mut stream = builder();
        stream.report_input_tokens(3000);
        let mut out = Vec::new();
        send(&mut stream, &mut out);
        let usage = message_delta(&out).1;
        assert_eq!((usage.input_tokens, usage.output_tokens), (3000, 4));

        let reported = Usage {
            input_tokens: 30,
            cache_read_input_tokens: 20,
            output_tokens: 3,
            ..Usage::default()
        };
        let mut stream = builder();
        stream.report_input_tokens(3000);
        stream.report_usage(reported);
        let mut out = Vec::new();
        send(&mut stream, &mut out);
        assert_eq!(message_delta(&out).1, reported);
    }

    #[test]
    fn finishing_an_empty_stream_still_makes_a_whole_message() {
        let mut stream = builder();
        let mut out = Vec::new();
        stream.finish(StopReason::EndTurn, &mut out);
        assert_eq!(
            names(&out),
            ["message_start", "message_delta", "message_stop"]
        );
        assert_eq!(message_delta(&out).1.output_tokens, 0);
    }
}

#[cfg(test)]
mod object_input_tests {
    use super::*;

    #[test]
    fn tool_input_that_is_not_an_object_ends_the_stream() {
        let mut builder = StreamBuilder::new("up", "m", 1);
        let mut out = Vec::new();
        builder.start_tool(Some("t1".into()), "Read".into(), &mut out);
        builder.tool_input("[1,2]".into(), &mut out);
        builder.finish(StopReason::ToolUse, &mut out);
        assert!(
            matches!(out.last(), Some(StreamEvent::Error(e)) if e.failure.class == Class::BadResponse),
            "{out:?}"
        );
    }
}
