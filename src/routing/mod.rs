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

use crate::anthropic::MessagesRequest;
use crate::config::{Config, RouterConfig, Strategy};
use crate::credentials::TokenSource;
use crate::failure::{BlacklistDefaults, Blame, Failure, Retry};
use crate::providers::{self, BuildError};

pub use clock::{Clock, ManualClock, SystemClock};
pub use pool::{InFlight, Pool, Target, TargetStatus, Upstream};
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

/// Where one request may go, in the order to try, and which candidates were tried.
pub struct Plan<'a> {
    pub scenario: Scenario,
    pub candidates: Vec<Candidate<'a>>,
    tried: Vec<bool>,
    /// A `SameTargetNow` retry was granted already (once per request).
    renewed: bool,
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

    /// The next candidate not tried yet, after `current` in the order: a healthy one if
    /// any (the one that just failed may share its upstream and now be blacklisted).
    fn untried_after(&self, current: usize, now_ms: u64) -> Option<usize> {
        let n = self.candidates.len();
        let mut untried = (1..n)
            .map(|k| (current + k) % n)
            .filter(|&i| !self.tried[i]);
        let first = untried.clone().next();
        untried
            .find(|&i| self.candidates[i].upstream.is_healthy(now_ms))
            .or(first)
    }
}

pub struct Candidate<'a> {
    pub upstream: &'a Arc<Upstream>,
    /// The upstream model to ask for.
    pub model: String,
}

/// The target that is answering a response, so that a failure after the first byte still
/// reaches its health, and the response counts as in flight until it ends.
pub struct Health {
    pub router: Arc<Router>,
    pub upstream: Arc<Upstream>,
    pub flight: InFlight,
}

impl Health {
    pub fn failed(&self, failure: &Failure) {
        self.router.failed_after_start(&self.upstream, failure);
    }
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum NextStep {
    /// Try candidate `candidate` of the plan after `wait`.
    Retry { candidate: usize, wait: Duration },
    /// Answer the client with this failure now.
    GiveUp,
}

impl Router {
    /// Builds every configured provider once (one upstream per key or account) and a pool
    /// per route. Blacklists are per upstream, shared by every route that uses it.
    pub fn new(
        config: &Config,
        clock: Arc<dyn Clock>,
        tokens: Arc<dyn TokenSource>,
    ) -> Result<Router, BuildError> {
        let mut upstreams: HashMap<String, Vec<Arc<Upstream>>> = HashMap::new();
        let context = providers::BuildContext { tokens };
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
        let candidates: Vec<Candidate<'_>> = pool
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
        let tried = vec![false; candidates.len()];
        Plan {
            scenario,
            candidates,
            tried,
            renewed: false,
        }
    }

    /// Keeps what `previous` learned about each target still configured (same label): a
    /// reload neither forgives a blacklisted target nor forgets a healthy one.
    pub fn inherit_health(&self, previous: &Router) {
        let old: HashMap<&str, &Upstream> = previous
            .upstreams()
            .map(|upstream| (upstream.label.as_str(), upstream))
            .collect();
        for upstream in self.upstreams() {
            if let Some(before) = old.get(upstream.label.as_str()) {
                upstream.inherit(before);
            }
        }
    }

    /// Every upstream once (the provider pools hold each exactly once).
    fn upstreams(&self) -> impl Iterator<Item = &Upstream> {
        self.by_provider
            .values()
            .flat_map(|pool| pool.targets())
            .map(|target| target.upstream.as_ref())
    }

    /// Every target's live state, by label.
    pub fn targets(&self) -> Vec<TargetStatus> {
        let (now_ms, now) = (self.clock.now_ms(), std::time::SystemTime::now());
        let mut all: Vec<TargetStatus> = self
            .upstreams()
            .map(|upstream| upstream.status(now_ms, now))
            .collect();
        all.sort_by(|a, b| a.target.cmp(&b.target));
        all
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
        upstream.answered(self.clock.now_ms());
    }

    /// Records a failed attempt of candidate `current`: blacklists its upstream as the
    /// failure says, and decides where the next attempt goes, if anywhere. `attempt`
    /// counts from 1 for the attempt that just failed.
    ///
    /// The same target is tried again only when the failure says it may succeed there (a
    /// token just renewed, a short `Retry-After`); otherwise the next untried target.
    pub fn failed(
        &self,
        plan: &mut Plan<'_>,
        current: usize,
        failure: &Failure,
        attempt: usize,
    ) -> NextStep {
        plan.tried[current] = true;
        self.blacklist(plan.candidates[current].upstream, failure);
        if failure.retry == Retry::SameTargetNow && !plan.renewed {
            plan.renewed = true;
            return NextStep::Retry {
                candidate: current,
                wait: Duration::ZERO,
            };
        }
        if attempt >= self.max_attempts() {
            return NextStep::GiveUp;
        }
        let backoff = self.backoff(attempt);
        let other = plan.untried_after(current, self.clock.now_ms());
        let (candidate, wait) = match (failure.retry, other) {
            (Retry::Never, _) => return NextStep::GiveUp,
            (_, Some(other)) => (other, backoff),
            (Retry::SameTargetAfter(after), None) if after <= self.policy.max_retry_after.0 => {
                (current, backoff.max(after))
            }
            (_, None) => return NextStep::GiveUp,
        };
        NextStep::Retry { candidate, wait }
    }

    /// A response that had started broke off: not retried, but the target's health hears
    /// of it like a failure before the first byte.
    pub fn failed_after_start(&self, upstream: &Upstream, failure: &Failure) {
        self.blacklist(upstream, failure);
    }

    fn blacklist(&self, upstream: &Upstream, failure: &Failure) {
        if failure.blame == Blame::Upstream {
            upstream.failed(self.clock.now_ms());
        }
        let blacklist = &self.policy.blacklist;
        let defaults = BlacklistDefaults {
            rate_limited: blacklist.rate_limited.0,
            auth: blacklist.auth.0,
            network: blacklist.network.0,
            server_error: blacklist.server_error.0,
        };
        if let Some(duration) = failure.blacklist_for(&defaults) {
            let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
            upstream.blacklist_because(self.clock.now_ms().saturating_add(millis), failure.class);
        }
    }

    /// The wait before attempt `attempt + 1`: doubling from `backoff`, capped.
    fn backoff(&self, attempt: usize) -> Duration {
        let exponent = u32::try_from(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(16);
        self.policy
            .backoff
            .0
            .saturating_mul(1 << exponent)
            .min(self.policy.backoff_max.0)
    }
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
