//! `ccr serve`: load the config, start the server, run until SIGINT/SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use tracing_subscriber::EnvFilter;

use crate::{AppContext, Failure};
use ccr::config::{self, Overrides};
use ccr::server::{Reloader, Server};

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on (overrides `server.host`)
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on; 0 picks a free one (overrides `server.port`)
    #[arg(long)]
    port: Option<u16>,
    /// Log level (error, warn, info, debug, trace) or a tracing filter such as `ccr=debug`
    #[arg(long, env = "CCR_LOG", default_value = "info", value_name = "LEVEL")]
    log_level: String,
}

pub fn run(context: &AppContext, args: Args) -> Result<(), Failure> {
    let filter = EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("`--log-level {}` is not a level or filter", args.log_level))
        .map_err(Failure::config)?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(context.printer.stderr_is_terminal())
        .init();

    let explicit = context.config_explicit();
    let path = context.config_path().map(std::path::Path::to_path_buf);
    let overrides = Overrides {
        host: args.host,
        port: args.port,
        data_dir: context.data_dir.clone(),
    };
    let loaded = config::load(path.as_deref(), explicit, &overrides).map_err(Failure::config)?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    tracing::info!(
        config = %loaded.source,
        data_dir = ?loaded.config.data_dir.as_deref().map(std::path::Path::display),
        "configuration loaded"
    );

    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let server = Server::bind(&loaded.config, Default::default())
            .await
            .context("cannot start the server")?;
        let shutdown = shutdown_signal();
        watch_for_reload(server.reloader(), path.clone(), explicit, overrides.clone());
        tracing::info!(addr = %server.local_addr(), "listening");
        // Scripts and tests read this line to learn the port; a closed stdout is not an error.
        let _ = context
            .printer
            .out(&format!("listening on {}", server.local_addr()));
        server.run(shutdown).await;
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(())
}

/// On SIGHUP, reads the config file again and swaps it in; an invalid file is logged and
/// the running configuration keeps serving.
fn watch_for_reload(
    reloader: Reloader,
    path: Option<PathBuf>,
    explicit: bool,
    overrides: Overrides,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // Registered now, not inside the task, so a SIGHUP right after start is not lost.
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; config reload is off");
            return;
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let result = match config::load(path.as_deref(), explicit, &overrides) {
                    Ok(loaded) => reloader
                        .apply(&loaded.config)
                        .await
                        .map_err(anyhow::Error::from),
                    Err(error) => Err(anyhow::Error::from(error)),
                };
                match result {
                    Ok(()) => tracing::info!("configuration reloaded"),
                    Err(error) => tracing::error!(
                        "config reload failed, keeping the running configuration: {error:#}"
                    ),
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (reloader, path, explicit, overrides);
}

/// Listens for SIGINT and SIGTERM from now on (before the address is printed, so a signal
/// sent as soon as a script sees it is never lost) and completes on the first of them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        )
    };
    async move {
        #[cfg(unix)]
        match (interrupt, terminate) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            (interrupt, terminate) => {
                let error = interrupt
                    .err()
                    .or(terminate.err())
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                tracing::warn!(%error, "cannot listen for SIGINT/SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
