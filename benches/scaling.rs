//! Criterion benchmarks that the conversions stay flat as work grows: the request
//! conversion at ~80 KB, ~500 KB and ~2 MB bodies (throughput per byte should hold), and the
//! stream conversion at 64, 1 000 and 10 000 chunks (time per chunk should hold), for the
//! OpenAI-compatible and Gemini converters. Run with `cargo bench --bench scaling`.

#[path = "support/fixture.rs"]
mod fixture;

use std::hint::black_box;

use ccr::anthropic::events::SseWriter;
use ccr::anthropic::types::MessagesBody;
use ccr::config::ModelConfig;
use ccr::providers::WireConverter;
use ccr::providers::openai::request::to_openai;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

/// The fixture's first turn grown to at least `bytes` with Read tool calls and their
/// results (a 16 KB source file each), as a long Claude Code session grows.
fn claude_code_body_of(bytes: usize) -> Vec<u8> {
    let mut body: serde_json::Value = serde_json::from_slice(&fixture::claude_code_body()).unwrap();
    let file: String = (0..400)
        .map(|i| format!("    let value_{i} = compute(input, {i}); // step {i}\n"))
        .collect();
    let mut i = 0;
    while serde_json::to_vec(&body).unwrap().len() < bytes {
        let messages = body["messages"].as_array_mut().unwrap();
        let id = format!("toolu_grow_{i}");
        messages.push(serde_json::json!({"role": "assistant", "content": [{"type": "tool_use", "id": id, "name": "Read", "input": {"file_path": format!("/src/m{i}.rs")}}]}));
        messages.push(serde_json::json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": file}]}));
        i += 1;
    }
    serde_json::to_vec(&body).unwrap()
}

fn request_sizes(c: &mut Criterion) {
    let options = ModelConfig::default();
    let mut group = c.benchmark_group("request by size");
    for target in [80_000, 500_000, 2_000_000] {
        let body = claude_code_body_of(target);
        group.throughput(Throughput::Bytes(body.len() as u64));
        let kb = body.len() / 1000;
        group.bench_with_input(
            BenchmarkId::new("parse + to_openai", kb),
            &body,
            |b, body| {
                b.iter(|| {
                    let parsed = MessagesBody::parse(black_box(body)).unwrap();
                    black_box(to_openai(&parsed, "deepseek-chat", &options).unwrap())
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("parse + to_gemini", kb),
            &body,
            |b, body| {
                b.iter(|| {
                    let parsed = MessagesBody::parse(black_box(body)).unwrap();
                    black_box(
                        ccr::providers::gemini::request::to_gemini(
                            &parsed,
                            "gemini-2.5-flash",
                            &Default::default(),
                        )
                        .unwrap(),
                    )
                })
            },
        );
    }
    group.finish();
}

/// `n` text chunks then a finish, in OpenAI's SSE.
fn openai_chunks(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let chunk = json!({"choices":[{"index":0,"delta":{"content":format!("word{i} and some more text ")}}]});
        out.extend_from_slice(format!("data: {chunk}\n\n").as_bytes());
    }
    let last = json!({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":30,"completion_tokens":n}});
    out.extend_from_slice(format!("data: {last}\n\ndata: [DONE]\n\n").as_bytes());
    out
}

/// `n` text responses then a finish, in Gemini's SSE.
fn gemini_chunks(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let response = json!({"candidates":[{"content":{"role":"model","parts":[{"text":format!("word{i} and some more text ")}]},"index":0}]});
        out.extend_from_slice(format!("data: {response}\r\n\r\n").as_bytes());
    }
    let last = json!({"candidates":[{"content":{"role":"model","parts":[{"text":""}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":30,"candidatesTokenCount":n}});
    out.extend_from_slice(format!("data: {last}\r\n\r\n").as_bytes());
    out
}

/// Feeds `stream` in 4 KB reads and writes every event as SSE, as the server does.
fn convert(mut converter: impl WireConverter, stream: &[u8]) {
    let mut events = Vec::new();
    let mut writer = SseWriter::new();
    for read in stream.chunks(4096) {
        converter.feed(black_box(read), &mut events);
        for event in events.drain(..) {
            writer.write(&event);
        }
        black_box(writer.take());
    }
    converter.finish(&mut events);
}

fn stream_lengths(c: &mut Criterion) {
    let mut group = c.benchmark_group("stream by chunks");
    for n in [64, 1_000, 10_000] {
        group.throughput(Throughput::Elements(n as u64));
        let openai = openai_chunks(n);
        group.bench_with_input(BenchmarkId::new("openai", n), &openai, |b, stream| {
            b.iter(|| {
                convert(
                    ccr::providers::openai::stream::Converter::new("bench", "claude", 30),
                    stream,
                )
            })
        });
        let gemini = gemini_chunks(n);
        group.bench_with_input(BenchmarkId::new("gemini", n), &gemini, |b, stream| {
            b.iter(|| {
                convert(
                    ccr::providers::gemini::stream::Converter::streaming("bench", "claude", 30),
                    stream,
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, request_sizes, stream_lengths);
criterion_main!(benches);
