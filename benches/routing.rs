//! Criterion benchmark of classification and target ordering on a ~500 KB Claude Code body.
//! The body is parsed once outside the timing: the request path parses it anyway, and this
//! measures what routing adds on top. Run with `cargo bench --bench routing`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use ccr::anthropic::{MessagesRequest, estimate};
use ccr::config::{Config, Source};
use ccr::routing::{Router, SystemClock, scenario};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};

/// The fixture's first turn grown to ~500 KB with tool-result history.
fn long_body() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/claude-code-first-turn.json"
    );
    let mut body: Value = serde_json::from_str::<Value>(&std::fs::read_to_string(path).unwrap())
        .unwrap()["body"]
        .take();
    let code = include_str!("../src/providers/openai/stream.rs");
    let messages = body["messages"].as_array_mut().unwrap();
    for i in 0..17 {
        messages.push(json!({"role": "assistant", "content": [{"type": "tool_use", "id": format!("toolu_{i}"), "name": "Read", "input": {"file_path": "/x.rs"}}]}));
        messages.push(json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": format!("toolu_{i}"), "content": code}]}));
    }
    serde_json::to_vec(&body).unwrap()
}

fn routing(c: &mut Criterion) {
    let body = long_body();
    let request = MessagesRequest::parse(Bytes::from(body.clone())).unwrap();
    let yaml = "providers:\n  a: { type: anthropic }\n  b: { type: openai, api_keys: [k1, k2] }\nroutes:\n  default: [a/*, { target: b/deepseek-chat, weight: 2 }]\n  long_context: [b/deepseek-chat]\n";
    let config = Config::parse(yaml, &Source::Embedded, Some(HashMap::new())).unwrap();
    let tokens = ccr::credentials::manager::TokenManager::new(
        Arc::new(ccr::credentials::FileStore::new(&std::env::temp_dir())),
        std::env::temp_dir(),
        ccr::credentials::manager::Refresher::External,
        ccr::http_client::plain().unwrap(),
    );
    let router = Router::new(&config, Arc::new(SystemClock::default()), tokens).unwrap();
    let mut group = c.benchmark_group("routing");
    group.throughput(Throughput::Bytes(body.len() as u64));
    let shared = Bytes::from(body.clone());
    group.bench_function("baseline: MessagesRequest::parse (done anyway)", |b| {
        b.iter(|| black_box(MessagesRequest::parse(black_box(shared.clone())).unwrap()))
    });
    group.bench_function(
        format!("estimate::input_tokens ({} KB)", body.len() / 1024),
        |b| b.iter(|| black_box(estimate::input_tokens(black_box(&body)))),
    );
    group.bench_function("scenario::classify", |b| {
        b.iter(|| black_box(scenario::classify(black_box(&request), 60_000)))
    });
    group.bench_function("Router::plan (classify + order candidates)", |b| {
        b.iter(|| black_box(router.plan(black_box(&request)).candidates.len()))
    });
    group.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
