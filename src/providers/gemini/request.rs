//! Anthropic Messages request → Gemini `generateContent` request
//! (https://ai.google.dev/api/generate-content#request-body).
//!
//! Like the OpenAI conversion, the output borrows from the parsed request: history text and
//! images are copied once, into the output bytes. Only tool schemas that must be cut down to
//! Gemini's subset are rebuilt.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::{Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{schema, signature};
use crate::anthropic::types::{
    Content, ContentBlock, ImageSource, Message, MessagesBody, Role, Tool, ToolChoice,
    ToolResultContent,
};
use crate::config::GeminiModelConfig;

/// Gemini refuses more stop sequences than this.
const MAX_STOP_SEQUENCES: usize = 5;

/// The largest `thinkingBudget` sent when the model's config gives none: the Flash models'
/// limit, and within Pro's (Gemini answers 400 to a budget beyond the model's range).
const DEFAULT_MAX_THINKING_BUDGET: u64 = 24_576;

/// Google's documented stand-in for a signature, for a Gemini 3 history that Gemini never
/// signed (a turn another provider answered before a failover).
const PLACEHOLDER_SIGNATURE: &str = "skip_thought_signature_validator";

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(
        "tool_choice forces the tool `{name}`, which is not among the request's client tools \
         (server tools such as web search cannot run on Gemini): force one of the request's \
         own tools, or route this model to an Anthropic provider"
    )]
    ForcedToolUnavailable { name: String },
    #[error(
        "the request has {count} stop_sequences and Gemini takes at most {MAX_STOP_SEQUENCES}: \
         send fewer, or route this model to another provider"
    )]
    TooManyStopSequences { count: usize },
    #[error(
        "Gemini takes images only as inline base64 data, and this request gives one by URL: \
         send the image as base64, or route this model to another provider"
    )]
    ImageUrl,
    #[error(
        "`{model}` cannot be a Gemini model name (letters, digits, `.`, `-` and `_` only): \
         route to a model Gemini lists, e.g. `gemini-2.5-pro`"
    )]
    ModelName { model: String },
    #[error(
        "cannot write the request for Gemini as JSON ({0}): this is a bug in ccr, please \
         report it"
    )]
    Encode(#[source] serde_json::Error),
}

/// Builds the `generateContent` body (the same for `streamGenerateContent`) for `model`.
pub fn to_gemini(
    body: &MessagesBody,
    model: &str,
    options: &GeminiModelConfig,
) -> Result<Vec<u8>, ConvertError> {
    if body.stop_sequences.len() > MAX_STOP_SEQUENCES {
        return Err(ConvertError::TooManyStopSequences {
            count: body.stop_sequences.len(),
        });
    }
    let declarations = function_declarations(&body.tools, options);
    let request = GenerateContentRequest {
        contents: contents(&body.messages, takes_placeholder_signatures(model))?,
        system_instruction: system_instruction(body),
        tool_config: tool_config(body.tool_choice.as_ref(), &declarations)?,
        tools: match declarations.is_empty() {
            true => Vec::new(),
            false => vec![Tools {
                function_declarations: declarations,
            }],
        },
        generation_config: generation_config(body, options),
    };
    serde_json::to_vec(&request).map_err(ConvertError::Encode)
}

/// Gemini 3 models validate the signatures of function calls in the history.
fn takes_placeholder_signatures(model: &str) -> bool {
    model.contains("gemini-3")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateContentRequest<'a> {
    contents: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<Turn<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Tools<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig<'a>>,
    generation_config: GenerationConfig<'a>,
}

/// Gemini's `Content`: one turn of the conversation, or the system instruction (no role).
#[derive(Serialize)]
struct Turn<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    parts: Vec<Part<'a>>,
}

#[derive(Serialize)]
#[serde(untagged, rename_all_fields = "camelCase")]
enum Part<'a> {
    Text {
        text: Cow<'a, str>,
    },
    InlineData {
        inline_data: Blob<'a>,
    },
    FunctionCall {
        function_call: FunctionCall<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        thought_signature: Option<Cow<'static, str>>,
    },
    FunctionResponse {
        function_response: FunctionResponse<'a>,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Blob<'a> {
    mime_type: &'a str,
    data: &'a str,
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    name: &'a str,
    args: Args<'a>,
}

/// A call's input; a `tool_use` without `input` parses as null, and Gemini wants an object.
struct Args<'a>(&'a Value);

impl Serialize for Args<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => serializer.collect_map(std::iter::empty::<((), ())>()),
            input => input.serialize(serializer),
        }
    }
}

#[derive(Serialize)]
struct FunctionResponse<'a> {
    name: &'a str,
    response: ResponseBody<'a>,
}

/// `{"content": …}`, or `{"error": …}` for a failed tool: Gemini documents `error` as the key
/// that tells the model its call failed, and a function response has no error flag.
#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum ResponseBody<'a> {
    Content(Cow<'a, str>),
    Error(Cow<'a, str>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Tools<'a> {
    function_declarations: Vec<FunctionDeclaration<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionDeclaration<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Value>,
    /// The client's schema text, copied byte for byte, for models that take JSON Schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters_json_schema: Option<&'a RawValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'a> {
    function_calling_config: FunctionCallingConfig<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionCallingConfig<'a> {
    mode: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_function_names: Vec<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_config: Option<ThinkingConfig>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ThinkingConfig {
    /// A number of tokens, or -1: the model decides.
    thinking_budget: i64,
    include_thoughts: bool,
}

fn system_instruction(body: &MessagesBody) -> Option<Turn<'_>> {
    let text = body.system.as_ref()?.joined();
    (!text.is_empty()).then(|| Turn {
        role: None,
        parts: vec![Part::Text {
            text: Cow::Owned(text),
        }],
    })
}

/// The history as Gemini turns: `user` and `model`, consecutive turns of one role merged
/// (Gemini wants them alternating), Claude Code's mid-conversation system messages kept in
/// place as user text.
fn contents(messages: &[Message], placeholders: bool) -> Result<Vec<Turn<'_>>, ConvertError> {
    let names = tool_names(messages);
    let mut turns: Vec<Turn<'_>> = Vec::with_capacity(messages.len());
    for message in messages {
        let (role, parts) = match message.role {
            Role::Assistant => ("model", model_parts(&message.content)),
            Role::User => ("user", user_parts(&message.content, &names)?),
            Role::System => ("user", text_parts(&message.content)),
        };
        push_turn(&mut turns, role, parts);
    }
    for turn in &mut turns {
        answers_first(turn);
        if placeholders {
            sign_unsigned_calls(turn);
        }
    }
    Ok(turns)
}

/// Each `tool_use` id's function name: a function response names the function, not the call.
fn tool_names(messages: &[Message]) -> HashMap<&str, &str> {
    messages
        .iter()
        .filter_map(|m| match &m.content {
            Content::Blocks(blocks) => Some(blocks),
            Content::Text(_) => None,
        })
        .flatten()
        .filter_map(|block| match block {
            ContentBlock::ToolUse { id, name, .. } => Some((id.as_str(), name.as_str())),
            _ => None,
        })
        .collect()
}

/// Appends a turn, into the last one when the role is the same. A turn with no parts is left
/// out: Gemini refuses empty `parts`.
fn push_turn<'a>(turns: &mut Vec<Turn<'a>>, role: &'static str, parts: Vec<Part<'a>>) {
    if parts.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last.role == Some(role) => last.parts.extend(parts),
        _ => turns.push(Turn {
            role: Some(role),
            parts,
        }),
    }
}

/// Function responses lead their turn, in order, as Gemini expects them right after the
/// calls they answer; the turn's text and images follow.
fn answers_first(turn: &mut Turn<'_>) {
    turn.parts
        .sort_by_key(|part| !matches!(part, Part::FunctionResponse { .. }));
}

/// A model turn with calls but no signature at all was never signed by Gemini: its first
/// call gets the placeholder. A turn Gemini signed is sent exactly as it came (in parallel
/// calls Gemini signs only the first).
fn sign_unsigned_calls(turn: &mut Turn<'_>) {
    if turn.role != Some("model") {
        return;
    }
    let mut calls = turn.parts.iter_mut().filter_map(|part| match part {
        Part::FunctionCall {
            thought_signature, ..
        } => Some(thought_signature),
        _ => None,
    });
    let Some(first) = calls.next() else {
        return;
    };
    if first.is_none() && calls.all(|s| s.is_none()) {
        *first = Some(Cow::Borrowed(PLACEHOLDER_SIGNATURE));
    }
}

/// An assistant turn: its text and tool calls. Thinking is left out: Gemini does not take
/// earlier thoughts back, and what it validates (signatures) travels in the tool ids.
fn model_parts(content: &Content) -> Vec<Part<'_>> {
    let blocks = match content {
        Content::Text(text) => return text_part(text).into_iter().collect(),
        Content::Blocks(blocks) => blocks,
    };
    blocks
        .iter()
        .filter_map(|block| match block {
            ContentBlock::Text { text } => text_part(text),
            ContentBlock::ToolUse { id, name, input } => Some(Part::FunctionCall {
                function_call: FunctionCall {
                    name,
                    args: Args(input),
                },
                thought_signature: signature::decode(id).map(Cow::Owned),
            }),
            _ => None,
        })
        .collect()
}

/// A user turn: text, images, and tool results as function responses.
fn user_parts<'a>(
    content: &'a Content,
    names: &HashMap<&str, &'a str>,
) -> Result<Vec<Part<'a>>, ConvertError> {
    let blocks = match content {
        Content::Text(text) => return Ok(text_part(text).into_iter().collect()),
        Content::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::with_capacity(blocks.len());
    for block in blocks {
        match block {
            ContentBlock::Text { text } => parts.extend(text_part(text)),
            ContentBlock::Image { source } => parts.push(image(source)?),
            ContentBlock::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => push_tool_result(&mut parts, tool_use_id, content.as_ref(), *is_error, names)?,
            // Documents and server tool results have no Gemini equivalent; assistant-only
            // blocks do not belong in a user turn.
            _ => {}
        }
    }
    Ok(parts)
}

/// A tool result as a function response, then any images it holds (a function response
/// holds only JSON). A result whose call is not in the history (cut by compaction) cannot
/// name its function, so it goes as text.
fn push_tool_result<'a>(
    parts: &mut Vec<Part<'a>>,
    tool_use_id: &str,
    content: Option<&'a ToolResultContent>,
    is_error: bool,
    names: &HashMap<&str, &'a str>,
) -> Result<(), ConvertError> {
    let text = tool_result_text(content);
    match names.get(tool_use_id) {
        Some(name) => parts.push(Part::FunctionResponse {
            function_response: FunctionResponse {
                name,
                response: match is_error {
                    true => ResponseBody::Error(text),
                    false => ResponseBody::Content(text),
                },
            },
        }),
        None => parts.push(Part::Text {
            text: Cow::Owned(format!("Result of tool call {tool_use_id}: {text}")),
        }),
    }
    if let Some(ToolResultContent::Blocks(blocks)) = content {
        for block in blocks {
            if let ContentBlock::Image { source } = block {
                parts.push(image(source)?);
            }
        }
    }
    Ok(())
}

fn tool_result_text(content: Option<&ToolResultContent>) -> Cow<'_, str> {
    match content {
        None => Cow::Borrowed(""),
        Some(ToolResultContent::Text(text)) => Cow::Borrowed(text),
        Some(ToolResultContent::Blocks(blocks)) => {
            let mut texts = blocks.iter().filter_map(|block| match block {
                ContentBlock::Text { text } => Some(text.as_str()),
                _ => None,
            });
            match (texts.next(), texts.next()) {
                (None, _) => Cow::Borrowed(""),
                (Some(only), None) => Cow::Borrowed(only),
                (Some(first), Some(second)) => {
                    let mut joined = format!("{first}\n{second}");
                    for text in texts {
                        joined.push('\n');
                        joined.push_str(text);
                    }
                    Cow::Owned(joined)
                }
            }
        }
    }
}

fn text_parts(content: &Content) -> Vec<Part<'_>> {
    match content {
        Content::Text(text) => text_part(text).into_iter().collect(),
        Content::Blocks(blocks) => blocks
            .iter()
            .filter_map(|block| match block {
                ContentBlock::Text { text } => text_part(text),
                _ => None,
            })
            .collect(),
    }
}

/// Gemini refuses an empty text part.
fn text_part(text: &str) -> Option<Part<'_>> {
    (!text.is_empty()).then_some(Part::Text {
        text: Cow::Borrowed(text),
    })
}

fn image(source: &ImageSource) -> Result<Part<'_>, ConvertError> {
    match source {
        ImageSource::Base64 { media_type, data } => Ok(Part::InlineData {
            inline_data: Blob {
                mime_type: media_type,
                data,
            },
        }),
        ImageSource::Url { .. } => Err(ConvertError::ImageUrl),
    }
}

/// Server tools run on Anthropic's side; Gemini cannot run them.
fn function_declarations<'a>(
    tools: &'a [Tool],
    options: &GeminiModelConfig,
) -> Vec<FunctionDeclaration<'a>> {
    tools
        .iter()
        .filter(|tool| !tool.is_server_tool())
        .map(|tool| {
            let schema = tool.input_schema.as_deref();
            let (parameters, parameters_json_schema) = match options.parameters_json_schema {
                true => (None, schema),
                false => (schema.and_then(cleaned_parameters), None),
            };
            FunctionDeclaration {
                name: &tool.name,
                description: tool.description.as_deref(),
                parameters,
                parameters_json_schema,
            }
        })
        .collect()
}

fn cleaned_parameters(schema: &RawValue) -> Option<Value> {
    // The client's schema parsed as JSON once already, so this cannot fail.
    let schema: Value = serde_json::from_str(schema.get()).ok()?;
    schema::parameters(&schema)
}

/// `toolConfig`, left out when no function remains (Gemini refuses it without tools).
fn tool_config<'a>(
    choice: Option<&'a ToolChoice>,
    declarations: &[FunctionDeclaration<'_>],
) -> Result<Option<ToolConfig<'a>>, ConvertError> {
    let Some(choice) = choice.filter(|_| !declarations.is_empty()) else {
        return Ok(None);
    };
    let (mode, allowed_function_names) = match choice {
        ToolChoice::Auto { .. } => ("AUTO", Vec::new()),
        ToolChoice::Any { .. } => ("ANY", Vec::new()),
        ToolChoice::None => ("NONE", Vec::new()),
        ToolChoice::Tool { name, .. } => {
            // Forcing a dropped server tool would make Gemini answer 400 with a message
            // that does not say why.
            if !declarations.iter().any(|d| d.name == name.as_str()) {
                return Err(ConvertError::ForcedToolUnavailable { name: name.clone() });
            }
            ("ANY", vec![name.as_str()])
        }
    };
    Ok(Some(ToolConfig {
        function_calling_config: FunctionCallingConfig {
            mode,
            allowed_function_names,
        },
    }))
}

fn generation_config<'a>(
    body: &'a MessagesBody,
    options: &GeminiModelConfig,
) -> GenerationConfig<'a> {
    GenerationConfig {
        max_output_tokens: body
            .max_tokens
            .map(|wanted| options.max_tokens.map_or(wanted, |limit| wanted.min(limit))),
        temperature: body.temperature,
        top_p: body.top_p,
        top_k: body.top_k,
        stop_sequences: &body.stop_sequences,
        thinking_config: thinking_config(body, options),
    }
}

/// Thinking on asks for the thoughts back; `adaptive` (no budget) lets the model decide.
/// Thinking off sends nothing: some models cannot turn it off and refuse a budget of 0.
fn thinking_config(body: &MessagesBody, options: &GeminiModelConfig) -> Option<ThinkingConfig> {
    let thinking = body.thinking.as_ref().filter(|t| t.is_on())?;
    let limit = options
        .max_thinking_budget
        .unwrap_or(DEFAULT_MAX_THINKING_BUDGET);
    let thinking_budget = match thinking.budget_tokens {
        Some(budget) => i64::try_from(budget.min(limit)).unwrap_or(i64::MAX),
        None => -1,
    };
    Some(ThinkingConfig {
        thinking_budget,
        include_thoughts: true,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::providers::gemini::schema::tests::assert_gemini_schema;

    fn convert_for(request: Value, model: &str, options: &GeminiModelConfig) -> Value {
        let body = MessagesBody::parse(&serde_json::to_vec(&request).unwrap()).unwrap();
        let bytes = to_gemini(&body, model, options).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn convert(request: Value) -> Value {
        convert_for(request, "gemini-2.5-pro", &GeminiModelConfig::default())
    }

    fn convert_error(request: Value) -> ConvertError {
        let body = MessagesBody::parse(&serde_json::to_vec(&request).unwrap()).unwrap();
        to_gemini(&body, "gemini-2.5-pro", &GeminiModelConfig::default()).unwrap_err()
    }

    fn with_messages(messages: Value) -> Value {
        json!({"model": "claude", "max_tokens": 100, "messages": messages})
    }

    fn weather_tool() -> Value {
        json!({"name": "weather", "description": "Weather.", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}})
    }

    fn tools_request(tools: Value, choice: Option<Value>) -> Value {
        let mut request = with_messages(json!([{"role": "user", "content": "hi"}]));
        request["tools"] = tools;
        if let Some(choice) = choice {
            request["tool_choice"] = choice;
        }
        request
    }

    #[test]
    fn the_system_prompt_becomes_the_system_instruction() {
        let mut request = with_messages(json!([{"role": "user", "content": "hi"}]));
        request["system"] = json!([
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}
        ]);
        let out = convert(request);
        assert_eq!(
            out["systemInstruction"],
            json!({"parts": [{"text": "You are Claude Code.\nBe brief."}]})
        );
        assert_eq!(
            out["contents"],
            json!([{"role": "user", "parts": [{"text": "hi"}]}])
        );
        assert!(!out.to_string().contains("cache_control"));

        let out = convert(with_messages(json!([{"role": "user", "content": "hi"}])));
        assert!(out.get("systemInstruction").is_none());
    }

    #[test]
    fn roles_become_user_and_model_and_same_role_turns_merge() {
        let out = convert(with_messages(json!([
            {"role": "user", "content": "one"},
            {"role": "user", "content": [{"type": "text", "text": "two"}, {"type": "text", "text": ""}]},
            {"role": "system", "content": "a reminder"},
            {"role": "assistant", "content": "three"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}, {"type": "text", "text": "four"}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "only thought", "signature": "s"}]},
            {"role": "user", "content": "five"}
        ])));
        assert_eq!(
            out["contents"],
            json!([
                {"role": "user", "parts": [{"text": "one"}, {"text": "two"}, {"text": "a reminder"}]},
                {"role": "model", "parts": [{"text": "three"}, {"text": "four"}]},
                {"role": "user", "parts": [{"text": "five"}]}
            ])
        );
    }

    #[test]
    fn images_become_inline_data_and_urls_are_refused() {
        let out = convert(with_messages(json!([{"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
        ]}])));
        assert_eq!(
            out["contents"][0]["parts"],
            json!([{"text": "look"}, {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}])
        );
        let error = convert_error(with_messages(json!([{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
        ]}])));
        assert!(matches!(error, ConvertError::ImageUrl), "{error}");
    }

    #[test]
    fn tool_calls_and_results_are_named_by_the_tool_use_id() {
        let out = convert(with_messages(json!([
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Reading."},
                {"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {"file_path": "/a"}},
                {"type": "tool_use", "id": "toolu_02", "name": "Glob", "input": {}},
                {"type": "tool_use", "id": "toolu_03", "name": "Now"}
            ]},
            {"role": "user", "content": [
                {"type": "text", "text": "and then?"},
                {"type": "tool_result", "tool_use_id": "toolu_02", "content": [{"type": "text", "text": "a.rs"}, {"type": "text", "text": "b.rs"}, {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}}]},
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "no such file", "is_error": true},
                {"type": "tool_result", "tool_use_id": "toolu_03"},
                {"type": "tool_result", "tool_use_id": "toolu_gone", "content": "old"}
            ]}
        ])));
        assert_eq!(
            out["contents"][1],
            json!({"role": "model", "parts": [
                {"text": "Reading."},
                {"functionCall": {"name": "Read", "args": {"file_path": "/a"}}},
                {"functionCall": {"name": "Glob", "args": {}}},
                {"functionCall": {"name": "Now", "args": {}}}
            ]})
        );
        assert_eq!(
            out["contents"][2],
            json!({"role": "user", "parts": [
                {"functionResponse": {"name": "Glob", "response": {"content": "a.rs\nb.rs"}}},
                {"functionResponse": {"name": "Read", "response": {"error": "no such file"}}},
                {"functionResponse": {"name": "Now", "response": {"content": ""}}},
                {"text": "and then?"},
                {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/"}},
                {"text": "Result of tool call toolu_gone: old"}
            ]})
        );
    }

    #[test]
    fn signatures_carried_in_tool_ids_go_back_with_their_calls() {
        let signed = signature::encode("CiQB0e2K+/x=");
        let history = json!([
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": signed, "name": "A", "input": {}},
                {"type": "tool_use", "id": "toolu_ccr1", "name": "B", "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": signed, "content": "a"},
                {"type": "tool_result", "tool_use_id": "toolu_ccr1", "content": "b"}
            ]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_01other", "name": "C", "input": {}},
                {"type": "tool_use", "id": "toolu_01more", "name": "D", "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01other", "content": "c"},
                {"type": "tool_result", "tool_use_id": "toolu_01more", "content": "d"}
            ]}
        ]);
        let signatures = |out: &Value, turn: usize| -> Vec<Value> {
            out["contents"][turn]["parts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["thoughtSignature"].clone())
                .collect()
        };
        let options = GeminiModelConfig::default();
        let out = convert_for(with_messages(history.clone()), "gemini-2.5-pro", &options);
        assert_eq!(signatures(&out, 1), [json!("CiQB0e2K+/x="), Value::Null]);
        assert_eq!(signatures(&out, 3), [Value::Null, Value::Null]);

        let out = convert_for(with_messages(history), "gemini-3-pro-preview", &options);
        assert_eq!(
            signatures(&out, 1),
            [json!("CiQB0e2K+/x="), Value::Null],
            "what Gemini signed goes back as it came"
        );
        assert_eq!(
            signatures(&out, 3),
            [json!(PLACEHOLDER_SIGNATURE), Value::Null],
            "a turn Gemini never signed gets the placeholder on its first call"
        );
    }

    #[test]
    fn tools_become_function_declarations() {
        let out = convert(tools_request(
            json!([
                weather_tool(),
                {"name": "now"},
                {"name": "ping", "input_schema": {"type": "object", "properties": {}}},
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
            ]),
            None,
        ));
        assert_eq!(
            out["tools"],
            json!([{"functionDeclarations": [
                {"name": "weather", "description": "Weather.", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
                {"name": "now"},
                {"name": "ping"}
            ]}])
        );
        assert!(out.get("toolConfig").is_none());
    }

    #[test]
    fn models_that_take_json_schema_get_the_schema_verbatim() {
        let schema = r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type": "object","properties":{"n":{"type":"integer","exclusiveMinimum":0}},"additionalProperties":false}"#;
        let request = format!(
            r#"{{"model":"claude","max_tokens":10,"messages":[{{"role":"user","content":"hi"}}],"tools":[{{"name":"pick","input_schema":{schema}}}]}}"#
        );
        let body = MessagesBody::parse(request.as_bytes()).unwrap();
        let options = GeminiModelConfig {
            parameters_json_schema: true,
            ..GeminiModelConfig::default()
        };
        let text = String::from_utf8(to_gemini(&body, "gemini-3-pro", &options).unwrap()).unwrap();
        assert!(
            text.contains(&format!(r#""parametersJsonSchema":{schema}"#)),
            "{text}"
        );
        assert!(!text.contains(r#""parameters":"#), "{text}");
    }

    #[test]
    fn tool_choice_maps_to_function_calling_modes() {
        let cases = [
            (json!({"type": "auto"}), json!({"mode": "AUTO"})),
            (
                json!({"type": "any", "disable_parallel_tool_use": true}),
                json!({"mode": "ANY"}),
            ),
            (json!({"type": "none"}), json!({"mode": "NONE"})),
            (
                json!({"type": "tool", "name": "weather"}),
                json!({"mode": "ANY", "allowedFunctionNames": ["weather"]}),
            ),
        ];
        for (choice, expected) in cases {
            let out = convert(tools_request(json!([weather_tool()]), Some(choice)));
            assert_eq!(
                out["toolConfig"],
                json!({"functionCallingConfig": expected})
            );
        }
        let out = convert(tools_request(
            json!([{"type": "web_search_20250305", "name": "web_search"}]),
            Some(json!({"type": "any"})),
        ));
        assert!(out.get("tools").is_none() && out.get("toolConfig").is_none());

        let error = convert_error(tools_request(
            json!([weather_tool(), {"type": "web_search_20250305", "name": "web_search"}]),
            Some(json!({"type": "tool", "name": "web_search"})),
        ));
        assert!(
            matches!(error, ConvertError::ForcedToolUnavailable { ref name } if name == "web_search")
        );
    }

    #[test]
    fn sampling_parameters_go_into_the_generation_config() {
        let mut request = with_messages(json!([{"role": "user", "content": "hi"}]));
        request["max_tokens"] = json!(64000);
        request["temperature"] = json!(0.5);
        request["top_p"] = json!(0.9);
        request["top_k"] = json!(40);
        request["stop_sequences"] = json!(["END", "STOP"]);
        let out = convert(request.clone());
        assert_eq!(
            out["generationConfig"],
            json!({"maxOutputTokens": 64000, "temperature": 0.5, "topP": 0.9, "topK": 40, "stopSequences": ["END", "STOP"]})
        );
        let limited = GeminiModelConfig {
            max_tokens: Some(8192),
            ..GeminiModelConfig::default()
        };
        let out = convert_for(request.clone(), "gemini-2.0-flash", &limited);
        assert_eq!(out["generationConfig"]["maxOutputTokens"], 8192);

        request["stop_sequences"] = json!(["1", "2", "3", "4", "5", "6"]);
        assert!(matches!(
            convert_error(request),
            ConvertError::TooManyStopSequences { count: 6 }
        ));

        let out =
            convert(json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}]}));
        assert_eq!(out["generationConfig"], json!({}));
    }

    #[test]
    fn thinking_becomes_a_thinking_config_with_the_budget_capped() {
        let thinking = |thinking: Value, options: &GeminiModelConfig| -> Value {
            let mut request = with_messages(json!([{"role": "user", "content": "hi"}]));
            request["thinking"] = thinking;
            convert_for(request, "gemini-2.5-flash", options)["generationConfig"]["thinkingConfig"]
                .clone()
        };
        let default = GeminiModelConfig::default();
        assert_eq!(
            thinking(json!({"type": "enabled", "budget_tokens": 2048}), &default),
            json!({"thinkingBudget": 2048, "includeThoughts": true})
        );
        assert_eq!(
            thinking(json!({"type": "enabled", "budget_tokens": 31999}), &default),
            json!({"thinkingBudget": 24576, "includeThoughts": true})
        );
        let pro = GeminiModelConfig {
            max_thinking_budget: Some(32768),
            ..GeminiModelConfig::default()
        };
        assert_eq!(
            thinking(json!({"type": "enabled", "budget_tokens": 31999}), &pro)["thinkingBudget"],
            31999
        );
        assert_eq!(
            thinking(json!({"type": "adaptive"}), &default),
            json!({"thinkingBudget": -1, "includeThoughts": true})
        );
        assert_eq!(thinking(json!({"type": "disabled"}), &default), Value::Null);
    }

    #[test]
    fn converts_the_claude_code_fixture_into_schemas_gemini_takes() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/claude-code-first-turn.json"
        );
        let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let input = &fixture["body"];
        let out = convert(input.clone());

        let declarations = out["tools"][0]["functionDeclarations"].as_array().unwrap();
        let originals = input["tools"].as_array().unwrap();
        assert_eq!(declarations.len(), originals.len());
        for (declaration, original) in declarations.iter().zip(originals) {
            assert_eq!(declaration["name"], original["name"]);
            assert_eq!(declaration["description"], original["description"]);
            let parameters = &declaration["parameters"];
            let wanted = &original["input_schema"]["properties"];
            if wanted.as_object().is_some_and(|p| !p.is_empty()) {
                assert_gemini_schema(parameters, original["name"].as_str().unwrap());
                let names: Vec<&String> = parameters["properties"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .collect();
                let wanted: Vec<&String> = wanted.as_object().unwrap().keys().collect();
                assert_eq!(names, wanted, "every argument is kept");
                assert_eq!(parameters["required"], original["input_schema"]["required"]);
            } else {
                assert!(parameters.is_null(), "{declaration}");
            }
        }

        let text = out.to_string();
        for absent in [
            "$schema",
            "additionalProperties",
            "exclusiveMinimum",
            "propertyNames",
            "\"const\"",
            "cache_control",
        ] {
            assert!(!text.contains(absent), "{absent} leaked");
        }
        assert!(
            !out["systemInstruction"]["parts"][0]["text"]
                .as_str()
                .unwrap()
                .is_empty()
        );
        let contents = out["contents"].as_array().unwrap();
        assert_eq!(
            contents.len(),
            1,
            "the user turn and the system message merge"
        );
        let parts = contents[0]["parts"].as_array().unwrap();
        let system_text = input["messages"][1]["content"].as_str().unwrap();
        assert_eq!(parts.last().unwrap()["text"], system_text);
        assert_eq!(
            out["generationConfig"],
            json!({"maxOutputTokens": 64000, "thinkingConfig": {"thinkingBudget": -1, "includeThoughts": true}})
        );
    }
}
