//! Anthropic Messages request → OpenAI Chat Completions request (see
//! `../shared/protocols/openai.md`, "Request: Anthropic → OpenAI").

use serde_json::{Value, json};

use crate::anthropic::types::{Content, ContentBlock, MessagesBody, Role};
use crate::config::ModelConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("cannot convert the request for an OpenAI-compatible upstream: {0}")]
    Unsupported(String),
}

/// Builds the Chat Completions body for `model`. The upstream is always asked to stream
/// (with usage); a non-streaming client gets the folded stream.
pub fn to_openai(
    body: &MessagesBody,
    model: &str,
    options: &ModelConfig,
) -> Result<Vec<u8>, ConvertError> {
    let mut messages = Vec::new();
    if let Some(system) = &body.system {
        messages.push(json!({"role": "system", "content": system.joined()}));
    }
    for message in &body.messages {
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
        };
        let text = match &message.content {
            Content::Text(text) => text.clone(),
            Content::Blocks(blocks) => blocks
                .iter()
                .filter_map(|b| match b {
                    ContentBlock::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n"),
        };
        messages.push(json!({"role": role, "content": text}));
    }
    let mut out = json!({
        "model": model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if let Some(max_tokens) = body.max_tokens {
        let max_tokens = options
            .max_tokens
            .map_or(max_tokens, |limit| max_tokens.min(limit));
        out["max_tokens"] = Value::from(max_tokens);
    }
    serde_json::to_vec(&out).map_err(|e| ConvertError::Unsupported(e.to_string()))
}
