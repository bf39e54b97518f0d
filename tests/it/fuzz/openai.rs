//! The OpenAI chunk converter: arbitrary bytes, generated chunk streams and mutated real
//! ones, fed in arbitrary splits. It never panics or hangs, always ends its stream exactly
//! once in a well-formed grammar, says the same whatever the split, and its output stays
//! within a constant factor of its input.

use ccr::providers::openai::stream::Converter;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::grammar::{FIXED, GROWTH, check, run, wire_size, without_drawn_ids};
use super::{cases, cuts, mutate, mutations, split};

fn convert(pieces: Vec<Vec<u8>>) -> Vec<ccr::anthropic::events::StreamEvent> {
    run(Converter::new("fuzz", "claude-fuzz", 100), pieces)
}

/// The properties every input must have, checked on one input in one split.
fn holds(bytes: &[u8], pieces: Vec<Vec<u8>>) -> Result<(), TestCaseError> {
    let whole = convert(vec![bytes.to_vec()]);
    check(&whole).map_err(TestCaseError::fail)?;
    let size = wire_size(&whole);
    prop_assert!(
        size <= GROWTH * bytes.len() + FIXED,
        "{size} bytes out of {} in: {whole:#?}",
        bytes.len()
    );
    let cut = convert(pieces);
    prop_assert_eq!(without_drawn_ids(&cut), without_drawn_ids(&whole));
    Ok(())
}

/// Short text with the characters that matter to JSON and SSE.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z ]{0,8}",
        1 => "(?s).{0,8}",
        1 => Just("\n\ndata: [DONE]\n\n".to_string()),
    ]
}

/// A fragment of tool-call arguments: usually a piece of real JSON, sometimes not.
fn arguments() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(r#"{"path":"#.to_string()),
        Just(r#""src/main.rs"}"#.to_string()),
        Just(r#"{"command":"ls -la","timeout":3}"#.to_string()),
        Just("{}".to_string()),
        Just("".to_string()),
        Just("[1,2]".to_string()),
        Just("\"x\"".to_string()),
        "[{}\":,a-z0-9 ]{0,10}",
    ]
}

fn tool_call() -> impl Strategy<Value = Value> {
    (
        prop::option::weighted(0.8, 0u32..4),
        prop::option::of(prop::sample::select(&["call_a", "call_b", ""][..])),
        prop::option::of(prop::sample::select(&["Read", "Bash", ""][..])),
        prop::option::of(arguments()),
    )
        .prop_map(|(index, id, name, arguments)| {
            let mut call = json!({"type": "function", "function": {}});
            if let Some(index) = index {
                call["index"] = json!(index);
            }
            if let Some(id) = id {
                call["id"] = json!(id);
            }
            if let Some(name) = name {
                call["function"]["name"] = json!(name);
            }
            if let Some(arguments) = arguments {
                call["function"]["arguments"] = json!(arguments);
            }
            call
        })
}

fn delta() -> impl Strategy<Value = Value> {
    (
        prop::option::weighted(0.5, text()),
        prop::option::weighted(0.3, text()),
        prop::option::weighted(0.1, text()),
        prop::option::weighted(0.3, prop::collection::vec(tool_call(), 1..3)),
    )
        .prop_map(|(content, reasoning_content, reasoning, tool_calls)| {
            let mut delta = json!({"role": "assistant"});
            if let Some(c) = content {
                delta["content"] = json!(c);
            }
            if let Some(r) = reasoning_content {
                delta["reasoning_content"] = json!(r);
            }
            if let Some(r) = reasoning {
                delta["reasoning"] = json!(r);
            }
            if let Some(t) = tool_calls {
                delta["tool_calls"] = json!(t);
            }
            delta
        })
}

fn finish_reason() -> impl Strategy<Value = Value> {
    prop::sample::select(
        &[
            "stop",
            "length",
            "tool_calls",
            "function_call",
            "content_filter",
            "other",
        ][..],
    )
    .prop_map(Value::from)
}

/// One `data:` payload of an OpenAI-compatible stream.
fn chunk() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (
            prop::collection::vec(
                (prop::option::weighted(0.9, delta()), prop::option::weighted(0.15, finish_reason())),
                0..3,
            ),
        )
            .prop_map(|(choices,)| {
                let choices: Vec<Value> = choices
                    .into_iter()
                    .map(|(delta, reason)| {
                        let mut choice = json!({"index": 0});
                        if let Some(d) = delta {
                            choice["delta"] = d;
                        }
                        if let Some(r) = reason {
                            choice["finish_reason"] = r;
                        }
                        choice
                    })
                    .collect();
                json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": choices})
                    .to_string()
            }),
        1 => (any::<u64>(), any::<u64>(), prop::option::of(any::<u64>())).prop_map(|(p, c, cached)| {
            let mut usage = json!({"prompt_tokens": p, "completion_tokens": c});
            if let Some(cached) = cached {
                usage["prompt_tokens_details"] = json!({"cached_tokens": cached});
            }
            json!({"choices": [], "usage": usage}).to_string()
        }),
        1 => (prop::option::of(text()), prop::option::of(prop::sample::select(
            &["rate_limit_exceeded", "invalid_request_error", "auth", "overloaded", "server_error"][..],
        )))
            .prop_map(|(message, kind)| json!({"error": {"message": message, "type": kind}}).to_string()),
        1 => Just("[DONE]".to_string()),
        1 => "[{}\\[\\]\":,a-z0-9 ]{0,16}",
    ]
}

/// How a payload is written on the wire, or a line that carries none.
fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => chunk().prop_map(|c| format!("data: {c}\n\n").into_bytes()),
        1 => chunk().prop_map(|c| format!("data:{c}\r\n\r\n").into_bytes()),
        1 => chunk().prop_map(|c| format!("event: chunk\ndata: {c}\n\n").into_bytes()),
        1 => Just(b": keep-alive\n\n".to_vec()),
        1 => Just(b"\n".to_vec()),
        1 => prop::collection::vec(any::<u8>(), 1..16),
    ]
}

fn stream() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(line(), 0..24).prop_map(|lines| lines.concat())
}

/// Real streams, as DeepSeek, OpenRouter and vLLM send them.
fn real_stream() -> impl Strategy<Value = Vec<u8>> {
    let streams: Vec<Vec<&'static str>> = vec![
        vec![
            r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" wörld"},"finish_reason":"stop"}]}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":50,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":20}}}"#,
            "[DONE]",
        ],
        vec![
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"Let me"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"reasoning_content":" think."}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"I'll read it."}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"Read","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"file_"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"path\":\"a.rs\"}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":900,"completion_tokens":40}}"#,
            "[DONE]",
        ],
        vec![
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","function":{"name":"Bash","arguments":"{\"command\":"}},{"index":1,"id":"call_b","function":{"name":"Read","arguments":"{\"file_path\":"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"\"b.rs\"}"}},{"index":0,"function":{"arguments":"\"ls\"}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            "[DONE]",
        ],
        vec![
            r#"{"choices":[{"index":0,"delta":{"content":"partial"}}]}"#,
            r#"{"error":{"message":"Rate limit reached for requests","type":"rate_limit_exceeded"}}"#,
        ],
        vec![
            r#"{"choices":[{"index":0,"delta":{"reasoning":"hmm"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"cut short"},"finish_reason":"length"}]}"#,
        ],
    ];
    prop::sample::select(streams).prop_map(|chunks| {
        chunks
            .iter()
            .map(|c| format!("data: {c}\n\n"))
            .collect::<String>()
            .into_bytes()
    })
}

proptest! {
    #![proptest_config(cases(256, false))]

    #[test]
    fn fuzz_openai_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        cuts in cuts(),
    ) {
        let pieces = split(&bytes, &cuts);
        holds(&bytes, pieces)?;
    }

    #[test]
    fn fuzz_openai_generated_streams(bytes in stream(), cuts in cuts()) {
        let pieces = split(&bytes, &cuts);
        holds(&bytes, pieces)?;
    }

    #[test]
    fn fuzz_openai_mutated_generated_streams(
        mut bytes in stream(),
        edits in mutations(8),
        cuts in cuts(),
    ) {
        mutate(&mut bytes, &edits);
        let pieces = split(&bytes, &cuts);
        holds(&bytes, pieces)?;
    }

    #[test]
    fn fuzz_openai_mutated_real_streams(
        mut bytes in real_stream(),
        edits in mutations(6),
        cuts in cuts(),
    ) {
        mutate(&mut bytes, &edits);
        let pieces = split(&bytes, &cuts);
        holds(&bytes, pieces)?;
    }
}
