//! `ccr code`, `ccr activate` and `ccr statusline` as a user runs them: the real binary, a
//! stub `claude` that prints its environment and arguments, a real server.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::mock_upstream::{MockUpstream, Reply, sse_stream};
use crate::support::{
    Ccr, CcrProcess, PATIENCE, client, free_port, messages_request, run_ccr, run_ccr_with_input,
    send_and_drain, session_request,
};

/// The variables `ccr code` and `ccr activate` set.
const CLAUDE_VARS: [&str; 5] = [
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_AUTH_TOKEN",
    "NO_PROXY",
    "no_proxy",
    "API_TIMEOUT_MS",
];

/// A directory holding a stub `claude` that prints its environment, then `arg=` lines,
/// and exits 7.
fn stub_claude() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("claude");
    std::fs::write(
        &path,
        "#!/bin/sh\nenv\nfor a in \"$@\"; do printf 'arg=%s\\n' \"$a\"; done\nexit 7\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// `PATH` with `first` in front.
fn path_with(first: &Path) -> String {
    format!(
        "{}:{}",
        first.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// `NAME=value` lines as a map (the stub's `env`), and its `arg=` lines in order.
fn printed(stdout: &str) -> (HashMap<String, String>, Vec<String>) {
    let mut env = HashMap::new();
    let mut args = Vec::new();
    for line in stdout.lines() {
        if let Some(arg) = line.strip_prefix("arg=") {
            args.push(arg.to_string());
        } else if let Some((name, value)) = line.split_once('=') {
            env.insert(name.to_string(), value.to_string());
        }
    }
    (env, args)
}

fn write_config(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    path
}

/// A keyed server's config on `port`, with one mock upstream.
fn keyed_config(upstream: &MockUpstream, port: u16) -> String {
    format!(
        "server:\n  host: 127.0.0.1\n  port: {port}\n  api_key: secret-key\nproviders:\n  up:\n    type: anthropic\n    base_url: {}\n    api_key: k\nroutes:\n  default: [up/*]\n",
        upstream.base_url()
    )
}

fn ok_upstream_reply() -> Reply {
    Reply::Sse {
        body: sse_stream("fine", 100, 7),
        byte_per_write: false,
    }
}

#[tokio::test]
async fn ccr_code_points_claude_at_the_running_server_and_activate_sets_the_same() {
    let upstream = MockUpstream::start(ok_upstream_reply()).await;
    let port = free_port();
    let yaml = keyed_config(&upstream, port);
    let server = CcrProcess::serve_as_configured(&yaml).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "ccr.yaml", &yaml);
    let config = config.to_str().unwrap();
    let data = dir.path().join("data");
    let stub = stub_claude();
    let path = path_with(stub.path());
    let env = [
        ("PATH", path.as_str()),
        ("CCR_DATA_DIR", data.to_str().unwrap()),
        ("NO_PROXY", "corp.example"),
    ];

    let (code, stdout, stderr) = run_ccr(
        &["--config", config, "code", "--", "--print", "two words"],
        &env,
    )
    .await;
    assert_eq!(code, Some(7), "claude's exit code; stderr: {stderr}");
    let (vars, args) = printed(&stdout);
    assert_eq!(args, ["--print", "two words"]);
    let base_url = format!("http://127.0.0.1:{port}");
    assert_eq!(vars["ANTHROPIC_BASE_URL"], base_url);
    assert_eq!(vars["ANTHROPIC_AUTH_TOKEN"], "secret-key");
    assert_eq!(vars["NO_PROXY"], "corp.example,localhost,127.0.0.1,::1");
    assert_eq!(vars["no_proxy"], vars["NO_PROXY"]);
    assert!(vars["API_TIMEOUT_MS"].parse::<u64>().unwrap() >= 600_000);
    assert!(!stderr.contains("started"), "a server answered: {stderr}");
    assert!(!data.join("serve.pid").exists(), "none was started");
    let health = client()
        .get(format!("{}/health", vars["ANTHROPIC_BASE_URL"]))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "the variables point at the server");

    // `eval "$(ccr activate)"` sets the same in each shell.
    let activate = |shell: &str| match shell {
        "fish" => "$CCR --config $CFG activate --shell fish | source; and env".to_string(),
        _ => format!("eval \"$(\"$CCR\" --config \"$CFG\" activate --shell {shell})\" && env"),
    };
    for shell in ["bash", "zsh", "fish"] {
        let out = tokio::process::Command::new(shell)
            .arg("-c")
            .arg(activate(shell))
            .env_clear()
            .env("PATH", &path)
            .env("HOME", dir.path())
            .env("NO_PROXY", "corp.example")
            .env("CCR", env!("CARGO_BIN_EXE_ccr"))
            .env("CFG", config)
            .output()
            .await
            .unwrap_or_else(|e| panic!("{shell} is needed ({e}): bash .ci/test installs it"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{shell}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (set, _) = printed(&stdout);
        for name in CLAUDE_VARS {
            assert_eq!(set.get(name), vars.get(name), "{shell} sets {name}");
        }
    }
    server.sigterm();
    let (code, _) = server.wait().await;
    assert_eq!(code, Some(0));
}

/// Stops the server `ccr code` started, by the pid it wrote, however the test ends.
struct StartedServer(PathBuf);

impl StartedServer {
    fn pid(&self) -> Option<libc::pid_t> {
        std::fs::read_to_string(&self.0).ok()?.trim().parse().ok()
    }

    /// Whether the process is alive (a zombie nobody reaped yet is not).
    fn alive(pid: libc::pid_t) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        matches!(state, Some(s) if s != 'Z' && s != 'X')
    }

    /// SIGTERM, then waits (bounded) until it is gone.
    async fn stop(&self) {
        let Some(pid) = self.pid() else { return };
        // SAFETY: kill(2) with a pid and a valid signal has no memory effects.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + PATIENCE;
        // Not our child (claude replaced the ccr that started it), so it cannot be awaited.
        while StartedServer::alive(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!StartedServer::alive(pid), "the started server stopped");
    }
}

impl Drop for StartedServer {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            // SAFETY: as above; a process already gone makes this a no-op.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

#[tokio::test]
async fn ccr_code_starts_a_server_in_the_background_when_none_answers() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "ccr.yaml",
        &format!("server:\n  host: 127.0.0.1\n  port: {port}\n"),
    );
    let config = config.to_str().unwrap();
    let data = dir.path().join("data");
    let started = StartedServer(data.join("serve.pid"));
    let stub = stub_claude();
    let path = path_with(stub.path());
    let env = [
        ("PATH", path.as_str()),
        ("CCR_DATA_DIR", data.to_str().unwrap()),
    ];

    let (code, stdout, stderr) = run_ccr(&["--config", config, "code"], &env).await;
    assert_eq!(code, Some(7), "stderr: {stderr}");
    let log = data.join("serve.log");
    assert!(
        stderr.contains(&format!(
            "started ccr serve in the background (log: {})",
            log.display()
        )),
        "{stderr}"
    );
    let (vars, args) = printed(&stdout);
    assert!(args.is_empty());
    assert_eq!(
        vars["ANTHROPIC_BASE_URL"],
        format!("http://127.0.0.1:{port}")
    );
    assert!(
        !vars.contains_key("ANTHROPIC_AUTH_TOKEN"),
        "no key: Claude Code's own credentials are left alone"
    );
    let health = client()
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "the started server answers");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("listening"), "{logged}");

    // The next run finds it and starts nothing.
    let (code, _, stderr) = run_ccr(&["--config", config, "code"], &env).await;
    assert_eq!(code, Some(7));
    assert!(!stderr.contains("started"), "{stderr}");
    started.stop().await;
}

#[tokio::test]
async fn ccr_code_without_claude_is_an_error_that_says_so() {
    let empty = tempfile::tempdir().unwrap();
    let data = empty.path().join("data");
    let env = [
        ("PATH", empty.path().to_str().unwrap()),
        ("CCR_DATA_DIR", data.to_str().unwrap()),
    ];
    let (code, stdout, stderr) = run_ccr(&["code", "--", "-p", "hi"], &env).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("cannot find `claude`") && stderr.contains("CCR_CLAUDE"),
        "{stderr}"
    );
    assert!(!data.exists(), "no server was started for a missing claude");
    let missing = empty.path().join("nowhere/claude");
    let env = [
        ("CCR_CLAUDE", missing.to_str().unwrap()),
        ("CCR_DATA_DIR", data.to_str().unwrap()),
    ];
    let (code, _, stderr) = run_ccr(&["code"], &env).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
}

/// Claude Code's status JSON for `session`, as it writes it on the command's stdin.
fn claude_status(session: &str) -> Vec<u8> {
    json!({
        "hook_event_name": "Status",
        "session_id": session,
        "transcript_path": "/home/u/.claude/projects/p/transcript.jsonl",
        "cwd": "/home/u/p",
        "model": {"id": "claude-sonnet-4-5-20250929", "display_name": "Sonnet 4.5"},
        "workspace": {"current_dir": "/home/u/p", "project_dir": "/home/u/p"},
        "version": "2.1.3",
        "output_style": {"name": "default"},
        "cost": {"total_cost_usd": 0.01, "total_duration_ms": 4000}
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn statusline_shows_the_target_that_answered_the_session() {
    let upstream = MockUpstream::start(ok_upstream_reply()).await;
    let ccr = Ccr::start_keyed(&upstream.base_url(), "up/claude-mock").await;
    let session = "6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab";
    let dir = tempfile::tempdir().unwrap();
    let port = ccr.addr.port();
    let client_config = |key: &str| {
        write_config(
            dir.path(),
            &format!("{key}.yaml"),
            &format!("server:\n  host: 127.0.0.1\n  port: {port}\n  api_key: {key}\n"),
        )
    };
    let config = client_config("secret-key");
    let args = ["--config", config.to_str().unwrap(), "statusline"];
    let input = claude_status(session);

    let (code, stdout, stderr) = run_ccr_with_input(&args, &[], Some(&input)).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout, "ccr ▸ ready\n",
        "before the session's first request"
    );

    for _ in 0..2 {
        let request =
            messages_request(&ccr, session_request(session)).header("x-api-key", "secret-key");
        assert_eq!(send_and_drain(request).await, 200);
    }
    ccr.records.wait_for(2).await;
    let (code, stdout, _) = run_ccr_with_input(&args, &[], Some(&input)).await;
    assert_eq!(code, Some(0));
    assert_eq!(
        stdout,
        "ccr ▸ up/claude-mock · 2 req · 200 in / 14 out · 0 failed\n"
    );

    let wrong = client_config("not-the-key");
    let (code, stdout, _) = run_ccr_with_input(
        &["--config", wrong.to_str().unwrap(), "statusline"],
        &[],
        Some(&input),
    )
    .await;
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with("ccr: key refused"), "{stdout}");
    ccr.shutdown().await;
}

#[tokio::test]
async fn statusline_without_a_server_says_so_quickly_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let config_on = |port: u16| {
        let config = write_config(
            dir.path(),
            &format!("{port}.yaml"),
            &format!("server:\n  host: 127.0.0.1\n  port: {port}\n"),
        );
        config.to_str().unwrap().to_string()
    };
    let input = claude_status("6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab");
    let config = config_on(free_port());
    let (code, stdout, stderr) =
        run_ccr_with_input(&["--config", &config, "statusline"], &[], Some(&input)).await;
    assert_eq!((code, stdout.as_str()), (Some(0), "ccr: not running\n"));
    assert!(stderr.is_empty(), "never loud: {stderr}");

    // A port that accepts connections and never answers, and a stdin that stays open:
    // the line still comes, well within the second Claude Code would wait.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = config_on(silent.local_addr().unwrap().port());
    let home = tempfile::tempdir().unwrap();
    let mut command = crate::support::ccr_command(home.path());
    command
        .args(["--config", &config, "statusline"])
        .stdin(std::process::Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().unwrap();
    let _open_stdin = child.stdin.take();
    let out = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("statusline finishes")
        .unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ccr: not answering\n");
    assert!(
        took < Duration::from_secs(5),
        "its deadlines are 300 ms for stdin and 600 ms for the server; took {took:?}"
    );
    drop(silent);
}
