//! The failure model from outside: who is blamed for a failure decides whether ccr retries,
//! where it goes next and what sits out.

use serde_json::{Value, json};

use crate::support::mock_upstream::{MockUpstream, Reply, openai_stream, sse_stream};
use crate::support::stream_checker::check_stream;
use crate::support::{Ccr, class_of, fast_retries, messages_request, small_request};

fn ok_stream() -> Reply {
    Reply::Sse {
        body: sse_stream("fine", 3, 4),
        byte_per_write: false,
    }
}

fn error_reply(status: u16, kind: &str, message: &str) -> Reply {
    Reply::Status {
        status,
        headers: vec![],
        body: json!({"type": "error", "error": {"type": kind, "message": message}}).to_string(),
    }
}

/// Two pass-through upstreams `a` and `b` (no keys of their own) behind one route.
async fn two_pass_through(
    first: Reply,
    second: Reply,
    strategy: &str,
) -> (MockUpstream, MockUpstream, Ccr) {
    let a = MockUpstream::start(first).await;
    let b = MockUpstream::start(second).await;
    let yaml = format!(
        "server: {{ host: 127.0.0.1, port: 0 }}\nproviders:\n  a: {{ type: anthropic, base_url: \"{}\" }}\n  b: {{ type: anthropic, base_url: \"{}\" }}\nroutes:\n  default: {{ strategy: {strategy}, targets: [a/*, b/*] }}\n",
        a.base_url(),
        b.base_url()
    );
    let ccr = Ccr::start(&fast_retries(&yaml)).await;
    (a, b, ccr)
}

async fn served_by(request: reqwest::RequestBuilder) -> String {
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let provider = response.headers()["x-ccr-provider"]
        .to_str()
        .unwrap()
        .to_string();
    check_stream(&response.text().await.unwrap());
    provider
}

#[tokio::test]
async fn a_clients_wrong_key_is_tried_once_and_blacklists_nothing() {
    let by_key = || Reply::ByBearer {
        token: "good-key".into(),
        ok: Box::new(ok_stream()),
        otherwise: Box::new(error_reply(
            401,
            "authentication_error",
            "invalid x-api-key",
        )),
    };
    let (a, b, ccr) = two_pass_through(by_key(), by_key(), "round_robin").await;
    let refused = messages_request(&ccr, small_request("m", true))
        .header("authorization", "Bearer wrong-key")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["x-ccr-attempts"], "1");
    assert_eq!(a.received().len() + b.received().len(), 1, "tried once");
    let record = &ccr.records.wait_for(1).await[0];
    let failure = record.failure.expect("the record says why");
    assert_eq!(failure.class.as_str(), "auth");
    assert_eq!(failure.blame, ccr::failure::Blame::Client);

    let mut served = Vec::new();
    for _ in 0..4 {
        let good = messages_request(&ccr, small_request("m", true))
            .header("authorization", "Bearer good-key");
        served.push(served_by(good).await);
    }
    served.sort();
    assert_eq!(
        served,
        ["a", "a", "b", "b"],
        "both upstreams still take turns"
    );
    ccr.shutdown().await;
}

#[tokio::test]
async fn a_passed_through_502_counts_as_upstream_5xx() {
    let upstream = MockUpstream::start(error_reply(502, "api_error", "bad gateway upstream")).await;
    let yaml = format!(
        "server: {{ host: 127.0.0.1, port: 0 }}\nproviders:\n  up: {{ type: anthropic, base_url: \"{}\" }}\nroutes:\n  default: [up/*]\nrouter: {{ max_attempts: 1 }}\n",
        upstream.base_url()
    );
    let ccr = Ccr::start(&yaml).await;
    let response = messages_request(&ccr, small_request("m", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("bad gateway upstream"),
        "passed through as sent"
    );
    ccr.records.wait_for(1).await;
    let stats: Value = crate::support::get_json(ccr.url("/api/stats")).await;
    assert_eq!(
        stats["totals"]["failures"],
        json!({"upstream_5xx": 1}),
        "{stats}"
    );
    ccr.shutdown().await;
}

#[tokio::test]
async fn a_context_length_400_moves_to_the_next_target() {
    let (small, big, ccr) = two_pass_through(
        error_reply(
            400,
            "invalid_request_error",
            "prompt is too long: 250000 tokens > 200000 maximum",
        ),
        ok_stream(),
        "priority",
    )
    .await;
    assert_eq!(
        served_by(messages_request(&ccr, small_request("m", true))).await,
        "b"
    );
    let record = &ccr.records.wait_for(1).await[0];
    let classes: Vec<&str> = record.attempts.iter().map(class_of).collect();
    assert_eq!(classes, ["context_too_long", "ok"]);
    // The small model is not blacklisted: a request that fits goes to it first again.
    small.then(ok_stream());
    assert_eq!(
        served_by(messages_request(&ccr, small_request("m", true))).await,
        "a"
    );
    assert_eq!((small.received().len(), big.received().len()), (2, 1));

    // Any other 400 is the request's own fault: answered at once.
    small.then(error_reply(
        400,
        "invalid_request_error",
        "messages: field required",
    ));
    let response = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["x-ccr-attempts"], "1");
    ccr.shutdown().await;
}

#[tokio::test]
async fn a_cut_stream_sends_the_next_request_to_the_next_priority_target() {
    let full = sse_stream("cut short", 3, 4);
    let split = full.find("event: content_block_delta").unwrap();
    let (a, b, ccr) = two_pass_through(
        Reply::CutAfter {
            before: full[..split].to_string(),
        },
        ok_stream(),
        "priority",
    )
    .await;
    let response = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the stream had started");
    let text = response.text().await.unwrap();
    assert!(text.contains("event: error"), "{text}");
    assert_eq!(a.received().len() + b.received().len(), 1, "never retried");
    let record = &ccr.records.wait_for(1).await[0];
    assert_eq!(record.failure.map(|f| f.class.as_str()), Some("stream_cut"));

    a.then(ok_stream());
    assert_eq!(
        served_by(messages_request(&ccr, small_request("m", true))).await,
        "b",
        "the target that cut the stream sits out"
    );
    ccr.shutdown().await;
}

/// A request forcing a server tool, which an OpenAI-compatible upstream cannot run.
fn forced_web_search() -> String {
    json!({"model": "m", "max_tokens": 50, "stream": true,
        "tools": [
            {"name": "Read", "description": "Reads a file", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}},
            {"type": "web_search_20250305", "name": "web_search"}
        ],
        "tool_choice": {"type": "tool", "name": "web_search"},
        "messages": [{"role": "user", "content": "news?"}]})
    .to_string()
}

#[tokio::test]
async fn a_request_one_provider_cannot_take_moves_on_and_otherwise_says_why() {
    let oa = MockUpstream::start(Reply::Sse {
        body: openai_stream(&[
            json!({"choices":[{"index":0,"delta":{"content":"converted"}}]}),
            json!({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}),
        ]),
        byte_per_write: false,
    })
    .await;
    let an = MockUpstream::start(ok_stream()).await;
    let yaml = format!(
        "server: {{ host: 127.0.0.1, port: 0 }}\nproviders:\n  oa: {{ type: openai, base_url: \"{}/v1\", api_key: k }}\n  an: {{ type: anthropic, base_url: \"{}\" }}\nroutes:\n  default: {{ strategy: priority, targets: [oa/gpt-x, an/*] }}\n",
        oa.base_url(),
        an.base_url()
    );
    let ccr = Ccr::start(&fast_retries(&yaml)).await;
    assert_eq!(
        served_by(messages_request(&ccr, forced_web_search())).await,
        "an"
    );
    assert_eq!(
        oa.received().len(),
        0,
        "nothing was sent to the provider that cannot take it"
    );
    // Not blacklisted: an ordinary request still goes to the first target.
    assert_eq!(
        served_by(messages_request(&ccr, small_request("m", true))).await,
        "oa"
    );
    ccr.shutdown().await;

    let only_oa = format!(
        "server: {{ host: 127.0.0.1, port: 0 }}\nproviders:\n  oa: {{ type: openai, base_url: \"{}/v1\", api_key: k }}\nroutes:\n  default: [oa/gpt-x]\n",
        oa.base_url()
    );
    let ccr = Ccr::start(&fast_retries(&only_oa)).await;
    let (status, kind, message) = crate::support::anthropic_error(
        messages_request(&ccr, forced_web_search())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "invalid_request_error"));
    assert!(message.contains("web_search"), "{message}");
    let record = &ccr.records.wait_for(1).await[0];
    assert_eq!(record.attempts.len(), 1);
    assert_eq!(class_of(&record.attempts[0]), "conversion");
    ccr.shutdown().await;
}
