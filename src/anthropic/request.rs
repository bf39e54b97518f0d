//! The fields of a Messages request that ccr itself reads. The body is parsed once; the rest
//! of it stays as the client's bytes, so a pass-through forwards it unchanged.

use std::ops::Range;
use std::sync::OnceLock;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::types::{BodyError, MessagesBody};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("request body is not valid JSON: {0}")]
    Syntax(String),
    #[error("request body must be a JSON object")]
    NotAnObject,
    #[error("`model`: field required (a model name such as `claude-sonnet-4-5`)")]
    MissingModel,
    #[error("`model`: expected a string")]
    ModelNotString,
    #[error("`stream`: expected true or false")]
    StreamNotBool,
}

/// A Messages request: the client's bytes plus the fields ccr routes on. A converting
/// provider parses the typed body per attempt ([`MessagesRequest::typed`]); the input-token
/// estimate is computed on first use and shared by every attempt.
#[derive(Debug)]
pub struct MessagesRequest {
    body: Bytes,
    model: String,
    /// Byte range of the `model` value (quotes included) inside `body`.
    model_span: Range<usize>,
    stream: bool,
    facts: RoutingFacts,
    input_estimate: OnceLock<u64>,
}

/// The top-level fields ccr reads; everything else is skipped (and validated) by serde.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    #[serde(borrow)]
    stream: Option<&'a RawValue>,
    #[serde(default, borrow)]
    thinking: Option<TypeOnly<'a>>,
    #[serde(default)]
    tools: Option<WebSearchTool>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

/// An object of which only `type` matters here; its other fields are skipped.
#[derive(Deserialize)]
struct TypeOnly<'a> {
    #[serde(default, rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
}

/// Whether a `tools` list holds a `web_search_*` server tool, read without keeping the list.
struct WebSearchTool(bool);

impl<'de> Deserialize<'de> for WebSearchTool {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ToolsVisitor;
        impl<'de> serde::de::Visitor<'de> for ToolsVisitor {
            type Value = WebSearchTool;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of tools")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<WebSearchTool, A::Error> {
                let mut found = false;
                while let Some(tool) = seq.next_element::<TypeOnly<'de>>()? {
                    found |= tool
                        .kind
                        .as_deref()
                        .is_some_and(|k| k.starts_with("web_search"));
                }
                Ok(WebSearchTool(found))
            }
        }
        deserializer.deserialize_seq(ToolsVisitor)
    }
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    user_id: Option<String>,
}

/// What routing needs to know about a request, read in the same single parse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingFacts {
    /// `thinking.type` is `enabled` (Claude Code's `adaptive` main turns are not).
    pub thinking_enabled: bool,
    /// A tool whose `type` starts with `web_search` (a server tool).
    pub web_search: bool,
    /// The session id from `metadata.user_id`, in either of its forms.
    pub session: Option<String>,
}

impl MessagesRequest {
    /// Parses the body once; syntax errors name line and column.
    pub fn parse(body: Bytes) -> Result<MessagesRequest, RequestError> {
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => {}
            Some(_) => return Err(RequestError::NotAnObject),
            None => return Err(RequestError::Syntax("the body is empty".into())),
        }
        let head: Head<'_> =
            serde_json::from_slice(&body).map_err(|e| RequestError::Syntax(e.to_string()))?;
        let raw_model = head.model.ok_or(RequestError::MissingModel)?;
        let model: String =
            serde_json::from_str(raw_model.get()).map_err(|_| RequestError::ModelNotString)?;
        let start = raw_model.get().as_ptr() as usize - body.as_ptr() as usize;
        let model_span = start..start + raw_model.get().len();
        let stream = match head.stream {
            None => false,
            Some(raw) => match raw.get() {
                "true" => true,
                "false" | "null" => false,
                _ => return Err(RequestError::StreamNotBool),
            },
        };
        let facts = RoutingFacts {
            thinking_enabled: head.thinking.and_then(|t| t.kind).as_deref() == Some("enabled"),
            web_search: head.tools.is_some_and(|t| t.0),
            session: head
                .metadata
                .and_then(|m| m.user_id)
                .and_then(|id| session_from_user_id(&id)),
        };
        Ok(MessagesRequest {
            body,
            model,
            model_span,
            stream,
            facts,
            input_estimate: OnceLock::new(),
        })
    }

    /// The body as typed Messages API values, parsed for each attempt that converts and
    /// not kept: a typed copy of a large body held for a whole stream cost more memory
    /// (1 000 streams of the 76 KB body) than a second attempt's parse costs time.
    pub fn typed(&self) -> Result<MessagesBody, BodyError> {
        MessagesBody::parse(&self.body)
    }

    /// ccr's estimate of the input tokens, computed once.
    pub fn input_estimate(&self) -> u64 {
        *self
            .input_estimate
            .get_or_init(|| super::estimate::input_tokens(&self.body))
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn stream(&self) -> bool {
        self.stream
    }

    pub fn facts(&self) -> &RoutingFacts {
        &self.facts
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The body for an Anthropic upstream: the client's bytes with `model` replaced and,
    /// only when the history holds any, the thinking blocks ccr signed removed (Anthropic
    /// rejects signatures it did not make). The common case is a byte search and a splice.
    pub fn body_for_anthropic(&self, model: &str) -> Bytes {
        let marker = format!("\"{}", super::CCR_SIGNATURE_PREFIX);
        if !contains(&self.body, marker.as_bytes()) {
            return self.body_with_model(model);
        }
        match strip_ccr_thinking(&self.body, model) {
            Some(body) => Bytes::from(body),
            None => self.body_with_model(model),
        }
    }

    /// The client's body with only the `model` value replaced; every other byte unchanged.
    pub fn body_with_model(&self, model: &str) -> Bytes {
        if model == self.model {
            return self.body.clone();
        }
        let quoted = serde_json::to_string(model).expect("a string serializes");
        let mut out = Vec::with_capacity(self.body.len() + quoted.len());
        out.extend_from_slice(&self.body[..self.model_span.start]);
        out.extend_from_slice(quoted.as_bytes());
        out.extend_from_slice(&self.body[self.model_span.end..]);
        Bytes::from(out)
    }
}

/// The session id inside `metadata.user_id`: Claude Code 2.x sends a JSON string
/// `{"device_id":…,"session_id":…}`, older versions `user_<hash>_account_<uuid>_session_<uuid>`.
fn session_from_user_id(user_id: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct UserId {
        session_id: Option<String>,
    }
    if user_id.trim_start().starts_with('{') {
        return serde_json::from_str::<UserId>(user_id)
            .ok()?
            .session_id
            .filter(|s| !s.is_empty());
    }
    let (_, session) = user_id.rsplit_once("_session_")?;
    (!session.is_empty()).then(|| session.to_string())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// Re-serializes the body without assistant thinking blocks whose signature ccr made, with
/// `model` set. `None` if the body is not the expected shape (then it is sent as it is).
fn strip_ccr_thinking(body: &[u8], model: &str) -> Option<Vec<u8>> {
    let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object_mut()?;
    object.insert("model".into(), serde_json::Value::from(model));
    for message in object.get_mut("messages")?.as_array_mut()? {
        if let Some(blocks) = message.get_mut("content").and_then(|c| c.as_array_mut()) {
            blocks.retain(|block| !is_ccr_thinking(block));
        }
    }
    serde_json::to_vec(&value).ok()
}

fn is_ccr_thinking(block: &serde_json::Value) -> bool {
    block.get("type").and_then(|t| t.as_str()) == Some("thinking")
        && block
            .get("signature")
            .and_then(|s| s.as_str())
            .is_some_and(|s| s.starts_with(super::CCR_SIGNATURE_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MessagesRequest, RequestError> {
        MessagesRequest::parse(Bytes::copy_from_slice(text.as_bytes()))
    }

    #[test]
    fn replaces_only_the_model_bytes() {
        let text = r#"{ "max_tokens":5, "model" : "claude-x",  "x_unknown":{"model":"keep"},"stream":true}"#;
        let req = parse(text).unwrap();
        assert_eq!(req.model(), "claude-x");
        assert!(req.stream());
        let out = req.body_with_model("vendor/m\"1");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{ "max_tokens":5, "model" : "vendor/m\"1",  "x_unknown":{"model":"keep"},"stream":true}"#
        );
        assert_eq!(req.body_with_model("claude-x"), text.as_bytes());
    }

    #[test]
    fn ccr_thinking_is_removed_only_for_anthropic() {
        let text = r#"{"model":"m","messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"mine","signature":"ccr-sig:abc"},{"type":"thinking","thinking":"theirs","signature":"EqQBCkYIB"},{"type":"text","text":"ok"}]}]}"#;
        let req = parse(text).unwrap();
        let out: serde_json::Value =
            serde_json::from_slice(&req.body_for_anthropic("claude-y")).unwrap();
        assert_eq!(out["model"], "claude-y");
        let blocks = out["messages"][0]["content"].as_array().unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0]["signature"], "EqQBCkYIB");
        let plain = r#"{"model":"m","messages":[]}"#;
        assert_eq!(
            parse(plain).unwrap().body_for_anthropic("m"),
            plain.as_bytes()
        );
    }

    #[test]
    fn routing_facts_come_from_the_same_parse() {
        let req = parse(r#"{"model":"m","thinking":{"type":"enabled","budget_tokens":10},"tools":[{"name":"a","input_schema":{}},{"type":"web_search_20250305","name":"web_search"}],"metadata":{"user_id":"{\"device_id\":\"d\",\"session_id\":\"s-1\"}"}}"#).unwrap();
        assert_eq!(
            req.facts(),
            &RoutingFacts {
                thinking_enabled: true,
                web_search: true,
                session: Some("s-1".into())
            }
        );
        let old = parse(r#"{"model":"m","thinking":{"type":"adaptive"},"metadata":{"user_id":"user_ab12_account_0000_session_9f3e"}}"#).unwrap();
        assert_eq!(
            old.facts(),
            &RoutingFacts {
                session: Some("9f3e".into()),
                ..RoutingFacts::default()
            }
        );
    }

    #[test]
    fn escaped_model_is_decoded() {
        assert_eq!(parse(r#"{"model":"a\u002fb"}"#).unwrap().model(), "a/b");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        match parse("{\"model\": \"x\",\n \"messages\": [}") {
            Err(RequestError::Syntax(m)) => assert!(m.contains("line 2"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(parse("[1]").unwrap_err(), RequestError::NotAnObject);
        assert_eq!(parse("{}").unwrap_err(), RequestError::MissingModel);
        assert_eq!(
            parse(r#"{"model":3}"#).unwrap_err(),
            RequestError::ModelNotString
        );
        assert_eq!(
            parse(r#"{"model":"m","stream":"yes"}"#).unwrap_err(),
            RequestError::StreamNotBool
        );
    }
}
