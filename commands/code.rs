//! `ccr code`: Claude Code pointed at ccr, starting `ccr serve` in the background when no
//! server answers on the configured address.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::{AppContext, Failure};
use ccr::config;
use ccr::launch::{self, Ready, ServeCommand};

#[derive(clap::Args)]
pub struct Args {
    /// Arguments passed on to `claude`, after `--`
    #[arg(last = true, value_name = "ARGS")]
    args: Vec<OsString>,
}

/// How long a server started here may take to listen (providers are built first).
const START_PATIENCE: Duration = Duration::from_secs(30);

pub fn run(context: &AppContext, args: Args) -> Result<(), Failure> {
    let settings = config::load_client(context.config_path(), context.config_explicit())
        .map_err(Failure::config)?;
    let program = std::env::var_os("CCR_CLAUDE").unwrap_or_else(|| "claude".into());
    // Before a server is started for it: a missing `claude` is the first thing to say.
    let claude = launch::find_program(&program, std::env::var_os("PATH").as_deref())
        .map_err(anyhow::Error::from)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let ready = runtime
        .block_on(launch::ensure_server(
            &settings.base_url(),
            serve_command(context)?,
        ))
        .context("no ccr server answered, and starting one failed")?;
    if let Ready::Started { started, .. } = &ready {
        context.printer.note(&format!(
            "started ccr serve in the background (log: {})",
            started.log.display()
        ));
    }
    drop(runtime);
    let no_proxy = std::env::var("NO_PROXY")
        .or_else(|_| std::env::var("no_proxy"))
        .ok();
    let vars = launch::environment(
        ready.url(),
        settings.server.client_key(),
        no_proxy.as_deref(),
    );
    match launch::run_claude(&claude, &args.args, &vars).map_err(anyhow::Error::from)? {
        0 => Ok(()),
        code => Err(Failure::quiet(u8::try_from(code).unwrap_or(1))),
    }
}

/// `ccr serve` with this run's config and data directory, as absolute paths: the server
/// runs in the data directory, not wherever this ran.
fn serve_command(context: &AppContext) -> anyhow::Result<ServeCommand> {
    let absolute = |path: &Path| -> anyhow::Result<OsString> {
        Ok(std::path::absolute(path)
            .with_context(|| format!("cannot resolve {}", path.display()))?
            .into())
    };
    let mut args: Vec<OsString> = vec!["serve".into()];
    if let (true, Some(path)) = (context.config_explicit(), context.config_path()) {
        args.extend(["--config".into(), absolute(path)?]);
    }
    if let Some(dir) = &context.data_dir {
        args.extend(["--data-dir".into(), absolute(dir)?]);
    }
    let data_dir = match ccr::paths::data_dir(context.data_dir.as_deref()) {
        Some(dir) => Some(absolute(&dir)?.into()),
        None => None,
    };
    Ok(ServeCommand {
        exe: std::env::current_exe().context("cannot find the ccr program itself")?,
        args,
        data_dir,
        patience: START_PATIENCE,
    })
}
