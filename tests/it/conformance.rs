//! One conformance suite for every provider: the same neutral scenarios, each scripted in a
//! provider's own wire format by its [`Kit`], and the same assertions on what the CLIENT
//! sees. A provider joins by writing a `Kit` and adding a row to the `conformance!` table at
//! the bottom; each (provider, scenario) pair becomes its own test,
//! `conformance::<provider>::<scenario>`.

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::codewhisperer::{DEAD_REFRESH, credentials};
use crate::support::mock_upstream::{MockUpstream, Reply, cw_event};
use crate::support::stream_checker::{
    Block, Checked, check_stream, message_blocks, without_signatures,
};
use crate::support::{
    Ccr, PATIENCE, anthropic_error, class_of, client, fixture, messages_request, single_attempt,
};

/// The model every scenario's client asks for.
const MODEL: &str = "claude-sonnet-4-5";

// ---------------------------------------------------------------------------------------
// The neutral script: what the upstream says, independent of how its wire says it.

/// One content block of a scripted answer, as the fragments the upstream sends it in.
#[derive(Clone, Copy)]
enum Part {
    Text(&'static [&'static str]),
    Thinking(&'static [&'static str]),
    Tool {
        id: &'static str,
        name: &'static str,
        input: &'static [&'static str],
    },
}

/// A scripted assistant turn.
type Turn = &'static [Part];

const TEXT: Turn = &[Part::Text(&["Hello, ", "wörld — 你好 🎉"])];

/// One tool whose input arrives cut inside keys, values, escapes and a multi-byte character.
const TOOL_IN_FRAGMENTS: Turn = &[Part::Tool {
    id: "toolu_conf_1",
    name: "Read",
    input: &[
        "",
        "{\"fi",
        "le_path\":",
        "\"/tmp/a \\",
        "\"quoted\\\" nä",
        "me.txt\",\"li",
        "mit\":2",
        "0,\"nested\":{",
        "\"ok\":true}",
        "}",
    ],
}];

const TWO_TOOLS: Turn = &[
    Part::Text(&["I'll look."]),
    Part::Tool {
        id: "toolu_conf_1",
        name: "Glob",
        input: &["{\"pattern\":", "\"**/*.rs\"}"],
    },
    Part::Tool {
        id: "toolu_conf_2",
        name: "Grep",
        input: &["{\"q\":\"fn main\"}"],
    },
];

const THINKING: Turn = &[
    Part::Thinking(&["let me ", "think"]),
    Part::Text(&["the answer"]),
];

/// The scenarios that break off: the upstream sends the first fragment, then is cut off or
/// goes silent before the wire event that carries [`NEVER_SEEN`].
const BROKEN_OFF: Turn = &[Part::Text(&["partial ", "never seen"])];
const NEVER_SEEN: &[u8] = b"never seen";

/// The signature a pass-through upstream signs its thinking with.
const SIGNATURE: &str = "sig_conf_1";

fn stop_reason(turn: Turn) -> &'static str {
    if turn.iter().any(|p| matches!(p, Part::Tool { .. })) {
        "tool_use"
    } else {
        "end_turn"
    }
}

/// What the client must see for a turn. Thinking signatures are provider-specific (the
/// upstream's own or ccr's `ccr-sig:`), so they are compared as "present" only.
fn expected_blocks(turn: Turn) -> Vec<Block> {
    turn.iter()
        .map(|part| match part {
            Part::Text(f) => Block::Text(f.concat()),
            Part::Thinking(f) => Block::Thinking {
                thinking: f.concat(),
                signature: String::new(),
            },
            Part::Tool { id, name, input } => Block::ToolUse {
                id: id.to_string(),
                name: name.to_string(),
                input: serde_json::from_str(&input.concat()).expect("scripted input is JSON"),
            },
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// A provider's row: how its mock upstream says each scripted thing, and its config.

/// How a provider's stream is framed on the wire.
#[derive(Clone, Copy)]
enum Framing {
    /// `text/event-stream`.
    Sse,
    /// `application/vnd.amazon.eventstream` binary frames.
    EventStream,
}

/// One provider's way of speaking the neutral script.
struct Kit {
    /// The provider's name in the config, and so `x-ccr-provider`.
    name: &'static str,
    /// Its routing target's label in records.
    target: &'static str,
    framing: Framing,
    /// The upstream's stream for a turn, one complete wire event per element.
    stream: fn(Turn) -> Vec<Vec<u8>>,
    /// The upstream's answer to a non-streaming request (one JSON body: an Anthropic message,
    /// a Gemini response); `None` when ccr always asks the upstream to stream and folds the
    /// stream itself.
    message: Option<fn(Turn) -> String>,
    /// 429 with `Retry-After: <seconds>`, in the upstream's own words.
    rate_limited: fn(&str) -> Reply,
    /// A 500 in the upstream's own words.
    server_error: fn() -> Reply,
    /// The upstream's real "input does not fit the context window" 400.
    context_too_long: fn() -> Reply,
    /// Anything the provider needs beside its config (a credentials directory), kept alive
    /// for the test.
    setup: fn() -> Option<tempfile::TempDir>,
    /// The config: one provider `name` at `base_url`, `extra` flow-mapping entries added to
    /// it (`timeouts: {…}`), routed as `default`.
    config: fn(base_url: &str, setup: Option<&Path>, extra: &str) -> String,
}

fn status_reply(status: u16, headers: Vec<(&'static str, String)>, body: Value) -> Reply {
    Reply::Status {
        status,
        headers,
        body: body.to_string(),
    }
}

fn no_setup() -> Option<tempfile::TempDir> {
    None
}

fn server_yaml(providers: String, route: &str) -> String {
    format!(
        "server: {{ host: 127.0.0.1, port: 0 }}\nproviders:\n{providers}routes:\n  default: [{route}]\n"
    )
}

// --- anthropic: the pass-through ---------------------------------------------------------

fn sse(name: &str, data: Value) -> Vec<u8> {
    format!("event: {name}\ndata: {data}\n\n").into_bytes()
}

fn anthropic_stream(turn: Turn) -> Vec<Vec<u8>> {
    let mut out = vec![sse(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_conf", "type": "message", "role": "assistant", "model": MODEL, "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1}}}),
    )];
    for (index, part) in turn.iter().enumerate() {
        let (block, deltas): (Value, Vec<Value>) = match part {
            Part::Text(f) => (
                json!({"type": "text", "text": ""}),
                f.iter()
                    .map(|t| json!({"type": "text_delta", "text": t}))
                    .collect(),
            ),
            Part::Thinking(f) => (
                json!({"type": "thinking", "thinking": ""}),
                f.iter()
                    .map(|t| json!({"type": "thinking_delta", "thinking": t}))
                    .chain([json!({"type": "signature_delta", "signature": SIGNATURE})])
                    .collect(),
            ),
            Part::Tool { id, name, input } => (
                json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                input
                    .iter()
                    .map(|j| json!({"type": "input_json_delta", "partial_json": j}))
                    .collect(),
            ),
        };
        out.push(sse(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        for delta in deltas {
            out.push(sse(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": delta}),
            ));
        }
        out.push(sse(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    out.push(sse(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason(turn), "stop_sequence": null}, "usage": {"output_tokens": 5}}),
    ));
    out.push(sse("message_stop", json!({"type": "message_stop"})));
    out
}

fn anthropic_message(turn: Turn) -> String {
    let content: Vec<Value> = turn
        .iter()
        .map(|part| match part {
            Part::Text(f) => json!({"type": "text", "text": f.concat()}),
            Part::Thinking(f) => {
                json!({"type": "thinking", "thinking": f.concat(), "signature": SIGNATURE})
            }
            Part::Tool { id, name, input } => {
                let input: Value = serde_json::from_str(&input.concat()).unwrap();
                json!({"type": "tool_use", "id": id, "name": name, "input": input})
            }
        })
        .collect();
    json!({"id": "msg_conf", "type": "message", "role": "assistant", "model": MODEL, "content": content, "stop_reason": stop_reason(turn), "stop_sequence": null, "usage": {"input_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 5}})
    .to_string()
}

fn anthropic_error_body(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

const ANTHROPIC: Kit = Kit {
    name: "anthropic",
    target: "anthropic",
    framing: Framing::Sse,
    stream: anthropic_stream,
    message: Some(anthropic_message),
    rate_limited: |after| {
        status_reply(
            429,
            vec![("retry-after", after.to_string())],
            anthropic_error_body(
                "rate_limit_error",
                "Number of request tokens has exceeded your per-minute rate limit",
            ),
        )
    },
    server_error: || {
        status_reply(
            500,
            vec![],
            anthropic_error_body("api_error", "Internal server error"),
        )
    },
    context_too_long: || {
        status_reply(
            400,
            vec![],
            anthropic_error_body(
                "invalid_request_error",
                "prompt is too long: 250000 tokens > 200000 maximum",
            ),
        )
    },
    setup: no_setup,
    config: |base_url, _, extra| {
        server_yaml(
            format!(
                "  anthropic: {{ type: anthropic, base_url: \"{base_url}\", api_key: sk-ant-conf{extra} }}\n"
            ),
            "anthropic/*",
        )
    },
};

// --- openai: Chat Completions, converted -------------------------------------------------

fn openai_chunks(turn: Turn) -> Vec<Vec<u8>> {
    let choice = |delta: Value, finish: Value| json!({"id": "chatcmpl-conf", "object": "chat.completion.chunk", "model": "conf-model", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    let mut chunks = Vec::new();
    let mut tool_index = 0;
    for part in turn {
        match part {
            Part::Text(f) => {
                chunks.extend(f.iter().map(|t| choice(json!({"content": t}), Value::Null)))
            }
            Part::Thinking(f) => chunks.extend(
                f.iter()
                    .map(|t| choice(json!({"reasoning_content": t}), Value::Null)),
            ),
            Part::Tool { id, name, input } => {
                let (first, rest) = input.split_first().expect("a tool has input");
                chunks.push(choice(
                    json!({"tool_calls": [{"index": tool_index, "id": id, "type": "function", "function": {"name": name, "arguments": first}}]}),
                    Value::Null,
                ));
                chunks.extend(rest.iter().map(|args| {
                    choice(
                        json!({"tool_calls": [{"index": tool_index, "function": {"arguments": args}}]}),
                        Value::Null,
                    )
                }));
                tool_index += 1;
            }
        }
    }
    let finish = if tool_index > 0 { "tool_calls" } else { "stop" };
    chunks.push(choice(json!({}), json!(finish)));
    chunks.push(json!({"id": "chatcmpl-conf", "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 5}}));
    let mut out: Vec<Vec<u8>> = chunks
        .iter()
        .map(|c| format!("data: {c}\n\n").into_bytes())
        .collect();
    out.push(b"data: [DONE]\n\n".to_vec());
    out
}

fn openai_error_body(message: &str, kind: &str, code: Value) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

const OPENAI: Kit = Kit {
    name: "openai",
    target: "openai",
    framing: Framing::Sse,
    stream: openai_chunks,
    message: None,
    rate_limited: |after| {
        status_reply(
            429,
            vec![("retry-after", after.to_string())],
            openai_error_body(
                "Rate limit reached for requests",
                "requests",
                json!("rate_limit_exceeded"),
            ),
        )
    },
    server_error: || {
        status_reply(
            500,
            vec![],
            openai_error_body(
                "The server had an error while processing your request.",
                "server_error",
                Value::Null,
            ),
        )
    },
    context_too_long: || {
        status_reply(
            400,
            vec![],
            openai_error_body(
                "This model's maximum context length is 128000 tokens. However, your messages resulted in 250000 tokens. Please reduce the length of the messages.",
                "invalid_request_error",
                json!("context_length_exceeded"),
            ),
        )
    },
    setup: no_setup,
    config: |base_url, _, extra| {
        server_yaml(
            format!(
                "  openai: {{ type: openai, base_url: \"{base_url}/v1\", api_key: sk-oa-conf{extra} }}\n"
            ),
            "openai/conf-model",
        )
    },
};

// --- codewhisperer: AWS event-stream frames, converted -----------------------------------

fn codewhisperer_frames(turn: Turn) -> Vec<Vec<u8>> {
    let mut frames = vec![cw_event(
        "messageMetadataEvent",
        json!({"conversationId": "conv-conf", "utteranceId": "utt-conf"}),
    )];
    for part in turn {
        match part {
            Part::Text(f) => frames.extend(
                f.iter()
                    .map(|t| cw_event("assistantResponseEvent", json!({"content": t}))),
            ),
            Part::Thinking(_) => unreachable!("CodeWhisperer has no thinking events"),
            Part::Tool { id, name, input } => {
                frames.extend(input.iter().map(|piece| {
                    cw_event(
                        "toolUseEvent",
                        json!({"toolUseId": id, "name": name, "input": piece}),
                    )
                }));
                frames.push(cw_event(
                    "toolUseEvent",
                    json!({"toolUseId": id, "name": name, "stop": true}),
                ));
            }
        }
    }
    frames.push(cw_event(
        "contextUsageEvent",
        json!({"contextUsagePercentage": 1.5}),
    ));
    frames.push(cw_event(
        "meteringEvent",
        json!({"unit": "credit", "usage": 0.1}),
    ));
    frames
}

fn codewhisperer_error_body(kind: &str, message: &str) -> Value {
    json!({"__type": format!("com.amazon.aws.codewhisperer#{kind}"), "message": message})
}

const CODEWHISPERER: Kit = Kit {
    name: "codewhisperer",
    target: "codewhisperer:work",
    framing: Framing::EventStream,
    stream: codewhisperer_frames,
    message: None,
    rate_limited: |after| {
        status_reply(
            429,
            vec![("retry-after", after.to_string())],
            codewhisperer_error_body("ThrottlingException", "Rate exceeded"),
        )
    },
    server_error: || {
        status_reply(
            500,
            vec![],
            codewhisperer_error_body(
                "InternalServerException",
                "Encountered an unexpected error when processing the request, please try again.",
            ),
        )
    },
    context_too_long: || {
        status_reply(
            400,
            vec![],
            json!({"message": "Input is too long for requested model.", "reason": "CONTENT_LENGTH_EXCEEDS_THRESHOLD"}),
        )
    },
    setup: || Some(credentials(&[("work", "aoa-conf-token", "social")])),
    config: |base_url, setup, extra| {
        let dir = setup.expect("a credentials directory");
        format!(
            "{}credentials: {{ store: file, dir: \"{}\" }}\n",
            server_yaml(
                format!(
                    "  codewhisperer: {{ type: codewhisperer, base_url: \"{base_url}\", accounts: [work], refresh_url: \"{DEAD_REFRESH}\", idc_refresh_url: \"{DEAD_REFRESH}\"{extra} }}\n"
                ),
                "codewhisperer/*",
            ),
            dir.display()
        )
    },
};

// --- gemini: GenerateContentResponses, converted ----------------------------------------

/// One turn part as Gemini sends it: text and thoughts as fragments, a function call whole.
fn gemini_parts(part: &Part) -> Vec<Value> {
    match part {
        Part::Text(f) => f.iter().map(|t| json!({"text": t})).collect(),
        Part::Thinking(f) => f
            .iter()
            .map(|t| json!({"text": t, "thought": true}))
            .collect(),
        Part::Tool { id, name, input } => {
            let args: Value = serde_json::from_str(&input.concat()).unwrap();
            vec![json!({"functionCall": {"id": id, "name": name, "args": args}})]
        }
    }
}

fn gemini_response(parts: Vec<Value>, finish: bool) -> Value {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    let mut response = json!({"modelVersion": "gemini-2.5-pro"});
    if finish {
        // Gemini says STOP whether or not it called functions.
        candidate["finishReason"] = json!("STOP");
        response["usageMetadata"] =
            json!({"promptTokenCount": 20, "candidatesTokenCount": 5, "totalTokenCount": 25});
    }
    response["candidates"] = json!([candidate]);
    response
}

/// Each fragment its own SSE event, CRLF-framed as Google's front ends frame them, and no
/// `[DONE]`: the finish reason ends the stream.
fn gemini_stream(turn: Turn) -> Vec<Vec<u8>> {
    let mut responses: Vec<Value> = turn
        .iter()
        .flat_map(gemini_parts)
        .map(|part| gemini_response(vec![part], false))
        .collect();
    responses.push(gemini_response(vec![json!({"text": ""})], true));
    responses
        .iter()
        .map(|r| format!("data: {r}\r\n\r\n").into_bytes())
        .collect()
}

fn gemini_message(turn: Turn) -> String {
    let parts = turn
        .iter()
        .map(|part| match part {
            Part::Text(f) => json!({"text": f.concat()}),
            Part::Thinking(f) => json!({"text": f.concat(), "thought": true}),
            tool => gemini_parts(tool).remove(0),
        })
        .collect();
    gemini_response(parts, true).to_string()
}

fn gemini_error_body(code: u16, status: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message, "status": status}})
}

const GEMINI: Kit = Kit {
    name: "gemini",
    target: "gemini",
    framing: Framing::Sse,
    stream: gemini_stream,
    message: Some(gemini_message),
    // Gemini sends no Retry-After header: its delay is in the body's RetryInfo.
    rate_limited: |after| {
        let mut body = gemini_error_body(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
        );
        body["error"]["details"] = json!([
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{after}s")}
        ]);
        status_reply(429, vec![], body)
    },
    server_error: || {
        status_reply(
            500,
            vec![],
            gemini_error_body(
                500,
                "INTERNAL",
                "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
            ),
        )
    },
    context_too_long: || {
        status_reply(
            400,
            vec![],
            gemini_error_body(
                400,
                "INVALID_ARGUMENT",
                "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
            ),
        )
    },
    setup: no_setup,
    config: |base_url, _, extra| {
        server_yaml(
            format!(
                "  gemini: {{ type: gemini, base_url: \"{base_url}\", api_key: gm-conf-key-1234{extra} }}\n"
            ),
            "gemini/gemini-2.5-pro",
        )
    },
};

// ---------------------------------------------------------------------------------------
// The harness: a kit's mock upstream, ccr in front of it, a client.

/// A complete answer for a streaming request.
fn streamed(kit: &Kit, turn: Turn) -> Reply {
    let events = (kit.stream)(turn);
    match kit.framing {
        Framing::Sse => Reply::Sse {
            body: String::from_utf8(events.concat()).unwrap(),
            byte_per_write: false,
        },
        Framing::EventStream => Reply::Binary {
            chunks: events,
            byte_per_write: false,
            cut: false,
        },
    }
}

/// The upstream's answer to a non-streaming request.
fn answered(kit: &Kit, turn: Turn) -> Reply {
    match kit.message {
        Some(message) => Reply::Json(message(turn)),
        None => streamed(kit, turn),
    }
}

/// [`BROKEN_OFF`]'s wire events before, and from, the one that carries [`NEVER_SEEN`].
fn split_broken_off(kit: &Kit) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut events = (kit.stream)(BROKEN_OFF);
    let at = events
        .iter()
        .position(|e| e.windows(NEVER_SEEN.len()).any(|w| w == NEVER_SEEN))
        .expect("the script's second fragment is on the wire");
    let rest = events.split_off(at);
    (events, rest)
}

/// The first fragment, then the connection breaks.
fn cut_off(kit: &Kit) -> Reply {
    let (before, _) = split_broken_off(kit);
    match kit.framing {
        Framing::Sse => Reply::CutAfter {
            before: String::from_utf8(before.concat()).unwrap(),
        },
        Framing::EventStream => Reply::Binary {
            chunks: before,
            byte_per_write: false,
            cut: true,
        },
    }
}

/// The first fragment, then silence until `release`.
fn stalled(kit: &Kit, release: Arc<Notify>) -> Reply {
    let (before, after) = split_broken_off(kit);
    match kit.framing {
        Framing::Sse => Reply::StallMidStream {
            before: String::from_utf8(before.concat()).unwrap(),
            after: String::from_utf8(after.concat()).unwrap(),
            release,
        },
        Framing::EventStream => Reply::BinaryStall {
            chunks: before,
            release,
        },
    }
}

struct Rig {
    ccr: Ccr,
    upstream: MockUpstream,
    _setup: Option<tempfile::TempDir>,
}

impl Rig {
    /// The kit's mock answering `reply`, and ccr in front of it; `extra` goes into the
    /// provider's entry, `single` allows one attempt per request.
    async fn start(kit: &Kit, reply: Reply, extra: &str, single: bool) -> Rig {
        let setup = (kit.setup)();
        let upstream = MockUpstream::start(reply).await;
        let yaml = (kit.config)(
            &upstream.base_url(),
            setup.as_ref().map(|d| d.path()),
            extra,
        );
        let yaml = if single { single_attempt(&yaml) } else { yaml };
        Rig {
            ccr: Ccr::start(&yaml).await,
            upstream,
            _setup: setup,
        }
    }

    async fn finish(self) {
        self.ccr.shutdown().await;
    }
}

fn request_body(stream: bool, thinking: bool) -> String {
    let mut body = json!({"model": MODEL, "max_tokens": 1024, "stream": stream, "messages": [{"role": "user", "content": "hello"}]});
    if thinking {
        body["thinking"] = json!({"type": "enabled", "budget_tokens": 512});
    }
    body.to_string()
}

async fn send(rig: &Rig, body: impl Into<reqwest::Body>) -> reqwest::Response {
    tokio::time::timeout(PATIENCE, messages_request(&rig.ccr, body).send())
        .await
        .expect("ccr answers in time")
        .unwrap()
}

/// Reads an SSE response to its end (never a hang) and checks its grammar.
async fn read_stream(response: reqwest::Response) -> Checked {
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let text = tokio::time::timeout(PATIENCE, response.text())
        .await
        .expect("the stream ends in time")
        .unwrap();
    check_stream(&text)
}

async fn one_record(rig: &Rig) -> ccr::record::RequestRecord {
    let records = rig.ccr.records.wait_for(1).await;
    assert_eq!(records.len(), 1, "one record per request");
    records[0].clone()
}

async fn assert_completed(kit: &Kit, rig: &Rig) {
    let record = one_record(rig).await;
    assert_eq!(record.outcome, ccr::record::Outcome::Completed);
    assert!(record.failure.is_none(), "{:?}", record.failure);
    assert_eq!(record.attempts.len(), 1);
    assert_eq!(record.attempts[0].target, kit.target);
    let usage = record.usage.expect("the record has the turn's usage");
    assert!(usage.output_tokens > 0, "{usage:?}");
}

/// The stats document counts the request's failure under `class`, and nothing else.
async fn assert_stats_count(rig: &Rig, class: &str) {
    let stats: Value = client()
        .get(rig.ccr.url("/api/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["totals"]["failures"], json!({ class: 1 }), "{stats}");
}

/// A streaming client gets the scripted turn, intact and in grammar.
async fn streams(kit: &Kit, turn: Turn, thinking: bool) {
    let rig = Rig::start(kit, streamed(kit, turn), "", false).await;
    let response = send(&rig, request_body(true, thinking)).await;
    assert_eq!(response.headers()["x-ccr-provider"], kit.name);
    let checked = read_stream(response).await;
    assert!(checked.error.is_none(), "{:?}", checked.error);
    assert_eq!(
        without_signatures(&checked.blocks, ""),
        expected_blocks(turn),
        "the blocks, with tool input that joins into the scripted JSON"
    );
    assert_eq!(checked.stop_reason.as_deref(), Some(stop_reason(turn)));
    assert_eq!(checked.message_start["message"]["model"], MODEL);
    assert_completed(kit, &rig).await;
    rig.finish().await;
}

/// A non-streaming client gets the same turn as one message.
async fn folds(kit: &Kit, turn: Turn, thinking: bool) {
    let rig = Rig::start(kit, answered(kit, turn), "", false).await;
    let response = send(&rig, request_body(false, thinking)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ccr-provider"], kit.name);
    assert_eq!(response.headers()["content-type"], "application/json");
    let message: Value = tokio::time::timeout(PATIENCE, response.json())
        .await
        .expect("the message in time")
        .unwrap();
    assert_eq!(
        without_signatures(&message_blocks(&message), ""),
        expected_blocks(turn)
    );
    assert_eq!(message["stop_reason"], stop_reason(turn));
    assert_eq!(message["model"], MODEL);
    assert_completed(kit, &rig).await;
    rig.finish().await;
}

/// An upstream error status before any byte: the client gets the Anthropic error form with
/// `status` and `kind`, and the record says `class`, for the request and its one attempt.
async fn fails_before_the_stream(
    kit: &Kit,
    reply: Reply,
    status: u16,
    kind: &str,
    class: &str,
) -> (reqwest::header::HeaderMap, String) {
    let rig = Rig::start(kit, reply, "", true).await;
    let response = send(&rig, request_body(true, false)).await;
    let headers = response.headers().clone();
    assert_eq!(headers["x-ccr-attempts"], "1");
    let (got_status, got_kind, message) = anthropic_error(response).await;
    assert_eq!((got_status, got_kind.as_str()), (status, kind), "{message}");
    let record = one_record(&rig).await;
    assert_eq!(record.status, status);
    assert_eq!(record.outcome, ccr::record::Outcome::Failed);
    assert_eq!(record.failure.map(|f| f.class.as_str()), Some(class));
    let classes: Vec<&str> = record.attempts.iter().map(class_of).collect();
    assert_eq!(classes, [class]);
    assert_eq!(record.attempts[0].status, Some(status));
    assert_eq!(rig.upstream.received().len(), 1);
    assert_stats_count(&rig, class).await;
    rig.finish().await;
    (headers, message)
}

/// A stream that had started and then failed: the client got the first fragment, then an
/// `error` event, and the record says `class`.
async fn breaks_off(kit: &Kit, rig: Rig, class: &str) {
    let response = send(&rig, request_body(true, false)).await;
    let checked = read_stream(response).await;
    assert_eq!(checked.text(), "partial ");
    let error = checked.error.expect("an error event ends the stream");
    assert_eq!(error["type"], "api_error", "{error}");
    assert!(error["message"].is_string(), "{error}");
    let record = one_record(&rig).await;
    assert_eq!(record.outcome, ccr::record::Outcome::UpstreamFailed);
    assert_eq!(record.failure.map(|f| f.class.as_str()), Some(class));
    assert_eq!(
        record.attempts.len(),
        1,
        "never retried after the first byte"
    );
    assert_eq!(record.attempts[0].target, kit.target);
    assert_eq!(rig.upstream.received().len(), 1);
    assert_stats_count(&rig, class).await;
    rig.finish().await;
}

/// The scenarios, each a function of the provider's kit.
mod scenarios {
    use super::*;

    pub async fn text(kit: &Kit) {
        streams(kit, TEXT, false).await;
    }

    pub async fn text_folded(kit: &Kit) {
        folds(kit, TEXT, false).await;
    }

    pub async fn tool_in_fragments(kit: &Kit) {
        streams(kit, TOOL_IN_FRAGMENTS, false).await;
    }

    pub async fn tool_in_fragments_folded(kit: &Kit) {
        folds(kit, TOOL_IN_FRAGMENTS, false).await;
    }

    pub async fn two_tools(kit: &Kit) {
        streams(kit, TWO_TOOLS, false).await;
    }

    pub async fn two_tools_folded(kit: &Kit) {
        folds(kit, TWO_TOOLS, false).await;
    }

    pub async fn thinking(kit: &Kit) {
        streams(kit, THINKING, true).await;
    }

    pub async fn thinking_folded(kit: &Kit) {
        folds(kit, THINKING, true).await;
    }

    pub async fn rate_limited(kit: &Kit) {
        let (headers, _) = fails_before_the_stream(
            kit,
            (kit.rate_limited)("7"),
            429,
            "rate_limit_error",
            "rate_limit",
        )
        .await;
        assert_eq!(
            headers["retry-after"], "7",
            "Retry-After reaches the client"
        );
    }

    pub async fn server_error(kit: &Kit) {
        fails_before_the_stream(kit, (kit.server_error)(), 500, "api_error", "upstream_5xx").await;
    }

    pub async fn context_too_long(kit: &Kit) {
        let (_, message) = fails_before_the_stream(
            kit,
            (kit.context_too_long)(),
            400,
            "invalid_request_error",
            "context_too_long",
        )
        .await;
        assert!(
            ccr::failure::mentions_context_limit(&message),
            "the client is told the input is too long: {message}"
        );
    }

    pub async fn cut_stream(kit: &Kit) {
        let rig = Rig::start(kit, cut_off(kit), "", true).await;
        breaks_off(kit, rig, "stream_cut").await;
    }

    pub async fn idle_timeout(kit: &Kit) {
        let release = Arc::new(Notify::new());
        let rig = Rig::start(
            kit,
            stalled(kit, release.clone()),
            ", timeouts: { idle: 300ms }",
            true,
        )
        .await;
        breaks_off(kit, rig, "timeout").await;
        release.notify_one();
    }

    pub async fn claude_code_fixture(kit: &Kit) {
        let rig = Rig::start(kit, streamed(kit, TWO_TOOLS), "", false).await;
        let (headers, body) = fixture();
        let mut request = messages_request(&rig.ccr, body);
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = tokio::time::timeout(PATIENCE, request.send())
            .await
            .expect("ccr answers in time")
            .unwrap();
        assert_eq!(response.headers()["x-ccr-provider"], kit.name);
        let checked = read_stream(response).await;
        assert!(checked.error.is_none(), "{:?}", checked.error);
        assert_eq!(checked.blocks, expected_blocks(TWO_TOOLS));
        assert_eq!(checked.stop_reason.as_deref(), Some("tool_use"));
        assert_completed(kit, &rig).await;
        rig.finish().await;
    }
}

/// Every scenario, in the order the table lists them.
const SCENARIOS: &[&str] = &[
    "text",
    "text_folded",
    "tool_in_fragments",
    "tool_in_fragments_folded",
    "two_tools",
    "two_tools_folded",
    "thinking",
    "thinking_folded",
    "rate_limited",
    "server_error",
    "context_too_long",
    "cut_stream",
    "idle_timeout",
    "claude_code_fixture",
];

/// What every provider must run; the rest may be marked not applicable, with a reason.
const REQUIRED: &[&str] = &[
    "text",
    "text_folded",
    "tool_in_fragments",
    "tool_in_fragments_folded",
    "two_tools",
    "two_tools_folded",
    "rate_limited",
    "server_error",
    "context_too_long",
    "cut_stream",
    "idle_timeout",
    "claude_code_fixture",
];

/// One module per provider, one test per scenario it runs, and the matrix for the check
/// that every scenario is either run or marked not applicable with a reason.
macro_rules! conformance {
    ($(
        $provider:ident: $kit:ident {
            run: [$($scenario:ident),* $(,)?],
            not_applicable: [$($skipped:ident: $reason:literal),* $(,)?] $(,)?
        }
    )*) => {
        $(
            mod $provider {
                $(
                    #[tokio::test]
                    async fn $scenario() {
                        super::scenarios::$scenario(&super::$kit).await;
                    }
                )*
            }
        )*

        /// (provider, kit name, scenarios run, scenarios not applicable with the reason).
        const MATRIX: &[(&str, &str, &[&str], &[(&str, &str)])] = &[$(
            (
                stringify!($provider),
                $kit.name,
                &[$(stringify!($scenario)),*],
                &[$((stringify!($skipped), $reason)),*],
            ),
        )*];
    };
}

conformance! {
    anthropic: ANTHROPIC {
        run: [
            text, text_folded, tool_in_fragments, tool_in_fragments_folded, two_tools,
            two_tools_folded, thinking, thinking_folded, rate_limited, server_error,
            context_too_long, cut_stream, idle_timeout, claude_code_fixture,
        ],
        not_applicable: [],
    }
    openai: OPENAI {
        run: [
            text, text_folded, tool_in_fragments, tool_in_fragments_folded, two_tools,
            two_tools_folded, thinking, thinking_folded, rate_limited, server_error,
            context_too_long, cut_stream, idle_timeout, claude_code_fixture,
        ],
        not_applicable: [],
    }
    gemini: GEMINI {
        run: [
            text, text_folded, tool_in_fragments, tool_in_fragments_folded, two_tools,
            two_tools_folded, thinking, thinking_folded, rate_limited, server_error,
            context_too_long, cut_stream, idle_timeout, claude_code_fixture,
        ],
        not_applicable: [],
    }
    codewhisperer: CODEWHISPERER {
        run: [
            text, text_folded, tool_in_fragments, tool_in_fragments_folded, two_tools,
            two_tools_folded, rate_limited, server_error, context_too_long, cut_stream,
            idle_timeout, claude_code_fixture,
        ],
        not_applicable: [
            thinking: "CodeWhisperer's event stream has no thinking or reasoning events",
            thinking_folded: "CodeWhisperer's event stream has no thinking or reasoning events",
        ],
    }
}

#[test]
fn every_provider_runs_or_excuses_every_scenario() {
    for (provider, name, ran, skipped) in MATRIX {
        assert_eq!(provider, name, "the row's module is named after its kit");
        let mut seen: Vec<&str> = ran.to_vec();
        for (scenario, reason) in *skipped {
            assert!(
                !REQUIRED.contains(scenario),
                "{provider}: {scenario} is required of every provider"
            );
            assert!(
                !reason.trim().is_empty(),
                "{provider}: say why {scenario} does not apply"
            );
            seen.push(scenario);
        }
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            seen.len(),
            "{provider}: a scenario listed twice"
        );
        let mut all = SCENARIOS.to_vec();
        all.sort_unstable();
        assert_eq!(
            sorted, all,
            "{provider}: every scenario is run or marked not applicable"
        );
    }
}
