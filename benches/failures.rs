//! The failure log's cost on a failing workload: requests/s through ccr while every request
//! fails (the upstream answers 500), with the log on and off, in one run. Run with
//! `cargo bench --bench failures`. The servers are the release `ccr serve` binary in
//! processes of their own, as users run it, beside the load benchmark's mock upstream.
//!
//! Three servers — log off, log off again, log on — started afresh each round, take turns
//! in short slices, in a new order each round; each round gives on/off and off-again/off ratios, and the table shows
//! their medians and quartiles. The off-again column is the noise floor: two identical
//! servers measured the same way. Each server's CPU time a request comes from /proc.
//!
//! Bodies: a tiny one, and the 76 KB Claude Code body sent two ways — the same body every
//! time (a client retrying one request, which the log writes once a day file) and a
//! different body every time (the log writes each in full). `CCR_BENCH_ONLY=tiny|retried`
//! runs only the rows whose names hold one of the parts; `CCR_BENCH_QUEUE=N` sets the log's
//! queue.

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
use std::time::{Duration, Instant};

use bytes::Bytes;
use procs::Proxy;

const CONCURRENCY: usize = 16;

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
    println!(
        "failing requests/s at {CONCURRENCY} concurrent, upstream 500: {ROUNDS} rounds of {} ms \
         slices, the three servers in a new order each round; medians, [quartiles]",
        SLICE.as_millis()
    );
    println!();
    println!(
        "| body | log off (req/s) | log on / off | off again / off (noise) | CPU µs a request, off → on |"
    );
    println!("|---|---|---|---|---|");
    // `CCR_BENCH_ONLY=<part of a row's name>|<another>` runs only the matching rows.
    let only = std::env::var("CCR_BENCH_ONLY").ok();
    for (name, body) in [
        ("tiny", &tiny),
        ("76 KB, one body retried", &retried),
        ("76 KB, every body different", &distinct),
    ] {
        if only
            .as_deref()
            .is_some_and(|parts| !parts.split('|').any(|part| name.contains(part)))
        {
            continue;
        }
        let mut rounds = Vec::new();
        for round in 0..ROUNDS {
            // Each server goes first, second and third equally often, so none always runs
            // right after another's writes.
            let mut order = [0, 1, 2];
            order.rotate_left(round % 3);
            if round % 6 >= 3 {
                order.reverse();
            }
            let servers = Server::three(mock, &client, body).await;
            let mut measured = [Measured::default(); 3];
            for i in order {
                measured[i] = servers[i].measure(&client, body, SLICE).await;
            }
            rounds.push(measured);
        }
        let median_of = |f: &dyn Fn(&[Measured; 3]) -> f64| Spread::of(rounds.iter().map(f));
        let off_rate = median_of(&|m| m[0].rate);
        let on_ratio = median_of(&|m| m[2].rate / m[0].rate);
        let noise = median_of(&|m| m[1].rate / m[0].rate);
        let off_cpu = median_of(&|m| m[0].cpu_us);
        let on_cpu = median_of(&|m| m[2].cpu_us);
        println!(
            "| {name} | {:.0} | **{:.3}x** [{:.3}–{:.3}] | {:.3}x [{:.3}–{:.3}] | {:.1} → {:.1} |",
            off_rate.median,
            on_ratio.median,
            on_ratio.low,
            on_ratio.high,
            noise.median,
            noise.low,
            noise.high,
            off_cpu.median,
            on_cpu.median,
        );
    }
}

const ROUNDS: usize = 30;
const SLICE: Duration = Duration::from_millis(400);
const WARM_UP: Duration = Duration::from_millis(100);

/// A `ccr serve` process with the log on or off.
struct Server {
    proxy: Proxy,
    url: String,
}

impl Server {
    /// Log off, log off again and log on: new processes each round, so no one process's
    /// luck (where its memory and threads landed) leans every round the same way — with
    /// one set of servers for the whole run, the two identical servers differed by up to
    /// 10 % in every round of a run. Each is warmed up before it is measured.
    async fn three(
        mock: std::net::SocketAddr,
        client: &reqwest::Client,
        body: &Bodies,
    ) -> [Server; 3] {
        let servers = [
            Server::start(mock, "log off", false),
            Server::start(mock, "log off, again", false),
            Server::start(mock, "log on", true),
        ];
        for server in &servers {
            server.measure(client, body, WARM_UP).await;
        }
        servers
    }

    fn start(mock: std::net::SocketAddr, name: &str, log: bool) -> Server {
        let queue = std::env::var("CCR_BENCH_QUEUE").unwrap_or_else(|_| "4096".into());
        let proxy = Proxy::ccr(|_| {
            format!(
                "# {name}\nserver: {{ host: 127.0.0.1, port: 0 }}\nproviders:\n  up: {{ type: anthropic, base_url: \"http://{mock}/status/500\" }}\nroutes:\n  default: [up/*]\nrouter: {{ max_attempts: 1 }}\nfailures: {{ enabled: {log}, queue: {queue} }}\n"
            )
        });
        let url = format!("http://{}/v1/messages", proxy.addr);
        Server { proxy, url }
    }

    /// Requests/s through this server for `slice`, and its CPU time a request.
    async fn measure(
        &self,
        client: &reqwest::Client,
        bodies: &Bodies,
        slice: Duration,
    ) -> Measured {
        let cpu = self.proxy.cpu_time();
        let (requests, elapsed) = rate(client, &self.url, bodies, slice).await;
        let cpu = (self.proxy.cpu_time() - cpu).as_secs_f64();
        Measured {
            rate: requests as f64 / elapsed.as_secs_f64(),
            cpu_us: cpu * 1e6 / requests as f64,
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Measured {
    rate: f64,
    cpu_us: f64,
}

/// The median and the quartiles of some measurements.
struct Spread {
    low: f64,
    median: f64,
    high: f64,
}

impl Spread {
    fn of(values: impl Iterator<Item = f64>) -> Spread {
        let mut values: Vec<f64> = values.collect();
        values.sort_by(f64::total_cmp);
        let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
        Spread {
            low: at(0.25),
            median: at(0.5),
            high: at(0.75),
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

/// Closed-loop clients for `slice`: how many requests they finished, and in how long.
async fn rate(
    client: &reqwest::Client,
    url: &str,
    bodies: &Bodies,
    slice: Duration,
) -> (usize, Duration) {
    let started = Instant::now();
    let until = started + slice;
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, url, bodies) = (client.clone(), url.to_string(), bodies.clone());
            tokio::spawn(async move {
                let mut done = 0;
                while Instant::now() < until {
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
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut done = 0;
    for worker in workers {
        done += worker.await.unwrap();
    }
    (done, started.elapsed())
}

fn fixture_body() -> Bytes {
    Bytes::from(fixture::claude_code_body())
}
