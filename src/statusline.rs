//! `ccr statusline`: the line Claude Code shows under its prompt. Its `statusLine` setting
//! runs a command with a JSON description of the session on stdin (`session_id`, the
//! model, the workspace…); ccr asks its running server about that session in one quick
//! loopback request and answers in one line, whatever happens.

use std::time::Duration;

use serde::Deserialize;

use crate::admin::{self, AdminError, Quick};
use crate::routing::sessions::SessionStatus;
use crate::secret::Secret;

/// Claude Code refreshes the line often and waits for it: a quick answer or none.
pub const QUICK: Quick = Quick {
    connect: Duration::from_millis(300),
    total: Duration::from_millis(600),
};

/// The part of Claude Code's status JSON ccr reads; the rest is ignored.
#[derive(Debug, Default, Deserialize)]
struct ClaudeStatus {
    session_id: Option<String>,
}

/// The session id in Claude Code's status JSON, if the input is that JSON.
pub fn session_of(input: &[u8]) -> Option<String> {
    serde_json::from_slice::<ClaudeStatus>(input)
        .ok()?
        .session_id
        .filter(|id| !id.is_empty())
}

/// The line for `session` on the server at `base_url`. Never an error: what went wrong
/// is the line.
pub async fn line(base_url: &str, key: Option<&Secret>, session: Option<&str>) -> String {
    let seen = match session {
        Some(id) => admin::fetch_session(base_url, key, id, QUICK).await,
        None => admin::health(base_url, QUICK).await.map(|()| None),
    };
    match seen {
        Ok(Some(status)) => render(&status),
        Ok(None) => "ccr ▸ ready".to_string(),
        Err(AdminError::NoServer { .. }) => "ccr: not running".to_string(),
        Err(AdminError::NoAnswer { .. }) => "ccr: not answering".to_string(),
        Err(AdminError::Unauthorized { .. }) => {
            "ccr: key refused (server.api_key differs)".to_string()
        }
        Err(AdminError::Status { status, .. }) => format!("ccr: answered {status}"),
        Err(AdminError::BadUrl { .. } | AdminError::Unreadable { .. }) => {
            "ccr: unreadable answer".to_string()
        }
    }
}

/// `ccr ▸ deepseek/deepseek-chat · 12 req · 84k in / 3.1k out · 0 failed`. "in" counts
/// every prompt token the model read, cached or not.
pub fn render(status: &SessionStatus) -> String {
    let answered = match (&status.target, &status.model) {
        (Some(target), Some(model)) => format!("{target}/{model}"),
        (Some(target), None) => target.clone(),
        _ => "no answer yet".to_string(),
    };
    // A scenario is worth showing when routing chose it; an explicit target says itself.
    let scenario = match status.scenario.as_deref() {
        None | Some("default" | "explicit" | "-") => String::new(),
        Some(other) => format!(" ({other})"),
    };
    let t = &status.tokens;
    format!(
        "ccr ▸ {answered}{scenario} · {} req · {} in / {} out · {} failed",
        status.requests,
        count(t.input + t.cache_read + t.cache_write),
        count(t.output),
        status.failures
    )
}

/// `950`, `3.1k`, `84k`, `1.2M`.
fn count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..10_000 => format!("{:.1}k", n as f64 / 1e3),
        10_000..999_500 => format!("{}k", (n as f64 / 1e3).round() as u64),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::sessions::SessionTokens;

    fn status(scenario: &str, target: Option<&str>) -> SessionStatus {
        SessionStatus {
            session: "s".into(),
            scenario: Some(scenario.into()),
            target: target.map(str::to_string),
            provider: target.map(|_| "deepseek".to_string()),
            model: target.map(|_| "deepseek-chat".to_string()),
            requests: 12,
            failures: 0,
            cancelled: 1,
            tokens: SessionTokens {
                input: 4_000,
                output: 3_100,
                cache_read: 80_000,
                cache_write: 0,
            },
            last_seen: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn the_line_names_the_target_counts_and_tokens() {
        assert_eq!(
            render(&status("default", Some("deepseek"))),
            "ccr ▸ deepseek/deepseek-chat · 12 req · 84k in / 3.1k out · 0 failed"
        );
        assert_eq!(
            render(&status("thinking", Some("deepseek#2"))),
            "ccr ▸ deepseek#2/deepseek-chat (thinking) · 12 req · 84k in / 3.1k out · 0 failed"
        );
        assert!(render(&status("default", None)).starts_with("ccr ▸ no answer yet · "));
        assert_eq!(
            [0, 999, 1_000, 9_949, 10_000, 999_499, 1_250_000].map(count),
            ["0", "999", "1.0k", "9.9k", "10k", "999k", "1.2M"]
        );
    }

    #[test]
    fn the_session_comes_from_claude_codes_status_json() {
        let input = br#"{"hook_event_name":"Status","session_id":"6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab","transcript_path":"/tmp/t.jsonl","cwd":"/w","model":{"id":"claude-sonnet-4-5","display_name":"Sonnet 4.5"},"workspace":{"current_dir":"/w","project_dir":"/w"},"version":"2.1.0","output_style":{"name":"default"}}"#;
        assert_eq!(
            session_of(input).as_deref(),
            Some("6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab")
        );
        assert_eq!(session_of(b"not json"), None);
        assert_eq!(session_of(br#"{"session_id":""}"#), None);
        assert_eq!(session_of(b"{}"), None);
    }
}
