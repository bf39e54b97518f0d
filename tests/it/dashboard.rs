//! The dashboard at `/ui` in a real browser: headless Chromium (installed by `.ci/test`)
//! loads the page from the real binary after a scripted mix of traffic and the test reads
//! the DOM it rendered. It also saves screenshots of the page and of the status line
//! under `target/tmp/screenshots/` for a person to look at (README's come from there).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::support::mock_upstream::{MockUpstream, Reply, openai_stream, sse_stream};
use crate::support::{Ccr, CcrProcess, PATIENCE, client, run_ccr_with_input, session_request};

/// Flags for Chromium on a machine without a network or a display: nothing of it may wait
/// on the outside world.
const CHROMIUM_FLAGS: [&str; 12] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    "--hide-scrollbars",
    "--mute-audio",
];

/// Virtual time the page gets to load and refresh; fetches pause it, so a loaded machine
/// only makes it slower, never shorter.
const VIRTUAL_TIME_MS: &str = "--virtual-time-budget=7000";

/// Runs Chromium on `url` with `args`, in a fresh profile; returns its stdout.
async fn chromium(url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new("chromium")
        .args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(VIRTUAL_TIME_MS)
        .args(args)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("chromium finishes")
        .unwrap_or_else(|e| panic!("chromium is needed ({e}): bash .ci/test installs it"));
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The page's DOM once it shows data: loaded again (a few times at most) if a loaded
/// machine left it without.
async fn rendered(url: &str, ready: &str) -> String {
    let mut dom = String::new();
    for _ in 0..3 {
        dom = chromium(url, &["--dump-dom"]).await;
        if dom.contains(ready) {
            return dom;
        }
    }
    panic!("the page never showed {ready:?}:\n{dom}");
}

/// The text of each cell of the table row that starts with `marker` (`<tr data-…`).
fn cells(dom: &str, marker: &str) -> Vec<String> {
    let start = dom
        .find(marker)
        .unwrap_or_else(|| panic!("no row {marker} in the page:\n{dom}"));
    let row = &dom[start..];
    let row = &row[..row.find("</tr>").unwrap()];
    row.split("<td")
        .skip(1)
        .map(|cell| {
            let text = &cell[cell.find('>').unwrap() + 1..];
            text[..text.find("</td>").unwrap()].to_string()
        })
        .collect()
}

/// The element with `id`'s text (a tile).
fn text_of(dom: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\">");
    let at = dom.find(&marker).unwrap_or_else(|| panic!("no #{id}")) + marker.len();
    dom[at..at + dom[at..].find('<').unwrap()].to_string()
}

fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1_000,
        "{} is a PNG with something in it",
        path.display()
    );
}

fn anthropic_ok() -> Reply {
    Reply::Delayed {
        delay: Duration::from_millis(250),
        then: Box::new(Reply::Sse {
            body: sse_stream("fine", 12_000, 800),
            byte_per_write: false,
        }),
    }
}

fn deepseek_ok() -> Reply {
    let chunks = [
        json!({"choices":[{"index":0,"delta":{"content":"fine"},"finish_reason":null}]}),
        json!({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}),
        json!({"choices":[],"usage":{"prompt_tokens":21_000,"completion_tokens":1_100,"prompt_tokens_details":{"cached_tokens":18_000}}}),
    ];
    Reply::Delayed {
        delay: Duration::from_millis(120),
        then: Box::new(Reply::Sse {
            body: openai_stream(&chunks),
            byte_per_write: false,
        }),
    }
}

async fn send(ccr: &CcrProcess, body: String) -> u16 {
    let response = client()
        .post(ccr.url("/v1/messages"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let _ = response.text().await;
    status
}

fn request(model: &str) -> String {
    json!({"model": model, "max_tokens": 64, "stream": true,
           "messages": [{"role": "user", "content": "hello"}]})
    .to_string()
}

/// `request` in session `session`.
fn in_session(model: &str, session: &str) -> String {
    let mut body: serde_json::Value = serde_json::from_str(&session_request(session)).unwrap();
    body["model"] = json!(model);
    body.to_string()
}

#[tokio::test]
async fn the_dashboard_shows_providers_errors_by_class_and_a_blacklisted_target() {
    let anthropic = MockUpstream::start(anthropic_ok()).await;
    let deepseek = MockUpstream::start(deepseek_ok()).await;
    let yaml = format!(
        "server: {{ host: 127.0.0.1, port: 0 }}\nproviders:\n  anthropic: {{ type: anthropic, base_url: \"{}\", api_key: sk-ant-test }}\n  deepseek: {{ type: openai, base_url: \"{}/v1\", api_keys: [sk-ds-1, sk-ds-2] }}\nroutes:\n  default: [anthropic/claude-sonnet-4-5]\nrouter: {{ max_attempts: 1, blacklist: {{ rate_limited: 1h }} }}\n",
        anthropic.base_url(),
        deepseek.base_url()
    );
    let ccr = CcrProcess::serve(Some(&yaml), &[]).await;
    let session = "6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab";

    // Successes on both providers, a stream cut on one, a 429 on the other.
    for _ in 0..2 {
        assert_eq!(send(&ccr, request("claude-sonnet-4-5")).await, 200);
    }
    let full = sse_stream("cut", 12_000, 5);
    anthropic.then(Reply::CutAfter {
        before: full[..full.find("event: content_block_delta").unwrap()].to_string(),
    });
    send(&ccr, request("claude-sonnet-4-5")).await;
    for _ in 0..2 {
        assert_eq!(send(&ccr, request("claude-sonnet-4-5")).await, 200);
    }
    for _ in 0..3 {
        let body = in_session("deepseek/deepseek-chat", session);
        assert_eq!(send(&ccr, body).await, 200);
    }
    deepseek.then(Reply::Status {
        status: 429,
        headers: vec![],
        body: json!({"error": {"message": "Rate limit reached", "type": "rate_limit_error"}})
            .to_string(),
    });
    assert_eq!(send(&ccr, request("deepseek/deepseek-chat")).await, 429);
    // Every request is counted once its record is in: the totals say so.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while crate::support::get_json(ccr.url("/api/stats")).await["totals"]["requests"] != 9 {
        assert!(tokio::time::Instant::now() < deadline, "9 requests counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let url = ccr.url("/ui");
    let dom = rendered(&url, "data-target=\"deepseek#2\"").await;
    assert!(dom.contains("class=\"status ok\""), "the page is live");
    assert_eq!(text_of(&dom, "t-requests"), "9");
    let anthropic_row = cells(&dom, "<tr data-provider=\"anthropic\"");
    let deepseek_row = cells(&dom, "<tr data-provider=\"deepseek\"");
    assert_eq!(
        (&anthropic_row[..4], &deepseek_row[..4]),
        (
            &["anthropic", "5", "4", "1"].map(String::from)[..],
            &["deepseek", "4", "3", "1"].map(String::from)[..]
        ),
        "provider, requests, ok, failed"
    );
    assert_eq!(
        cells(&dom, "<tr data-class=\"rate_limit\""),
        ["rate_limit", "1"]
    );
    assert_eq!(
        cells(&dom, "<tr data-class=\"stream_cut\""),
        ["stream_cut", "1"]
    );
    let blacklisted: Vec<Vec<String>> = ["anthropic", "deepseek#1", "deepseek#2"]
        .iter()
        .map(|t| cells(&dom, &format!("<tr data-target=\"{t}\"")))
        .filter(|row| row[2].starts_with("blacklisted until"))
        .collect();
    assert_eq!(
        blacklisted.len(),
        1,
        "the 429's target only: {blacklisted:?}"
    );
    assert!(
        blacklisted[0][2].ends_with("(rate_limit)"),
        "{blacklisted:?}"
    );
    assert!(blacklisted[0][0].starts_with("deepseek#"));
    assert!(
        dom.contains("<tr data-target=\"anthropic\" class=\"healthy\">"),
        "a success after the cut cleared anthropic"
    );
    for chart in ["c-requests", "c-tokens", "c-latency", "c-ttft"] {
        let at = dom.find(&format!("id=\"{chart}\"")).unwrap();
        assert!(
            dom[at..].starts_with(&format!("id=\"{chart}\"><div class=\"uplot")),
            "uPlot drew {chart}"
        );
    }

    let shots = screenshots_dir();
    let page = shots.join("dashboard.png");
    chromium(
        &url,
        &[
            "--window-size=1280,1160",
            &format!("--screenshot={}", page.display()),
        ],
    )
    .await;
    assert_png(&page);

    // The status line of the session, as Claude Code would show it under its prompt.
    let client_config = shots.join("statusline-config.yaml");
    std::fs::write(
        &client_config,
        format!("server: {{ host: 127.0.0.1, port: {} }}\n", ccr.addr.port()),
    )
    .unwrap();
    let input = json!({"session_id": session, "model": {"id": "claude-sonnet-4-5", "display_name": "Sonnet 4.5"}, "workspace": {"current_dir": "/home/u/p", "project_dir": "/home/u/p"}}).to_string();
    let (code, line, _) = run_ccr_with_input(
        &["--config", client_config.to_str().unwrap(), "statusline"],
        &[],
        Some(input.as_bytes()),
    )
    .await;
    assert_eq!(code, Some(0));
    assert!(
        line.starts_with("ccr ▸ deepseek#") && line.contains("/deepseek-chat · 3 req · "),
        "{line}"
    );
    let terminal = shots.join("statusline.html");
    std::fs::write(&terminal, statusline_page(line.trim_end())).unwrap();
    let strip = shots.join("statusline.png");
    chromium(
        &format!("file://{}", terminal.display()),
        &[
            "--window-size=900,200",
            &format!("--screenshot={}", strip.display()),
        ],
    )
    .await;
    assert_png(&strip);
    println!("screenshots: {} and {}", page.display(), strip.display());
    ccr.sigterm();
    assert_eq!(ccr.wait().await.0, Some(0));
}

/// A terminal with the end of a Claude Code conversation, its prompt box and the status
/// line under it.
fn statusline_page(line: &str) -> String {
    let escaped = line
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        r#"<!doctype html><meta charset="utf-8"><style>
body {{ margin: 0; background: #1e1e1e; font: 15px/1.6 "DejaVu Sans Mono", monospace; color: #d4d4d4; }}
.term {{ padding: 14px 20px; }}
.you {{ color: #9a9a9a; }}
.dot {{ color: #e0e0e0; }}
.prompt {{ border: 1px solid #6b6b6b; border-radius: 6px; padding: 4px 10px; margin-top: 14px; color: #9a9a9a; }}
.status {{ padding: 4px 10px; color: #c8c8c8; }}
</style><div class="term">
<div class="you">&gt; where does the retry loop live?</div>
<div><span class="dot">●</span> In src/server/exchange.rs: run() walks the routing plan and tries each candidate until one starts answering.</div>
<div class="prompt">&gt; </div>
<div class="status">{escaped}</div></div>"#
    )
}

#[tokio::test]
async fn with_a_client_key_the_page_asks_for_it_and_the_apis_stay_guarded() {
    let upstream = MockUpstream::start(Reply::Sse {
        body: sse_stream("ok", 1, 1),
        byte_per_write: false,
    })
    .await;
    let ccr = Ccr::start_keyed(&upstream.base_url(), "up/*").await;
    let page = client().get(ccr.url("/ui")).send().await.unwrap();
    assert_eq!(page.status(), 200, "the page itself is open");
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    for asset in ["/ui/app.js", "/ui/uPlot.iife.min.js", "/ui/uPlot.min.css"] {
        let response = client().get(ccr.url(asset)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
    }
    let script = crate::support::get_text(ccr.url("/ui/app.js")).await;
    assert!(script.contains(r#"KEY_HEADER = "x-api-key""#));

    let dom = rendered(&ccr.url("/ui"), "needs the client key").await;
    assert!(
        dom.contains("<form id=\"key-form\">"),
        "the key form is shown (no longer hidden)"
    );
    assert_eq!(
        text_of(&dom, "t-requests"),
        "–",
        "nothing shown without the key"
    );
    for api in ["/api/stats", "/api/targets", "/api/failures"] {
        let refused = client().get(ccr.url(api)).send().await.unwrap();
        assert_eq!(refused.status(), 401, "{api}");
    }
    let missing = client()
        .get(ccr.url("/ui/nothing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    ccr.shutdown().await;
}
