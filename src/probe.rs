//! `ccr providers test`: three probes of each configured target through the real provider
//! code — a plain answer, a streamed one (time to first token) and a tool call — so that a
//! wrong key, a retired model or a broken conversion shows before a client meets it.
//!
//! The probes go straight to the providers, not through a running server: routing,
//! failover and blacklists would hide which target is broken.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue};
use serde::Serialize;
use serde_json::{Value, json};

use crate::anthropic::MessagesRequest;
use crate::anthropic::events::{BlockKind, Delta, StreamEvent};
use crate::anthropic::sse::{SseHandler, SseLine, SseReader};
use crate::config::{Config, ProviderConfig, ProviderKind};
use crate::credentials::manager::{TokenManager, accounts_in};
use crate::providers::{
    self, BuildContext, BuildError, Call, Provider, ProviderError, Reply, ReplyBody,
};

/// How much of an answer's text and tool input a probe keeps: a probe needs a glance, and an
/// upstream must not be able to grow ccr's memory with an endless answer.
const KEEP: usize = 64 << 10;

/// The largest non-streaming answer a probe reads: its few words are far below this.
const MAX_MESSAGE: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no provider named `{name}` in the configuration (configured: {known})")]
    UnknownProvider { name: String, known: String },
    #[error("the configuration has no providers to test")]
    NoProviders,
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// The three probes, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    /// A non-streaming request for a short text.
    Text,
    /// A streaming request; its time to first token is measured.
    Stream,
    /// A streaming request that must call a trivial tool with valid JSON input.
    Tool,
}

impl Probe {
    pub const ALL: [Probe; 3] = [Probe::Text, Probe::Stream, Probe::Tool];

    pub fn as_str(self) -> &'static str {
        match self {
            Probe::Text => "text",
            Probe::Stream => "stream",
            Probe::Tool => "tool",
        }
    }

    fn body(self, model: &str) -> Value {
        let ask = |text: &str, stream: bool| {
            json!({
                "model": model,
                "max_tokens": 512,
                "stream": stream,
                "messages": [{"role": "user", "content": text}],
            })
        };
        match self {
            Probe::Text => ask("Reply with the single word: ok", false),
            Probe::Stream => ask("Count from 1 to 5, separated by spaces.", true),
            Probe::Tool => {
                let mut body = ask("What is 2 + 3? Use the add tool.", true);
                body["tools"] = json!([{
                    "name": "add",
                    "description": "Adds two integers and returns their sum.",
                    "input_schema": {
                        "type": "object",
                        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                        "required": ["a", "b"],
                    },
                }]);
                body["tool_choice"] = json!({"type": "any"});
                body
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    Failed,
    /// Nothing was sent: the row says what the probe needs.
    Skipped,
}

/// One probe of one target, as the table and `--json` show it.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    /// The provider's name in the config.
    pub provider: String,
    /// The target's label (`deepseek#2`, `kiro:work`).
    pub target: String,
    pub model: Option<String>,
    /// `None` on a skipped target's one row.
    pub probe: Option<Probe>,
    pub verdict: Verdict,
    /// From sending to the answer's end.
    pub latency_ms: Option<u64>,
    /// From sending to the first text or thinking (streaming probes).
    pub ttft_ms: Option<u64>,
    /// The failure class (`auth`, `network`, …) when the upstream or ccr classified it.
    pub class: Option<String>,
    /// Why it failed or was skipped, in one line.
    pub error: Option<String>,
}

/// A target ready to probe with one model, or the reason it cannot be.
pub struct Planned {
    pub provider: String,
    pub target: String,
    pub model: Option<String>,
    plan: Plan,
}

enum Plan {
    Probe(Arc<dyn Provider>),
    Skip(String),
}

impl Planned {
    /// How many results [`run`] gives for this target.
    pub fn results(&self) -> usize {
        match (&self.plan, &self.model) {
            (Plan::Probe(_), Some(_)) => Probe::ALL.len(),
            _ => 1,
        }
    }
}

/// Every target of the selected providers, each with every model routed to it (or the one
/// `--model` names), and the token manager their CodeWhisperer accounts read.
pub struct Prepared {
    pub targets: Vec<Planned>,
    tokens: Arc<TokenManager>,
}

impl Prepared {
    /// Saves tokens that were renewed while probing and could not be saved at once.
    pub async fn finish(self) {
        self.tokens.save_unsaved().await;
    }
}

/// Builds the probes for `names` (all providers when empty).
pub async fn prepare(
    config: &Config,
    names: &[String],
    model: Option<&str>,
    client: reqwest::Client,
) -> Result<Prepared, ProbeError> {
    let selected = select(config, names)?;
    let tokens = TokenManager::for_config(config, client);
    let wanted = |account: &String| selected.iter().any(|(_, p)| p.accounts().contains(account));
    let accounts = accounts_in(config)
        .into_iter()
        .filter(|(account, _)| wanted(account))
        .collect();
    tokens.set_accounts(accounts).await;
    let context = BuildContext {
        tokens: tokens.clone(),
    };
    let mut targets = Vec::new();
    for (name, provider) in selected {
        let models = match model {
            Some(model) => vec![Some(model.to_string())],
            None => routed_models(config, name),
        };
        let skip = skip_reason(name, provider);
        for (label, upstream) in providers::build(name, provider, &context)? {
            for model in &models {
                let plan = match (&skip, model) {
                    (Some(reason), _) => Plan::Skip(reason.clone()),
                    (None, None) => Plan::Skip(format!(
                        "no route names a model for `{name}`: pass --model to test it"
                    )),
                    (None, Some(_)) => Plan::Probe(upstream.clone()),
                };
                targets.push(Planned {
                    provider: name.to_string(),
                    target: label.clone(),
                    model: model.clone(),
                    plan,
                });
            }
        }
    }
    Ok(Prepared { targets, tokens })
}

/// The providers to test, in the config's order.
fn select<'c>(
    config: &'c Config,
    names: &[String],
) -> Result<Vec<(&'c str, &'c ProviderConfig)>, ProbeError> {
    if config.providers.is_empty() {
        return Err(ProbeError::NoProviders);
    }
    if let Some(unknown) = names.iter().find(|n| !config.providers.contains_key(*n)) {
        return Err(ProbeError::UnknownProvider {
            name: unknown.clone(),
            known: config
                .providers
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(config
        .providers
        .iter()
        .filter(|(name, _)| names.is_empty() || names.contains(name))
        .map(|(name, provider)| (name.as_str(), provider))
        .collect())
}

/// The models the routes send to `provider`, each once, in the routes' order; `[None]`
/// when a route names the provider without a model (the client's model passes) or none
/// routes to it.
fn routed_models(config: &Config, provider: &str) -> Vec<Option<String>> {
    let mut models: Vec<Option<String>> = Vec::new();
    let routed = config
        .routes
        .all()
        .flat_map(|(_, route)| &route.targets)
        .filter(|target| target.spec.provider == provider)
        .filter_map(|target| target.spec.model.clone());
    for model in routed {
        if !models.contains(&Some(model.clone())) {
            models.push(Some(model));
        }
    }
    if models.is_empty() {
        models.push(None);
    }
    models
}

/// A pass-through without its own key forwards each client's key: ccr has none to probe
/// with.
fn skip_reason(name: &str, provider: &ProviderConfig) -> Option<String> {
    let keyless = matches!(provider.kind(), ProviderKind::Anthropic) && provider.key().is_none();
    keyless.then(|| {
        format!(
            "no api_key: this pass-through forwards each client's own key; set providers.{name}.api_key to test it"
        )
    })
}

/// Runs the three probes of one target one after another (an upstream's rate limit should
/// not fail a probe that a client's pace would pass), each within `timeout`, handing each
/// result to `done` as it is known.
pub async fn run(
    planned: &Planned,
    timeout: Duration,
    done: &(dyn Fn(&ProbeResult) + Sync),
) -> Vec<ProbeResult> {
    let row = |probe, outcome: Outcome| ProbeResult {
        provider: planned.provider.clone(),
        target: planned.target.clone(),
        model: planned.model.clone(),
        probe,
        verdict: outcome.verdict,
        latency_ms: outcome.latency.map(millis),
        ttft_ms: outcome.ttft.map(millis),
        class: outcome.class,
        error: outcome.error,
    };
    let (upstream, model) = match (&planned.plan, &planned.model) {
        (Plan::Probe(upstream), Some(model)) => (upstream, model),
        (Plan::Skip(reason), _) => {
            let result = row(None, Outcome::skipped(reason.clone()));
            done(&result);
            return vec![result];
        }
        (Plan::Probe(_), None) => {
            let result = row(None, Outcome::skipped("no model to probe".into()));
            done(&result);
            return vec![result];
        }
    };
    let mut results = Vec::new();
    for probe in Probe::ALL {
        let started = Instant::now();
        let outcome = tokio::time::timeout(timeout, probe_once(upstream.as_ref(), model, probe))
            .await
            .unwrap_or_else(|_| {
                Outcome::failed(
                    Some("timeout"),
                    format!("no complete answer within {}s", timeout.as_secs_f64()),
                )
            })
            .timed(started.elapsed());
        let result = row(Some(probe), outcome);
        done(&result);
        results.push(result);
    }
    results
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What one probe found.
struct Outcome {
    verdict: Verdict,
    latency: Option<Duration>,
    ttft: Option<Duration>,
    class: Option<String>,
    error: Option<String>,
}

impl Outcome {
    fn passed(ttft: Option<Duration>) -> Outcome {
        Outcome {
            verdict: Verdict::Passed,
            latency: None,
            ttft,
            class: None,
            error: None,
        }
    }

    fn failed(class: Option<&str>, error: String) -> Outcome {
        Outcome {
            verdict: Verdict::Failed,
            latency: None,
            ttft: None,
            class: class.map(str::to_string),
            error: Some(one_line(&error)),
        }
    }

    fn skipped(reason: String) -> Outcome {
        Outcome {
            verdict: Verdict::Skipped,
            latency: None,
            ttft: None,
            class: None,
            error: Some(reason),
        }
    }

    fn timed(mut self, latency: Duration) -> Outcome {
        if self.verdict != Verdict::Skipped {
            self.latency = Some(latency);
        }
        self
    }

    fn of_error(error: &ProviderError) -> Outcome {
        Outcome::failed(Some(error.failure.class.as_str()), error.to_string())
    }
}

/// An error on one line and of a length a table cell can hold.
fn one_line(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

async fn probe_once(upstream: &dyn Provider, model: &str, probe: Probe) -> Outcome {
    let started = Instant::now();
    let body = Bytes::from(probe.body(model).to_string());
    let request = match MessagesRequest::parse(body) {
        Ok(request) => request,
        Err(error) => return Outcome::failed(None, format!("ccr built a bad probe: {error}")),
    };
    let headers = probe_headers();
    let call = Call {
        request: &request,
        client_headers: &headers,
        model,
        forward_client_auth: false,
    };
    let reply = match upstream.send(call).await {
        Ok(reply) => reply,
        Err(error) => return Outcome::of_error(&error),
    };
    let mut heard = Heard::new(started);
    if let Err(error) = heard.read(reply).await {
        return Outcome::of_error(&error);
    }
    heard.verdict(probe)
}

/// What Claude Code sends beside its body, as far as an upstream reads it.
fn probe_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers
}

/// An answer as the client would see it, whatever form it came in.
struct Heard {
    started: Instant,
    first_token: Option<Duration>,
    text: String,
    thought: bool,
    /// Tool calls: name and the input JSON as it arrived.
    tools: Vec<(String, String)>,
    stop_reason: Option<String>,
    /// An `error` the answer itself carried.
    error: Option<(Option<String>, String)>,
    /// A pass-through's SSE or JSON that ccr could not read.
    unreadable: Option<String>,
}

impl Heard {
    fn new(started: Instant) -> Heard {
        Heard {
            started,
            first_token: None,
            text: String::new(),
            thought: false,
            tools: Vec::new(),
            stop_reason: None,
            error: None,
            unreadable: None,
        }
    }

    /// Reads the answer to its end; a pass-through's bytes are SSE or one JSON message, as
    /// its content type says.
    async fn read(&mut self, reply: Reply) -> Result<(), ProviderError> {
        let is_sse = reply
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        match reply.body {
            ReplyBody::Events(mut events) => {
                while let Some(event) = events.next().await {
                    self.event(event?);
                }
            }
            ReplyBody::Bytes { mut stream, .. } => {
                let mut sse = SseReader::default();
                let mut json = Vec::new();
                let mut oversized = false;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    if is_sse {
                        sse.feed(&chunk, self);
                    } else if json.len() + chunk.len() <= MAX_MESSAGE {
                        json.extend_from_slice(&chunk);
                    } else {
                        oversized = true;
                    }
                }
                sse.finish(self);
                if oversized {
                    self.unreadable = Some(format!(
                        "the answer is over {MAX_MESSAGE} bytes, more than a probe asks for"
                    ));
                } else if !is_sse {
                    self.message(&json);
                }
            }
        }
        Ok(())
    }

    fn token_arrived(&mut self) {
        self.first_token
            .get_or_insert_with(|| self.started.elapsed());
    }

    fn add_text(&mut self, more: &str) {
        self.token_arrived();
        if self.text.len() + more.len() <= KEEP {
            self.text.push_str(more);
        }
    }

    fn add_input(&mut self, more: &str) {
        if let Some((_, json)) = self.tools.last_mut()
            && json.len() + more.len() <= KEEP
        {
            json.push_str(more);
        }
    }

    /// One converted event.
    fn event(&mut self, event: StreamEvent) {
        match event {
            StreamEvent::BlockStart {
                block: BlockKind::ToolUse { name, .. },
                ..
            } => self.tools.push((name, String::new())),
            StreamEvent::Delta { delta, .. } => match delta {
                Delta::Text(text) => self.add_text(&text),
                Delta::Thinking(_) => {
                    self.token_arrived();
                    self.thought = true;
                }
                Delta::InputJson(json) => self.add_input(&json),
                Delta::Signature(_) => {}
            },
            StreamEvent::MessageDelta { stop_reason, .. } => {
                self.stop_reason = serde_json::to_value(stop_reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string));
            }
            StreamEvent::Error(failed) => {
                self.error = Some((
                    Some(failed.failure.class.as_str().to_string()),
                    failed.error.message,
                ))
            }
            _ => {}
        }
    }

    /// One event of a pass-through's SSE.
    fn wire_event(&mut self, event: &Value) {
        let text =
            |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
        match event.get("type").and_then(Value::as_str) {
            Some("content_block_start") => {
                let block = &event["content_block"];
                if block["type"] == "tool_use" {
                    self.tools.push((text(block, "name"), String::new()));
                }
            }
            Some("content_block_delta") => {
                let delta = &event["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => self.add_text(&text(delta, "text")),
                    Some("thinking_delta") => {
                        self.token_arrived();
                        self.thought = true;
                    }
                    Some("input_json_delta") => self.add_input(&text(delta, "partial_json")),
                    _ => {}
                }
            }
            Some("message_delta") => {
                self.stop_reason = event["delta"]["stop_reason"].as_str().map(str::to_string);
            }
            Some("error") => {
                self.error = Some((
                    event["error"]["type"].as_str().map(str::to_string),
                    text(&event["error"], "message"),
                ))
            }
            _ => {}
        }
    }

    /// A pass-through's non-streaming `message`.
    fn message(&mut self, bytes: &[u8]) {
        let Ok(message) = serde_json::from_slice::<Value>(bytes) else {
            self.unreadable = Some("the answer is not a JSON message".into());
            return;
        };
        for block in message["content"].as_array().into_iter().flatten() {
            match block["type"].as_str() {
                Some("text") => self.add_text(block["text"].as_str().unwrap_or("")),
                Some("thinking") => self.thought = true,
                Some("tool_use") => {
                    let name = block["name"].as_str().unwrap_or("").to_string();
                    self.tools.push((name, block["input"].to_string()));
                }
                _ => {}
            }
        }
        self.stop_reason = message["stop_reason"].as_str().map(str::to_string);
    }

    fn verdict(self, probe: Probe) -> Outcome {
        if let Some((class, message)) = self.error {
            return Outcome::failed(class.as_deref(), message);
        }
        if let Some(unreadable) = self.unreadable {
            return Outcome::failed(Some("bad_response"), unreadable);
        }
        let Some(stop_reason) = &self.stop_reason else {
            return Outcome::failed(
                Some("stream_cut"),
                "the answer ended without a stop reason".into(),
            );
        };
        let ttft = (probe != Probe::Text).then_some(self.first_token).flatten();
        match probe {
            Probe::Text | Probe::Stream if self.text.trim().is_empty() && !self.thought => {
                Outcome::failed(
                    Some("bad_response"),
                    format!("the answer had no text (stop reason {stop_reason})"),
                )
            }
            Probe::Text | Probe::Stream => Outcome::passed(ttft),
            Probe::Tool => match self.tools.iter().find(|(name, _)| name == "add") {
                None => Outcome::failed(
                    Some("bad_response"),
                    format!(
                        "the model did not call the add tool (stop reason {stop_reason}; it said: {})",
                        self.text.trim()
                    ),
                ),
                Some((_, input)) => match serde_json::from_str::<Value>(input) {
                    Ok(Value::Object(_)) => Outcome::passed(ttft),
                    _ => Outcome::failed(
                        Some("bad_response"),
                        format!("the tool input is not a JSON object: {input}"),
                    ),
                },
            },
        }
    }
}

impl SseHandler for Heard {
    fn line(&mut self, line: SseLine<'_>) {
        if let SseLine::Data(data) = line {
            match serde_json::from_slice::<Value>(data) {
                Ok(event) => self.wire_event(&event),
                Err(_) => {
                    self.unreadable = Some("the answer's SSE holds a line that is not JSON".into())
                }
            }
        }
    }

    fn oversized(&mut self) {
        self.unreadable = Some("the answer's SSE holds a line over 1 MiB".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_error_becomes_one_short_line() {
        let text = format!("first\nsecond   third {}", "x".repeat(400));
        let line = one_line(&text);
        assert!(line.starts_with("first second third x"), "{line}");
        assert!(!line.contains('\n'));
        assert_eq!(line.chars().count(), 301);
    }

    #[test]
    fn a_pass_through_message_with_a_tool_call_passes_the_tool_probe() {
        let mut heard = Heard::new(Instant::now());
        heard.message(
            br#"{"content":[{"type":"tool_use","id":"t","name":"add","input":{"a":2,"b":3}}],"stop_reason":"tool_use"}"#,
        );
        assert_eq!(heard.verdict(Probe::Tool).verdict, Verdict::Passed);
    }

    #[test]
    fn a_text_answer_fails_the_tool_probe_and_says_what_the_model_said() {
        let mut heard = Heard::new(Instant::now());
        heard.message(
            br#"{"content":[{"type":"text","text":"It is 5."}],"stop_reason":"end_turn"}"#,
        );
        let outcome = heard.verdict(Probe::Tool);
        assert_eq!(outcome.verdict, Verdict::Failed);
        assert!(outcome.error.unwrap().contains("It is 5."));
    }

    #[test]
    fn an_answer_without_a_stop_reason_is_a_cut_stream() {
        let mut heard = Heard::new(Instant::now());
        heard.event(StreamEvent::Delta {
            index: 0,
            delta: Delta::Text("1 2".into()),
        });
        let outcome = heard.verdict(Probe::Stream);
        assert_eq!(
            (outcome.verdict, outcome.class.as_deref()),
            (Verdict::Failed, Some("stream_cut"))
        );
    }
}
