//! `ccr stats`: a running server's stats as a table (or JSON), optionally redrawn.

use anyhow::Context;
use comfy_table::Table;

use crate::printer::Printer;
use crate::{AppContext, Failure};
use ccr::config;
use ccr::stats::GroupBy;
use ccr::stats::render::Document;

#[derive(clap::Args)]
pub struct Args {
    /// The server (default: the address in the config)
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Print the /api/stats document
    #[arg(long)]
    json: bool,
    /// Redraw every SECONDS until interrupted
    #[arg(long, value_name = "SECONDS")]
    watch: Option<u64>,
    /// Group rows by this key, percentiles merged on the server (the table's default:
    /// provider; `--json` without it: every row)
    #[arg(long, value_enum)]
    by: Option<By>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum By {
    Provider,
    Target,
    Model,
    Scenario,
}

impl By {
    fn group(self) -> GroupBy {
        match self {
            By::Provider => GroupBy::Provider,
            By::Target => GroupBy::Target,
            By::Model => GroupBy::Model,
            By::Scenario => GroupBy::Scenario,
        }
    }
}

pub fn run(context: &AppContext, args: Args) -> Result<(), Failure> {
    // Only the server's address and key: another section's unset variable is not ours.
    let settings = config::load_client(context.config_path(), context.config_explicit())
        .map_err(Failure::config)?;
    let url = args.url.clone().unwrap_or_else(|| settings.base_url());
    ccr::admin::check_url(&url).map_err(Failure::config)?;
    let key = settings.server.client_key().cloned();
    let by = match (args.json, args.by) {
        (true, by) => by,
        (false, by) => Some(by.unwrap_or(By::Provider)),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    loop {
        let document = runtime
            .block_on(ccr::admin::fetch_stats(
                &url,
                key.as_ref(),
                by.map(By::group),
            ))
            .map_err(anyhow::Error::from)?;
        let text = if args.json {
            serde_json::to_string_pretty(&document).context("cannot write JSON")?
        } else {
            render(&context.printer, &document, by.unwrap_or(By::Provider)).to_string()
        };
        let printer = &context.printer;
        if args.watch.is_some() && printer.stdout_is_terminal() {
            // Clear the screen and go home, so the table redraws in place.
            printer.raw("\x1b[2J\x1b[H")?;
        }
        printer.out(&text)?;
        match args.watch {
            Some(seconds) => std::thread::sleep(std::time::Duration::from_secs(seconds.max(1))),
            None => return Ok(()),
        }
    }
}

/// The rows the server grouped `by`, one line each.
fn render(printer: &Printer, document: &Document, by: By) -> Table {
    let name = match by {
        By::Provider => "provider",
        By::Target => "target",
        By::Model => "model",
        By::Scenario => "scenario",
    };
    // What goes first when the terminal is narrow: credits, p90, the rate, ttft…
    let columns = [
        (name, 9),
        ("requests", 8),
        ("ok", 7),
        ("failed", 8),
        ("req/min", 3),
        ("p50 ms", 6),
        ("p90 ms", 2),
        ("p99 ms", 5),
        ("ttft ms", 4),
        ("in", 5),
        ("out", 5),
        ("credits", 1),
    ];
    let ms = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.0}"));
    let mut rows = Vec::new();
    for row in &document.rows {
        let key = match by {
            By::Provider => &row.provider,
            By::Target => &row.target,
            By::Model => &row.model,
            By::Scenario => &row.scenario,
        };
        let counts = &row.counts;
        let failed: u64 = counts.failures.values().sum();
        rows.push(vec![
            key.clone(),
            counts.requests.to_string(),
            counts.successes.to_string(),
            failed.to_string(),
            format!("{:.1}", counts.requests_per_minute),
            ms(row.latency_ms.p50),
            ms(row.latency_ms.p90),
            ms(row.latency_ms.p99),
            ms(row.ttft_ms.p50),
            counts.tokens.input.to_string(),
            counts.tokens.output.to_string(),
            format!("{:.2}", counts.credits),
        ]);
    }
    printer.fitted_table(&columns, &rows)
}
