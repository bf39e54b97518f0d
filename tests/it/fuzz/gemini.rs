//! The Gemini converter, on both of its bodies (an SSE stream of responses, one whole
//! `generateContent` response): arbitrary bytes, generated responses and mutated real ones,
//! fed in arbitrary splits. It never panics or hangs, always ends its stream exactly once in
//! a well-formed grammar, says the same whatever the split, and its output stays within a
//! constant factor of its input.

use ccr::providers::gemini::stream::Converter;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::grammar::{FIXED, GROWTH, check, run, wire_size, without_drawn_ids};
use super::{cases, cuts, mutate, mutations, split};

fn convert(streaming: bool, pieces: Vec<Vec<u8>>) -> Vec<ccr::anthropic::events::StreamEvent> {
    let converter = match streaming {
        true => Converter::streaming("fuzz", "claude-fuzz", 100),
        false => Converter::whole("fuzz", "claude-fuzz", 100),
    };
    run(converter, pieces)
}

/// The properties every input must have, checked on one input in one split.
fn holds(streaming: bool, bytes: &[u8], pieces: Vec<Vec<u8>>) -> Result<(), TestCaseError> {
    let whole = convert(streaming, vec![bytes.to_vec()]);
    check(&whole).map_err(TestCaseError::fail)?;
    let size = wire_size(&whole);
    prop_assert!(
        size <= GROWTH * bytes.len() + FIXED,
        "{size} bytes out of {} in: {whole:#?}",
        bytes.len()
    );
    let cut = convert(streaming, pieces);
    prop_assert_eq!(without_drawn_ids(&cut), without_drawn_ids(&whole));
    Ok(())
}

/// Short text with the characters that matter to JSON and SSE.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z ]{0,8}",
        1 => "(?s).{0,8}",
        1 => Just("\r\n\r\ndata: {}\r\n\r\n".to_string()),
    ]
}

fn args() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"file_path": "src/main.rs"})),
        Just(json!({})),
        Just(json!(null)),
        Just(json!([1, 2])),
        Just(json!("x")),
        "[a-z]{0,6}".prop_map(|k| json!({ k: {"nested": [true, 1.5]} })),
    ]
}

fn part() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (text(), any::<bool>()).prop_map(|(t, thought)| json!({"text": t, "thought": thought})),
        2 => (
            prop::option::weighted(0.9, prop::sample::select(&["Read", "Bash", ""][..])),
            prop::option::of(args()),
            prop::option::of(prop::sample::select(&["call-1", "bad id!", ""][..])),
            prop::option::of(prop::sample::select(&["CiQB0e2K+/x=", "not base64", ""][..])),
        )
            .prop_map(|(name, args, id, signature)| {
                let mut call = json!({});
                if let Some(name) = name {
                    call["name"] = json!(name);
                }
                if let Some(args) = args {
                    call["args"] = args;
                }
                if let Some(id) = id {
                    call["id"] = json!(id);
                }
                let mut part = json!({"functionCall": call});
                if let Some(signature) = signature {
                    part["thoughtSignature"] = json!(signature);
                }
                part
            }),
        1 => Just(json!({"thoughtSignature": "c2ln"})),
    ]
}

fn finish_reason() -> impl Strategy<Value = Value> {
    prop::sample::select(
        &[
            "STOP",
            "MAX_TOKENS",
            "SAFETY",
            "RECITATION",
            "MALFORMED_FUNCTION_CALL",
            "OTHER",
            "NEW_REASON",
        ][..],
    )
    .prop_map(Value::from)
}

/// One `GenerateContentResponse`, or something else in its place.
fn response() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (
            prop::collection::vec(part(), 0..3),
            prop::option::weighted(0.15, finish_reason()),
            prop::option::weighted(0.3, (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>())),
        )
            .prop_map(|(parts, reason, usage)| {
                let mut candidate = json!({"content": {"role": "model", "parts": parts}});
                if let Some(reason) = reason {
                    candidate["finishReason"] = reason;
                }
                let mut response = json!({"candidates": [candidate]});
                if let Some((prompt, candidates, cached, thoughts)) = usage {
                    response["usageMetadata"] = json!({"promptTokenCount": prompt, "candidatesTokenCount": candidates, "cachedContentTokenCount": cached, "thoughtsTokenCount": thoughts});
                }
                response.to_string()
            }),
        1 => Just(r#"{"promptFeedback":{"blockReason":"SAFETY"}}"#.to_string()),
        1 => (prop::option::of(text()), prop::option::of(prop::sample::select(
            &["RESOURCE_EXHAUSTED", "INVALID_ARGUMENT", "UNAVAILABLE", "PERMISSION_DENIED", "WHATEVER"][..],
        )))
            .prop_map(|(message, status)| json!({"error": {"code": 429, "message": message, "status": status, "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1e30s"}]}}).to_string()),
        1 => "[{}\\[\\]\":,a-z0-9 ]{0,16}",
    ]
}

/// How a response is written on the wire, or a line that carries none.
fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => response().prop_map(|r| format!("data: {r}\r\n\r\n").into_bytes()),
        2 => response().prop_map(|r| format!("data: {r}\n\n").into_bytes()),
        1 => Just(b": keep-alive\r\n\r\n".to_vec()),
        1 => Just(b"\r\n".to_vec()),
        1 => prop::collection::vec(any::<u8>(), 1..16),
    ]
}

fn stream() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(line(), 0..24).prop_map(|lines| lines.concat())
}

/// Real answers in Gemini's shapes: text with thoughts, signed parallel calls, an error.
const REAL: [&str; 3] = [
    r#"{"candidates":[{"content":{"parts":[{"text":"Let me","thought":true}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":900,"totalTokenCount":900},"modelVersion":"gemini-2.5-pro","responseId":"r1"}"#,
    r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"Read","args":{"file_path":"a.rs"}},"thoughtSignature":"EvgBCvUBAdHtim9qC9J0mF/oSF8p3kPXCg+a6sPH1aFx3HHjZUvpdCK+1Gs="},{"functionCall":{"name":"Bash","args":{"command":"ls"}}}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":900,"candidatesTokenCount":40,"cachedContentTokenCount":512,"thoughtsTokenCount":120},"modelVersion":"gemini-2.5-pro"}"#,
    r#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"12s"}]}}"#,
];

fn real_stream() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(&REAL[..]), 1..4).prop_map(|responses| {
        responses
            .iter()
            .map(|r| format!("data: {r}\r\n\r\n"))
            .collect::<String>()
            .into_bytes()
    })
}

proptest! {
    #![proptest_config(cases(256, false))]

    #[test]
    fn fuzz_gemini_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        streaming in any::<bool>(),
        cuts in cuts(),
    ) {
        let pieces = split(&bytes, &cuts);
        holds(streaming, &bytes, pieces)?;
    }

    #[test]
    fn fuzz_gemini_generated_streams(bytes in stream(), cuts in cuts()) {
        let pieces = split(&bytes, &cuts);
        holds(true, &bytes, pieces)?;
    }

    #[test]
    fn fuzz_gemini_generated_whole_responses(body in response(), cuts in cuts()) {
        let bytes = body.into_bytes();
        let pieces = split(&bytes, &cuts);
        holds(false, &bytes, pieces)?;
    }

    #[test]
    fn fuzz_gemini_mutated_real_streams(
        mut bytes in real_stream(),
        edits in mutations(6),
        cuts in cuts(),
    ) {
        mutate(&mut bytes, &edits);
        let pieces = split(&bytes, &cuts);
        holds(true, &bytes, pieces)?;
    }
}
