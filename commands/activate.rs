//! `ccr activate`: the environment `ccr code` gives Claude Code, as lines for a shell:
//! `eval "$(ccr activate)"`.

use crate::{AppContext, Failure};
use ccr::config;
use ccr::launch::{self, Shell};

#[derive(clap::Args)]
pub struct Args {
    /// The shell to write for (default: from $SHELL)
    #[arg(long, value_enum)]
    shell: Option<ShellName>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ShellName {
    Bash,
    Zsh,
    Fish,
}

pub fn run(context: &AppContext, args: Args) -> Result<(), Failure> {
    let settings = config::load_client(context.config_path(), context.config_explicit())
        .map_err(Failure::config)?;
    let shell = match args.shell {
        Some(ShellName::Fish) => Shell::Fish,
        Some(ShellName::Bash | ShellName::Zsh) => Shell::Posix,
        None => from_login_shell(),
    };
    let no_proxy = std::env::var("NO_PROXY")
        .or_else(|_| std::env::var("no_proxy"))
        .ok();
    let vars = launch::environment(
        &settings.base_url(),
        settings.server.client_key(),
        no_proxy.as_deref(),
    );
    // On a terminal the key would stay in the scrollback; `eval "$(…)"` pipes it.
    let hide = context.printer.stdout_is_terminal();
    context
        .printer
        .raw(&launch::shell_script(shell, &vars, hide))?;
    Ok(())
}

fn from_login_shell() -> Shell {
    let shell = std::env::var_os("SHELL").unwrap_or_default();
    match std::path::Path::new(&shell).file_name() {
        Some(name) if name == "fish" => Shell::Fish,
        _ => Shell::Posix,
    }
}
