//! The client side of a running server: `ccr stats` reads its stats, `ccr replay` resends
//! logged failures through it.

pub mod replay;

use crate::secret::Secret;
use crate::stats::GroupBy;
use crate::stats::render::Document;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("`{url}` is not a URL of a ccr server: give one such as http://127.0.0.1:3456")]
    BadUrl { url: String },
    #[error("no ccr server at {url}: is ccr serve running?")]
    NoServer { url: String },
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
