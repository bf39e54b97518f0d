//! Load benchmark: the latency ccr adds to a streamed Claude Code request, measured in one run
//! beside a direct call to the mock upstream and a bare pass-through proxy (hyper in, reqwest
//! out, bytes copied, nothing parsed). Run with `cargo bench --bench load`; the figures go
//! into BENCHMARKS.md as ratios to the baselines of the same run.

#[path = "support/fixture.rs"]
mod fixture;

#[path = "../tests/it/support/mock_upstream.rs"]
#[allow(dead_code)]
mod mock_upstream;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ccr::config::{Config, Source};
use ccr::server::Server;
use futures_util::TryStreamExt;
use http::{Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mock_upstream::{MockUpstream, Reply, sse_stream};
use tokio::net::TcpListener;

const SEQUENTIAL: usize = 1500;
const CONCURRENCY: usize = 16;
const CONCURRENT_PER_WORKER: usize = 150;

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
    let stream = sse_stream(&"streamed text ".repeat(100), 20_000, 300);
    let upstream = MockUpstream::start(Reply::Sse {
        body: stream.clone(),
        byte_per_write: false,
    })
    .await;

    let bare = start_bare_proxy(format!("{}/v1/messages", upstream.base_url())).await;
    let yaml = format!(
        "server: {{ host: 127.0.0.1, port: 0 }}\nproviders:\n  up: {{ type: anthropic, base_url: \"{}\" }}\nroutes:\n  default: [up/*]\n",
        upstream.base_url()
    );
    let config = Config::parse(&yaml, &Source::Embedded, Some(HashMap::new())).unwrap();
    let server = Server::bind(&config, Default::default()).await.unwrap();
    let ccr_addr = server.local_addr();
    tokio::spawn(server.run(std::future::pending()));

    let targets = [
        (
            "direct to the mock",
            format!("{}/v1/messages", upstream.base_url()),
        ),
        (
            "bare pass-through proxy",
            format!("http://{bare}/v1/messages"),
        ),
        (
            "ccr serve",
            format!("http://{ccr_addr}/v1/messages?beta=true"),
        ),
    ];
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .build()
        .unwrap();
    // Warm up connections and caches on every path.
    for (_, url) in &targets {
        for _ in 0..200 {
            one_request(&client, url, &body, stream.len()).await;
        }
    }

    println!(
        "request body {} bytes, streamed response {} bytes",
        body.len(),
        stream.len()
    );
    println!();
    println!(
        "| path | p50 (µs) | p90 (µs) | p99 (µs) | throughput at {CONCURRENCY} concurrent (req/s) |"
    );
    println!("|---|---|---|---|---|");
    let mut results = Vec::new();
    for (name, url) in &targets {
        let mut samples = Vec::with_capacity(SEQUENTIAL);
        for _ in 0..SEQUENTIAL {
            let started = Instant::now();
            one_request(&client, url, &body, stream.len()).await;
            samples.push(started.elapsed());
        }
        samples.sort();
        let rate = throughput(&client, url, &body, stream.len()).await;
        let p = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
        println!(
            "| {name} | {} | {} | {} | {rate:.0} |",
            p(0.5).as_micros(),
            p(0.9).as_micros(),
            p(0.99).as_micros()
        );
        results.push((p(0.5), rate));
    }
    let (direct, bare, ccr) = (results[0], results[1], results[2]);
    let added = |x: Duration| x.as_secs_f64() * 1e6 - direct.0.as_secs_f64() * 1e6;
    println!();
    println!(
        "added p50 latency over direct: bare proxy {:.0} µs, ccr {:.0} µs",
        added(bare.0),
        added(ccr.0)
    );
    println!(
        "ccr / bare proxy: p50 latency {:.2}x, throughput {:.2}x",
        ccr.0.as_secs_f64() / bare.0.as_secs_f64(),
        ccr.1 / bare.1
    );
}

async fn one_request(client: &reqwest::Client, url: &str, body: &Bytes, expect: usize) {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", "sk-bench")
        .body(body.clone())
        .send()
        .await
        .expect("request");
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    let got = response.bytes().await.expect("body");
    assert_eq!(got.len(), expect, "{url}: whole stream");
}

async fn throughput(client: &reqwest::Client, url: &str, body: &Bytes, expect: usize) -> f64 {
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, url, body) = (client.clone(), url.to_string(), body.clone());
            tokio::spawn(async move {
                for _ in 0..CONCURRENT_PER_WORKER {
                    one_request(&client, &url, &body, expect).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    (CONCURRENCY * CONCURRENT_PER_WORKER) as f64 / started.elapsed().as_secs_f64()
}

fn fixture_body() -> Bytes {
    Bytes::from(fixture::claude_code_body())
}

type ProxyBody = http_body_util::combinators::BoxBody<Bytes, reqwest::Error>;

/// The baseline: forwards the body and streams the answer back, with no parsing at all.
async fn start_bare_proxy(upstream: String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .build()
        .unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
            let (client, upstream) = (client.clone(), upstream.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let (client, upstream) = (client.clone(), upstream.clone());
                    async move { Ok::<_, Infallible>(forward(&client, &upstream, req).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let headers = req.headers().clone();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let mut out = client.post(upstream).body(body);
    for name in ["content-type", "anthropic-version", "x-api-key"] {
        if let Some(value) = headers.get(name) {
            out = out.header(name, value);
        }
    }
    let upstream_response = out.send().await.unwrap();
    let mut response = Response::builder().status(upstream_response.status());
    for (name, value) in upstream_response.headers() {
        if name == "content-type" {
            response = response.header(name, value);
        }
    }
    let stream = upstream_response.bytes_stream().map_ok(Frame::data);
    response.body(StreamBody::new(stream).boxed()).unwrap()
}
