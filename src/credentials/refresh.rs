//! Refreshing an account's token through Kiro's social endpoint or AWS's OIDC (IdC)
//! endpoint. Every refresh — from `ccr serve` or `ccr token refresh` — holds a per-account
//! lock file in the data directory and re-reads the stored token first, so two processes
//! never spend the same rotating refresh token.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::json;

use super::{AuthMethod, CredentialsError, Index, Store, Token};
use crate::secret::Secret;

/// Where refreshes go; both overridable per provider (`refresh_url`, `idc_refresh_url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub social: String,
    /// `{region}` is replaced by the token's region.
    pub idc: String,
}

impl Endpoints {
    /// The real endpoints, or those the account's provider configures instead.
    pub fn for_provider(provider: Option<&crate::config::CodeWhispererConfig>) -> Endpoints {
        let mut endpoints = Endpoints::default();
        if let Some(provider) = provider {
            if let Some(url) = &provider.refresh_url {
                endpoints.social = url.0.to_string();
            }
            if let Some(url) = &provider.idc_refresh_url {
                endpoints.idc.clone_from(&url.0);
            }
        }
        endpoints
    }
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            social: "https://prod.us-east-1.auth.desktop.kiro.dev/refreshToken".into(),
            idc: "https://oidc.{region}.amazonaws.com/token".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Store(#[from] CredentialsError),
    #[error("account `{account}` cannot be refreshed: {why}")]
    Impossible { account: String, why: String },
    #[error(
        "the refresh token of account `{account}` was rejected ({status}): it is dead; sign in to Kiro again and run `ccr token import --name {account}`"
    )]
    Rejected { account: String, status: u16 },
    #[error("refreshing account `{account}` failed: {detail}")]
    Failed { account: String, detail: String },
    #[error("another refresh of account `{account}` holds {path} and did not finish in time")]
    Locked { account: String, path: PathBuf },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshAnswer {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    profile_arn: Option<String>,
}

/// How long to wait for another process's refresh of the same account.
const LOCK_PATIENCE: Duration = Duration::from_secs(30);

/// Refreshes `account` unless the stored token, re-read under the lock, is already newer
/// than `stale` (someone else refreshed it meanwhile). Returns the current token.
pub async fn refresh_account(
    client: &reqwest::Client,
    store: &std::sync::Arc<dyn Store>,
    data_dir: &Path,
    endpoints: &Endpoints,
    account: &str,
    stale: Option<&Token>,
) -> Result<Token, RefreshError> {
    // Without a token to replace, the one stored before waiting for the lock is it: if
    // another process refreshes while this one waits, its work is not done twice.
    let before = match stale {
        Some(_) => None,
        None => load_blocking(store, account).await?,
    };
    let stale = stale.or(before.as_ref());
    let _lock = AccountLock::acquire(data_dir, account).await?;
    let stored = {
        let store = store.clone();
        let account = account.to_string();
        tokio::task::spawn_blocking(move || store.load(&account))
            .await
            .map_err(|e| RefreshError::Failed {
                account: "?".into(),
                detail: e.to_string(),
            })??
    };
    let stored = stored.ok_or_else(|| CredentialsError::Missing {
        account: account.to_string(),
    })?;
    if let Some(stale) = stale
        && stored.access_token.expose() != stale.access_token.expose()
    {
        return Ok(stored);
    }
    let fresh = match call_endpoint(client, endpoints, account, &stored).await {
        Ok(fresh) => fresh,
        Err(error) => {
            if let RefreshError::Rejected { .. } = &error {
                mark(data_dir, account, |entry| {
                    entry.status = format!("dead: {error}")
                });
            }
            return Err(error);
        }
    };
    {
        let (store, account, token) = (store.clone(), account.to_string(), fresh.clone());
        tokio::task::spawn_blocking(move || store.save(&account, &token))
            .await
            .map_err(|e| RefreshError::Failed {
                account: "?".into(),
                detail: e.to_string(),
            })??;
    }
    let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    mark(data_dir, account, |entry| {
        entry.expires_at.clone_from(&fresh.expires_at);
        entry.last_refresh = Some(now.clone());
        entry.status = "ok".into();
    });
    Ok(fresh)
}

async fn load_blocking(
    store: &std::sync::Arc<dyn Store>,
    account: &str,
) -> Result<Option<Token>, RefreshError> {
    let (store, name) = (store.clone(), account.to_string());
    let loaded = tokio::task::spawn_blocking(move || store.load(&name))
        .await
        .map_err(|e| RefreshError::Failed {
            account: account.to_string(),
            detail: e.to_string(),
        })??;
    Ok(loaded)
}

/// Updates the account's index entry; the index is informational, so a failure is logged.
fn mark(data_dir: &Path, account: &str, update: impl FnOnce(&mut super::AccountEntry)) {
    let result = Index::load(data_dir).and_then(|mut index| {
        if let Some(entry) = index.accounts.get_mut(account) {
            update(entry);
            index.save(data_dir)?;
        }
        Ok(())
    });
    if let Err(error) = result {
        tracing::warn!(%error, "cannot update the account index");
    }
}

async fn call_endpoint(
    client: &reqwest::Client,
    endpoints: &Endpoints,
    account: &str,
    token: &Token,
) -> Result<Token, RefreshError> {
    let impossible = |why: &str| RefreshError::Impossible {
        account: account.to_string(),
        why: why.to_string(),
    };
    let refresh_token = token
        .refresh_token
        .as_ref()
        .ok_or_else(|| impossible("it has no refresh token: re-import it"))?;
    let (url, body) = match token.auth_method {
        AuthMethod::Social => (
            endpoints.social.clone(),
            json!({ "refreshToken": refresh_token.expose() }),
        ),
        AuthMethod::Idc => {
            let (Some(client_id), Some(client_secret)) = (&token.client_id, &token.client_secret)
            else {
                return Err(impossible(
                    "an IdC login needs its client id and secret: re-import it with Kiro's client file beside the token",
                ));
            };
            let region = token.region.as_deref().unwrap_or("us-east-1");
            let body = json!({
                "clientId": client_id,
                "clientSecret": client_secret.expose(),
                "grantType": "refresh_token",
                "refreshToken": refresh_token.expose(),
            });
            (endpoints.idc.replace("{region}", region), body)
        }
    };
    let failed = |detail: String| RefreshError::Failed {
        account: account.to_string(),
        detail,
    };
    let response = client
        .post(&url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| failed(format!("cannot reach {url}: {e}")))?;
    let status = response.status();
    if matches!(status.as_u16(), 400 | 401 | 403) {
        return Err(RefreshError::Rejected {
            account: account.to_string(),
            status: status.as_u16(),
        });
    }
    if !status.is_success() {
        return Err(failed(format!("{url} answered {status}")));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| failed(format!("{url} broke off its answer: {e}")))?;
    let answer: RefreshAnswer = serde_json::from_slice(&bytes)
        .map_err(|e| failed(format!("unexpected answer from {url}: {e}")))?;
    let expires_at = answer.expires_in.map(|secs| {
        humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(secs)).to_string()
    });
    Ok(Token {
        access_token: Secret::new(answer.access_token),
        // Rotating endpoints send a new refresh token; others keep the old one valid.
        refresh_token: answer
            .refresh_token
            .map(Secret::new)
            .or_else(|| token.refresh_token.clone()),
        expires_at,
        profile_arn: answer.profile_arn.or_else(|| token.profile_arn.clone()),
        ..token.clone()
    })
}

/// An exclusive advisory lock on `<data dir>/locks/<account>.lock`, released on drop.
struct AccountLock {
    _file: std::fs::File,
}

impl AccountLock {
    async fn acquire(data_dir: &Path, account: &str) -> Result<AccountLock, RefreshError> {
        let dir = data_dir.join("locks");
        let path = dir.join(format!("{account}.lock"));
        let unwritable = |e: std::io::Error| CredentialsError::Unwritable {
            account: account.to_string(),
            place: path.display().to_string(),
            detail: e.to_string(),
        };
        std::fs::create_dir_all(&dir).map_err(unwritable)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(unwritable)?;
        let deadline = tokio::time::Instant::now() + LOCK_PATIENCE;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(AccountLock { _file: file }),
                Err(std::fs::TryLockError::WouldBlock)
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(RefreshError::Locked {
                        account: account.to_string(),
                        path,
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(unwritable(e).into()),
            }
        }
    }
}

/// What happened to one account in `ccr token refresh`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub name: String,
    /// `refreshed`, `fresh` (not within the window), or `failed`.
    pub result: &'static str,
    pub expires_at: Option<String>,
    pub error: Option<String>,
}

/// Refreshes each account (or only those expiring within `window`), one after another,
/// each through its own endpoints.
pub async fn refresh_many(
    store: std::sync::Arc<dyn Store>,
    data_dir: &Path,
    accounts: &[(String, Endpoints)],
    window: Option<Duration>,
) -> Vec<Outcome> {
    let client = match crate::http_client::plain() {
        Ok(client) => client,
        Err(error) => {
            return accounts
                .iter()
                .map(|(name, _)| Outcome {
                    name: name.clone(),
                    result: "failed",
                    expires_at: None,
                    error: Some(error.to_string()),
                })
                .collect();
        }
    };
    let index = Index::load(data_dir).unwrap_or_default();
    let mut outcomes = Vec::new();
    for (name, endpoints) in accounts {
        let expires_at = index.accounts.get(name).and_then(|e| e.expires_at.clone());
        let seconds_left = expires_at
            .as_deref()
            .and_then(|at| super::accounts::seconds_until(at, SystemTime::now()));
        if let (Some(window), Some(left)) = (window, seconds_left)
            && left > window.as_secs() as i64
        {
            outcomes.push(Outcome {
                name: name.clone(),
                result: "fresh",
                expires_at,
                error: None,
            });
            continue;
        }
        let outcome = match refresh_account(&client, &store, data_dir, endpoints, name, None).await
        {
            Ok(token) => Outcome {
                name: name.clone(),
                result: "refreshed",
                expires_at: token.expires_at,
                error: None,
            },
            Err(error) => Outcome {
                name: name.clone(),
                result: "failed",
                expires_at,
                error: Some(error.to_string()),
            },
        };
        outcomes.push(outcome);
    }
    outcomes
}
