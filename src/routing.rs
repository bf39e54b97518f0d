//! Picks the upstream target for a request. For now the first target of `routes.default`;
//! scenarios, pools, blacklisting and failover grow here.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::anthropic::MessagesRequest;
use crate::config::Config;
use crate::providers::{self, BuildError, Provider};

/// One place a request can go: a provider and the model to ask it for.
pub struct Target {
    pub provider: Arc<dyn Provider>,
    /// `None` keeps the model the client asked for.
    pub model: Option<String>,
    /// The name used in records and logs.
    pub label: String,
}

impl Target {
    /// The upstream model for this request.
    pub fn model_for<'a>(&'a self, request: &'a MessagesRequest) -> &'a str {
        self.model.as_deref().unwrap_or(request.model())
    }
}

pub struct Router {
    default: Vec<Target>,
}

impl Router {
    /// Builds every configured provider once (each with its pooled client) and the routes.
    pub fn new(config: &Config) -> Result<Router, BuildError> {
        let providers: BTreeMap<&str, Arc<dyn Provider>> = config
            .providers
            .iter()
            .map(|(name, p)| Ok((name.as_str(), providers::build(name, p)?)))
            .collect::<Result<_, BuildError>>()?;
        let default: Vec<Target> = config
            .routes
            .default
            .iter()
            .map(|spec| {
                let provider = providers.get(spec.provider.as_str()).ok_or_else(|| {
                    BuildError::UnknownProvider(format!(
                        "`{spec}` names a provider that is not configured"
                    ))
                })?;
                Ok(Target {
                    provider: provider.clone(),
                    model: spec.model.clone(),
                    label: spec.provider.clone(),
                })
            })
            .collect::<Result<_, BuildError>>()?;
        if default.is_empty() {
            return Err(BuildError::UnknownProvider(
                "routes.default is empty".into(),
            ));
        }
        Ok(Router { default })
    }

    pub fn pick(&self, _request: &MessagesRequest) -> &Target {
        &self.default[0]
    }
}
