//! `ccr code`: Claude Code pointed at ccr, starting `ccr serve` in the background when no
//! server answers on the configured address.

use std::ffi::OsString;
use std::time::Duration;

use anyhow::Context;

use crate::{AppContext, Failure};
use ccr::admin::{self, Quick};
use ccr::config::{self, ClientSettings};
use ccr::launch;

#[derive(clap::Args)]
pub struct Args {
    /// Arguments passed on to `claude`, after `--`
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<OsString>,
}

/// Asking whether a server is there: loopback answers at once or not at all.
const LOOK: Quick = Quick {
    connect: Duration::from_secs(1),
    total: Duration::from_secs(2),
};

/// How long a server started here may take to listen (providers are built first).
const START_PATIENCE: Duration = Duration::from_secs(30);

pub fn run(context: &AppContext, args: Args) -> Result<(), Failure> {
    let settings = config::load_client(context.config_path(), context.config_explicit())
        .map_err(Failure::config)?;
    let program = std::env::var_os("CCR_CLAUDE").unwrap_or_else(|| "claude".into());
    // Before a server is started for it: a missing `claude` is the first thing to say.
    let claude = launch::find_program(&program, std::env::var_os("PATH").as_deref())
        .map_err(anyhow::Error::from)?;
    let base_url = ensure_server(context, &settings)?;
    let no_proxy = std::env::var("NO_PROXY")
        .or_else(|_| std::env::var("no_proxy"))
        .ok();
    let vars = launch::environment(&base_url, settings.server.client_key(), no_proxy.as_deref());
    match launch::run_claude(&claude, &args.args, &vars).map_err(anyhow::Error::from)? {
        0 => Ok(()),
        code => Err(Failure::quiet(u8::try_from(code).unwrap_or(1))),
    }
}

/// The URL of a server that answers: the configured one, or one started now.
fn ensure_server(context: &AppContext, settings: &ClientSettings) -> anyhow::Result<String> {
    let configured = settings.base_url();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let answers = |url: &str| runtime.block_on(admin::health(url, LOOK)).is_ok();
    if answers(&configured) {
        return Ok(configured);
    }
    let data_dir = ccr::paths::data_dir(context.data_dir.as_deref())
        .context("no data directory for the server's log: set CCR_DATA_DIR")?;
    let exe = std::env::current_exe().context("cannot find the ccr program itself")?;
    // Absolute paths: the server runs in the data directory, not wherever this ran.
    let absolute = |path: &std::path::Path| -> anyhow::Result<OsString> {
        Ok(std::path::absolute(path)
            .with_context(|| format!("cannot resolve {}", path.display()))?
            .into())
    };
    let mut serve_args: Vec<OsString> = vec!["serve".into()];
    if let (true, Some(path)) = (context.config_explicit(), context.config_path()) {
        serve_args.extend(["--config".into(), absolute(path)?]);
    }
    if let Some(dir) = &context.data_dir {
        serve_args.extend(["--data-dir".into(), absolute(dir)?]);
    }
    let started = match launch::start_server(&exe, &serve_args, &data_dir, START_PATIENCE) {
        Ok(started) => started,
        // Another `ccr code` may have started one meanwhile, and won the port.
        Err(_) if answers(&configured) => return Ok(configured),
        Err(error) => return Err(error).context("no ccr server answered, and starting one failed"),
    };
    let url = format!("http://{}", started.addr);
    if !answers(&url) {
        anyhow::bail!(
            "ccr serve started (pid {}) but {url}/health does not answer; see {}",
            started.pid,
            started.log.display()
        );
    }
    context.printer.note(&format!(
        "started ccr serve in the background (log: {})",
        started.log.display()
    ));
    Ok(url)
}
