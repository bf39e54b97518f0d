//! The CodeWhisperer provider end to end: Anthropic in, a mock `generateAssistantResponse`
//! speaking real AWS event-stream frames on loopback, Anthropic out.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::mock_upstream::{MockUpstream, Reply, cw_event, cw_exception};
use crate::support::stream_checker::{Block, check_stream, message_blocks};
use crate::support::{
    Ccr, anthropic_error, fixture, messages_request, single_attempt, with_router,
};

/// A credentials directory holding one Kiro token file per (account, token, auth method).
pub(crate) fn credentials(accounts: &[(&str, &str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (account, token, method) in accounts {
        let file = json!({"accessToken": token, "refreshToken": "aor-refresh", "expiresAt": "2099-01-01T00:00:00Z", "profileArn": "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK", "authMethod": method, "provider": "Github"});
        std::fs::write(dir.path().join(format!("{account}.json")), file.to_string()).unwrap();
    }
    dir
}

/// A loopback port where nothing listens: tests never reach the real refresh endpoints.
pub(crate) const DEAD_REFRESH: &str = "http://127.0.0.1:9/refreshToken";

fn config(base_url: &str, accounts: &[&str], credentials: &tempfile::TempDir) -> String {
    format!(
        "server: {{ host: 127.0.0.1, port: 0 }}\nproviders:\n  kiro: {{ type: codewhisperer, base_url: \"{base_url}\", accounts: [{}], refresh_url: \"{DEAD_REFRESH}\", idc_refresh_url: \"{DEAD_REFRESH}\" }}\nroutes:\n  default: [kiro/*]\ncredentials: {{ store: file, dir: \"{}\" }}\n",
        accounts.join(", "),
        credentials.path().display()
    )
}

fn body(stream: bool) -> String {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 1000, "stream": stream, "system": "Be terse.", "messages": [{"role": "user", "content": "list the files"}]}).to_string()
}

/// Text with multi-byte characters and two tool calls whose inputs arrive over many frames.
fn answer_frames() -> Vec<Vec<u8>> {
    let mut frames = vec![
        cw_event(
            "messageMetadataEvent",
            json!({"conversationId": "c", "utteranceId": "u"}),
        ),
        cw_event(
            "assistantResponseEvent",
            json!({"content": "Je vais régarder "}),
        ),
        cw_event(
            "assistantResponseEvent",
            json!({"content": "— 見てみます 🔍"}),
        ),
    ];
    let input = r#"{"pattern":"**/*.rs","path":"/home/user/proj \"x\""}"#;
    for piece in input.as_bytes().chunks(6) {
        frames.push(cw_event("toolUseEvent", json!({"toolUseId": "tooluse_1", "name": "Glob", "input": std::str::from_utf8(piece).unwrap()})));
    }
    frames.push(cw_event(
        "toolUseEvent",
        json!({"toolUseId": "tooluse_1", "name": "Glob", "stop": true}),
    ));
    frames.push(cw_event(
        "toolUseEvent",
        json!({"toolUseId": "tooluse_2", "name": "Read", "input": "{\"file_path\":"}),
    ));
    frames.push(cw_event(
        "toolUseEvent",
        json!({"toolUseId": "tooluse_2", "name": "Read", "input": "\"/a.rs\"}"}),
    ));
    frames.push(cw_event(
        "toolUseEvent",
        json!({"toolUseId": "tooluse_2", "name": "Read", "stop": true}),
    ));
    frames.push(cw_event(
        "contextUsageEvent",
        json!({"contextUsagePercentage": 2.5}),
    ));
    frames.push(cw_event(
        "meteringEvent",
        json!({"unit": "credit", "usage": 0.42}),
    ));
    frames
}

fn expected_blocks() -> Vec<Block> {
    vec![
        Block::Text("Je vais régarder — 見てみます 🔍".into()),
        Block::ToolUse {
            id: "tooluse_1".into(),
            name: "Glob".into(),
            input: json!({"pattern": "**/*.rs", "path": "/home/user/proj \"x\""}),
        },
        Block::ToolUse {
            id: "tooluse_2".into(),
            name: "Read".into(),
            input: json!({"file_path": "/a.rs"}),
        },
    ]
}

async fn stream_through(chunks: Vec<Vec<u8>>, byte_per_write: bool) {
    let creds = credentials(&[("work", "aoa-work-token", "social")]);
    let upstream = MockUpstream::start(Reply::Binary {
        chunks,
        byte_per_write,
        cut: false,
    })
    .await;
    let ccr = Ccr::start(&config(&upstream.base_url(), &["work"], &creds)).await;
    let response = messages_request(&ccr, body(true)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ccr-provider"], "kiro");
    let checked = check_stream(&response.text().await.unwrap());
    assert_eq!(checked.blocks, expected_blocks());
    assert_eq!(checked.stop_reason.as_deref(), Some("tool_use"));
    assert_eq!(
        checked.final_usage.unwrap()["input_tokens"],
        5000,
        "from contextUsageEvent"
    );
    assert_eq!(
        checked.message_start["message"]["model"],
        "claude-sonnet-4-5"
    );

    let received = &upstream.received()[0];
    assert_eq!(received.path_and_query, "/generateAssistantResponse");
    assert_eq!(received.headers["authorization"], "Bearer aoa-work-token");
    let sent: Value = serde_json::from_slice(&received.body).unwrap();
    assert!(
        sent["profileArn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:codewhisperer"),
        "social logins send profileArn"
    );
    let current = &sent["conversationState"]["currentMessage"]["userInputMessage"];
    assert_eq!(current["modelId"], "CLAUDE_SONNET_4_5_20250929_V1_0");
    assert_eq!(current["content"], "list the files");
    assert_eq!(
        sent["conversationState"]["history"][0]["userInputMessage"]["content"],
        "Be terse."
    );
    let record = &ccr.records.wait_for(1).await[0];
    assert_eq!(record.attempts[0].target, "kiro:work");
    assert_eq!(record.credits, Some(0.42), "metering goes into the record");
    ccr.shutdown().await;
}

#[tokio::test]
async fn frames_each_in_their_own_write() {
    stream_through(answer_frames(), false).await;
}

#[tokio::test]
async fn frames_one_byte_per_write() {
    stream_through(answer_frames(), true).await;
}

#[tokio::test]
async fn all_frames_in_one_write() {
    stream_through(vec![answer_frames().concat()], false).await;
}

#[tokio::test]
async fn a_non_streaming_request_folds_into_one_message() {
    let creds = credentials(&[("work", "aoa-work-token", "IdC")]);
    let upstream = MockUpstream::start(Reply::Binary {
        chunks: answer_frames(),
        byte_per_write: false,
        cut: false,
    })
    .await;
    let ccr = Ccr::start(&config(&upstream.base_url(), &["work"], &creds)).await;
    let response = messages_request(&ccr, body(false)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let message: Value = response.json().await.unwrap();
    assert_eq!(message_blocks(&message), expected_blocks());
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(ccr.records.wait_for(1).await[0].credits, Some(0.42));
    let sent: Value = serde_json::from_slice(&upstream.received()[0].body).unwrap();
    assert!(
        sent.get("profileArn").is_none(),
        "IdC logins send no profileArn"
    );
    ccr.shutdown().await;
}

/// Streams `chunks` (after a first text frame) and returns the checked stream's error.
async fn failing_stream(chunks: Vec<Vec<u8>>, cut: bool) -> Value {
    let creds = credentials(&[("work", "t", "social")]);
    let mut all = vec![cw_event(
        "assistantResponseEvent",
        json!({"content": "partial "}),
    )];
    all.extend(chunks);
    let upstream = MockUpstream::start(Reply::Binary {
        chunks: all,
        byte_per_write: false,
        cut,
    })
    .await;
    let ccr = Ccr::start(&single_attempt(&config(
        &upstream.base_url(),
        &["work"],
        &creds,
    )))
    .await;
    let response = messages_request(&ccr, body(true)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = tokio::time::timeout(Duration::from_secs(20), response.text())
        .await
        .expect("never a hang")
        .unwrap();
    let checked = check_stream(&text);
    assert_eq!(checked.text(), "partial ");
    ccr.shutdown().await;
    checked.error.expect("an error event ends the stream")
}

#[tokio::test]
async fn an_exception_frame_becomes_an_anthropic_error_event() {
    let error = failing_stream(
        vec![cw_exception("ThrottlingException", "Rate exceeded")],
        false,
    )
    .await;
    assert_eq!(error["type"], "rate_limit_error");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("ThrottlingException: Rate exceeded")
    );
}

#[tokio::test]
async fn a_corrupt_message_crc_ends_the_stream_with_an_error() {
    let mut bad = cw_event("assistantResponseEvent", json!({"content": "never shown"}));
    let last = bad.len() - 1;
    bad[last] ^= 0x5a;
    let error = failing_stream(vec![bad], false).await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("event-stream frame is invalid"),
        "{error}"
    );
}

#[tokio::test]
async fn a_prelude_declaring_64_mib_ends_the_stream_at_once() {
    let mut prelude = Vec::new();
    prelude.extend_from_slice(&(64u32 * 1024 * 1024).to_be_bytes());
    prelude.extend_from_slice(&0u32.to_be_bytes());
    let crc = crc32fast::hash(&prelude);
    prelude.extend_from_slice(&crc.to_be_bytes());
    prelude.extend_from_slice(b"and a little more");
    let error = failing_stream(vec![prelude], false).await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("declares 67108864 bytes"),
        "{error}"
    );
}

#[tokio::test]
async fn a_cut_connection_ends_the_stream_with_an_error() {
    let half = cw_event("assistantResponseEvent", json!({"content": "lost"}));
    let error = failing_stream(vec![half[..half.len() / 2].to_vec()], true).await;
    assert_eq!(error["type"], "api_error");
}

#[tokio::test]
async fn a_403_and_an_improperly_formed_request_say_what_to_do() {
    let creds = credentials(&[("work", "expired", "social")]);
    let upstream = MockUpstream::start(Reply::Status {
        status: 403,
        headers: vec![],
        body: r#"{"message":"The bearer token included in the request is invalid."}"#.into(),
    })
    .await;
    let ccr = Ccr::start(&single_attempt(&config(
        &upstream.base_url(),
        &["work"],
        &creds,
    )))
    .await;
    let (status, kind, message) =
        anthropic_error(messages_request(&ccr, body(true)).send().await.unwrap()).await;
    assert_eq!((status, kind.as_str()), (403, "permission_error"));
    assert!(message.contains("ccr token refresh work"), "{message}");
    assert!(
        !message.contains("expired\""),
        "the token itself is never in a message"
    );
    ccr.shutdown().await;

    let upstream = MockUpstream::start(Reply::Status {
        status: 400,
        headers: vec![],
        body: r#"{"message":"Improperly formed request."}"#.into(),
    })
    .await;
    let ccr = Ccr::start(&single_attempt(&config(
        &upstream.base_url(),
        &["work"],
        &creds,
    )))
    .await;
    let (status, kind, message) =
        anthropic_error(messages_request(&ccr, body(true)).send().await.unwrap()).await;
    assert_eq!((status, kind.as_str()), (400, "invalid_request_error"));
    assert!(
        message.contains("rejected the shape of the converted request"),
        "{message}"
    );
    ccr.shutdown().await;
}

#[tokio::test]
async fn an_account_without_credentials_is_a_clear_error() {
    let creds = credentials(&[]);
    let upstream = MockUpstream::start(Reply::Binary {
        chunks: answer_frames(),
        byte_per_write: false,
        cut: false,
    })
    .await;
    let ccr = Ccr::start(&single_attempt(&config(
        &upstream.base_url(),
        &["nobody"],
        &creds,
    )))
    .await;
    let (status, _, message) =
        anthropic_error(messages_request(&ccr, body(true)).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert!(
        message.contains("ccr token import --name nobody"),
        "{message}"
    );
    assert!(upstream.received().is_empty());
    ccr.shutdown().await;
}

#[tokio::test]
async fn two_accounts_round_robin_and_a_403_blacklists_one() {
    let creds = credentials(&[
        ("work", "token-work", "social"),
        ("home", "token-home", "social"),
    ]);
    let ok = || Reply::Binary {
        chunks: vec![cw_event("assistantResponseEvent", json!({"content": "hi"}))],
        byte_per_write: false,
        cut: false,
    };
    let upstream = MockUpstream::start(ok()).await;
    let yaml = with_router(
        &config(&upstream.base_url(), &["work", "home"], &creds),
        "backoff: 5ms",
    );
    let ccr = Ccr::start(&yaml).await;
    let tokens = |from: usize| -> Vec<String> {
        upstream.received()[from..]
            .iter()
            .map(|r| r.headers["authorization"].to_str().unwrap().to_string())
            .collect()
    };
    for _ in 0..4 {
        check_stream(
            &messages_request(&ccr, body(true))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    let mut seen = tokens(0);
    seen.sort();
    assert_eq!(
        seen,
        [
            "Bearer token-home",
            "Bearer token-home",
            "Bearer token-work",
            "Bearer token-work"
        ],
        "round robin"
    );

    // The next account in turn answers 403: the other serves, and keeps serving.
    upstream.then(Reply::Status {
        status: 403,
        headers: vec![],
        body: "{}".into(),
    });
    let first = messages_request(&ccr, body(true)).send().await.unwrap();
    assert_eq!(first.headers()["x-ccr-attempts"], "2");
    first.text().await.unwrap();
    let after = tokens(4);
    assert_ne!(after[0], after[1], "failover to the other account");
    for _ in 0..3 {
        check_stream(
            &messages_request(&ccr, body(true))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    assert!(
        tokens(6).iter().all(|t| *t == after[1]),
        "the refused account sits out: {:?}",
        tokens(6)
    );
    ccr.shutdown().await;
}

#[tokio::test]
async fn the_claude_code_fixture_converts_and_streams_back() {
    let creds = credentials(&[("work", "t", "social")]);
    let upstream = MockUpstream::start(Reply::Binary {
        chunks: answer_frames(),
        byte_per_write: false,
        cut: false,
    })
    .await;
    let ccr = Ccr::start(&config(&upstream.base_url(), &["work"], &creds)).await;
    let (_, fixture_body) = fixture();
    let response = messages_request(&ccr, fixture_body).send().await.unwrap();
    let checked = check_stream(&response.text().await.unwrap());
    assert_eq!(checked.blocks, expected_blocks());
    let sent: Value = serde_json::from_slice(&upstream.received()[0].body).unwrap();
    let tools =
        sent["conversationState"]["currentMessage"]["userInputMessage"]["userInputMessageContext"]
            ["tools"]
            .as_array()
            .unwrap();
    assert!(tools.len() >= 20, "{}", tools.len());
    ccr.shutdown().await;
}

#[tokio::test]
async fn an_exhausted_quota_sends_its_account_out_for_long() {
    let clock = std::sync::Arc::new(ccr::routing::ManualClock::default());
    let creds = credentials(&[
        ("work", "token-work", "social"),
        ("home", "token-home", "social"),
    ]);
    let ok = Reply::Binary {
        chunks: vec![cw_event("assistantResponseEvent", json!({"content": "hi"}))],
        byte_per_write: false,
        cut: false,
    };
    let upstream = MockUpstream::start(ok).await;
    upstream.then(Reply::Binary {
        chunks: vec![cw_exception(
            "ServiceQuotaExceededException",
            "You have reached the limit for this month.",
        )],
        byte_per_write: false,
        cut: false,
    });
    let yaml = with_router(
        &config(&upstream.base_url(), &["work", "home"], &creds),
        "backoff: 5ms",
    );
    let ccr = Ccr::start_with_clock(&yaml, Some(clock.clone())).await;
    let first = messages_request(&ccr, body(true)).send().await.unwrap();
    assert_eq!(
        first.headers()["x-ccr-attempts"],
        "2",
        "the quota error fails over"
    );
    check_stream(&first.text().await.unwrap());
    let received = upstream.received();
    let (spent, other) = (
        received[0].headers["authorization"].clone(),
        received[1].headers["authorization"].clone(),
    );
    // Ten minutes later (a plain 429 would be back after 60 s) the spent account still sits out.
    clock.advance(Duration::from_secs(600));
    for _ in 0..3 {
        check_stream(
            &messages_request(&ccr, body(true))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    assert!(
        upstream.received()[2..]
            .iter()
            .all(|r| r.headers["authorization"] == other),
        "{spent:?} stays out"
    );
    ccr.shutdown().await;
}

#[tokio::test]
async fn a_rejected_token_whose_refresh_fails_is_tried_once() {
    let creds = credentials(&[("work", "revoked", "social")]);
    let upstream = MockUpstream::start(Reply::Status {
        status: 403,
        headers: vec![],
        body: r#"{"message":"The bearer token included in the request is invalid."}"#.into(),
    })
    .await;
    // Three attempts allowed, one account, and its refresh endpoint is down: the failure
    // says the same target cannot succeed, so it is not asked again.
    let ccr = Ccr::start(&with_router(
        &config(&upstream.base_url(), &["work"], &creds),
        "max_attempts: 3, backoff: 5ms",
    ))
    .await;
    let (status, _, message) =
        anthropic_error(messages_request(&ccr, body(true)).send().await.unwrap()).await;
    assert_eq!(status, 403);
    assert!(message.contains("ccr token refresh work"), "{message}");
    assert_eq!(upstream.received().len(), 1);
    let record = &ccr.records.wait_for(1).await[0];
    assert_eq!(record.attempts.len(), 1);
    assert_eq!(record.failure.map(|f| f.class.as_str()), Some("auth"));
    ccr.shutdown().await;
}
