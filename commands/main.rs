//! The `ccr` command line: argument parsing, dispatch, error reporting and exit codes.
//! Each subcommand lives in its own file as a thin layer over the `ccr` library.

mod activate;
mod code;
mod generate;
mod human;
mod printer;
mod providers;
mod replay;
mod serve;
mod stats;
mod statusline;
mod token;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use printer::{Closed, ColorChoice, Printer};

#[derive(Parser)]
#[command(
    name = "ccr",
    version,
    about = "A fast local router for Anthropic Messages API clients"
)]
pub struct Cli {
    /// Configuration file (default: the platform config directory's ccr/config.yaml)
    #[arg(long, global = true, env = "CCR_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Data directory for logs and state (default: the platform data directory's ccr/)
    #[arg(long, global = true, env = "CCR_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// When to use colour (`NO_COLOR` turns `auto` off)
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        value_name = "WHEN"
    )]
    color: ColorChoice,

    /// Print only errors and requested output (no confirmation lines)
    #[arg(long, short, global = true)]
    quiet: bool,

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
    /// Test the configured providers: a text, a streaming and a tool-call probe each
    Providers(providers::Args),
    /// Resend logged failures through a running server
    Replay(replay::Args),
    /// Run Claude Code through ccr, starting `ccr serve` in the background if needed
    Code(code::Args),
    /// Print the environment `ccr code` sets, for `eval "$(ccr activate)"`
    Activate(activate::Args),
    /// Print one status line for Claude Code's `statusLine` setting (JSON on stdin)
    Statusline(statusline::Args),
    /// Print the shell completion script (bash, zsh, fish, powershell, elvish)
    Completions(generate::CompletionsArgs),
    /// Write completions/ and man/ from this definition (for ccr's own repository)
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
}

/// What every command is handed, resolved once: global flags, paths and the printer.
pub struct AppContext {
    /// `--config` or `CCR_CONFIG`, else the platform's default path.
    config_path: Option<PathBuf>,
    /// The path was given, so it must exist.
    config_explicit: bool,
    /// `--data-dir` or `CCR_DATA_DIR`, if given.
    pub data_dir: Option<PathBuf>,
    pub printer: Printer,
}

impl AppContext {
    fn new(cli: &Cli) -> AppContext {
        AppContext {
            config_explicit: cli.config.is_some(),
            config_path: cli.config.clone().or_else(ccr::config::default_path),
            data_dir: cli.data_dir.clone(),
            printer: Printer::new(cli.color, cli.quiet),
        }
    }

    pub fn config_path(&self) -> Option<&Path> {
        self.config_path.as_deref()
    }

    pub fn config_explicit(&self) -> bool {
        self.config_explicit
    }
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

impl From<Closed> for Failure {
    /// A closed stdout ends the command quietly and successfully.
    fn from(_: Closed) -> Self {
        Failure {
            code: 0,
            error: None,
        }
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
    // `COMPLETE=<shell> ccr …` is the shell asking for completions: answer and exit.
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command).complete();
    let cli = Cli::parse();
    let context = AppContext::new(&cli);
    let result = match cli.command {
        Command::Serve(args) => serve::run(&context, args),
        Command::Token(args) => token::run(&context, args),
        Command::Stats(args) => stats::run(&context, args),
        Command::Providers(args) => providers::run(&context, args),
        Command::Replay(args) => replay::run(&context, args),
        Command::Code(args) => code::run(&context, args),
        Command::Activate(args) => activate::run(&context, args),
        Command::Statusline(args) => statusline::run(&context, args),
        Command::Completions(args) => generate::completions(&context, args),
        Command::Generate(args) => generate::generate(&context, args),
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

/// Prints `error: …` and then each cause on its own line, once: a cause whose text the
/// line above already shows is left out.
fn report(error: &anyhow::Error) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {error}");
    let mut shown = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !shown.contains(&text) {
            let _ = writeln!(stderr, "  caused by: {text}");
        }
        shown = text;
    }
}

/// Per-thread caches and a background thread that returns freed memory: conversion
/// allocates per chunk on every worker thread, where glibc's arenas contended, and a burst
/// of streams should not stay resident (see the allocator note in Cargo.toml).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
