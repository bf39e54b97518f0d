//! Test harness: a mock upstream, ccr in-process or as the real binary, and a client.

pub mod mock_refresh;
pub mod mock_upstream;
pub mod secret_service;
pub mod stream_checker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ccr::config::{Config, Source};
use ccr::record::{RecordSink, RequestRecord};
use ccr::server::Server;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// How long a test waits for something that should happen at once before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The captured Claude Code first turn: its headers and its body as compact JSON.
pub fn fixture() -> (Vec<(String, String)>, Vec<u8>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/claude-code-first-turn.json"
    );
    let text = std::fs::read_to_string(path)
        .expect("tests/fixtures/claude-code-first-turn.json is in the repository");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let headers = value["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    (headers, serde_json::to_vec(&value["body"]).unwrap())
}

/// A YAML config with one `anthropic` provider `up` at `base_url`, routed to `target`.
pub fn config_yaml(
    base_url: &str,
    target: &str,
    provider_extra: &str,
    server_extra: &str,
) -> String {
    format!(
        "server:\n  host: 127.0.0.1\n  port: 0\n{server_extra}providers:\n  up:\n    type: anthropic\n    base_url: {base_url}\n{provider_extra}routes:\n  default: [{target}]\n"
    )
}

/// Appends a `router:` section to a test config.
pub fn with_router(yaml: &str, router: &str) -> String {
    format!("{yaml}router: {{ {router} }}\n")
}

/// One upstream attempt per request, for tests about what a single failure looks like.
pub fn single_attempt(yaml: &str) -> String {
    with_router(yaml, "max_attempts: 1")
}

/// Retries without the default backoff, so failover tests stay quick.
pub fn fast_retries(yaml: &str) -> String {
    with_router(yaml, "backoff: 5ms, backoff_max: 20ms")
}

/// A YAML config with one `openai` provider `oa` at `base_url`, routed to `oa/<model>`.
pub fn openai_config(
    base_url: &str,
    model: &str,
    provider_extra: &str,
    server_extra: &str,
) -> String {
    format!(
        "server:\n  host: 127.0.0.1\n  port: 0\n{server_extra}providers:\n  oa:\n    type: openai\n    base_url: {base_url}/v1\n    api_key: sk-oa-secret\n{provider_extra}routes:\n  default: [oa/{model}]\n"
    )
}

/// Collects every finished request's record.
#[derive(Default)]
pub struct Records(Mutex<Vec<RequestRecord>>);

impl RecordSink for Records {
    fn record(&self, record: &Arc<RequestRecord>) {
        self.0.lock().unwrap().push(RequestRecord::clone(record));
    }
}

impl Records {
    pub fn all(&self) -> Vec<RequestRecord> {
        self.0.lock().unwrap().clone()
    }

    /// Waits until `n` records have arrived (a record is handed over when a body ends, which
    /// can be just after the client has read the last byte).
    pub async fn wait_for(&self, n: usize) -> Vec<RequestRecord> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let all = self.all();
            if all.len() >= n || tokio::time::Instant::now() > deadline {
                return all;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// ccr's server running inside the test's runtime.
pub struct Ccr {
    pub addr: SocketAddr,
    pub records: Arc<Records>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
    /// The data directory when the test gave none: never the developer's own.
    _data_dir: Option<tempfile::TempDir>,
}

impl Ccr {
    pub async fn start(yaml: &str) -> Ccr {
        Ccr::start_with_clock(yaml, None).await
    }

    /// Starts ccr with one upstream at `url` routed by `route`, guarded by the client key
    /// `secret-key`.
    pub async fn start_keyed(url: &str, route: &str) -> Ccr {
        let yaml = config_yaml(url, route, "    api_key: k\n", "  api_key: secret-key\n");
        Ccr::start(&yaml).await
    }

    /// Starts ccr with a clock the test moves by hand.
    pub async fn start_with_clock(
        yaml: &str,
        clock: Option<Arc<ccr::routing::ManualClock>>,
    ) -> Ccr {
        Ccr::start_full(yaml, clock, None).await
    }

    /// Starts ccr with `data_dir` as its data directory (shared with `ccr token` runs).
    pub async fn start_in(yaml: &str, data_dir: &Path) -> Ccr {
        Ccr::start_full(yaml, None, Some(data_dir)).await
    }

    async fn start_full(
        yaml: &str,
        clock: Option<Arc<ccr::routing::ManualClock>>,
        data_dir: Option<&Path>,
    ) -> Ccr {
        let source = Source::File("test.yaml".into());
        let mut config =
            Config::parse(yaml, &source, Some(HashMap::new())).expect("test config parses");
        let own_data_dir = match data_dir {
            Some(dir) => {
                config.data_dir = Some(dir.to_path_buf());
                None
            }
            None => {
                let dir = tempfile::tempdir().unwrap();
                config.data_dir = Some(dir.path().to_path_buf());
                Some(dir)
            }
        };
        config.validate(&source).expect("test config is valid");
        let records = Arc::new(Records::default());
        let options = ccr::server::Options {
            sinks: vec![records.clone()],
            clock: clock.map(|c| c as Arc<dyn ccr::routing::Clock>),
        };
        let server = Server::bind(&config, options).await.expect("ccr binds");
        let addr = server.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Ccr {
            addr,
            records,
            stop: Some(stop),
            done: Some(done),
            _data_dir: own_data_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Starts a graceful shutdown and waits for it to complete.
    pub async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(PATIENCE, self.done.take().unwrap())
            .await
            .expect("shutdown finishes")
            .unwrap();
    }
}

/// An HTTP client that never goes through a proxy from the environment.
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A POST of `body` to ccr's messages endpoint with Claude-Code-like headers.
pub fn messages_request(ccr: &Ccr, body: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
    client()
        .post(ccr.url("/v1/messages?beta=true"))
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .body(body)
}

/// Sends a request and reads its whole body, for tests that look only at the upstream side.
/// A streamed answer still has to pass the grammar checker.
pub async fn send_and_drain(request: reqwest::RequestBuilder) -> reqwest::StatusCode {
    let response = request.send().await.unwrap();
    let status = response.status();
    let sse = response
        .headers()
        .get("content-type")
        .is_some_and(|ct| ct.as_bytes().starts_with(b"text/event-stream"));
    let body = response.text().await.unwrap();
    if sse {
        stream_checker::check_stream(&body);
    }
    status
}

/// Checks the Anthropic error form and returns (status, error type, message).
pub async fn anthropic_error(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    assert!(
        response.headers().contains_key("x-ccr-request-id"),
        "every response names its request id"
    );
    assert_eq!(response.headers()["content-type"], "application/json");
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["type"], "error");
    let field = |name: &str| json["error"][name].as_str().unwrap().to_string();
    (status, field("type"), field("message"))
}

async fn read_stderr(child: &mut Child) -> String {
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    stderr
}

/// A small streaming request body.
pub fn small_request(model: &str, stream: bool) -> String {
    format!(
        r#"{{"model":"{model}","max_tokens":64,"stream":{stream},"messages":[{{"role":"user","content":"hello"}}],"x_unknown_field":{{"kept":[1,2,3]}}}}"#
    )
}

/// The real `ccr` binary, started with a temp home so no developer config leaks in.
pub struct CcrProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// Stderr lines already read by [`CcrProcess::wait_for_log`], kept for `wait`.
    stderr_seen: String,
    /// Kept alive so the config file outlives the process.
    _home: tempfile::TempDir,
}

pub fn ccr_command(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ccr"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("CCR_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

impl CcrProcess {
    /// Starts `ccr serve --port 0 <args>` and waits for its `listening on` line.
    pub async fn serve(config: Option<&str>, args: &[&str]) -> CcrProcess {
        CcrProcess::serve_with_env(config, args, &[]).await
    }

    /// Like [`CcrProcess::serve`], with extra environment variables.
    pub async fn serve_with_env(
        config: Option<&str>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> CcrProcess {
        let mut with_port = vec!["--port", "0"];
        with_port.extend_from_slice(args);
        CcrProcess::start(config, &with_port, env).await
    }

    /// `ccr serve` on the address its config names (no `--port 0`).
    pub async fn serve_as_configured(config: &str) -> CcrProcess {
        CcrProcess::start(Some(config), &[], &[]).await
    }

    async fn start(config: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> CcrProcess {
        let home = tempfile::tempdir().unwrap();
        let mut cmd = ccr_command(home.path());
        cmd.arg("serve").args(args);
        for (name, value) in env {
            cmd.env(name, value);
        }
        if let Some(yaml) = config {
            let path = home.path().join("ccr.yaml");
            std::fs::write(&path, yaml).unwrap();
            cmd.arg("--config").arg(&path);
        }
        let mut child = cmd.spawn().expect("ccr starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("ccr prints its address in time");
        let line = match line.unwrap() {
            Some(line) => line,
            None => {
                let stderr = read_stderr(&mut child).await;
                panic!("ccr exited before listening; stderr:\n{stderr}");
            }
        };
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        CcrProcess {
            child,
            addr: addr.parse().unwrap(),
            stderr_seen: String::new(),
            _home: home,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    pub fn sighup(&self) {
        self.signal(libc::SIGHUP);
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = self.child.id().expect("ccr is running") as libc::pid_t;
        // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "signal {signal} delivered");
    }

    /// The config file the process was started with.
    pub fn config_path(&self) -> PathBuf {
        self._home.path().join("ccr.yaml")
    }

    /// Waits for the process to exit; returns its exit code and stderr.
    pub async fn wait(mut self) -> (Option<i32>, String) {
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("ccr exits in time")
            .unwrap();
        let rest = read_stderr(&mut self.child).await;
        (status.code(), self.stderr_seen + &rest)
    }

    /// Reads stderr until a line containing `needle` has been logged, so a test waits for
    /// what the server says it did (a reload, say) instead of guessing how long it takes.
    pub async fn wait_for_log(&mut self, needle: &str) {
        let stderr = self.child.stderr.as_mut().expect("stderr is piped");
        let found = tokio::time::timeout(PATIENCE, async {
            let mut byte = [0u8; 1];
            let mut line = Vec::new();
            // Byte by byte, so nothing past the line is read ahead and lost to `wait`.
            while stderr.read(&mut byte).await.unwrap_or(0) == 1 {
                line.push(byte[0]);
                if byte[0] == b'\n' {
                    let text = String::from_utf8_lossy(&line).into_owned();
                    self.stderr_seen.push_str(&text);
                    line.clear();
                    if text.contains(needle) {
                        return true;
                    }
                }
            }
            false
        })
        .await;
        assert!(
            matches!(found, Ok(true)),
            "ccr never logged {needle:?}; stderr so far:\n{}",
            self.stderr_seen
        );
    }
}

/// Runs `ccr <args>` to completion with the given environment; returns code, stdout, stderr.
pub async fn run_ccr(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    run_ccr_with_input(args, env, None).await
}

/// Like [`run_ccr`], with `input` written to its stdin (then closed).
pub async fn run_ccr_with_input(
    args: &[&str],
    env: &[(&str, &str)],
    input: Option<&[u8]>,
) -> (Option<i32>, String, String) {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = ccr_command(home.path());
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("ccr starts");
    if let Some(input) = input {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input).await.unwrap();
    }
    let out = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("ccr finishes in time")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A loopback port nothing listens on just now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes `yaml` to a file in a fresh temp dir and returns both.
pub fn temp_config(yaml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    (dir, path)
}

/// An attempt's failure class as records name it, `ok` for a success.
pub fn class_of(attempt: &ccr::record::Attempt) -> &'static str {
    attempt.failure.map_or("ok", |f| f.class.as_str())
}

/// GETs `url` and reads its JSON answer (the admin endpoints).
pub async fn get_text(url: String) -> String {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

pub async fn get_json(url: String) -> serde_json::Value {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A small streaming request body in session `session`, its id inside `metadata.user_id`
/// as Claude Code 2.x writes it (a JSON string).
pub fn session_request(session: &str) -> String {
    let user_id = serde_json::json!({"device_id": "d", "account_uuid": "", "session_id": session})
        .to_string();
    serde_json::json!({
        "model": "m", "max_tokens": 5, "stream": true,
        "metadata": {"user_id": user_id},
        "messages": [{"role": "user", "content": "hi"}]
    })
    .to_string()
}
