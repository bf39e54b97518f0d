//! `ccr replay`: resend logged failures through a running server, so that today's routing
//! and fixes apply. The failure log is only read; each outcome is appended to
//! `<data dir>/replays/YYYY-MM-DD.jsonl`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::AdminError;
use crate::failures::FailureRecord;
use crate::failures::reader;
use crate::secret::Secret;

/// Which records to resend.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    pub provider: Option<String>,
    pub scenario: Option<String>,
    pub class: Option<String>,
    pub ids: Vec<String>,
    pub limit: Option<usize>,
}

/// The records selected, and how many lines could not be read.
pub struct Selected {
    pub records: Vec<FailureRecord>,
    pub unreadable_lines: usize,
}

/// Reads the failure log under `data_dir` and keeps what `selection` asks for.
pub fn select(data_dir: &Path, selection: &Selection) -> std::io::Result<Selected> {
    let since = selection.since.unwrap_or(SystemTime::UNIX_EPOCH);
    let read = reader::read(&data_dir.join("failures"), since, selection.until)?;
    let wanted = |r: &FailureRecord| {
        let last = r.attempts.last();
        selection
            .provider
            .as_ref()
            .is_none_or(|p| last.is_some_and(|a| &a.provider == p))
            && selection
                .scenario
                .as_ref()
                .is_none_or(|s| r.scenario.as_ref() == Some(s))
            && selection
                .class
                .as_ref()
                .is_none_or(|c| &r.client_got.class == c)
            && (selection.ids.is_empty() || selection.ids.contains(&r.id))
    };
    let mut records: Vec<FailureRecord> = read.records.into_iter().filter(wanted).collect();
    if let Some(limit) = selection.limit {
        records.truncate(limit);
    }
    Ok(Selected {
        records,
        unreadable_lines: read.skipped,
    })
}

/// What resending one record gave.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Replayed {
    /// The failure record resent.
    pub id: String,
    /// When the original request arrived.
    pub original_time: String,
    pub original_class: String,
    /// When it was resent.
    pub time: String,
    pub ok: bool,
    pub status: Option<u16>,
    /// The provider that answered (`x-ccr-provider`).
    pub provider: Option<String>,
    pub latency_ms: u64,
    /// Why it failed again, in one line.
    pub error: Option<String>,
    /// The `x-ccr-request-id` of the replay.
    pub request_id: Option<String>,
}

/// Resends one record to the server at `base_url`; a streamed original is read to its end.
pub async fn replay_one(
    client: &reqwest::Client,
    base_url: &str,
    key: Option<&Secret>,
    record: &FailureRecord,
) -> Result<Replayed, AdminError> {
    let url = format!("{}/v1/messages", base_url.trim_end_matches('/'));
    let body = serde_json::to_vec(&record.request).expect("a JSON value serializes");
    let mut request = client
        .post(&url)
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("x-ccr-replay-of", &record.id)
        .body(body);
    if let Some(key) = key {
        request = request.header("x-api-key", key.expose());
    }
    let started = Instant::now();
    let response = request.send().await.map_err(|_| AdminError::NoServer {
        url: base_url.to_string(),
    })?;
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (provider, request_id) = (header("x-ccr-provider"), header("x-ccr-request-id"));
    let error = read_outcome(response, status).await;
    Ok(Replayed {
        id: record.id.clone(),
        original_time: record.time.clone(),
        original_class: record.client_got.class.clone(),
        time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        ok: error.is_none(),
        status: Some(status),
        provider,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        error,
        request_id,
    })
}

/// Reads the answer to its end; `None` when it was a complete success.
async fn read_outcome(response: reqwest::Response, status: u16) -> Option<String> {
    let mut stream = response.bytes_stream();
    let mut tail: Vec<u8> = Vec::new();
    let mut saw_error_event = false;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return Some("the answer was cut off".into());
        };
        // Only the last few KB matter: an `error` event ends a failed stream.
        tail.extend_from_slice(&chunk);
        saw_error_event |= memchr::memmem::find(&tail, b"event: error").is_some();
        if tail.len() > 16 * 1024 {
            tail.drain(..tail.len() - 8 * 1024);
        }
    }
    let text = String::from_utf8_lossy(&tail);
    let message = || {
        let start = text.find("\"message\":").map_or(0, |i| i + 10);
        text[start..].chars().take(200).collect::<String>()
    };
    if !(200..300).contains(&status) {
        return Some(format!("{status}: {}", message()));
    }
    saw_error_event.then(|| format!("error event: {}", message()))
}

/// Appends outcomes to `<data dir>/replays/<UTC day>.jsonl` (0700 directory, 0600 files).
pub fn append_outcomes(data_dir: &Path, outcomes: &[Replayed]) -> std::io::Result<PathBuf> {
    use std::io::Write;
    let dir = data_dir.join("replays");
    crate::failures::create_private_dir(&dir)?;
    let day = crate::failures::utc_day(SystemTime::now());
    let path = dir.join(format!("{day}.jsonl"));
    let mut lines = Vec::new();
    for outcome in outcomes {
        serde_json::to_writer(&mut lines, outcome).expect("an outcome serializes");
        lines.push(b'\n');
    }
    let mut file = crate::failures::open_private_append(&path)?;
    file.write_all(&lines)?;
    file.sync_all()?;
    Ok(path)
}

/// How long a replayed request may take before it counts as failed.
pub const REPLAY_TIMEOUT: Duration = Duration::from_secs(600);
