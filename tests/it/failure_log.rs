//! The failure log from outside: which requests it records, what a record holds, that
//! it never holds a credential, and that a full queue drops and counts instead of waiting.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::mock_upstream::{MockUpstream, Reply, sse_stream, stalled_mid_stream};
use crate::support::{
    Ccr, PATIENCE, client, config_yaml, messages_request, small_request, with_router,
};

/// Every record in the data directory's failure log, once `n` have been written.
async fn records(data_dir: &Path, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut all = Vec::new();
        if let Ok(entries) = std::fs::read_dir(data_dir.join("failures")) {
            for entry in entries.flatten() {
                let text = std::fs::read_to_string(entry.path()).unwrap();
                all.extend(
                    text.lines()
                        .map(|l| serde_json::from_str::<Value>(l).unwrap()),
                );
            }
        }
        if all.len() >= n || tokio::time::Instant::now() > deadline {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn status(code: u16, message: &str) -> Reply {
    Reply::Status {
        status: code,
        headers: vec![],
        body: serde_json::json!({"type":"error","error":{"type":"api_error","message":message}})
            .to_string(),
    }
}

#[tokio::test]
async fn each_kind_of_failure_is_one_record_and_a_rescued_request_none() {
    let data = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start(Reply::Sse {
        body: sse_stream("fine", 3, 4),
        byte_per_write: false,
    })
    .await;
    // The provider's own key, which must never reach the log.
    let yaml = with_router(
        &config_yaml(
            &upstream.base_url(),
            "up/*",
            "    api_key: sk-ant-provider-key-never-logged\n",
            "",
        ),
        "max_attempts: 1",
    );
    let ccr = Ccr::start_in(&yaml, data.path()).await;
    let cases = [
        status(429, "slow down"),
        status(401, "invalid x-api-key sk-ant-provider-key-never-logged"),
        status(503, "overloaded"),
    ];
    for reply in cases {
        upstream.then(reply);
        let response = messages_request(&ccr, small_request("claude-x", false))
            .header("x-api-key", "client-key-never-logged")
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error() || response.status().is_server_error());
        response.text().await.unwrap();
    }
    // A stream cut after output.
    let full = sse_stream("cut short", 3, 4);
    let split = full.find("event: content_block_delta").unwrap();
    upstream.then(Reply::CutAfter {
        before: full[..split].to_string(),
    });
    let text = messages_request(&ccr, small_request("claude-x", true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("event: error"));
    // A success is not a failure.
    messages_request(&ccr, small_request("claude-x", false))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let found = records(data.path(), 4).await;
    assert_eq!(found.len(), 4, "{found:#?}");
    let classes: Vec<&str> = found
        .iter()
        .map(|r| r["client_got"]["class"].as_str().unwrap())
        .collect();
    assert_eq!(
        classes,
        ["rate_limit", "auth", "upstream_5xx", "stream_cut"]
    );
    let first = &found[0];
    assert_eq!(first["version"], 1);
    assert_eq!(first["model"], "claude-x");
    assert_eq!(first["stream"], false);
    assert_eq!(first["scenario"], "default");
    assert_eq!(first["client_got"]["status"], 429);
    assert_eq!(first["attempts"][0]["target"], "up");
    assert_eq!(first["attempts"][0]["class"], "rate_limit");
    assert_eq!(first["attempts"][0]["blame"], "upstream");
    assert_eq!(
        first["request"]["messages"][0]["content"], "hello",
        "the body as JSON"
    );
    assert!(first["request_id"].as_str().unwrap().starts_with("req_"));
    assert_eq!(found[3]["output_streamed"], true);
    assert_eq!(found[3]["stream"], true);
    let ids: std::collections::HashSet<&str> =
        found.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 4, "ids are unique");

    // No credential anywhere under the data directory.
    for entry in walk(data.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        for secret in [
            "sk-ant-provider-key-never-logged",
            "client-key-never-logged",
        ] {
            assert!(
                memchr::memmem::find(&bytes, secret.as_bytes()).is_none(),
                "{secret} in {}",
                entry.display()
            );
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = data.path().join("failures");
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        for file in walk(&dir) {
            assert_eq!(
                std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    let counts: Value = client()
        .get(ccr.url("/api/failures?since=1h"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts["total"], 4);
    assert_eq!(counts["by_provider"]["up"], 4);
    assert_eq!(counts["by_class"]["rate_limit"], 1);
    assert_eq!(
        counts["by_hour"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>(),
        4
    );
    ccr.shutdown().await;
}

#[tokio::test]
async fn timeouts_refusals_and_a_client_leaving_are_recorded() {
    let data = tempfile::tempdir().unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let refused = Ccr::start_in(
        &with_router(&config_yaml(&dead_url, "up/*", "", ""), "max_attempts: 1"),
        data.path(),
    )
    .await;
    let response = messages_request(&refused, small_request("m", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    refused.shutdown().await;

    let slow = MockUpstream::start(Reply::Delayed {
        delay: Duration::from_secs(5),
        then: Box::new(Reply::Sse {
            body: sse_stream("late", 1, 1),
            byte_per_write: false,
        }),
    })
    .await;
    let timing_out = Ccr::start_in(
        &with_router(
            &config_yaml(
                &slow.base_url(),
                "up/*",
                "    timeouts: { first_byte: 300ms }\n",
                "",
            ),
            "max_attempts: 1",
        ),
        data.path(),
    )
    .await;
    let response = messages_request(&timing_out, small_request("m", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    timing_out.shutdown().await;

    let (stalled, _release, _full, _split) = stalled_mid_stream().await;
    let leaving = Ccr::start_in(
        &config_yaml(&stalled.base_url(), "up/*", "", ""),
        data.path(),
    )
    .await;
    let mut response = messages_request(&leaving, small_request("m", true))
        .send()
        .await
        .unwrap();
    let _ = response.chunk().await.unwrap();
    drop(response);
    leaving.records.wait_for(1).await;
    leaving.shutdown().await;

    let found = records(data.path(), 3).await;
    let classes: Vec<&str> = found
        .iter()
        .map(|r| r["client_got"]["class"].as_str().unwrap())
        .collect();
    assert_eq!(classes, ["network", "timeout", "cancelled"], "{found:#?}");
}

#[tokio::test]
async fn a_full_queue_drops_records_and_counts_them_without_failing_requests() {
    let data = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start(status(500, "boom")).await;
    let yaml = format!(
        "{}failures: {{ queue: 1 }}\n",
        with_router(
            &config_yaml(&upstream.base_url(), "up/*", "", ""),
            "max_attempts: 1"
        )
    );
    let ccr = Ccr::start_in(&yaml, data.path()).await;
    let sent = 40;
    let requests: Vec<_> = (0..sent)
        .map(|_| messages_request(&ccr, small_request("m", false)).send())
        .collect();
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.unwrap().status(), 500, "answered as usual");
    }
    ccr.records.wait_for(sent).await;
    let stats: Value = client()
        .get(ccr.url("/api/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dropped = stats["failures_dropped"].as_u64().unwrap();
    let metrics = client()
        .get(ccr.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!("ccr_failures_dropped_total {dropped}")),
        "{metrics}"
    );
    ccr.shutdown().await;
    let written = records(data.path(), 0).await.len() as u64;
    assert_eq!(
        written + dropped,
        sent as u64,
        "every record is written or counted as dropped"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
