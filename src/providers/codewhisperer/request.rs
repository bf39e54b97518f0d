//! Anthropic Messages request → CodeWhisperer `generateAssistantResponse` body: the
//! `conversationState` that Kiro's own client sends (current message, alternating history,
//! tool specifications and tool results), described in docs/architecture.md.
//!
//! The service answers `400 Improperly formed request` to anything off its narrow shape, so
//! the conversation is normalised on the way: the history alternates user / assistant,
//! starts with a user message and ends with an assistant one, and no message content is
//! empty. The output types borrow from the parsed request (tool schemas, ids, image data,
//! single texts): bodies are 80–500 KB and only need copying once, into the output bytes.

use std::borrow::Cow;

use serde::{Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::anthropic::types::{
    Content, ContentBlock, ImageSource, Message, MessagesBody, Role, Tool, ToolResultContent,
};

/// What the conversion needs beside the request.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    /// The CodeWhisperer model id (already mapped from the client's model name).
    pub model_id: &'a str,
    /// Sent only for social (GitHub/Google) logins; `None` for IdC.
    pub profile_arn: Option<&'a str>,
    /// A fresh UUID v4 per request.
    pub conversation_id: &'a str,
    /// Tool descriptions longer than this are cut (the service answers 400 otherwise).
    pub max_description_chars: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(
        "the request has no user message to send to CodeWhisperer: \
         add at least one message with `\"role\": \"user\"` to `messages`"
    )]
    NoUserMessage,
    #[error(
        "cannot write the request for CodeWhisperer as JSON ({0}): \
         this is a bug in ccr, please report it"
    )]
    Encode(#[source] serde_json::Error),
}

/// The assistant half of the history pair that carries the system prompt (the user half is
/// the prompt itself): CodeWhisperer has no system role.
const SYSTEM_ACKNOWLEDGEMENT: &str = "I will follow these instructions.";
/// Content of a user message holding tool results and no text.
const TOOL_RESULTS_PLACEHOLDER: &str = "Tool results are provided.";
/// Content of a user message holding images and no text.
const IMAGES_PLACEHOLDER: &str = "Images are provided.";
/// Content of a user message with nothing else in it: the current message after an
/// assistant prefill, the user turn put before a conversation that opens with the
/// assistant, or a user turn whose blocks were all dropped (documents, URL images).
const CONTINUE_PLACEHOLDER: &str = "Continue.";
/// Content of an assistant turn left with neither text nor tool calls (thinking only).
const ASSISTANT_PLACEHOLDER: &str = "Understood.";

/// Builds the `generateAssistantResponse` body. The last user turn is the current message;
/// everything before it is history.
pub fn to_codewhisperer(
    body: &MessagesBody,
    options: &Options<'_>,
) -> Result<Vec<u8>, ConvertError> {
    let mut turns = turns(&body.messages)?;
    let current = match turns.pop() {
        Some(Turn::User(turn)) => turn,
        // A request ending with an assistant turn (prefill) keeps that turn in the history
        // and asks the model to go on. CodeWhisperer has no prefill (the model answers a
        // new turn), so the prefix is context, not the start of the reply.
        Some(assistant) => {
            turns.push(assistant);
            UserTurn::default()
        }
        None => return Err(ConvertError::NoUserMessage),
    };

    let mut history = Vec::with_capacity(turns.len() + 2);
    if let Some(system) = system_text(body) {
        history.push(HistoryEntry::UserInputMessage(UserInputMessage::new(
            Cow::Owned(system),
            options.model_id,
        )));
        history.push(HistoryEntry::AssistantResponseMessage(
            AssistantResponseMessage {
                content: Cow::Borrowed(SYSTEM_ACKNOWLEDGEMENT),
                tool_uses: Vec::new(),
            },
        ));
    }
    history.extend(turns.into_iter().map(|turn| match turn {
        Turn::User(turn) => {
            HistoryEntry::UserInputMessage(turn.into_message(options.model_id, Vec::new()))
        }
        Turn::Assistant(turn) => HistoryEntry::AssistantResponseMessage(turn.into_message()),
    }));

    let tools = tool_entries(&body.tools, options.max_description_chars);
    let request = Request {
        profile_arn: options.profile_arn,
        conversation_state: ConversationState {
            chat_trigger_type: "MANUAL",
            conversation_id: options.conversation_id,
            current_message: CurrentMessage {
                user_input_message: current.into_message(options.model_id, tools),
            },
            history,
        },
    };
    serde_json::to_vec(&request).map_err(ConvertError::Encode)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    profile_arn: Option<&'a str>,
    conversation_state: ConversationState<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConversationState<'a> {
    chat_trigger_type: &'static str,
    conversation_id: &'a str,
    current_message: CurrentMessage<'a>,
    /// Always sent, `[]` on a first turn without a system prompt.
    history: Vec<HistoryEntry<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CurrentMessage<'a> {
    user_input_message: UserInputMessage<'a>,
}

/// `{"userInputMessage": …}` or `{"assistantResponseMessage": …}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum HistoryEntry<'a> {
    UserInputMessage(UserInputMessage<'a>),
    AssistantResponseMessage(AssistantResponseMessage<'a>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserInputMessage<'a> {
    content: Cow<'a, str>,
    model_id: &'a str,
    origin: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    images: Vec<Image<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_input_message_context: Option<UserInputMessageContext<'a>>,
}

impl<'a> UserInputMessage<'a> {
    fn new(content: Cow<'a, str>, model_id: &'a str) -> Self {
        UserInputMessage {
            content,
            model_id,
            origin: "AI_EDITOR",
            images: Vec::new(),
            user_input_message_context: None,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserInputMessageContext<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolEntry<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_results: Vec<ToolResult<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolEntry<'a> {
    tool_specification: ToolSpecification<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolSpecification<'a> {
    name: &'a str,
    description: &'a str,
    input_schema: InputSchema<'a>,
}

#[derive(Serialize)]
struct InputSchema<'a> {
    json: Schema<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Schema<'a> {
    /// The client's schema text, copied byte for byte.
    Raw(&'a RawValue),
    /// A tool without a schema takes no arguments.
    NoArguments {
        #[serde(rename = "type")]
        kind: &'static str,
        properties: serde_json::Map<String, Value>,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolResult<'a> {
    tool_use_id: &'a str,
    content: [ToolResultText<'a>; 1],
    status: &'static str,
}

#[derive(Serialize)]
struct ToolResultText<'a> {
    text: Cow<'a, str>,
}

#[derive(Serialize)]
struct Image<'a> {
    format: &'static str,
    source: ImageBytes<'a>,
}

#[derive(Serialize)]
struct ImageBytes<'a> {
    /// The client's base64 text as is: the service takes base64 here too.
    bytes: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AssistantResponseMessage<'a> {
    content: Cow<'a, str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_uses: Vec<ToolUse<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolUse<'a> {
    tool_use_id: &'a str,
    name: &'a str,
    input: ToolInput<'a>,
}

/// A tool call's input, always an object: the service rejects anything else, and a
/// `tool_use` without `input` parses as null.
struct ToolInput<'a>(&'a Value);

impl Serialize for ToolInput<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(input) => input.serialize(serializer),
            _ => serde_json::Map::new().serialize(serializer),
        }
    }
}

/// One side of the conversation after merging: consecutive Anthropic turns of one role
/// become one turn, since the service wants strict alternation.
enum Turn<'a> {
    User(UserTurn<'a>),
    Assistant(AssistantTurn<'a>),
}

#[derive(Default)]
struct UserTurn<'a> {
    /// One text per source (an Anthropic turn or a folded system message), none blank;
    /// joined by a blank line.
    texts: Vec<Cow<'a, str>>,
    images: Vec<Image<'a>>,
    tool_results: Vec<ToolResult<'a>>,
}

impl<'a> UserTurn<'a> {
    fn absorb(&mut self, next: UserTurn<'a>) {
        self.texts.extend(next.texts);
        self.images.extend(next.images);
        self.tool_results.extend(next.tool_results);
    }

    /// `tools` go only on the current message: the history keeps its tool results but
    /// the service takes the tool list once.
    fn into_message(self, model_id: &'a str, tools: Vec<ToolEntry<'a>>) -> UserInputMessage<'a> {
        let content = if self.texts.is_empty() {
            Cow::Borrowed(self.placeholder())
        } else {
            join(self.texts, "\n\n")
        };
        let has_context = !tools.is_empty() || !self.tool_results.is_empty();
        UserInputMessage {
            images: self.images,
            user_input_message_context: has_context.then_some(UserInputMessageContext {
                tools,
                tool_results: self.tool_results,
            }),
            ..UserInputMessage::new(content, model_id)
        }
    }

    /// The service rejects an empty `content`; some clients send `""` beside tool results,
    /// a neutral sentence is the safe choice.
    fn placeholder(&self) -> &'static str {
        if !self.tool_results.is_empty() {
            TOOL_RESULTS_PLACEHOLDER
        } else if !self.images.is_empty() {
            IMAGES_PLACEHOLDER
        } else {
            CONTINUE_PLACEHOLDER
        }
    }
}

#[derive(Default)]
struct AssistantTurn<'a> {
    texts: Vec<Cow<'a, str>>,
    tool_uses: Vec<ToolUse<'a>>,
}

impl<'a> AssistantTurn<'a> {
    fn absorb(&mut self, next: AssistantTurn<'a>) {
        self.texts.extend(next.texts);
        self.tool_uses.extend(next.tool_uses);
    }

    fn into_message(self) -> AssistantResponseMessage<'a> {
        let content = match (self.texts.is_empty(), self.tool_uses.is_empty()) {
            (false, _) => join(self.texts, "\n\n"),
            // Tool calls carry the turn: `""` is what the service's own clients send.
            (true, false) => Cow::Borrowed(""),
            (true, true) => Cow::Borrowed(ASSISTANT_PLACEHOLDER),
        };
        AssistantResponseMessage {
            content,
            tool_uses: self.tool_uses,
        }
    }
}

/// The conversation as alternating turns starting with a user turn, `role: "system"`
/// entries folded into user turns.
fn turns(messages: &[Message]) -> Result<Vec<Turn<'_>>, ConvertError> {
    let mut turns = Vec::with_capacity(messages.len());
    let mut pending_system = Vec::new();
    for message in messages {
        match message.role {
            Role::System => pending_system.extend(non_blank(content_text(&message.content))),
            Role::User => {
                let mut turn = user_turn(&message.content);
                // Mid-conversation system text precedes the user text that follows it, as
                // the client placed it.
                if !pending_system.is_empty() {
                    pending_system.append(&mut turn.texts);
                    turn.texts = std::mem::take(&mut pending_system);
                }
                push_turn(&mut turns, Turn::User(turn));
            }
            Role::Assistant => push_turn(
                &mut turns,
                Turn::Assistant(assistant_turn(&message.content)),
            ),
        }
    }
    let last_user = turns.iter_mut().rev().find_map(|turn| match turn {
        Turn::User(turn) => Some(turn),
        Turn::Assistant(_) => None,
    });
    let Some(last_user) = last_user else {
        return Err(ConvertError::NoUserMessage);
    };
    // No user turn follows the system text: the latest one takes it, after its own text.
    last_user.texts.append(&mut pending_system);
    // The history must open with a user message: a conversation the assistant opened
    // gets a neutral one first.
    if matches!(turns.first(), Some(Turn::Assistant(_))) {
        turns.insert(0, Turn::User(UserTurn::default()));
    }
    Ok(turns)
}

/// Appends a turn, merging it into the last one when both have the same role. Trailing
/// user turns thus merge into the current message, so the history before it always ends
/// with an assistant turn (rather than getting a made-up assistant reply).
fn push_turn<'a>(turns: &mut Vec<Turn<'a>>, turn: Turn<'a>) {
    match (turns.last_mut(), turn) {
        (Some(Turn::User(last)), Turn::User(next)) => last.absorb(next),
        (Some(Turn::Assistant(last)), Turn::Assistant(next)) => last.absorb(next),
        (_, turn) => turns.push(turn),
    }
}

fn user_turn(content: &Content) -> UserTurn<'_> {
    let mut turn = UserTurn::default();
    let blocks = match content {
        Content::Text(text) => {
            turn.texts.extend(non_blank(Cow::Borrowed(text)));
            return turn;
        }
        Content::Blocks(blocks) => blocks,
    };
    turn.texts.extend(non_blank(join_blocks(blocks)));
    for block in blocks {
        match block {
            ContentBlock::Image { source } => turn.images.extend(image(source)),
            ContentBlock::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => turn.tool_results.push(ToolResult {
                tool_use_id,
                content: [ToolResultText {
                    text: tool_result_text(content.as_ref()),
                }],
                status: if *is_error { "error" } else { "success" },
            }),
            // Documents and server tool results have no CodeWhisperer equivalent;
            // assistant-only blocks do not belong in a user turn.
            _ => {}
        }
    }
    turn
}

/// Text blocks and tool calls; thinking (no equivalent, and signed for Anthropic only) and
/// unknown blocks are dropped.
fn assistant_turn(content: &Content) -> AssistantTurn<'_> {
    match content {
        Content::Text(text) => AssistantTurn {
            texts: non_blank(Cow::Borrowed(text.as_str()))
                .into_iter()
                .collect(),
            tool_uses: Vec::new(),
        },
        Content::Blocks(blocks) => AssistantTurn {
            texts: non_blank(join_blocks(blocks)).into_iter().collect(),
            tool_uses: blocks.iter().filter_map(tool_use).collect(),
        },
    }
}

fn tool_use(block: &ContentBlock) -> Option<ToolUse<'_>> {
    match block {
        ContentBlock::ToolUse { id, name, input } => Some(ToolUse {
            tool_use_id: id,
            name,
            input: ToolInput(input),
        }),
        _ => None,
    }
}

/// CodeWhisperer takes image bytes only: a URL image is dropped (fetching it is not a
/// proxy's job), and so is a media type the service does not know.
fn image(source: &ImageSource) -> Option<Image<'_>> {
    let ImageSource::Base64 { media_type, data } = source else {
        return None;
    };
    let format = match media_type.as_str() {
        "image/png" => "png",
        "image/jpeg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => return None,
    };
    Some(Image {
        format,
        source: ImageBytes { bytes: data },
    })
}

/// The result's text; images a tool returned are dropped (CodeWhisperer's tool results hold
/// text only), the text beside them kept.
fn tool_result_text(content: Option<&ToolResultContent>) -> Cow<'_, str> {
    match content {
        None => Cow::Borrowed(""),
        Some(ToolResultContent::Text(text)) => Cow::Borrowed(text),
        Some(ToolResultContent::Blocks(blocks)) => join_blocks(blocks),
    }
}

fn content_text(content: &Content) -> Cow<'_, str> {
    match content {
        Content::Text(text) => Cow::Borrowed(text),
        Content::Blocks(blocks) => join_blocks(blocks),
    }
}

/// The text blocks of one Anthropic turn, joined by newlines like the other providers do.
fn join_blocks(blocks: &[ContentBlock]) -> Cow<'_, str> {
    let texts = blocks.iter().filter_map(|block| match block {
        ContentBlock::Text { text } if !text.is_empty() => Some(Cow::Borrowed(text.as_str())),
        _ => None,
    });
    join(texts.collect(), "\n")
}

/// Joins texts, borrowing when there is only one.
fn join<'a>(mut texts: Vec<Cow<'a, str>>, separator: &str) -> Cow<'a, str> {
    if texts.len() <= 1 {
        return texts.pop().unwrap_or_default();
    }
    Cow::Owned(texts.join(separator))
}

/// `None` for a text of whitespace only: it would make an empty-looking message.
fn non_blank(text: Cow<'_, str>) -> Option<Cow<'_, str>> {
    (!text.trim().is_empty()).then_some(text)
}

fn system_text(body: &MessagesBody) -> Option<String> {
    body.system
        .as_ref()
        .map(|system| system.joined())
        .filter(|text| !text.trim().is_empty())
}

/// Client tools as tool specifications; server tools run on Anthropic's side and
/// CodeWhisperer cannot run them.
fn tool_entries(tools: &[Tool], max_description_chars: usize) -> Vec<ToolEntry<'_>> {
    tools
        .iter()
        .filter(|tool| !tool.is_server_tool())
        .map(|tool| ToolEntry {
            tool_specification: ToolSpecification {
                name: &tool.name,
                description: description(tool, max_description_chars),
                input_schema: InputSchema {
                    json: match &tool.input_schema {
                        Some(schema) => Schema::Raw(schema),
                        None => Schema::NoArguments {
                            kind: "object",
                            properties: serde_json::Map::new(),
                        },
                    },
                },
            },
        })
        .collect()
}

/// The description cut to `max_chars` characters; the tool's name when that leaves nothing,
/// since the service rejects an empty description.
fn description(tool: &Tool, max_chars: usize) -> &str {
    let description = first_chars(tool.description.as_deref().unwrap_or_default(), max_chars);
    if description.trim().is_empty() {
        &tool.name
    } else {
        description
    }
}

/// The first `max_chars` characters of `text` (not bytes: a cut inside a UTF-8 sequence
/// would not be a string).
fn first_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::json;

    use super::*;

    const MODEL: &str = "CLAUDE_SONNET_4_5_20250929_V1_0";

    fn options() -> Options<'static> {
        Options {
            model_id: MODEL,
            profile_arn: None,
            conversation_id: "0b5d4c3e-2f1a-4e6b-9c8d-7a6b5c4d3e2f",
            max_description_chars: 10_000,
        }
    }

    fn parse(request: &Value) -> MessagesBody {
        MessagesBody::parse(&serde_json::to_vec(request).unwrap()).unwrap()
    }

    /// Converts and checks the rules every output must keep, whatever the input.
    fn convert_with(request: Value, options: &Options<'_>) -> Value {
        let bytes = to_codewhisperer(&parse(&request), options).unwrap();
        let out: Value = serde_json::from_slice(&bytes).unwrap();
        assert_well_formed(&out);
        out
    }

    fn convert(request: Value) -> Value {
        convert_with(request, &options())
    }

    fn with_messages(messages: Value) -> Value {
        json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": messages})
    }

    fn history(out: &Value) -> &Vec<Value> {
        out["conversationState"]["history"].as_array().unwrap()
    }

    fn current(out: &Value) -> &Value {
        &out["conversationState"]["currentMessage"]["userInputMessage"]
    }

    /// The service's rules: alternation starting with a user message and ending with an
    /// assistant one, no empty content, the model and origin on every user message, tools
    /// only on the current message, object inputs, and every tool result answering a tool
    /// call made earlier.
    fn assert_well_formed(out: &Value) {
        let history = history(out);
        assert_eq!(
            history.len() % 2,
            0,
            "history must end with assistant: {out}"
        );
        let mut tool_use_ids = HashSet::new();
        for (i, entry) in history.iter().enumerate() {
            let entry = entry.as_object().unwrap();
            assert_eq!(entry.len(), 1);
            if i % 2 == 0 {
                let message = &entry["userInputMessage"];
                assert_user_message(message, &tool_use_ids);
                assert!(
                    message["userInputMessageContext"].get("tools").is_none(),
                    "tools in history: {out}"
                );
            } else {
                let message = &entry["assistantResponseMessage"];
                let tool_uses = message.get("toolUses").and_then(Value::as_array);
                let content = message["content"].as_str().unwrap();
                assert!(!content.is_empty() || tool_uses.is_some(), "empty: {out}");
                for tool_use in tool_uses.into_iter().flatten() {
                    assert!(tool_use["input"].is_object());
                    assert!(tool_use["name"].is_string());
                    tool_use_ids.insert(tool_use["toolUseId"].as_str().unwrap().to_owned());
                }
            }
        }
        assert_user_message(current(out), &tool_use_ids);
        assert_eq!(out["conversationState"]["chatTriggerType"], "MANUAL");
    }

    fn assert_user_message(message: &Value, tool_use_ids: &HashSet<String>) {
        assert!(!message["content"].as_str().unwrap().is_empty());
        assert_eq!(message["modelId"], MODEL);
        assert_eq!(message["origin"], "AI_EDITOR");
        let results = message["userInputMessageContext"]["toolResults"].as_array();
        for result in results.into_iter().flatten() {
            let id = result["toolUseId"].as_str().unwrap();
            assert!(
                tool_use_ids.contains(id),
                "{id} answers no earlier tool call"
            );
        }
    }

    fn base64_image(media_type: &str, data: &str) -> Value {
        json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
    }

    fn tool_use(id: &str, name: &str, input: Value) -> Value {
        json!({"type": "tool_use", "id": id, "name": name, "input": input})
    }

    fn tool_result(id: &str, content: Value) -> Value {
        json!({"type": "tool_result", "tool_use_id": id, "content": content})
    }

    fn tools_request(tools: Value) -> Value {
        let mut request = with_messages(json!([{"role": "user", "content": "hi"}]));
        request["tools"] = tools;
        request
    }

    fn tool_spec(out: &Value, i: usize) -> &Value {
        &current(out)["userInputMessageContext"]["tools"][i]["toolSpecification"]
    }

    #[test]
    fn profile_arn_is_sent_only_when_given() {
        let request = with_messages(json!([{"role": "user", "content": "hi"}]));
        let out = convert(request.clone());
        assert!(!out.as_object().unwrap().contains_key("profileArn"));

        let arn = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK";
        let with_arn = Options {
            profile_arn: Some(arn),
            ..options()
        };
        let out = convert_with(request, &with_arn);
        assert_eq!(out["profileArn"], arn);
    }

    #[test]
    fn a_single_user_message_is_the_current_message_with_an_empty_history() {
        let out = convert(with_messages(json!([{"role": "user", "content": "hi"}])));
        assert_eq!(
            out,
            json!({"conversationState": {
                "chatTriggerType": "MANUAL",
                "conversationId": "0b5d4c3e-2f1a-4e6b-9c8d-7a6b5c4d3e2f",
                "currentMessage": {"userInputMessage": {
                    "content": "hi", "modelId": MODEL, "origin": "AI_EDITOR"
                }},
                "history": []
            }})
        );
    }

    #[test]
    fn a_string_system_prompt_becomes_the_first_history_pair() {
        let mut request = with_messages(json!([{"role": "user", "content": "hi"}]));
        request["system"] = json!("Be brief.");
        let out = convert(request);
        assert_eq!(
            history(&out),
            &vec![
                json!({"userInputMessage": {"content": "Be brief.", "modelId": MODEL, "origin": "AI_EDITOR"}}),
                json!({"assistantResponseMessage": {"content": SYSTEM_ACKNOWLEDGEMENT}}),
            ]
        );
        assert_eq!(current(&out)["content"], "hi");
    }

    #[test]
    fn a_block_system_prompt_is_joined_and_a_blank_one_is_left_out() {
        let mut request = with_messages(json!([{"role": "user", "content": "hi"}]));
        request["system"] = json!([
            {"type": "text", "text": "one"},
            {"type": "text", "text": "two", "cache_control": {"type": "ephemeral"}}
        ]);
        let out = convert(request.clone());
        assert_eq!(history(&out)[0]["userInputMessage"]["content"], "one\ntwo");
        assert!(!out.to_string().contains("cache_control"));

        request["system"] = json!("  \n");
        assert!(history(&convert(request.clone())).is_empty());
        request["system"] = json!([]);
        assert!(history(&convert(request)).is_empty());
    }

    #[test]
    fn system_messages_are_folded_into_the_next_user_message() {
        let out = convert(with_messages(json!([
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "system", "content": "Today is Monday."},
            {"role": "system", "content": [{"type": "text", "text": "Be careful."}]},
            {"role": "user", "content": "second"}
        ])));
        assert_eq!(history(&out).len(), 2);
        assert_eq!(history(&out)[0]["userInputMessage"]["content"], "first");
        assert_eq!(
            current(&out)["content"],
            "Today is Monday.\n\nBe careful.\n\nsecond"
        );
    }

    #[test]
    fn a_trailing_system_message_is_appended_to_the_previous_user_message() {
        let out = convert(with_messages(json!([
            {"role": "user", "content": "first"},
            {"role": "system", "content": "Reminder."}
        ])));
        assert!(history(&out).is_empty());
        assert_eq!(current(&out)["content"], "first\n\nReminder.");

        // With a prefill after it, the previous user message is in the history.
        let out = convert(with_messages(json!([
            {"role": "user", "content": "first"},
            {"role": "system", "content": "Reminder."},
            {"role": "assistant", "content": "Sure"}
        ])));
        assert_eq!(
            history(&out)[0]["userInputMessage"]["content"],
            "first\n\nReminder."
        );
        assert!(!out.to_string().contains("\"system\""));
    }

    #[test]
    fn consecutive_turns_of_one_role_are_merged() {
        let out = convert(with_messages(json!([
            {"role": "user", "content": "one"},
            {"role": "user", "content": [{"type": "text", "text": "two"}, {"type": "text", "text": "three"}]},
            {"role": "assistant", "content": [tool_use("toolu_a", "Read", json!({"p": 1}))]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "four"},
                tool_use("toolu_b", "Read", json!({"p": 2}))
            ]},
            {"role": "assistant", "content": "five"},
            {"role": "user", "content": [tool_result("toolu_a", json!("a"))]},
            {"role": "user", "content": [tool_result("toolu_b", json!("b")), {"type": "text", "text": "six"}]}
        ])));
        let history = history(&out);
        assert_eq!(history.len(), 2);
        assert_eq!(
            history[0]["userInputMessage"]["content"],
            "one\n\ntwo\nthree"
        );
        let assistant = &history[1]["assistantResponseMessage"];
        assert_eq!(assistant["content"], "four\n\nfive");
        let ids: Vec<_> = assistant["toolUses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["toolUseId"].clone())
            .collect();
        assert_eq!(ids, [json!("toolu_a"), json!("toolu_b")]);

        // The trailing user turns are merged into the current message.
        let current = current(&out);
        assert_eq!(current["content"], "six");
        let results = current["userInputMessageContext"]["toolResults"]
            .as_array()
            .unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0]["toolUseId"], "toolu_a");
        assert_eq!(results[1]["toolUseId"], "toolu_b");
    }

    #[test]
    fn a_prefilled_assistant_turn_goes_to_history_and_the_current_message_says_continue() {
        let mut request = with_messages(json!([
            {"role": "user", "content": "Write JSON."},
            {"role": "assistant", "content": "{"}
        ]));
        request["tools"] =
            json!([{"name": "t", "description": "d", "input_schema": {"type": "object"}}]);
        let out = convert(request);
        assert_eq!(
            history(&out),
            &vec![
                json!({"userInputMessage": {"content": "Write JSON.", "modelId": MODEL, "origin": "AI_EDITOR"}}),
                json!({"assistantResponseMessage": {"content": "{"}}),
            ]
        );
        assert_eq!(current(&out)["content"], CONTINUE_PLACEHOLDER);
        assert_eq!(
            tool_spec(&out, 0)["name"],
            "t",
            "tools still go on the current message"
        );
    }

    #[test]
    fn a_conversation_opening_with_the_assistant_gets_a_user_turn_first() {
        let mut request = with_messages(json!([
            {"role": "assistant", "content": "Hello, how can I help?"},
            {"role": "user", "content": "hi"}
        ]));
        let out = convert(request.clone());
        assert_eq!(
            history(&out)[0]["userInputMessage"]["content"],
            CONTINUE_PLACEHOLDER
        );
        assert_eq!(
            history(&out)[1]["assistantResponseMessage"]["content"],
            "Hello, how can I help?"
        );

        // The system pair stays as it is, the placeholder after it.
        request["system"] = json!("sys");
        let out = convert(request);
        let contents: Vec<_> = history(&out)
            .iter()
            .map(|e| e.as_object().unwrap().values().next().unwrap()["content"].clone())
            .collect();
        assert_eq!(
            contents,
            [
                json!("sys"),
                json!(SYSTEM_ACKNOWLEDGEMENT),
                json!(CONTINUE_PLACEHOLDER),
                json!("Hello, how can I help?")
            ]
        );
    }

    #[test]
    fn tool_results_go_to_the_context_of_their_own_user_message() {
        let out = convert(with_messages(json!([
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [tool_use("toolu_1", "Bash", json!({"command": "ls"}))]},
            {"role": "user", "content": [tool_result("toolu_1", json!("a.txt"))]},
            {"role": "assistant", "content": [tool_use("toolu_2", "Bash", json!({"command": "pwd"}))]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "content": "denied", "is_error": true}]}
        ])));
        let earlier = &history(&out)[2]["userInputMessage"];
        assert_eq!(earlier["content"], TOOL_RESULTS_PLACEHOLDER);
        assert_eq!(
            earlier["userInputMessageContext"],
            json!({"toolResults": [{"toolUseId": "toolu_1", "content": [{"text": "a.txt"}], "status": "success"}]})
        );
        let current = current(&out);
        assert_eq!(current["content"], TOOL_RESULTS_PLACEHOLDER);
        assert_eq!(
            current["userInputMessageContext"],
            json!({"toolResults": [{"toolUseId": "toolu_2", "content": [{"text": "denied"}], "status": "error"}]})
        );
    }

    #[test]
    fn a_tool_result_is_its_text_without_images() {
        let out = convert(with_messages(json!([
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [
                tool_use("toolu_1", "A", json!({})),
                tool_use("toolu_2", "B", json!({})),
                tool_use("toolu_3", "C", json!({})),
                tool_use("toolu_4", "D", json!({}))
            ]},
            {"role": "user", "content": [
                tool_result("toolu_1", json!("plain")),
                tool_result("toolu_2", json!([
                    {"type": "text", "text": "line 1"},
                    base64_image("image/png", "iVBORw0KGgo="),
                    {"type": "text", "text": "line 2"}
                ])),
                tool_result("toolu_3", json!([base64_image("image/png", "iVBORw0KGgo=")])),
                {"type": "tool_result", "tool_use_id": "toolu_4"}
            ]}
        ])));
        let texts: Vec<_> = current(&out)["userInputMessageContext"]["toolResults"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["content"].clone())
            .collect();
        assert_eq!(
            texts,
            [
                json!([{"text": "plain"}]),
                json!([{"text": "line 1\nline 2"}]),
                json!([{"text": ""}]),
                json!([{"text": ""}])
            ]
        );
        assert!(current(&out).get("images").is_none());
        assert!(!out.to_string().contains("iVBORw0KGgo="));
    }

    #[test]
    fn content_is_never_empty() {
        let out = convert(with_messages(json!([
            {"role": "user", "content": [base64_image("image/png", "iVBORw0KGgo=")]},
            {"role": "assistant", "content": "seen"},
            {"role": "user", "content": [{"type": "document", "source": {"type": "text", "data": "x"}}]},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": ""},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": " \n"}]}
        ])));
        let history = history(&out);
        assert_eq!(
            history[0]["userInputMessage"]["content"],
            IMAGES_PLACEHOLDER
        );
        assert_eq!(
            history[2]["userInputMessage"]["content"],
            CONTINUE_PLACEHOLDER
        );
        assert_eq!(
            history[4]["userInputMessage"]["content"],
            CONTINUE_PLACEHOLDER
        );
        assert_eq!(current(&out)["content"], CONTINUE_PLACEHOLDER);
    }

    #[test]
    fn assistant_tool_uses_become_tool_uses_with_object_inputs() {
        let out = convert(with_messages(json!([
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [
                tool_use("toolu_1", "Read", json!({"file_path": "/a", "limit": 10})),
                tool_use("toolu_2", "Odd", json!([1, 2])),
                tool_use("toolu_3", "Odd", json!("text")),
                {"type": "tool_use", "id": "toolu_4", "name": "NoInput"}
            ]},
            {"role": "user", "content": "next"}
        ])));
        assert_eq!(
            history(&out)[1],
            json!({"assistantResponseMessage": {"content": "", "toolUses": [
                {"toolUseId": "toolu_1", "name": "Read", "input": {"file_path": "/a", "limit": 10}},
                {"toolUseId": "toolu_2", "name": "Odd", "input": {}},
                {"toolUseId": "toolu_3", "name": "Odd", "input": {}},
                {"toolUseId": "toolu_4", "name": "NoInput", "input": {}}
            ]}})
        );
    }

    #[test]
    fn assistant_thinking_and_unknown_blocks_are_dropped() {
        let out = convert(with_messages(json!([
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "secret plan", "signature": "sig"},
                {"type": "text", "text": "one"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
                {"type": "text", "text": "two"}
            ]},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "only this", "signature": "s"}]},
            {"role": "user", "content": "c"}
        ])));
        assert_eq!(
            history(&out)[1],
            json!({"assistantResponseMessage": {"content": "one\ntwo"}})
        );
        assert_eq!(
            history(&out)[3],
            json!({"assistantResponseMessage": {"content": ASSISTANT_PLACEHOLDER}})
        );
        let text = out.to_string();
        for absent in ["secret plan", "opaque", "srvtoolu_1", "only this", "sig"] {
            assert!(!text.contains(absent), "{absent} leaked: {text}");
        }
    }

    #[test]
    fn base64_images_keep_their_format_and_url_images_are_dropped() {
        let out = convert(with_messages(json!([
            {"role": "user", "content": [
                {"type": "text", "text": "compare"},
                base64_image("image/png", "UE5H"),
                base64_image("image/jpeg", "SlBFRw=="),
                base64_image("image/gif", "R0lG"),
                base64_image("image/webp", "V0VCUA=="),
                base64_image("image/tiff", "VElGRg=="),
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
            ]},
            {"role": "assistant", "content": "done"},
            {"role": "user", "content": [base64_image("image/png", "QUdBSU4=")]}
        ])));
        let first = &history(&out)[0]["userInputMessage"];
        assert_eq!(first["content"], "compare");
        assert_eq!(
            first["images"],
            json!([
                {"format": "png", "source": {"bytes": "UE5H"}},
                {"format": "jpeg", "source": {"bytes": "SlBFRw=="}},
                {"format": "gif", "source": {"bytes": "R0lG"}},
                {"format": "webp", "source": {"bytes": "V0VCUA=="}}
            ])
        );
        assert_eq!(
            current(&out)["images"],
            json!([{"format": "png", "source": {"bytes": "QUdBSU4="}}])
        );
        assert!(!out.to_string().contains("example.com"));
    }

    #[test]
    fn tools_go_on_the_current_message_only_without_server_tools() {
        let mut request = with_messages(json!([
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"}
        ]));
        request["tools"] = json!([
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
            {"name": "Read", "description": "Reads a file.", "input_schema": {"type": "object"}},
            {"type": "custom", "name": "Mine", "description": "Mine.", "input_schema": {"type": "object"}}
        ]);
        let out = convert(request);
        let tools = current(&out)["userInputMessageContext"]["tools"]
            .as_array()
            .unwrap();
        let names: Vec<_> = tools
            .iter()
            .map(|t| t["toolSpecification"]["name"].clone())
            .collect();
        assert_eq!(names, [json!("Read"), json!("Mine")]);
        assert!(
            history(&out)
                .iter()
                .all(|e| !e.to_string().contains("toolSpecification"))
        );

        // Only server tools: no context at all.
        let out = convert(tools_request(
            json!([{"type": "web_search_20250305", "name": "web_search"}]),
        ));
        assert!(current(&out).get("userInputMessageContext").is_none());
    }

    #[test]
    fn a_tool_schema_is_copied_verbatim_or_defaults_to_an_empty_object() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {"path": {"type": "string", "description": "é 世界"}},
            "required": ["path"],
            "additionalProperties": false
        });
        let out = convert(tools_request(json!([
            {"name": "Read", "description": "Reads.", "input_schema": schema},
            {"name": "Now", "description": "The time."}
        ])));
        assert_eq!(
            tool_spec(&out, 0),
            &json!({"name": "Read", "description": "Reads.", "inputSchema": {"json": schema}})
        );
        assert_eq!(
            tool_spec(&out, 1)["inputSchema"],
            json!({"json": {"type": "object", "properties": {}}})
        );
    }

    #[test]
    fn long_descriptions_are_cut_on_a_character_boundary() {
        let cut = Options {
            max_description_chars: 3,
            ..options()
        };
        let out = convert_with(
            tools_request(json!([
                {"name": "a", "description": "éàü世界", "input_schema": {"type": "object"}},
                {"name": "b", "description": "abc", "input_schema": {"type": "object"}},
                {"name": "c", "description": "ab", "input_schema": {"type": "object"}}
            ])),
            &cut,
        );
        assert_eq!(tool_spec(&out, 0)["description"], "éàü");
        assert_eq!(tool_spec(&out, 1)["description"], "abc");
        assert_eq!(tool_spec(&out, 2)["description"], "ab");

        assert_eq!(first_chars("世界", 1), "世");
        assert_eq!(first_chars("", 5), "");
        assert_eq!(first_chars("abc", 0), "");
    }

    #[test]
    fn an_empty_or_missing_description_becomes_the_tool_name() {
        let out = convert(tools_request(json!([
            {"name": "NoDescription", "input_schema": {"type": "object"}},
            {"name": "Empty", "description": "", "input_schema": {"type": "object"}},
            {"name": "Blank", "description": "  ", "input_schema": {"type": "object"}}
        ])));
        for (i, name) in ["NoDescription", "Empty", "Blank"].into_iter().enumerate() {
            assert_eq!(tool_spec(&out, i)["description"], name);
        }
        let nothing_left = Options {
            max_description_chars: 0,
            ..options()
        };
        let out = convert_with(
            tools_request(json!([{"name": "Zero", "description": "text"}])),
            &nothing_left,
        );
        assert_eq!(tool_spec(&out, 0)["description"], "Zero");
    }

    #[test]
    fn every_user_message_names_the_model_and_origin() {
        let mut request = with_messages(json!([
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"}
        ]));
        request["system"] = json!("s");
        let out = convert(request);
        let history = history(&out);
        for message in [
            &history[0]["userInputMessage"],
            &history[2]["userInputMessage"],
            current(&out),
        ] {
            assert_eq!(message["modelId"], MODEL);
            assert_eq!(message["origin"], "AI_EDITOR");
        }
        for entry in [&history[1], &history[3]] {
            let message = &entry["assistantResponseMessage"];
            assert!(message.get("modelId").is_none());
            assert!(message.get("origin").is_none());
        }
    }

    #[test]
    fn tool_ids_stay_consistent_over_a_multi_turn_tool_loop() {
        let mut messages = vec![json!({"role": "user", "content": "Run the checks."})];
        for round in 0..5 {
            let ids = [format!("toolu_{round}_a"), format!("toolu_{round}_b")];
            messages.push(json!({"role": "assistant", "content": [
                {"type": "text", "text": format!("Round {round}.")},
                tool_use(&ids[0], "Bash", json!({"command": "cargo test"})),
                tool_use(&ids[1], "Read", json!({"file_path": "Cargo.toml"}))
            ]}));
            messages.push(json!({"role": "user", "content": [
                tool_result(&ids[0], json!("ok")),
                {"type": "tool_result", "tool_use_id": ids[1], "content": "missing", "is_error": true}
            ]}));
        }
        let out = convert(with_messages(Value::Array(messages)));
        // assert_well_formed checked each result against the calls before it; check here
        // that every call and result made it across, in place.
        let history = history(&out);
        assert_eq!(history.len(), 10);
        for round in 0..5 {
            let calls = &history[2 * round + 1]["assistantResponseMessage"]["toolUses"];
            let answers = if round == 4 {
                &current(&out)["userInputMessageContext"]["toolResults"]
            } else {
                &history[2 * round + 2]["userInputMessage"]["userInputMessageContext"]["toolResults"]
            };
            for (i, suffix) in ["a", "b"].into_iter().enumerate() {
                let id = format!("toolu_{round}_{suffix}");
                assert_eq!(calls[i]["toolUseId"], id);
                assert_eq!(answers[i]["toolUseId"], id);
            }
            assert_eq!(answers[1]["status"], "error");
        }
    }

    #[test]
    fn a_request_without_a_user_message_is_an_error() {
        for messages in [
            json!([]),
            json!([{"role": "assistant", "content": "hello"}]),
            json!([{"role": "system", "content": "rules"}]),
        ] {
            let mut request = with_messages(messages);
            request["system"] = json!("sys");
            let error = to_codewhisperer(&parse(&request), &options()).unwrap_err();
            assert!(matches!(error, ConvertError::NoUserMessage));
            assert!(error.to_string().contains("\"role\": \"user\""));
        }
    }

    #[test]
    fn golden_multi_turn_tool_loop() {
        let edit_input = json!({"file_path": "src/main.rs", "old_string": "1", "new_string": "2"});
        let mut request = with_messages(json!([
            {"role": "user", "content": "Fix the failing test."},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me look."},
                tool_use("toolu_01", "Read", json!({"file_path": "src/main.rs"})),
                tool_use("toolu_02", "Bash", json!({"command": "cargo test"}))
            ]},
            {"role": "user", "content": [
                tool_result("toolu_01", json!("fn main() {}")),
                {"type": "tool_result", "tool_use_id": "toolu_02", "is_error": true,
                 "content": [{"type": "text", "text": "test failed"}]},
                {"type": "text", "text": "Both ran."}
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "The constant is wrong.", "signature": "c2ln"},
                {"type": "text", "text": "The constant is off by one."},
                tool_use("toolu_03", "Edit", edit_input.clone())
            ]},
            {"role": "user", "content": [
                tool_result("toolu_03", json!([{"type": "text", "text": "Edited."}])),
                base64_image("image/jpeg", "/9j/4AAQ")
            ]}
        ]));
        request["system"] = json!("You are a careful engineer.");
        request["tools"] = json!([
            {"name": "Read", "description": "Reads a file.", "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}}},
            {"name": "Bash", "description": "Runs a command.", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}},
            {"name": "Edit", "description": "Edits a file.", "input_schema": {"type": "object"}}
        ]);
        let out = convert(request);
        let user =
            |content: &str| json!({"content": content, "modelId": MODEL, "origin": "AI_EDITOR"});
        let mut answered = user("Both ran.");
        answered["userInputMessageContext"] = json!({"toolResults": [
            {"toolUseId": "toolu_01", "content": [{"text": "fn main() {}"}], "status": "success"},
            {"toolUseId": "toolu_02", "content": [{"text": "test failed"}], "status": "error"}
        ]});
        assert_eq!(
            history(&out),
            &vec![
                json!({"userInputMessage": user("You are a careful engineer.")}),
                json!({"assistantResponseMessage": {"content": SYSTEM_ACKNOWLEDGEMENT}}),
                json!({"userInputMessage": user("Fix the failing test.")}),
                json!({"assistantResponseMessage": {"content": "Let me look.", "toolUses": [
                    {"toolUseId": "toolu_01", "name": "Read", "input": {"file_path": "src/main.rs"}},
                    {"toolUseId": "toolu_02", "name": "Bash", "input": {"command": "cargo test"}}
                ]}}),
                json!({"userInputMessage": answered}),
                json!({"assistantResponseMessage": {"content": "The constant is off by one.", "toolUses": [
                    {"toolUseId": "toolu_03", "name": "Edit", "input": edit_input}
                ]}}),
            ]
        );
        let mut expected_current = user(TOOL_RESULTS_PLACEHOLDER);
        expected_current["images"] = json!([{"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}]);
        expected_current["userInputMessageContext"] = json!({
            "tools": [
                {"toolSpecification": {"name": "Read", "description": "Reads a file.",
                    "inputSchema": {"json": {"type": "object", "properties": {"file_path": {"type": "string"}}}}}},
                {"toolSpecification": {"name": "Bash", "description": "Runs a command.",
                    "inputSchema": {"json": {"type": "object", "properties": {"command": {"type": "string"}}}}}},
                {"toolSpecification": {"name": "Edit", "description": "Edits a file.",
                    "inputSchema": {"json": {"type": "object"}}}}
            ],
            "toolResults": [{"toolUseId": "toolu_03", "content": [{"text": "Edited."}], "status": "success"}]
        });
        assert_eq!(current(&out), &expected_current);
    }

    #[test]
    fn golden_claude_code_first_turn() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/claude-code-first-turn.json"
        );
        let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let input = &fixture["body"];
        let arn = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK";
        let with_arn = Options {
            profile_arn: Some(arn),
            ..options()
        };
        let out = convert_with(input.clone(), &with_arn);
        assert_eq!(out["profileArn"], arn);

        // The system prompt is the first history pair (assert_well_formed checked the
        // alternation and the assistant ending).
        let history = history(&out);
        let system = parse(input).system.unwrap().joined();
        assert!(system.len() > 5000);
        assert_eq!(history[0]["userInputMessage"]["content"], system.as_str());
        assert_eq!(
            history[1]["assistantResponseMessage"]["content"],
            SYSTEM_ACKNOWLEDGEMENT
        );

        // The user's text is the current message, and so is the mid-conversation system
        // message (nothing follows it).
        let messages = input["messages"].as_array().unwrap();
        let user_contents: Vec<&str> = std::iter::once(current(&out))
            .chain(history.iter().filter_map(|e| e.get("userInputMessage")))
            .map(|m| m["content"].as_str().unwrap())
            .collect();
        let content = current(&out)["content"].as_str().unwrap();
        for message in messages.iter().filter(|m| m["role"] == "user") {
            for block in message["content"].as_array().unwrap() {
                assert!(content.contains(block["text"].as_str().unwrap()));
            }
        }
        assert!(content.contains("say hi — héllo 世界"));
        let mid_system = messages.iter().find(|m| m["role"] == "system").unwrap();
        let mid_system = mid_system["content"].as_str().unwrap();
        assert!(user_contents.iter().any(|c| c.contains(mid_system)));

        // Every client tool, its schema unchanged.
        let input_tools: Vec<_> = input["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t.get("type").is_none_or(|k| k == "custom"))
            .collect();
        assert_eq!(input_tools.len(), 24);
        let tools = current(&out)["userInputMessageContext"]["tools"]
            .as_array()
            .unwrap();
        assert_eq!(tools.len(), input_tools.len());
        for (tool, original) in tools.iter().zip(input_tools) {
            let spec = &tool["toolSpecification"];
            assert_eq!(spec["name"], original["name"]);
            assert_eq!(spec["inputSchema"]["json"], original["input_schema"]);
            let description: String = original["description"]
                .as_str()
                .unwrap()
                .chars()
                .take(with_arn.max_description_chars)
                .collect();
            assert_eq!(spec["description"], description.as_str());
        }
        // The Workflow tool's description (~18 800 characters) is the one cut.
        let cut: Vec<_> = tools
            .iter()
            .filter(|t| {
                let spec = &t["toolSpecification"];
                spec["description"].as_str().unwrap().chars().count()
                    == with_arn.max_description_chars
            })
            .map(|t| t["toolSpecification"]["name"].clone())
            .collect();
        assert_eq!(cut, [json!("Workflow")]);
        // Nothing else of the request (metadata, thinking, context_management,
        // cache_control…) goes upstream.
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&out), ["profileArn", "conversationState"]);
        assert_eq!(
            keys(&out["conversationState"]),
            [
                "chatTriggerType",
                "conversationId",
                "currentMessage",
                "history"
            ]
        );
        assert!(!out.to_string().contains("cache_control"));
    }
}
