//! `ccr stats`: a running server's stats as a table (or JSON), optionally redrawn.

use std::collections::BTreeMap;

use anyhow::Context;
use comfy_table::Table;

use crate::printer::Printer;
use crate::{AppContext, Failure};
use ccr::config;
use ccr::stats::render::{Document, RowView};

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
    /// Group rows by
    #[arg(long, value_enum, default_value_t = By::Provider)]
    by: By,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum By {
    Provider,
    Target,
    Model,
    Scenario,
}

pub fn run(context: &AppContext, args: Args) -> Result<(), Failure> {
    // Only the server's address and key: another section's unset variable is not ours.
    let settings = config::load_client(context.config_path(), context.config_explicit())
        .map_err(Failure::config)?;
    let url = args.url.clone().unwrap_or_else(|| settings.base_url());
    let key = settings.server.client_key().cloned();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    loop {
        let document = runtime
            .block_on(ccr::admin::fetch_stats(&url, key.as_ref()))
            .map_err(anyhow::Error::from)?;
        let text = if args.json {
            serde_json::to_string_pretty(&document).context("cannot write JSON")?
        } else {
            render(&context.printer, &document, args.by).to_string()
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

/// Rows grouped by `by`: counts summed, percentiles of the busiest row in the group.
fn render(printer: &Printer, document: &Document, by: By) -> Table {
    let mut groups: BTreeMap<String, Vec<&RowView>> = BTreeMap::new();
    for row in &document.rows {
        let key = match by {
            By::Provider => &row.provider,
            By::Target => &row.target,
            By::Model => &row.model,
            By::Scenario => &row.scenario,
        };
        groups.entry(key.clone()).or_default().push(row);
    }
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
    for (key, group) in groups {
        let sum = |f: fn(&RowView) -> u64| group.iter().map(|r| f(r)).sum::<u64>();
        let failed: u64 = group.iter().flat_map(|r| r.counts.failures.values()).sum();
        let busiest = group
            .iter()
            .max_by_key(|r| r.counts.requests)
            .expect("a group has rows");
        let rpm: f64 = group.iter().map(|r| r.counts.requests_per_minute).sum();
        let credits: f64 = group.iter().map(|r| r.counts.credits).sum();
        rows.push(vec![
            key,
            sum(|r| r.counts.requests).to_string(),
            sum(|r| r.counts.successes).to_string(),
            failed.to_string(),
            format!("{rpm:.1}"),
            ms(busiest.latency_ms.p50),
            ms(busiest.latency_ms.p90),
            ms(busiest.latency_ms.p99),
            ms(busiest.ttft_ms.p50),
            sum(|r| r.counts.tokens.input).to_string(),
            sum(|r| r.counts.tokens.output).to_string(),
            format!("{credits:.2}"),
        ]);
    }
    printer.fitted_table(&columns, &rows)
}
