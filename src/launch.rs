//! Running Claude Code against ccr: the environment that points it at the server (`ccr
//! code` sets it, `ccr activate` prints it for a shell), finding the `claude` program, and
//! a server started in the background when none answers.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::admin::{self, Quick};
use crate::secret::Secret;

/// Claude Code's own request timeout (`API_TIMEOUT_MS`), generous: ccr bounds every
/// upstream itself (300 s to the first byte by default) and may try several.
pub const API_TIMEOUT_MS: &str = "3000000";

/// Names of this machine that must never go through a proxy.
const LOOPBACK: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The background server's log and pid, in the data directory.
pub const SERVE_LOG: &str = "serve.log";
pub const SERVE_PID: &str = "serve.pid";

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(
        "cannot find `{program}`: install Claude Code (`npm install -g @anthropic-ai/claude-code`) or point CCR_CLAUDE at it"
    )]
    NoClaude { program: String },
    #[error("cannot run {program}: {source}")]
    Run {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start `{exe} serve`: {source}")]
    Spawn {
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ccr serve stopped before it was listening; the end of {log}:\n{tail}")]
    Exited { log: PathBuf, tail: String },
    #[error("ccr serve did not start listening within {waited:?}; see {log}")]
    Slow { log: PathBuf, waited: Duration },
    #[error("ccr serve started (pid {pid}) but {url}/health does not answer; see {log}")]
    Silent { pid: u32, url: String, log: PathBuf },
    #[error("cannot wait for ccr serve: {0}")]
    Wait(String),
    #[error("no data directory for the server's log: set CCR_DATA_DIR")]
    NoDataDir,
}

/// A variable's value; a secret one is only ever handed to the process or the shell.
pub enum Value {
    Plain(String),
    Secret(Secret),
}

impl Value {
    pub fn expose(&self) -> &str {
        match self {
            Value::Plain(text) => text,
            Value::Secret(secret) => secret.expose(),
        }
    }
}

/// One variable of Claude Code's environment.
pub struct Variable {
    pub name: &'static str,
    pub value: Value,
}

/// What points Claude Code at the server at `base_url`: its URL, the client key as
/// Claude Code's auth token when the server has one (without one, the user's own
/// credentials are left alone, to be passed through), loopback kept off any proxy (added
/// to `no_proxy`, the user's current list), and a long request timeout.
pub fn environment(base_url: &str, key: Option<&Secret>, no_proxy: Option<&str>) -> Vec<Variable> {
    let plain = |name, value: &str| Variable {
        name,
        value: Value::Plain(value.to_string()),
    };
    let bypass = no_proxy_with_loopback(no_proxy);
    let mut vars = vec![plain("ANTHROPIC_BASE_URL", base_url)];
    if let Some(key) = key {
        vars.push(Variable {
            name: "ANTHROPIC_AUTH_TOKEN",
            value: Value::Secret(key.clone()),
        });
    }
    // Tools read either spelling, some the lower-case one first.
    vars.push(plain("NO_PROXY", &bypass));
    vars.push(plain("no_proxy", &bypass));
    vars.push(plain("API_TIMEOUT_MS", API_TIMEOUT_MS));
    vars
}

/// `current` (a comma-separated `NO_PROXY` list) with the loopback names added.
pub fn no_proxy_with_loopback(current: Option<&str>) -> String {
    let mut names: Vec<&str> = current
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    for name in LOOPBACK {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            names.push(name);
        }
    }
    names.join(",")
}

/// The shells `ccr activate` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    /// bash, zsh, sh: `export NAME='value'`.
    Posix,
    /// `set -gx NAME 'value'`.
    Fish,
}

/// Lines that set `vars` in `shell`, for `eval "$(ccr activate)"`. With `hide_secrets`
/// (stdout is a terminal, where it would stay in the scrollback) a secret is left out and
/// a comment says how to get it.
pub fn shell_script(shell: Shell, vars: &[Variable], hide_secrets: bool) -> String {
    let mut script = String::new();
    for var in vars {
        let hidden = hide_secrets && matches!(var.value, Value::Secret(_));
        if hidden {
            script.push_str(&format!(
                "# {} is server.api_key: it is printed only when piped, as in eval \"$(ccr activate)\"\n",
                var.name
            ));
            continue;
        }
        let value = var.value.expose();
        script.push_str(&match shell {
            Shell::Posix => format!("export {}={}\n", var.name, posix_quoted(value)),
            Shell::Fish => format!("set -gx {} {}\n", var.name, fish_quoted(value)),
        });
    }
    script
}

fn posix_quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn fish_quoted(value: &str) -> String {
    format!("'{}'", value.replace('\\', r"\\").replace('\'', r"\'"))
}

/// Where `program` is: itself when it names a path, else the first executable file of
/// that name in `path` (a `PATH` value).
pub fn find_program(program: &OsStr, path: Option<&OsStr>) -> Result<PathBuf, LaunchError> {
    let not_found = || LaunchError::NoClaude {
        program: program.to_string_lossy().into_owned(),
    };
    let as_path = Path::new(program);
    if as_path.components().count() > 1 {
        return is_executable(as_path)
            .then(|| as_path.to_path_buf())
            .ok_or_else(not_found);
    }
    std::env::split_paths(path.unwrap_or_default())
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(not_found)
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    meta.is_file()
}

/// Runs `program` with `args` and `vars` set. On Unix ccr becomes it (exec): the terminal,
/// its signals and its exit status are its own, with nothing of ccr left in between, so a
/// shell sees its exit code (128 + n after signal n). Elsewhere ccr waits and returns
/// its exit code. Returns only if it could not run, or (not on Unix) with its exit code.
pub fn run_claude(
    program: &Path,
    args: &[OsString],
    vars: &[Variable],
) -> Result<i32, LaunchError> {
    let mut command = Command::new(program);
    command.args(args);
    for var in vars {
        command.env(var.name, var.value.expose());
    }
    let failed = |source| LaunchError::Run {
        program: program.to_path_buf(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        Err(failed(command.exec()))
    }
    #[cfg(not(unix))]
    {
        let status = command.status().map_err(failed)?;
        Ok(status.code().unwrap_or(1))
    }
}

/// Asking whether a server is there: loopback answers at once or not at all.
const LOOK: Quick = Quick {
    connect: Duration::from_secs(1),
    total: Duration::from_secs(2),
};

/// How to start a server when none answers: `exe serve_args…` in `data_dir`.
pub struct ServeCommand {
    pub exe: PathBuf,
    /// `serve` and its flags, paths absolute.
    pub args: Vec<OsString>,
    /// Where it runs and logs; `None` when the platform has none (then it cannot start).
    pub data_dir: Option<PathBuf>,
    /// How long it may take to listen (it builds its providers first).
    pub patience: Duration,
}

/// A server that answers `/health`.
#[derive(Debug)]
pub enum Ready {
    /// It was running already.
    Running { url: String },
    /// It was started now.
    Started { url: String, started: Started },
}

impl Ready {
    pub fn url(&self) -> &str {
        match self {
            Ready::Running { url } | Ready::Started { url, .. } => url,
        }
    }
}

/// The server at `configured` if it answers, else one started with `serve`.
pub async fn ensure_server(configured: &str, serve: ServeCommand) -> Result<Ready, LaunchError> {
    let answers = |url: String| async move { admin::health(&url, LOOK).await.is_ok() };
    if answers(configured.to_string()).await {
        return Ok(Ready::Running {
            url: configured.to_string(),
        });
    }
    let data_dir = serve.data_dir.ok_or(LaunchError::NoDataDir)?;
    let starting = tokio::task::spawn_blocking(move || {
        start_server(&serve.exe, &serve.args, &data_dir, serve.patience)
    });
    let started = match starting.await {
        Ok(Ok(started)) => started,
        // Another `ccr code` may have started one meanwhile, and won the port.
        Ok(Err(_)) if answers(configured.to_string()).await => {
            return Ok(Ready::Running {
                url: configured.to_string(),
            });
        }
        Ok(Err(error)) => return Err(error),
        Err(error) => return Err(LaunchError::Wait(error.to_string())),
    };
    // It says where it listens: the configured port, or the one picked for `port: 0`.
    let url = format!("http://{}", started.addr);
    if !answers(url.clone()).await {
        return Err(LaunchError::Silent {
            pid: started.pid,
            url,
            log: started.log,
        });
    }
    Ok(Ready::Started { url, started })
}

/// A server started in the background.
#[derive(Debug)]
pub struct Started {
    /// Where it listens, as it said (`127.0.0.1:3456`).
    pub addr: String,
    pub log: PathBuf,
    pub pid: u32,
}

/// Starts `exe serve_args…` (`ccr serve` and its flags, paths absolute) on its own, in
/// `data_dir` and its own process group (Ctrl-C in the terminal reaches Claude Code, not
/// the server), stdin closed, its log appended to `<data_dir>/serve.log`, its pid in
/// `<data_dir>/serve.pid`. Returns once it has printed its `listening on` line, or fails
/// when it exits first or takes longer than `patience`.
pub fn start_server(
    exe: &Path,
    serve_args: &[OsString],
    data_dir: &Path,
    patience: Duration,
) -> Result<Started, LaunchError> {
    let log = data_dir.join(SERVE_LOG);
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LaunchError::Write { path, source }
    };
    std::fs::create_dir_all(data_dir).map_err(write_error(data_dir))?;
    let log_file = open_log(&log).map_err(write_error(&log))?;
    let mut command = Command::new(exe);
    command
        .args(serve_args)
        .current_dir(data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let mut child = command.spawn().map_err(|source| LaunchError::Spawn {
        exe: exe.to_path_buf(),
        source,
    })?;
    let pid_file = data_dir.join(SERVE_PID);
    std::fs::write(&pid_file, format!("{}\n", child.id())).map_err(write_error(&pid_file))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    // The first line is the address; reading it on a thread bounds the wait.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(read.map(|_| line));
    });
    let line = match rx.recv_timeout(patience) {
        Ok(Ok(line)) => line,
        Ok(Err(_)) => String::new(),
        Err(_) => {
            // Half started is worse than not started: the next try starts afresh.
            let _ = child.kill();
            let _ = child.wait();
            return Err(LaunchError::Slow {
                log,
                waited: patience,
            });
        }
    };
    match line.trim().strip_prefix("listening on ") {
        Some(addr) => Ok(Started {
            addr: addr.to_string(),
            pid: child.id(),
            log,
        }),
        None => {
            let _ = child.wait();
            Err(LaunchError::Exited {
                tail: tail(&log),
                log,
            })
        }
    }
}

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// The last lines of the log, for an error message.
fn tail(log: &Path) -> String {
    const SHOWN: u64 = 2048;
    let Ok(mut file) = std::fs::File::open(log) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(SHOWN)));
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    text.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_keeps_the_users_list_and_adds_loopback_once() {
        assert_eq!(no_proxy_with_loopback(None), "localhost,127.0.0.1,::1");
        assert_eq!(
            no_proxy_with_loopback(Some("corp.example, LOCALHOST,,")),
            "corp.example,LOCALHOST,127.0.0.1,::1"
        );
    }

    #[test]
    fn scripts_quote_values_and_hide_the_key_on_a_terminal() {
        let vars = environment(
            "http://127.0.0.1:3456",
            Some(&Secret::new("k'ey\\")),
            Some("a"),
        );
        let names: Vec<&str> = vars.iter().map(|v| v.name).collect();
        assert_eq!(
            names,
            [
                "ANTHROPIC_BASE_URL",
                "ANTHROPIC_AUTH_TOKEN",
                "NO_PROXY",
                "no_proxy",
                "API_TIMEOUT_MS"
            ]
        );
        let posix = shell_script(Shell::Posix, &vars, false);
        assert!(
            posix.contains("export ANTHROPIC_AUTH_TOKEN='k'\\''ey\\'\n"),
            "{posix}"
        );
        assert!(posix.contains("export NO_PROXY='a,localhost,127.0.0.1,::1'\n"));
        let fish = shell_script(Shell::Fish, &vars, false);
        assert!(
            fish.contains("set -gx ANTHROPIC_AUTH_TOKEN 'k\\'ey\\\\'\n"),
            "{fish}"
        );
        let shown = shell_script(Shell::Posix, &vars, true);
        assert!(!shown.contains("k'"), "{shown}");
        assert!(shown.contains("# ANTHROPIC_AUTH_TOKEN is server.api_key"));
        let keyless = environment("http://127.0.0.1:3456", None, None);
        assert!(keyless.iter().all(|v| v.name != "ANTHROPIC_AUTH_TOKEN"));
    }

    #[test]
    fn a_program_is_found_on_the_path_or_by_its_own_path() {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("claude");
        std::fs::write(&program, "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = std::env::join_paths([Path::new("/nonexistent"), dir.path()]).unwrap();
        assert_eq!(
            find_program(OsStr::new("claude"), Some(&path)).unwrap(),
            program
        );
        assert_eq!(
            find_program(program.as_os_str(), None).unwrap(),
            program,
            "a path is taken as it is"
        );
        let missing = find_program(OsStr::new("claude"), Some(OsStr::new("/nonexistent")));
        assert!(matches!(missing, Err(LaunchError::NoClaude { .. })));
    }
}
