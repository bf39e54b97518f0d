//! The Gemini provider end to end: a client speaking Anthropic, ccr converting, a mock Gemini
//! API on loopback answering `streamGenerateContent?alt=sse` and `generateContent`.

use serde_json::{Value, json};

use crate::support::mock_upstream::{MockUpstream, Received, Reply};
use crate::support::stream_checker::{self, Block, Seen, check_stream};
use crate::support::{Ccr, anthropic_error, class_of, messages_request, single_attempt};

const KEY: &str = "AIzaSy-gemini-test-key-0001";
const MODEL: &str = "gemini-2.5-pro";
const STREAM_PATH: &str = "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse";
const WHOLE_PATH: &str = "/v1beta/models/gemini-2.5-pro:generateContent";

fn gemini_config(base_url: &str, model: &str, provider_extra: &str) -> String {
    format!(
        "server:\n  host: 127.0.0.1\n  port: 0\nproviders:\n  gm:\n    type: gemini\n    base_url: {base_url}\n    api_key: {KEY}\n{provider_extra}routes:\n  default: [gm/{model}]\n"
    )
}

fn parts(parts: Value) -> Value {
    json!({"candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}]})
}

fn text(t: &str) -> Value {
    parts(json!([{"text": t}]))
}

fn finished(reason: &str) -> Value {
    json!({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": reason, "index": 0}],
           "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 5, "totalTokenCount": 25}})
}

/// Gemini's SSE: one response per event, CRLF-framed, no `[DONE]`.
fn sse(responses: &[Value]) -> String {
    responses
        .iter()
        .map(|r| format!("data: {r}\r\n\r\n"))
        .collect()
}

/// The one `generateContent` response a stream adds up to: parts of one kind in a row
/// joined, as Gemini answers them whole.
fn whole(responses: &[Value]) -> String {
    let mut joined: Vec<Value> = Vec::new();
    let mut last = json!({});
    for response in responses {
        let candidate = &response["candidates"][0];
        for part in candidate["content"]["parts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let same_kind = |p: &Value| {
                p.get("text").is_some()
                    && part.get("text").is_some()
                    && p["thought"] == part["thought"]
            };
            match joined.last_mut() {
                Some(previous) if same_kind(previous) => {
                    let more = part["text"].as_str().unwrap();
                    let text = format!("{}{more}", previous["text"].as_str().unwrap());
                    previous["text"] = json!(text);
                }
                _ => joined.push(part.clone()),
            }
        }
        if candidate.get("finishReason").is_some() {
            last = response.clone();
        }
    }
    last["candidates"][0]["content"]["parts"] = Value::Array(joined);
    last.to_string()
}

fn body(stream: bool) -> String {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 1000, "stream": stream,
           "messages": [{"role": "user", "content": "hi"}]})
    .to_string()
}

/// The blocks without what differs per response: thinking signatures (ccr's, checked) and
/// tool ids (they carry Gemini's per-response signatures; checked to be Anthropic ids).
fn without_signatures(blocks: &[Block]) -> Vec<Block> {
    stream_checker::without_signatures(blocks, "ccr-sig:")
        .into_iter()
        .map(|b| match b {
            Block::ToolUse { id, name, input } => {
                assert!(id.starts_with("toolu_"), "{id}");
                Block::ToolUse {
                    id: String::new(),
                    name,
                    input,
                }
            }
            other => other,
        })
        .collect()
}

/// Every request carries the key in its header and nowhere in its URL.
fn assert_key_in_header_only(received: &Received) {
    assert_eq!(received.headers["x-goog-api-key"], KEY);
    assert!(
        !received.path_and_query.contains(KEY) && !received.path_and_query.contains("key="),
        "{}",
        received.path_and_query
    );
    assert!(received.headers.get("authorization").is_none());
    assert!(received.headers.get("x-api-key").is_none());
}

/// Runs one scripted answer through ccr, streaming (SSE, `byte_per_write` if asked) and not
/// (one `generateContent` response), checks the stream's grammar and that both modes agree,
/// and returns what each client saw.
async fn both_modes(responses: &[Value], byte_per_write: bool) -> (Seen, Seen) {
    let upstream = MockUpstream::start(Reply::Json(whole(responses))).await;
    upstream.then(Reply::Sse {
        body: sse(responses),
        byte_per_write,
    });
    let ccr = Ccr::start(&gemini_config(&upstream.base_url(), MODEL, "")).await;

    let response = messages_request(&ccr, body(true)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ccr-provider"], "gm");
    let checked = check_stream(&response.text().await.unwrap());
    assert!(checked.error.is_none(), "{:?}", checked.error);
    assert_eq!(
        checked.message_start["message"]["model"],
        "claude-sonnet-4-5"
    );
    let streamed = Seen::streamed(&checked);

    let response = messages_request(&ccr, body(false)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let message: Value = response.json().await.unwrap();
    let folded = Seen::folded(&message);
    assert_eq!(
        without_signatures(&streamed.blocks),
        without_signatures(&folded.blocks),
        "streaming and non-streaming agree"
    );
    assert_eq!(streamed.stop_reason, folded.stop_reason);
    assert_eq!(streamed.usage, folded.usage);

    let received = upstream.received();
    let paths: Vec<&str> = received.iter().map(|r| r.path_and_query.as_str()).collect();
    assert_eq!(paths, [STREAM_PATH, WHOLE_PATH]);
    for request in &received {
        assert_key_in_header_only(request);
        let sent: Value = serde_json::from_slice(&request.body).unwrap();
        assert!(sent.get("model").is_none(), "the model is in the path");
        assert_eq!(
            sent["contents"],
            json!([{"role": "user", "parts": [{"text": "hi"}]}])
        );
    }
    ccr.shutdown().await;
    (streamed, folded)
}

#[tokio::test]
async fn streaming_text_in_crlf_frames_one_byte_per_write() {
    let (streamed, _) = both_modes(
        &[text("héllo, "), text("wörld — 你好 🎉"), finished("STOP")],
        true,
    )
    .await;
    assert_eq!(
        streamed.blocks,
        [Block::Text("héllo, wörld — 你好 🎉".into())]
    );
    assert_eq!(streamed.stop_reason, "end_turn");
}

#[tokio::test]
async fn thought_parts_become_a_signed_thinking_block() {
    let (streamed, _) = both_modes(
        &[
            parts(json!([{"text": "let me ", "thought": true}])),
            parts(json!([{"text": "think", "thought": true}])),
            text("answer"),
            finished("STOP"),
        ],
        false,
    )
    .await;
    assert_eq!(
        without_signatures(&streamed.blocks),
        [
            Block::Thinking {
                thinking: "let me think".into(),
                signature: String::new()
            },
            Block::Text("answer".into())
        ]
    );
}

#[tokio::test]
async fn a_function_call_becomes_tool_use_with_its_arguments() {
    let args =
        json!({"file_path": "/tmp/a \"quoted\" näme.txt", "limit": 20, "nested": {"ok": true}});
    let (streamed, _) = both_modes(
        &[
            parts(json!([{"functionCall": {"name": "Read", "args": args}}])),
            finished("STOP"),
        ],
        false,
    )
    .await;
    let [Block::ToolUse { id, name, input }] = &streamed.blocks[..] else {
        panic!("{:?}", streamed.blocks)
    };
    assert!(id.starts_with("toolu_"), "{id}");
    assert_eq!((name.as_str(), input), ("Read", &args));
    assert_eq!(streamed.stop_reason, "tool_use", "Gemini says STOP");
}

#[tokio::test]
async fn two_function_calls_in_one_turn_after_text() {
    let (streamed, folded) = both_modes(
        &[
            text("I'll look."),
            parts(json!([
                {"functionCall": {"name": "Glob", "args": {"pattern": "*.rs"}}},
                {"functionCall": {"name": "Grep", "args": {"q": "fn main"}}}
            ])),
            finished("STOP"),
        ],
        false,
    )
    .await;
    let summary: Vec<(String, Value)> = streamed
        .blocks
        .iter()
        .map(|b| match b {
            Block::Text(t) => ("text".to_string(), json!(t)),
            Block::ToolUse { name, input, .. } => (name.clone(), input.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("text".to_string(), json!("I'll look.")),
            ("Glob".to_string(), json!({"pattern": "*.rs"})),
            ("Grep".to_string(), json!({"q": "fn main"})),
        ]
    );
    let ids = |blocks: &[Block]| -> Vec<String> {
        blocks
            .iter()
            .filter_map(|b| match b {
                Block::ToolUse { id, .. } => Some(id.clone()),
                _ => None,
            })
            .collect()
    };
    let streamed_ids = ids(&streamed.blocks);
    assert_ne!(streamed_ids[0], streamed_ids[1], "each call its own id");
    assert_eq!(ids(&folded.blocks).len(), 2);
    assert_eq!(
        (streamed.stop_reason.as_str(), folded.stop_reason.as_str()),
        ("tool_use", "tool_use")
    );
}

#[tokio::test]
async fn max_tokens_is_max_tokens() {
    let (streamed, folded) = both_modes(&[text("trunc"), finished("MAX_TOKENS")], false).await;
    assert_eq!(
        (streamed.stop_reason.as_str(), folded.stop_reason.as_str()),
        ("max_tokens", "max_tokens")
    );
}

#[tokio::test]
async fn usage_splits_cached_tokens_out_of_the_prompt_and_counts_thoughts_as_output() {
    let mut last = finished("STOP");
    last["usageMetadata"] = json!({"promptTokenCount": 1200, "cachedContentTokenCount": 1000,
        "candidatesTokenCount": 50, "thoughtsTokenCount": 14, "totalTokenCount": 1264});
    let mut early = text("some text");
    // Cumulative: an early chunk's figures are replaced, never added.
    early["usageMetadata"] = json!({"promptTokenCount": 1200, "cachedContentTokenCount": 1000, "candidatesTokenCount": 3});
    let (streamed, folded) = both_modes(&[early, last], false).await;
    for usage in [&streamed.usage, &folded.usage] {
        assert_eq!(usage["input_tokens"], 200, "{usage}");
        assert_eq!(usage["cache_read_input_tokens"], 1000);
        assert_eq!(usage["cache_creation_input_tokens"], 0);
        assert_eq!(usage["output_tokens"], 64);
    }
}

/// An error status from Gemini, through a single attempt: what the client is told.
async fn refused(
    status: u16,
    error: Value,
) -> (
    u16,
    String,
    String,
    reqwest::header::HeaderMap,
    Option<String>,
) {
    let upstream = MockUpstream::start(Reply::Status {
        status,
        headers: vec![],
        body: json!({ "error": error }).to_string(),
    })
    .await;
    let ccr = Ccr::start(&single_attempt(&gemini_config(
        &upstream.base_url(),
        MODEL,
        "",
    )))
    .await;
    let response = messages_request(&ccr, body(true)).send().await.unwrap();
    let headers = response.headers().clone();
    let (got, kind, message) = anthropic_error(response).await;
    assert!(!message.contains(KEY), "no credential in a message");
    let record = ccr.records.wait_for(1).await[0].clone();
    let class = record.attempts.first().map(|a| class_of(a).to_string());
    ccr.shutdown().await;
    (got, kind, message, headers, class)
}

#[tokio::test]
async fn resource_exhausted_is_a_rate_limit_with_gemini_s_delay_as_retry_after() {
    let (status, kind, message, headers, class) = refused(
        429,
        json!({"code": 429, "status": "RESOURCE_EXHAUSTED",
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "11.2s"}
        ]}),
    )
    .await;
    assert_eq!((status, kind.as_str()), (429, "rate_limit_error"));
    assert!(
        message.starts_with("gm answered 429: You exceeded your current quota"),
        "{message}"
    );
    assert_eq!(headers["retry-after"], "12", "the delay, rounded up");
    assert_eq!(class.as_deref(), Some("rate_limit"));
}

#[tokio::test]
async fn refused_keys_are_auth_failures_whatever_status_gemini_uses() {
    let (status, kind, message, _, class) = refused(
        400,
        json!({"code": 400, "status": "INVALID_ARGUMENT", "message": "API key not valid. Please pass a valid API key.",
               "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}),
    )
    .await;
    assert_eq!((status, kind.as_str()), (401, "authentication_error"));
    assert!(
        message.contains("API key not valid") && message.contains("api_key"),
        "{message}"
    );
    assert_eq!(class.as_deref(), Some("auth"));

    let (status, kind, _, _, class) = refused(
        403,
        json!({"code": 403, "status": "PERMISSION_DENIED", "message": "Method doesn't allow unregistered callers."}),
    )
    .await;
    assert_eq!((status, kind.as_str()), (403, "permission_error"));
    assert_eq!(class.as_deref(), Some("auth"));
}

#[tokio::test]
async fn overload_and_context_length_keep_their_meaning() {
    let (status, kind, _, _, class) = refused(
        503,
        json!({"code": 503, "status": "UNAVAILABLE", "message": "The model is overloaded. Please try again later."}),
    )
    .await;
    assert_eq!((status, kind.as_str()), (503, "overloaded_error"));
    assert_eq!(class.as_deref(), Some("upstream_5xx"));

    let (status, kind, message, _, class) = refused(
        400,
        json!({"code": 400, "status": "INVALID_ARGUMENT",
               "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."}),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "invalid_request_error"));
    assert!(message.starts_with("prompt is too long: "), "{message}");
    assert_eq!(class.as_deref(), Some("context_too_long"));
}

#[tokio::test]
async fn an_error_mid_stream_ends_with_an_error_event() {
    let script = sse(&[
        text("partial"),
        json!({"error": {"code": 503, "status": "UNAVAILABLE", "message": "The model is overloaded."}}),
    ]);
    let upstream = MockUpstream::start(Reply::Sse {
        body: script,
        byte_per_write: false,
    })
    .await;
    let ccr = Ccr::start(&gemini_config(&upstream.base_url(), MODEL, "")).await;
    let response = messages_request(&ccr, body(true)).send().await.unwrap();
    let checked = check_stream(&response.text().await.unwrap());
    assert_eq!(checked.text(), "partial");
    let error = checked.error.expect("an error event last");
    assert_eq!(error["type"], "overloaded_error");
    assert_eq!(error["message"], "gm: The model is overloaded.");
    let record = &ccr.records.wait_for(1).await[0];
    assert_eq!(record.outcome, ccr::record::Outcome::UpstreamFailed);
    ccr.shutdown().await;
}

#[tokio::test]
async fn a_thought_signature_comes_back_with_its_call_in_the_next_request() {
    const SIGNATURE: &str = "EvgBCvUBAdHtim9qC9J0mF/oSF8p3kPXCg+a6sPH1aFx3HHjZUvpdCK+1Gs=";
    let model = "gemini-3-pro-preview";
    let calls = sse(&[
        parts(json!([{"text": "planning", "thought": true}])),
        // In parallel calls Gemini 3 signs only the first.
        parts(json!([
            {"functionCall": {"name": "Read", "args": {"file_path": "/a"}}, "thoughtSignature": SIGNATURE},
            {"functionCall": {"name": "Read", "args": {"file_path": "/b"}}}
        ])),
        finished("STOP"),
    ]);
    let upstream = MockUpstream::start(Reply::Sse {
        body: sse(&[text("done"), finished("STOP")]),
        byte_per_write: false,
    })
    .await;
    upstream.then(Reply::Sse {
        body: calls,
        byte_per_write: false,
    });
    let ccr = Ccr::start(&gemini_config(&upstream.base_url(), model, "")).await;

    let first = json!({"model": "claude-sonnet-4-5", "max_tokens": 1000, "stream": true,
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "messages": [{"role": "user", "content": "read a and b"}]});
    let response = messages_request(&ccr, first.to_string())
        .send()
        .await
        .unwrap();
    let checked = check_stream(&response.text().await.unwrap());
    assert_eq!(checked.stop_reason.as_deref(), Some("tool_use"));
    let tool_uses: Vec<Value> = checked
        .blocks
        .iter()
        .filter_map(|b| match b {
            Block::ToolUse { id, name, input } => {
                Some(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
            }
            _ => None,
        })
        .collect();
    assert_eq!(tool_uses.len(), 2);
    let id_of = |i: usize| tool_uses[i]["id"].as_str().unwrap().to_string();
    for i in 0..2 {
        let id = id_of(i);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "a valid Anthropic id: {id}"
        );
    }

    // Claude Code sends the calls back without the thinking block.
    let second = json!({"model": "claude-sonnet-4-5", "max_tokens": 1000, "stream": true,
    "messages": [
        {"role": "user", "content": "read a and b"},
        {"role": "assistant", "content": tool_uses},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": id_of(0), "content": "contents of a"},
            {"type": "tool_result", "tool_use_id": id_of(1), "content": "contents of b"}
        ]}
    ]});
    let response = messages_request(&ccr, second.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(check_stream(&response.text().await.unwrap()).text(), "done");

    let received = upstream.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[1].path_and_query,
        "/v1beta/models/gemini-3-pro-preview:streamGenerateContent?alt=sse"
    );
    let sent: Value = serde_json::from_slice(&received[1].body).unwrap();
    assert_eq!(
        sent["contents"][1],
        json!({"role": "model", "parts": [
            {"functionCall": {"name": "Read", "args": {"file_path": "/a"}}, "thoughtSignature": SIGNATURE},
            {"functionCall": {"name": "Read", "args": {"file_path": "/b"}}}
        ]}),
        "exactly what Gemini signed goes back, nothing invented"
    );
    assert_eq!(
        sent["contents"][2],
        json!({"role": "user", "parts": [
            {"functionResponse": {"name": "Read", "response": {"content": "contents of a"}}},
            {"functionResponse": {"name": "Read", "response": {"content": "contents of b"}}}
        ]})
    );
    ccr.shutdown().await;
}

#[tokio::test]
async fn a_tool_loop_history_reaches_gemini_in_its_own_form() {
    let upstream = MockUpstream::start(Reply::Sse {
        body: sse(&[text("ok"), finished("STOP")]),
        byte_per_write: false,
    })
    .await;
    let options = "    models:\n      gemini-2.5-pro: { max_tokens: 8192 }\n";
    let ccr = Ccr::start(&gemini_config(&upstream.base_url(), MODEL, options)).await;
    let request = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 64000, "stream": true,
        "system": [{"type":"text","text":"You are Claude Code."},{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],
        "temperature": 0.5, "top_p": 0.9, "top_k": 40, "stop_sequences": ["</done>"],
        "thinking": {"type":"enabled","budget_tokens":2000},
        "tools": [
            {"name":"Read","description":"Read a file","input_schema":{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{"file_path":{"type":"string"},"limit":{"type":"integer","exclusiveMinimum":0}},"required":["file_path"],"additionalProperties":false}},
            {"type":"web_search_20250305","name":"web_search"}
        ],
        "tool_choice": {"type":"tool","name":"Read"},
        "messages": [
            {"role":"user","content":[{"type":"text","text":"look at this"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}]},
            {"role":"system","content":"mid-conversation reminder"},
            {"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"ccr-sig:x"},{"type":"text","text":"Reading."},{"type":"tool_use","id":"toolu_01","name":"Read","input":{"file_path":"/a"}}]},
            {"role":"user","content":[{"type":"text","text":"and then?"},{"type":"tool_result","tool_use_id":"toolu_01","content":"no such file","is_error":true}]}
        ]
    });
    let response = messages_request(&ccr, request.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    check_stream(&response.text().await.unwrap());
    let received = upstream.received();
    assert_key_in_header_only(&received[0]);
    let sent: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(
        sent["systemInstruction"],
        json!({"parts": [{"text": "You are Claude Code.\nBe brief."}]})
    );
    assert_eq!(
        sent["contents"],
        json!([
            {"role": "user", "parts": [
                {"text": "look at this"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                {"text": "mid-conversation reminder"}
            ]},
            {"role": "model", "parts": [
                {"text": "Reading."},
                {"functionCall": {"name": "Read", "args": {"file_path": "/a"}}}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "Read", "response": {"error": "no such file"}}},
                {"text": "and then?"}
            ]}
        ])
    );
    assert_eq!(
        sent["tools"],
        json!([{"functionDeclarations": [{"name": "Read", "description": "Read a file", "parameters": {
            "type": "object",
            "properties": {"file_path": {"type": "string"}, "limit": {"type": "integer"}},
            "required": ["file_path"]
        }}]}]),
        "the server tool is dropped, the schema cut down to Gemini's subset"
    );
    assert_eq!(
        sent["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["Read"]}})
    );
    assert_eq!(
        sent["generationConfig"],
        json!({"maxOutputTokens": 8192, "temperature": 0.5, "topP": 0.9, "topK": 40,
               "stopSequences": ["</done>"],
               "thinkingConfig": {"thinkingBudget": 2000, "includeThoughts": true}})
    );
    assert!(!received[0].body.windows(13).any(|w| w == b"cache_control"));
    ccr.shutdown().await;
}
