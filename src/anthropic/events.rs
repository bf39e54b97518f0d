//! The one event model every converting provider produces: Anthropic stream events as Rust
//! values, the SSE writer that puts them on the wire, and the fold that turns a whole stream
//! into a non-streaming `message`.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde_json::value::RawValue;

use super::{ApiError, ErrorType, Failed, Usage};
use crate::failure::{Class, Failure};

#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    MessageStart {
        id: String,
        model: String,
        usage: Usage,
    },
    BlockStart {
        index: u32,
        block: BlockKind,
    },
    Delta {
        index: u32,
        delta: Delta,
    },
    BlockStop {
        index: u32,
    },
    MessageDelta {
        stop_reason: StopReason,
        usage: Usage,
    },
    MessageStop,
    Ping,
    /// The upstream's own error, told to the client as an `error` event; the stream ends.
    Error(Failed),
    /// Credits the upstream charged (CodeWhisperer's metering). Kept for the request's
    /// record; never written to the client.
    Metering {
        credits: f64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockKind {
    Text,
    Thinking,
    ToolUse { id: String, name: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta {
    Text(String),
    Thinking(String),
    Signature(String),
    InputJson(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    StopSequence,
    ToolUse,
    PauseTurn,
    Refusal,
}

impl StreamEvent {
    /// The `message_start` of a message ccr assembles: a fresh id, the model the client
    /// asked for, and ccr's input estimate until the upstream reports its usage.
    pub fn message_start(model: &str, estimated_input_tokens: u64) -> StreamEvent {
        StreamEvent::MessageStart {
            id: super::ids::message_id(),
            model: model.to_string(),
            usage: Usage {
                input_tokens: estimated_input_tokens,
                output_tokens: 1,
                ..Usage::default()
            },
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::BlockStart { .. } => "content_block_start",
            StreamEvent::Delta { .. } => "content_block_delta",
            StreamEvent::BlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Ping => "ping",
            StreamEvent::Error(_) => "error",
            StreamEvent::Metering { .. } => "metering",
        }
    }
}

// Wire shapes, borrowed from the events, with fields in the API's order.

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireEvent<'a> {
    MessageStart {
        message: WireMessage<'a>,
    },
    ContentBlockStart {
        index: u32,
        content_block: WireBlockStart<'a>,
    },
    ContentBlockDelta {
        index: u32,
        delta: WireDelta<'a>,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: WireMessageDelta,
        usage: &'a Usage,
    },
    MessageStop,
    Ping,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    id: &'a str,
    r#type: &'static str,
    role: &'static str,
    model: &'a str,
    content: &'a [WireBlock<'a>],
    stop_reason: Option<StopReason>,
    stop_sequence: Option<&'a str>,
    usage: &'a Usage,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlockStart<'a> {
    Text {
        text: &'static str,
    },
    Thinking {
        thinking: &'static str,
        signature: &'static str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: EmptyObject,
    },
}

#[derive(Serialize)]
struct EmptyObject {}

#[derive(Serialize)]
#[serde(tag = "type")]
enum WireDelta<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

#[derive(Serialize)]
struct WireMessageDelta {
    stop_reason: StopReason,
    stop_sequence: Option<()>,
}

/// A finished content block of a non-streaming message.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlock<'a> {
    Text {
        text: &'a str,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: &'a RawValue,
    },
}

/// Writes events as SSE into one reused buffer.
#[derive(Default)]
pub struct SseWriter {
    buf: BytesMut,
}

impl SseWriter {
    pub fn new() -> Self {
        SseWriter {
            buf: BytesMut::with_capacity(4096),
        }
    }

    /// Appends one event: `event: <name>\ndata: <json>\n\n`. Internal events write nothing.
    pub fn write(&mut self, event: &StreamEvent) {
        if let StreamEvent::Metering { .. } = event {
            return;
        }
        self.buf.put_slice(b"event: ");
        self.buf.put_slice(event.name().as_bytes());
        self.buf.put_slice(b"\ndata: ");
        match event {
            StreamEvent::Error(told) => self.buf.put_slice(&told.error.to_json()),
            StreamEvent::Delta { index, delta } => self.write_delta(*index, delta),
            other => {
                let wire = to_wire(other);
                serde_json::to_writer((&mut self.buf).writer(), &wire).expect("events serialize");
            }
        }
        self.buf.put_slice(b"\n\n");
    }

    /// The data of a `content_block_delta`, written by hand: nearly every event of a stream
    /// is one, and serde escaped its constant tags and field names again for each (a
    /// third of a converted chunk's cost). Byte for byte what serde writes for `to_wire`.
    fn write_delta(&mut self, index: u32, delta: &Delta) {
        let (kind, field, text) = match delta {
            Delta::Text(text) => ("text_delta", "text", text),
            Delta::Thinking(text) => ("thinking_delta", "thinking", text),
            Delta::Signature(text) => ("signature_delta", "signature", text),
            Delta::InputJson(text) => ("input_json_delta", "partial_json", text),
        };
        self.buf
            .put_slice(br#"{"type":"content_block_delta","index":"#);
        self.buf
            .put_slice(itoa::Buffer::new().format(index).as_bytes());
        self.buf.put_slice(br#","delta":{"type":""#);
        self.buf.put_slice(kind.as_bytes());
        self.buf.put_slice(br#"",""#);
        self.buf.put_slice(field.as_bytes());
        self.buf.put_slice(br#"":"#);
        serde_json::to_writer((&mut self.buf).writer(), text.as_str()).expect("a str serializes");
        self.buf.put_slice(b"}}");
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Everything written since the last call; the buffer's memory is reused.
    pub fn take(&mut self) -> Bytes {
        self.buf.split().freeze()
    }
}

fn to_wire(event: &StreamEvent) -> WireEvent<'_> {
    match event {
        StreamEvent::MessageStart { id, model, usage } => WireEvent::MessageStart {
            message: WireMessage {
                id,
                r#type: "message",
                role: "assistant",
                model,
                content: &[],
                stop_reason: None,
                stop_sequence: None,
                usage,
            },
        },
        StreamEvent::BlockStart { index, block } => WireEvent::ContentBlockStart {
            index: *index,
            content_block: match block {
                BlockKind::Text => WireBlockStart::Text { text: "" },
                BlockKind::Thinking => WireBlockStart::Thinking {
                    thinking: "",
                    signature: "",
                },
                BlockKind::ToolUse { id, name } => WireBlockStart::ToolUse {
                    id,
                    name,
                    input: EmptyObject {},
                },
            },
        },
        StreamEvent::Delta { index, delta } => WireEvent::ContentBlockDelta {
            index: *index,
            delta: match delta {
                Delta::Text(text) => WireDelta::Text { text },
                Delta::Thinking(thinking) => WireDelta::Thinking { thinking },
                Delta::Signature(signature) => WireDelta::Signature { signature },
                Delta::InputJson(partial_json) => WireDelta::InputJson { partial_json },
            },
        },
        StreamEvent::BlockStop { index } => WireEvent::ContentBlockStop { index: *index },
        StreamEvent::MessageDelta { stop_reason, usage } => WireEvent::MessageDelta {
            delta: WireMessageDelta {
                stop_reason: *stop_reason,
                stop_sequence: None,
            },
            usage,
        },
        StreamEvent::MessageStop => WireEvent::MessageStop,
        StreamEvent::Ping => WireEvent::Ping,
        StreamEvent::Error(_) | StreamEvent::Metering { .. } => {
            unreachable!("errors are written from ApiError::to_json; metering is never written")
        }
    }
}

/// The most text, thinking and tool input a folded message holds; beyond it the fold fails
/// (a 502) instead of growing ccr's memory with one response.
pub const MAX_FOLD: usize = 32 << 20;

/// Builds a non-streaming `message` from a stream of events.
#[derive(Default)]
pub struct Fold {
    /// Bytes of content gathered so far.
    size: usize,
    id: String,
    model: String,
    usage: Usage,
    blocks: Vec<FoldBlock>,
    stop_reason: Option<StopReason>,
    started: bool,
    credits: Option<f64>,
}

enum FoldBlock {
    Text(String),
    Thinking {
        thinking: String,
        signature: String,
    },
    ToolUse {
        id: String,
        name: String,
        json: String,
    },
}

impl Fold {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one event; an `error` event ends the fold with that error.
    pub fn push(&mut self, event: StreamEvent) -> Result<(), Failed> {
        match event {
            StreamEvent::MessageStart { id, model, usage } => {
                self.started = true;
                (self.id, self.model, self.usage) = (id, model, usage);
            }
            StreamEvent::BlockStart { block, .. } => self.blocks.push(match block {
                BlockKind::Text => FoldBlock::Text(String::new()),
                BlockKind::Thinking => FoldBlock::Thinking {
                    thinking: String::new(),
                    signature: String::new(),
                },
                BlockKind::ToolUse { id, name } => FoldBlock::ToolUse {
                    id,
                    name,
                    json: String::new(),
                },
            }),
            StreamEvent::Delta { delta, .. } => {
                self.size += delta_len(&delta);
                if self.size > MAX_FOLD {
                    return Err(bad_response(format!(
                        "the upstream's answer is over {MAX_FOLD} bytes: ask for it streamed"
                    )));
                }
                self.push_delta(delta)?;
            }
            StreamEvent::MessageDelta { stop_reason, usage } => {
                self.stop_reason = Some(stop_reason);
                self.usage = usage;
            }
            StreamEvent::Error(told) => return Err(told),
            StreamEvent::Metering { credits } => {
                self.credits = Some(self.credits.unwrap_or(0.0) + credits)
            }
            StreamEvent::BlockStop { .. } | StreamEvent::MessageStop | StreamEvent::Ping => {}
        }
        Ok(())
    }

    /// Adds a delta to the open block.
    fn push_delta(&mut self, delta: Delta) -> Result<(), Failed> {
        match (self.blocks.last_mut(), delta) {
            (Some(FoldBlock::Text(text)), Delta::Text(more)) => text.push_str(&more),
            (Some(FoldBlock::Thinking { thinking, .. }), Delta::Thinking(more)) => {
                thinking.push_str(&more)
            }
            (Some(FoldBlock::Thinking { signature, .. }), Delta::Signature(more)) => {
                signature.push_str(&more)
            }
            (Some(FoldBlock::ToolUse { json, .. }), Delta::InputJson(more)) => json.push_str(&more),
            (_, delta) => {
                return Err(bad_response(format!(
                    "upstream stream out of order: {delta:?} does not fit the open block"
                )));
            }
        }
        Ok(())
    }

    /// The usage reported so far.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Credits the upstream reported charging, if it did.
    pub fn credits(&self) -> Option<f64> {
        self.credits
    }

    /// The message as the API's JSON.
    pub fn finish(self) -> Result<Bytes, Failed> {
        let incomplete = |what: &str| Failed {
            error: ApiError::new(
                ErrorType::Api,
                format!("the upstream's response ended without {what}"),
            )
            .with_status(http::StatusCode::BAD_GATEWAY),
            failure: Failure::upstream(Class::StreamCut),
        };
        if !self.started {
            return Err(incomplete("message_start"));
        }
        let stop_reason = self
            .stop_reason
            .ok_or_else(|| incomplete("a stop reason"))?;
        let inputs: Vec<Box<RawValue>> = self
            .blocks
            .iter()
            .filter_map(|b| match b {
                FoldBlock::ToolUse { json, name, .. } => {
                    Some(tool_input(json, name).map_err(|error| Failed {
                        error,
                        failure: Failure::upstream(Class::BadResponse),
                    }))
                }
                _ => None,
            })
            .collect::<Result<_, _>>()?;
        let mut inputs = inputs.iter();
        let content: Vec<WireBlock<'_>> = self
            .blocks
            .iter()
            .map(|b| match b {
                FoldBlock::Text(text) => WireBlock::Text { text },
                FoldBlock::Thinking {
                    thinking,
                    signature,
                } => WireBlock::Thinking {
                    thinking,
                    signature,
                },
                FoldBlock::ToolUse { id, name, .. } => WireBlock::ToolUse {
                    id,
                    name,
                    input: inputs.next().expect("one input per tool call"),
                },
            })
            .collect();
        let message = WireMessage {
            id: &self.id,
            r#type: "message",
            role: "assistant",
            model: &self.model,
            content: &content,
            stop_reason: Some(stop_reason),
            stop_sequence: None,
            usage: &self.usage,
        };
        Ok(Bytes::from(
            serde_json::to_vec(&message).expect("a message serializes"),
        ))
    }
}

/// The content bytes a delta adds to a folded message.
fn delta_len(delta: &Delta) -> usize {
    match delta {
        Delta::Text(t) | Delta::Thinking(t) | Delta::Signature(t) | Delta::InputJson(t) => t.len(),
    }
}

/// An upstream answer that broke the stream grammar.
fn bad_response(message: String) -> Failed {
    Failed {
        error: ApiError::new(ErrorType::Api, message).with_status(http::StatusCode::BAD_GATEWAY),
        failure: Failure::upstream(Class::BadResponse),
    }
}

/// A tool call's joined argument fragments as JSON; empty arguments are `{}`.
pub fn tool_input(json: &str, tool: &str) -> Result<Box<RawValue>, ApiError> {
    let text = if json.trim().is_empty() { "{}" } else { json };
    RawValue::from_string(text.to_string()).map_err(|e| {
        ApiError::new(
            ErrorType::Api,
            format!("the upstream sent invalid JSON arguments for tool `{tool}`: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_written_by_hand_is_byte_for_byte_what_serde_writes() {
        let texts = [
            "",
            "plain",
            "quote \" backslash \\ slash /",
            "lines\n\r\ttab \u{1} \u{1f} \u{7f}",
            "é — 見 🔍",
        ];
        for text in texts {
            for delta in [
                Delta::Text(text.into()),
                Delta::Thinking(text.into()),
                Delta::Signature(text.into()),
                Delta::InputJson(text.into()),
            ] {
                for index in [0, 7, 12_345, u32::MAX] {
                    let event = StreamEvent::Delta {
                        index,
                        delta: delta.clone(),
                    };
                    let mut writer = SseWriter::new();
                    writer.write(&event);
                    let serde = serde_json::to_string(&to_wire(&event)).unwrap();
                    let expected = format!("event: content_block_delta\ndata: {serde}\n\n");
                    assert_eq!(writer.take(), expected.as_bytes(), "{event:?}");
                }
            }
        }
    }

    fn stream() -> Vec<StreamEvent> {
        let usage = Usage {
            input_tokens: 10,
            output_tokens: 1,
            ..Usage::default()
        };
        vec![
            StreamEvent::MessageStart {
                id: "msg_1".into(),
                model: "m".into(),
                usage,
            },
            StreamEvent::BlockStart {
                index: 0,
                block: BlockKind::Thinking,
            },
            StreamEvent::Delta {
                index: 0,
                delta: Delta::Thinking("hm".into()),
            },
            StreamEvent::Delta {
                index: 0,
                delta: Delta::Signature("ccr-sig:x".into()),
            },
            StreamEvent::BlockStop { index: 0 },
            StreamEvent::BlockStart {
                index: 1,
                block: BlockKind::Text,
            },
            StreamEvent::Delta {
                index: 1,
                delta: Delta::Text("héllo \"q\"".into()),
            },
            StreamEvent::BlockStop { index: 1 },
            StreamEvent::BlockStart {
                index: 2,
                block: BlockKind::ToolUse {
                    id: "toolu_1".into(),
                    name: "Read".into(),
                },
            },
            StreamEvent::Delta {
                index: 2,
                delta: Delta::InputJson("{\"pa".into()),
            },
            StreamEvent::Delta {
                index: 2,
                delta: Delta::InputJson("th\":\"/x\"}".into()),
            },
            StreamEvent::BlockStop { index: 2 },
            StreamEvent::MessageDelta {
                stop_reason: StopReason::ToolUse,
                usage: Usage {
                    output_tokens: 7,
                    ..usage
                },
            },
            StreamEvent::MessageStop,
        ]
    }

    #[test]
    fn writes_the_exact_wire_form() {
        let mut writer = SseWriter::new();
        for event in &stream()[..3] {
            writer.write(event);
        }
        let text = String::from_utf8(writer.take().to_vec()).unwrap();
        assert_eq!(
            text,
            concat!(
                "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n",
                "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n",
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hm\"}}\n\n",
            )
        );
        assert!(writer.is_empty());
        writer.write(&StreamEvent::MessageDelta {
            stop_reason: StopReason::EndTurn,
            usage: Usage::default(),
        });
        let text = String::from_utf8(writer.take().to_vec()).unwrap();
        assert!(
            text.contains("\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null}"),
            "{text}"
        );
        writer.write(&StreamEvent::BlockStart {
            index: 3,
            block: BlockKind::ToolUse {
                id: "t".into(),
                name: "n".into(),
            },
        });
        let text = String::from_utf8(writer.take().to_vec()).unwrap();
        assert!(
            text.contains("{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"n\",\"input\":{}}"),
            "{text}"
        );
    }

    #[test]
    fn folds_a_stream_into_a_message() {
        let mut fold = Fold::new();
        for event in stream() {
            fold.push(event).unwrap();
        }
        let message: serde_json::Value = serde_json::from_slice(&fold.finish().unwrap()).unwrap();
        assert_eq!(message["stop_reason"], "tool_use");
        assert_eq!(message["content"][0]["signature"], "ccr-sig:x");
        assert_eq!(message["content"][1]["text"], "héllo \"q\"");
        assert_eq!(message["content"][2]["input"]["path"], "/x");
        assert_eq!(message["usage"]["output_tokens"], 7);
        assert_eq!(message["usage"]["cache_read_input_tokens"], 0);
    }

    #[test]
    fn fold_reports_errors_and_broken_tool_json() {
        let mut fold = Fold::new();
        let events = stream();
        for event in events[..10].iter().cloned() {
            fold.push(event).unwrap();
        }
        fold.push(StreamEvent::BlockStop { index: 2 }).unwrap();
        fold.push(StreamEvent::MessageDelta {
            stop_reason: StopReason::ToolUse,
            usage: Usage::default(),
        })
        .unwrap();
        let err = fold.finish().unwrap_err().error;
        assert!(
            err.message
                .contains("invalid JSON arguments for tool `Read`"),
            "{}",
            err.message
        );

        let mut fold = Fold::new();
        fold.push(stream()[0].clone()).unwrap();
        let err = fold
            .push(StreamEvent::Error(Failed {
                error: ApiError::new(ErrorType::Overloaded, "busy"),
                failure: Failure::upstream(Class::Upstream5xx),
            }))
            .unwrap_err();
        assert_eq!(err.error.kind, ErrorType::Overloaded);
    }
}
