//! Criterion benchmarks of the OpenAI conversion, both ways, each beside a baseline of the
//! least work any converter must do (a serde_json::Value round trip), measured in the same
//! run. Run with `cargo bench --bench convert`.

#[path = "support/fixture.rs"]
mod fixture;

use std::hint::black_box;

use ccr::anthropic::events::SseWriter;
use ccr::anthropic::types::MessagesBody;
use ccr::config::ModelConfig;
use ccr::providers::WireConverter;
use ccr::providers::openai::request::to_openai;
use ccr::providers::openai::stream::Converter;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

fn fixture_body() -> Vec<u8> {
    fixture::claude_code_body()
}

/// 64 chunks: reasoning, text, then a tool call whose arguments arrive in fragments.
fn openai_stream() -> Vec<u8> {
    let mut chunks = Vec::new();
    for i in 0..8 {
        chunks.push(json!({"choices":[{"index":0,"delta":{"reasoning_content":format!("step {i} of the plan, ")}}]}));
    }
    for i in 0..41 {
        chunks.push(json!({"choices":[{"index":0,"delta":{"content":format!("word{i} and some more text ")}}]}));
    }
    chunks.push(json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"Read","arguments":""}}]}}]}));
    let arguments = r#"{"file_path":"/home/user/project/src/main.rs","offset":120,"limit":400}"#;
    for piece in arguments.as_bytes().chunks(arguments.len().div_ceil(13)) {
        let piece = std::str::from_utf8(piece).unwrap();
        chunks.push(json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":piece}}]}}]}));
    }
    chunks.push(json!({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}));
    chunks.push(json!({"choices":[],"usage":{"prompt_tokens":30000,"completion_tokens":500,"prompt_tokens_details":{"cached_tokens":25000}}}));
    assert_eq!(chunks.len(), 64);
    let mut out = Vec::new();
    for chunk in &chunks {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(chunk.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    out
}

fn request(c: &mut Criterion) {
    let body = fixture_body();
    let options = ModelConfig {
        max_tokens: Some(8192),
        reasoning_effort: true,
        reasoning_content: false,
    };
    let mut group = c.benchmark_group("request");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("baseline: serde_json::Value round trip", |b| {
        b.iter(|| {
            let value: serde_json::Value = serde_json::from_slice(black_box(&body)).unwrap();
            black_box(serde_json::to_vec(&value).unwrap())
        })
    });
    group.bench_function("parse + to_openai (Claude Code fixture)", |b| {
        b.iter(|| {
            let parsed = MessagesBody::parse(black_box(&body)).unwrap();
            black_box(to_openai(&parsed, "deepseek-chat", &options).unwrap())
        })
    });
    group.finish();
}

fn response(c: &mut Criterion) {
    let stream = openai_stream();
    let mut group = c.benchmark_group("response");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("baseline: parse 64 chunks as serde_json::Value", |b| {
        b.iter(|| {
            for line in stream
                .split(|&b| b == b'\n')
                .filter(|l| l.starts_with(b"data: {"))
            {
                black_box(serde_json::from_slice::<serde_json::Value>(&line[6..]).unwrap());
            }
        })
    });
    group.bench_function("64 chunks -> Anthropic SSE (4 KB reads)", |b| {
        let mut events = Vec::new();
        let mut writer = SseWriter::new();
        b.iter(|| {
            let mut converter = Converter::new("bench", "claude-sonnet-4-5", 30000);
            for read in stream.chunks(4096) {
                converter.feed(black_box(read), &mut events);
                for event in events.drain(..) {
                    writer.write(&event);
                }
                black_box(writer.take());
            }
            converter.finish(&mut events);
            events.clear();
        })
    });
    group.finish();
}

criterion_group!(benches, request, response);
criterion_main!(benches);
