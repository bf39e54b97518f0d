//! Anthropic Messages request → OpenAI Chat Completions request
//! (https://platform.openai.com/docs/api-reference/chat/create).
//!
//! The output types borrow from the parsed request: bodies are 80–500 KB per call, most of
//! it tool schemas and history text that only need copying once, into the output bytes.

use std::borrow::Cow;

use serde::{Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::anthropic::types::{
    Content, ContentBlock, ImageSource, Message, MessagesBody, Role, Thinking, Tool, ToolChoice,
    ToolResultContent,
};
use crate::config::ModelConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(
        "tool_choice forces the tool `{name}`, which is not among the request's client tools \
         (server tools such as web search cannot run on an OpenAI-compatible upstream): \
         force one of the request's own tools, or route this model to an Anthropic provider"
    )]
    ForcedToolUnavailable { name: String },
    #[error(
        "cannot write the request for the OpenAI-compatible upstream as JSON ({0}): \
         this is a bug in ccr, please report it"
    )]
    Encode(#[source] serde_json::Error),
}

/// Builds the Chat Completions body for `model`. The upstream is always asked to stream
/// (with usage); a non-streaming client gets the folded stream.
pub fn to_openai(
    body: &MessagesBody,
    model: &str,
    options: &ModelConfig,
) -> Result<Vec<u8>, ConvertError> {
    let tools = function_tools(&body.tools);
    let (tool_choice, parallel_tool_calls) = tool_choice(body.tool_choice.as_ref(), &tools)?;
    let request = ChatRequest {
        model,
        messages: messages(body, options),
        tools,
        tool_choice,
        parallel_tool_calls,
        max_tokens: body
            .max_tokens
            .map(|wanted| options.max_tokens.map_or(wanted, |limit| wanted.min(limit))),
        stop: &body.stop_sequences,
        temperature: body.temperature,
        top_p: body.top_p,
        reasoning_effort: reasoning_effort(body, options),
        stream: true,
        stream_options: StreamOptions {
            include_usage: true,
        },
    };
    serde_json::to_vec(&request).map_err(ConvertError::Encode)
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<ChatMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<FunctionTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ChatToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'static str>,
    stream: bool,
    stream_options: StreamOptions,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
enum ChatMessage<'a> {
    System {
        content: Cow<'a, str>,
    },
    User {
        content: UserContent<'a>,
    },
    Assistant {
        /// `null` when the turn is only tool calls.
        content: Option<Cow<'a, str>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reasoning_content: Option<Cow<'a, str>>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall<'a>>,
    },
    Tool {
        tool_call_id: &'a str,
        content: Cow<'a, str>,
    },
}

/// A plain string whenever there are no images: not every OpenAI-compatible server
/// accepts content parts.
#[derive(Serialize)]
#[serde(untagged)]
enum UserContent<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<Part<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Part<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: ImageUrl<'a> },
}

impl<'a> Part<'a> {
    fn image(source: &'a ImageSource) -> Self {
        Part::ImageUrl {
            image_url: ImageUrl {
                url: SourceUrl(source),
            },
        }
    }
}

#[derive(Serialize)]
struct ImageUrl<'a> {
    url: SourceUrl<'a>,
}

/// Writes the image's URL straight into the output: base64 images can be megabytes, and
/// `ImageSource::to_url` would copy them once more.
struct SourceUrl<'a>(&'a ImageSource);

impl Serialize for SourceUrl<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ImageSource::Base64 { media_type, data } => {
                serializer.collect_str(&format_args!("data:{media_type};base64,{data}"))
            }
            ImageSource::Url { url } => serializer.serialize_str(url),
        }
    }
}

#[derive(Serialize)]
struct ToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCall<'a>,
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    name: &'a str,
    arguments: Arguments<'a>,
}

/// A tool call's input as the JSON string OpenAI wants, written without an intermediate
/// `String`.
struct Arguments<'a>(&'a Value);

impl Serialize for Arguments<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            // A `tool_use` without `input` parses as null; upstreams parse the arguments as
            // an object.
            Value::Null => serializer.serialize_str("{}"),
            input => serializer.collect_str(input),
        }
    }
}

#[derive(Serialize)]
struct FunctionTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionDefinition<'a>,
}

#[derive(Serialize)]
struct FunctionDefinition<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    parameters: Parameters<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Parameters<'a> {
    /// The client's schema text, copied byte for byte.
    Schema(&'a RawValue),
    /// OpenAI requires `parameters`; a tool without a schema takes no arguments.
    NoArguments {
        #[serde(rename = "type")]
        kind: &'static str,
        properties: serde_json::Map<String, Value>,
    },
}

#[derive(Serialize)]
#[serde(untagged)]
enum ChatToolChoice<'a> {
    Mode(&'static str),
    Function {
        #[serde(rename = "type")]
        kind: &'static str,
        function: FunctionName<'a>,
    },
}

#[derive(Serialize)]
struct FunctionName<'a> {
    name: &'a str,
}

fn messages<'a>(body: &'a MessagesBody, options: &ModelConfig) -> Vec<ChatMessage<'a>> {
    let mut out = Vec::with_capacity(body.messages.len() + 1);
    if let Some(system) = &body.system {
        let content = system.joined();
        if !content.is_empty() {
            out.push(ChatMessage::System {
                content: Cow::Owned(content),
            });
        }
    }
    for message in &body.messages {
        push_message(&mut out, message, options);
    }
    out
}

/// Appends the Chat Completions messages for one Anthropic message: none, one, or (for a
/// user turn carrying tool results) several.
fn push_message<'a>(out: &mut Vec<ChatMessage<'a>>, message: &'a Message, options: &ModelConfig) {
    match (message.role, &message.content) {
        (Role::System, content) => out.push(ChatMessage::System {
            content: content_text(content),
        }),
        (Role::User, Content::Text(text)) => out.push(ChatMessage::User {
            content: UserContent::Text(Cow::Borrowed(text)),
        }),
        (Role::User, Content::Blocks(blocks)) => push_user_turn(out, blocks),
        (Role::Assistant, content) => out.extend(assistant_message(content, options)),
    }
}

/// OpenAI wants each tool answer right after the assistant's calls, so the tool messages
/// come first; images a tool returned and then the turn's own text and images follow as
/// user messages.
fn push_user_turn<'a>(out: &mut Vec<ChatMessage<'a>>, blocks: &'a [ContentBlock]) {
    let mut result_images = Vec::new();
    let mut own_parts = Vec::new();
    for block in blocks {
        match block {
            ContentBlock::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                out.push(ChatMessage::Tool {
                    tool_call_id: tool_use_id,
                    content: tool_result_text(content.as_ref(), *is_error),
                });
                result_images.extend(tool_result_images(content.as_ref()));
            }
            ContentBlock::Text { text } => own_parts.push(Part::Text { text }),
            ContentBlock::Image { source } => own_parts.push(Part::image(source)),
            // Documents and server tool results have no Chat Completions equivalent;
            // assistant-only blocks do not belong in a user turn.
            _ => {}
        }
    }
    if !result_images.is_empty() {
        out.push(ChatMessage::User {
            content: UserContent::Parts(result_images),
        });
    }
    if let Some(content) = user_content(own_parts) {
        out.push(ChatMessage::User { content });
    }
}

fn user_content(parts: Vec<Part<'_>>) -> Option<UserContent<'_>> {
    if parts.is_empty() {
        return None;
    }
    if parts.iter().all(|part| matches!(part, Part::Text { .. })) {
        let texts = parts.iter().filter_map(|part| match part {
            Part::Text { text } => Some(*text),
            Part::ImageUrl { .. } => None,
        });
        return Some(UserContent::Text(join_lines(texts)));
    }
    Some(UserContent::Parts(parts))
}

fn tool_result_text(content: Option<&ToolResultContent>, is_error: bool) -> Cow<'_, str> {
    let text = match content {
        None => Cow::Borrowed(""),
        Some(ToolResultContent::Text(text)) => Cow::Borrowed(text.as_str()),
        Some(ToolResultContent::Blocks(blocks)) => join_lines(blocks.iter().filter_map(block_text)),
    };
    // A tool message has no error flag: the model can only learn it from the text.
    if is_error {
        Cow::Owned(format!("Error: {text}"))
    } else {
        text
    }
}

/// A tool message holds only text, so images a tool returned travel in a user message.
fn tool_result_images(content: Option<&ToolResultContent>) -> impl Iterator<Item = Part<'_>> {
    let blocks = match content {
        Some(ToolResultContent::Blocks(blocks)) => blocks.as_slice(),
        _ => &[],
    };
    blocks.iter().filter_map(|block| match block {
        ContentBlock::Image { source } => Some(Part::image(source)),
        _ => None,
    })
}

/// `None` when nothing the upstream can use is left (an assistant turn of thinking alone,
/// with `reasoning_content` off): an empty assistant message would be rejected.
fn assistant_message<'a>(content: &'a Content, options: &ModelConfig) -> Option<ChatMessage<'a>> {
    let blocks = match content {
        Content::Text(text) if text.is_empty() => return None,
        Content::Text(text) => {
            return Some(ChatMessage::Assistant {
                content: Some(Cow::Borrowed(text)),
                reasoning_content: None,
                tool_calls: Vec::new(),
            });
        }
        Content::Blocks(blocks) => blocks,
    };
    let text = join_lines(blocks.iter().filter_map(block_text));
    let tool_calls: Vec<_> = blocks.iter().filter_map(tool_call).collect();
    if text.is_empty() && tool_calls.is_empty() {
        return None;
    }
    let reasoning_content = if options.reasoning_content {
        Some(join_lines(blocks.iter().filter_map(thinking_text))).filter(|r| !r.is_empty())
    } else {
        None
    };
    Some(ChatMessage::Assistant {
        content: Some(text).filter(|t| !t.is_empty()),
        reasoning_content,
        tool_calls,
    })
}

fn tool_call(block: &ContentBlock) -> Option<ToolCall<'_>> {
    match block {
        ContentBlock::ToolUse { id, name, input } => Some(ToolCall {
            id,
            kind: "function",
            function: FunctionCall {
                name,
                arguments: Arguments(input),
            },
        }),
        _ => None,
    }
}

fn content_text(content: &Content) -> Cow<'_, str> {
    match content {
        Content::Text(text) => Cow::Borrowed(text),
        Content::Blocks(blocks) => join_lines(blocks.iter().filter_map(block_text)),
    }
}

fn block_text(block: &ContentBlock) -> Option<&str> {
    match block {
        ContentBlock::Text { text } => Some(text),
        _ => None,
    }
}

/// Redacted thinking is encrypted for Anthropic: no other model can read it.
fn thinking_text(block: &ContentBlock) -> Option<&str> {
    match block {
        ContentBlock::Thinking { thinking, .. } => Some(thinking),
        _ => None,
    }
}

/// Joins texts with newlines, borrowing when there is only one.
fn join_lines<'a>(texts: impl IntoIterator<Item = &'a str>) -> Cow<'a, str> {
    let mut texts = texts.into_iter();
    let Some(first) = texts.next() else {
        return Cow::Borrowed("");
    };
    let Some(second) = texts.next() else {
        return Cow::Borrowed(first);
    };
    let mut joined = format!("{first}\n{second}");
    for text in texts {
        joined.push('\n');
        joined.push_str(text);
    }
    Cow::Owned(joined)
}

/// Server tools run on Anthropic's side; an OpenAI-compatible upstream cannot run them.
fn function_tools(tools: &[Tool]) -> Vec<FunctionTool<'_>> {
    tools
        .iter()
        .filter(|tool| !tool.is_server_tool())
        .map(|tool| FunctionTool {
            kind: "function",
            function: FunctionDefinition {
                name: &tool.name,
                description: tool.description.as_deref(),
                parameters: match &tool.input_schema {
                    Some(schema) => Parameters::Schema(schema),
                    None => Parameters::NoArguments {
                        kind: "object",
                        properties: serde_json::Map::new(),
                    },
                },
            },
        })
        .collect()
}

/// `tool_choice` and `parallel_tool_calls`. Both are left out when no tools remain, since
/// OpenAI rejects them without `tools`.
fn tool_choice<'a>(
    choice: Option<&'a ToolChoice>,
    tools: &[FunctionTool<'_>],
) -> Result<(Option<ChatToolChoice<'a>>, Option<bool>), ConvertError> {
    let Some(choice) = choice.filter(|_| !tools.is_empty()) else {
        return Ok((None, None));
    };
    let converted = match choice {
        ToolChoice::Auto { .. } => ChatToolChoice::Mode("auto"),
        ToolChoice::Any { .. } => ChatToolChoice::Mode("required"),
        ToolChoice::None => ChatToolChoice::Mode("none"),
        ToolChoice::Tool { name, .. } => {
            // Forcing a dropped server tool would make the upstream answer 400 with a
            // message that does not say why.
            if !tools.iter().any(|tool| tool.function.name == name.as_str()) {
                return Err(ConvertError::ForcedToolUnavailable { name: name.clone() });
            }
            ChatToolChoice::Function {
                kind: "function",
                function: FunctionName { name },
            }
        }
    };
    let parallel_tool_calls = choice.disables_parallel_tool_use().then_some(false);
    Ok((Some(converted), parallel_tool_calls))
}

/// Only for models configured to take it: other upstreams answer 400 to the field.
fn reasoning_effort(body: &MessagesBody, options: &ModelConfig) -> Option<&'static str> {
    if !options.reasoning_effort {
        return None;
    }
    let thinking = body.thinking.as_ref().filter(|t| t.is_on())?;
    let effort = body
        .output_config
        .as_ref()
        .and_then(|c| c.effort.as_deref());
    Some(
        effort
            .and_then(named_effort)
            .or_else(|| budget_effort(thinking))
            .unwrap_or("medium"),
    )
}

fn named_effort(effort: &str) -> Option<&'static str> {
    match effort {
        "low" => Some("low"),
        "medium" => Some("medium"),
        // OpenAI's scale stops at `high`.
        "high" | "max" => Some("high"),
        _ => None,
    }
}

fn budget_effort(thinking: &Thinking) -> Option<&'static str> {
    thinking.budget_tokens.map(|budget| match budget {
        0..4096 => "low",
        4096..16384 => "medium",
        _ => "high",
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn convert_with(request: Value, options: &ModelConfig) -> Value {
        let body = MessagesBody::parse(&serde_json::to_vec(&request).unwrap()).unwrap();
        let bytes = to_openai(&body, "upstream-model", options).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn convert(request: Value) -> Value {
        convert_with(request, &ModelConfig::default())
    }

    fn with_messages(messages: Value) -> Value {
        json!({"model": "claude", "max_tokens": 100, "messages": messages})
    }

    fn reasoning_options() -> ModelConfig {
        ModelConfig {
            reasoning_content: true,
            ..ModelConfig::default()
        }
    }

    fn effort_options() -> ModelConfig {
        ModelConfig {
            reasoning_effort: true,
            ..ModelConfig::default()
        }
    }

    fn effort_for(thinking: Value, output_config: Option<Value>) -> Value {
        let mut request = with_messages(json!([{"role": "user", "content": "hi"}]));
        request["thinking"] = thinking;
        if let Some(output_config) = output_config {
            request["output_config"] = output_config;
        }
        convert_with(request, &effort_options())["reasoning_effort"].clone()
    }

    fn tools_request(tools: Value, tool_choice: Option<Value>) -> Value {
        let mut request = with_messages(json!([{"role": "user", "content": "hi"}]));
        request["tools"] = tools;
        if let Some(tool_choice) = tool_choice {
            request["tool_choice"] = tool_choice;
        }
        request
    }

    fn weather_tool() -> Value {
        json!({"name": "weather", "input_schema": {"type": "object"}})
    }

    #[test]
    fn system_string_becomes_the_first_message() {
        let mut request = with_messages(json!([{"role": "user", "content": "hi"}]));
        request["system"] = json!("be brief");
        let out = convert(request);
        assert_eq!(
            out["messages"][0],
            json!({"role": "system", "content": "be brief"})
        );
        assert_eq!(out["messages"][1], json!({"role": "user", "content": "hi"}));
    }

    #[test]
    fn system_blocks_are_joined_with_newlines() {
        let mut request = with_messages(json!([{"role": "user", "content": "hi"}]));
        request["system"] = json!([
            {"type": "text", "text": "one"},
            {"type": "text", "text": "two", "cache_control": {"type": "ephemeral"}}
        ]);
        let out = convert(request);
        assert_eq!(
            out["messages"][0],
            json!({"role": "system", "content": "one\ntwo"})
        );
    }

    #[test]
    fn system_messages_in_history_stay_at_their_position() {
        let out = convert(with_messages(json!([
            {"role": "user", "content": "first"},
            {"role": "system", "content": "mid-conversation note"},
            {"role": "assistant", "content": "ok"},
            {"role": "system", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "user", "content": "second"}
        ])));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": "first"},
                {"role": "system", "content": "mid-conversation note"},
                {"role": "assistant", "content": "ok"},
                {"role": "system", "content": "a\nb"},
                {"role": "user", "content": "second"}
            ])
        );
    }

    #[test]
    fn user_string_content_stays_a_string() {
        let out = convert(with_messages(json!([{"role": "user", "content": "hello"}])));
        assert_eq!(
            out["messages"],
            json!([{"role": "user", "content": "hello"}])
        );
    }

    #[test]
    fn user_text_blocks_become_one_string() {
        let out = convert(with_messages(json!([{"role": "user", "content": [
            {"type": "text", "text": "one"},
            {"type": "text", "text": "two"}
        ]}])));
        assert_eq!(
            out["messages"],
            json!([{"role": "user", "content": "one\ntwo"}])
        );
    }

    #[test]
    fn user_text_with_images_becomes_parts_in_block_order() {
        let out = convert(with_messages(json!([{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "text", "text": "what is this?"},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
        ]}])));
        assert_eq!(
            out["messages"],
            json!([{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
            ]}])
        );
    }

    #[test]
    fn assistant_text_and_tool_use_become_one_message_with_tool_calls() {
        let out = convert(with_messages(json!([
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo", "days": 2}},
                {"type": "text", "text": "And Bergen."},
                {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Bergen"}}
            ]}
        ])));
        let assistant = &out["messages"][1];
        assert_eq!(assistant["role"], "assistant");
        assert_eq!(assistant["content"], "Checking.\nAnd Bergen.");
        let calls = assistant["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0]["id"], "toolu_1");
        assert_eq!(calls[0]["type"], "function");
        assert_eq!(calls[0]["function"]["name"], "weather");
        let arguments: Value =
            serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(arguments, json!({"city": "Oslo", "days": 2}));
        assert_eq!(calls[1]["id"], "toolu_2");
        assert_eq!(out["messages"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn assistant_tool_use_without_text_has_null_content() {
        let out = convert(with_messages(json!([
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "ls", "input": {}}
            ]}
        ])));
        let assistant = out["messages"][1].as_object().unwrap();
        assert_eq!(assistant["content"], Value::Null);
        assert!(
            assistant.contains_key("content"),
            "content must be an explicit null"
        );
        assert_eq!(assistant["tool_calls"][0]["function"]["arguments"], "{}");
    }

    #[test]
    fn assistant_text_alone_has_no_tool_calls() {
        let out = convert(with_messages(json!([
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
            {"role": "user", "content": "bye"}
        ])));
        assert_eq!(
            out["messages"][1],
            json!({"role": "assistant", "content": "hello"})
        );
    }

    #[test]
    fn tool_use_without_input_sends_an_empty_object() {
        let out = convert(with_messages(json!([
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "now"}]}
        ])));
        assert_eq!(
            out["messages"][1]["tool_calls"][0]["function"]["arguments"],
            "{}"
        );
    }

    #[test]
    fn tool_results_come_before_the_rest_of_the_user_turn() {
        let out = convert(with_messages(json!([
            {"role": "user", "content": "list two dirs"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "ls", "input": {"path": "a"}},
                {"type": "tool_use", "id": "toolu_2", "name": "ls", "input": {"path": "b"}}
            ]},
            {"role": "user", "content": [
                {"type": "text", "text": "here you go"},
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/x.png"}},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "b.txt"}
            ]}
        ])));
        let messages = out["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 5);
        assert_eq!(
            messages[2],
            json!({"role": "tool", "tool_call_id": "toolu_1", "content": "a.txt"})
        );
        assert_eq!(
            messages[3],
            json!({"role": "tool", "tool_call_id": "toolu_2", "content": "b.txt"})
        );
        assert_eq!(
            messages[4],
            json!({"role": "user", "content": [
                {"type": "text", "text": "here you go"},
                {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}
            ]})
        );
    }

    #[test]
    fn tool_result_blocks_are_joined_and_errors_are_marked() {
        let out = convert(with_messages(json!([
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                    {"type": "text", "text": "line one"},
                    {"type": "text", "text": "line two"}
                ]},
                {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true, "content": "no such file"},
                {"type": "tool_result", "tool_use_id": "toolu_3", "is_error": true, "content": [
                    {"type": "text", "text": "exit 1"}
                ]}
            ]}
        ])));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "tool", "tool_call_id": "toolu_1", "content": "line one\nline two"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no such file"},
                {"role": "tool", "tool_call_id": "toolu_3", "content": "Error: exit 1"}
            ])
        );
    }

    #[test]
    fn images_in_tool_results_follow_the_tool_messages() {
        let out = convert(with_messages(json!([
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                    {"type": "text", "text": "screenshot taken"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}}
                ]},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "done"},
                {"type": "text", "text": "compare them"}
            ]}
        ])));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "tool", "tool_call_id": "toolu_1", "content": "screenshot taken"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": "done"},
                {"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}}
                ]},
                {"role": "user", "content": "compare them"}
            ])
        );
    }

    #[test]
    fn empty_tool_result_content_is_an_empty_string() {
        let out = convert(with_messages(json!([
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": ""},
                {"type": "tool_result", "tool_use_id": "toolu_3", "content": []}
            ]}
        ])));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "tool", "tool_call_id": "toolu_1", "content": ""},
                {"role": "tool", "tool_call_id": "toolu_2", "content": ""},
                {"role": "tool", "tool_call_id": "toolu_3", "content": ""}
            ])
        );
    }

    #[test]
    fn thinking_is_dropped_and_a_thinking_only_assistant_turn_is_omitted() {
        let out = convert(with_messages(json!([
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"}
            ]},
            {"role": "user", "content": "well?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "let me see", "signature": "sig"},
                {"type": "text", "text": "answer"}
            ]}
        ])));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": "hi"},
                {"role": "user", "content": "well?"},
                {"role": "assistant", "content": "answer"}
            ])
        );
    }

    #[test]
    fn thinking_becomes_reasoning_content_when_the_model_wants_it() {
        let out = convert_with(
            with_messages(json!([
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "first thought", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "thinking", "thinking": "second thought", "signature": "sig"},
                    {"type": "tool_use", "id": "toolu_1", "name": "ls", "input": {}}
                ]},
                {"role": "assistant", "content": [{"type": "text", "text": "no thinking here"}]}
            ])),
            &reasoning_options(),
        );
        let with_reasoning = &out["messages"][1];
        assert_eq!(
            with_reasoning["reasoning_content"],
            "first thought\nsecond thought"
        );
        assert_eq!(with_reasoning["content"], Value::Null);
        assert_eq!(with_reasoning["tool_calls"][0]["id"], "toolu_1");
        assert!(
            !out["messages"][2]
                .as_object()
                .unwrap()
                .contains_key("reasoning_content")
        );
        assert!(!out.to_string().contains("opaque"));
    }

    #[test]
    fn blocks_without_an_equivalent_are_dropped() {
        let out = convert(with_messages(json!([
            {"role": "user", "content": [
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}},
                {"type": "text", "text": "summarise"}
            ]},
            {"role": "assistant", "content": [
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
                {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
                {"type": "text", "text": "found it"}
            ]},
            {"role": "user", "content": [{"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}]}
        ])));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": "summarise"},
                {"role": "assistant", "content": "found it"}
            ])
        );
    }

    #[test]
    fn tools_become_functions_with_the_schema_copied_verbatim() {
        // Odd key order and spacing: only a byte copy keeps them.
        let schema = r#"{"type": "object","required":["z"],  "properties":{"z":{"type":"string"},"a":{"type":"integer"}}}"#;
        let request = format!(
            r#"{{"model":"claude","max_tokens":10,"messages":[{{"role":"user","content":"hi"}}],
               "tools":[{{"name":"pick","description":"Picks one.","input_schema":{schema},"cache_control":{{"type":"ephemeral"}}}}]}}"#
        );
        let body = MessagesBody::parse(request.as_bytes()).unwrap();
        let bytes = to_openai(&body, "m", &ModelConfig::default()).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.contains(&format!(r#""parameters":{schema}"#)),
            "{text}"
        );
        let out: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            out["tools"],
            json!([{"type": "function", "function": {
                "name": "pick",
                "description": "Picks one.",
                "parameters": serde_json::from_str::<Value>(schema).unwrap()
            }}])
        );
    }

    #[test]
    fn a_tool_without_schema_or_description_gets_an_empty_object_schema() {
        let out = convert(tools_request(json!([{"name": "now"}]), None));
        assert_eq!(
            out["tools"],
            json!([{"type": "function", "function": {
                "name": "now",
                "parameters": {"type": "object", "properties": {}}
            }}])
        );
    }

    #[test]
    fn server_tools_are_dropped_and_empty_tools_are_omitted() {
        let out = convert(tools_request(
            json!([
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
                {"type": "custom", "name": "mine", "input_schema": {"type": "object"}}
            ]),
            None,
        ));
        let tools = out["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 1);
        assert_eq!(tools[0]["function"]["name"], "mine");

        let out = convert(tools_request(
            json!([{"type": "web_search_20250305", "name": "web_search"}]),
            Some(json!({"type": "tool", "name": "web_search", "disable_parallel_tool_use": true})),
        ));
        let out = out.as_object().unwrap();
        assert!(!out.contains_key("tools"));
        assert!(!out.contains_key("tool_choice"));
        assert!(!out.contains_key("parallel_tool_calls"));
    }

    #[test]
    fn tool_choice_maps_to_openai_names() {
        let cases = [
            (json!({"type": "auto"}), json!("auto")),
            (json!({"type": "any"}), json!("required")),
            (json!({"type": "none"}), json!("none")),
            (
                json!({"type": "tool", "name": "weather"}),
                json!({"type": "function", "function": {"name": "weather"}}),
            ),
        ];
        for (choice, expected) in cases {
            let out = convert(tools_request(json!([weather_tool()]), Some(choice)));
            assert_eq!(out["tool_choice"], expected);
            assert!(!out.as_object().unwrap().contains_key("parallel_tool_calls"));
        }
    }

    #[test]
    fn disabling_parallel_tool_use_sets_parallel_tool_calls_false() {
        for choice in [
            json!({"type": "auto", "disable_parallel_tool_use": true}),
            json!({"type": "any", "disable_parallel_tool_use": true}),
            json!({"type": "tool", "name": "weather", "disable_parallel_tool_use": true}),
        ] {
            let out = convert(tools_request(json!([weather_tool()]), Some(choice)));
            assert_eq!(out["parallel_tool_calls"], json!(false));
        }
    }

    #[test]
    fn forcing_a_tool_the_upstream_cannot_run_is_an_error() {
        let request = tools_request(
            json!([weather_tool(), {"type": "web_search_20250305", "name": "web_search"}]),
            Some(json!({"type": "tool", "name": "web_search"})),
        );
        let body = MessagesBody::parse(&serde_json::to_vec(&request).unwrap()).unwrap();
        let error = to_openai(&body, "m", &ModelConfig::default()).unwrap_err();
        assert!(
            matches!(error, ConvertError::ForcedToolUnavailable { ref name } if name == "web_search")
        );
        assert!(error.to_string().contains("`web_search`"));
    }

    #[test]
    fn max_tokens_is_clamped_to_the_model_limit() {
        let limited = ModelConfig {
            max_tokens: Some(8192),
            ..ModelConfig::default()
        };
        let mut request = with_messages(json!([{"role": "user", "content": "hi"}]));
        request["max_tokens"] = json!(64000);
        assert_eq!(convert_with(request.clone(), &limited)["max_tokens"], 8192);
        assert_eq!(convert(request.clone())["max_tokens"], 64000);
        request["max_tokens"] = json!(1000);
        assert_eq!(convert_with(request, &limited)["max_tokens"], 1000);
    }

    #[test]
    fn sampling_parameters_pass_through_and_top_k_is_dropped() {
        let mut request = with_messages(json!([{"role": "user", "content": "hi"}]));
        request["stop_sequences"] = json!(["END", "STOP"]);
        request["temperature"] = json!(0.5);
        request["top_p"] = json!(0.9);
        request["top_k"] = json!(40);
        let out = convert(request);
        assert_eq!(out["stop"], json!(["END", "STOP"]));
        assert_eq!(out["temperature"], json!(0.5));
        assert_eq!(out["top_p"], json!(0.9));
        assert!(!out.as_object().unwrap().contains_key("top_k"));

        let mut request = with_messages(json!([{"role": "user", "content": "hi"}]));
        request["stop_sequences"] = json!([]);
        let out = convert(request);
        let out = out.as_object().unwrap();
        for absent in ["stop", "temperature", "top_p", "top_k"] {
            assert!(!out.contains_key(absent), "{absent} should be omitted");
        }
    }

    #[test]
    fn reasoning_effort_comes_from_output_config_effort() {
        let adaptive = json!({"type": "adaptive"});
        for (effort, expected) in [
            ("low", "low"),
            ("medium", "medium"),
            ("high", "high"),
            ("max", "high"),
        ] {
            let got = effort_for(adaptive.clone(), Some(json!({"effort": effort})));
            assert_eq!(got, expected, "effort {effort}");
        }
        // The named effort wins over the budget.
        let got = effort_for(
            json!({"type": "enabled", "budget_tokens": 1024}),
            Some(json!({"effort": "high"})),
        );
        assert_eq!(got, "high");
    }

    #[test]
    fn reasoning_effort_falls_back_to_the_thinking_budget() {
        for (budget, expected) in [
            (1024, "low"),
            (4095, "low"),
            (4096, "medium"),
            (16383, "medium"),
            (16384, "high"),
            (31999, "high"),
        ] {
            let got = effort_for(json!({"type": "enabled", "budget_tokens": budget}), None);
            assert_eq!(got, expected, "budget {budget}");
        }
        let got = effort_for(
            json!({"type": "enabled", "budget_tokens": 2000}),
            Some(json!({"effort": "extreme"})),
        );
        assert_eq!(got, "low", "an unknown effort falls back to the budget");
    }

    #[test]
    fn reasoning_effort_defaults_to_medium() {
        assert_eq!(effort_for(json!({"type": "adaptive"}), None), "medium");
        assert_eq!(
            effort_for(json!({"type": "adaptive"}), Some(json!({}))),
            "medium"
        );
    }

    #[test]
    fn reasoning_effort_needs_thinking_on_and_a_model_that_takes_it() {
        assert_eq!(effort_for(json!({"type": "disabled"}), None), Value::Null);
        let mut request = with_messages(json!([{"role": "user", "content": "hi"}]));
        request["output_config"] = json!({"effort": "high"});
        let out = convert_with(request.clone(), &effort_options());
        assert!(!out.as_object().unwrap().contains_key("reasoning_effort"));
        request["thinking"] = json!({"type": "enabled", "budget_tokens": 20000});
        let out = convert(request);
        assert!(!out.as_object().unwrap().contains_key("reasoning_effort"));
    }

    #[test]
    fn the_model_and_streaming_with_usage_are_always_set() {
        let mut request = with_messages(json!([{"role": "user", "content": "hi"}]));
        request["stream"] = json!(false);
        let out = convert(request);
        assert_eq!(out["model"], "upstream-model");
        assert_eq!(out["stream"], json!(true));
        assert_eq!(out["stream_options"], json!({"include_usage": true}));
    }

    #[test]
    fn consecutive_messages_of_one_role_are_not_merged() {
        let out = convert(with_messages(json!([
            {"role": "user", "content": "one"},
            {"role": "user", "content": [{"type": "text", "text": "two"}]},
            {"role": "assistant", "content": "three"},
            {"role": "assistant", "content": "four"}
        ])));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": "one"},
                {"role": "user", "content": "two"},
                {"role": "assistant", "content": "three"},
                {"role": "assistant", "content": "four"}
            ])
        );
    }

    #[test]
    fn cache_control_and_unknown_fields_are_dropped() {
        let mut request = with_messages(json!([{"role": "user", "content": [
            {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}
        ]}]));
        request["system"] =
            json!([{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}]);
        request["metadata"] = json!({"user_id": "u"});
        request["context_management"] = json!({"edits": []});
        request["service_tier"] = json!("auto");
        let out = convert(request);
        let text = out.to_string();
        for absent in [
            "cache_control",
            "metadata",
            "context_management",
            "service_tier",
        ] {
            assert!(!text.contains(absent), "{absent} leaked: {text}");
        }
        assert_eq!(out["messages"][1], json!({"role": "user", "content": "hi"}));
    }

    #[test]
    fn converts_the_claude_code_fixture() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/claude-code-first-turn.json"
        );
        let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let input = &fixture["body"];
        let body = MessagesBody::parse(&serde_json::to_vec(input).unwrap()).unwrap();
        let options = ModelConfig {
            max_tokens: Some(8192),
            reasoning_effort: true,
            reasoning_content: false,
        };
        let out: Value =
            serde_json::from_slice(&to_openai(&body, "deepseek-chat", &options).unwrap()).unwrap();

        let tools = out["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 24);
        for (tool, original) in tools.iter().zip(input["tools"].as_array().unwrap()) {
            assert_eq!(tool["type"], "function");
            assert_eq!(tool["function"]["name"], original["name"]);
            assert_eq!(tool["function"]["parameters"], original["input_schema"]);
        }

        let messages = out["messages"].as_array().unwrap();
        let input_messages = input["messages"].as_array().unwrap();
        assert_eq!(messages.len(), input_messages.len() + 1);
        assert_eq!(messages[0]["role"], "system");
        assert!(!messages[0]["content"].as_str().unwrap().is_empty());
        for (i, original) in input_messages.iter().enumerate() {
            assert_eq!(messages[i + 1]["role"], original["role"]);
        }
        let system_at = input_messages
            .iter()
            .position(|m| m["role"] == "system")
            .unwrap();
        assert_eq!(
            messages[system_at + 1]["content"],
            input_messages[system_at]["content"]
        );

        assert_eq!(out["stream"], json!(true));
        assert_eq!(out["stream_options"], json!({"include_usage": true}));
        assert_eq!(out["model"], "deepseek-chat");
        assert_eq!(out["max_tokens"], 8192);
        assert_eq!(out["reasoning_effort"], "high");
        assert!(!out.to_string().contains("cache_control"));
    }
}
