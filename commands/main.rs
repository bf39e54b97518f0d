//! The `ccr` command line: argument parsing, dispatch, error reporting and exit codes.
//! Each subcommand lives in its own file as a thin layer over the `ccr` library.

mod serve;
mod stats;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ccr",
    version,
    about = "A fast local router for Anthropic Messages API clients"
)]
struct Cli {
    /// Configuration file (default: the platform config directory's ccr/config.yaml)
    #[arg(long, global = true, env = "CCR_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Data directory for logs and state (default: the platform data directory's ccr/)
    #[arg(long, global = true, env = "CCR_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy server
    Serve(serve::Args),
    /// Manage CodeWhisperer (Kiro) accounts: import, list, refresh, remove
    Token(token::Args),
    /// Show a running server's stats
    Stats(stats::Args),
}

/// A failure to report, with the exit code it maps to.
pub struct Failure {
    code: u8,
    /// `None` when the failure was already reported.
    error: Option<anyhow::Error>,
}

impl Failure {
    /// A usage or configuration error: exit code 2.
    pub fn config(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: 2,
            error: Some(error.into()),
        }
    }

    /// A failure already reported on stderr, exiting with `code`.
    pub fn quiet(code: u8) -> Self {
        Failure { code, error: None }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure {
            code: 1,
            error: Some(error),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(cli.config, cli.data_dir, args),
        Command::Token(args) => token::run(cli.config, cli.data_dir, args),
        Command::Stats(args) => stats::run(cli.config, cli.data_dir, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if let Some(error) = &failure.error {
                report(error);
            }
            ExitCode::from(failure.code)
        }
    }
}

/// Prints `error: …` and then each cause on its own line.
fn report(error: &anyhow::Error) {
    eprintln!("error: {error}");
    for cause in error.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}
