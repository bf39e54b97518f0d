//! The Messages request parser: arbitrary and JSON-ish bytes, generated bodies, and the
//! Claude Code fixture mutated byte-wise and value-wise. Nothing panics; junk (anything that
//! is not a JSON object with a string `model`) is an error, never a success; a body that is
//! one always parses, and what ccr derives from it (the typed body, the estimate, the body
//! for Anthropic, the OpenAI and CodeWhisperer requests) never panics.

use std::sync::LazyLock;

use bytes::Bytes;
use ccr::anthropic::MessagesRequest;
use ccr::anthropic::types::MessagesBody;
use ccr::config::{GeminiModelConfig, ModelConfig};
use ccr::providers::codewhisperer::request::{Options, to_codewhisperer};
use ccr::providers::gemini::request::to_gemini;
use ccr::providers::openai::request::to_openai;
use proptest::prelude::*;
use proptest::sample::Index;
use serde::de::IgnoredAny;
use serde_json::{Map, Value, json};

use super::{cases, mutate, mutations};

/// The fixture's body, compact, and as a value.
static FIXTURE: LazyLock<(Vec<u8>, Value)> = LazyLock::new(|| {
    let (_, body) = crate::support::fixture();
    let value = serde_json::from_slice(&body).unwrap();
    (body, value)
});

/// Whether `body` follows JSON's grammar as ccr reads it. ccr skips the fields it does not
/// read without checking their strings (neither their UTF-8 nor lone `\ud800` surrogates),
/// so such a body counts as JSON here, while `serde_json::Value` would refuse it.
fn is_json(body: &[u8]) -> bool {
    serde_json::from_slice::<IgnoredAny>(body).is_ok()
}

/// Everything ccr does with a body, checked for what it promises. Returns whether the
/// request parsed.
fn parse_all(body: &[u8]) -> Result<bool, TestCaseError> {
    // On its own, `MessagesBody::parse` reads one value and leaves any bytes after it unread
    // (and takes an array for the object), so here it only must not panic; on the server's
    // path the body has passed `MessagesRequest::parse` first.
    let typed = MessagesBody::parse(body);
    if let Ok(typed) = &typed {
        converts(typed)?;
    }
    let request = match MessagesRequest::parse(Bytes::copy_from_slice(body)) {
        Ok(request) => request,
        Err(error) => {
            prop_assert!(!error.to_string().is_empty());
            return Ok(false);
        }
    };
    prop_assert!(is_json(body), "junk parsed as a request");
    let _ = request.input_estimate();
    let _ = request.facts();
    prop_assert_eq!(request.typed().is_ok(), typed.is_ok());
    let replaced = request.body_with_model("other/model");
    prop_assert!(is_json(&replaced), "body_with_model broke the JSON");
    let for_anthropic = request.body_for_anthropic("claude-x");
    prop_assert!(is_json(&for_anthropic), "body_for_anthropic broke the JSON");

    // Where the body is also a `Value`, compare what ccr read with what it says.
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Ok(true);
    };
    prop_assert!(value.is_object(), "a request is an object");
    prop_assert_eq!(value["model"].as_str(), Some(request.model()));
    prop_assert_eq!(request.stream(), value["stream"].as_bool().unwrap_or(false));
    // Replacing the model changes the model and nothing else.
    let replaced: Value = serde_json::from_slice(&replaced).unwrap();
    prop_assert_eq!(&replaced["model"], "other/model");
    prop_assert_eq!(without_model(replaced), without_model(value));
    let for_anthropic: Value = serde_json::from_slice(&for_anthropic).unwrap();
    prop_assert_eq!(&for_anthropic["model"], "claude-x");
    Ok(true)
}

fn without_model(mut value: Value) -> Value {
    if let Some(object) = value.as_object_mut() {
        object.remove("model");
    }
    value
}

/// The provider conversions of a typed body: errors are allowed, panics and broken JSON not.
/// Values ccr passes on unread (tool schemas, tool input) keep what they had, a lone
/// surrogate included, so the output is checked with the same grammar as the input.
fn converts(typed: &MessagesBody) -> Result<(), TestCaseError> {
    let options = ModelConfig {
        max_tokens: Some(8192),
        reasoning_effort: true,
        reasoning_content: true,
    };
    if let Ok(body) = to_openai(typed, "deepseek-chat", &options) {
        prop_assert!(is_json(&body), "to_openai wrote broken JSON");
    }
    for parameters_json_schema in [false, true] {
        let options = GeminiModelConfig {
            max_tokens: Some(8192),
            max_thinking_budget: None,
            parameters_json_schema,
        };
        if let Ok(body) = to_gemini(typed, "gemini-3-pro-preview", &options) {
            prop_assert!(is_json(&body), "to_gemini wrote broken JSON");
        }
    }
    let options = Options {
        model_id: "CLAUDE_SONNET_4_5_20250929_V1_0",
        profile_arn: Some("arn:aws:codewhisperer:us-east-1:0:profile/x"),
        conversation_id: "00000000-0000-4000-8000-000000000000",
        max_description_chars: 64,
    };
    if let Ok(body) = to_codewhisperer(typed, &options) {
        prop_assert!(is_json(&body), "to_codewhisperer wrote broken JSON");
    }
    Ok(())
}

/// Tokens of JSON and of Messages bodies, to be strung together at random.
fn json_ish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        prop::sample::select(
            &[
                "{",
                "}",
                "[",
                "]",
                ":",
                ",",
                " ",
                "\n",
                "\"",
                "\\",
                "null",
                "true",
                "false",
                "0",
                "-1.5e300",
                "1e999",
                "18446744073709551616",
                "\"model\"",
                "\"stream\"",
                "\"messages\"",
                "\"role\"",
                "\"user\"",
                "\"assistant\"",
                "\"content\"",
                "\"type\"",
                "\"text\"",
                "\"tool_use\"",
                "\"tool_result\"",
                "\"thinking\"",
                "\"enabled\"",
                "\"tools\"",
                "\"web_search_20250305\"",
                "\"metadata\"",
                "\"user_id\"",
                "\"system\"",
                "\"max_tokens\"",
                "\"claude-x\"",
                "\"\\u00e9\"",
                "\"\\ud800\"",
                "\"ccr-sig:",
                "\"signature\"",
                "\"image\"",
                "\"source\"",
            ][..],
        )
        .prop_map(|t| t.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 1..4),
    ];
    prop::collection::vec(token, 0..64).prop_map(|t| t.concat())
}

/// A JSON value of bounded size and depth.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::from)),
        "(?s).{0,8}".prop_map(Value::from),
        prop::sample::select(
            &[
                "user",
                "assistant",
                "text",
                "tool_use",
                "tool_result",
                "image",
                "thinking",
                "enabled",
                "ccr-sig:x",
                "base64"
            ][..],
        )
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(
                            &[
                                "type",
                                "text",
                                "role",
                                "content",
                                "id",
                                "name",
                                "input",
                                "tool_use_id",
                                "is_error",
                                "source",
                                "data",
                                "media_type",
                                "thinking",
                                "signature",
                                "cache_control",
                                "budget_tokens"
                            ][..],
                        )
                        .prop_map(str::to_string),
                        "[a-z_]{1,6}",
                    ],
                    inner,
                ),
                0..6,
            )
            .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A body that is a Messages request as far as the router reads it: an object with a
/// string `model`, a boolean `stream` or none, and anything else beside them.
fn request_body() -> impl Strategy<Value = (String, Option<bool>, Value)> {
    (
        "(?s).{0,16}",
        prop::option::of(any::<bool>()),
        prop::collection::vec(("[a-z_]{1,8}", value()), 0..6),
        prop::option::of(value()),
        prop::option::of(value()),
    )
        .prop_map(|(model, stream, extra, messages, system)| {
            let mut body = Map::new();
            for (key, value) in extra {
                // The fields the router reads have shapes of their own, given below.
                if !["model", "stream", "thinking", "tools", "metadata"].contains(&key.as_str()) {
                    body.insert(key, value);
                }
            }
            body.insert("model".into(), json!(model));
            if let Some(stream) = stream {
                body.insert("stream".into(), json!(stream));
            }
            if let Some(messages) = messages {
                body.insert("messages".into(), messages);
            }
            if let Some(system) = system {
                body.insert("system".into(), system);
            }
            (model, stream, Value::Object(body))
        })
}

/// The node at position `n` of a depth-first walk (the root is 0), replaced by `new`,
/// removed from its parent (`new` is `None`), or duplicated in its array.
fn edit_nth(root: &mut Value, n: usize, new: Option<Value>) {
    fn walk(value: &mut Value, n: &mut usize, new: &mut Option<Option<Value>>) -> bool {
        if *n == 0 {
            return true;
        }
        *n -= 1;
        let mut hit = None;
        match value {
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    if walk(item, n, new) {
                        hit = Some(i);
                        break;
                    }
                }
                if let (Some(i), Some(edit)) = (hit, new.take()) {
                    match edit {
                        Some(v) => items[i] = v,
                        None => {
                            items.remove(i);
                        }
                    }
                }
            }
            Value::Object(map) => {
                let mut key = None;
                for (k, item) in map.iter_mut() {
                    if walk(item, n, new) {
                        key = Some(k.clone());
                        break;
                    }
                }
                if let (Some(k), Some(edit)) = (key, new.take()) {
                    match edit {
                        Some(v) => {
                            map.insert(k, v);
                        }
                        None => {
                            map.remove(&k);
                        }
                    }
                }
            }
            _ => {}
        }
        false
    }
    let mut left = n;
    let mut edit = Some(new);
    if walk(root, &mut left, &mut edit)
        && let Some(Some(v)) = edit
    {
        *root = v;
    }
}

fn count_nodes(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(map) => map.values().map(count_nodes).sum(),
        _ => 0,
    }
}

proptest! {
    #![proptest_config(cases(512, false))]

    #[test]
    fn fuzz_request_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        parse_all(&body)?;
    }

    #[test]
    fn fuzz_request_json_ish_bytes(body in json_ish()) {
        parse_all(&body)?;
    }

    #[test]
    fn fuzz_request_generated_bodies_parse(
        (model, stream, body) in request_body(),
    ) {
        let bytes = serde_json::to_vec(&body).unwrap();
        prop_assert!(parse_all(&bytes)?, "a valid body parses: {}", body);
        let request = MessagesRequest::parse(Bytes::from(bytes)).unwrap();
        prop_assert_eq!(request.model(), model.as_str());
        prop_assert_eq!(request.stream(), stream.unwrap_or(false));
    }
}

proptest! {
    #![proptest_config(cases(24, true))]

    #[test]
    fn fuzz_request_fixture_byte_mutations(edits in mutations(8)) {
        let mut body = FIXTURE.0.clone();
        mutate(&mut body, &edits);
        parse_all(&body)?;
    }

    #[test]
    fn fuzz_request_fixture_truncated_is_an_error(at in any::<Index>()) {
        let body = &FIXTURE.0[..at.index(FIXTURE.0.len())];
        prop_assert!(!parse_all(body)?, "a cut body is not a request");
    }

    #[test]
    fn fuzz_request_fixture_value_mutations(
        edits in prop::collection::vec((any::<Index>(), prop::option::weighted(0.7, value())), 1..6),
    ) {
        let mut body = FIXTURE.1.clone();
        for (at, new) in edits {
            let n = at.index(count_nodes(&body));
            edit_nth(&mut body, n, new);
        }
        let bytes = serde_json::to_vec(&body).unwrap();
        parse_all(&bytes)?;
    }
}
