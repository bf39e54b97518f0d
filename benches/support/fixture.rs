//! The Claude Code first-turn request body the benchmarks send, as compact JSON.

pub fn claude_code_body() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/claude-code-first-turn.json"
    );
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    serde_json::to_vec(&value["body"]).unwrap()
}
