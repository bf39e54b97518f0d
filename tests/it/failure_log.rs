//! The failure log from outside: which requests it records, what a record holds, that
//! it never holds a credential, and that a full queue drops and counts instead of waiting.

use std::io::Write;
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

/// A server with one upstream at `url`, one attempt a request, its data under `data_dir`.
async fn one_attempt_ccr(url: &str, data_dir: &Path) -> Ccr {
    let yaml = with_router(&config_yaml(url, "up/*", "", ""), "max_attempts: 1");
    Ccr::start_in(&yaml, data_dir).await
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
    assert_eq!(first["version"], 2);
    assert!(
        found[1]["request_as"].is_null() && found[1]["request"] == first["request"],
        "a repeated body under 1 KB is written again, not referred to: {}",
        found[1]
    );
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

    let counts: Value = crate::support::get_json(ccr.url("/api/failures?since=1h")).await;
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
    let refused = one_attempt_ccr(&dead_url, data.path()).await;
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
    let stats: Value = crate::support::get_json(ccr.url("/api/stats")).await;
    let dropped = stats["failures_dropped"].as_u64().unwrap();
    let metrics = crate::support::get_text(ccr.url("/metrics")).await;
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

#[tokio::test]
async fn replay_resends_the_original_bodies_through_the_server() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap().to_string();
    let upstream = MockUpstream::start(Reply::Sse {
        body: sse_stream("recovered", 3, 4),
        byte_per_write: false,
    })
    .await;
    upstream.then(status(500, "down")).then(status(500, "down"));
    let ccr = one_attempt_ccr(&upstream.base_url(), data.path()).await;
    let bodies = [
        small_request("first-model", false),
        small_request("second-model", true),
    ];
    for body in &bodies {
        let response = messages_request(&ccr, body.clone()).send().await.unwrap();
        assert_eq!(response.status(), 500);
    }
    let logged = records(data.path(), 2).await;
    assert_eq!(logged.len(), 2);
    let url = ccr.url("");
    let run = |args: Vec<String>| {
        let data_dir = data_dir.clone();
        async move {
            let mut all = vec!["--data-dir".to_string(), data_dir];
            all.extend(args);
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            crate::support::run_ccr(&refs, &[]).await
        }
    };
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();

    // A dry run sends nothing.
    let (code, stdout, stderr) =
        run(s(&["replay", "--since", "1h", "--url", &url, "--dry-run"])).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("would replay"))
            .count(),
        2,
        "{stdout}"
    );
    assert_eq!(upstream.received().len(), 2);

    // The upstream is healthy again: both go through, streamed one streamed.
    let (code, table, stderr) = run(s(&["replay", "--since", "1h", "--url", &url])).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        table.contains("upstream_5xx") && table.matches("| ok").count() == 2,
        "{table}"
    );
    let received = upstream.received();
    assert_eq!(received.len(), 4);
    // Replays run concurrently, so compare the bodies in a fixed order.
    let sorted = |part: &[crate::support::mock_upstream::Received]| {
        let mut bodies: Vec<Value> = part
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect();
        bodies.sort_by_key(|b| b["model"].as_str().unwrap().to_string());
        bodies
    };
    assert_eq!(
        sorted(&received[..2]),
        sorted(&received[2..]),
        "the replay sends the original bodies"
    );
    let replay_records = ccr.records.wait_for(4).await;
    let ids: Vec<&str> = logged.iter().map(|r| r["id"].as_str().unwrap()).collect();
    for record in &replay_records[2..] {
        assert!(
            ids.contains(&record.replay_of.as_deref().unwrap()),
            "x-ccr-replay-of names the original"
        );
    }
    let replays = std::fs::read_dir(data.path().join("replays"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let outcomes: Vec<Value> = std::fs::read_to_string(replays)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(outcomes.len(), 2);
    assert!(
        outcomes
            .iter()
            .all(|o| o["ok"] == true && o["provider"] == "up")
    );

    // A replay that fails again exits 1 and is itself logged, linked to the original.
    upstream.then(status(500, "down again"));
    let (code, json, _) = run(s(&["replay", "--url", &url, "--id", ids[0], "--json"])).await;
    assert_eq!(code, Some(1));
    let outcome: Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(
        (outcome["ok"].as_bool(), outcome["status"].as_u64()),
        (Some(false), Some(500))
    );
    let logged_again = records(data.path(), 3).await;
    assert_eq!(logged_again.last().unwrap()["replay_of"], ids[0]);

    // A corrupt line is skipped and counted; the failure log is never rewritten.
    let file = std::fs::read_dir(data.path().join("failures"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let before = std::fs::read(&file).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap()
        .write_all(b"not a record\n")
        .unwrap();
    let (code, _, stderr) = run(s(&["replay", "--url", &url, "--dry-run"])).await;
    assert_eq!(code, Some(0));
    assert!(stderr.contains("skipped 1 line"), "{stderr}");
    assert!(std::fs::read(&file).unwrap().starts_with(&before));
    ccr.shutdown().await;

    // No server: exit 1, saying to start one.
    let (code, _, stderr) = run(s(&["replay", "--url", &url, "--id", ids[1]])).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("start it with `ccr serve`"), "{stderr}");
    let (code, _, _) = run(s(&["replay", "--concurrency", "0"])).await;
    assert_eq!(code, Some(2), "a usage error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_failure_record() {
    let data = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start(status(500, "down")).await;
    let yaml = with_router(
        &config_yaml(&upstream.base_url(), "up/*", "", ""),
        "max_attempts: 1",
    );
    // Quiet logs: nobody reads the child's stderr while the load runs, and a full pipe
    // would stall it.
    let ccr = crate::support::CcrProcess::serve_with_env(
        Some(&yaml),
        &["--data-dir", data.path().to_str().unwrap()],
        &[("CCR_LOG", "warn")],
    )
    .await;
    let url = ccr.url("/v1/messages");
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (url, answered, stop) = (url.clone(), answered.clone(), stop.clone());
            tokio::spawn(async move {
                let http = client();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let sent = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(small_request("m", false))
                        .send()
                        .await;
                    let Ok(response) = sent else { return };
                    let id = response
                        .headers()
                        .get("x-ccr-request-id")
                        .map(|v| v.to_str().unwrap().to_string());
                    if response.status() == 500
                        && let Some(id) = id
                    {
                        answered.lock().unwrap().push(id);
                    }
                }
            })
        })
        .collect();
    // Let a few hundred failures through (a second or two here), however loaded the machine.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while answered.lock().unwrap().len() < 300 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the load never reached 300 requests"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Everything answered so far must be in the log after exit.
    let before_signal: Vec<String> = answered.lock().unwrap().clone();
    ccr.sigterm();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (code, stderr) = ccr.wait().await;
    assert_eq!(code, Some(0), "{stderr}");
    for client in clients {
        let _ = client.await;
    }
    let logged: std::collections::HashSet<String> = records(data.path(), 0)
        .await
        .iter()
        .map(|r| r["request_id"].as_str().unwrap().to_string())
        .collect();
    let missing: Vec<&String> = before_signal
        .iter()
        .filter(|id| !logged.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered failures missing from the log",
        missing.len(),
        before_signal.len()
    );
}

#[tokio::test]
async fn a_retried_body_is_written_once_and_replayed_whole() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap().to_string();
    let upstream = MockUpstream::start(status(500, "down")).await;
    let ccr = one_attempt_ccr(&upstream.base_url(), data.path()).await;
    let (_, body) = crate::support::fixture();
    for _ in 0..3 {
        let response = messages_request(&ccr, body.clone()).send().await.unwrap();
        assert_eq!(response.status(), 500);
        response.text().await.unwrap();
    }
    let logged = records(data.path(), 3).await;
    assert_eq!(logged.len(), 3);
    let holder = logged[0]["id"].as_str().unwrap();
    assert!(logged[0]["request"].is_object(), "the first holds the body");
    for retry in &logged[1..] {
        assert_eq!(retry["request_as"], holder, "{retry}");
        assert!(retry["request"].is_null());
    }
    let file = std::fs::read_dir(data.path().join("failures"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let text = std::fs::read(&file).unwrap();
    let original: Value = serde_json::from_slice(&body).unwrap();
    let marker = &body[body.len() / 2..body.len() / 2 + 200];
    assert_eq!(
        memchr::memmem::find_iter(&text, marker).count(),
        1,
        "the body is in the file once"
    );

    // Replaying the last retry sends the whole body.
    upstream.then(Reply::Sse {
        body: sse_stream("back", 3, 4),
        byte_per_write: false,
    });
    let last = logged[2]["id"].as_str().unwrap();
    let args = [
        "--data-dir",
        &data_dir,
        "replay",
        "--url",
        &ccr.url(""),
        "--id",
        last,
    ];
    let (code, table, stderr) = crate::support::run_ccr(&args, &[]).await;
    assert_eq!(code, Some(0), "{table}{stderr}");
    let received = upstream.received();
    let replayed: Value = serde_json::from_slice(&received.last().unwrap().body).unwrap();
    assert_eq!(
        replayed, original,
        "the replay sends the body the client sent"
    );
    ccr.shutdown().await;

    // With the holding line corrupt, the records that refer to it are skipped and counted.
    let text = String::from_utf8(text).unwrap();
    let (_, rest) = text.split_once('\n').unwrap();
    std::fs::write(&file, format!("not a record\n{rest}")).unwrap();
    let args = [
        "--data-dir",
        &data_dir,
        "replay",
        "--url",
        "http://127.0.0.1:9",
        "--dry-run",
    ];
    let (code, stdout, stderr) = crate::support::run_ccr(&args, &[]).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stderr.contains("skipped 3 line(s)"), "{stderr}");
    assert!(!stdout.contains("would replay"), "{stdout}");
}

#[tokio::test]
async fn a_deleted_log_directory_is_made_again_by_the_next_failure() {
    let data = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start(status(500, "down")).await;
    let ccr = one_attempt_ccr(&upstream.base_url(), data.path()).await;
    let fail_once = || async {
        let response = messages_request(&ccr, small_request("m", false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        response.text().await.unwrap();
    };
    fail_once().await;
    assert_eq!(records(data.path(), 1).await.len(), 1);
    // The writer keeps the day file open between batches; a person clearing the log must
    // not send the next records into the deleted file.
    std::fs::remove_dir_all(data.path().join("failures")).unwrap();
    fail_once().await;
    let after = records(data.path(), 1).await;
    assert_eq!(after.len(), 1, "the new record is in a new file");
    assert_eq!(after[0]["client_got"]["status"], 500);
}
