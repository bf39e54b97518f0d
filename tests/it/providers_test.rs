//! `ccr providers test` run as a user runs it, against mock upstreams speaking each
//! provider's wire format.

use serde_json::{Value, json};

use crate::support::mock_upstream::{MockUpstream, Reply, openai_stream, sse_stream};
use crate::support::{run_ccr, temp_config};

fn openai_chunk(delta: Value, finish: Value) -> Value {
    json!({"id": "chatcmpl-p", "object": "chat.completion.chunk", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

fn openai_text(text: &str) -> Reply {
    Reply::Sse {
        body: openai_stream(&[
            openai_chunk(json!({"role": "assistant", "content": text}), Value::Null),
            openai_chunk(json!({}), json!("stop")),
        ]),
        byte_per_write: false,
    }
}

fn openai_tool_call() -> Reply {
    Reply::Sse {
        body: openai_stream(&[
            openai_chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "add", "arguments": "{\"a\":"}}]}),
                Value::Null,
            ),
            openai_chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "2,\"b\":3}"}}]}),
                Value::Null,
            ),
            openai_chunk(json!({}), json!("tool_calls")),
        ]),
        byte_per_write: false,
    }
}

/// An upstream giving `replies` in order, and a 500 to any request beyond them.
async fn scripted(replies: Vec<Reply>) -> MockUpstream {
    let upstream = MockUpstream::start(Reply::Status {
        status: 500,
        headers: vec![],
        body: "the test scripted no more replies".into(),
    })
    .await;
    for reply in replies {
        upstream.then(reply);
    }
    upstream
}

/// An OpenAI-compatible upstream that passes the three probes, in the order they run.
async fn healthy_openai() -> MockUpstream {
    scripted(vec![
        openai_text("ok"),
        openai_text("1 2 3 4 5"),
        openai_tool_call(),
    ])
    .await
}

fn anthropic_message(content: Value, stop_reason: &str) -> Reply {
    Reply::Json(
        json!({"id": "msg_p", "type": "message", "role": "assistant", "model": "claude-probe",
               "content": content, "stop_reason": stop_reason, "stop_sequence": null,
               "usage": {"input_tokens": 5, "output_tokens": 2}})
        .to_string(),
    )
}

fn anthropic_tool_stream() -> Reply {
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_t", "type": "message", "role": "assistant", "model": "claude-probe", "content": [], "stop_reason": null, "usage": {"input_tokens": 5, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "add", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":2,"}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "\"b\":3}"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
        json!({"type": "message_stop"}),
    ];
    let body = events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect();
    Reply::Sse {
        body,
        byte_per_write: false,
    }
}

/// An Anthropic upstream that passes the three probes.
async fn healthy_anthropic() -> MockUpstream {
    scripted(vec![
        anthropic_message(json!([{"type": "text", "text": "ok"}]), "end_turn"),
        Reply::Sse {
            body: sse_stream("1 2 3 4 5", 5, 9),
            byte_per_write: false,
        },
        anthropic_tool_stream(),
    ])
    .await
}

fn two_providers(openai: &str, anthropic: &str) -> String {
    format!(
        "providers:\n  oa:\n    type: openai\n    base_url: {openai}/v1\n    api_key: sk-oa-probe-secret\n  claude:\n    type: anthropic\n    base_url: {anthropic}\n    api_key: sk-ant-probe-secret\nroutes:\n  default: [oa/deepseek-chat, claude/claude-probe]\n"
    )
}

async fn providers_test(yaml: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let (_dir, path) = temp_config(yaml);
    let data = tempfile::tempdir().unwrap();
    let mut all = vec![
        "--config",
        path.to_str().unwrap(),
        "--data-dir",
        data.path().to_str().unwrap(),
        "providers",
        "test",
    ];
    all.extend_from_slice(args);
    run_ccr(&all, &[]).await
}

fn assert_no_secret(out: &str, err: &str) {
    for secret in ["sk-oa-probe-secret", "sk-ant-probe-secret"] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "a key leaked:\n{out}\n{err}"
        );
    }
}

#[tokio::test]
async fn every_probe_passing_prints_a_table_and_exits_0() {
    let (openai, anthropic) = (healthy_openai().await, healthy_anthropic().await);
    let yaml = two_providers(&openai.base_url(), &anthropic.base_url());
    let (code, out, err) = providers_test(&yaml, &[]).await;
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    for provider in ["oa", "claude"] {
        for probe in ["text", "stream", "tool"] {
            let row = out
                .lines()
                .find(|l| l.contains(&format!(" {provider} ")) && l.contains(&format!(" {probe} ")))
                .unwrap_or_else(|| panic!("no {provider} {probe} row in\n{out}"));
            assert!(row.contains(" ok "), "{row}");
        }
    }
    assert!(!out.contains("failed"), "{out}");
    // The probes went through each provider's real wire format.
    let asked = openai.received();
    assert_eq!(asked.len(), 3);
    assert!(
        asked
            .iter()
            .all(|r| r.path_and_query == "/v1/chat/completions")
    );
    let tool_request: Value = serde_json::from_slice(&asked[2].body).unwrap();
    assert_eq!(tool_request["model"], "deepseek-chat");
    assert_eq!(tool_request["tools"][0]["function"]["name"], "add");
    let anthropic_asked = anthropic.received();
    assert_eq!(anthropic_asked.len(), 3);
    assert_eq!(
        anthropic_asked[0].headers["x-api-key"],
        "sk-ant-probe-secret"
    );
    assert_no_secret(&out, &err);
}

#[tokio::test]
async fn a_broken_provider_fails_the_run_and_its_rows_say_why() {
    let anthropic = healthy_anthropic().await;
    let refusing = MockUpstream::start(Reply::Status {
        status: 401,
        headers: vec![],
        body: json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}}).to_string(),
    })
    .await;
    let yaml = two_providers(&refusing.base_url(), &anthropic.base_url());
    let (code, out, err) = providers_test(&yaml, &[]).await;
    assert_eq!(code, Some(1), "stdout:\n{out}\nstderr:\n{err}");
    let oa_rows: Vec<&str> = out.lines().filter(|l| l.contains(" oa ")).collect();
    assert_eq!(oa_rows.len(), 3, "{out}");
    for row in &oa_rows {
        assert!(row.contains("failed") && row.contains("auth"), "{row}");
    }
    assert!(out.contains("Incorrect API key"), "{out}");
    let claude_ok = out
        .lines()
        .filter(|l| l.contains(" claude ") && l.contains(" ok "))
        .count();
    assert_eq!(claude_ok, 3, "{out}");
    assert_no_secret(&out, &err);
}

#[tokio::test]
async fn json_output_parses_and_names_each_probe() {
    let (openai, anthropic) = (healthy_openai().await, healthy_anthropic().await);
    let yaml = two_providers(&openai.base_url(), &anthropic.base_url());
    let (code, out, err) = providers_test(&yaml, &["--json", "oa"]).await;
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let document: Value = serde_json::from_str(&out).expect("--json prints one JSON document");
    assert_eq!(
        (document["passed"].as_u64(), document["failed"].as_u64()),
        (Some(3), Some(0))
    );
    let probes = document["probes"].as_array().unwrap();
    let names: Vec<&str> = probes
        .iter()
        .map(|p| p["probe"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["text", "stream", "tool"]);
    for probe in probes {
        assert_eq!(probe["provider"], "oa");
        assert_eq!(probe["model"], "deepseek-chat");
        assert_eq!(probe["verdict"], "passed");
        assert!(probe["latency_ms"].is_u64(), "{probe}");
    }
    assert!(
        probes[1]["ttft_ms"].is_u64(),
        "a streaming probe has a TTFT"
    );
    assert!(
        anthropic.received().is_empty(),
        "only the named provider is probed"
    );
}

#[tokio::test]
async fn a_missing_kiro_account_is_reported_as_missing_credentials() {
    let yaml = "credentials:\n  store: file\nproviders:\n  kiro:\n    type: codewhisperer\n    base_url: http://127.0.0.1:9\n    accounts: [work]\nroutes:\n  default: [kiro/claude-sonnet-4-5]\n";
    let (code, out, err) = providers_test(yaml, &[]).await;
    assert_eq!(code, Some(1), "stdout:\n{out}\nstderr:\n{err}");
    let rows: Vec<&str> = out.lines().filter(|l| l.contains("kiro:work")).collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(
        out.contains("no credentials for CodeWhisperer account `work`")
            && out.contains("ccr token import"),
        "{out}"
    );
    assert!(!out.contains("network"), "not a network error: {out}");
}

#[tokio::test]
async fn a_silent_upstream_fails_its_probe_at_the_timeout() {
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let silent = MockUpstream::start(Reply::StallBeforeHeaders {
        release: release.clone(),
        then: Box::new(openai_text("late")),
    })
    .await;
    let yaml = format!(
        "providers:\n  oa:\n    type: openai\n    base_url: {}/v1\n    api_key: sk-oa-probe-secret\nroutes:\n  default: [oa/m]\n",
        silent.base_url()
    );
    let (code, out, err) = providers_test(&yaml, &["--timeout", "1", "--json"]).await;
    release.notify_waiters();
    assert_eq!(code, Some(1), "stdout:\n{out}\nstderr:\n{err}");
    let document: Value = serde_json::from_str(&out).unwrap();
    for probe in document["probes"].as_array().unwrap() {
        assert_eq!(probe["verdict"], "failed");
        assert_eq!(probe["class"], "timeout");
        assert!(
            probe["error"].as_str().unwrap().contains("within 1s"),
            "{probe}"
        );
    }
}

#[tokio::test]
async fn a_model_that_answers_in_text_fails_the_tool_probe() {
    let upstream = scripted(vec![
        openai_text("ok"),
        openai_text("1 2 3"),
        openai_text("2 + 3 is 5"),
    ])
    .await;
    let yaml = format!(
        "providers:\n  oa:\n    type: openai\n    base_url: {}/v1\n    api_key: sk-oa-probe-secret\nroutes:\n  default: [oa/m]\n",
        upstream.base_url()
    );
    let (code, out, err) = providers_test(&yaml, &["--json"]).await;
    assert_eq!(code, Some(1), "stdout:\n{out}\nstderr:\n{err}");
    let document: Value = serde_json::from_str(&out).unwrap();
    let tool = &document["probes"][2];
    assert_eq!(
        (tool["probe"].as_str(), tool["verdict"].as_str()),
        (Some("tool"), Some("failed"))
    );
    assert!(
        tool["error"].as_str().unwrap().contains("2 + 3 is 5"),
        "{tool}"
    );
}

#[tokio::test]
async fn an_unknown_provider_name_is_a_usage_error() {
    let (code, out, err) = providers_test("", &["nope"]).await;
    assert_eq!(code, Some(2), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("no provider named `nope`") && err.contains("anthropic"),
        "{err}"
    );
}

#[tokio::test]
async fn the_keyless_pass_through_is_skipped_with_what_it_needs() {
    // The embedded default: an Anthropic pass-through forwarding each client's key.
    let (code, out, err) = providers_test("", &["--model", "claude-sonnet-4-5"]).await;
    assert_eq!(
        code,
        Some(1),
        "nothing could be probed: stdout:\n{out}\nstderr:\n{err}"
    );
    assert!(out.contains("skipped") && out.contains("api_key"), "{out}");
    assert!(err.contains("no probe ran"), "{err}");
}

#[tokio::test]
async fn a_dead_kiro_credential_is_reported_as_refused_not_as_a_network_error() {
    let refresh =
        crate::support::mock_refresh::MockRefresh::start(&["aor-someone-else"], 3600).await;
    let data = tempfile::tempdir().unwrap();
    let kiro = tempfile::tempdir().unwrap();
    let token_file = kiro.path().join("kiro-auth-token.json");
    std::fs::write(
        &token_file,
        json!({"accessToken": "aoa-expired-probe", "refreshToken": "aor-revoked-probe", "expiresAt": "2000-01-01T00:00:00.000Z", "profileArn": "arn:aws:codewhisperer:us-east-1:1:profile/P", "authMethod": "social", "provider": "Github"}).to_string(),
    )
    .unwrap();
    let yaml = format!(
        "credentials:\n  store: file\nproviders:\n  kiro:\n    type: codewhisperer\n    base_url: http://127.0.0.1:9\n    accounts: [work]\n    refresh_url: {}\nroutes:\n  default: [kiro/claude-sonnet-4-5]\n",
        refresh.social_url()
    );
    let (_dir, path) = temp_config(&yaml);
    let (config, data_dir) = (path.to_str().unwrap(), data.path().to_str().unwrap());
    let import = [
        "--config",
        config,
        "--data-dir",
        data_dir,
        "token",
        "import",
        "--from",
        token_file.to_str().unwrap(),
        "--name",
        "work",
    ];
    let (code, _, err) = run_ccr(&import, &[]).await;
    assert_eq!(code, Some(0), "{err}");
    let probe = [
        "--config",
        config,
        "--data-dir",
        data_dir,
        "providers",
        "test",
        "--json",
    ];
    let (code, out, err) = run_ccr(&probe, &[]).await;
    assert_eq!(code, Some(1), "stdout:\n{out}\nstderr:\n{err}");
    let document: Value = serde_json::from_str(&out).unwrap();
    for probe in document["probes"].as_array().unwrap() {
        assert_eq!(probe["class"], "auth", "{probe}");
        let error = probe["error"].as_str().unwrap();
        assert!(
            error.contains("cannot renew the token of CodeWhisperer account `work`"),
            "{error}"
        );
    }
    assert!(refresh.calls() >= 1, "the refresh endpoint was asked");
    for secret in ["aoa-expired-probe", "aor-revoked-probe"] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "a token leaked"
        );
    }
}

#[tokio::test]
async fn a_gemini_provider_is_probed_through_its_own_endpoints() {
    let candidate = |parts: Value, finish: Option<&str>| {
        let mut c = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        if let Some(reason) = finish {
            c["finishReason"] = json!(reason);
        }
        json!({"candidates": [c], "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 2}})
    };
    let sse = |responses: &[Value]| Reply::Sse {
        body: responses
            .iter()
            .map(|r| format!("data: {r}\r\n\r\n"))
            .collect(),
        byte_per_write: false,
    };
    let upstream = scripted(vec![
        Reply::Json(candidate(json!([{"text": "ok"}]), Some("STOP")).to_string()),
        sse(&[
            candidate(json!([{"text": "1 2 "}]), None),
            candidate(json!([{"text": "3 4 5"}]), Some("STOP")),
        ]),
        sse(&[candidate(
            json!([{"functionCall": {"name": "add", "args": {"a": 2, "b": 3}}}]),
            Some("STOP"),
        )]),
    ])
    .await;
    let yaml = format!(
        "providers:\n  gm:\n    type: gemini\n    base_url: {}\n    api_key: gm-probe-secret\nroutes:\n  default: [gm/gemini-2.5-flash]\n",
        upstream.base_url()
    );
    let (code, out, err) = providers_test(&yaml, &["--json"]).await;
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let document: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(document["passed"], 3, "{document}");
    let paths: Vec<String> = upstream
        .received()
        .iter()
        .map(|r| r.path_and_query.clone())
        .collect();
    assert_eq!(
        paths,
        [
            "/v1beta/models/gemini-2.5-flash:generateContent",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        ]
    );
    assert!(!out.contains("gm-probe-secret") && !err.contains("gm-probe-secret"));
}

#[tokio::test]
async fn an_oversized_answer_fails_its_probe_and_names_the_limit() {
    // 4 MB of text in one non-streaming message: the probe reads at most 1 MiB of it.
    let huge = "word ".repeat(800_000);
    let upstream = scripted(vec![anthropic_message(
        json!([{"type": "text", "text": huge}]),
        "end_turn",
    )])
    .await;
    let yaml = format!(
        "providers:\n  claude:\n    type: anthropic\n    base_url: {}\n    api_key: sk-ant-probe-secret\nroutes:\n  default: [claude/claude-probe]\n",
        upstream.base_url()
    );
    let (code, out, err) = providers_test(&yaml, &["--json"]).await;
    assert_eq!(code, Some(1), "stdout:\n{out}\nstderr:\n{err}");
    let document: Value = serde_json::from_str(&out).unwrap();
    let text = &document["probes"][0];
    assert_eq!(
        (text["probe"].as_str(), text["verdict"].as_str()),
        (Some("text"), Some("failed"))
    );
    assert!(
        text["error"]
            .as_str()
            .unwrap()
            .contains("over 1048576 bytes"),
        "{text}"
    );
}
