//! The client side of a running server: `ccr stats` reads its stats, `ccr replay` resends
//! logged failures through it.

pub mod replay;

use std::time::Duration;

use crate::routing::sessions::SessionStatus;
use crate::secret::Secret;
use crate::stats::GroupBy;
use crate::stats::render::Document;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("`{url}` is not a URL of a ccr server: give one such as http://127.0.0.1:3456")]
    BadUrl { url: String },
    #[error("no ccr server at {url}: is ccr serve running?")]
    NoServer { url: String },
    #[error("ccr at {url} did not answer in time")]
    NoAnswer { url: String },
    #[error(
        "ccr at {url} refused the key: pass the server's `server.api_key` (the same config, or CCR_API_KEY)"
    )]
    Unauthorized { url: String },
    #[error("ccr at {url} answered {status}")]
    Status { url: String, status: u16 },
    #[error("ccr at {url} sent stats this version cannot read: {detail}")]
    Unreadable { url: String, detail: String },
}

/// How long an admin request may take: the server answers these from memory.
const ADMIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Checks that `base_url` is an http(s) URL with a host before anything is sent.
pub fn check_url(base_url: &str) -> Result<(), AdminError> {
    match url::Url::parse(base_url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        _ => Err(AdminError::BadUrl {
            url: base_url.to_string(),
        }),
    }
}

/// Reads `/api/stats` from a running server, grouped `by` one key when asked.
pub async fn fetch_stats(
    base_url: &str,
    key: Option<&Secret>,
    by: Option<GroupBy>,
) -> Result<Document, AdminError> {
    check_url(base_url)?;
    let mut url = format!("{}/api/stats", base_url.trim_end_matches('/'));
    if let Some(by) = by {
        url.push_str("?by=");
        url.push_str(by.as_str());
    }
    let client = crate::http_client::plain().map_err(|e| AdminError::Unreadable {
        url: url.clone(),
        detail: e.to_string(),
    })?;
    let mut request = client.get(&url).timeout(ADMIN_TIMEOUT);
    if let Some(key) = key {
        request = request.header("x-api-key", key.expose());
    }
    let response = request.send().await.map_err(|_| AdminError::NoServer {
        url: base_url.to_string(),
    })?;
    match response.status().as_u16() {
        200 => {}
        401 => {
            return Err(AdminError::Unauthorized {
                url: base_url.to_string(),
            });
        }
        status => {
            return Err(AdminError::Status {
                url: base_url.to_string(),
                status,
            });
        }
    }
    let bytes = response.bytes().await.map_err(|e| AdminError::Unreadable {
        url: url.clone(),
        detail: e.to_string(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| AdminError::Unreadable {
        url,
        detail: e.to_string(),
    })
}

/// Deadlines for asking this machine's own server a quick question.
#[derive(Debug, Clone, Copy)]
pub struct Quick {
    pub connect: Duration,
    pub total: Duration,
}

fn quick_client(base_url: &str, quick: Quick) -> Result<reqwest::Client, AdminError> {
    crate::http_client::local(quick.connect, quick.total).map_err(|e| AdminError::Unreadable {
        url: base_url.to_string(),
        detail: e.to_string(),
    })
}

/// What a failed send says about the server: not there, or not answering in time.
fn unreachable(base_url: &str, error: &reqwest::Error) -> AdminError {
    let url = base_url.to_string();
    match error.is_timeout() && !error.is_connect() {
        true => AdminError::NoAnswer { url },
        false => AdminError::NoServer { url },
    }
}

/// `GET /health` on the server at `base_url`: `Ok` when it answers 200.
pub async fn health(base_url: &str, quick: Quick) -> Result<(), AdminError> {
    check_url(base_url)?;
    let url = format!("{}/health", base_url.trim_end_matches('/'));
    let response = quick_client(base_url, quick)?
        .get(&url)
        .send()
        .await
        .map_err(|e| unreachable(base_url, &e))?;
    match response.status().as_u16() {
        200 => Ok(()),
        status => Err(AdminError::Status {
            url: base_url.to_string(),
            status,
        }),
    }
}

/// `GET /api/sessions/{id}`: the session, or `None` when the server has not seen it.
/// `id` must be a plain token (Claude Code's are UUIDs); it goes into the path unescaped.
pub async fn fetch_session(
    base_url: &str,
    key: Option<&Secret>,
    id: &str,
    quick: Quick,
) -> Result<Option<SessionStatus>, AdminError> {
    check_url(base_url)?;
    let plain = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !plain {
        return Ok(None);
    }
    let url = format!("{}/api/sessions/{id}", base_url.trim_end_matches('/'));
    let mut request = quick_client(base_url, quick)?.get(&url);
    if let Some(key) = key {
        request = request.header("x-api-key", key.expose());
    }
    let response = request
        .send()
        .await
        .map_err(|e| unreachable(base_url, &e))?;
    match response.status().as_u16() {
        200 => {}
        404 => return Ok(None),
        401 => {
            return Err(AdminError::Unauthorized {
                url: base_url.to_string(),
            });
        }
        status => {
            return Err(AdminError::Status {
                url: base_url.to_string(),
                status,
            });
        }
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| unreachable(base_url, &e))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| AdminError::Unreadable {
            url,
            detail: e.to_string(),
        })
}
