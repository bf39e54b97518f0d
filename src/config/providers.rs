//! `providers:` — one struct per provider `type`, each with its own fields, defaults and
//! unknown-key errors. A provider is read straight into the struct its `type` names, so
//! every error keeps the field path and line the YAML parser knows.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::values::{ConfigString, HttpUrl, Seconds, Secret};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Anthropic,
    /// Any OpenAI-compatible Chat Completions API (DeepSeek, OpenRouter, Groq, vLLM…).
    Openai,
    /// AWS CodeWhisperer through Kiro accounts.
    Codewhisperer,
    /// Google's Gemini API (`generativelanguage.googleapis.com`).
    Gemini,
}

/// One configured provider, by its `type`.
#[derive(Debug, Clone)]
pub enum ProviderConfig {
    Anthropic(AnthropicConfig),
    Openai(OpenAiConfig),
    Codewhisperer(CodeWhispererConfig),
    Gemini(GeminiConfig),
}

/// `type: anthropic` — the pass-through.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnthropicConfig {
    #[serde(rename = "type")]
    _type: IgnoredAny,
    /// Where ccr's own path begins (`https://api.anthropic.com`).
    pub base_url: Option<HttpUrl>,
    /// The provider's key. Without one the client's own key is passed through (only when
    /// ccr has no `server.api_key`).
    pub api_key: Option<Secret>,
    /// Several keys of one account pool: each key becomes its own target (`name#1`…).
    #[serde(default)]
    pub api_keys: Vec<Secret>,
    /// `anthropic-beta` flags removed before forwarding (an upstream answers 400 to flags it
    /// does not know).
    #[serde(default)]
    pub drop_beta_flags: Vec<String>,
    #[serde(default)]
    pub timeouts: UpstreamTimeouts,
}

/// `type: openai` — any OpenAI-compatible Chat Completions API, converted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiConfig {
    #[serde(rename = "type")]
    _type: IgnoredAny,
    /// Up to the API version (`https://api.deepseek.com/v1`).
    pub base_url: Option<HttpUrl>,
    pub api_key: Option<Secret>,
    /// Several keys: each becomes its own target (`name#1`…).
    #[serde(default)]
    pub api_keys: Vec<Secret>,
    #[serde(default)]
    pub timeouts: UpstreamTimeouts,
    /// Extra static headers sent with every request (OpenRouter's `HTTP-Referer`, `X-Title`).
    #[serde(default)]
    pub headers: BTreeMap<String, ConfigString>,
    /// Per-model options, keyed by the upstream model name.
    #[serde(default)]
    pub models: BTreeMap<String, ModelConfig>,
}

/// `type: codewhisperer` — AWS CodeWhisperer through Kiro accounts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeWhispererConfig {
    #[serde(rename = "type")]
    _type: IgnoredAny,
    pub base_url: Option<HttpUrl>,
    /// The Kiro accounts, each its own target (`kiro:work`).
    pub accounts: Vec<String>,
    /// The AWS region, part of the default host.
    pub region: Option<String>,
    /// Client model name → CodeWhisperer model id, over the known defaults.
    #[serde(default)]
    pub model_ids: BTreeMap<String, String>,
    /// Where social (GitHub/Google) logins refresh their token.
    pub refresh_url: Option<HttpUrl>,
    /// Where IdC logins refresh; `{region}` is the token's region.
    pub idc_refresh_url: Option<ConfigString>,
    #[serde(default)]
    pub timeouts: UpstreamTimeouts,
}

/// `type: gemini` — Google's Gemini API, converted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeminiConfig {
    #[serde(rename = "type")]
    _type: IgnoredAny,
    /// Where the API's versioned paths begin (`https://generativelanguage.googleapis.com`).
    pub base_url: Option<HttpUrl>,
    /// Sent as `x-goog-api-key`, never in the URL (URLs end up in logs).
    pub api_key: Option<Secret>,
    /// Several keys: each becomes its own target (`name#1`…).
    #[serde(default)]
    pub api_keys: Vec<Secret>,
    #[serde(default)]
    pub timeouts: UpstreamTimeouts,
    /// Per-model options, keyed by the upstream model name.
    #[serde(default)]
    pub models: BTreeMap<String, GeminiModelConfig>,
}

/// What ccr needs to know about one Gemini model.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeminiModelConfig {
    /// The most output tokens the model accepts; a request's `max_tokens` is clamped to it.
    pub max_tokens: Option<u64>,
    /// The largest `thinkingBudget` the model accepts (Gemini answers 400 beyond it);
    /// 24576 when not given, the limit of the Flash models and within Pro's.
    pub max_thinking_budget: Option<u64>,
    /// The model takes a full JSON Schema as `parametersJsonSchema`: tool schemas then go
    /// as the client wrote them instead of cut down to Gemini's OpenAPI subset.
    pub parameters_json_schema: bool,
}

/// What ccr needs to know about one upstream model of a converting provider.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// The most output tokens the model accepts; a request's `max_tokens` is clamped to it.
    pub max_tokens: Option<u64>,
    /// The model takes `reasoning_effort`: a request with thinking on asks for it.
    pub reasoning_effort: bool,
    /// The model wants its earlier reasoning back as `reasoning_content` in the history
    /// (DeepSeek-reasoner style tool loops); otherwise history thinking blocks are dropped.
    pub reasoning_content: bool,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamTimeouts {
    pub connect: Seconds,
    /// Until the response's first body bytes (thinking models are slow to start).
    pub first_byte: Seconds,
    /// Between two chunks of a response body.
    pub idle: Seconds,
    /// The whole response, from sending to its last byte; none by default (an agent's
    /// answer can stream for many minutes).
    pub total: Option<Seconds>,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        UpstreamTimeouts {
            connect: Seconds(Duration::from_secs(10)),
            first_byte: Seconds(Duration::from_secs(300)),
            idle: Seconds(Duration::from_secs(300)),
            total: None,
        }
    }
}

impl OpenAiConfig {
    /// Options for `model`, or the defaults when the config does not list it.
    pub fn model(&self, model: &str) -> ModelConfig {
        self.models.get(model).cloned().unwrap_or_default()
    }

    pub fn key(&self) -> Option<&Secret> {
        self.api_key.as_ref().filter(|k| !k.is_empty())
    }
}

impl GeminiConfig {
    /// Options for `model`, or the defaults when the config does not list it.
    pub fn model(&self, model: &str) -> GeminiModelConfig {
        self.models.get(model).cloned().unwrap_or_default()
    }

    pub fn key(&self) -> Option<&Secret> {
        self.api_key.as_ref().filter(|k| !k.is_empty())
    }
}

impl AnthropicConfig {
    pub fn key(&self) -> Option<&Secret> {
        self.api_key.as_ref().filter(|k| !k.is_empty())
    }
}

/// What [`ProviderConfig::validate`] reports: the field under `providers.<name>` and why.
pub(crate) struct Invalid {
    pub field: String,
    pub message: String,
}

impl ProviderConfig {
    pub fn kind(&self) -> ProviderKind {
        match self {
            ProviderConfig::Anthropic(_) => ProviderKind::Anthropic,
            ProviderConfig::Openai(_) => ProviderKind::Openai,
            ProviderConfig::Codewhisperer(_) => ProviderKind::Codewhisperer,
            ProviderConfig::Gemini(_) => ProviderKind::Gemini,
        }
    }

    pub fn timeouts(&self) -> &UpstreamTimeouts {
        match self {
            ProviderConfig::Anthropic(c) => &c.timeouts,
            ProviderConfig::Openai(c) => &c.timeouts,
            ProviderConfig::Codewhisperer(c) => &c.timeouts,
            ProviderConfig::Gemini(c) => &c.timeouts,
        }
    }

    /// Where ccr's own path begins, given or the type's default.
    pub fn base_url(&self) -> url::Url {
        let given = match self {
            ProviderConfig::Anthropic(c) => &c.base_url,
            ProviderConfig::Openai(c) => &c.base_url,
            ProviderConfig::Codewhisperer(c) => &c.base_url,
            ProviderConfig::Gemini(c) => &c.base_url,
        };
        if let Some(url) = given {
            return url.0.clone();
        }
        let default = match self {
            ProviderConfig::Anthropic(_) => "https://api.anthropic.com".to_string(),
            ProviderConfig::Openai(_) => "https://api.openai.com/v1".to_string(),
            ProviderConfig::Codewhisperer(c) => format!(
                "https://codewhisperer.{}.amazonaws.com",
                c.region.as_deref().unwrap_or("us-east-1")
            ),
            ProviderConfig::Gemini(_) => "https://generativelanguage.googleapis.com".to_string(),
        };
        url::Url::parse(&default).unwrap_or_else(|_| {
            url::Url::parse("https://codewhisperer.us-east-1.amazonaws.com")
                .expect("valid default URL")
        })
    }

    /// The provider's own key, for the types that have one.
    pub fn key(&self) -> Option<&Secret> {
        match self {
            ProviderConfig::Anthropic(c) => c.key(),
            ProviderConfig::Openai(c) => c.key(),
            ProviderConfig::Gemini(c) => c.key(),
            ProviderConfig::Codewhisperer(_) => None,
        }
    }

    /// The Kiro accounts of a codewhisperer provider; none for other types.
    pub fn accounts(&self) -> &[String] {
        match self {
            ProviderConfig::Codewhisperer(c) => &c.accounts,
            _ => &[],
        }
    }

    /// One config per key of `api_keys` (labelled `name#N`) or per CodeWhisperer account
    /// (`name:account`); otherwise this config as is.
    pub fn per_key(&self, name: &str) -> Vec<(String, ProviderConfig)> {
        match self {
            ProviderConfig::Codewhisperer(c) => c
                .accounts
                .iter()
                .map(|account| {
                    let one = CodeWhispererConfig {
                        accounts: vec![account.clone()],
                        ..c.clone()
                    };
                    (
                        format!("{name}:{account}"),
                        ProviderConfig::Codewhisperer(one),
                    )
                })
                .collect(),
            ProviderConfig::Anthropic(c) if !c.api_keys.is_empty() => {
                labelled_keys(name, &c.api_keys, |key| {
                    ProviderConfig::Anthropic(AnthropicConfig {
                        api_key: Some(key),
                        api_keys: Vec::new(),
                        ..c.clone()
                    })
                })
            }
            ProviderConfig::Openai(c) if !c.api_keys.is_empty() => {
                labelled_keys(name, &c.api_keys, |key| {
                    ProviderConfig::Openai(OpenAiConfig {
                        api_key: Some(key),
                        api_keys: Vec::new(),
                        ..c.clone()
                    })
                })
            }
            ProviderConfig::Gemini(c) if !c.api_keys.is_empty() => {
                labelled_keys(name, &c.api_keys, |key| {
                    ProviderConfig::Gemini(GeminiConfig {
                        api_key: Some(key),
                        api_keys: Vec::new(),
                        ..c.clone()
                    })
                })
            }
            _ => vec![(name.to_string(), self.clone())],
        }
    }

    /// Checks what no single field can check alone; the field is relative to
    /// `providers.<name>`.
    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        let invalid = |field: &str, message: String| Invalid {
            field: field.to_string(),
            message,
        };
        let keys_beside_key = |key: &Option<Secret>, keys: &[Secret]| {
            if key.is_some() && !keys.is_empty() {
                return Err(invalid(
                    "api_keys",
                    "cannot be given beside `api_key`: keep one of them".into(),
                ));
            }
            Ok(())
        };
        match self {
            ProviderConfig::Anthropic(c) => keys_beside_key(&c.api_key, &c.api_keys),
            ProviderConfig::Openai(c) => {
                keys_beside_key(&c.api_key, &c.api_keys)?;
                for (header, value) in &c.headers {
                    let valid = http::HeaderName::try_from(header.as_str()).is_ok()
                        && http::HeaderValue::try_from(value.0.as_str()).is_ok();
                    if !valid {
                        return Err(invalid(
                            &format!("headers.{header}"),
                            "is not a valid HTTP header name and value".into(),
                        ));
                    }
                }
                Ok(())
            }
            ProviderConfig::Gemini(c) => {
                keys_beside_key(&c.api_key, &c.api_keys)?;
                if c.api_key.is_none() && c.api_keys.is_empty() {
                    return Err(invalid(
                        "api_key",
                        "a gemini provider needs a key: give `api_key` (e.g. `\"${GEMINI_API_KEY}\"`) or `api_keys`".into(),
                    ));
                }
                Ok(())
            }
            ProviderConfig::Codewhisperer(c) => {
                if c.accounts.is_empty() {
                    return Err(invalid(
                        "accounts",
                        "a codewhisperer provider needs at least one Kiro account name, e.g. `accounts: [work]`".into(),
                    ));
                }
                match c.accounts.iter().find(|a| !is_account_name(a)) {
                    Some(bad) => Err(invalid(
                        "accounts",
                        format!("`{bad}` is not an account name: use letters, digits, `-` and `_`"),
                    )),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Account names become file names and keyring entries: a safe, small alphabet.
pub fn is_account_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn labelled_keys(
    name: &str,
    keys: &[Secret],
    one: impl Fn(Secret) -> ProviderConfig,
) -> Vec<(String, ProviderConfig)> {
    keys.iter()
        .enumerate()
        .map(|(i, key)| (format!("{name}#{}", i + 1), one(key.clone())))
        .collect()
}

thread_local! {
    /// Each provider's `type`, read in a first look at the file, so that its entry can be
    /// read straight into that type's struct (buffering it to find the tag would lose the
    /// field paths and lines of its errors).
    static KINDS: RefCell<HashMap<String, ProviderKind>> = RefCell::new(HashMap::new());
}

/// The `type` the first look found for provider `name`.
pub(crate) fn kind_of(name: &str) -> Option<ProviderKind> {
    KINDS.with(|cell| cell.borrow().get(name).copied())
}

/// Runs `f` with the providers' types found in `text`.
pub(crate) fn with_kinds_of<T>(text: &str, f: impl FnOnce() -> T) -> T {
    #[derive(Deserialize)]
    struct Look {
        #[serde(default)]
        providers: Option<BTreeMap<String, TypeOnly>>,
    }
    #[derive(Deserialize)]
    struct TypeOnly {
        #[serde(rename = "type")]
        kind: Option<ProviderKind>,
    }
    // Errors are left to the real parse, which reports them with their place.
    let kinds: HashMap<String, ProviderKind> = serde_norway::from_str::<Look>(text)
        .ok()
        .and_then(|look| look.providers)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, entry)| entry.kind.map(|kind| (name, kind)))
        .collect();
    KINDS.with(|cell| *cell.borrow_mut() = kinds);
    let out = f();
    KINDS.with(|cell| cell.borrow_mut().clear());
    out
}

/// `providers:` as a map from name to typed config.
pub(crate) fn deserialize_providers<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<BTreeMap<String, ProviderConfig>>, D::Error> {
    struct ProvidersVisitor;
    impl<'de> Visitor<'de> for ProvidersVisitor {
        type Value = Option<BTreeMap<String, ProviderConfig>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of provider names to `{ type: …, … }`")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Some(BTreeMap::new()))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut providers = BTreeMap::new();
            while let Some(name) = map.next_key::<String>()? {
                let kind = kind_of(&name);
                providers.insert(name, map.next_value_seed(ProviderSeed(kind))?);
            }
            Ok(Some(providers))
        }
    }
    deserializer.deserialize_map(ProvidersVisitor)
}

/// Reads one provider entry into the struct of its `type`.
struct ProviderSeed(Option<ProviderKind>);

impl<'de> DeserializeSeed<'de> for ProviderSeed {
    type Value = ProviderConfig;

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<ProviderConfig, D::Error> {
        match self.0 {
            Some(ProviderKind::Anthropic) => {
                AnthropicConfig::deserialize(deserializer).map(ProviderConfig::Anthropic)
            }
            Some(ProviderKind::Openai) => {
                OpenAiConfig::deserialize(deserializer).map(ProviderConfig::Openai)
            }
            Some(ProviderKind::Codewhisperer) => {
                CodeWhispererConfig::deserialize(deserializer).map(ProviderConfig::Codewhisperer)
            }
            Some(ProviderKind::Gemini) => {
                GeminiConfig::deserialize(deserializer).map(ProviderConfig::Gemini)
            }
            // No readable `type`: reading it again names the problem where it is.
            None => {
                #[derive(Deserialize)]
                struct TypeOnly {
                    #[serde(rename = "type")]
                    _kind: ProviderKind,
                }
                TypeOnly::deserialize(deserializer)?;
                Err(de::Error::custom("cannot read this provider's `type`"))
            }
        }
    }
}
