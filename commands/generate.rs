//! `ccr completions <shell>` and the hidden `ccr generate`, which writes the committed
//! `completions/` and `man/` from the clap definition (a test keeps them fresh).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use crate::{AppContext, Cli, Failure};

#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// The shell to print the completion script for
    shell: Shell,
}

/// Prints the completion script for one shell.
pub fn completions(context: &AppContext, args: CompletionsArgs) -> Result<(), Failure> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "ccr", &mut script);
    context
        .printer
        .out(String::from_utf8_lossy(&script).trim_end())?;
    Ok(())
}

/// Names for the shell to complete, read from the config (`CCR_CONFIG` or the default path)
/// when the shell asks `COMPLETE=<shell> ccr`; a config that does not load completes nothing.
fn configured() -> Option<ccr::config::Config> {
    let explicit = std::env::var_os("CCR_CONFIG").map(PathBuf::from);
    let path = explicit.clone().or_else(ccr::config::default_path);
    let loaded = ccr::config::load(path.as_deref(), explicit.is_some(), &Default::default());
    loaded.ok().map(|loaded| loaded.config)
}

/// The configured providers' names.
pub fn provider_names() -> Vec<clap_complete::CompletionCandidate> {
    configured()
        .map(|config| {
            config
                .providers
                .keys()
                .map(clap_complete::CompletionCandidate::new)
                .collect()
        })
        .unwrap_or_default()
}

/// The CodeWhisperer accounts the config names.
pub fn account_names() -> Vec<clap_complete::CompletionCandidate> {
    configured()
        .map(|config| {
            ccr::credentials::manager::accounts_in(&config)
                .into_iter()
                .map(|(account, _)| clap_complete::CompletionCandidate::new(account))
                .collect()
        })
        .unwrap_or_default()
}

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// Where `completions/` and `man/` go (default: the current directory)
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
}

/// Writes every completion script and one man page per command and subcommand.
pub fn generate(context: &AppContext, args: GenerateArgs) -> Result<(), Failure> {
    let completions = args.out.join("completions");
    let man = args.out.join("man");
    for dir in [&completions, &man] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    for (shell, file) in [
        (Shell::Bash, "ccr.bash"),
        (Shell::Zsh, "_ccr"),
        (Shell::Fish, "ccr.fish"),
        (Shell::PowerShell, "_ccr.ps1"),
        (Shell::Elvish, "ccr.elv"),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "ccr", &mut script);
        write(&completions.join(file), &script)?;
    }
    clap_mangen::generate_to(Cli::command(), &man).context("cannot write the man pages")?;
    context.printer.done(&format!(
        "wrote {} and {}",
        completions.display(),
        man.display()
    ))?;
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
