//! The failure log's cost on a failing workload: requests/s through ccr while every request
//! fails (the upstream answers 500 to the 76 KB Claude Code body), with the log on and off,
//! interleaved in one run. Run with `cargo bench --bench failures`. Both servers are the
//! release `ccr serve` binary in processes of their own, as users run it, beside the load
//! benchmark's mock upstream.
//!
//! The 76 KB body is sent two ways: the same body every time (a client retrying one
//! request, which the log writes once a day file) and a different body every time (the
//! log writes each in full).

#[path = "support/fixture.rs"]
mod fixture;

#[path = "../tests/it/support/mock_upstream.rs"]
#[allow(dead_code)]
mod mock_upstream;

#[path = "load/bare.rs"]
#[allow(dead_code)]
mod bare;

#[path = "load/mock.rs"]
#[allow(dead_code)]
mod mock;

#[path = "load/procs.rs"]
#[allow(dead_code)]
mod procs;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use procs::Proxy;

const CONCURRENCY: usize = 16;
const PER_WORKER: usize = 300;
const ROUNDS: usize = 5;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let body = fixture_body();
    let mock = mock::start(mock::Answers::new(0), None).await;
    let start = |enabled: bool| {
        let proxy = Proxy::ccr(|_| {
            format!(
                "server: {{ host: 127.0.0.1, port: 0 }}\nproviders:\n  up: {{ type: anthropic, base_url: \"http://{mock}/status/500\" }}\nroutes:\n  default: [up/*]\nrouter: {{ max_attempts: 1 }}\nfailures: {{ enabled: {enabled} }}\n"
            )
        });
        let url = format!("http://{}/v1/messages", proxy.addr);
        (proxy, url)
    };
    let (_on_server, on) = start(true);
    let (_off_server, off) = start(false);
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .build()
        .unwrap();
    let tiny = Bodies::Same(Bytes::from_static(
        br#"{"model":"m","max_tokens":64,"messages":[{"role":"user","content":"hello"}]}"#,
    ));
    let retried = Bodies::Same(body.clone());
    let distinct = Bodies::distinct(&body);
    for url in [&on, &off] {
        rate(&client, url, &retried, 50).await;
    }
    println!(
        "failing requests/s at {CONCURRENCY} concurrent, upstream 500, log off and on interleaved"
    );
    println!();
    println!("| body | round | log off | log on | on / off |");
    println!("|---|---|---|---|---|");
    for (name, body) in [
        ("tiny", &tiny),
        ("76 KB, one body retried", &retried),
        ("76 KB, every body different", &distinct),
    ] {
        for round in 1..=ROUNDS {
            // Alternate which goes first, so neither always runs on a warmer machine.
            let (off_rate, on_rate) = if round % 2 == 1 {
                let off_rate = rate(&client, &off, body, PER_WORKER).await;
                (off_rate, rate(&client, &on, body, PER_WORKER).await)
            } else {
                let on_rate = rate(&client, &on, body, PER_WORKER).await;
                (rate(&client, &off, body, PER_WORKER).await, on_rate)
            };
            println!(
                "| {name} | {round} | {off_rate:.0} | {on_rate:.0} | {:.2}x |",
                on_rate / off_rate
            );
        }
    }
}

/// What the clients send: one body, or a new one each request.
#[derive(Clone)]
enum Bodies {
    Same(Bytes),
    /// The template and where its 16-digit counter is.
    Distinct(Arc<(Vec<u8>, usize, AtomicU64)>),
}

impl Bodies {
    const COUNTER: &str = "0000000000000000";

    fn distinct(body: &Bytes) -> Bodies {
        let mut value: serde_json::Value = serde_json::from_slice(body).unwrap();
        value["metadata"]["user_id"] = format!("bench-{}", Self::COUNTER).into();
        let template = serde_json::to_vec(&value).unwrap();
        let at = memchr::memmem::find(&template, Self::COUNTER.as_bytes()).unwrap();
        Bodies::Distinct(Arc::new((template, at, AtomicU64::new(0))))
    }

    fn next(&self) -> Bytes {
        match self {
            Bodies::Same(body) => body.clone(),
            Bodies::Distinct(shared) => {
                let (template, at, counter) = &**shared;
                let mut body = template.clone();
                let n = format!("{:016}", counter.fetch_add(1, Ordering::Relaxed));
                body[*at..*at + n.len()].copy_from_slice(n.as_bytes());
                Bytes::from(body)
            }
        }
    }
}

async fn rate(client: &reqwest::Client, url: &str, bodies: &Bodies, per_worker: usize) -> f64 {
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, url, bodies) = (client.clone(), url.to_string(), bodies.clone());
            tokio::spawn(async move {
                for _ in 0..per_worker {
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("x-api-key", "sk-bench")
                        .body(bodies.next())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 500);
                    response.bytes().await.unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    (CONCURRENCY * per_worker) as f64 / started.elapsed().as_secs_f64()
}

fn fixture_body() -> Bytes {
    Bytes::from(fixture::claude_code_body())
}
