//! The token manager in `ccr serve`: each account's token in an atomically swapped value,
//! read without a lock. A refresh of one account (ahead of expiry in the background, or
//! after the upstream rejected the token) happens at most once at a time for that account;
//! requests that need it wait for that single refresh, requests on other accounts never do.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

use super::refresh::{self, Endpoints, RefreshError, Refreshed};
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

/// A running renewal, shared by every request that needs it. It runs in its own task: a
/// request that goes away (its client disconnected) stops waiting, the renewal goes on, so
/// a refresh token the endpoint has already rotated is never dropped halfway.
type Flight = Shared<BoxFuture<'static, Result<Arc<Token>, CredentialsError>>>;

struct Slot {
    current: ArcSwapOption<Token>,
    /// The renewal in progress, if any, and what it does: the single flight.
    flight: Mutex<Option<(Work, Flight)>>,
    endpoints: Endpoints,
    /// Why the account cannot be used, once its refresh token was rejected.
    dead: ArcSwapOption<String>,
    /// A rotated token the store refused: served from memory, saved again later.
    unsaved: Mutex<Option<Unsaved>>,
}

#[derive(Clone)]
struct Unsaved {
    /// What the store still holds: if that changes, someone else wrote a newer token.
    replaced: Arc<Token>,
    fresh: Arc<Token>,
}

impl Slot {
    fn new(current: Option<Arc<Token>>, endpoints: Endpoints) -> Slot {
        Slot {
            current: ArcSwapOption::new(current),
            flight: Mutex::new(None),
            endpoints,
            dead: ArcSwapOption::empty(),
            unsaved: Mutex::new(None),
        }
    }

    fn unsaved(&self) -> Option<Unsaved> {
        self.unsaved.lock().expect("unsaved lock").clone()
    }

    fn set_unsaved(&self, unsaved: Option<Unsaved>) {
        *self.unsaved.lock().expect("unsaved lock") = unsaved;
    }
}

/// What a request that needs a renewal does: wait for one, or take what is there.
enum Next {
    Wait(Flight),
    /// A save is running: wait for it, then look again (it renews nothing).
    WaitThenLook(Flight),
    Ready(Result<Arc<Token>, CredentialsError>),
}

/// What a renewal task does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Work {
    /// Renew the token (refresh, or re-read the store with an external refresher).
    Renew,
    /// Only save a rotated token the store refused before.
    Save,
}

pub struct TokenManager {
    /// The managed accounts, swapped whole when a reload changes the set.
    slots: ArcSwap<HashMap<String, Arc<Slot>>>,
    context: Arc<Context>,
}

/// What renewal tasks need of the manager; they outlive any one request.
struct Context {
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
            context: Arc::new(Context {
                store,
                data_dir,
                client,
                refresher,
            }),
        })
    }

    /// A manager with the store and refresher `config` names, and no accounts yet.
    pub fn for_config(
        config: &crate::config::Config,
        client: reqwest::Client,
    ) -> Arc<TokenManager> {
        let store = super::open_store(&config.credentials, &config.credentials_dir());
        let refresher = match config.credentials.refresher {
            crate::config::RefresherKind::Serve => Refresher::Serve,
            crate::config::RefresherKind::External => Refresher::External,
        };
        TokenManager::new(store, config.data_dir(), refresher, client)
    }

    pub fn refresher(&self) -> Refresher {
        self.context.refresher
    }

    /// Makes `accounts` the managed set. An account already managed keeps its token, its
    /// dead flag (a reload does not revive an account whose refresh token was rejected)
    /// and a token still to be saved; a new one is read from the store, off the async
    /// worker threads (a keyring read can block on D-Bus).
    pub async fn set_accounts(&self, accounts: Vec<(String, Endpoints)>) {
        let current = self.slots.load_full();
        let mut next = HashMap::new();
        for (account, endpoints) in accounts {
            let slot = match current.get(&account) {
                Some(slot) if slot.endpoints == endpoints => slot.clone(),
                Some(slot) => {
                    let moved = Slot::new(slot.current.load_full(), endpoints);
                    moved.dead.store(slot.dead.load_full());
                    moved.set_unsaved(slot.unsaved());
                    Arc::new(moved)
                }
                None => Arc::new(Slot::new(self.load_stored(&account).await, endpoints)),
            };
            next.insert(account, slot);
        }
        self.slots.store(Arc::new(next));
    }

    async fn load_stored(&self, account: &str) -> Option<Arc<Token>> {
        let (store, name) = (self.context.store.clone(), account.to_string());
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

    /// Replaces `stale` with a fresh token, once: whoever comes while the renewal runs
    /// shares its result, whoever comes after finds the swap done.
    async fn renew(
        &self,
        account: &str,
        stale: Option<Arc<Token>>,
    ) -> Result<Arc<Token>, CredentialsError> {
        let slot = self.slot(account)?;
        loop {
            match self.next(account, &slot, stale.as_ref()) {
                Next::Wait(flight) => return flight.await,
                Next::WaitThenLook(flight) => {
                    let _ = flight.await;
                }
                Next::Ready(result) => return result,
            }
        }
    }

    /// Joins the running renewal, answers from the slot, or starts a renewal.
    fn next(&self, account: &str, slot: &Arc<Slot>, stale: Option<&Arc<Token>>) -> Next {
        let mut flight = slot.flight.lock().expect("flight lock");
        match flight.as_ref() {
            Some((Work::Renew, running)) => return Next::Wait(running.clone()),
            Some((Work::Save, running)) => return Next::WaitThenLook(running.clone()),
            None => {}
        }
        if let Some(current) = slot.current.load_full()
            && stale.is_none_or(|s| !Arc::ptr_eq(s, &current))
            && !expires_within(&current, Duration::ZERO)
        {
            return Next::Ready(Ok(current));
        }
        if let Some(why) = slot.dead.load_full() {
            return Next::Ready(Err(renewal_failed(account, &why)));
        }
        let started = self.start(account, slot, Work::Renew);
        *flight = Some((Work::Renew, started.clone()));
        Next::Wait(started)
    }

    /// Spawns the renewal task. The caller holds `slot.flight` and stores the result
    /// there; the task clears it when done, which it cannot do before that lock is free.
    fn start(&self, account: &str, slot: &Arc<Slot>, work: Work) -> Flight {
        let renewal = Renewal {
            context: self.context.clone(),
            slot: slot.clone(),
            account: account.to_string(),
        };
        let task = tokio::spawn(renewal.run(work));
        let account = account.to_string();
        async move {
            task.await.unwrap_or_else(|error| {
                tracing::error!(%error, account, "the token renewal task failed");
                Err(renewal_failed(&account, "the renewal stopped unexpectedly"))
            })
        }
        .boxed()
        .shared()
    }

    /// Saves again every rotated token the store refused before. Run with each background
    /// check; an account whose renewal is running is left to it.
    pub async fn save_unsaved(&self) {
        let slots = self.slots.load_full();
        for (account, slot) in slots.iter() {
            if slot.unsaved().is_none() {
                continue;
            }
            let flight = {
                let mut flight = slot.flight.lock().expect("flight lock");
                if flight.is_some() {
                    continue;
                }
                let started = self.start(account, slot, Work::Save);
                *flight = Some((Work::Save, started.clone()));
                started
            };
            let _ = flight.await;
        }
    }
}

/// Clears the slot's flight when the renewal task ends, however it ends.
struct FlightDone<'a>(&'a Slot);

impl Drop for FlightDone<'_> {
    fn drop(&mut self) {
        let mut flight = match self.0.flight.lock() {
            Ok(flight) => flight,
            Err(poisoned) => poisoned.into_inner(),
        };
        *flight = None;
    }
}

/// One renewal of one account, in its own task.
struct Renewal {
    context: Arc<Context>,
    slot: Arc<Slot>,
    account: String,
}

impl Renewal {
    async fn run(self, work: Work) -> Result<Arc<Token>, CredentialsError> {
        // Dropped before the waiters see the result, even if the renewal panics: whoever
        // comes next finds the new token in `current` and no flight, and does not start
        // another renewal (nor wait on a finished one forever).
        let _done = FlightDone(&self.slot);
        match work {
            Work::Renew => self.renew().await,
            Work::Save => {
                self.save_unsaved().await;
                self.slot
                    .current
                    .load_full()
                    .ok_or_else(|| CredentialsError::Missing {
                        account: self.account.clone(),
                    })
            }
        }
    }

    async fn renew(&self) -> Result<Arc<Token>, CredentialsError> {
        let account = self.account.as_str();
        let fresh = match self.context.refresher {
            Refresher::Serve => self.refresh().await?,
            Refresher::External => Arc::new(self.reread().await?),
        };
        self.slot.current.store(Some(fresh.clone()));
        tracing::info!(account, "token renewed");
        Ok(fresh)
    }

    /// Refreshes through the endpoint (or takes what another process stored meanwhile).
    async fn refresh(&self) -> Result<Arc<Token>, CredentialsError> {
        let (context, account) = (&self.context, self.account.as_str());
        let current = self.slot.current.load_full();
        // A token the store refused is what the store must get first; if it still cannot
        // take it, the refresh starts from the token in memory, the only valid one.
        let unsaved = match self.slot.unsaved() {
            Some(_) => self.save_unsaved().await,
            None => None,
        };
        let refreshed = match (&unsaved, &current) {
            (Some(unsaved), Some(held)) => {
                refresh::refresh_unsaved(
                    &context.client,
                    &context.store,
                    &context.data_dir,
                    &self.slot.endpoints,
                    account,
                    held,
                    &unsaved.replaced,
                )
                .await
            }
            _ => {
                refresh::refresh_account(
                    &context.client,
                    &context.store,
                    &context.data_dir,
                    &self.slot.endpoints,
                    account,
                    current.as_deref(),
                )
                .await
            }
        };
        match refreshed {
            Ok(refreshed) => Ok(self.keep(refreshed, unsaved)),
            Err(error) => {
                if let RefreshError::Rejected { .. } = error {
                    tracing::error!(account, "{error}; the account leaves the rotation");
                    self.slot.dead.store(Some(Arc::new(error.to_string())));
                }
                Err(renewal_failed(account, &error.to_string()))
            }
        }
    }

    /// The token a refresh leaves in memory, and the save still owed for it.
    fn keep(&self, refreshed: Refreshed, before: Option<Unsaved>) -> Arc<Token> {
        let account = self.account.as_str();
        match refreshed {
            Refreshed::Stored(token) | Refreshed::Saved(token) => {
                self.slot.set_unsaved(None);
                Arc::new(token)
            }
            Refreshed::Unsaved {
                token,
                replaced,
                error,
            } => {
                tracing::error!(
                    %error,
                    account,
                    "the rotated token could not be saved: serving it from memory, saving it again with the next check"
                );
                let fresh = Arc::new(token);
                // The store still holds what it held before the first unsaved refresh.
                let replaced = before.map_or_else(|| Arc::from(replaced), |b| b.replaced);
                self.slot.set_unsaved(Some(Unsaved {
                    replaced,
                    fresh: fresh.clone(),
                }));
                fresh
            }
        }
    }

    /// Saves the token the store refused before; returns it if it is still unsaved.
    async fn save_unsaved(&self) -> Option<Unsaved> {
        let unsaved = self.slot.unsaved()?;
        let account = self.account.as_str();
        let context = &self.context;
        let saved = refresh::save_rotated(
            &context.store,
            &context.data_dir,
            account,
            &unsaved.replaced,
            &unsaved.fresh,
        )
        .await;
        match saved {
            Ok(true) => tracing::info!(account, "the rotated token is saved now"),
            Ok(false) => tracing::warn!(
                account,
                "the store holds another token now (re-imported or removed): the unsaved one is not written over it"
            ),
            Err(error) => {
                tracing::warn!(%error, account, "the rotated token still cannot be saved");
                return Some(unsaved);
            }
        }
        self.slot.set_unsaved(None);
        None
    }

    async fn reread(&self) -> Result<Token, CredentialsError> {
        let account = self.account.as_str();
        let (store, name) = (self.context.store.clone(), account.to_string());
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

fn renewal_failed(account: &str, why: &str) -> CredentialsError {
    CredentialsError::Renewal {
        account: account.to_string(),
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

/// Saves tokens the store refused and refreshes tokens that expire within
/// `REFRESH_AHEAD`, until `stop` (the server's shutdown). Run on the server's background
/// tasks with `Refresher::Serve`.
pub async fn refresh_ahead(manager: Arc<TokenManager>, stop: tokio_util::sync::CancellationToken) {
    loop {
        manager.save_unsaved().await;
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
