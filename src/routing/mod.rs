//! Routing: classify a request into a scenario, order that scenario's targets (lock-free),
//! and keep the blacklist that failures feed and successes clear. The retry loop that walks
//! the order lives with the server; the decisions it asks for live here.

pub mod clock;
pub mod pool;
pub mod scenario;
pub mod sessions;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::anthropic::{ApiError, MessagesRequest};
use crate::config::{Config, RouterConfig, Strategy};
use crate::providers::{self, BuildError, ProviderError};

pub use clock::{Clock, ManualClock, SystemClock};
pub use pool::{Pool, Target, Upstream};
pub use scenario::Scenario;
pub use sessions::Sessions;

pub struct Router {
    routes: HashMap<Scenario, Pool>,
    /// For `provider/model` in a request: each provider's upstreams, round robin.
    by_provider: HashMap<String, Pool>,
    policy: RouterConfig,
    clock: Arc<dyn Clock>,
}

/// The router in use, swapped whole when the config is reloaded. Requests take a snapshot
/// (`current`) and finish on it, whatever happens to the cell meanwhile.
pub struct RouterCell(arc_swap::ArcSwap<Router>);

impl RouterCell {
    pub fn new(router: Router) -> Self {
        RouterCell(arc_swap::ArcSwap::from_pointee(router))
    }

    pub fn current(&self) -> Arc<Router> {
        self.0.load_full()
    }

    pub fn replace(&self, router: Router) {
        self.0.store(Arc::new(router));
    }
}

/// Where one request may go, in the order to try.
pub struct Plan<'a> {
    pub scenario: Scenario,
    pub candidates: Vec<Candidate<'a>>,
}

impl Plan<'_> {
    /// Moves the candidate labelled `label` to the front if it is healthy (a session's last
    /// good target keeps the conversation, and its prompt cache, on one upstream).
    pub fn prefer(&mut self, label: &str, now_ms: u64) {
        let found = self
            .candidates
            .iter()
            .position(|c| c.upstream.label == label && c.upstream.is_healthy(now_ms));
        if let Some(i) = found {
            let preferred = self.candidates.remove(i);
            self.candidates.insert(0, preferred);
        }
    }
}

pub struct Candidate<'a> {
    pub upstream: &'a Arc<Upstream>,
    /// The upstream model to ask for.
    pub model: String,
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum NextStep {
    /// Try the next candidate after `backoff`; if that is the same upstream again, wait for
    /// its `retry_after` too.
    Retry {
        backoff: Duration,
        retry_after: Option<Duration>,
    },
    /// The failure is the request's own (a 400): answer it now.
    GiveUp,
}

impl Router {
    /// Builds every configured provider once (one upstream per key or account) and a pool
    /// per route. Blacklists are per upstream, shared by every route that uses it.
    pub fn new(config: &Config, clock: Arc<dyn Clock>) -> Result<Router, BuildError> {
        let mut upstreams: HashMap<String, Vec<Arc<Upstream>>> = HashMap::new();
        let context = providers::BuildContext {
            tokens: token_manager(config)?,
        };
        for (name, provider_config) in &config.providers {
            let built = providers::build(name, provider_config, &context)?;
            let list = built
                .into_iter()
                .map(|(label, provider)| Arc::new(Upstream::new(provider, label)))
                .collect();
            upstreams.insert(name.clone(), list);
        }
        let mut routes = HashMap::new();
        for (name, route) in config.routes.all() {
            let mut weighted = Vec::new();
            for target in &route.targets {
                let of_provider = upstreams.get(&target.spec.provider).ok_or_else(|| {
                    BuildError::UnknownProvider(format!(
                        "`{}` names a provider that is not configured",
                        target.spec
                    ))
                })?;
                for upstream in of_provider {
                    weighted.push((
                        Target {
                            upstream: upstream.clone(),
                            model: target.spec.model.clone(),
                        },
                        target.weight,
                    ));
                }
            }
            if weighted.is_empty() {
                return Err(BuildError::UnknownProvider(format!(
                    "routes.{name} has no targets"
                )));
            }
            routes.insert(
                scenario_for_route(name),
                Pool::new(route.strategy, weighted),
            );
        }
        let by_provider = upstreams
            .into_iter()
            .map(|(name, list)| {
                let weighted = list
                    .into_iter()
                    .map(|upstream| {
                        (
                            Target {
                                upstream,
                                model: None,
                            },
                            1,
                        )
                    })
                    .collect();
                (name, Pool::new(Strategy::RoundRobin, weighted))
            })
            .collect();
        Ok(Router {
            routes,
            by_provider,
            policy: config.router.clone(),
            clock,
        })
    }

    /// Classifies the request and orders the candidates to try.
    pub fn plan(&self, request: &MessagesRequest) -> Plan<'_> {
        let now = self.clock.now_ms();
        let explicit =
            scenario::explicit_target(request.model(), |p| self.by_provider.contains_key(p));
        let (scenario, pool, forced_model) = match explicit {
            Some(target) => (
                Scenario::Explicit,
                &self.by_provider[target.provider],
                Some(target.model),
            ),
            None => {
                let scenario = scenario::classify(request, self.policy.long_context_threshold);
                let pool = self
                    .routes
                    .get(&scenario)
                    .unwrap_or(&self.routes[&Scenario::Default]);
                (scenario, pool, None)
            }
        };
        let candidates = pool
            .order(now)
            .into_iter()
            .map(|target| Candidate {
                upstream: &target.upstream,
                model: forced_model
                    .or(target.model.as_deref())
                    .unwrap_or(request.model())
                    .to_string(),
            })
            .collect();
        Plan {
            scenario,
            candidates,
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub fn max_attempts(&self) -> usize {
        self.policy.max_attempts.max(1) as usize
    }

    /// A success clears the upstream's blacklist entry.
    pub fn succeeded(&self, upstream: &Upstream) {
        upstream.clear();
    }

    /// Blacklists the upstream by the error's class and says whether to try again.
    /// `attempt` counts from 1 for the attempt that just failed.
    pub fn failed(&self, upstream: &Upstream, error: &ProviderError, attempt: usize) -> NextStep {
        let policy = &self.policy;
        let retry_after = retry_after(error);
        let blacklist_for = match error_kind(error) {
            Kind::RateLimited => Some(retry_after.unwrap_or(policy.blacklist.rate_limited.0)),
            Kind::Auth => Some(policy.blacklist.auth.0),
            Kind::Network => Some(policy.blacklist.network.0),
            Kind::ServerError => Some(policy.blacklist.server_error.0),
            Kind::Request => None,
        };
        let Some(duration) = blacklist_for else {
            return NextStep::GiveUp;
        };
        upstream.blacklist(self.clock.now_ms() + duration.as_millis() as u64);
        let exponent = u32::try_from(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(16);
        let backoff = policy
            .backoff
            .0
            .saturating_mul(1 << exponent)
            .min(policy.backoff_max.0);
        NextStep::Retry {
            backoff,
            retry_after,
        }
    }

    /// How long to wait before trying the same upstream again, or `None` when its
    /// `Retry-After` is too long to wait for.
    pub fn wait_for_same(
        &self,
        backoff: Duration,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        match retry_after {
            Some(after) if after > self.policy.max_retry_after.0 => None,
            Some(after) => Some(backoff.max(after)),
            None => Some(backoff),
        }
    }
}

/// One token manager for every CodeWhisperer account this configuration names.
fn token_manager(config: &Config) -> Result<Arc<dyn crate::credentials::TokenSource>, BuildError> {
    use crate::config::{ProviderKind, RefresherKind};
    use crate::credentials::manager::{Refresher, TokenManager};
    let mut accounts: Vec<(String, crate::credentials::refresh::Endpoints)> = Vec::new();
    for provider in config
        .providers
        .values()
        .filter(|p| p.kind == ProviderKind::Codewhisperer)
    {
        for account in &provider.accounts {
            if !accounts.iter().any(|(a, _)| a == account) {
                accounts.push((account.clone(), config.refresh_endpoints(account)));
            }
        }
    }
    let refresher = match config.credentials.refresher {
        RefresherKind::Serve => Refresher::Serve,
        RefresherKind::External => Refresher::External,
    };
    let store = config.credential_store();
    let manager = TokenManager::start(
        store,
        config.data_dir(),
        accounts,
        refresher,
        providers::plain_client()?,
    );
    Ok(manager)
}

fn scenario_for_route(name: &str) -> Scenario {
    match name {
        "background" => Scenario::Background,
        "thinking" => Scenario::Thinking,
        "long_context" => Scenario::LongContext,
        "web_search" => Scenario::WebSearch,
        _ => Scenario::Default,
    }
}

enum Kind {
    RateLimited,
    Auth,
    Network,
    ServerError,
    /// The request's own fault (400 and other 4xx): another target would refuse it too.
    Request,
}

fn error_kind(error: &ProviderError) -> Kind {
    match error {
        ProviderError::Connect { .. }
        | ProviderError::Timeout { .. }
        | ProviderError::Stream { .. } => Kind::Network,
        other => match other.status().map(|s| s.as_u16()) {
            Some(429) => Kind::RateLimited,
            Some(401 | 403) => Kind::Auth,
            Some(500..=599) => Kind::ServerError,
            _ => Kind::Request,
        },
    }
}

/// How long the upstream asks to be left alone: its `Retry-After` in seconds (an HTTP date
/// is treated as absent), or what the provider knows (an exhausted quota).
fn retry_after(error: &ProviderError) -> Option<Duration> {
    let headers = match error {
        ProviderError::Api {
            error:
                ApiError {
                    upstream_out_for: Some(out_for),
                    ..
                },
            ..
        } => return Some(*out_for),
        ProviderError::Status { headers, .. } | ProviderError::Api { headers, .. } => headers,
        _ => return None,
    };
    let seconds: f64 = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}
