//! The config loader: arbitrary text, YAML-ish text made of the config's own words, and
//! real configs mutated line- and byte-wise. Nothing panics or hangs; every error names the
//! file and says something; a config that parses also validates without a panic, and its
//! errors name their field.

use std::collections::HashMap;
use std::path::PathBuf;

use ccr::config::{Config, ConfigError, EMBEDDED_DEFAULT, Source};
use proptest::prelude::*;
use proptest::sample::Index;

use super::{bounded, cases, mutate, mutations};

const FILE: &str = "fuzz-config.yaml";

/// The README's Gemini example.
const GEMINI_EXAMPLE: &str = r#"providers:
  gemini:
    type: gemini
    api_key: "${GEMINI_API_KEY}"
    models:
      gemini-2.5-pro: { max_thinking_budget: 32768 }
      gemini-3-pro-preview: { parameters_json_schema: true }
      gemini-2.0-flash: { max_tokens: 8192 }
routes:
  default: [gemini/gemini-2.5-pro]
"#;

/// Real configs: the embedded default and the README's examples.
const CONFIGS: &[&str] = &[
    EMBEDDED_DEFAULT,
    r#"server:
  host: 127.0.0.1
  port: 3456
  api_key: "${CCR_API_KEY:-}"
  body_limit: 33554432
  header_read_timeout: 30s
  idle_timeout: 5m
  shutdown_grace: 30s
  ping_interval: 15s
providers:
  anthropic:
    type: anthropic
    base_url: https://api.anthropic.com
    api_key: "${ANTHROPIC_API_KEY}"
    drop_beta_flags: []
    timeouts: { connect: 10s, first_byte: 300s, idle: 300s }
  deepseek:
    type: openai
    base_url: https://api.deepseek.com/v1
    api_key: "${DEEPSEEK_API_KEY}"
    headers: { X-Title: ccr }
    models:
      deepseek-chat: { max_tokens: 8192 }
      deepseek-reasoner:
        max_tokens: 32768
        reasoning_effort: true
        reasoning_content: true
routes:
  default: [anthropic/*]
"#,
    r#"providers:
  kiro:
    type: codewhisperer
    accounts: [work, personal]
    region: us-east-1
    model_ids: { claude-sonnet-4-5: CLAUDE_SONNET_4_5_20250929_V1_0 }
credentials:
  dir: ~/.local/share/ccr/credentials
  store: file
routes:
  default: [kiro/*]
"#,
    GEMINI_EXAMPLE,
    r#"routes:
  default: { strategy: round_robin, targets: [anthropic/*, { target: deepseek/deepseek-chat, weight: 2 }] }
  background: [deepseek/deepseek-chat]
  thinking: [deepseek/deepseek-reasoner]
router:
  long_context_threshold: 60000
  max_attempts: 3
  backoff: 250ms
  backoff_max: 5s
  max_retry_after: 10s
  blacklist: { rate_limited: 60s, auth: 300s, network: 120s, server_error: 60s }
  sessions: { ttl: 2h, max: 10000, sweep_every: 10m }
stats:
  log_interval: 0
"#,
];

fn source() -> Source {
    Source::File(PathBuf::from(FILE))
}

fn env() -> HashMap<String, String> {
    [
        ("ANTHROPIC_API_KEY", "sk-ant-fuzz"),
        ("DEEPSEEK_API_KEY", "sk-fuzz"),
        ("GEMINI_API_KEY", "AIza-fuzz"),
        ("EMPTY", ""),
        ("DOLLAR", "$"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Parses and validates `text`, checking that every error says where and what.
fn load(text: String) -> Result<(), TestCaseError> {
    let outcome = bounded(move || {
        let config = Config::parse(&text, &source(), Some(env()))?;
        config.validate(&source())
    });
    match outcome {
        Ok(()) => {}
        Err(error) => {
            let told = error.to_string();
            prop_assert!(told.starts_with(FILE), "the error names the file: {told}");
            match &error {
                ConfigError::Parse { message, .. } => {
                    prop_assert!(!message.trim().is_empty(), "an empty parse error: {told}")
                }
                ConfigError::Invalid { field, message, .. } => {
                    prop_assert!(!field.is_empty(), "an error without its field: {told}");
                    prop_assert!(!message.trim().is_empty(), "an empty error: {told}");
                }
                ConfigError::Read { .. } => prop_assert!(false, "parse never reads: {told}"),
            }
        }
    }
    Ok(())
}

/// The config's own words, YAML's punctuation and values of every kind, strung together.
fn yaml_ish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        4 => prop::sample::select(
            &[
                "server", "providers", "routes", "router", "credentials", "stats", "host",
                "port", "api_key", "api_keys", "body_limit", "header_read_timeout",
                "idle_timeout", "shutdown_grace", "ping_interval", "type", "anthropic",
                "openai", "codewhisperer", "gemini", "base_url", "timeouts", "connect", "first_byte",
                "idle", "models", "max_tokens", "reasoning_effort", "reasoning_content",
                "headers", "accounts", "region", "model_ids", "default", "background",
                "thinking", "long_context", "web_search", "strategy", "round_robin",
                "priority", "targets", "target", "weight", "blacklist", "sessions", "ttl",
                "max", "store", "file", "keyring", "refresher", "serve", "external", "dir",
                "log_interval", "drop_beta_flags", "anthropic/*", "deepseek/deepseek-chat",
                "max_thinking_budget", "parameters_json_schema",
            ][..],
        )
        .prop_map(str::to_string),
        4 => prop::sample::select(
            &[
                ": ", ":", "\n", "\n  ", "\n    ", "- ", "{ ", " }", "[", "]", ", ", "'", "\"",
                "#", "&a ", "*a", "!!str ", "!!binary ", "<<: ", "---\n", "...\n", "|\n  ", ">\n  ",
                "? ", "%YAML 1.2\n", "\t", "~", "null", "true", "0", "-1", "65536", "1e400",
                "0x10", "0.5", "250ms", "5m", "-3s", "99999999999999999999h", "${ANTHROPIC_API_KEY}",
                "${UNSET}", "${UNSET:-x}", "${", "$$", "${A B}", "https://api.example.com/v1",
                "http://[::1]:8080", "0.0.0.0", "~/x", "\u{feff}", "é",
            ][..],
        )
        .prop_map(str::to_string),
        1 => "(?s).{1,6}",
    ];
    prop::collection::vec(token, 0..64).prop_map(|t| t.concat())
}

/// Line edits that keep most of a real config: a line removed, repeated, moved or
/// re-indented.
#[derive(Debug, Clone)]
enum LineEdit {
    Remove(Index),
    Repeat(Index),
    Swap(Index, Index),
    Indent(Index, usize),
    Dedent(Index),
}

fn line_edit() -> impl Strategy<Value = LineEdit> {
    prop_oneof![
        any::<Index>().prop_map(LineEdit::Remove),
        any::<Index>().prop_map(LineEdit::Repeat),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| LineEdit::Swap(a, b)),
        (any::<Index>(), 1..5usize).prop_map(|(a, n)| LineEdit::Indent(a, n)),
        any::<Index>().prop_map(LineEdit::Dedent),
    ]
}

fn edit_lines(text: &str, edits: &[LineEdit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for edit in edits {
        if lines.is_empty() {
            break;
        }
        let len = lines.len();
        match edit {
            LineEdit::Remove(i) => {
                lines.remove(i.index(len));
            }
            LineEdit::Repeat(i) => {
                let line = lines[i.index(len)].clone();
                lines.insert(i.index(len), line);
            }
            LineEdit::Swap(a, b) => lines.swap(a.index(len), b.index(len)),
            LineEdit::Indent(i, n) => lines[i.index(len)].insert_str(0, &" ".repeat(*n)),
            LineEdit::Dedent(i) => {
                let line = &mut lines[i.index(len)];
                *line = line.trim_start().to_string();
            }
        }
    }
    lines.join("\n")
}

proptest! {
    #![proptest_config(cases(256, false))]

    #[test]
    fn fuzz_config_arbitrary_text(text in "(?s).{0,256}") {
        load(text)?;
    }

    #[test]
    fn fuzz_config_yaml_ish_text(text in yaml_ish()) {
        load(text)?;
    }

    #[test]
    fn fuzz_config_real_configs_with_lines_edited(
        config in prop::sample::select(CONFIGS),
        edits in prop::collection::vec(line_edit(), 1..5),
    ) {
        load(edit_lines(config, &edits))?;
    }

    #[test]
    fn fuzz_config_real_configs_with_bytes_edited(
        config in prop::sample::select(CONFIGS),
        edits in mutations(6),
    ) {
        let mut bytes = config.as_bytes().to_vec();
        mutate(&mut bytes, &edits);
        load(String::from_utf8_lossy(&bytes).into_owned())?;
    }
}

proptest! {
    // Each case expands aliases up to the YAML parser's limit: tens of milliseconds in debug.
    #![proptest_config(cases(32, true))]

    /// YAML aliases can multiply a small text into a huge value: nesting anchors must
    /// neither hang nor exhaust memory.
    #[test]
    fn fuzz_config_alias_expansion(depth in 1..12usize, width in 1..10usize, at in 0..3usize) {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..=depth {
            let refs = vec![format!("*a{}", level - 1); width].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
        }
        let last = format!("*a{depth}");
        text.push_str(&match at {
            0 => format!("server: {{ host: {last} }}\n"),
            1 => format!("routes: {{ default: {last} }}\n"),
            _ => format!("providers: {{ x: {{ type: openai, headers: {last} }} }}\n"),
        });
        load(text)?;
    }
}

/// The README's Gemini example loads as it stands.
#[test]
fn the_gemini_example_is_valid() {
    let parsed = Config::parse(GEMINI_EXAMPLE, &source(), Some(env())).unwrap();
    parsed.validate(&source()).unwrap();
    assert_eq!(
        parsed.providers["gemini"].kind(),
        ccr::config::ProviderKind::Gemini
    );
}
