//! The real `ccr` binary: start-up, end-to-end streaming, and shutdown on SIGTERM.

use futures_util::StreamExt;

use crate::support::mock_upstream::{MockUpstream, Reply, sse_stream, stalled_mid_stream};
use crate::support::{Ccr, CcrProcess, client, config_yaml, run_ccr, small_request, temp_config};

#[tokio::test]
async fn serve_with_no_config_file_starts_on_the_embedded_default() {
    let ccr = CcrProcess::serve(None, &[]).await;
    assert!(ccr.addr.ip().is_loopback());
    let head = client().head(ccr.url("/")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let health = client().get(ccr.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    ccr.sigterm();
    let (code, stderr) = ccr.wait().await;
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert!(stderr.contains("embedded default"), "{stderr}");
}

#[tokio::test]
async fn serve_with_a_config_file_streams_a_request_end_to_end() {
    let stream = sse_stream("from the mock", 11, 22);
    let upstream = MockUpstream::start(Reply::Sse {
        body: stream.clone(),
        byte_per_write: false,
    })
    .await;
    let ccr = CcrProcess::serve(
        Some(&config_yaml(&upstream.base_url(), "up/claude-mock", "", "")),
        &[],
    )
    .await;
    let response = client()
        .post(ccr.url("/v1/messages?beta=true"))
        .header("x-api-key", "sk-client")
        .body(small_request("claude-sonnet-4-5", true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-ccr-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let text = response.text().await.unwrap();
    crate::support::stream_checker::check_stream(&text);
    assert_eq!(text, stream);
    assert_eq!(upstream.received()[0].headers["x-api-key"], "sk-client");
    ccr.sigterm();
    let (code, stderr) = ccr.wait().await;
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert!(
        stderr.contains(&request_id),
        "log lines carry the request id: {stderr}"
    );
    assert!(
        !stderr.contains("sk-client"),
        "credentials never reach the log"
    );
}

#[tokio::test]
async fn a_non_loopback_bind_without_a_key_refuses_to_start() {
    let (code, stdout, stderr) = run_ccr(&["serve", "--host", "0.0.0.0", "--port", "0"], &[]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(!stdout.contains("listening"));
    assert!(
        stderr.contains("server.host") && stderr.contains("server.api_key"),
        "{stderr}"
    );
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let (code, _, stderr) = run_ccr(&["serve", "--log-level", "loud=[["], &[]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--log-level"), "{stderr}");
    let (code, _, _) = run_ccr(&["fly"], &[]).await;
    assert_eq!(code, Some(2));
}

/// Starts a stream whose upstream stalls halfway, and returns the client's body stream
/// after the first half has arrived.
async fn stream_in_flight(
    ccr: &CcrProcess,
    full: &str,
    split: usize,
) -> impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + use<> {
    let response = client()
        .post(ccr.url("/v1/messages"))
        .body(small_request("m", true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = Box::pin(response.bytes_stream());
    let mut seen = Vec::new();
    while seen.len() < split {
        seen.extend_from_slice(&body.next().await.expect("first half arrives").unwrap());
    }
    assert_eq!(seen, full.as_bytes()[..split]);
    body
}

async fn collect(
    mut body: impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
) -> String {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn sigterm_refuses_new_connections_and_lets_the_open_stream_finish() {
    let (upstream, release, full, split) = stalled_mid_stream().await;
    let ccr = CcrProcess::serve(
        Some(&config_yaml(&upstream.base_url(), "up/*", "", "")),
        &[],
    )
    .await;
    let body = stream_in_flight(&ccr, &full, split).await;

    ccr.sigterm();
    // Wait until the listener is gone: connecting must be refused while the stream is open.
    let deadline = tokio::time::Instant::now() + crate::support::PATIENCE;
    loop {
        match tokio::net::TcpStream::connect(ccr.addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            // A connection caught in the closing listener's backlog is reset: try again.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("unexpected connect error {e}"),
            Ok(_) => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ccr kept accepting after SIGTERM"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    release.notify_one();
    assert_eq!(
        collect(body).await,
        full[split..],
        "the open stream finishes"
    );
    let (code, stderr) = ccr.wait().await;
    assert_eq!(code, Some(0), "stderr: {stderr}");
}

#[tokio::test]
async fn streams_still_open_when_the_grace_period_ends_get_an_error_event() {
    let (upstream, release, full, split) = stalled_mid_stream().await;
    let yaml = config_yaml(
        &upstream.base_url(),
        "up/*",
        "",
        "  shutdown_grace: 200ms\n",
    );
    let ccr = CcrProcess::serve(Some(&yaml), &[]).await;
    let body = stream_in_flight(&ccr, &full, split).await;
    ccr.sigterm();
    let rest = collect(body).await;
    crate::support::stream_checker::check_stream(&format!("{}{rest}", &full[..split]));
    assert!(
        rest.starts_with(
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\""
        ),
        "{rest}"
    );
    assert!(rest.contains("shutting down"), "{rest}");
    let (code, stderr) = ccr.wait().await;
    assert_eq!(code, Some(0), "stderr: {stderr}");
    release.notify_one();
}

#[tokio::test]
async fn a_taken_port_is_a_reported_failure() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, _, stderr) = run_ccr(&["serve", "--port", &port], &[]).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("cannot listen on").count(),
        1,
        "each cause once: {stderr}"
    );
    assert_eq!(
        stderr.matches("in use").count(),
        1,
        "each cause once: {stderr}"
    );
}

#[tokio::test]
async fn a_bad_log_level_is_a_usage_error_told_once() {
    let (code, _, stderr) = run_ccr(&["serve", "--log-level", "ccr=["], &[]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: `--log-level ccr=[` is not a level or filter"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("error parsing").count(), 1, "{stderr}");
}

#[tokio::test]
async fn sighup_reloads_routes_while_a_stream_on_the_old_config_finishes() {
    let (old, release, full, split) = stalled_mid_stream().await;
    let new = MockUpstream::start(Reply::Sse {
        body: sse_stream("from the new route", 1, 1),
        byte_per_write: false,
    })
    .await;
    let mut ccr = CcrProcess::serve(Some(&config_yaml(&old.base_url(), "up/*", "", "")), &[]).await;
    let body = stream_in_flight(&ccr, &full, split).await;

    // The next request is sent once the server says the reload is in: sent earlier on a
    // slow machine, it would reach the old (stalled) upstream.
    let reloaded = config_yaml(&new.base_url(), "up/*", "", "");
    std::fs::write(ccr.config_path(), &reloaded).unwrap();
    ccr.sighup();
    ccr.wait_for_log("configuration reloaded").await;
    let text = client()
        .post(ccr.url("/v1/messages"))
        .body(small_request("m", true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("from the new route"), "{text}");

    // An invalid file is refused; the running configuration keeps serving.
    std::fs::write(ccr.config_path(), "routes:\n  default: [nowhere/x]\n").unwrap();
    ccr.sighup();
    ccr.wait_for_log("config reload failed").await;
    let text = client()
        .post(ccr.url("/v1/messages"))
        .body(small_request("m", true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("from the new route"), "{text}");

    release.notify_one();
    let rest = collect(body).await;
    assert_eq!(
        rest,
        full[split..],
        "the stream on the old config completes"
    );
    assert_eq!(old.received().len(), 1);
    ccr.sigterm();
    let (code, stderr) = ccr.wait().await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("configuration reloaded"), "{stderr}");
    assert!(
        stderr.contains("config reload failed") && stderr.contains("routes.default[0]"),
        "{stderr}"
    );
}

/// A config whose deepseek provider needs a variable nobody set, beside a running server's
/// address and the file store.
fn config_with_an_unset_provider_key(port: u16) -> String {
    format!(
        "server: {{ host: 127.0.0.1, port: {port}, api_key: the-key }}\nproviders:\n  up: {{ type: anthropic, api_key: k }}\n  ds: {{ type: openai, api_key: \"${{CCR_TEST_UNSET_DEEPSEEK_KEY}}\" }}\nroutes:\n  default: [up/*]\ncredentials: {{ store: file }}\n"
    )
}

#[tokio::test]
async fn stats_and_token_commands_read_only_their_own_sections() {
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
    let (_dir, path) = temp_config(&config_with_an_unset_provider_key(ccr.addr.port()));
    let path = path.to_str().unwrap();

    let (code, stdout, stderr) = run_ccr(&["stats", "--config", path, "--json"], &[]).await;
    assert_eq!(code, Some(0), "{stderr}");
    let stats: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(stats["version"], 1);

    let (code, stdout, stderr) = run_ccr(&["token", "list", "--config", path, "--json"], &[]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap(),
        serde_json::json!([])
    );

    // serve needs every provider, so it still refuses, naming the field.
    let (code, _, stderr) = run_ccr(&["serve", "--config", path, "--port", "0"], &[]).await;
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("providers.ds.api_key") && stderr.contains("CCR_TEST_UNSET_DEEPSEEK_KEY"),
        "{stderr}"
    );
    ccr.shutdown().await;
}

/// Runs `ccr <args>` with its stdout already closed by the reader, as `ccr … | true` can be.
fn run_into_a_closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    let home = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ccr"))
        .args(args)
        .env_clear()
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_ends_a_command_quietly() {
    let upstream = MockUpstream::start(Reply::Sse {
        body: sse_stream("ok", 1, 1),
        byte_per_write: false,
    })
    .await;
    let ccr = Ccr::start(&config_yaml(&upstream.base_url(), "up/*", "", "")).await;
    let url = ccr.url("");
    for args in [
        vec!["token", "list"],
        vec!["token", "list", "--json"],
        vec!["stats", "--json", "--url", url.as_str()],
        vec!["stats", "--url", url.as_str()],
        vec!["--help"],
    ] {
        let (code, stderr) = tokio::task::block_in_place(|| run_into_a_closed_pipe(&args));
        assert_eq!(code, Some(0), "ccr {args:?}: {stderr}");
        assert_eq!(stderr, "", "ccr {args:?} says nothing");
    }
    ccr.shutdown().await;
}

#[tokio::test]
async fn sighup_keeps_a_blacklisted_target_blacklisted() {
    let failing = MockUpstream::start(Reply::Sse {
        body: sse_stream("from a", 1, 1),
        byte_per_write: false,
    })
    .await;
    failing.then(Reply::Status {
        status: 500,
        headers: vec![],
        body: r#"{"type":"error","error":{"type":"api_error","message":"boom"}}"#.into(),
    });
    let healthy = MockUpstream::start(Reply::Sse {
        body: sse_stream("from b", 1, 1),
        byte_per_write: false,
    })
    .await;
    let yaml = |model: &str| {
        format!(
            "server: {{ host: 127.0.0.1, port: 0 }}\nproviders:\n  a: {{ type: anthropic, base_url: \"{}\" }}\n  b: {{ type: anthropic, base_url: \"{}\" }}\nroutes:\n  default: {{ strategy: priority, targets: [a/{model}, b/{model}] }}\nrouter: {{ backoff: 5ms }}\n",
            failing.base_url(),
            healthy.base_url()
        )
    };
    let mut ccr = CcrProcess::serve(Some(&yaml("m1")), &[]).await;
    let send = |url: String| client().post(url).body(small_request("m", false)).send();
    let first = send(ccr.url("/v1/messages")).await.unwrap();
    assert_eq!(first.headers()["x-ccr-provider"], "b", "a failed over to b");
    first.text().await.unwrap();

    std::fs::write(ccr.config_path(), yaml("m2")).unwrap();
    ccr.sighup();
    ccr.wait_for_log("configuration reloaded").await;
    let response = send(ccr.url("/v1/messages")).await.unwrap();
    assert_eq!(
        response.headers()["x-ccr-model"],
        "m2",
        "the reload took effect"
    );
    assert_eq!(
        response.headers()["x-ccr-provider"],
        "b",
        "a is still blacklisted after the reload"
    );
    response.text().await.unwrap();
    assert_eq!(failing.received().len(), 1, "a was not asked again");
    ccr.sigterm();
    let (code, stderr) = ccr.wait().await;
    assert_eq!(code, Some(0), "{stderr}");
}
