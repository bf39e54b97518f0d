//! The token manager in `ccr serve`: each account's token in an atomically swapped value,
//! read without a lock. A refresh of one account (ahead of expiry in the background, or
//! after the upstream rejected the token) happens at most once at a time for that account;
//! requests that need it wait for that single refresh, requests on other accounts never do.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use futures_util::future::BoxFuture;

use super::refresh::{self, Endpoints, RefreshError};
use super::{CredentialsError, Store, Token, TokenSource};

/// Refreshed this long before expiry.
const REFRESH_AHEAD: Duration = Duration::from_secs(600);
/// How often the background task looks at the expiries.
const CHECK_EVERY: Duration = Duration::from_secs(30);

/// Who refreshes tokens: `ccr serve` itself, or an external `ccr token refresh` (cron, a
/// Kubernetes CronJob) with serve only re-reading the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    Serve,
    External,
}

struct Slot {
    current: ArcSwapOption<Token>,
    /// Held while this account refreshes: the single flight.
    refreshing: tokio::sync::Mutex<()>,
    endpoints: Endpoints,
    /// Why the account cannot be used, once its refresh token was rejected.
    dead: ArcSwapOption<String>,
}

pub struct TokenManager {
    slots: HashMap<String, Slot>,
    store: Arc<dyn Store>,
    data_dir: PathBuf,
    client: reqwest::Client,
    refresher: Refresher,
}

impl TokenManager {
    /// Reads every account's token from the store once. With `Refresher::Serve` and a
    /// runtime at hand, a background task refreshes tokens ahead of expiry for as long as
    /// the manager lives.
    pub fn start(
        store: Arc<dyn Store>,
        data_dir: PathBuf,
        accounts: Vec<(String, Endpoints)>,
        refresher: Refresher,
        client: reqwest::Client,
    ) -> Arc<TokenManager> {
        let slots = accounts
            .into_iter()
            .map(|(account, endpoints)| {
                let token = match store.load(&account) {
                    Ok(token) => token.map(Arc::new),
                    Err(error) => {
                        tracing::error!(%error, account, "cannot read the account's token");
                        None
                    }
                };
                let slot = Slot {
                    current: ArcSwapOption::new(token),
                    refreshing: tokio::sync::Mutex::new(()),
                    endpoints,
                    dead: ArcSwapOption::empty(),
                };
                (account, slot)
            })
            .collect();
        let manager = Arc::new(TokenManager {
            slots,
            store,
            data_dir,
            client,
            refresher,
        });
        if refresher == Refresher::Serve
            && !manager.slots.is_empty()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(refresh_ahead(Arc::downgrade(&manager)));
        }
        manager
    }

    fn slot(&self, account: &str) -> Result<&Slot, CredentialsError> {
        self.slots
            .get(account)
            .ok_or_else(|| CredentialsError::Missing {
                account: account.to_string(),
            })
    }

    /// Replaces `stale` with a fresh token, once: whoever comes second finds the swap done.
    async fn renew(
        &self,
        account: &str,
        stale: Option<Arc<Token>>,
    ) -> Result<Arc<Token>, CredentialsError> {
        let slot = self.slot(account)?;
        let _single_flight = slot.refreshing.lock().await;
        let current = slot.current.load_full();
        if let Some(current) = &current
            && stale.as_ref().is_none_or(|s| !Arc::ptr_eq(s, current))
            && !expires_within(current, Duration::ZERO)
        {
            return Ok(current.clone());
        }
        if let Some(why) = slot.dead.load_full() {
            return Err(dead(account, &why));
        }
        let fresh = match self.refresher {
            Refresher::Serve => {
                let stale_token = current.as_deref();
                match refresh::refresh_account(
                    &self.client,
                    &self.store,
                    &self.data_dir,
                    &slot.endpoints,
                    account,
                    stale_token,
                )
                .await
                {
                    Ok(token) => token,
                    Err(error) => {
                        if let RefreshError::Rejected { .. } = error {
                            tracing::error!(account, "{error}; the account leaves the rotation");
                            slot.dead.store(Some(Arc::new(error.to_string())));
                        }
                        return Err(dead(account, &error.to_string()));
                    }
                }
            }
            Refresher::External => self.reread(account).await?,
        };
        let fresh = Arc::new(fresh);
        slot.current.store(Some(fresh.clone()));
        tracing::info!(account, "token renewed");
        Ok(fresh)
    }

    async fn reread(&self, account: &str) -> Result<Token, CredentialsError> {
        let (store, name) = (self.store.clone(), account.to_string());
        tokio::task::spawn_blocking(move || store.load(&name))
            .await
            .map_err(|e| CredentialsError::Unreadable {
                account: account.to_string(),
                place: "the store".into(),
                detail: e.to_string(),
            })??
            .ok_or_else(|| CredentialsError::Missing {
                account: account.to_string(),
            })
    }
}

fn dead(account: &str, why: &str) -> CredentialsError {
    CredentialsError::Unreadable {
        account: account.to_string(),
        place: "its refresh endpoint".into(),
        detail: why.to_string(),
    }
}

/// True when the token expires within `window` (or has an expiry that cannot be read).
fn expires_within(token: &Token, window: Duration) -> bool {
    match token
        .expires_at
        .as_deref()
        .and_then(|at| super::accounts::seconds_until(at, SystemTime::now()))
    {
        Some(left) => left <= window.as_secs() as i64,
        None => false,
    }
}

impl TokenSource for TokenManager {
    fn token<'a>(
        &'a self,
        account: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Token>, CredentialsError>> {
        Box::pin(async move {
            let slot = self.slot(account)?;
            match slot.current.load_full() {
                Some(token) if !expires_within(&token, Duration::ZERO) => Ok(token),
                stale => self.renew(account, stale).await,
            }
        })
    }

    fn rejected<'a>(
        &'a self,
        account: &'a str,
        token: &'a Arc<Token>,
    ) -> BoxFuture<'a, Result<Arc<Token>, CredentialsError>> {
        Box::pin(self.renew(account, Some(token.clone())))
    }
}

/// Refreshes tokens that expire within `REFRESH_AHEAD`, until the manager is dropped (a
/// config reload builds a new one).
async fn refresh_ahead(manager: Weak<TokenManager>) {
    loop {
        let Some(strong) = manager.upgrade() else {
            return;
        };
        let due: Vec<(String, Option<Arc<Token>>)> = strong
            .slots
            .iter()
            .filter(|(_, slot)| slot.dead.load().is_none())
            .filter_map(|(account, slot)| {
                let token = slot.current.load_full();
                let due = token
                    .as_deref()
                    .is_none_or(|t| expires_within(t, REFRESH_AHEAD));
                due.then(|| (account.clone(), token))
            })
            .collect();
        for (account, stale) in due {
            if let Err(error) = strong.renew(&account, stale).await {
                tracing::warn!(%error, account, "background refresh failed");
            }
        }
        drop(strong);
        tokio::time::sleep(CHECK_EVERY).await;
    }
}
