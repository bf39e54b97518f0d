//! `ccr token`: CodeWhisperer accounts in the configured store (the OS keyring unless the
//! config says `credentials.store: file`). Never prints a token.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context;
use comfy_table::Table;

use crate::human;
use crate::printer::Printer;
use crate::{AppContext, Failure};
use ccr::config;
use ccr::credentials::accounts::{self, Listed};
use ccr::credentials::{self, refresh};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Import Kiro's token file as an account
    Import {
        /// Kiro's token file (default: ~/.aws/sso/cache/kiro-auth-token.json)
        #[arg(long, value_name = "PATH")]
        from: Option<PathBuf>,
        /// The account name, as `accounts:` in the config names it
        #[arg(long, default_value = "default")]
        name: String,
    },
    /// List accounts with their expiry and status (never a token)
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Refresh accounts' tokens and store them (for scripts and cron: quiet when piped)
    Refresh {
        /// Accounts to refresh
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::generate::account_names))]
        names: Vec<String>,
        /// Refresh every imported account
        #[arg(long, conflicts_with = "names")]
        all: bool,
        /// Only accounts whose token expires within this long (e.g. `10m`)
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        if_expiring_within: Option<std::time::Duration>,
        /// Print the outcome of each account as JSON
        #[arg(long)]
        json: bool,
    },
    /// Remove an account from the store
    Remove {
        /// The account name
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::generate::account_names))]
        name: String,
    },
}

pub fn run(context: &AppContext, args: Args) -> Result<(), Failure> {
    let settings = config::load_credentials(
        context.config_path(),
        context.config_explicit(),
        context.data_dir.clone(),
    )
    .map_err(Failure::config)?;
    let printer = &context.printer;
    let store = credentials::open_store(&settings.credentials, &settings.credentials_dir());
    let data_dir = settings.data_dir.clone();
    match args.command {
        Command::Import { from, name } => {
            check_name(&name)?;
            let from = from
                .or_else(accounts::default_kiro_token_path)
                .context("no home directory to find Kiro's token file in: pass --from")
                .map_err(Failure::config)?;
            let entry = accounts::import(&*store, &data_dir, &from, &name)
                .with_context(|| format!("cannot import account `{name}`"))?;
            let expiry = entry
                .expires_at
                .as_deref()
                .and_then(|at| accounts::seconds_until(at, SystemTime::now()))
                .map_or_else(|| "expiry unknown".into(), human::expiry);
            printer.done(&format!(
                "imported account {name} ({}, {expiry}) into {}",
                entry.auth_method,
                store.describe()
            ))?;
            Ok(())
        }
        Command::List { json } => {
            let listed = accounts::list(&*store, &data_dir, SystemTime::now())
                .context("cannot list accounts")?;
            if listed.is_empty() && !json {
                printer.out(&format!(
                    "no accounts in {}: import Kiro's token with `ccr token import --name NAME`",
                    store.describe()
                ))?;
                return Ok(());
            }
            if json {
                printer
                    .out(&serde_json::to_string_pretty(&listed).context("cannot write JSON")?)?;
            } else {
                printer.out(&table(printer, &listed).to_string())?;
            }
            Ok(())
        }
        Command::Refresh {
            names,
            all,
            if_expiring_within,
            json,
        } => {
            names.iter().try_for_each(|name| check_name(name))?;
            let known: Vec<String> = accounts::list(&*store, &data_dir, SystemTime::now())
                .context("cannot list accounts")?
                .into_iter()
                .map(|a| a.name)
                .collect();
            let names = match (all, names.is_empty()) {
                (true, _) | (false, true) => known,
                (false, false) => {
                    if let Some(unknown) = names.iter().find(|n| !known.contains(n)) {
                        return Err(Failure::from(anyhow::anyhow!(
                            "no account `{unknown}` in {}: `ccr token list` shows the accounts, `ccr token import --name {unknown}` adds it",
                            store.describe()
                        )));
                    }
                    names
                }
            };
            if names.is_empty() {
                return Err(Failure::from(anyhow::anyhow!(
                    "no accounts to refresh: import one with `ccr token import`"
                )));
            }
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            let targets: Vec<(String, refresh::Endpoints)> = names
                .into_iter()
                .map(|name| {
                    let provider = settings.codewhisperer_for(&name);
                    let endpoints = refresh::Endpoints::for_provider(provider);
                    (name, endpoints)
                })
                .collect();
            let outcomes = runtime.block_on(refresh::refresh_many(
                store,
                &data_dir,
                &targets,
                if_expiring_within,
            ));
            report_refresh(printer, &outcomes, json)
        }
        Command::Remove { name } => {
            check_name(&name)?;
            let removed = accounts::remove(&*store, &data_dir, &name)
                .with_context(|| format!("cannot remove account `{name}`"))?;
            if !removed {
                return Err(Failure::from(anyhow::anyhow!(
                    "there is no account `{name}`: `ccr token list` shows them"
                )));
            }
            printer.done(&format!("removed `{name}`"))?;
            Ok(())
        }
    }
}

/// A terminal gets one line per account; a pipe gets nothing on success and errors on
/// stderr; `--json` prints every outcome to stdout. Any failure is exit code 1.
fn report_refresh(
    printer: &Printer,
    outcomes: &[refresh::Outcome],
    json: bool,
) -> Result<(), Failure> {
    if json {
        printer.out(&serde_json::to_string_pretty(outcomes).context("cannot write JSON")?)?;
    }
    for outcome in outcomes {
        match &outcome.error {
            Some(error) => printer.error(error),
            None if !json => {
                let expiry = outcome
                    .expires_at
                    .as_deref()
                    .and_then(|at| accounts::seconds_until(at, SystemTime::now()))
                    .map_or_else(|| "expiry unknown".into(), human::expiry);
                printer.done(&format!("{}: {} ({expiry})", outcome.name, outcome.result))?
            }
            None => {}
        }
    }
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    if failed > 0 {
        // Already reported line by line; the exit code says it to scripts.
        return Err(Failure::quiet(1));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), Failure> {
    if !config::is_account_name(name) {
        return Err(Failure::config(anyhow::anyhow!(
            "`{name}` is not an account name: use up to 64 letters, digits, `-` and `_`"
        )));
    }
    Ok(())
}

/// The accounts as a table sized to the terminal, with ASCII borders when piped.
fn table(printer: &Printer, listed: &[Listed]) -> Table {
    let mut table = printer.table();
    table.set_header(["name", "auth", "expires", "last refresh", "status"]);
    for account in listed {
        table.add_row([
            account.name.clone(),
            account.auth_method.clone(),
            account
                .expires_in_secs
                .map_or_else(|| "unknown".into(), human::expiry),
            account
                .last_refresh
                .clone()
                .unwrap_or_else(|| "never".into()),
            account.status.clone(),
        ]);
    }
    table
}
