//! The Messages request as typed values, for providers that convert it to another wire
//! format. (The Anthropic pass-through never builds these: it forwards the client's bytes.)

use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Debug, Deserialize)]
pub struct MessagesBody {
    pub model: String,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub messages: Vec<Message>,
    #[serde(default)]
    pub system: Option<System>,
    #[serde(default)]
    pub tools: Vec<Tool>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub thinking: Option<Thinking>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub top_k: Option<u64>,
    #[serde(default)]
    pub stop_sequences: Vec<String>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub output_config: Option<OutputConfig>,
}

/// `output_config`: Claude Code 2.1 sends `{effort: "high"}` beside adaptive thinking.
#[derive(Debug, Deserialize)]
pub struct OutputConfig {
    #[serde(default)]
    pub effort: Option<String>,
}

/// `system`: a string or a list of text blocks.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum System {
    Text(String),
    Blocks(Vec<SystemBlock>),
}

#[derive(Debug, Deserialize)]
pub struct SystemBlock {
    #[serde(default)]
    pub text: String,
}

impl System {
    /// The system prompt's texts joined by newlines.
    pub fn joined(&self) -> String {
        match self {
            System::Text(text) => text.clone(),
            System::Blocks(blocks) => blocks
                .iter()
                .map(|b| b.text.as_str())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    /// Claude Code's `mid-conversation-system` beta puts system text inside `messages`.
    System,
}

#[derive(Debug, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Content,
}

/// A message's content: a string or a list of blocks.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text {
        text: String,
    },
    Image {
        source: ImageSource,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: serde_json::Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Option<ToolResultContent>,
        #[serde(default)]
        is_error: bool,
    },
    Thinking {
        thinking: String,
        #[serde(default)]
        signature: String,
    },
    RedactedThinking {
        #[serde(default)]
        data: String,
    },
    /// Blocks other providers have no equivalent for (documents, server tool results…).
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ImageSource {
    Base64 { media_type: String, data: String },
    Url { url: String },
}

impl ImageSource {
    /// The image as a URL: the source URL, or a `data:` URL for base64 data.
    pub fn to_url(&self) -> String {
        match self {
            ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
            ImageSource::Url { url } => url.clone(),
        }
    }
}

/// A tool result's content: a string or a list of text and image blocks.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ToolResultContent {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

#[derive(Debug, Deserialize)]
pub struct Tool {
    pub name: String,
    /// Set for server tools (`web_search_20250305`…); client tools have none or `custom`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Kept as the client's JSON text: schemas are large and only passed on.
    #[serde(default)]
    pub input_schema: Option<Box<RawValue>>,
}

impl Tool {
    /// Server tools run on Anthropic's side; other providers cannot run them.
    pub fn is_server_tool(&self) -> bool {
        self.kind.as_deref().is_some_and(|k| k != "custom")
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoice {
    Auto {
        #[serde(default)]
        disable_parallel_tool_use: bool,
    },
    Any {
        #[serde(default)]
        disable_parallel_tool_use: bool,
    },
    Tool {
        name: String,
        #[serde(default)]
        disable_parallel_tool_use: bool,
    },
    None,
}

impl ToolChoice {
    pub fn disables_parallel_tool_use(&self) -> bool {
        match self {
            ToolChoice::Auto {
                disable_parallel_tool_use,
            }
            | ToolChoice::Any {
                disable_parallel_tool_use,
            }
            | ToolChoice::Tool {
                disable_parallel_tool_use,
                ..
            } => *disable_parallel_tool_use,
            ToolChoice::None => false,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Thinking {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub budget_tokens: Option<u64>,
}

impl Thinking {
    /// `enabled` or `adaptive` (Claude Code 2.1 sends `adaptive` on every main turn).
    pub fn is_on(&self) -> bool {
        matches!(self.kind.as_str(), "enabled" | "adaptive")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("request body does not match the Messages API at `{path}`: {message}")]
pub struct BodyError {
    pub path: String,
    pub message: String,
}

impl MessagesBody {
    /// Parses a body; an error names the JSON path of the offending value.
    pub fn parse(body: &[u8]) -> Result<MessagesBody, BodyError> {
        let whole = |message: &str| BodyError {
            path: ".".into(),
            message: message.into(),
        };
        // serde would read a struct written as an array; a request is an object.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(whole("the body must be a JSON object"));
        }
        let mut de = serde_json::Deserializer::from_slice(body);
        // Tracking the path costs a few percent of a large body's conversion, so only a
        // body that fails is parsed again to say where.
        let Ok(parsed) = MessagesBody::deserialize(&mut de) else {
            return Err(Self::locate_error(body));
        };
        de.end()
            .map_err(|e| whole(&format!("after the request object: {e}")))?;
        Ok(parsed)
    }

    /// The error of a body that does not parse, with the JSON path of the offending value.
    fn locate_error(body: &[u8]) -> BodyError {
        let mut de = serde_json::Deserializer::from_slice(body);
        match serde_path_to_error::deserialize::<_, MessagesBody>(&mut de) {
            Err(e) => BodyError {
                path: e.path().to_string(),
                message: e.inner().to_string(),
            },
            // The same bytes and the same deserializer: it fails the second time too.
            Ok(_) => BodyError {
                path: ".".into(),
                message: "the body could not be read".into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_claude_code_fixture() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/claude-code-first-turn.json"
        );
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let body = serde_json::to_vec(&value["body"]).unwrap();
        let parsed = MessagesBody::parse(&body).unwrap();
        assert_eq!(parsed.tools.len(), 24);
        assert!(parsed.thinking.unwrap().is_on());
        assert!(parsed.messages.iter().any(|m| m.role == Role::System));
        assert!(matches!(parsed.system, Some(System::Blocks(ref b)) if b.len() == 3));
    }

    #[test]
    fn unknown_blocks_are_kept_as_other_and_errors_name_the_path() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":[{"type":"document","source":{}},{"type":"text","text":"hi"}]}]}"#;
        let parsed = MessagesBody::parse(body).unwrap();
        let Content::Blocks(blocks) = &parsed.messages[0].content else {
            panic!()
        };
        assert!(matches!(blocks[0], ContentBlock::Other));
        let err =
            MessagesBody::parse(br#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#)
                .unwrap_err();
        assert_eq!(err.path, "messages[0].role");
    }
}
