//! Stats through the server: a scripted mix of requests, then `/api/stats` and `/metrics`.

use serde_json::Value;

use crate::support::mock_upstream::{MockUpstream, Reply, sse_stream, stalled_mid_stream};
use crate::support::{
    Ccr, client, config_yaml, messages_request, run_ccr, single_attempt, small_request, with_router,
};

fn scrape(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("valid Prometheus text")
}

/// Sum of a metric's samples whose labels include all of `matching`.
fn sum(scrape: &prometheus_parse::Scrape, name: &str, matching: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && matching.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn a_scripted_mix_is_counted_exactly_in_both_views() {
    let ok = Reply::Sse {
        body: sse_stream("ok", 100, 7),
        byte_per_write: false,
    };
    let upstream = MockUpstream::start(ok.clone()).await;
    let json = r#"{"id":"m","type":"message","role":"assistant","model":"x","content":[],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":50,"cache_creation_input_tokens":0,"cache_read_input_tokens":20,"output_tokens":3}}"#;
    let ccr = Ccr::start(&single_attempt(&config_yaml(
        &upstream.base_url(),
        "up/*",
        "",
        "",
    )))
    .await;

    // 8 streams and 4 non-streams, at most 4 at a time.
    for batch in 0..3 {
        let mut tasks = Vec::new();
        for i in 0..4 {
            let stream = batch < 2;
            if !stream {
                upstream.then(Reply::Json(json.to_string()));
            }
            let request = messages_request(&ccr, small_request("m", stream));
            tasks.push(tokio::spawn(async move {
                (i, request.send().await.unwrap().text().await.unwrap())
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    }
    // A 429.
    upstream.then(Reply::Status {
        status: 429,
        headers: vec![],
        body: r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}"#.into(),
    });
    assert_eq!(
        messages_request(&ccr, small_request("m", true))
            .send()
            .await
            .unwrap()
            .status(),
        429
    );
    // A cut stream.
    let full = sse_stream("cut", 5, 5);
    upstream.then(Reply::CutAfter {
        before: full[..full.find("event: content_block_delta").unwrap()].to_string(),
    });
    messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    ccr.records.wait_for(14).await;

    let stats: Value = crate::support::get_json(ccr.url("/api/stats")).await;
    assert_eq!(stats["version"], 1);
    assert_eq!(stats["ccr_version"], env!("CARGO_PKG_VERSION"));
    // The last hour by minute (one or two minutes here); the 429 came alone.
    let timeline = stats["timeline"].as_array().unwrap();
    assert!((1..=2).contains(&timeline.len()), "{timeline:?}");
    let rate_limited: u64 = timeline
        .iter()
        .map(|m| m["failures"]["rate_limit"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(rate_limited, 1, "{timeline:?}");
    let totals = &stats["totals"];
    assert_eq!(totals["requests"], 14);
    assert_eq!(totals["successes"], 12);
    assert_eq!(
        totals["streaming"], 10,
        "8 streams, the 429 and the cut stream asked to stream"
    );
    assert_eq!(totals["failures"]["rate_limit"], 1);
    assert_eq!(totals["failures"]["stream_cut"], 1);
    // Streams report 100 in / 7 out, non-streams 50 in / 3 out / 20 cache read; the cut
    // stream got as far as its message_start (5 in / 1 out).
    assert_eq!(totals["tokens"]["input"], 8 * 100 + 4 * 50 + 5);
    assert_eq!(totals["tokens"]["output"], 8 * 7 + 4 * 3 + 1);
    assert_eq!(totals["tokens"]["cache_read"], 4 * 20);
    let row = &stats["rows"][0];
    assert_eq!(
        (
            row["provider"].as_str(),
            row["target"].as_str(),
            row["scenario"].as_str()
        ),
        (Some("up"), Some("up"), Some("default"))
    );
    assert!(row["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert!(row["ttft_ms"]["p99"].as_f64().is_some());
    assert!(row["requests_per_minute"].as_f64().unwrap() > 0.0);

    let metrics = crate::support::get_text(ccr.url("/metrics")).await;
    let scrape = scrape(&metrics);
    assert_eq!(sum(&scrape, "ccr_requests_total", &[]), 14.0);
    assert_eq!(
        sum(&scrape, "ccr_requests_total", &[("outcome", "success")]),
        12.0
    );
    assert_eq!(
        sum(&scrape, "ccr_requests_total", &[("outcome", "rate_limit")]),
        1.0
    );
    assert_eq!(
        sum(&scrape, "ccr_tokens_total", &[("kind", "input")]),
        1005.0
    );
    assert_eq!(
        sum(&scrape, "ccr_tokens_total", &[("kind", "output")]),
        69.0
    );
    assert_eq!(sum(&scrape, "ccr_streaming_requests_total", &[]), 10.0);
    let histogram = scrape
        .samples
        .iter()
        .find(|s| s.metric == "ccr_request_duration_seconds")
        .expect("a duration histogram");
    match &histogram.value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert_eq!(buckets.last().unwrap().count, 14.0)
        }
        other => panic!("not a histogram: {other:?}"),
    }
    ccr.shutdown().await;

    // A client that goes away mid-stream is counted as cancelled.
    let (stalled, release, _, split) = stalled_mid_stream().await;
    let ccr = Ccr::start(&config_yaml(&stalled.base_url(), "up/*", "", "")).await;
    let mut response = messages_request(&ccr, small_request("m", true))
        .send()
        .await
        .unwrap();
    let mut seen = 0;
    while seen < split {
        seen += response.chunk().await.unwrap().unwrap().len();
    }
    drop(response);
    let records = ccr.records.wait_for(1).await;
    assert_eq!(records[0].outcome, ccr::record::Outcome::ClientGone);
    let stats: Value = crate::support::get_json(ccr.url("/api/stats")).await;
    assert_eq!(stats["totals"]["failures"]["cancelled"], 1);
    release.notify_one();
    ccr.shutdown().await;
}

#[tokio::test]
async fn the_views_are_per_server_and_guarded_by_the_client_key() {
    let upstream = MockUpstream::start(Reply::Sse {
        body: sse_stream("ok", 1, 1),
        byte_per_write: false,
    })
    .await;
    let a = Ccr::start_keyed(&upstream.base_url(), "up/*").await;
    let b = Ccr::start(&config_yaml(&upstream.base_url(), "up/*", "", "")).await;
    messages_request(&b, small_request("m", true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    b.records.wait_for(1).await;
    assert_eq!(
        client()
            .get(a.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        client()
            .get(a.url("/api/stats"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let a_stats: Value = client()
        .get(a.url("/api/stats"))
        .header("x-api-key", "secret-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        a_stats["totals"]["requests"], 0,
        "b's request is not in a's stats"
    );
    let response = client().get(b.url("/health")).send().await.unwrap();
    assert!(
        response.headers()["x-ccr-overhead-us"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn ccr_stats_shows_a_live_server_as_a_table_or_json() {
    let upstream = MockUpstream::start(Reply::Sse {
        body: sse_stream("ok", 100, 7),
        byte_per_write: false,
    })
    .await;
    let ccr = Ccr::start(&config_yaml(&upstream.base_url(), "up/claude-x", "", "")).await;
    for _ in 0..3 {
        messages_request(&ccr, small_request("m", true))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    }
    ccr.records.wait_for(3).await;
    let url = ccr.url("");

    // An unknown width (a pipe) gets the default layout; 80 columns drop the least
    // needed columns instead of wrapping; 0 is treated as unknown.
    for (name, columns) in [
        ("ccr_stats_table", None),
        ("ccr_stats_table_80_columns", Some("80")),
        ("ccr_stats_table_zero_width", Some("0")),
    ] {
        let env: Vec<(&str, &str)> = columns.map(|c| ("COLUMNS", c)).into_iter().collect();
        let (code, table, stderr) = run_ccr(&["stats", "--url", &url], &env).await;
        assert_eq!(code, Some(0), "{stderr}");
        if let Some(width) = columns
            .and_then(|c| c.parse::<usize>().ok())
            .filter(|&w| w > 0)
        {
            assert!(table.lines().all(|l| l.chars().count() <= width), "{table}");
        }
        insta::with_settings!({filters => vec![
            // Latencies and rates vary from run to run.
            (r"(\| up +\| 3 +\| 3 +\| 0 +\| ).*(\| 300 )", "$1[rate and timings] $2"),
        ]}, {
            insta::assert_snapshot!(name, table);
        });
    }

    let (code, json, _) = run_ccr(&["stats", "--url", &url, "--json", "--by", "model"], &[]).await;
    assert_eq!(code, Some(0));
    let document: ccr::stats::render::Document = serde_json::from_str(&json).unwrap();
    assert_eq!(document.totals.requests, 3);
    assert_eq!(document.rows[0].model, "claude-x");
    assert_eq!(document.totals.tokens.input, 300);

    let (code, by_model, _) = run_ccr(&["stats", "--url", &url, "--by", "model"], &[]).await;
    assert_eq!(code, Some(0));
    assert!(by_model.contains("claude-x"), "{by_model}");
    ccr.shutdown().await;

    // No server there any more.
    let (code, _, stderr) = run_ccr(&["stats", "--url", &url], &[]).await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&format!("no ccr server at {url}: is ccr serve running?")),
        "{stderr}"
    );
}

#[tokio::test]
async fn ccr_stats_explains_a_refused_key() {
    let upstream = MockUpstream::start(Reply::Sse {
        body: sse_stream("ok", 1, 1),
        byte_per_write: false,
    })
    .await;
    let ccr = Ccr::start(&config_yaml(
        &upstream.base_url(),
        "up/*",
        "    api_key: k\n",
        "  api_key: the-key\n",
    ))
    .await;
    let (code, _, stderr) = run_ccr(&["stats", "--url", &ccr.url("")], &[]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("refused the key"), "{stderr}");
    ccr.shutdown().await;
}

#[tokio::test]
async fn the_overhead_header_after_retried_429s_leaves_out_the_backoff() {
    let upstream = MockUpstream::start(Reply::Status {
        status: 429,
        headers: vec![("retry-after", "0".into())],
        body: r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#
            .into(),
    })
    .await;
    // Three attempts on one upstream: two waits of at least 300 ms between them.
    let yaml = with_router(
        &config_yaml(&upstream.base_url(), "up/claude-x", "", ""),
        "max_attempts: 3, backoff: 300ms, backoff_max: 300ms",
    );
    let ccr = Ccr::start(&yaml).await;
    let response = messages_request(&ccr, small_request("m", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["x-ccr-attempts"], "3");
    let overhead_us: u64 = response.headers()["x-ccr-overhead-us"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        overhead_us < 300_000,
        "ccr's own time ({overhead_us} µs) must not include the 600 ms it waited between retries"
    );
    let record = &ccr.records.wait_for(1).await[0];
    assert_eq!(record.timings.overhead.as_micros() as u64, overhead_us);
    assert!(
        record.timings.total.as_millis() >= 600,
        "the waits did happen"
    );
    ccr.shutdown().await;
}

#[tokio::test]
async fn stats_by_provider_merges_the_histograms_of_its_targets() {
    use crate::support::mock_upstream::openai_stream;
    let answer = || Reply::Sse {
        body: openai_stream(&[
            serde_json::json!({"choices":[{"index":0,"delta":{"content":"hi"}}]}),
            serde_json::json!({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}),
        ]),
        byte_per_write: false,
    };
    // Key k1 answers at once, key k2 after 1.5 s: two targets of one provider.
    let upstream = MockUpstream::start(Reply::ByBearer {
        token: "k1".into(),
        ok: Box::new(answer()),
        otherwise: Box::new(Reply::Delayed {
            delay: std::time::Duration::from_millis(1500),
            then: Box::new(answer()),
        }),
    })
    .await;
    let yaml = format!(
        "server: {{ host: 127.0.0.1, port: 0 }}\nproviders:\n  oa: {{ type: openai, base_url: \"{}/v1\", api_keys: [k1, k2] }}\nroutes:\n  default: [oa/m]\n",
        upstream.base_url()
    );
    let ccr = Ccr::start(&yaml).await;
    for _ in 0..4 {
        let response = messages_request(&ccr, small_request("m", false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap();
    }
    ccr.records.wait_for(4).await;
    let fetch = |by: &'static str| {
        let url = ccr.url(&format!("/api/stats?by={by}"));
        async move { crate::support::get_json(url).await }
    };
    let by_target = fetch("target").await;
    assert_eq!(
        by_target["rows"].as_array().unwrap().len(),
        2,
        "{by_target}"
    );
    let by_provider = fetch("provider").await;
    let rows = by_provider["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{by_provider}");
    let row = &rows[0];
    assert_eq!(
        (row["provider"].as_str(), row["target"].as_str()),
        (Some("oa"), Some("*"))
    );
    assert_eq!(row["requests"], 4);
    // Two fast and two slow samples: the median is fast, the 90th percentile slow. Neither
    // target alone has both.
    let p50 = row["latency_ms"]["p50"].as_f64().unwrap();
    let p90 = row["latency_ms"]["p90"].as_f64().unwrap();
    assert!(p50 < 1000.0 && p90 >= 1500.0, "p50 {p50} ms, p90 {p90} ms");
    for target in by_target["rows"].as_array().unwrap() {
        let (p50, p90) = (
            target["latency_ms"]["p50"].as_f64().unwrap(),
            target["latency_ms"]["p90"].as_f64().unwrap(),
        );
        assert!(
            (p50 < 1000.0) == (p90 < 1000.0),
            "one target is all fast or all slow"
        );
    }

    // The command asks the server to group, and shows those percentiles.
    let (code, table, stderr) =
        run_ccr(&["stats", "--url", &ccr.url(""), "--by", "provider"], &[]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let line = table
        .lines()
        .find(|l| l.starts_with("| oa"))
        .expect("a row for oa");
    let cells: Vec<&str> = line.split('|').map(str::trim).collect();
    assert_eq!(cells[6], format!("{p50:.0}"), "{table}");
    assert_eq!(cells[7], format!("{p90:.0}"), "{table}");

    let bad = client()
        .get(ccr.url("/api/stats?by=colour"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let (code, _, stderr) = run_ccr(&["stats", "--url", "notaurl"], &[]).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("`notaurl` is not a URL"), "{stderr}");
    ccr.shutdown().await;
}
