//! The OpenAI-compatible provider end to end: a client speaking Anthropic, ccr converting,
//! a mock Chat Completions upstream on loopback.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::mock_upstream::{MockUpstream, Reply, openai_stream};
use crate::support::stream_checker::{Block, Seen, check_stream, without_signatures};
use crate::support::{
    Ccr, anthropic_error, fast_retries, fixture, messages_request, openai_config, single_attempt,
};

fn text(t: &str) -> Value {
    json!({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":t},"finish_reason":null}]})
}

fn reasoning(t: &str) -> Value {
    json!({"choices":[{"index":0,"delta":{"reasoning_content":t},"finish_reason":null}]})
}

fn tool_start(index: u32, id: &str, name: &str, args: &str) -> Value {
    json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":index,"id":id,"type":"function","function":{"name":name,"arguments":args}}]},"finish_reason":null}]})
}

fn tool_args(index: u32, args: &str) -> Value {
    json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":index,"function":{"arguments":args}}]},"finish_reason":null}]})
}

fn finish(reason: &str) -> Value {
    json!({"choices":[{"index":0,"delta":{},"finish_reason":reason}]})
}

fn usage(prompt: u64, completion: u64, cached: u64) -> Value {
    json!({"choices":[],"usage":{"prompt_tokens":prompt,"completion_tokens":completion,"prompt_tokens_details":{"cached_tokens":cached}}})
}

fn body(stream: bool) -> String {
    format!(
        r#"{{"model":"claude-sonnet-4-5","max_tokens":1000,"stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
    )
}

/// Runs one scripted upstream answer through ccr, streaming and not, checks both against
/// the grammar, and returns what each client saw.
async fn both_modes(chunks: &[Value], byte_per_write: bool) -> (Seen, Seen) {
    let script = openai_stream(chunks);
    let upstream = MockUpstream::start(Reply::Sse {
        body: script,
        byte_per_write,
    })
    .await;
    let ccr = Ccr::start(&openai_config(&upstream.base_url(), "deep", "", "")).await;

    let response = messages_request(&ccr, body(true)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let checked = check_stream(&response.text().await.unwrap());
    assert!(checked.error.is_none(), "{:?}", checked.error);
    assert_eq!(
        checked.message_start["message"]["model"], "claude-sonnet-4-5",
        "the client's model"
    );
    let streamed = Seen::streamed(&checked);

    let response = messages_request(&ccr, body(false)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let message: Value = response.json().await.unwrap();
    let folded = Seen::folded(&message);
    assert_eq!(
        without_signatures(&streamed.blocks, "ccr-sig:"),
        without_signatures(&folded.blocks, "ccr-sig:"),
        "streaming and non-streaming agree"
    );
    assert_eq!(streamed.stop_reason, folded.stop_reason);
    for received in upstream.received() {
        let sent: Value = serde_json::from_slice(&received.body).unwrap();
        assert_eq!(
            sent["stream"], true,
            "the upstream is always asked to stream"
        );
        assert_eq!(received.path_and_query, "/v1/chat/completions");
        assert_eq!(received.headers["authorization"], "Bearer sk-oa-secret");
    }
    ccr.shutdown().await;
    (streamed, folded)
}

#[tokio::test]
async fn multibyte_text_split_one_byte_per_write() {
    let chunks = [
        text("héllo, "),
        text("wörld — 你好 🎉"),
        finish("stop"),
        usage(20, 5, 0),
    ];
    let (streamed, _) = both_modes(&chunks, true).await;
    assert_eq!(
        streamed.blocks,
        [Block::Text("héllo, wörld — 你好 🎉".into())]
    );
    assert_eq!(streamed.stop_reason, "end_turn");
}

#[tokio::test]
async fn reasoning_then_text_gives_a_signed_thinking_block() {
    let chunks = [
        reasoning("let me "),
        reasoning("think"),
        text("answer"),
        finish("stop"),
    ];
    let (streamed, _) = both_modes(&chunks, false).await;
    match &streamed.blocks[..] {
        [
            Block::Thinking {
                thinking,
                signature,
            },
            Block::Text(t),
        ] => {
            assert_eq!((thinking.as_str(), t.as_str()), ("let me think", "answer"));
            assert!(signature.starts_with("ccr-sig:"), "{signature}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn tool_arguments_in_many_fragments_cut_inside_keys_values_and_escapes() {
    let arguments = r#"{"file_path":"/tmp/a \"quoted\" näme.txt","limit":20,"nested":{"ok":true}}"#;
    let cuts = [0, 3, 9, 15, 22, 25, 31, 38, 46, 55, 64, arguments.len()];
    let mut chunks = vec![tool_start(0, "call_abc", "Read", "")];
    for pair in cuts.windows(2) {
        chunks.push(tool_args(0, &arguments[pair[0]..pair[1]]));
    }
    chunks.push(finish("tool_calls"));
    let (streamed, _) = both_modes(&chunks, true).await;
    let expected: Value = serde_json::from_str(arguments).unwrap();
    assert_eq!(
        streamed.blocks,
        [Block::ToolUse {
            id: "call_abc".into(),
            name: "Read".into(),
            input: expected
        }]
    );
    assert_eq!(streamed.stop_reason, "tool_use");
}

#[tokio::test]
async fn two_tool_calls_and_text_before_them() {
    let chunks = [
        text("I'll look."),
        tool_start(0, "call_1", "Glob", r#"{"pattern":"#),
        tool_args(0, r#""*.rs"}"#),
        tool_start(1, "call_2", "Grep", r#"{"q":"x"}"#),
        finish("tool_calls"),
    ];
    let (streamed, _) = both_modes(&chunks, false).await;
    assert_eq!(
        streamed.blocks,
        [
            Block::Text("I'll look.".into()),
            Block::ToolUse {
                id: "call_1".into(),
                name: "Glob".into(),
                input: json!({"pattern":"*.rs"})
            },
            Block::ToolUse {
                id: "call_2".into(),
                name: "Grep".into(),
                input: json!({"q":"x"})
            },
        ]
    );
}

#[tokio::test]
async fn a_tool_call_ended_by_stop_is_still_tool_use_and_empty_arguments_are_an_empty_object() {
    let chunks = [tool_start(0, "call_9", "TodoRead", ""), finish("stop")];
    let (streamed, folded) = both_modes(&chunks, false).await;
    assert_eq!(
        streamed.blocks,
        [Block::ToolUse {
            id: "call_9".into(),
            name: "TodoRead".into(),
            input: json!({})
        }]
    );
    assert_eq!(
        (streamed.stop_reason.as_str(), folded.stop_reason.as_str()),
        ("tool_use", "tool_use")
    );
}

#[tokio::test]
async fn length_is_max_tokens_and_cached_tokens_are_split_out_of_input() {
    let chunks = [text("trunc"), finish("length"), usage(1200, 64, 1000)];
    let (streamed, folded) = both_modes(&chunks, false).await;
    assert_eq!(streamed.stop_reason, "max_tokens");
    for usage in [&streamed.usage, &folded.usage] {
        assert_eq!(usage["input_tokens"], 200);
        assert_eq!(usage["cache_read_input_tokens"], 1000);
        assert_eq!(usage["cache_creation_input_tokens"], 0);
        assert_eq!(usage["output_tokens"], 64);
    }
}

async fn upstream_status(
    status: u16,
    body: &str,
    headers: Vec<(&'static str, String)>,
) -> (u16, String, String, reqwest::header::HeaderMap) {
    let upstream = MockUpstream::start(Reply::Status {
        status,
        headers,
        body: body.to_string(),
    })
    .await;
    let ccr = Ccr::start(&single_attempt(&openai_config(
        &upstream.base_url(),
        "deep",
        "",
        "",
    )))
    .await;
    let response = messages_request(&ccr, body_for_status())
        .send()
        .await
        .unwrap();
    let headers = response.headers().clone();
    let (status, kind, message) = anthropic_error(response).await;
    assert!(
        !message.contains("sk-oa-secret"),
        "no credential in a message"
    );
    ccr.shutdown().await;
    (status, kind, message, headers)
}

fn body_for_status() -> String {
    body(true)
}

#[tokio::test]
async fn upstream_error_statuses_become_anthropic_errors() {
    let rate = r#"{"error":{"message":"Rate limit reached for deep","type":"rate_limit_exceeded","code":"rate_limit"}}"#;
    let (status, kind, message, headers) =
        upstream_status(429, rate, vec![("retry-after", "3".into())]).await;
    assert_eq!((status, kind.as_str()), (429, "rate_limit_error"));
    assert!(
        message.starts_with("oa answered 429: Rate limit reached"),
        "{message}"
    );
    assert_eq!(headers["retry-after"], "3");

    let (status, kind, message, _) = upstream_status(500, "internal oops", vec![]).await;
    assert_eq!((status, kind.as_str()), (500, "api_error"));
    assert!(message.contains("internal oops"), "{message}");

    let auth =
        r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}"#;
    let (status, kind, message, _) = upstream_status(401, auth, vec![]).await;
    assert_eq!((status, kind.as_str()), (401, "authentication_error"));
    assert!(
        message.contains("Incorrect API key") && message.contains("api_key"),
        "{message}"
    );
}

#[tokio::test]
async fn an_error_chunk_mid_stream_ends_with_an_error_event() {
    let script = openai_stream(&[
        text("partial"),
        json!({"error":{"message":"overloaded now","type":"server_overloaded"}}),
    ]);
    let upstream = MockUpstream::start(Reply::Sse {
        body: script,
        byte_per_write: false,
    })
    .await;
    let ccr = Ccr::start(&openai_config(&upstream.base_url(), "deep", "", "")).await;
    let response = messages_request(&ccr, body(true)).send().await.unwrap();
    let checked = check_stream(&response.text().await.unwrap());
    let error = checked.error.expect("an error event last");
    assert_eq!(error["type"], "overloaded_error");
    assert_eq!(error["message"], "oa: overloaded now");
    let record = &ccr.records.wait_for(1).await[0];
    assert_eq!(record.outcome, ccr::record::Outcome::UpstreamFailed);
    ccr.shutdown().await;
}

#[tokio::test]
async fn a_cut_stream_ends_with_an_error_event_without_hanging() {
    let script = openai_stream(&[text("half"), text(" an answer")]);
    let cut_at = script.find("an answer").unwrap();
    let upstream = MockUpstream::start(Reply::CutAfter {
        before: script[..cut_at].to_string(),
    })
    .await;
    let ccr = Ccr::start(&fast_retries(&openai_config(
        &upstream.base_url(),
        "deep",
        "    timeouts: { idle: 2s }\n",
        "",
    )))
    .await;
    let response = messages_request(&ccr, body(true)).send().await.unwrap();
    let text = tokio::time::timeout(Duration::from_secs(20), response.text())
        .await
        .expect("no hang")
        .unwrap();
    let checked = check_stream(&text);
    assert_eq!(checked.text(), "half");
    assert!(
        checked.error.expect("error event")["message"]
            .as_str()
            .unwrap()
            .contains("broke off")
    );

    // Non-streaming: a proper error status instead of a message.
    let response = messages_request(&ccr, body(false)).send().await.unwrap();
    let (status, kind, _) = anthropic_error(response).await;
    assert_eq!((status, kind.as_str()), (502, "api_error"));
    ccr.shutdown().await;
}

#[tokio::test]
async fn a_silent_upstream_mid_stream_hits_the_idle_timeout_with_pings_before() {
    let (upstream, release, _, _) = {
        let script = openai_stream(&[text("first"), finish("stop")]);
        let split = script.find("\n\ndata: ").unwrap() + 2;
        let release = std::sync::Arc::new(tokio::sync::Notify::new());
        let upstream = MockUpstream::start(Reply::StallMidStream {
            before: script[..split].to_string(),
            after: script[split..].to_string(),
            release: release.clone(),
        })
        .await;
        (upstream, release, script, split)
    };
    let ccr = Ccr::start(&openai_config(
        &upstream.base_url(),
        "deep",
        "    timeouts: { idle: 2s }\n",
        "  ping_interval: 100ms\n",
    ))
    .await;
    let response = messages_request(&ccr, body(true)).send().await.unwrap();
    let checked = check_stream(&response.text().await.unwrap());
    assert!(
        checked.pings >= 2,
        "pings while the upstream is silent: {}",
        checked.pings
    );
    let error = checked.error.expect("idle timeout error");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("did not send more of its response within 2s"),
        "{error}"
    );
    release.notify_one();
    ccr.shutdown().await;
}

#[tokio::test]
async fn a_slow_first_byte_is_served_fine() {
    let script = openai_stream(&[text("worth the wait"), finish("stop")]);
    let upstream = MockUpstream::start(Reply::Delayed {
        delay: Duration::from_secs(3),
        then: Box::new(Reply::Sse {
            body: script,
            byte_per_write: false,
        }),
    })
    .await;
    let ccr = Ccr::start(&openai_config(&upstream.base_url(), "deep", "", "")).await;
    let response = messages_request(&ccr, body(true)).send().await.unwrap();
    let checked = check_stream(&response.text().await.unwrap());
    assert_eq!(checked.text(), "worth the wait");
    ccr.shutdown().await;
}

#[tokio::test]
async fn the_claude_code_fixture_converts_streams_back_and_passes_the_checker() {
    let script = openai_stream(&[
        reasoning("plan"),
        text("Done."),
        tool_start(0, "call_x", "Bash", r#"{"command":"ls"}"#),
        finish("tool_calls"),
        usage(30000, 40, 0),
    ]);
    let upstream = MockUpstream::start(Reply::Sse {
        body: script,
        byte_per_write: false,
    })
    .await;
    let ccr = Ccr::start(&openai_config(&upstream.base_url(), "deep", "", "")).await;
    let (headers, fixture_body) = fixture();
    let mut request = messages_request(&ccr, fixture_body);
    for (name, value) in &headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let checked = check_stream(&response.text().await.unwrap());
    assert_eq!(checked.stop_reason.as_deref(), Some("tool_use"));
    assert_eq!(checked.blocks.len(), 3);
    let sent: Value = serde_json::from_slice(&upstream.received()[0].body).unwrap();
    assert_eq!(sent["model"], "deep");
    assert!(
        upstream.received()[0].headers.get("x-api-key").is_none(),
        "Anthropic headers stay home"
    );
    ccr.shutdown().await;
}

/// Sends `request` through ccr to a mock that answers a short text, and returns the body the
/// mock received.
async fn upstream_sees(request: Value, provider_extra: &str) -> Value {
    let script = openai_stream(&[text("ok"), finish("stop")]);
    let upstream = MockUpstream::start(Reply::Sse {
        body: script,
        byte_per_write: false,
    })
    .await;
    let ccr = Ccr::start(&openai_config(
        &upstream.base_url(),
        "deep",
        provider_extra,
        "",
    ))
    .await;
    let response = messages_request(&ccr, request.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    check_stream(&response.text().await.unwrap());
    let received = upstream.received();
    assert_eq!(
        received[0].headers["x-title"], "ccr-tests",
        "extra static headers are sent"
    );
    ccr.shutdown().await;
    serde_json::from_slice(&received[0].body).unwrap()
}

const PROVIDER_OPTIONS: &str = "    headers: { X-Title: ccr-tests }\n    models:\n      deep: { max_tokens: 8192, reasoning_effort: true }\n";

#[tokio::test]
async fn a_tool_loop_history_reaches_the_upstream_in_openai_form() {
    let request = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 64000, "stream": true,
        "system": [{"type":"text","text":"You are Claude Code."},{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],
        "temperature": 0.5, "top_p": 0.9, "stop_sequences": ["</done>"],
        "thinking": {"type":"enabled","budget_tokens":2000},
        "tools": [
            {"name":"Read","description":"Read a file","input_schema":{"type":"object","properties":{"file_path":{"type":"string"}},"required":["file_path"]}},
            {"type":"web_search_20250305","name":"web_search"}
        ],
        "tool_choice": {"type":"any","disable_parallel_tool_use":true},
        "messages": [
            {"role":"user","content":[{"type":"text","text":"look at this"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}]},
            {"role":"system","content":"mid-conversation reminder"},
            {"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"ccr-sig:x"},{"type":"text","text":"Reading."},{"type":"tool_use","id":"toolu_01","name":"Read","input":{"file_path":"/a"}},{"type":"tool_use","id":"toolu_02","name":"Read","input":{"file_path":"/b"}}]},
            {"role":"user","content":[{"type":"text","text":"and then?"},{"type":"tool_result","tool_use_id":"toolu_01","content":"contents of a"},{"type":"tool_result","tool_use_id":"toolu_02","content":[{"type":"text","text":"no such file"}],"is_error":true}]}
        ]
    });
    let sent = upstream_sees(request, PROVIDER_OPTIONS).await;
    assert_eq!(sent["model"], "deep");
    assert_eq!(sent["max_tokens"], 8192, "clamped to the model's limit");
    assert_eq!(
        (sent["temperature"].as_f64(), sent["top_p"].as_f64()),
        (Some(0.5), Some(0.9))
    );
    assert_eq!(sent["stop"], json!(["</done>"]));
    assert_eq!(sent["reasoning_effort"], "low");
    assert_eq!(sent["tool_choice"], "required");
    assert_eq!(sent["parallel_tool_calls"], false);
    assert_eq!(
        sent["tools"].as_array().unwrap().len(),
        1,
        "the server tool is dropped"
    );
    assert_eq!(
        sent["tools"][0]["function"]["parameters"]["required"],
        json!(["file_path"])
    );

    let messages = sent["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "system",
            "user",
            "system",
            "assistant",
            "tool",
            "tool",
            "user"
        ]
    );
    assert_eq!(messages[0]["content"], "You are Claude Code.\nBe brief.");
    assert_eq!(
        messages[1]["content"][1]["image_url"]["url"],
        "data:image/png;base64,iVBORw0KGgo="
    );
    assert_eq!(messages[2]["content"], "mid-conversation reminder");
    let assistant = &messages[3];
    assert_eq!(assistant["content"], "Reading.");
    assert!(
        assistant.get("reasoning_content").is_none(),
        "history thinking is dropped by default"
    );
    let calls = assistant["tool_calls"].as_array().unwrap();
    assert_eq!(
        (calls[0]["id"].as_str(), calls[1]["id"].as_str()),
        (Some("toolu_01"), Some("toolu_02"))
    );
    assert_eq!(calls[0]["function"]["arguments"], r#"{"file_path":"/a"}"#);
    assert_eq!(
        (
            messages[4]["tool_call_id"].as_str(),
            messages[4]["content"].as_str()
        ),
        (Some("toolu_01"), Some("contents of a"))
    );
    assert_eq!(
        (
            messages[5]["tool_call_id"].as_str(),
            messages[5]["content"].as_str()
        ),
        (Some("toolu_02"), Some("Error: no such file"))
    );
    assert_eq!(
        messages[6]["content"], "and then?",
        "the turn's text follows its tool results"
    );
}

#[tokio::test]
async fn a_named_tool_choice_and_reasoning_content_for_models_that_want_it() {
    let request = json!({
        "model": "m", "max_tokens": 100, "stream": true,
        "system": "plain system",
        "tools": [{"name":"Bash","input_schema":{"type":"object"}}],
        "tool_choice": {"type":"tool","name":"Bash"},
        "messages": [
            {"role":"user","content":"go"},
            {"role":"assistant","content":[{"type":"thinking","thinking":"I should run it","signature":"ccr-sig:y"},{"type":"tool_use","id":"toolu_9","name":"Bash","input":{}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_9","content":"done"}]}
        ]
    });
    let options = "    headers: { X-Title: ccr-tests }\n    models:\n      deep: { reasoning_content: true }\n";
    let sent = upstream_sees(request, options).await;
    assert_eq!(
        sent["tool_choice"],
        json!({"type":"function","function":{"name":"Bash"}})
    );
    assert_eq!(sent["max_tokens"], 100);
    assert!(
        sent.get("reasoning_effort").is_none(),
        "only for models configured to take it"
    );
    assert_eq!(
        sent["messages"][0],
        json!({"role":"system","content":"plain system"})
    );
    assert_eq!(sent["messages"][2]["reasoning_content"], "I should run it");
    assert!(sent["messages"][2]["content"].is_null());
}
