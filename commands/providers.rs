//! `ccr providers test`: probe each configured provider through its real code.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::{AppContext, Failure};
use ccr::config::{self, Overrides};
use ccr::probe::{self, Planned, ProbeResult, Verdict};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Send a text, a streaming and a tool-call probe to each provider's targets
    Test(TestArgs),
}

#[derive(clap::Args)]
struct TestArgs {
    /// Only these providers (default: every configured one)
    #[arg(value_name = "NAME", add = clap_complete::ArgValueCandidates::new(crate::generate::provider_names))]
    names: Vec<String>,
    /// Probe this upstream model instead of the models the routes send each provider
    #[arg(long, value_name = "MODEL")]
    model: Option<String>,
    /// One JSON document with every probe on stdout
    #[arg(long)]
    json: bool,
    /// The longest one probe may take, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
}

pub fn run(context: &AppContext, args: Args) -> Result<(), Failure> {
    match args.command {
        Command::Test(args) => test(context, args),
    }
}

fn test(context: &AppContext, args: TestArgs) -> Result<(), Failure> {
    let overrides = Overrides {
        data_dir: context.data_dir.clone(),
        ..Overrides::default()
    };
    let loaded = config::load(context.config_path(), context.config_explicit(), &overrides)
        .map_err(Failure::config)?;
    let printer = &context.printer;
    for warning in &loaded.warnings {
        printer.error(warning);
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let timeout = Duration::from_secs(args.timeout);
    let results = runtime.block_on(async {
        let client = ccr::http_client::plain().map_err(anyhow::Error::from)?;
        let prepared = probe::prepare(&loaded.config, &args.names, args.model.as_deref(), client)
            .await
            .map_err(|error| match error {
                probe::ProbeError::UnknownProvider { .. } | probe::ProbeError::NoProviders => {
                    Failure::config(error)
                }
                other => Failure::from(anyhow::Error::from(other)),
            })?;
        let spinners = Spinners::new(
            printer.stderr_is_terminal() && !args.json,
            &prepared.targets,
        );
        let tick = |result: &ProbeResult| spinners.tick(result);
        let results = futures_util::future::join_all(
            prepared
                .targets
                .iter()
                .map(|planned| probe::run(planned, timeout, &tick)),
        )
        .await;
        spinners.finish();
        prepared.finish().await;
        Ok::<_, Failure>(results.into_iter().flatten().collect::<Vec<ProbeResult>>())
    })?;
    let failed = results
        .iter()
        .filter(|r| r.verdict == Verdict::Failed)
        .count();
    let passed = results
        .iter()
        .filter(|r| r.verdict == Verdict::Passed)
        .count();
    if args.json {
        let document = serde_json::json!({
            "passed": passed,
            "failed": failed,
            "skipped": results.len() - passed - failed,
            "probes": results,
        });
        printer.out(&serde_json::to_string_pretty(&document).context("cannot write JSON")?)?;
    } else {
        printer.out(&table(printer, &results).to_string())?;
        printer.done(&format!("{passed} passed, {failed} failed"))?;
    }
    if failed > 0 || passed == 0 {
        if passed == 0 && failed == 0 {
            printer.error("no probe ran: every target was skipped (see the table for why)");
        }
        return Err(Failure::quiet(1));
    }
    Ok(())
}

/// One spinner per provider on a terminal, saying how many of its probes are done.
struct Spinners {
    /// Kept so the bars draw together.
    _multi: MultiProgress,
    bars: BTreeMap<String, (ProgressBar, usize)>,
}

impl Spinners {
    fn new(visible: bool, targets: &[Planned]) -> Spinners {
        let multi = MultiProgress::with_draw_target(if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let mut expected: BTreeMap<String, usize> = BTreeMap::new();
        for target in targets {
            *expected.entry(target.provider.clone()).or_default() += target.results();
        }
        let style = ProgressStyle::with_template("{spinner} {prefix:.bold} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bars = expected
            .into_iter()
            .map(|(provider, total)| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(provider.clone());
                bar.set_message(format!("0/{total} probes"));
                bar.enable_steady_tick(Duration::from_millis(100));
                (provider, (bar, total))
            })
            .collect();
        Spinners {
            _multi: multi,
            bars,
        }
    }

    fn tick(&self, result: &ProbeResult) {
        if let Some((bar, total)) = self.bars.get(&result.provider) {
            bar.inc(1);
            let failed = match result.verdict {
                Verdict::Failed => format!(" ({} {} failed)", result.target, probe_name(result)),
                _ => String::new(),
            };
            bar.set_message(format!("{}/{total} probes{failed}", bar.position()));
        }
    }

    fn finish(&self) {
        for (bar, _) in self.bars.values() {
            bar.finish_and_clear();
        }
    }
}

fn probe_name(result: &ProbeResult) -> &'static str {
    result.probe.map_or("-", probe::Probe::as_str)
}

fn table(printer: &crate::printer::Printer, results: &[ProbeResult]) -> comfy_table::Table {
    let mut table = printer.table();
    if !printer.stdout_is_terminal() {
        // Piped, one line per probe: what `grep` and `awk` expect.
        table.set_content_arrangement(comfy_table::ContentArrangement::Disabled);
    }
    table.set_header([
        "provider", "target", "model", "probe", "result", "ms", "ttft ms", "error",
    ]);
    let millis = |ms: Option<u64>| ms.map_or_else(|| "-".to_string(), |ms| ms.to_string());
    for r in results {
        table.add_row([
            r.provider.clone(),
            r.target.clone(),
            r.model.clone().unwrap_or_else(|| "-".into()),
            probe_name(r).to_string(),
            match r.verdict {
                Verdict::Passed => "ok",
                Verdict::Failed => "failed",
                Verdict::Skipped => "skipped",
            }
            .to_string(),
            millis(r.latency_ms),
            millis(r.ttft_ms),
            match (&r.class, &r.error) {
                (Some(class), Some(error)) => format!("{class}: {error}"),
                (None, Some(error)) => error.clone(),
                _ => String::new(),
            },
        ]);
    }
    table
}
