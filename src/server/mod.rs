//! The HTTP server: a plain accept loop over hyper, one task per connection, and graceful
//! shutdown (stop accepting, let responses finish within the grace period, then end the
//! streams still open with an `error` event, then stop background tasks).

mod activity;
mod answer;
mod auth;
mod body;
mod browser;
mod conn;
mod exchange;
mod service;
mod state;
mod ui;

use state::State;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::background::Background;
use crate::config::Config;
use crate::credentials::manager::{Refresher, TokenManager, accounts_in, refresh_ahead};
use crate::failures::FailureLog;
use crate::providers::BuildError;
use crate::record::{AccessLog, RecordSink};
use crate::routing::{Clock, Router, RouterCell, Sessions, SystemClock};

pub use body::ResponseBody;
pub use service::REQUEST_ID_HEADER;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Provider(#[from] BuildError),
}

/// One line with the totals since start, for people reading the log.
fn log_stats(stats: &crate::stats::Stats) {
    let document = crate::stats::render::document(stats, None);
    let totals = &document.totals;
    let failures: u64 = totals.failures.values().sum();
    tracing::info!(
        uptime_secs = document.uptime_secs,
        requests = totals.requests,
        failures,
        requests_per_minute = totals.requests_per_minute,
        input_tokens = totals.tokens.input,
        output_tokens = totals.tokens.output,
        credits = totals.credits,
        "stats"
    );
}

/// The server's one token manager: the store and refresher the config names (a change of
/// `credentials:` needs a restart).
fn token_manager(config: &Config) -> Result<Arc<TokenManager>, ServerError> {
    let client = crate::http_client::plain().map_err(|e| BuildError::Client {
        provider: e.owner,
        detail: e.detail,
    })?;
    Ok(TokenManager::for_config(config, client))
}

/// The socket address for a configured host (an IP address or `localhost`, as validated).
fn listen_addr(host: &str, port: u16) -> String {
    match host.trim_start_matches('[').trim_end_matches(']') {
        h if h.eq_ignore_ascii_case("localhost") => format!("127.0.0.1:{port}"),
        h if h.contains(':') => format!("[{h}]:{port}"),
        h => format!("{h}:{port}"),
    }
}

/// Applies a reloaded configuration: providers, routes and the router policy are rebuilt and
/// swapped in at once. Requests in flight finish on the configuration they started with.
/// The `server` section (address, client key, limits) and sessions stay as they were.
#[derive(Clone)]
pub struct Reloader {
    state: Arc<State>,
}

impl Reloader {
    /// Swaps in `config`'s providers and routes. Targets that stay keep their blacklist,
    /// accounts that stay keep their token and dead flag, sessions keep their targets.
    pub async fn apply(&self, config: &Config) -> Result<(), ServerError> {
        let state = &self.state;
        state.tokens.set_accounts(accounts_in(config)).await;
        let router = Router::new(config, state.clock.clone(), state.tokens.clone())?;
        router.inherit_health(&state.router.current());
        state.router.replace(router);
        Ok(())
    }
}

/// What a server is started with beside its config.
#[derive(Default)]
pub struct Options {
    /// Receive every request's record beside the access log.
    pub sinks: Vec<Arc<dyn RecordSink>>,
    /// Time for blacklists and sessions; the system clock unless a test brings its own.
    pub clock: Option<Arc<dyn Clock>>,
}

pub struct Server {
    listener: TcpListener,
    state: Arc<State>,
    shutdown_grace: Duration,
    background: Background,
    /// One permit per open client connection (`server.max_connections`).
    connection_slots: Arc<tokio::sync::Semaphore>,
}

impl Server {
    /// Builds the providers and binds the listening socket. Extra sinks receive every
    /// request's record beside the access log.
    pub async fn bind(config: &Config, options: Options) -> Result<Server, ServerError> {
        let clock = options
            .clock
            .unwrap_or_else(|| Arc::new(SystemClock::default()));
        let tokens = token_manager(config)?;
        tokens.set_accounts(accounts_in(config)).await;
        let router = RouterCell::new(Router::new(config, clock.clone(), tokens.clone())?);
        let session_config = config.router.sessions;
        let sessions = Arc::new(Sessions::new(
            session_config.ttl.0,
            session_config.max,
            clock.clone(),
        ));
        let background = Background::new();
        if tokens.refresher() == Refresher::Serve {
            let refreshed = tokens.clone();
            background.spawn("token refresh", move |stop| refresh_ahead(refreshed, stop));
        }
        let sweep_every = session_config.sweep_every.0;
        let swept = sessions.clone();
        background.spawn("session sweep", move |stop| async move {
            let mut ticks = tokio::time::interval(sweep_every);
            ticks.tick().await;
            loop {
                tokio::select! {
                    _ = ticks.tick() => swept.sweep(),
                    _ = stop.cancelled() => return,
                }
            }
        });
        let addr = listen_addr(&config.server.host.0, config.server.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let stats = crate::stats::Stats::new();
        let mut sinks: Vec<Arc<dyn RecordSink>> =
            vec![Arc::new(AccessLog), stats.clone(), sessions.clone()];
        let log_every = config.stats.log_interval.0;
        if !log_every.is_zero() {
            let logged = stats.clone();
            background.spawn("stats log", move |stop| async move {
                let mut ticks = tokio::time::interval(log_every);
                ticks.tick().await;
                loop {
                    tokio::select! {
                        _ = ticks.tick() => log_stats(&logged),
                        _ = stop.cancelled() => return,
                    }
                }
            });
        }
        let failure_log = config.failures.enabled.then(|| {
            let dir = config.data_dir().join("failures");
            let (log, writer) =
                FailureLog::new(dir, config.failures.keep_days, config.failures.queue);
            background.spawn("failure log", move |stop| writer.run(stop));
            sinks.push(log.clone());
            log
        });
        sinks.extend(options.sinks);
        let state = State {
            failure_log,
            failures_dir: config.data_dir().join("failures"),
            router,
            tokens,
            stats,
            clock,
            sessions,
            client_key: config.server.client_key().cloned(),
            body_limit: config.server.body_limit,
            body_read_timeout: config.server.body_read_timeout.0,
            browser: browser::BrowserPolicy {
                allowed_origins: config.server.allowed_origins.clone(),
                allowed_hosts: config.server.allowed_hosts.clone(),
                configured_host: config.server.host.0.clone(),
                keyed: config.server.client_key().is_some(),
            },
            header_read_timeout: config.server.header_read_timeout.0,
            idle_timeout: config.server.idle_timeout.0,
            ping_interval: config.server.ping_interval.0,
            sinks: sinks.into(),
            force_end: CancellationToken::new(),
        };
        Ok(Server {
            listener,
            state: Arc::new(state),
            shutdown_grace: config.server.shutdown_grace.0,
            connection_slots: Arc::new(tokio::sync::Semaphore::new(config.server.max_connections)),
            background,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// A handle that swaps in a new routing configuration while the server runs.
    pub fn reloader(&self) -> Reloader {
        Reloader {
            state: self.state.clone(),
        }
    }

    /// Where chores that live as long as the server are started.
    pub fn background(&self) -> &Background {
        &self.background
    }

    /// Serves until `shutdown` completes, then shuts down gracefully.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let connections = TaskTracker::new();
        let stop = CancellationToken::new();
        tokio::pin!(shutdown);
        loop {
            // At the cap, new connections wait in the listen backlog until one closes.
            let slot = tokio::select! {
                _ = &mut shutdown => break,
                slot = self.connection_slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
            };
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _peer)) => {
                        let _ = stream.set_nodelay(true);
                        let served = conn::serve(stream, self.state.clone(), stop.clone());
                        connections.spawn(async move {
                            served.await;
                            drop(slot);
                        });
                    }
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop(self.listener);
        tracing::info!(grace = ?self.shutdown_grace, "shutting down: no new connections, finishing open responses");
        stop.cancel();
        connections.close();
        if tokio::time::timeout(self.shutdown_grace, connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("grace period over: ending the responses still open");
            self.state.force_end.cancel();
            if tokio::time::timeout(Duration::from_secs(5), connections.wait())
                .await
                .is_err()
            {
                tracing::warn!("some connections did not close in time");
            }
        }
        if !self.background.shutdown(Duration::from_secs(10)).await {
            tracing::warn!("some background tasks did not finish in time");
        }
        tracing::info!("shut down");
    }
}
