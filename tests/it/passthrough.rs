//! Anthropic → Anthropic pass-through over real loopback HTTP.

use std::sync::Arc;
use std::time::Duration;

use ccr::record::Outcome;
use tokio::sync::Notify;

use crate::support::mock_upstream::{MockUpstream, Reply, sse_stream, stalled_mid_stream};
use crate::support::{
    Ccr, anthropic_error, config_yaml, fast_retries, fixture, messages_request, send_and_drain,
    single_attempt, small_request,
};

fn sse(body: &str) -> Reply {
    Reply::Sse {
        body: body.to_string(),
        byte_per_write: false,
    }
}

#[tokio::test]
async fn upstream_receives_the_client_body_unchanged_except_model() {
    let upstream = MockUpstream::start(sse(&sse_stream("ok", 10, 2))).await;
    let ccr = Ccr::start(&config_yaml(
        &upstream.base_url(),
        "up/claude-routed-model",
        "",
        "",
    ))
    .await;
    let (headers, body) = fixture();
    let original_model = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["model"]
        .as_str()
        .unwrap()
        .to_string();
    // Odd whitespace and an unknown field prove the body is not re-serialized.
    let mut text = String::from_utf8(body).unwrap();
    text.insert_str(1, "\"x_future_field\" : {\"a\":[1, 2.50, null]} ,\n ");
    let mut request = messages_request(&ccr, text.clone());
    for (name, value) in &headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();

    let received = upstream.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path_and_query, "/v1/messages");
    let sent = String::from_utf8(received[0].body.to_vec()).unwrap();
    let routed = "\"model\":\"claude-routed-model\"";
    assert_eq!(sent.matches(routed).count(), 1, "model replaced once");
    assert_eq!(
        sent.replacen(routed, &format!("\"model\":\"{original_model}\""), 1),
        text,
        "every other byte unchanged"
    );
    let forwarded = &received[0].headers;
    assert_eq!(forwarded["anthropic-version"], "2023-06-01");
    assert_eq!(
        forwarded["x-claude-code-session-id"],
        "00000000-0000-4000-8000-000000000001"
    );
    assert!(
        forwarded["anthropic-beta"]
            .to_str()
            .unwrap()
            .contains("context-1m-2025-08-07")
    );
    assert!(
        forwarded.get("accept-encoding").is_none(),
        "the client's Accept-Encoding is not forwarded"
    );
    ccr.shutdown().await;
}

#[tokio::test]
async fn client_model_is_kept_when_the_route_says_star() {
    let upstream = MockUpstream::start(sse(&sse_stream("ok", 1, 1))).await;
    let ccr = Ccr::start(&config_yaml(&upstream.base_url(), "up/*", "", "")).await;
    let body = small_request("claude-sonnet-4-5", true);
    send_and_drain(messages_request(&ccr, body.clone())).await;
    assert_eq!(upstream.received()[0].body, body.as_bytes());
    ccr.shutdown().await;
}

async fn stream_bytes_through(byte_per_write: bool) {
    let stream = sse_stream("héllo wörld — ünïcode split across writes", 321, 54);
    let upstream = MockUpstream::start(Reply::Sse {
        body: stream.clone(),
        byte_per_write,
    })
    .await;
    let ccr = Ccr::start(&config_yaml(&upstream.base_url(), "up/m", "", "")).await;
    let response = messages_request(&ccr, small_request("claude-x", true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    assert_eq!(response.headers()["request-id"], "req_upstream_1");
    assert_eq!(
        response.headers()["anthropic-ratelimit-requests-remaining"],
        "99"
    );
    assert!(response.headers().get("x-upstream-private").is_none());
    assert!(
        response.headers()["x-ccr-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    let bytes = response.bytes().await.unwrap();
    crate::support::stream_checker::check_stream(std::str::from_utf8(&bytes).unwrap());
    assert_eq!(
        std::str::from_utf8(&bytes).unwrap(),
        stream,
        "the client gets the upstream's bytes exactly"
    );

    let records = ccr.records.wait_for(1).await;
    let record = &records[0];
    assert_eq!(record.outcome, Outcome::Completed);
    assert_eq!(record.status, 200);
    assert!(record.streaming);
    assert_eq!(record.model.as_deref(), Some("claude-x"));
    assert_eq!(record.attempts.len(), 1);
    assert_eq!(record.attempts[0].target, "up");
    assert_eq!(record.attempts[0].model, "m");
    let usage = record.usage.expect("usage read from the stream");
    assert_eq!((usage.input_tokens, usage.output_tokens), (321, 54));
    assert!(record.timings.first_byte.is_some());
    ccr.shutdown().await;
}

#[tokio::test]
async fn sse_bytes_reach_the_client_exactly() {
    stream_bytes_through(false).await;
}

#[tokio::test]
async fn sse_bytes_reach_the_client_exactly_when_the_upstream_writes_one_byte_at_a_time() {
    stream_bytes_through(true).await;
}

#[tokio::test]
async fn non_streaming_json_passes_through_with_usage() {
    let json = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-up","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":4,"output_tokens":3}}"#;
    let upstream = MockUpstream::start(Reply::Json(json.to_string())).await;
    let ccr = Ccr::start(&config_yaml(&upstream.base_url(), "up/*", "", "")).await;
    let response = messages_request(&ccr, small_request("claude-x", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), json);
    let usage = ccr.records.wait_for(1).await[0].usage.unwrap();
    assert_eq!(
        (
            usage.input_tokens,
            usage.cache_read_input_tokens,
            usage.output_tokens
        ),
        (12, 4, 3)
    );
    ccr.shutdown().await;
}

#[tokio::test]
async fn the_clients_key_reaches_the_upstream_only_without_a_server_api_key() {
    let upstream = MockUpstream::start(sse(&sse_stream("ok", 1, 1))).await;

    let open = Ccr::start(&config_yaml(&upstream.base_url(), "up/*", "", "")).await;
    send_and_drain(
        messages_request(&open, small_request("m", true)).header("x-api-key", "sk-client-own"),
    )
    .await;
    open.shutdown().await;

    let guarded = Ccr::start(&config_yaml(
        &upstream.base_url(),
        "up/*",
        "    api_key: sk-provider-key\n",
        "  api_key: ccr-client-key\n",
    ))
    .await;
    send_and_drain(
        messages_request(&guarded, small_request("m", true))
            .header("authorization", "Bearer ccr-client-key"),
    )
    .await;
    guarded.shutdown().await;

    let received = upstream.received();
    assert_eq!(received[0].headers["x-api-key"], "sk-client-own");
    assert_eq!(received[1].headers["x-api-key"], "sk-provider-key");
    assert!(
        received[1].headers.get("authorization").is_none(),
        "ccr's own client key never goes upstream"
    );
    let all_headers = format!("{:?}", received[1].headers);
    assert!(!all_headers.contains("ccr-client-key"));
}

#[tokio::test]
async fn configured_beta_flags_are_dropped_and_the_rest_forwarded() {
    let upstream = MockUpstream::start(sse(&sse_stream("ok", 1, 1))).await;
    let ccr = Ccr::start(&config_yaml(
        &upstream.base_url(),
        "up/*",
        "    drop_beta_flags: [context-1m-2025-08-07, effort-2025-11-24]\n",
        "",
    ))
    .await;
    send_and_drain(messages_request(&ccr, small_request("m", true))
        .header("anthropic-beta", "claude-code-20250219,context-1m-2025-08-07,effort-2025-11-24,interleaved-thinking-2025-05-14")).await;
    assert_eq!(
        upstream.received()[0].headers["anthropic-beta"],
        "claude-code-20250219,interleaved-thinking-2025-05-14"
    );
    ccr.shutdown().await;
}

#[tokio::test]
async fn upstream_429_reaches_the_client_with_retry_after_and_its_body() {
    let body = r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#;
    let upstream = MockUpstream::start(Reply::Status {
        status: 429,
        headers: vec![
            ("retry-after", "7".into()),
            ("anthropic-ratelimit-tokens-remaining", "0".into()),
        ],
        body: body.to_string(),
    })
    .await;
    let ccr = Ccr::start(&single_attempt(&config_yaml(
        &upstream.base_url(),
        "up/*",
        "",
        "",
    )))
    .await;
    let response = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(
        response.headers()["anthropic-ratelimit-tokens-remaining"],
        "0"
    );
    assert!(response.headers().contains_key("x-ccr-request-id"));
    assert_eq!(response.text().await.unwrap(), body);
    let record = &ccr.records.wait_for(1).await[0];
    assert_eq!(record.outcome, Outcome::Failed);
    assert_eq!(crate::support::class_of(&record.attempts[0]), "rate_limit");
    ccr.shutdown().await;
}

#[tokio::test]
async fn a_dead_upstream_is_a_502_naming_it() {
    // Bind and drop a listener to get a port where nothing listens.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let ccr = Ccr::start(&fast_retries(&config_yaml(
        &format!("http://{dead}"),
        "up/*",
        "",
        "",
    )))
    .await;
    let response = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    let (status, kind, message) = anthropic_error(response).await;
    assert_eq!((status, kind.as_str()), (502, "api_error"));
    assert!(message.contains(&dead.to_string()), "{message}");
    assert!(message.contains("cannot reach up"), "{message}");
    assert_eq!(
        crate::support::class_of(&ccr.records.wait_for(1).await[0].attempts[0]),
        "network"
    );
    ccr.shutdown().await;
}

#[tokio::test]
async fn an_upstream_silent_before_its_first_byte_is_a_504() {
    let release = Arc::new(Notify::new());
    let upstream = MockUpstream::start(Reply::StallBeforeHeaders {
        release: release.clone(),
        then: Box::new(sse(&sse_stream("late", 1, 1))),
    })
    .await;
    let ccr = Ccr::start(&single_attempt(&config_yaml(
        &upstream.base_url(),
        "up/*",
        "    timeouts: { first_byte: 300ms }\n",
        "",
    )))
    .await;
    let response = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    let (status, kind, message) = anthropic_error(response).await;
    assert_eq!((status, kind.as_str()), (504, "api_error"));
    assert!(message.contains("did not answer within 300ms"), "{message}");
    release.notify_one();
    ccr.shutdown().await;
}

#[tokio::test]
async fn an_upstream_that_goes_silent_mid_stream_ends_with_an_error_event() {
    let (upstream, release, full, split) = stalled_mid_stream().await;
    let ccr = Ccr::start(&config_yaml(
        &upstream.base_url(),
        "up/*",
        "    timeouts: { idle: 300ms }\n",
        "",
    ))
    .await;
    let response = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        text.starts_with(&full[..split]),
        "what arrived before the silence is kept"
    );
    let tail = &text[split..];
    assert!(
        tail.starts_with(
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\""
        ),
        "{tail}"
    );
    assert!(
        tail.contains("did not send more of its response within 300ms"),
        "{tail}"
    );
    assert!(tail.ends_with("\n\n"));
    crate::support::stream_checker::check_stream(&text);
    let record = &ccr.records.wait_for(1).await[0];
    assert_eq!(record.outcome, Outcome::UpstreamFailed);
    release.notify_one();
    ccr.shutdown().await;
}

#[tokio::test]
async fn a_cut_upstream_stream_drops_the_half_event_and_ends_with_an_error_event() {
    let full = sse_stream("cut", 5, 5);
    // Cut in the middle of an event's data line.
    let cut_at = full.find("text_delta").unwrap();
    let upstream = MockUpstream::start(Reply::CutAfter {
        before: full[..cut_at].to_string(),
    })
    .await;
    let ccr = Ccr::start(&config_yaml(&upstream.base_url(), "up/*", "", "")).await;
    let response = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = tokio::time::timeout(Duration::from_secs(20), response.text())
        .await
        .unwrap()
        .unwrap();
    let last_whole = full[..cut_at].rfind("\n\n").unwrap() + 2;
    assert!(text.starts_with(&full[..last_whole]));
    let tail = &text[last_whole..];
    let checked = crate::support::stream_checker::check_stream(&text);
    assert_eq!(checked.error.unwrap()["type"], "api_error");
    assert!(
        tail.starts_with("event: error\ndata: "),
        "the half event is dropped, the error event follows the last whole one: {tail:?}"
    );
    assert!(tail.contains("broke off the response"), "{tail}");
    let record = &ccr.records.wait_for(1).await[0];
    assert_eq!(record.outcome, Outcome::UpstreamFailed);
    ccr.shutdown().await;
}

#[tokio::test]
async fn count_tokens_is_answered_locally() {
    let upstream = MockUpstream::start(sse(&sse_stream("never", 1, 1))).await;
    let ccr = Ccr::start(&config_yaml(&upstream.base_url(), "up/*", "", "")).await;
    let (_, body) = fixture();
    let response = crate::support::client()
        .post(ccr.url("/v1/messages/count_tokens?beta=true"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let json: serde_json::Value = response.json().await.unwrap();
    let tokens = json["input_tokens"].as_u64().unwrap();
    // The fixture is ~76 KB: a sane estimate is in the tens of thousands.
    assert!((10_000..40_000).contains(&tokens), "{tokens}");
    assert!(
        upstream.received().is_empty(),
        "count_tokens never goes upstream"
    );
    ccr.shutdown().await;
}

#[tokio::test]
async fn an_upstream_529_is_retried_and_passed_through_when_attempts_run_out() {
    let overloaded =
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    let upstream = MockUpstream::start(sse(&sse_stream("recovered", 1, 1))).await;
    let status_529 = || Reply::Status {
        status: 529,
        headers: vec![("request-id", "req_up_529".into())],
        body: overloaded.into(),
    };
    upstream.then(status_529());
    let ccr = Ccr::start(&fast_retries(&config_yaml(
        &upstream.base_url(),
        "up/*",
        "",
        "",
    )))
    .await;
    let retried = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 200);
    assert_eq!(retried.headers()["x-ccr-attempts"], "2");
    assert!(retried.text().await.unwrap().contains("recovered"));
    ccr.shutdown().await;

    let once = Ccr::start(&single_attempt(&config_yaml(
        &upstream.base_url(),
        "up/*",
        "",
        "",
    )))
    .await;
    upstream.then(status_529());
    let first = messages_request(&once, small_request("m", true))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 529);
    assert_eq!(first.headers()["request-id"], "req_up_529");
    assert_eq!(first.headers()["x-ccr-attempts"], "1");
    assert_eq!(first.text().await.unwrap(), overloaded);
    let records = once.records.wait_for(1).await;
    assert_eq!(
        crate::support::class_of(&records[0].attempts[0]),
        "upstream_5xx"
    );
    once.shutdown().await;
}

#[tokio::test]
async fn thinking_blocks_signed_by_ccr_never_reach_anthropic() {
    let upstream = MockUpstream::start(sse(&sse_stream("ok", 1, 1))).await;
    let ccr = Ccr::start(&config_yaml(
        &upstream.base_url(),
        "up/claude-opus-4-1",
        "",
        "",
    ))
    .await;
    let body = serde_json::json!({
        "model": "claude-x", "max_tokens": 10, "stream": true,
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "from deepseek", "signature": "ccr-sig:msg_1"},
                {"type": "thinking", "thinking": "from anthropic", "signature": "EqQBCkYIBRgCKkB"},
                {"type": "text", "text": "a"}
            ]},
            {"role": "user", "content": "again"}
        ]
    });
    let response = messages_request(&ccr, body.to_string())
        .send()
        .await
        .unwrap();
    crate::support::stream_checker::check_stream(&response.text().await.unwrap());
    let sent: serde_json::Value = serde_json::from_slice(&upstream.received()[0].body).unwrap();
    assert_eq!(sent["model"], "claude-opus-4-1");
    let blocks = sent["messages"][1]["content"].as_array().unwrap();
    assert_eq!(blocks.len(), 2);
    assert_eq!(
        blocks[0]["signature"], "EqQBCkYIBRgCKkB",
        "Anthropic's own thinking is kept byte for byte"
    );
    assert_eq!(sent["messages"][2]["content"], "again");
    ccr.shutdown().await;
}

#[tokio::test]
async fn a_huge_upstream_error_body_is_not_passed_on_whole() {
    let huge = format!("{{\"error\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let upstream = MockUpstream::start(Reply::Status {
        status: 500,
        headers: vec![],
        body: huge,
    })
    .await;
    let ccr = Ccr::start(&single_attempt(&config_yaml(
        &upstream.base_url(),
        "up/*",
        "",
        "",
    )))
    .await;
    let response = messages_request(&ccr, small_request("m", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let (_, kind, message) = anthropic_error(response).await;
    assert_eq!(kind, "api_error");
    assert!(message.contains("error body over 65536 bytes"), "{message}");
    assert!(message.len() < 1024, "only the start of the body is quoted");
    ccr.shutdown().await;
}
