//! The server's own answers: auth, limits, malformed input, unknown paths, connection timeouts.

use std::io::{Read, Write};
use std::time::Duration;

use crate::support::mock_upstream::{MockUpstream, Reply, sse_stream};
use crate::support::{Ccr, anthropic_error, client, config_yaml, messages_request, small_request};

async fn mock() -> MockUpstream {
    MockUpstream::start(Reply::Sse {
        body: sse_stream("ok", 1, 1),
        byte_per_write: false,
    })
    .await
}

#[tokio::test]
async fn a_client_key_guards_v1_but_not_health_or_head() {
    let upstream = mock().await;
    let ccr = Ccr::start(&config_yaml(
        &upstream.base_url(),
        "up/*",
        "    api_key: sk-up\n",
        "  api_key: right-key\n",
    ))
    .await;

    let missing = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    let (status, kind, message) = anthropic_error(missing).await;
    assert_eq!((status, kind.as_str()), (401, "authentication_error"));
    assert!(message.contains("server.api_key"), "{message}");

    let wrong = messages_request(&ccr, small_request("m", true))
        .header("x-api-key", "wrong-key")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let count = client()
        .post(ccr.url("/v1/messages/count_tokens"))
        .body(small_request("m", false))
        .send()
        .await
        .unwrap();
    assert_eq!(count.status(), 401);
    assert!(upstream.received().is_empty());

    let unknown = client().get(ccr.url("/v1/models")).send().await.unwrap();
    assert_eq!(unknown.status(), 401, "every /v1/* path is guarded");
    let unknown = client()
        .get(ccr.url("/v1/models"))
        .header("x-api-key", "right-key")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    let right = messages_request(&ccr, small_request("m", true))
        .header("x-api-key", "right-key")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    let bearer = messages_request(&ccr, small_request("m", true))
        .bearer_auth("right-key")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);

    let head = client().head(ccr.url("/")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.headers().contains_key("x-ccr-request-id"));
    let health = client().get(ccr.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), r#"{"status":"ok"}"#);
    ccr.shutdown().await;
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let upstream = mock().await;
    let ccr = Ccr::start(&config_yaml(
        &upstream.base_url(),
        "up/*",
        "",
        "  body_limit: 1000\n",
    ))
    .await;
    let big = small_request(&"m".repeat(2000), true);

    let declared = messages_request(&ccr, big.clone()).send().await.unwrap();
    let (status, kind, message) = anthropic_error(declared).await;
    assert_eq!((status, kind.as_str()), (413, "request_too_large"));
    assert!(message.contains("1000 bytes"), "{message}");

    // Without a Content-Length (chunked), the limit holds while reading.
    let chunks = futures_util::stream::iter(
        big.into_bytes()
            .chunks(100)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let chunked = messages_request(&ccr, reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(chunked.status(), 413);
    assert!(upstream.received().is_empty());
    ccr.shutdown().await;
}

#[tokio::test]
async fn malformed_json_is_a_400_saying_where() {
    let upstream = mock().await;
    let ccr = Ccr::start(&config_yaml(&upstream.base_url(), "up/*", "", "")).await;
    let response = messages_request(&ccr, "{\"model\": \"m\",\n  \"messages\": [,]}")
        .send()
        .await
        .unwrap();
    let (status, kind, message) = anthropic_error(response).await;
    assert_eq!((status, kind.as_str()), (400, "invalid_request_error"));
    assert!(
        message.contains("not valid JSON") && message.contains("line 2 column"),
        "{message}"
    );

    let no_model = messages_request(&ccr, r#"{"messages":[]}"#)
        .send()
        .await
        .unwrap();
    let (status, _, message) = anthropic_error(no_model).await;
    assert_eq!(status, 400);
    assert!(message.contains("`model`"), "{message}");

    let record = &ccr.records.wait_for(2).await[0];
    assert_eq!(record.status, 400);
    assert!(upstream.received().is_empty());
    ccr.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405_in_anthropic_form() {
    let upstream = mock().await;
    let ccr = Ccr::start(&config_yaml(&upstream.base_url(), "up/*", "", "")).await;
    let response = client().get(ccr.url("/v1/nothing")).send().await.unwrap();
    let (status, kind, message) = anthropic_error(response).await;
    assert_eq!((status, kind.as_str()), (404, "not_found_error"));
    assert!(message.contains("/v1/nothing"), "{message}");
    let response = client().get(ccr.url("/v1/messages")).send().await.unwrap();
    let (status, kind, _) = anthropic_error(response).await;
    assert_eq!((status, kind.as_str()), (405, "invalid_request_error"));
    ccr.shutdown().await;
}

#[tokio::test]
async fn request_ids_differ_per_request() {
    let upstream = mock().await;
    let ccr = Ccr::start(&config_yaml(&upstream.base_url(), "up/*", "", "")).await;
    let a = client().get(ccr.url("/health")).send().await.unwrap();
    let b = client().get(ccr.url("/health")).send().await.unwrap();
    assert_ne!(
        a.headers()["x-ccr-request-id"],
        b.headers()["x-ccr-request-id"]
    );
    ccr.shutdown().await;
}

/// Reads until the server closes the connection; returns what it sent.
fn read_until_closed(mut stream: std::net::TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut out = Vec::new();
    stream
        .read_to_end(&mut out)
        .expect("the server closes the connection");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() {
    let upstream = mock().await;
    let ccr = Ccr::start(&config_yaml(
        &upstream.base_url(),
        "up/*",
        "",
        "  header_read_timeout: 1s\n  idle_timeout: 1s\n",
    ))
    .await;
    let addr = ccr.addr;
    let (slow, idle) = tokio::task::spawn_blocking(move || {
        let mut slow = std::net::TcpStream::connect(addr).unwrap();
        slow.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .unwrap();
        let slow = read_until_closed(slow);

        let mut idle = std::net::TcpStream::connect(addr).unwrap();
        idle.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let idle = read_until_closed(idle);
        (slow, idle)
    })
    .await
    .unwrap();
    assert!(!slow.contains("200 OK"), "headers never finished: {slow}");
    assert!(
        idle.starts_with("HTTP/1.1 200 OK"),
        "the request is answered, then the idle connection closed: {idle}"
    );
    ccr.shutdown().await;
}
