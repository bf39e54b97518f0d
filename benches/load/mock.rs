//! The mock upstream of the load benchmark: one loopback HTTP server answering all three wire
//! formats from bytes built once, so that its own cost is the same on every path.
//!
//! `POST …/chat/completions` answers OpenAI-compatible SSE (or one JSON completion when the
//! request does not ask to stream), `POST …/generateAssistantResponse` answers CodeWhisperer
//! event-stream frames, and `POST …/messages` answers Anthropic SSE (or JSON). With `pacing`
//! every chunk is its own write, `pacing` apart; without it the whole answer is one write.
//! Under `/status/CODE/…` every request is answered `CODE` with an Anthropic error body.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

use crate::mock_upstream::cw_event;

/// Words streamed per answer: the 64 chunks of the issue's measurements.
pub const CHUNKS: usize = 64;

/// What the mock answers, each as its chunks (one chunk per event or frame).
pub struct Answers {
    openai_sse: Vec<Bytes>,
    openai_json: Bytes,
    anthropic_sse: Vec<Bytes>,
    anthropic_json: Bytes,
    codewhisperer: Vec<Bytes>,
}

impl Answers {
    /// `tool_fragments` > 0 adds one tool call whose arguments arrive in that many pieces.
    pub fn new(tool_fragments: usize) -> Answers {
        Answers {
            openai_sse: openai_sse(tool_fragments),
            openai_json: openai_json(),
            anthropic_sse: anthropic_sse(),
            anthropic_json: anthropic_json(),
            codewhisperer: codewhisperer(tool_fragments),
        }
    }

    /// The streamed CodeWhisperer answer's length: the benchmark checks each one arrived whole.
    pub fn codewhisperer_len(&self) -> usize {
        self.codewhisperer.iter().map(Bytes::len).sum()
    }
}

fn word(i: usize) -> String {
    format!("word{i} ")
}

fn openai_chunk(delta: serde_json::Value, finish: Option<&str>) -> Bytes {
    let chunk = json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "gpt-bench", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    Bytes::from(format!("data: {chunk}\n\n"))
}

fn openai_sse(tool_fragments: usize) -> Vec<Bytes> {
    let mut chunks = vec![openai_chunk(json!({"role": "assistant"}), None)];
    chunks.extend((0..CHUNKS).map(|i| openai_chunk(json!({"content": word(i)}), None)));
    let arguments = r#"{"command":"ls -la /home/user/project","description":"List the files"}"#;
    if tool_fragments > 0 {
        chunks.push(openai_chunk(json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": ""}}]}), None));
        for piece in fragments(arguments, tool_fragments) {
            chunks.push(openai_chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                None,
            ));
        }
    }
    let finish = if tool_fragments > 0 {
        "tool_calls"
    } else {
        "stop"
    };
    chunks.push(openai_chunk(json!({}), Some(finish)));
    let usage = json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "gpt-bench", "choices": [], "usage": {"prompt_tokens": 20_000, "completion_tokens": CHUNKS, "total_tokens": 20_000 + CHUNKS}});
    chunks.push(Bytes::from(format!("data: {usage}\n\n")));
    chunks.push(Bytes::from_static(b"data: [DONE]\n\n"));
    chunks
}

fn fragments(text: &str, count: usize) -> Vec<String> {
    let size = text.len().div_ceil(count).max(1);
    text.as_bytes()
        .chunks(size)
        .map(|piece| String::from_utf8(piece.to_vec()).expect("ASCII arguments"))
        .collect()
}

fn answer_text() -> String {
    (0..CHUNKS).map(word).collect()
}

fn openai_json() -> Bytes {
    let body = json!({"id": "chatcmpl-bench", "object": "chat.completion", "created": 1_700_000_000, "model": "gpt-bench", "choices": [{"index": 0, "message": {"role": "assistant", "content": answer_text()}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 20_000, "completion_tokens": CHUNKS, "total_tokens": 20_000 + CHUNKS}});
    Bytes::from(body.to_string())
}

fn anthropic_event(name: &str, data: serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn anthropic_sse() -> Vec<Bytes> {
    let mut events = vec![
        anthropic_event(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-bench", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 20_000, "output_tokens": 1}}}),
        ),
        anthropic_event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    events.extend((0..CHUNKS).map(|i| anthropic_event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word(i)}}))));
    events.push(anthropic_event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(anthropic_event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": CHUNKS}})));
    events.push(anthropic_event(
        "message_stop",
        json!({"type": "message_stop"}),
    ));
    events
}

fn anthropic_json() -> Bytes {
    let body = json!({"id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-bench", "content": [{"type": "text", "text": answer_text()}], "stop_reason": "end_turn", "stop_sequence": null, "usage": {"input_tokens": 20_000, "output_tokens": CHUNKS}});
    Bytes::from(body.to_string())
}

fn codewhisperer(tool_fragments: usize) -> Vec<Bytes> {
    let mut frames = vec![cw_event(
        "messageMetadataEvent",
        json!({"conversationId": "c-bench", "utteranceId": "u-bench"}),
    )];
    frames.extend(
        (0..CHUNKS).map(|i| cw_event("assistantResponseEvent", json!({"content": word(i)}))),
    );
    if tool_fragments > 0 {
        let arguments = r#"{"command":"ls -la /home/user/project","description":"List the files"}"#;
        for piece in fragments(arguments, tool_fragments) {
            frames.push(cw_event(
                "toolUseEvent",
                json!({"toolUseId": "tooluse_1", "name": "Bash", "input": piece}),
            ));
        }
        frames.push(cw_event(
            "toolUseEvent",
            json!({"toolUseId": "tooluse_1", "name": "Bash", "stop": true}),
        ));
    }
    frames.push(cw_event(
        "contextUsageEvent",
        json!({"contextUsagePercentage": 12.5}),
    ));
    frames.push(cw_event(
        "meteringEvent",
        json!({"unit": "credit", "usage": 0.1}),
    ));
    frames.into_iter().map(Bytes::from).collect()
}

type MockBody = BoxBody<Bytes, Infallible>;

/// Starts the mock on a free loopback port; it runs until the process ends.
pub async fn start(answers: Answers, pacing: Option<Duration>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the mock");
    let addr = listener.local_addr().expect("mock address");
    let answers = Arc::new(answers);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let answers = answers.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let answers = answers.clone();
                    async move { Ok::<_, Infallible>(answer(&answers, pacing, request).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn answer(
    answers: &Answers,
    pacing: Option<Duration>,
    request: Request<Incoming>,
) -> Response<MockBody> {
    let path = request.uri().path().to_owned();
    let Ok(body) = request.into_body().collect().await else {
        return status(400);
    };
    let body = body.to_bytes();
    if let Some(code) = path
        .strip_prefix("/status/")
        .and_then(|rest| rest.split('/').next())
    {
        return failing(code.parse().unwrap_or(500));
    }
    // A search, not a parse, so the mock costs the same on every path; the benchmark's
    // bodies hold the flag once, compact, at the top level.
    let streaming = memchr::memmem::find(&body, b"\"stream\":true").is_some();
    let (chunks, content_type) = if path.ends_with("/chat/completions") {
        if !streaming {
            return json_response(answers.openai_json.clone());
        }
        (&answers.openai_sse, "text/event-stream")
    } else if path.ends_with("/messages") {
        if !streaming {
            return json_response(answers.anthropic_json.clone());
        }
        (&answers.anthropic_sse, "text/event-stream")
    } else if path.ends_with("/generateAssistantResponse") {
        (&answers.codewhisperer, "application/vnd.amazon.eventstream")
    } else {
        return status(404);
    };
    Response::builder()
        .header("content-type", content_type)
        .body(streamed(chunks, pacing))
        .expect("mock response")
}

fn streamed(chunks: &[Bytes], pacing: Option<Duration>) -> MockBody {
    let Some(pacing) = pacing else {
        return Full::new(chunks.concat().into()).boxed();
    };
    let chunks = std::collections::VecDeque::from(chunks.to_vec());
    let paced =
        futures_util::stream::unfold((chunks, true), move |(mut chunks, first)| async move {
            let chunk = chunks.pop_front()?;
            if !first {
                tokio::time::sleep(pacing).await;
            }
            Some((Ok::<_, Infallible>(Frame::data(chunk)), (chunks, false)))
        });
    StreamBody::new(paced).boxed()
}

fn json_response(body: Bytes) -> Response<MockBody> {
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(body).boxed())
        .expect("mock response")
}

fn failing(code: u16) -> Response<MockBody> {
    let body = r#"{"type":"error","error":{"type":"api_error","message":"down"}}"#;
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())).boxed())
        .expect("mock response")
}

fn status(code: u16) -> Response<MockBody> {
    Response::builder()
        .status(code)
        .body(Full::new(Bytes::new()).boxed())
        .expect("mock response")
}
