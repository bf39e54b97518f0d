//! Which scenario a request belongs to, in this order (docs/architecture.md): explicit `provider/model` →
//! `long_context` → `background` → `web_search` → `thinking` → `default`.

use crate::anthropic::MessagesRequest;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    Explicit,
    LongContext,
    Background,
    WebSearch,
    Thinking,
    Default,
}

impl Scenario {
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Explicit => "explicit",
            Scenario::LongContext => "long_context",
            Scenario::Background => "background",
            Scenario::WebSearch => "web_search",
            Scenario::Thinking => "thinking",
            Scenario::Default => "default",
        }
    }
}

/// An explicit target named in the request's `model`.
#[derive(Debug, PartialEq, Eq)]
pub struct Explicit<'a> {
    pub provider: &'a str,
    pub model: &'a str,
}

/// `provider/model` or `provider,model` in `model`, split at the first `/` or `,`, when the
/// prefix names a configured provider (model ids such as `meta-llama/llama-3` contain `/`).
pub fn explicit_target<'a>(
    model: &'a str,
    is_provider: impl Fn(&str) -> bool,
) -> Option<Explicit<'a>> {
    let split = model.find(['/', ','])?;
    let (provider, rest) = (&model[..split], &model[split + 1..]);
    (is_provider(provider) && !rest.is_empty()).then_some(Explicit {
        provider,
        model: rest,
    })
}

/// Classifies a request that named no explicit target.
pub fn classify(request: &MessagesRequest, long_context_threshold: u64) -> Scenario {
    let facts = request.facts();
    if request.input_estimate() > long_context_threshold {
        Scenario::LongContext
    } else if request.model().contains("haiku") {
        Scenario::Background
    } else if facts.web_search {
        Scenario::WebSearch
    } else if facts.thinking_enabled {
        Scenario::Thinking
    } else {
        Scenario::Default
    }
}
