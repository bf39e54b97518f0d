//! The local token estimate against a real tokenizer (cl100k) on Claude-Code-shaped bodies.

use ccr::anthropic::estimate;
use serde_json::{Value, json};

use crate::support::fixture;

/// Bodies shaped like what Claude Code sends: the captured first turn, a long session made
/// of it, source code, non-Latin prose, and a short background request.
fn bodies() -> Vec<(&'static str, Vec<u8>)> {
    let (_, first_turn) = fixture();
    let mut long: Value = serde_json::from_slice(&first_turn).unwrap();
    let code = include_str!("../../src/providers/openai/stream.rs");
    let history = long["messages"].as_array().unwrap().clone();
    let mut messages = history.clone();
    for i in 0..20 {
        messages.push(json!({"role": "assistant", "content": [{"type": "tool_use", "id": format!("toolu_{i}"), "name": "Read", "input": {"file_path": "/src/providers/openai/stream.rs"}}]}));
        messages.push(json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": format!("toolu_{i}"), "content": code}]}));
    }
    long["messages"] = Value::Array(messages);
    let cjk = json!({"model": "claude-sonnet-4-5", "max_tokens": 1000, "messages": [{"role": "user", "content": "请帮我重构这个模块，并解释每一步的原因。日本語の説明も加えてください。".repeat(200)}]});
    let small = json!({"model": "claude-haiku-4-5-20251001", "max_tokens": 32000, "messages": [{"role": "user", "content": "Write a 5-10 word title for this conversation: fix the flaky integration test in the routing module"}]});
    vec![
        ("Claude Code first turn", first_turn),
        (
            "long session with code tool results",
            serde_json::to_vec(&long).unwrap(),
        ),
        ("CJK prose", serde_json::to_vec(&cjk).unwrap()),
        (
            "short background request",
            serde_json::to_vec(&small).unwrap(),
        ),
    ]
}

#[test]
fn the_estimate_stays_within_its_documented_bound_of_cl100k() {
    let bpe = tiktoken_rs::cl100k_base().unwrap();
    for (name, body) in bodies() {
        let real = bpe
            .encode_ordinary(std::str::from_utf8(&body).unwrap())
            .len() as f64;
        let guess = estimate::input_tokens(&body) as f64;
        let error = (guess - real) / real;
        println!(
            "{name}: {} bytes, cl100k {real}, estimate {guess}, error {:+.1}%",
            body.len(),
            error * 100.0
        );
        assert!(
            error.abs() <= estimate::DOCUMENTED_ERROR,
            "{name}: error {:+.1}% is outside the documented bound",
            error * 100.0
        );
    }
}
