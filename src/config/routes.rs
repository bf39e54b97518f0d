//! `routes:` and `router:` — where each scenario's requests go, and the failover policy.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::values::{self, Seconds};

/// Routes per scenario; a scenario without a route uses `default`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutesConfig {
    pub default: Route,
    pub background: Option<Route>,
    pub thinking: Option<Route>,
    pub long_context: Option<Route>,
    pub web_search: Option<Route>,
}

impl RoutesConfig {
    /// Every configured route with its scenario's name.
    pub fn all(&self) -> impl Iterator<Item = (&'static str, &Route)> {
        [
            ("default", Some(&self.default)),
            ("background", self.background.as_ref()),
            ("thinking", self.thinking.as_ref()),
            ("long_context", self.long_context.as_ref()),
            ("web_search", self.web_search.as_ref()),
        ]
        .into_iter()
        .filter_map(|(name, route)| route.map(|r| (name, r)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Spread requests over the targets (smooth weighted when weights are given).
    #[default]
    RoundRobin,
    /// The first healthy target in the order written.
    Priority,
}

/// A route: `[a/x, b/y]`, or `{ strategy: priority, targets: [a/x, { target: b/y, weight: 3 }] }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub strategy: Strategy,
    pub targets: Vec<WeightedTarget>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedTarget {
    pub spec: TargetSpec,
    pub weight: u32,
}

impl<'de> Deserialize<'de> for Route {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RouteVisitor;
        impl<'de> Visitor<'de> for RouteVisitor {
            type Value = Route;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of targets, or `{ strategy, targets }`")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Route, A::Error> {
                let targets = Vec::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(Route {
                    strategy: Strategy::default(),
                    targets,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Route, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Long {
                    #[serde(default)]
                    strategy: Strategy,
                    targets: Vec<WeightedTarget>,
                }
                let long = Long::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Route {
                    strategy: long.strategy,
                    targets: long.targets,
                })
            }
        }
        deserializer.deserialize_any(RouteVisitor)
    }
}

impl<'de> Deserialize<'de> for WeightedTarget {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TargetVisitor;
        impl<'de> Visitor<'de> for TargetVisitor {
            type Value = WeightedTarget;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`provider/model` or `{ target: provider/model, weight: N }`")
            }
            fn visit_str<E: de::Error>(self, raw: &str) -> Result<WeightedTarget, E> {
                let spec = values::interpolate(raw).and_then(|(text, _)| TargetSpec::parse(&text));
                spec.map(|spec| WeightedTarget { spec, weight: 1 })
                    .map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<WeightedTarget, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Long {
                    target: TargetSpec,
                    #[serde(default = "one")]
                    weight: u32,
                }
                fn one() -> u32 {
                    1
                }
                let long = Long::deserialize(de::value::MapAccessDeserializer::new(map))?;
                if long.weight == 0 || long.weight > 1000 {
                    return Err(de::Error::custom(format!(
                        "weight {} is out of range: use 1 to 1000",
                        long.weight
                    )));
                }
                Ok(WeightedTarget {
                    spec: long.target,
                    weight: long.weight,
                })
            }
        }
        deserializer.deserialize_any(TargetVisitor)
    }
}

/// `provider/model`, split at the first `/` (model ids contain `/` themselves). A bare
/// `provider` or `provider/*` keeps the model the client asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetSpec {
    pub provider: String,
    pub model: Option<String>,
}

impl<'de> Deserialize<'de> for TargetSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        values::from_str_scalar(deserializer, "a target `provider/model`", |raw| {
            let (text, _) = values::interpolate(raw)?;
            TargetSpec::parse(&text)
        })
    }
}

impl TargetSpec {
    pub fn parse(text: &str) -> Result<TargetSpec, String> {
        let (provider, model) = match text.split_once('/') {
            Some((provider, "*")) => (provider, None),
            Some((provider, model)) => (provider, Some(model.to_string())),
            None => (text, None),
        };
        if provider.is_empty() || model.as_deref() == Some("") {
            return Err(format!(
                "`{text}` is not a target: write `provider/model`, or `provider/*` to keep the client's model"
            ));
        }
        Ok(TargetSpec {
            provider: provider.to_string(),
            model,
        })
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.model {
            Some(model) => write!(f, "{}/{}", self.provider, model),
            None => write!(f, "{}/*", self.provider),
        }
    }
}

/// `router:` — classification threshold, retries and blacklist durations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterConfig {
    /// Estimated input tokens above which a request is `long_context`.
    pub long_context_threshold: u64,
    /// Upstream attempts per request, the first included.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubles each time up to `backoff_max`.
    pub backoff: Seconds,
    pub backoff_max: Seconds,
    /// A `Retry-After` up to this long is waited for; a longer one moves to the next target.
    pub max_retry_after: Seconds,
    pub blacklist: BlacklistConfig,
    pub sessions: SessionsConfig,
}

/// `router.sessions`: how long an idle conversation is remembered, and how many at most.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    pub ttl: Seconds,
    pub max: usize,
    /// How often expired sessions are swept out.
    pub sweep_every: Seconds,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            ttl: Seconds(Duration::from_secs(2 * 3600)),
            max: 10_000,
            sweep_every: Seconds(Duration::from_secs(600)),
        }
    }
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            long_context_threshold: 60_000,
            max_attempts: 3,
            backoff: Seconds(Duration::from_millis(250)),
            backoff_max: Seconds(Duration::from_secs(5)),
            max_retry_after: Seconds(Duration::from_secs(10)),
            blacklist: BlacklistConfig::default(),
            sessions: SessionsConfig::default(),
        }
    }
}

/// How long a target sits out after each kind of failure. A 400 (the request's own fault)
/// blacklists nothing; a success clears the entry.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlacklistConfig {
    /// 429 without a `Retry-After`.
    pub rate_limited: Seconds,
    /// 401 and 403.
    pub auth: Seconds,
    /// Connection errors and timeouts.
    pub network: Seconds,
    /// 5xx and 529.
    pub server_error: Seconds,
}

impl Default for BlacklistConfig {
    fn default() -> Self {
        BlacklistConfig {
            rate_limited: Seconds(Duration::from_secs(60)),
            auth: Seconds(Duration::from_secs(300)),
            network: Seconds(Duration::from_secs(120)),
            server_error: Seconds(Duration::from_secs(60)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_route_forms_parse() {
        let yaml = "default: [a/x, b/y]\nthinking: { strategy: priority, targets: [a/x, { target: b/m/n, weight: 3 }] }\n";
        let routes: RoutesConfig = serde_norway::from_str(yaml).unwrap();
        assert_eq!(routes.default.strategy, Strategy::RoundRobin);
        assert_eq!(routes.default.targets.len(), 2);
        let thinking = routes.thinking.unwrap();
        assert_eq!(thinking.strategy, Strategy::Priority);
        assert_eq!(thinking.targets[1].weight, 3);
        assert_eq!(thinking.targets[1].spec.model.as_deref(), Some("m/n"));
    }

    #[test]
    fn route_errors_name_the_place() {
        let err = serde_norway::from_str::<RoutesConfig>(
            "default: { strategy: random, targets: [a/x] }\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("random"), "{err}");
        let err =
            serde_norway::from_str::<RoutesConfig>("default: [a/x, { target: b/y, weight: 0 }]\n")
                .unwrap_err();
        assert!(err.to_string().contains("weight 0"), "{err}");
        let err =
            serde_norway::from_str::<RoutesConfig>("default: [a/x, { target: b/y, wieght: 2 }]\n")
                .unwrap_err();
        assert!(err.to_string().contains("wieght"), "{err}");
    }

    #[test]
    fn target_splits_at_first_slash() {
        let t = TargetSpec::parse("or/meta-llama/llama-3").unwrap();
        assert_eq!(t.provider, "or");
        assert_eq!(t.model.as_deref(), Some("meta-llama/llama-3"));
        assert_eq!(TargetSpec::parse("anthropic").unwrap().model, None);
        assert!(TargetSpec::parse("/x").is_err());
        assert!(TargetSpec::parse("x/").is_err());
    }
}
