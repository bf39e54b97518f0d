//! The token manager in `ccr serve`: each account's token in an atomically swapped value,
//! read without a lock. A refresh of one account (ahead of expiry in the background, or
//! after the upstream rejected the token) happens at most once at a time for that account;
//! requests that need it wait for that single refresh, requests on other accounts never do.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
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
    /// The managed accounts, swapped whole when a reload changes the set.
    slots: ArcSwap<HashMap<String, Arc<Slot>>>,
    store: Arc<dyn Store>,
    data_dir: PathBuf,
    client: reqwest::Client,
    refresher: Refresher,
}

/// Every CodeWhisperer account a configuration names, each with its refresh endpoints.
pub fn accounts_in(config: &crate::config::Config) -> Vec<(String, Endpoints)> {
    let mut accounts: Vec<(String, Endpoints)> = Vec::new();
    for provider in config.providers.values() {
        for account in provider.accounts() {
            if !accounts.iter().any(|(a, _)| a == account) {
                let endpoints = Endpoints::for_provider(config.codewhisperer_for(account));
                accounts.push((account.clone(), endpoints));
            }
        }
    }
    accounts
}

impl TokenManager {
    /// A manager with no accounts yet; [`TokenManager::set_accounts`] adds them. Built once
    /// per server: a reload changes its accounts, not the manager.
    pub fn new(
        store: Arc<dyn Store>,
        data_dir: PathBuf,
        refresher: Refresher,
        client: reqwest::Client,
    ) -> Arc<TokenManager> {
        Arc::new(TokenManager {
            slots: ArcSwap::from_pointee(HashMap::new()),
            store,
            data_dir,
            client,
            refresher,
        })
    }

    pub fn refresher(&self) -> Refresher {
        self.refresher
    }

    /// Makes `accounts` the managed set. An account already managed keeps its token and its
    /// dead flag (a reload does not revive an account whose refresh token was rejected);
    /// a new one is read from the store, off the async worker threads (a keyring read can
    /// block on D-Bus).
    pub async fn set_accounts(&self, accounts: Vec<(String, Endpoints)>) {
        let current = self.slots.load_full();
        let mut next = HashMap::new();
        for (account, endpoints) in accounts {
            let slot = match current.get(&account) {
                Some(slot) if slot.endpoints == endpoints => slot.clone(),
                Some(slot) => Arc::new(Slot {
                    current: ArcSwapOption::new(slot.current.load_full()),
                    refreshing: tokio::sync::Mutex::new(()),
                    endpoints,
                    dead: ArcSwapOption::new(slot.dead.load_full()),
                }),
                None => Arc::new(Slot {
                    current: ArcSwapOption::new(self.load_stored(&account).await),
                    refreshing: tokio::sync::Mutex::new(()),
                    endpoints,
                    dead: ArcSwapOption::empty(),
                }),
            };
            next.insert(account, slot);
        }
        self.slots.store(Arc::new(next));
    }

    async fn load_stored(&self, account: &str) -> Option<Arc<Token>> {
        let (store, name) = (self.store.clone(), account.to_string());
        let loaded = tokio::task::spawn_blocking(move || store.load(&name)).await;
        match loaded {
            Ok(Ok(token)) => token.map(Arc::new),
            Ok(Err(error)) => {
                tracing::error!(%error, account, "cannot read the account's token");
                None
            }
            Err(error) => {
                tracing::error!(%error, account, "reading the account's token failed");
                None
            }
        }
    }

    fn slot(&self, account: &str) -> Result<Arc<Slot>, CredentialsError> {
        self.slots
            .load()
            .get(account)
            .cloned()
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

/// Refreshes tokens that expire within `REFRESH_AHEAD`, until `stop` (the server's
/// shutdown). Run on the server's background tasks with `Refresher::Serve`.
pub async fn refresh_ahead(manager: Arc<TokenManager>, stop: tokio_util::sync::CancellationToken) {
    loop {
        let slots = manager.slots.load_full();
        let due: Vec<(String, Option<Arc<Token>>)> = slots
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
            if let Err(error) = manager.renew(&account, stale).await {
                tracing::warn!(%error, account, "background refresh failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = stop.cancelled() => return,
        }
    }
}
