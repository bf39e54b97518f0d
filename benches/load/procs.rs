//! The proxies under test as child processes, so each one's CPU time and memory can be read
//! from `/proc` apart from the load client's and the mock's.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::bare;

pub struct Proxy {
    child: Child,
    pub addr: SocketAddr,
    _home: Option<tempfile::TempDir>,
}

impl Proxy {
    /// `ccr serve` (the binary cargo built beside this benchmark) in a home and data
    /// directory of its own, with the config `yaml` writes for that home.
    pub fn ccr(yaml: impl FnOnce(&Path) -> String) -> Proxy {
        let home = tempfile::tempdir().expect("temp home");
        let config = home.path().join("config.yaml");
        std::fs::write(&config, yaml(home.path())).expect("write the config");
        // Private, as ccr asks of a config holding a key.
        std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod the config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_ccr"));
        command
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(home.path().join("data"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .env("CCR_LOG", "warn");
        // Passed through for experiments with the runtime's and the allocator's shape.
        // (jemalloc reads `MALLOC_CONF`.)
        for name in ["TOKIO_WORKER_THREADS", "MALLOC_CONF"] {
            if let Ok(value) = std::env::var(name) {
                command.env(name, value);
            }
        }
        Proxy::start(command, Some(home))
    }

    /// The bare pass-through proxy: this benchmark's own binary in its proxy role.
    pub fn bare(upstream: &str) -> Proxy {
        let mut command = Command::new(std::env::current_exe().expect("own path"));
        command.env(bare::UPSTREAM_ENV, upstream);
        Proxy::start(command, None)
    }

    fn start(mut command: Command, home: Option<tempfile::TempDir>) -> Proxy {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the proxy");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the proxy's first line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the proxy said {line:?}, not `listening on ADDR`"))
            .parse()
            .expect("an address");
        Proxy {
            child,
            addr,
            _home: home,
        }
    }

    /// User plus system CPU time of every thread so far.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("read /proc/PID/stat");
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
        let after_name = &stat[stat.rfind(')').expect("stat format") + 2..];
        let fields: Vec<&str> = after_name.split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Duration::from_secs_f64(ticks as f64 / per_second)
    }

    /// Resident memory now and at its peak, in bytes.
    pub fn memory(&self) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .map_or(0, |kb| kb * 1024)
        };
        Memory {
            resident: field("VmRSS:"),
            peak: field("VmHWM:"),
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

#[derive(Clone, Copy)]
pub struct Memory {
    pub resident: u64,
    pub peak: u64,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes one CodeWhisperer account's token file (a far-future expiry, so nothing refreshes).
pub fn codewhisperer_credentials(dir: &Path) {
    let token = serde_json::json!({"accessToken": "bench-access-token", "refreshToken": "bench-refresh", "expiresAt": "2099-01-01T00:00:00Z", "profileArn": "arn:aws:codewhisperer:us-east-1:699475941385:profile/BENCH", "authMethod": "social", "provider": "Github"});
    let path = dir.join("bench.json");
    std::fs::write(&path, token.to_string()).expect("write the token file");
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod the token file");
}
