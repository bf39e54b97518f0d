//! Refreshing an account's token through Kiro's social endpoint or AWS's OIDC (IdC)
//! endpoint. Every refresh — from `ccr serve` or `ccr token refresh` — holds a per-account
//! lock file in the data directory and re-reads the stored token first, so two processes
//! never spend the same rotating refresh token.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::json;

use super::{AuthMethod, CredentialsError, Index, Store, Token};
use crate::secret::Secret;

/// The longest one refresh call may take, connecting and reading the answer included: a
/// hanging endpoint must not hold the account's requests, or its lock file, for long.
pub const REFRESH_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest token life an endpoint's `expiresIn` is believed for; Kiro's last an hour.
const MAX_EXPIRES_IN: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long to wait for another process's refresh of the same account.
const LOCK_PATIENCE: Duration = Duration::from_secs(30);
/// Pauses before saving a rotated token again: a keyring that is busy for a moment should
/// not cost the only valid refresh token.
const SAVE_RETRIES: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(500)];

/// Where refreshes go (both overridable per provider: `refresh_url`, `idc_refresh_url`)
/// and how long a refresh call may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub social: String,
    /// `{region}` is replaced by the token's region.
    pub idc: String,
    /// [`REFRESH_TIMEOUT`], or the provider's `timeouts.first_byte` when shorter.
    pub timeout: Duration,
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
            // A refresh is a call on the provider's behalf: it waits no longer for an
            // answer than the provider's own requests do.
            endpoints.timeout = REFRESH_TIMEOUT.min(provider.timeouts.first_byte.0);
        }
        endpoints
    }
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            social: "https://prod.us-east-1.auth.desktop.kiro.dev/refreshToken".into(),
            idc: "https://oidc.{region}.amazonaws.com/token".into(),
            timeout: REFRESH_TIMEOUT,
        }
    }
}

/// Every message names the account; none holds a token, a lock file's path or a URL's
/// query, since `ccr serve` passes them on to API clients. [`RefreshError::for_cli`] adds
/// what only the machine's owner should see.
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
    #[error(
        "refreshing account `{account}` timed out: the refresh endpoint did not answer within {}",
        humantime::format_duration(*after)
    )]
    TimedOut { account: String, after: Duration },
    #[error(
        "another refresh of account `{account}` did not finish within {} s",
        LOCK_PATIENCE.as_secs()
    )]
    Locked { account: String, path: PathBuf },
}

impl RefreshError {
    /// The message for `ccr token`, which may name the lock file.
    pub fn for_cli(&self) -> String {
        match self {
            RefreshError::Locked { path, .. } => format!("{self} (it holds {})", path.display()),
            other => other.to_string(),
        }
    }
}

/// What a refresh left the account with.
#[derive(Debug)]
pub enum Refreshed {
    /// The store already held a newer token than the caller's: someone else refreshed.
    Stored(Token),
    /// Refreshed and written to the store.
    Saved(Token),
    /// Refreshed, but the store refused the rotated token: the old refresh token may be
    /// spent, so the caller must keep `token` and save it later over `replaced`, the token
    /// the store still holds.
    Unsaved {
        token: Token,
        replaced: Box<Token>,
        error: CredentialsError,
    },
}

impl Refreshed {
    pub fn token(&self) -> &Token {
        match self {
            Refreshed::Stored(token) | Refreshed::Saved(token) => token,
            Refreshed::Unsaved { token, .. } => token,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshAnswer {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default, deserialize_with = "saturating_seconds")]
    expires_in: Option<Duration>,
    #[serde(default)]
    profile_arn: Option<String>,
}

/// `expiresIn` as any JSON number, clamped to 0..=[`MAX_EXPIRES_IN`]: an absurd value from
/// the endpoint must neither fail the refresh nor overflow the expiry's arithmetic.
fn saturating_seconds<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let number: Option<serde_json::Number> = Option::deserialize(deserializer)?;
    Ok(number.map(|n| {
        let seconds = match (n.as_u64(), n.as_f64()) {
            (Some(whole), _) => whole.min(MAX_EXPIRES_IN.as_secs()),
            // Negative or fractional; `as` saturates (NaN cannot come from JSON).
            (None, Some(float)) => (float.max(0.0) as u64).min(MAX_EXPIRES_IN.as_secs()),
            (None, None) => 0,
        };
        Duration::from_secs(seconds)
    }))
}

/// What one refresh works on; the functions below share it.
struct Job<'a> {
    client: &'a reqwest::Client,
    store: &'a Arc<dyn Store>,
    data_dir: &'a Path,
    endpoints: &'a Endpoints,
    account: &'a str,
}

/// Refreshes `account` unless the stored token, re-read under the lock, is already newer
/// than `stale` (someone else refreshed it meanwhile).
pub async fn refresh_account(
    client: &reqwest::Client,
    store: &Arc<dyn Store>,
    data_dir: &Path,
    endpoints: &Endpoints,
    account: &str,
    stale: Option<&Token>,
) -> Result<Refreshed, RefreshError> {
    let job = Job {
        client,
        store,
        data_dir,
        endpoints,
        account,
    };
    // Without a token to replace, the one stored before waiting for the lock is it: if
    // another process refreshes while this one waits, its work is not done twice.
    let before = match stale {
        Some(_) => None,
        None => load_blocking(store, account).await?,
    };
    job.refresh(stale.or(before.as_ref()), None).await
}

/// Refreshes from `held`, a rotated token the store refused earlier, unless the store no
/// longer holds `stored` (the token `held` replaced): then someone else wrote a newer one.
pub async fn refresh_unsaved(
    client: &reqwest::Client,
    store: &Arc<dyn Store>,
    data_dir: &Path,
    endpoints: &Endpoints,
    account: &str,
    held: &Token,
    stored: &Token,
) -> Result<Refreshed, RefreshError> {
    let job = Job {
        client,
        store,
        data_dir,
        endpoints,
        account,
    };
    job.refresh(Some(stored), Some(held)).await
}

impl Job<'_> {
    /// Under the account's lock: unless the store holds something else than `expected`,
    /// refreshes `held` (else the stored token) and saves the result.
    async fn refresh(
        &self,
        expected: Option<&Token>,
        held: Option<&Token>,
    ) -> Result<Refreshed, RefreshError> {
        let account = self.account;
        let _lock = AccountLock::acquire(self.data_dir, account).await?;
        let stored =
            load_blocking(self.store, account)
                .await?
                .ok_or_else(|| CredentialsError::Missing {
                    account: account.to_string(),
                })?;
        if let Some(expected) = expected
            && stored.access_token.expose() != expected.access_token.expose()
        {
            return Ok(Refreshed::Stored(stored));
        }
        let from = held.unwrap_or(&stored);
        let fresh = match call_endpoint(self.client, self.endpoints, account, from).await {
            Ok(fresh) => fresh,
            Err(error) => {
                if let RefreshError::Rejected { .. } = &error {
                    let status = format!("dead: {error}");
                    mark(self.data_dir, account, move |entry| entry.status = status).await;
                }
                return Err(error);
            }
        };
        match save_with_retries(self.store, account, &fresh).await {
            Ok(()) => {
                mark_refreshed(self.data_dir, account, &fresh).await;
                Ok(Refreshed::Saved(fresh))
            }
            Err(error) => Ok(Refreshed::Unsaved {
                token: fresh,
                replaced: Box::new(stored),
                error,
            }),
        }
    }
}

/// Saves `fresh`, a rotated token the store refused before, unless the store no longer
/// holds `replaced`: then someone else wrote a newer token (`Ok(false)`).
pub async fn save_rotated(
    store: &Arc<dyn Store>,
    data_dir: &Path,
    account: &str,
    replaced: &Token,
    fresh: &Token,
) -> Result<bool, RefreshError> {
    let _lock = AccountLock::acquire(data_dir, account).await?;
    let stored = load_blocking(store, account).await?;
    let same = |a: &Token, b: &Token| a.access_token.expose() == b.access_token.expose();
    match stored {
        Some(stored) if same(&stored, replaced) => {
            save_blocking(store, account, fresh).await?;
            mark_refreshed(data_dir, account, fresh).await;
            Ok(true)
        }
        Some(stored) if same(&stored, fresh) => Ok(true),
        // Removed or replaced meanwhile (`ccr token remove`, a new import).
        _ => Ok(false),
    }
}

async fn save_with_retries(
    store: &Arc<dyn Store>,
    account: &str,
    token: &Token,
) -> Result<(), CredentialsError> {
    let mut pauses = SAVE_RETRIES.iter();
    loop {
        match save_blocking(store, account, token).await {
            Ok(()) => return Ok(()),
            Err(error) => match pauses.next() {
                Some(pause) => {
                    tracing::warn!(%error, account, "cannot save the rotated token; trying again");
                    tokio::time::sleep(*pause).await;
                }
                None => return Err(error),
            },
        }
    }
}

async fn save_blocking(
    store: &Arc<dyn Store>,
    account: &str,
    token: &Token,
) -> Result<(), CredentialsError> {
    let (store, name, token) = (store.clone(), account.to_string(), token.clone());
    tokio::task::spawn_blocking(move || store.save(&name, &token))
        .await
        .map_err(|e| CredentialsError::Unwritable {
            account: account.to_string(),
            place: "the store".into(),
            detail: e.to_string(),
        })?
}

async fn load_blocking(
    store: &Arc<dyn Store>,
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

async fn mark_refreshed(data_dir: &Path, account: &str, fresh: &Token) {
    let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let expires_at = fresh.expires_at.clone();
    mark(data_dir, account, move |entry| {
        entry.expires_at = expires_at;
        entry.last_refresh = Some(now);
        entry.status = "ok".into();
    })
    .await;
}

/// Updates the account's index entry, off the async threads (the index lock may be held
/// by another process for a moment). The index is informational: a failure is logged.
async fn mark(
    data_dir: &Path,
    account: &str,
    update: impl FnOnce(&mut super::AccountEntry) + Send + 'static,
) {
    let (dir, name) = (data_dir.to_path_buf(), account.to_string());
    let updated = tokio::task::spawn_blocking(move || {
        Index::update(&dir, |index| match index.accounts.get_mut(&name) {
            Some(entry) => {
                update(entry);
                true
            }
            None => false,
        })
    })
    .await;
    match updated {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::warn!(%error, account, "cannot update the account index"),
        Err(error) => tracing::warn!(%error, account, "updating the account index failed"),
    }
}

/// A URL as messages may show it: no user info, query or fragment (they may hold secrets).
fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut url) => {
            url.set_query(None);
            url.set_fragment(None);
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        Err(_) => "the refresh endpoint".into(),
    }
}

async fn call_endpoint(
    client: &reqwest::Client,
    endpoints: &Endpoints,
    account: &str,
    token: &Token,
) -> Result<Token, RefreshError> {
    let (url, body) = request_for(endpoints, account, token)?;
    let answer = tokio::time::timeout(endpoints.timeout, post(client, account, &url, body))
        .await
        .map_err(|_| RefreshError::TimedOut {
            account: account.to_string(),
            after: endpoints.timeout,
        })??;
    Ok(rotated(token, answer, SystemTime::now()))
}

/// The URL and JSON body that refresh `token`, by its auth method.
fn request_for(
    endpoints: &Endpoints,
    account: &str,
    token: &Token,
) -> Result<(String, serde_json::Value), RefreshError> {
    let impossible = |why: &str| RefreshError::Impossible {
        account: account.to_string(),
        why: why.to_string(),
    };
    let refresh_token = token
        .refresh_token
        .as_ref()
        .ok_or_else(|| impossible("it has no refresh token: re-import it"))?;
    match token.auth_method {
        AuthMethod::Social => Ok((
            endpoints.social.clone(),
            json!({ "refreshToken": refresh_token.expose() }),
        )),
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
            Ok((endpoints.idc.replace("{region}", region), body))
        }
    }
}

/// Sends the refresh request and reads its answer; the caller bounds the time.
async fn post(
    client: &reqwest::Client,
    account: &str,
    url: &str,
    body: serde_json::Value,
) -> Result<RefreshAnswer, RefreshError> {
    let failed = |detail: String| RefreshError::Failed {
        account: account.to_string(),
        detail,
    };
    let response = client
        .post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| failed(format!("cannot reach {}: {}", shown(url), e.without_url())))?;
    let status = response.status();
    if matches!(status.as_u16(), 400 | 401 | 403) {
        return Err(RefreshError::Rejected {
            account: account.to_string(),
            status: status.as_u16(),
        });
    }
    if !status.is_success() {
        return Err(failed(format!("{} answered {status}", shown(url))));
    }
    let bytes = response.bytes().await.map_err(|e| {
        failed(format!(
            "{} broke off its answer: {}",
            shown(url),
            e.without_url()
        ))
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| failed(format!("unexpected answer from {}: {e}", shown(url))))
}

/// The token an endpoint's answer makes of `token`.
fn rotated(token: &Token, answer: RefreshAnswer, now: SystemTime) -> Token {
    let expires_at = answer
        .expires_in
        .map(|life| humantime::format_rfc3339_seconds(now + life).to_string());
    Token {
        access_token: Secret::new(answer.access_token),
        // Rotating endpoints send a new refresh token; others keep the old one valid.
        refresh_token: answer
            .refresh_token
            .map(Secret::new)
            .or_else(|| token.refresh_token.clone()),
        expires_at,
        profile_arn: answer.profile_arn.or_else(|| token.profile_arn.clone()),
        ..token.clone()
    }
}

/// An exclusive advisory lock on `<data dir>/locks/<account>.lock`, released on drop.
struct AccountLock {
    _file: std::fs::File,
}

impl AccountLock {
    /// Waits at most [`LOCK_PATIENCE`], polling: the wait is async, a held lock never
    /// blocks a worker thread.
    async fn acquire(data_dir: &Path, account: &str) -> Result<AccountLock, RefreshError> {
        let path = data_dir.join("locks").join(format!("{account}.lock"));
        let unwritable = |e: std::io::Error| CredentialsError::Unwritable {
            account: account.to_string(),
            place: path.display().to_string(),
            detail: e.to_string(),
        };
        let file = super::atomic::open_lock_file(&path).map_err(unwritable)?;
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
    store: Arc<dyn Store>,
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
        let refreshed = refresh_account(&client, &store, data_dir, endpoints, name, None).await;
        outcomes.push(outcome(name, refreshed, expires_at));
    }
    outcomes
}

fn outcome(name: &str, refreshed: Result<Refreshed, RefreshError>, was: Option<String>) -> Outcome {
    let failed = |error: String| Outcome {
        name: name.to_string(),
        result: "failed",
        expires_at: was.clone(),
        error: Some(error),
    };
    match refreshed {
        Ok(Refreshed::Stored(token) | Refreshed::Saved(token)) => Outcome {
            name: name.to_string(),
            result: "refreshed",
            expires_at: token.expires_at,
            error: None,
        },
        // The process ends with the only copy of the rotated token: say what it costs.
        Ok(Refreshed::Unsaved { error, .. }) => failed(format!(
            "account `{name}` was refreshed but the new token could not be saved ({error}); its old refresh token may be spent: sign in to Kiro again and run `ccr token import --name {name}`"
        )),
        Err(error) => failed(error.for_cli()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expires_in(value: &str) -> Option<Duration> {
        let text = format!(r#"{{"accessToken":"a","expiresIn":{value}}}"#);
        serde_json::from_str::<RefreshAnswer>(&text)
            .unwrap()
            .expires_in
    }

    #[test]
    fn expires_in_saturates_and_is_capped() {
        let (zero, max) = (Some(Duration::ZERO), Some(MAX_EXPIRES_IN));
        assert_eq!(expires_in("3600"), Some(Duration::from_secs(3600)));
        assert_eq!(expires_in("3600.9"), Some(Duration::from_secs(3600)));
        assert_eq!(expires_in("null"), None);
        for negative in ["-5", "-9223372036854775808", "-1e300"] {
            assert_eq!(expires_in(negative), zero, "{negative}");
        }
        for huge in ["18446744073709551615", "99999999999999999999999", "1e300"] {
            assert_eq!(expires_in(huge), max, "{huge}");
        }
        let token = Token::from_json(r#"{"accessToken":"old","refreshToken":"r"}"#).unwrap();
        let answer = serde_json::from_str(r#"{"accessToken":"new","expiresIn":1e300}"#).unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let fresh = rotated(&token, answer, now);
        assert_eq!(fresh.expires_at.as_deref(), Some("2001-10-09T01:46:40Z"));
        assert_eq!(
            fresh.refresh_token.unwrap().expose(),
            "r",
            "kept when not rotated"
        );
    }

    #[test]
    fn messages_show_no_query_user_info_or_lock_file() {
        assert_eq!(
            shown("https://user:pw@oidc.example/token?code=secret#x"),
            "https://oidc.example/token"
        );
        assert_eq!(shown("not a url ?secret"), "the refresh endpoint");
        let locked = RefreshError::Locked {
            account: "work".into(),
            path: PathBuf::from("data/locks/work.lock"),
        };
        assert!(!locked.to_string().contains("work.lock"), "{locked}");
        assert!(locked.to_string().contains("`work`"), "{locked}");
        assert!(locked.for_cli().contains("work.lock"));
    }
}
