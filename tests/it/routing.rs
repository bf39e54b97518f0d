//! Routing: classification, fair lock-free picking, blacklist, retry and failover.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ccr::anthropic::MessagesRequest;
use ccr::config::{Config, Source, Strategy};
use ccr::routing::{ManualClock, Pool, Router, Scenario, SystemClock, Target, Upstream};
use serde_json::json;

use crate::support::mock_upstream::{MockUpstream, Reply, sse_stream};
use crate::support::stream_checker::check_stream;
use crate::support::{
    Ccr, anthropic_error, fast_retries, fixture, messages_request, small_request, with_router,
};

fn router(yaml: &str) -> Router {
    let config = Config::parse(yaml, &Source::Embedded, Some(HashMap::new())).unwrap();
    config.validate(&Source::Embedded).unwrap();
    Router::new(&config, Arc::new(SystemClock::default()), no_accounts()).unwrap()
}

/// A token manager with no accounts, for routers whose providers need none.
fn no_accounts() -> Arc<ccr::credentials::manager::TokenManager> {
    ccr::credentials::manager::TokenManager::new(
        Arc::new(ccr::credentials::FileStore::new(&std::env::temp_dir())),
        std::env::temp_dir(),
        ccr::credentials::manager::Refresher::External,
        ccr::http_client::plain().unwrap(),
    )
}

fn request(body: serde_json::Value) -> MessagesRequest {
    MessagesRequest::parse(Bytes::from(body.to_string())).unwrap()
}

const ROUTES: &str = "providers:\n  anthropic: { type: anthropic }\n  openrouter: { type: openai, base_url: \"https://openrouter.ai/api/v1\" }\n  deepseek: { type: openai, base_url: \"https://api.deepseek.com/v1\" }\nroutes:\n  default: [anthropic/*]\n  background: [deepseek/deepseek-chat]\n  thinking: [deepseek/deepseek-reasoner]\n  long_context: [openrouter/google/gemini-2.5-pro]\n  web_search: [openrouter/perplexity/sonar]\n";

#[test]
fn requests_are_classified_in_design_order() {
    let router = router(ROUTES);
    let (_, fixture_body) = fixture();
    let fixture = MessagesRequest::parse(Bytes::from(fixture_body)).unwrap();
    let msg = json!([{"role": "user", "content": "hi"}]);
    let long = "word ".repeat(60_000 * 4);
    let cases = [
        (
            "the Claude Code fixture (adaptive thinking, client WebSearch tool)",
            fixture,
            Scenario::Default,
            "claude-opus-4-8",
        ),
        (
            "haiku with thinking enabled",
            request(
                json!({"model": "claude-haiku-4-5-20251001", "thinking": {"type": "enabled", "budget_tokens": 31999}, "messages": msg}),
            ),
            Scenario::Background,
            "deepseek-chat",
        ),
        (
            "explicit provider/model keeps the model's inner slash",
            request(json!({"model": "openrouter/anthropic/claude-x", "messages": msg})),
            Scenario::Explicit,
            "anthropic/claude-x",
        ),
        (
            "explicit provider,model",
            request(json!({"model": "deepseek,deepseek-chat", "messages": msg})),
            Scenario::Explicit,
            "deepseek-chat",
        ),
        (
            "a slash that names no provider is just a model id",
            request(json!({"model": "meta-llama/llama-3", "messages": msg})),
            Scenario::Default,
            "meta-llama/llama-3",
        ),
        (
            "long context wins over haiku",
            request(
                json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": long}]}),
            ),
            Scenario::LongContext,
            "google/gemini-2.5-pro",
        ),
        (
            "a web_search server tool",
            request(
                json!({"model": "claude-sonnet-4-5", "tools": [{"type": "web_search_20250305", "name": "web_search"}], "messages": msg}),
            ),
            Scenario::WebSearch,
            "perplexity/sonar",
        ),
        (
            "thinking enabled",
            request(
                json!({"model": "claude-sonnet-4-5", "thinking": {"type": "enabled", "budget_tokens": 1024}, "messages": msg}),
            ),
            Scenario::Thinking,
            "deepseek-reasoner",
        ),
        (
            "adaptive thinking stays default",
            request(
                json!({"model": "claude-sonnet-4-5", "thinking": {"type": "adaptive"}, "messages": msg}),
            ),
            Scenario::Default,
            "claude-sonnet-4-5",
        ),
    ];
    for (what, request, scenario, model) in cases {
        let plan = router.plan(&request);
        assert_eq!(plan.scenario, scenario, "{what}");
        assert_eq!(plan.candidates[0].model, model, "{what}");
    }
}

#[test]
fn a_scenario_without_a_route_uses_default() {
    let router =
        router("providers:\n  a: { type: anthropic }\nroutes:\n  default: [a/claude-default]\n");
    let plan = router.plan(&request(
        json!({"model": "claude-haiku-4-5", "messages": []}),
    ));
    assert_eq!(plan.scenario, Scenario::Background);
    assert_eq!(plan.candidates[0].model, "claude-default");
}

#[test]
fn api_keys_become_one_target_per_key() {
    let router = router(
        "providers:\n  ds: { type: openai, api_keys: [k1, k2, k3] }\nroutes:\n  default: [ds/deepseek-chat]\n",
    );
    let plan = router.plan(&request(json!({"model": "m", "messages": []})));
    let mut labels: Vec<&str> = plan
        .candidates
        .iter()
        .map(|c| c.upstream.label.as_str())
        .collect();
    labels.sort();
    assert_eq!(labels, ["ds#1", "ds#2", "ds#3"]);
}

/// A pool over `weights.len()` upstreams (the providers are never called).
fn pool(strategy: Strategy, weights: &[u32]) -> Arc<Pool> {
    let config = ccr::config::Config::parse(
        "providers:\n  a: { type: anthropic }\nroutes:\n  default: [a/*]\n",
        &Source::Embedded,
        Some(HashMap::new()),
    )
    .unwrap();
    let context = ccr::providers::BuildContext {
        tokens: no_accounts(),
    };
    let provider = ccr::providers::build("a", &config.providers["a"], &context)
        .unwrap()
        .remove(0)
        .1;
    let weighted = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            (
                Target {
                    upstream: Arc::new(Upstream::new(provider.clone(), format!("t{i}"))),
                    model: None,
                },
                w,
            )
        })
        .collect();
    Arc::new(Pool::new(strategy, weighted))
}

async fn first_picks(pool: Arc<Pool>, tasks: usize) -> HashMap<String, usize> {
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.order(1)[0].upstream.label.clone() })
        })
        .collect();
    let mut counts = HashMap::new();
    for handle in handles {
        *counts.entry(handle.await.unwrap()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_is_fair_under_concurrency_and_proportional_with_weights() {
    let counts = first_picks(pool(Strategy::RoundRobin, &[1, 1, 1]), 3000).await;
    for label in ["t0", "t1", "t2"] {
        assert!(counts[label].abs_diff(1000) <= 1, "{counts:?}");
    }
    let counts = first_picks(pool(Strategy::RoundRobin, &[3, 1, 1]), 3000).await;
    assert!(
        counts["t0"].abs_diff(1800) <= 1
            && counts["t1"].abs_diff(600) <= 1
            && counts["t2"].abs_diff(600) <= 1,
        "{counts:?}"
    );
}

#[test]
fn priority_takes_the_first_healthy_target_and_blacklisted_ones_come_last_soonest_first() {
    let pool = pool(Strategy::Priority, &[1, 1, 1]);
    for _ in 0..10 {
        assert_eq!(pool.order(1)[0].upstream.label, "t0");
    }
    pool.targets()[0].upstream.blacklist(500);
    pool.targets()[1].upstream.blacklist(300);
    let order: Vec<String> = pool
        .order(100)
        .iter()
        .map(|t| t.upstream.label.clone())
        .collect();
    assert_eq!(order, ["t2", "t1", "t0"]);
    pool.targets()[2].upstream.blacklist(900);
    assert_eq!(
        pool.order(100)[0].upstream.label,
        "t1",
        "all blacklisted: the soonest back first"
    );
    assert_eq!(
        pool.order(600)[0].upstream.label,
        "t0",
        "back after its time"
    );
}

/// Two mock upstreams behind one priority route `a`, `b`, each a separate provider.
async fn two_upstreams(
    first: Reply,
    second: Reply,
    clock: Option<Arc<ManualClock>>,
    router: &str,
) -> (MockUpstream, MockUpstream, Ccr) {
    two_upstreams_with(first, second, clock, router, "priority").await
}

async fn two_upstreams_with(
    first: Reply,
    second: Reply,
    clock: Option<Arc<ManualClock>>,
    router: &str,
    strategy: &str,
) -> (MockUpstream, MockUpstream, Ccr) {
    let a = MockUpstream::start(first).await;
    let b = MockUpstream::start(second).await;
    let yaml = format!(
        "server: {{ host: 127.0.0.1, port: 0 }}\nproviders:\n  a: {{ type: anthropic, base_url: \"{}\" }}\n  b: {{ type: anthropic, base_url: \"{}\" }}\nroutes:\n  default: {{ strategy: {strategy}, targets: [a/*, b/*] }}\n",
        a.base_url(),
        b.base_url()
    );
    let ccr = Ccr::start_with_clock(&with_router(&yaml, router), clock).await;
    (a, b, ccr)
}

fn ok_stream() -> Reply {
    Reply::Sse {
        body: sse_stream("fine", 3, 4),
        byte_per_write: false,
    }
}

fn status(code: u16, headers: Vec<(&'static str, String)>) -> Reply {
    let body = json!({"type": "error", "error": {"type": "api_error", "message": format!("upstream says {code}")}});
    Reply::Status {
        status: code,
        headers,
        body: body.to_string(),
    }
}

#[tokio::test]
async fn a_500_fails_over_and_the_next_request_skips_the_blacklisted_target() {
    let (a, b, ccr) = two_upstreams(status(500, vec![]), ok_stream(), None, "backoff: 5ms").await;
    let response = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ccr-attempts"], "2");
    assert_eq!(response.headers()["x-ccr-provider"], "b");
    assert_eq!(response.headers()["x-ccr-scenario"], "default");
    check_stream(&response.text().await.unwrap());
    let again = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    assert_eq!(again.headers()["x-ccr-attempts"], "1");
    assert_eq!(again.headers()["x-ccr-provider"], "b");
    again.text().await.unwrap();
    assert_eq!(
        (a.received().len(), b.received().len()),
        (1, 2),
        "a sat out the second request"
    );
    let record = &ccr.records.wait_for(1).await[0];
    let classes: Vec<(&str, &str)> = record
        .attempts
        .iter()
        .map(|t| (t.target.as_str(), crate::support::class_of(t)))
        .collect();
    assert_eq!(classes, [("a", "upstream_5xx"), ("b", "ok")]);
    ccr.shutdown().await;
}

#[tokio::test]
async fn a_429_with_retry_after_blacklists_for_that_long_on_the_clock() {
    let clock = Arc::new(ManualClock::default());
    let (a, b, ccr) = two_upstreams(
        ok_stream(),
        ok_stream(),
        Some(clock.clone()),
        "backoff: 5ms",
    )
    .await;
    a.then(status(429, vec![("retry-after", "7".into())]));
    let first = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    assert_eq!(first.headers()["x-ccr-provider"], "b", "the 429 fails over");
    first.text().await.unwrap();
    clock.advance(Duration::from_millis(6_900));
    let during = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    assert_eq!(
        during.headers()["x-ccr-provider"],
        "b",
        "still blacklisted at 6.9 s"
    );
    during.text().await.unwrap();
    clock.advance(Duration::from_millis(200));
    let after = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    assert_eq!(after.headers()["x-ccr-provider"], "a", "back after 7 s");
    after.text().await.unwrap();
    assert_eq!((a.received().len(), b.received().len()), (2, 2));
    ccr.shutdown().await;
}

#[tokio::test]
async fn a_400_comes_back_after_one_attempt_and_blacklists_nothing() {
    let (a, b, ccr) = two_upstreams(ok_stream(), ok_stream(), None, "backoff: 5ms").await;
    a.then(status(400, vec![]));
    let response = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["x-ccr-attempts"], "1");
    response.text().await.unwrap();
    let next = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    assert_eq!(
        next.headers()["x-ccr-provider"],
        "a",
        "a is not blacklisted by a 400"
    );
    next.text().await.unwrap();
    assert_eq!((a.received().len(), b.received().len()), (2, 0));
    ccr.shutdown().await;
}

#[tokio::test]
async fn when_every_target_fails_the_last_error_comes_back_in_anthropic_form() {
    let (a, b, ccr) = two_upstreams(
        status(503, vec![]),
        status(502, vec![]),
        None,
        "backoff: 5ms, max_attempts: 2",
    )
    .await;
    let response = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-ccr-attempts"], "2");
    let (status, kind, message) = anthropic_error(response).await;
    assert_eq!((status, kind.as_str()), (502, "api_error"));
    assert_eq!(message, "upstream says 502");
    assert_eq!((a.received().len(), b.received().len()), (1, 1));

    // Both blacklisted now: the next request still tries, the soonest back first (a: 503
    // and b: 502 are both server errors, so a, blacklisted first, comes back first).
    a.then(ok_stream());
    let response = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ccr-provider"], "a");
    response.text().await.unwrap();
    ccr.shutdown().await;
}

#[tokio::test]
async fn a_failure_after_the_first_streamed_byte_is_never_retried() {
    let full = sse_stream("cut", 5, 5);
    let cut_at = full.find("event: content_block_delta").unwrap();
    let (a, b, ccr) = two_upstreams(
        Reply::CutAfter {
            before: full[..cut_at].to_string(),
        },
        ok_stream(),
        None,
        "backoff: 5ms",
    )
    .await;
    let response = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let checked = check_stream(&response.text().await.unwrap());
    assert!(checked.error.is_some(), "an error event ends the stream");
    assert_eq!(
        (a.received().len(), b.received().len()),
        (1, 0),
        "exactly one upstream attempt"
    );
    ccr.shutdown().await;
}

#[tokio::test]
async fn the_fixture_routes_through_failover_to_a_converting_provider() {
    // The first target refuses with 503; the second is OpenAI-compatible and converts.
    let a = MockUpstream::start(status(503, vec![])).await;
    let b = MockUpstream::start(Reply::Sse {
        body: crate::support::mock_upstream::openai_stream(&[
            json!({"choices":[{"index":0,"delta":{"content":"converted"}}]}),
            json!({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}),
        ]),
        byte_per_write: false,
    })
    .await;
    let yaml = format!(
        "server: {{ host: 127.0.0.1, port: 0 }}\nproviders:\n  a: {{ type: anthropic, base_url: \"{}\" }}\n  b: {{ type: openai, base_url: \"{}/v1\", api_key: k }}\nroutes:\n  default: {{ strategy: priority, targets: [a/*, b/deepseek-chat] }}\n",
        a.base_url(),
        b.base_url()
    );
    let ccr = Ccr::start(&fast_retries(&yaml)).await;
    let (_, body) = fixture();
    let response = messages_request(&ccr, body).send().await.unwrap();
    assert_eq!(response.headers()["x-ccr-model"], "deepseek-chat");
    let checked = check_stream(&response.text().await.unwrap());
    assert_eq!(checked.text(), "converted");
    ccr.shutdown().await;
}

/// A request in session `session` (Claude Code 2.x's JSON-string `metadata.user_id`).
fn in_session(ccr: &Ccr, session: &str) -> reqwest::RequestBuilder {
    let user_id = json!({"device_id": "d", "account_uuid": "", "session_id": session}).to_string();
    let body = json!({"model": "m", "max_tokens": 5, "stream": true, "metadata": {"user_id": user_id}, "messages": [{"role": "user", "content": "hi"}]});
    messages_request(ccr, body.to_string())
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
async fn sessions_stick_to_their_target_and_move_with_failover() {
    let clock = Arc::new(ManualClock::default());
    let (a, b, ccr) = two_upstreams_with(
        ok_stream(),
        ok_stream(),
        Some(clock.clone()),
        "backoff: 5ms",
        "round_robin",
    )
    .await;
    let home = served_by(in_session(&ccr, "s-1")).await;
    let mut others = Vec::new();
    for _ in 0..4 {
        assert_eq!(
            served_by(in_session(&ccr, "s-1")).await,
            home,
            "the session stays put"
        );
        for _ in 0..2 {
            others.push(served_by(messages_request(&ccr, small_request("m", true))).await);
        }
    }
    assert!(
        others.contains(&"a".to_string()) && others.contains(&"b".to_string()),
        "without a session, round robin: {others:?}"
    );
    // The header form names a session too.
    let by_header = served_by(
        messages_request(&ccr, small_request("m", true)).header("x-claude-code-session-id", "s-2"),
    )
    .await;
    for _ in 0..3 {
        let again = messages_request(&ccr, small_request("m", true))
            .header("x-claude-code-session-id", "s-2");
        assert_eq!(served_by(again).await, by_header);
    }

    // The session's target fails: the request fails over and the session moves with it,
    // staying on the new target even once the old one is healthy again.
    let (home_mock, away) = if home == "a" { (&a, "b") } else { (&b, "a") };
    home_mock.then(status(500, vec![]));
    assert_eq!(served_by(in_session(&ccr, "s-1")).await, away);
    clock.advance(Duration::from_secs(120));
    for _ in 0..3 {
        assert_eq!(served_by(in_session(&ccr, "s-1")).await, away);
    }
    ccr.shutdown().await;
}
