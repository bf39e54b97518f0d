//! `ccr replay`: resend logged failures through a running server.

use std::time::SystemTime;

use anyhow::Context;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::{AppContext, Failure};
use ccr::admin::replay::{self, Replayed, Selection};
use ccr::config;

#[derive(clap::Args)]
pub struct Args {
    /// Failures from this long ago on (e.g. 1h, 2d; default: all that are kept)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    since: Option<std::time::Duration>,
    /// Failures before this time (RFC 3339, e.g. 2026-12-02T18:00:00Z)
    #[arg(long, value_name = "TIME", value_parser = humantime::parse_rfc3339_weak)]
    until: Option<SystemTime>,
    /// Only failures whose last attempt went to this provider
    #[arg(long, value_name = "NAME", add = clap_complete::ArgValueCandidates::new(crate::generate::provider_names))]
    provider: Option<String>,
    /// Only failures of this scenario (default, background, thinking…)
    #[arg(long, value_name = "SCENARIO")]
    scenario: Option<String>,
    /// Only failures of this class (rate_limit, upstream_5xx, stream_cut…)
    #[arg(long, value_name = "CLASS")]
    class: Option<String>,
    /// Only these failure ids
    #[arg(long = "id", value_name = "ID")]
    ids: Vec<String>,
    /// At most this many
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Replays in flight at once
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Show what would be resent, send nothing
    #[arg(long)]
    dry_run: bool,
    /// The server (default: the address in the config)
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// One JSON object per replay on stdout
    #[arg(long)]
    json: bool,
}

pub fn run(context: &AppContext, args: Args) -> Result<(), Failure> {
    let settings = config::load_client(context.config_path(), context.config_explicit())
        .map_err(Failure::config)?;
    let url = args.url.clone().unwrap_or_else(|| settings.base_url());
    ccr::admin::check_url(&url).map_err(Failure::config)?;
    let data_dir = context
        .data_dir
        .clone()
        .or_else(|| config::data_dir(None))
        .context("no data directory: pass --data-dir")?;
    let selection = Selection {
        since: args.since.map(|d| {
            SystemTime::now()
                .checked_sub(d)
                .unwrap_or(SystemTime::UNIX_EPOCH)
        }),
        until: args.until,
        provider: args.provider.clone(),
        scenario: args.scenario.clone(),
        class: args.class.clone(),
        ids: args.ids.clone(),
        limit: args.limit,
    };
    let selected = replay::select(&data_dir, &selection).with_context(|| {
        format!(
            "cannot read the failure log in {}",
            data_dir.join("failures").display()
        )
    })?;
    let printer = &context.printer;
    if selected.unreadable_lines > 0 {
        printer.warn(&format!(
            "skipped {} line(s) of the failure log that cannot be read (corrupt, or a retry \
             whose body was in a corrupt line)",
            selected.unreadable_lines
        ));
    }
    if args.dry_run {
        for record in &selected.records {
            printer.out(&format!(
                "would replay {} ({}, {}, {})",
                record.id,
                record.time,
                record.client_got.class,
                record.model.as_deref().unwrap_or("-")
            ))?;
        }
        printer.done(&format!(
            "{} failure(s) selected, nothing sent",
            selected.records.len()
        ))?;
        return Ok(());
    }
    if selected.records.is_empty() {
        printer.done("no failures to replay")?;
        return Ok(());
    }
    let key = settings.server.client_key().cloned();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let bar = progress(
        printer.stderr_is_terminal() && !args.json,
        selected.records.len(),
    );
    let outcomes: Vec<Result<Replayed, ccr::admin::AdminError>> = runtime.block_on(async {
        let client = ccr::http_client::plain().map_err(anyhow::Error::from)?;
        let client = &client;
        let (url, key, bar) = (&url, key.as_ref(), &bar);
        let outcomes = futures_util::stream::iter(&selected.records)
            .map(|record| async move {
                let outcome = tokio::time::timeout(
                    replay::REPLAY_TIMEOUT,
                    replay::replay_one(client, url, key, record),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(ccr::admin::AdminError::Status {
                        url: url.clone(),
                        status: 504,
                    })
                });
                bar.inc(1);
                outcome
            })
            .buffered(usize::from(args.concurrency))
            .collect::<Vec<_>>()
            .await;
        Ok::<_, anyhow::Error>(outcomes)
    })?;
    bar.finish_and_clear();
    if let Some(Err(error)) = outcomes
        .iter()
        .find(|o| matches!(o, Err(ccr::admin::AdminError::NoServer { .. })))
    {
        return Err(Failure::from(anyhow::anyhow!(
            "{error}: start it with `ccr serve`"
        )));
    }
    let replayed: Vec<Replayed> = outcomes.into_iter().filter_map(Result::ok).collect();
    replay::append_outcomes(&data_dir, &replayed).context("cannot write the replay log")?;
    if args.json {
        for outcome in &replayed {
            printer.out(&serde_json::to_string(outcome).context("cannot write JSON")?)?;
        }
    } else {
        printer.out(&table(printer, &replayed).to_string())?;
    }
    let failed =
        replayed.iter().filter(|o| !o.ok).count() + (selected.records.len() - replayed.len());
    printer.done(&format!(
        "{} replayed, {} failed again",
        replayed.len() - replayed.iter().filter(|o| !o.ok).count(),
        failed
    ))?;
    if failed > 0 {
        return Err(Failure::quiet(1));
    }
    Ok(())
}

fn progress(visible: bool, total: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total as u64),
        if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} replayed {elapsed}") {
        bar.set_style(style);
    }
    bar
}

fn table(printer: &crate::printer::Printer, replayed: &[Replayed]) -> comfy_table::Table {
    let columns = [
        ("id", 9),
        ("when", 5),
        ("original error", 7),
        ("replay", 8),
        ("provider", 6),
        ("ms", 4),
    ];
    let rows: Vec<Vec<String>> = replayed
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.original_time
                    .get(..19)
                    .unwrap_or(&r.original_time)
                    .replace('T', " "),
                r.original_class.clone(),
                match (&r.error, r.ok) {
                    (_, true) => "ok".to_string(),
                    (Some(error), false) => {
                        format!("failed: {}", error.chars().take(60).collect::<String>())
                    }
                    (None, false) => "failed".to_string(),
                },
                r.provider.clone().unwrap_or_else(|| "-".into()),
                r.latency_ms.to_string(),
            ]
        })
        .collect();
    printer.fitted_table(&columns, &rows)
}
