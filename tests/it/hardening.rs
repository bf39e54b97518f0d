//! What a hostile web page, a hostile client or a broken upstream can do to ccr, tried from
//! outside: each gets a clear refusal or error, and nothing grows without bound.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::Value;

use crate::support::mock_upstream::{MockUpstream, Reply, openai_stream, sse_stream};
use crate::support::{
    Ccr, anthropic_error, client, config_yaml, messages_request, openai_config, small_request,
    with_router,
};

fn ok_stream() -> Reply {
    Reply::Sse {
        body: sse_stream("fine", 3, 4),
        byte_per_write: false,
    }
}

/// Sends raw bytes on a new connection and reads what comes back until it closes.
fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_cross_site_post_is_refused_and_never_forwarded() {
    let upstream = MockUpstream::start(ok_stream()).await;
    let ccr = Ccr::start(&config_yaml(&upstream.base_url(), "up/*", "", "")).await;
    // What a page's `fetch` with a text body sends: no preflight, a foreign Origin.
    let response = client()
        .post(ccr.url("/v1/messages"))
        .header("origin", "http://evil.test")
        .header("content-type", "text/plain")
        .body(small_request("m", false))
        .send()
        .await
        .unwrap();
    let (status, kind, message) = anthropic_error(response).await;
    assert_eq!((status, kind.as_str()), (403, "permission_error"));
    assert!(message.contains("server.allowed_origins"), "{message}");
    // The same body as text/plain from no page at all is refused as not JSON.
    let response = client()
        .post(ccr.url("/v1/messages"))
        .header("content-type", "text/plain")
        .body(small_request("m", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(upstream.received().len(), 0, "nothing was forwarded");
    // The server's own origin (a same-origin page) and what Claude Code sends are served.
    let own = format!("http://{}", ccr.addr);
    let response = messages_request(&ccr, small_request("m", false))
        .header("origin", own)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    ccr.shutdown().await;
}

#[tokio::test]
async fn a_rebinding_host_is_refused() {
    let upstream = MockUpstream::start(ok_stream()).await;
    let ccr = Ccr::start(&config_yaml(&upstream.base_url(), "up/*", "", "")).await;
    let addr = ccr.addr;
    let answer = tokio::task::spawn_blocking(move || {
        raw_exchange(
            addr,
            b"GET /health HTTP/1.1\r\nHost: evil.test:3456\r\nConnection: close\r\n\r\n",
        )
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("server.allowed_hosts"), "{answer}");
    ccr.shutdown().await;

    // Behind a client key any Host is served (a load balancer's name), Origin rules stay.
    let keyed = Ccr::start(&config_yaml(
        &upstream.base_url(),
        "up/*",
        "    api_key: k\n",
        "  api_key: the-key\n",
    ))
    .await;
    let addr = keyed.addr;
    let answer = tokio::task::spawn_blocking(move || {
        raw_exchange(
            addr,
            b"GET /health HTTP/1.1\r\nHost: ccr.example.com\r\nConnection: close\r\n\r\n",
        )
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    keyed.shutdown().await;
}

#[tokio::test]
async fn retry_after_1e20_reaches_the_client_as_429() {
    let upstream = MockUpstream::start(Reply::Status {
        status: 429,
        headers: vec![("retry-after", "1e20".into())],
        body: r#"{"type":"error","error":{"type":"rate_limit_error","message":"later"}}"#.into(),
    })
    .await;
    let ccr = Ccr::start(&config_yaml(&upstream.base_url(), "up/*", "", "")).await;
    let response = messages_request(&ccr, small_request("m", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(
        response.headers()["retry-after"],
        "1e20",
        "passed back as sent"
    );
    let record = &ccr.records.wait_for(1).await[0];
    assert_eq!(record.failure.map(|f| f.class.as_str()), Some("rate_limit"));
    ccr.shutdown().await;
}

#[tokio::test]
async fn distinct_model_names_keep_metrics_bounded() {
    let upstream = MockUpstream::start(ok_stream()).await;
    let ccr = Ccr::start(&config_yaml(&upstream.base_url(), "up/*", "", "")).await;
    let send_distinct = |range: std::ops::Range<usize>| {
        let ccr = &ccr;
        async move {
            for i in range {
                let model = format!("m-{i}-{}", "x".repeat(200));
                let response = messages_request(ccr, small_request(&model, false))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                response.text().await.unwrap();
            }
        }
    };
    let metrics_size = || async {
        let text = crate::support::get_text(ccr.url("/metrics")).await;
        text.len()
    };
    send_distinct(0..200).await;
    ccr.records.wait_for(200).await;
    let stats: Value = crate::support::get_json(ccr.url("/api/stats")).await;
    let rows = stats["rows"].as_array().unwrap();
    assert!(
        rows.len() <= ccr::stats::MAX_MODEL_LABELS + 1,
        "{} rows",
        rows.len()
    );
    assert!(rows.iter().any(|r| r["model"] == "other"));
    assert_eq!(
        stats["totals"]["requests"], 200,
        "every request still counted"
    );
    // More distinct names no longer grow /metrics: they all count as `other`.
    let after_200 = metrics_size().await;
    send_distinct(200..300).await;
    ccr.records.wait_for(300).await;
    let after_300 = metrics_size().await;
    assert!(
        after_300 <= after_200 + after_200 / 100,
        "{after_200} → {after_300} bytes"
    );

    // A model name beyond a few hundred bytes is refused, not echoed in headers.
    let response = messages_request(&ccr, small_request(&"y".repeat(1 << 20), false))
        .send()
        .await
        .unwrap();
    assert!(response.headers().iter().all(|(_, v)| v.len() < 1024));
    let (status, _, message) = anthropic_error(response).await;
    assert_eq!(status, 400);
    assert!(message.contains("up to 256 bytes"), "{message}");
    ccr.shutdown().await;
}

#[tokio::test]
async fn an_endless_sse_line_ends_the_stream_with_an_error() {
    let line = format!(
        "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}",
        "z".repeat(3 << 20)
    );
    let upstream = MockUpstream::start(Reply::Sse {
        body: format!(
            "{}{line}",
            openai_stream(&[
                serde_json::json!({"choices":[{"index":0,"delta":{"content":"before "}}]})
            ])
            .trim_end_matches("data: [DONE]\n\n")
        ),
        byte_per_write: false,
    })
    .await;
    let ccr = Ccr::start(&with_router(
        &openai_config(&upstream.base_url(), "gpt-x", "", ""),
        "max_attempts: 1",
    ))
    .await;
    let response = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the stream had begun");
    let text = response.text().await.unwrap();
    assert!(
        text.contains("event: error") && text.contains("stream line over"),
        "{}",
        &text[..text.len().min(2000)]
    );
    assert!(text.len() < 64 * 1024, "the long line is not passed on");
    let record = &ccr.records.wait_for(1).await[0];
    assert_eq!(
        record.failure.map(|f| f.class.as_str()),
        Some("bad_response")
    );
    ccr.shutdown().await;
}

#[tokio::test]
async fn a_trickle_of_bytes_without_events_times_out() {
    // One byte per millisecond of a line that never ends: bytes keep coming, events never.
    let upstream = MockUpstream::start(Reply::Sse {
        body: format!("data: {}", "x".repeat(20_000)),
        byte_per_write: true,
    })
    .await;
    let ccr = Ccr::start(&with_router(
        &openai_config(
            &upstream.base_url(),
            "gpt-x",
            "    timeouts: { first_byte: 500ms, idle: 500ms }\n",
            "",
        ),
        "max_attempts: 1",
    ))
    .await;
    let response = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    let (status, _, message) = anthropic_error(response).await;
    assert_eq!(status, 504);
    assert!(message.contains("first event"), "{message}");
    let record = &ccr.records.wait_for(1).await[0];
    assert_eq!(record.failure.map(|f| f.class.as_str()), Some("timeout"));
    ccr.shutdown().await;
}

#[tokio::test]
async fn a_slow_body_gets_408() {
    let upstream = MockUpstream::start(ok_stream()).await;
    let ccr = Ccr::start(&config_yaml(
        &upstream.base_url(),
        "up/*",
        "",
        "  body_read_timeout: 500ms\n",
    ))
    .await;
    let addr = ccr.addr;
    let answer = tokio::task::spawn_blocking(move || {
        raw_exchange(
            addr,
            b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"model\":",
        )
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("server.body_read_timeout"), "{answer}");
    assert_eq!(upstream.received().len(), 0);
    ccr.shutdown().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_outlives_the_header_timeout() {
    let upstream = MockUpstream::start(ok_stream()).await;
    let ccr = Ccr::start(&config_yaml(
        &upstream.base_url(),
        "up/*",
        "",
        "  header_read_timeout: 300ms\n  idle_timeout: 20s\n",
    ))
    .await;
    let addr = ccr.addr;
    let second = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        let read_one = |stream: &mut std::net::TcpStream| {
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.ends_with(b"}") {
                let n = stream.read(&mut buf).unwrap();
                assert!(
                    n > 0,
                    "the connection closed: {}",
                    String::from_utf8_lossy(&got)
                );
                got.extend_from_slice(&buf[..n]);
            }
            String::from_utf8_lossy(&got).into_owned()
        };
        stream.write_all(request).unwrap();
        assert!(read_one(&mut stream).starts_with("HTTP/1.1 200"));
        // Idle three times the header timeout, well within the idle timeout.
        std::thread::sleep(Duration::from_millis(900));
        stream.write_all(request).unwrap();
        read_one(&mut stream)
    })
    .await
    .unwrap();
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    ccr.shutdown().await;
}

#[tokio::test]
async fn five_hundred_headers_get_an_anthropic_shaped_431() {
    let upstream = MockUpstream::start(ok_stream()).await;
    let ccr = Ccr::start(&config_yaml(&upstream.base_url(), "up/*", "", "")).await;
    let mut request = messages_request(&ccr, small_request("m", false));
    for i in 0..500 {
        request = request.header(format!("x-filler-{i}"), "1");
    }
    let (status, kind, message) = anthropic_error(request.send().await.unwrap()).await;
    assert_eq!((status, kind.as_str()), (431, "invalid_request_error"));
    assert!(message.contains("at most 200"), "{message}");
    ccr.shutdown().await;
}

#[tokio::test]
async fn a_head_larger_than_the_read_buffer_gets_431_and_large_bodies_still_pass() {
    let upstream = MockUpstream::start(ok_stream()).await;
    let ccr = Ccr::start(&config_yaml(&upstream.base_url(), "up/*", "", "")).await;
    // A connection's read buffer is capped at 32 KB (allocation rounding lets a head a
    // little over it through; 100 KB cannot), so it cannot grow to hyper's ~400 KB and stay.
    let request = messages_request(&ccr, small_request("m", false))
        .header("x-filler", "a".repeat(100 * 1024));
    assert_eq!(request.send().await.unwrap().status(), 431);
    // A body ten times that size streams through the same buffer.
    let mut big: serde_json::Value = serde_json::from_str(&small_request("m", false)).unwrap();
    big["system"] = serde_json::Value::String("long system prompt ".repeat(20_000));
    let response = messages_request(&ccr, big.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let received = upstream.received();
    let forwarded: serde_json::Value =
        serde_json::from_slice(&received.last().unwrap().body).unwrap();
    assert_eq!(forwarded["system"].as_str().unwrap().len(), 19 * 20_000);
    ccr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_served_with_2000_idle_connections_open_and_the_cap_holds() {
    raise_open_file_limit();
    let upstream = MockUpstream::start(ok_stream()).await;
    let ccr = Ccr::start(&config_yaml(&upstream.base_url(), "up/*", "", "")).await;
    let idle: Vec<tokio::net::TcpStream> = {
        let mut idle = Vec::new();
        for _ in 0..2000 {
            idle.push(tokio::net::TcpStream::connect(ccr.addr).await.unwrap());
        }
        idle
    };
    let response = messages_request(&ccr, small_request("m", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    drop(idle);
    ccr.shutdown().await;

    // With a cap of 2, a third connection waits until one of the two closes.
    let capped = Ccr::start(&config_yaml(
        &upstream.base_url(),
        "up/*",
        "",
        "  max_connections: 2\n",
    ))
    .await;
    let first = tokio::net::TcpStream::connect(capped.addr).await.unwrap();
    let second = tokio::net::TcpStream::connect(capped.addr).await.unwrap();
    let waiting = tokio::spawn(messages_request(&capped, small_request("m", false)).send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the third connection waits for a slot"
    );
    drop(first);
    let response = tokio::time::timeout(crate::support::PATIENCE, waiting)
        .await
        .expect("served once a slot is free")
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    drop(second);
    capped.shutdown().await;
}

#[tokio::test]
async fn errors_never_repeat_a_key_or_a_url_query() {
    // Some upstreams echo the key they were given.
    let upstream = MockUpstream::start(Reply::Status {
        status: 401,
        headers: vec![],
        body: r#"{"error":{"message":"Incorrect API key provided: sk-oa-secret. Find yours at example.test","type":"invalid_request_error"}}"#.into(),
    })
    .await;
    let ccr = Ccr::start(&with_router(
        &openai_config(&upstream.base_url(), "gpt-x", "", ""),
        "max_attempts: 1",
    ))
    .await;
    let response = messages_request(&ccr, small_request("m", false))
        .send()
        .await
        .unwrap();
    let (status, _, message) = anthropic_error(response).await;
    assert_eq!(status, 401);
    assert!(
        message.contains("Incorrect API key provided: [redacted]"),
        "{message}"
    );
    let record = &ccr.records.wait_for(1).await[0];
    assert!(
        !format!("{record:?}").contains("sk-oa-secret"),
        "{record:?}"
    );
    ccr.shutdown().await;

    // A key in a base URL's query string is not shown in errors.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let yaml = format!(
        "server: {{ host: 127.0.0.1, port: 0 }}\nproviders:\n  oa: {{ type: openai, base_url: \"http://127.0.0.1:{port}/v1?key=query-secret\", api_key: k }}\nroutes:\n  default: [oa/m]\nrouter: {{ max_attempts: 1 }}\n"
    );
    let ccr = Ccr::start(&yaml).await;
    let response = messages_request(&ccr, small_request("m", false))
        .send()
        .await
        .unwrap();
    let (status, _, message) = anthropic_error(response).await;
    assert_eq!(status, 502);
    assert!(message.contains("cannot reach oa"), "{message}");
    assert!(!message.contains("query-secret"), "{message}");
    ccr.shutdown().await;
}

#[tokio::test]
async fn oversized_upstream_events_and_folds_end_in_errors() {
    // The pass-through holds back at most one event's worth of an unfinished event.
    let start = sse_stream("x", 1, 1);
    let first = &start[..start.find("event: content_block_delta").unwrap()];
    let endless = format!(
        "{first}event: content_block_delta\ndata: {}",
        "y".repeat(5 << 20)
    );
    let upstream = MockUpstream::start(Reply::Sse {
        body: endless,
        byte_per_write: false,
    })
    .await;
    let ccr = Ccr::start(&with_router(
        &config_yaml(&upstream.base_url(), "up/*", "", ""),
        "max_attempts: 1",
    ))
    .await;
    let text = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("event: error") && text.contains("SSE event over"),
        "{}",
        &text[..text.len().min(500)]
    );
    assert!(text.len() < 64 * 1024);
    ccr.shutdown().await;

    // A non-streaming client's answer is folded up to a bound, then refused with a 502.
    let piece = "z".repeat(512 * 1024);
    let chunks: Vec<serde_json::Value> = (0..70)
        .map(|_| serde_json::json!({"choices":[{"index":0,"delta":{"content":piece}}]}))
        .chain([serde_json::json!({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})])
        .collect();
    let upstream = MockUpstream::start(Reply::Sse {
        body: openai_stream(&chunks),
        byte_per_write: false,
    })
    .await;
    let ccr = Ccr::start(&with_router(
        &openai_config(&upstream.base_url(), "gpt-x", "", ""),
        "max_attempts: 1",
    ))
    .await;
    let (status, _, message) = anthropic_error(
        messages_request(&ccr, small_request("m", false))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 502);
    assert!(message.contains("ask for it streamed"), "{message}");
    ccr.shutdown().await;
}

#[tokio::test]
async fn a_total_duration_cap_ends_a_long_stream() {
    let (upstream, _release, _full, _split) =
        crate::support::mock_upstream::stalled_mid_stream().await;
    let ccr = Ccr::start(&with_router(
        &config_yaml(
            &upstream.base_url(),
            "up/*",
            "    timeouts: { total: 500ms, idle: 60s }\n",
            "",
        ),
        "max_attempts: 1",
    ))
    .await;
    let text = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("event: error") && text.contains("finish its response"),
        "{text}"
    );
    let record = &ccr.records.wait_for(1).await[0];
    assert_eq!(record.failure.map(|f| f.class.as_str()), Some("timeout"));
    ccr.shutdown().await;
}

/// The peak resident memory of a process, from `/proc/<pid>/status` (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_200_mb_upstream_error_body_does_not_grow_ccr() {
    let upstream = MockUpstream::start(Reply::Status {
        status: 500,
        headers: vec![],
        body: "e".repeat(200 << 20),
    })
    .await;
    let yaml = with_router(
        &config_yaml(&upstream.base_url(), "up/*", "", ""),
        "max_attempts: 1",
    );
    let ccr = crate::support::CcrProcess::serve(Some(&yaml), &[]).await;
    let pid = ccr.child.id().unwrap();
    let before = peak_rss(pid);
    let response = client()
        .post(ccr.url("/v1/messages"))
        .header("content-type", "application/json")
        .body(small_request("m", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let body = response.bytes().await.unwrap();
    assert!(body.len() < 4096, "the client got {} bytes", body.len());
    let grown = peak_rss(pid).saturating_sub(before);
    // Generous: reading 64 KiB of it costs a few MB at most; holding it would cost 200 MB.
    assert!(grown < 50 << 20, "peak RSS grew by {} MB", grown >> 20);
    ccr.sigterm();
    let (code, stderr) = ccr.wait().await;
    assert_eq!(code, Some(0), "{stderr}");
}

/// 2 000 connections are 4 000 descriptors in this process (both ends): lift the soft
/// limit to the hard one, as a server's service manager would.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid resource and a pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
