//! Checks the Anthropic streaming grammar the way a strict client would, and returns what
//! the stream said. Every streamed response in the suite goes through [`check_stream`].

use serde_json::Value;

/// A finished content block as the stream built it.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Text(String),
    Thinking {
        thinking: String,
        signature: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

/// What a stream that passed the checker said.
#[derive(Debug)]
pub struct Checked {
    pub message_start: Value,
    pub blocks: Vec<Block>,
    /// `None` when the stream ended with an `error` event.
    pub stop_reason: Option<String>,
    pub final_usage: Option<Value>,
    /// The `error` event's `error` object, when the stream ended with one.
    pub error: Option<Value>,
    pub pings: usize,
}

impl Checked {
    pub fn text(&self) -> String {
        self.blocks
            .iter()
            .filter_map(|b| match b {
                Block::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// Splits an SSE body into (event name, data JSON), checking each event's framing.
pub fn parse_sse(body: &str) -> Vec<(String, Value)> {
    assert!(
        body.ends_with("\n\n") || body.is_empty(),
        "the stream must end at an event boundary: {body:?}"
    );
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|event| {
            let mut name = None;
            let mut data = None;
            for line in event.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    assert!(data.is_none(), "one data line per event: {event:?}");
                    data = Some(
                        serde_json::from_str::<Value>(v)
                            .unwrap_or_else(|e| panic!("data is not JSON ({e}): {v}")),
                    );
                } else {
                    panic!("unexpected line {line:?} in event {event:?}");
                }
            }
            let name = name.unwrap_or_else(|| panic!("event without a name: {event:?}"));
            let data = data.unwrap_or_else(|| panic!("event without data: {event:?}"));
            assert_eq!(
                data["type"],
                name.as_str(),
                "event name and data type agree"
            );
            (name, data)
        })
        .collect()
}

enum Open {
    Text(String),
    Thinking(String, String),
    Tool(String, String, String),
}

/// Asserts the grammar of anthropic.md's "Streaming response" and returns the content.
pub fn check_stream(body: &str) -> Checked {
    let events = parse_sse(body);
    let mut pings = 0;
    let mut events = events.into_iter().filter(|(name, _)| {
        let ping = name == "ping";
        pings += usize::from(ping);
        !ping
    });
    let (name, message_start) = events.next().expect("a stream has events");
    if name == "error" {
        assert!(events.next().is_none(), "nothing after an error event");
        return Checked {
            message_start: Value::Null,
            blocks: vec![],
            stop_reason: None,
            final_usage: None,
            error: Some(message_start["error"].clone()),
            pings,
        };
    }
    assert_eq!(name, "message_start", "message_start comes first");
    let usage = &message_start["message"]["usage"];
    for field in [
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ] {
        assert!(
            usage[field].is_u64(),
            "message_start usage has {field}: {usage}"
        );
    }
    assert_eq!(message_start["message"]["content"], Value::Array(vec![]));
    assert!(message_start["message"]["stop_reason"].is_null());

    let mut blocks = Vec::new();
    let mut open: Option<Open> = None;
    let mut stop_reason = None;
    let mut final_usage = None;
    let mut ended = false;
    for (name, data) in events.by_ref() {
        assert!(!ended, "nothing may follow message_stop: got {name}");
        match name.as_str() {
            "content_block_start" => {
                assert!(
                    open.is_none(),
                    "a block starts while another is open: {data}"
                );
                assert!(stop_reason.is_none(), "a block after message_delta");
                assert_eq!(
                    data["index"],
                    blocks.len() as u64,
                    "blocks are numbered 0, 1, 2…"
                );
                let block = &data["content_block"];
                open = Some(match block["type"].as_str() {
                    Some("text") => {
                        assert_eq!(block["text"], "");
                        Open::Text(String::new())
                    }
                    Some("thinking") => {
                        assert_eq!(block["thinking"], "");
                        Open::Thinking(String::new(), String::new())
                    }
                    Some("tool_use") => {
                        assert_eq!(block["input"], serde_json::json!({}));
                        let id = block["id"].as_str().expect("tool_use id").to_string();
                        assert!(
                            !id.is_empty(),
                            "a tool_use block has an id (tool_result names it)"
                        );
                        Open::Tool(
                            id,
                            block["name"].as_str().expect("tool name").to_string(),
                            String::new(),
                        )
                    }
                    other => panic!("unknown block type {other:?}"),
                });
            }
            "content_block_delta" => {
                assert_eq!(
                    data["index"],
                    blocks.len() as u64,
                    "a delta for the open block"
                );
                let delta = &data["delta"];
                let text = |field: &str| {
                    delta[field]
                        .as_str()
                        .unwrap_or_else(|| panic!("{field} in {delta}"))
                        .to_string()
                };
                match (
                    open.as_mut().expect("a delta inside a block"),
                    delta["type"].as_str(),
                ) {
                    (Open::Text(t), Some("text_delta")) => t.push_str(&text("text")),
                    (Open::Thinking(t, _), Some("thinking_delta")) => t.push_str(&text("thinking")),
                    (Open::Thinking(_, s), Some("signature_delta")) => {
                        s.push_str(&text("signature"))
                    }
                    (Open::Tool(_, _, j), Some("input_json_delta")) => {
                        j.push_str(&text("partial_json"))
                    }
                    (_, other) => panic!("delta {other:?} does not match its block"),
                }
            }
            "content_block_stop" => {
                assert_eq!(data["index"], blocks.len() as u64, "the open block stops");
                blocks.push(match open.take().expect("a stop closes an open block") {
                    Open::Text(t) => Block::Text(t),
                    Open::Thinking(thinking, signature) => {
                        assert!(
                            !signature.is_empty(),
                            "a thinking block carries a signature"
                        );
                        Block::Thinking {
                            thinking,
                            signature,
                        }
                    }
                    Open::Tool(id, name, json) => {
                        let input = if json.is_empty() {
                            serde_json::json!({})
                        } else {
                            serde_json::from_str(&json).unwrap_or_else(|e| {
                                panic!("tool input fragments join into JSON ({e}): {json}")
                            })
                        };
                        assert!(input.is_object(), "tool input is an object: {input}");
                        Block::ToolUse { id, name, input }
                    }
                });
            }
            "message_delta" => {
                assert!(open.is_none(), "message_delta while a block is open");
                assert!(stop_reason.is_none(), "one message_delta");
                let reason = data["delta"]["stop_reason"]
                    .as_str()
                    .expect("message_delta has a stop_reason")
                    .to_string();
                assert!(
                    [
                        "end_turn",
                        "max_tokens",
                        "stop_sequence",
                        "tool_use",
                        "pause_turn",
                        "refusal"
                    ]
                    .contains(&reason.as_str()),
                    "{reason}"
                );
                assert!(
                    data["usage"]["output_tokens"].is_u64(),
                    "message_delta usage: {data}"
                );
                stop_reason = Some(reason);
                final_usage = Some(data["usage"].clone());
            }
            "message_stop" => {
                assert!(stop_reason.is_some(), "message_delta before message_stop");
                ended = true;
            }
            "error" => {
                assert!(events.next().is_none(), "nothing after an error event");
                // What the open block held before the error, for tests to look at.
                blocks.extend(open.take().map(|o| match o {
                    Open::Text(t) => Block::Text(t),
                    Open::Thinking(thinking, signature) => Block::Thinking {
                        thinking,
                        signature,
                    },
                    Open::Tool(id, name, json) => Block::ToolUse {
                        id,
                        name,
                        input: Value::String(json),
                    },
                }));
                return Checked {
                    message_start,
                    blocks,
                    stop_reason: None,
                    final_usage,
                    error: Some(data["error"].clone()),
                    pings,
                };
            }
            other => panic!("unknown event {other}"),
        }
    }
    assert!(ended, "the stream ends with message_stop or an error event");
    if blocks.iter().any(|b| matches!(b, Block::ToolUse { .. }))
        && stop_reason.as_deref() != Some("max_tokens")
    {
        assert_eq!(
            stop_reason.as_deref(),
            Some("tool_use"),
            "a turn with tool calls stops with tool_use"
        );
    }
    Checked {
        message_start,
        blocks,
        stop_reason,
        final_usage,
        error: None,
        pings,
    }
}

/// The blocks of a non-streaming `message`, in the same form as a checked stream's.
pub fn message_blocks(message: &Value) -> Vec<Block> {
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    for field in [
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ] {
        assert!(
            message["usage"][field].is_u64(),
            "message usage has {field}: {message}"
        );
    }
    message["content"]
        .as_array()
        .expect("content is a list")
        .iter()
        .map(|b| match b["type"].as_str() {
            Some("text") => Block::Text(b["text"].as_str().unwrap().to_string()),
            Some("thinking") => Block::Thinking {
                thinking: b["thinking"].as_str().unwrap().to_string(),
                signature: b["signature"].as_str().unwrap().to_string(),
            },
            Some("tool_use") => Block::ToolUse {
                id: b["id"].as_str().unwrap().to_string(),
                name: b["name"].as_str().unwrap().to_string(),
                input: b["input"].clone(),
            },
            other => panic!("unknown block {other:?}"),
        })
        .collect()
}

/// The blocks with thinking signatures blanked (each response signs anew), each checked to
/// be present and to start with `prefix` (`ccr-sig:` for blocks ccr signs, `""` for any).
pub fn without_signatures(blocks: &[Block], prefix: &str) -> Vec<Block> {
    blocks
        .iter()
        .map(|b| match b {
            Block::Thinking {
                thinking,
                signature,
            } => {
                assert!(
                    !signature.is_empty() && signature.starts_with(prefix),
                    "a thinking block is signed ({prefix}…): {signature:?}"
                );
                Block::Thinking {
                    thinking: thinking.clone(),
                    signature: String::new(),
                }
            }
            other => other.clone(),
        })
        .collect()
}

/// What a client saw of one answer: blocks, stop reason and final usage, the same shape
/// whether it was streamed or folded into one message.
#[derive(Debug)]
pub struct Seen {
    pub blocks: Vec<Block>,
    pub stop_reason: String,
    pub usage: Value,
}

impl Seen {
    /// A complete stream, already checked against the grammar.
    pub fn streamed(checked: &Checked) -> Seen {
        Seen {
            blocks: checked.blocks.clone(),
            stop_reason: checked.stop_reason.clone().expect("the stream completed"),
            usage: checked
                .final_usage
                .clone()
                .expect("the stream reported usage"),
        }
    }

    /// A non-streaming `message`.
    pub fn folded(message: &Value) -> Seen {
        Seen {
            blocks: message_blocks(message),
            stop_reason: message["stop_reason"]
                .as_str()
                .expect("a stop reason")
                .to_string(),
            usage: message["usage"].clone(),
        }
    }
}
