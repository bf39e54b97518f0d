//! The live-state endpoints: `/api/targets` (each target's health, blacklist and why, in
//! flight, last success and failure) and `/api/sessions/{id}` (one conversation).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::support::mock_upstream::{MockUpstream, Reply, sse_stream};
use crate::support::{
    Ccr, client, config_yaml, get_json, messages_request, send_and_drain, session_request,
    single_attempt, small_request,
};
use ccr::routing::ManualClock;

fn ok_stream(input: u64, output: u64) -> Reply {
    Reply::Sse {
        body: sse_stream("fine", input, output),
        byte_per_write: false,
    }
}

fn rate_limited(retry_after: &str) -> Reply {
    Reply::Status {
        status: 429,
        headers: vec![("retry-after", retry_after.to_string())],
        body:
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
                .to_string(),
    }
}

fn target<'a>(document: &'a Value, label: &str) -> &'a Value {
    document["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == label)
        .unwrap_or_else(|| panic!("no target {label} in {document}"))
}

fn parse_time(value: &Value) -> std::time::SystemTime {
    humantime::parse_rfc3339(value.as_str().unwrap_or_else(|| panic!("a time: {value}"))).unwrap()
}

#[tokio::test]
async fn targets_show_health_the_blacklist_and_why_in_flight_and_last_times() {
    let clock = Arc::new(ManualClock::default());
    let a = MockUpstream::start(ok_stream(3, 4)).await;
    let b = MockUpstream::start(ok_stream(3, 4)).await;
    let yaml = format!(
        "server: {{ host: 127.0.0.1, port: 0 }}\nproviders:\n  a: {{ type: anthropic, base_url: \"{}\" }}\n  b: {{ type: anthropic, base_url: \"{}\" }}\nroutes:\n  default: {{ strategy: priority, targets: [a/*, b/*] }}\nrouter: {{ backoff: 5ms }}\n",
        a.base_url(),
        b.base_url()
    );
    let ccr = Ccr::start_with_clock(&yaml, Some(clock.clone())).await;
    let fresh = get_json(ccr.url("/api/targets")).await;
    for label in ["a", "b"] {
        let t = target(&fresh, label);
        assert_eq!(t["healthy"], true, "{t}");
        assert_eq!(t["provider"], label);
        assert_eq!(t["in_flight"], 0);
        for never in [
            "blacklisted_until",
            "reason",
            "last_success",
            "last_failure",
        ] {
            assert!(t[never].is_null(), "{never} of a fresh target: {t}");
        }
    }

    a.then(rate_limited("7"));
    let before = std::time::SystemTime::now();
    let response = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["x-ccr-provider"],
        "b",
        "the 429 fails over"
    );
    response.text().await.unwrap();
    ccr.records.wait_for(1).await;
    let after = get_json(ccr.url("/api/targets")).await;
    let (ta, tb) = (target(&after, "a"), target(&after, "b"));
    assert_eq!(ta["healthy"], false, "{ta}");
    assert_eq!(ta["reason"], "rate_limit");
    let until = parse_time(&ta["blacklisted_until"]);
    let out = until.duration_since(before).unwrap_or_default();
    assert!(
        out >= Duration::from_secs(5) && out <= Duration::from_secs(30),
        "out for its Retry-After on the server's clock: {ta}"
    );
    assert!(
        ta["last_failure"].is_string() && ta["last_success"].is_null(),
        "{ta}"
    );
    assert_eq!(tb["healthy"], true);
    assert!(
        tb["last_success"].is_string() && tb["last_failure"].is_null(),
        "{tb}"
    );

    // A stream still open is in flight until it ends.
    let full = sse_stream("slow", 1, 1);
    let split = full.find("event: content_block_delta").unwrap();
    let release = Arc::new(Notify::new());
    b.then(Reply::StallMidStream {
        before: full[..split].to_string(),
        after: full[split..].to_string(),
        release: release.clone(),
    });
    let mut open = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    open.chunk().await.unwrap().expect("the first events");
    let during = get_json(ccr.url("/api/targets")).await;
    assert_eq!(target(&during, "b")["in_flight"], 1, "{during}");
    release.notify_one();
    while open.chunk().await.unwrap().is_some() {}
    ccr.records.wait_for(2).await;
    let done = get_json(ccr.url("/api/targets")).await;
    assert_eq!(target(&done, "b")["in_flight"], 0, "{done}");

    clock.advance(Duration::from_secs(8));
    let back = get_json(ccr.url("/api/targets")).await;
    let ta = target(&back, "a");
    assert_eq!(ta["healthy"], true, "back after its time: {ta}");
    assert!(ta["blacklisted_until"].is_null() && ta["reason"].is_null());
    assert!(
        ta["last_failure"].is_string(),
        "the failure is still remembered"
    );
    ccr.shutdown().await;
}

#[tokio::test]
async fn a_session_shows_its_target_counts_and_tokens() {
    let upstream = MockUpstream::start(ok_stream(100, 7)).await;
    let ccr = Ccr::start(&single_attempt(&config_yaml(
        &upstream.base_url(),
        "up/claude-mock",
        "",
        "",
    )))
    .await;
    let missing = client()
        .get(ccr.url("/api/sessions/s-1"))
        .send()
        .await
        .unwrap();
    let (status, kind, _) = crate::support::anthropic_error(missing).await;
    assert_eq!((status, kind.as_str()), (404, "not_found_error"));

    for _ in 0..2 {
        send_and_drain(messages_request(&ccr, session_request("s-1"))).await;
    }
    upstream.then(rate_limited("1"));
    let refused = messages_request(&ccr, session_request("s-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    refused.text().await.unwrap();
    send_and_drain(messages_request(&ccr, session_request("s-2"))).await;
    ccr.records.wait_for(4).await;

    let session = get_json(ccr.url("/api/sessions/s-1")).await;
    assert_eq!(session["session"], "s-1");
    assert_eq!(session["scenario"], "default");
    assert_eq!(
        session["target"], "up",
        "the 429 keeps the target that answered"
    );
    assert_eq!(session["provider"], "up");
    assert_eq!(session["model"], "claude-mock");
    assert_eq!(
        (
            &session["requests"],
            &session["failures"],
            &session["cancelled"]
        ),
        (&json!(3), &json!(1), &json!(0))
    );
    assert_eq!(session["tokens"]["input"], 200);
    assert_eq!(session["tokens"]["output"], 14);
    assert!(session["last_seen"].is_string());
    let other = get_json(ccr.url("/api/sessions/s-2")).await;
    assert_eq!(other["requests"], 1, "sessions are apart");
    let too_long = client()
        .get(ccr.url(&format!("/api/sessions/{}", "x".repeat(200))))
        .send()
        .await
        .unwrap();
    assert_eq!(too_long.status(), 404);
    ccr.shutdown().await;
}

#[tokio::test]
async fn the_live_state_endpoints_are_guarded_by_the_client_key() {
    let upstream = MockUpstream::start(ok_stream(1, 1)).await;
    let ccr = Ccr::start_keyed(&upstream.base_url(), "up/*").await;
    let request = messages_request(&ccr, session_request("s-1")).header("x-api-key", "secret-key");
    assert_eq!(send_and_drain(request).await, 200);
    ccr.records.wait_for(1).await;
    for path in ["/api/targets", "/api/sessions/s-1"] {
        let refused = client().get(ccr.url(path)).send().await.unwrap();
        assert_eq!(refused.status(), 401, "{path} without the key");
        let wrong = client()
            .get(ccr.url(path))
            .header("x-api-key", "wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path} with a wrong key");
        let allowed = client()
            .get(ccr.url(path))
            .bearer_auth("secret-key")
            .send()
            .await
            .unwrap();
        assert_eq!(allowed.status(), 200, "{path} with the key");
    }
    ccr.shutdown().await;
}
