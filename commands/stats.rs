//! `ccr stats`: a running server's stats as a table (or JSON), optionally redrawn.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use comfy_table::{Table, presets};

use crate::Failure;
use ccr::config::{self, Overrides};
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

pub fn run(
    config_path: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    args: Args,
) -> Result<(), Failure> {
    let explicit = config_path.is_some();
    let path = config_path.or_else(config::default_path);
    let loaded = config::load(
        path.as_deref(),
        explicit,
        &Overrides {
            data_dir,
            ..Overrides::default()
        },
    )
    .map_err(Failure::config)?;
    let server = &loaded.config.server;
    let url = args.url.clone().unwrap_or_else(|| {
        let host = if server.host.0.contains(':') {
            format!("[{}]", server.host.0)
        } else {
            server.host.0.clone()
        };
        format!("http://{host}:{}", server.port)
    });
    let key = server.client_key().cloned();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    loop {
        let document = runtime
            .block_on(ccr::admin::fetch_stats(&url, key.as_ref()))
            .map_err(anyhow::Error::from)?;
        let text = if args.json {
            serde_json::to_string_pretty(&document).context("cannot write JSON")?
        } else {
            render(&document, args.by).to_string()
        };
        let mut stdout = std::io::stdout().lock();
        if args.watch.is_some() && stdout.is_terminal() {
            // Clear the screen and go home, so the table redraws in place.
            let _ = write!(stdout, "\x1b[2J\x1b[H");
        }
        if writeln!(stdout, "{text}").is_err() {
            return Ok(()); // A closed pipe is not an error.
        }
        let _ = stdout.flush();
        match args.watch {
            Some(seconds) => std::thread::sleep(std::time::Duration::from_secs(seconds.max(1))),
            None => return Ok(()),
        }
    }
}

/// Rows grouped by `by`: counts summed, percentiles of the busiest row in the group.
fn render(document: &Document, by: By) -> Table {
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
    let mut table = Table::new();
    table.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    table.load_style(if std::io::stdout().is_terminal() {
        presets::UTF8_FULL
    } else {
        presets::ASCII_FULL
    });
    let name = match by {
        By::Provider => "provider",
        By::Target => "target",
        By::Model => "model",
        By::Scenario => "scenario",
    };
    table.set_header([
        name,
        "requests",
        "ok",
        "failed",
        "req/min",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "ttft p50 ms",
        "tokens in",
        "tokens out",
        "credits",
    ]);
    let ms = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.0}"));
    for (key, rows) in groups {
        let sum = |f: fn(&RowView) -> u64| rows.iter().map(|r| f(r)).sum::<u64>();
        let failed: u64 = rows.iter().flat_map(|r| r.counts.failures.values()).sum();
        let busiest = rows
            .iter()
            .max_by_key(|r| r.counts.requests)
            .expect("a group has rows");
        let rpm: f64 = rows.iter().map(|r| r.counts.requests_per_minute).sum();
        let credits: f64 = rows.iter().map(|r| r.counts.credits).sum();
        table.add_row([
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
    table
}
