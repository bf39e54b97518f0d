//! Micro-benchmark of the request-path work ccr does per request on a Claude Code body:
//! reading the routing fields, replacing `model`, and the token estimate.
//! Run with `cargo bench --bench parse`.

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use ccr::anthropic::{MessagesRequest, estimate};

const ROUNDS: u32 = 2000;

fn main() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/claude-code-first-turn.json"
    );
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let body = Bytes::from(serde_json::to_vec(&value["body"]).unwrap());
    println!("body: {} bytes", body.len());

    let full_value = time("baseline: serde_json::Value of the whole body", || {
        black_box(serde_json::from_slice::<serde_json::Value>(&body).unwrap());
    });
    let ignored = time("baseline: serde_json validation only (IgnoredAny)", || {
        black_box(serde_json::from_slice::<serde::de::IgnoredAny>(&body).unwrap());
    });
    time(
        "baseline: utf-8 check + serde_json::from_str validation",
        || {
            let text = std::str::from_utf8(&body).unwrap();
            black_box(serde_json::from_str::<serde::de::IgnoredAny>(text).unwrap());
        },
    );
    let parse = time("MessagesRequest::parse", || {
        black_box(MessagesRequest::parse(body.clone()).unwrap());
    });
    // What one shared parse could save on a converted route: the typed parse the
    // converters need validates the whole body too, so routing could read its fields
    // there and skip `MessagesRequest::parse` — at the typed parse's cost on a
    // pass-through route, which needs no typed body.
    let typed = time("MessagesBody::parse (typed, what converters need)", || {
        black_box(ccr::anthropic::types::MessagesBody::parse(&body).unwrap());
    });
    let request = MessagesRequest::parse(body.clone()).unwrap();
    time("body_with_model (splice)", || {
        black_box(request.body_with_model("claude-other-model"));
    });
    time("estimate::input_tokens", || {
        black_box(estimate::input_tokens(&body));
    });
    println!(
        "MessagesRequest::parse = {:.2}x validation only, {:.2}x a full serde_json::Value",
        parse / ignored,
        parse / full_value
    );
    println!(
        "one shared parse: a converted route saves {parse:.1} µs of {:.1}; a pass-through \
         route would pay {:.1} µs more",
        parse + typed,
        typed - parse
    );
}

/// Runs `f` ROUNDS times; prints and returns the mean in microseconds.
fn time(name: &str, mut f: impl FnMut()) -> f64 {
    for _ in 0..ROUNDS / 10 {
        f();
    }
    let started = Instant::now();
    for _ in 0..ROUNDS {
        f();
    }
    let micros = started.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS);
    println!("{name}: {micros:.1} µs");
    micros
}
