//! The load benchmark: what ccr costs beside a bare pass-through proxy, in one command.
//!
//! `cargo bench --bench load` starts, in one run: a mock upstream speaking the OpenAI-
//! compatible, Anthropic and CodeWhisperer wire formats (mock.rs), a bare pass-through proxy
//! (bare.rs, its own process, one runtime thread) and `ccr serve` (the release binary, its
//! own process, one per provider), then drives every path — direct to the mock, through the
//! bare proxy, through ccr — with a closed-loop client (client.rs), interleaved and repeated,
//! for tiny and Claude Code–sized bodies, streaming and not, at concurrency 1 and 32. Last,
//! 1 000 paced streams at once measure memory. It prints every cell, then the summary table
//! of BENCHMARKS.md as ratios to the bare proxy.
//!
//! `cargo test --bench load` runs the same steps for a few seconds (the smoke mode CI runs):
//! no timing is judged, but every answer on every path must arrive whole.

mod bare;
mod client;
mod mock;
mod procs;

#[path = "../support/fixture.rs"]
mod fixture;

#[path = "../../tests/it/support/mock_upstream.rs"]
#[allow(dead_code)]
mod mock_upstream;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use client::{Cell, Complete, Expect, Target};
use procs::{Memory, Proxy};

struct Plan {
    cell: Duration,
    rounds: usize,
    streams: usize,
    pacing: Duration,
    settle: Duration,
}

impl Plan {
    fn full() -> Plan {
        Plan {
            cell: Duration::from_millis(1500),
            rounds: 3,
            streams: 1000,
            pacing: Duration::from_millis(20),
            settle: Duration::from_secs(30),
        }
    }

    fn smoke() -> Plan {
        Plan {
            cell: Duration::from_millis(150),
            rounds: 1,
            streams: 50,
            pacing: Duration::from_millis(2),
            settle: Duration::from_secs(1),
        }
    }
}

fn main() {
    if let Ok(upstream) = std::env::var(bare::UPSTREAM_ENV) {
        return bare::serve(upstream);
    }
    // `cargo bench` passes `--bench`; `cargo test --bench load` does not.
    let plan = if std::env::args().any(|arg| arg == "--bench") {
        Plan::full()
    } else {
        Plan::smoke()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(plan));
}

#[derive(Clone, Copy, PartialEq)]
enum Provider {
    OpenAi,
    Anthropic,
    CodeWhisperer,
}

impl Provider {
    fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "OpenAI-compatible",
            Provider::Anthropic => "Anthropic",
            Provider::CodeWhisperer => "CodeWhisperer",
        }
    }

    fn upstream_path(self) -> &'static str {
        match self {
            Provider::OpenAi => "/v1/chat/completions",
            Provider::Anthropic => "/v1/messages",
            Provider::CodeWhisperer => "/generateAssistantResponse",
        }
    }

    fn ccr_config(self, mock: SocketAddr, home: &std::path::Path) -> String {
        let server = "server: { host: 127.0.0.1, port: 0 }\n";
        match self {
            Provider::OpenAi => format!(
                "{server}providers:\n  oa: {{ type: openai, base_url: \"http://{mock}/v1\", api_key: sk-bench-upstream }}\nroutes:\n  default: [oa/gpt-bench]\n"
            ),
            Provider::Anthropic => format!(
                "{server}providers:\n  an: {{ type: anthropic, base_url: \"http://{mock}\" }}\nroutes:\n  default: [an/*]\n"
            ),
            Provider::CodeWhisperer => {
                let credentials = home.join("credentials");
                std::fs::create_dir_all(&credentials).expect("credentials dir");
                procs::codewhisperer_credentials(&credentials);
                let dead = "http://127.0.0.1:9/refreshToken";
                format!(
                    "{server}providers:\n  kiro: {{ type: codewhisperer, base_url: \"http://{mock}\", accounts: [bench], refresh_url: \"{dead}\", idc_refresh_url: \"{dead}\" }}\nroutes:\n  default: [kiro/*]\ncredentials: {{ store: file, dir: \"{}\" }}\n",
                    credentials.display()
                )
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Size {
    Tiny,
    ClaudeCode,
}

struct Workload {
    provider: Provider,
    size: Size,
    stream: bool,
    concurrency: usize,
}

impl Workload {
    fn label(&self) -> String {
        format!(
            "{}, {}, {}, {} concurrent",
            self.provider.name(),
            match self.size {
                Size::Tiny => "tiny",
                Size::ClaudeCode => "76 KB",
            },
            if self.stream {
                "streaming"
            } else {
                "non-streaming"
            },
            self.concurrency
        )
    }
}

fn workloads() -> Vec<Workload> {
    let mut all = Vec::new();
    for size in [Size::Tiny, Size::ClaudeCode] {
        for stream in [false, true] {
            for concurrency in [1, 32] {
                all.push(Workload {
                    provider: Provider::OpenAi,
                    size,
                    stream,
                    concurrency,
                });
            }
        }
    }
    for provider in [Provider::Anthropic, Provider::CodeWhisperer] {
        for (size, concurrency) in [
            (Size::Tiny, 32),
            (Size::ClaudeCode, 1),
            (Size::ClaudeCode, 32),
        ] {
            all.push(Workload {
                provider,
                size,
                stream: true,
                concurrency,
            });
        }
    }
    all
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Path {
    Direct,
    Bare,
    Ccr,
}

const PATHS: [Path; 3] = [Path::Direct, Path::Bare, Path::Ccr];

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Direct => "direct to the mock",
            Path::Bare => "bare proxy",
            Path::Ccr => "ccr",
        }
    }
}

struct Bodies {
    tiny: [Bytes; 2],
    claude_code: [Bytes; 2],
}

impl Bodies {
    fn new() -> Bodies {
        let tiny = |stream: bool| {
            Bytes::from(format!(
                "{{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":1024,\"stream\":{stream},\"messages\":[{{\"role\":\"user\",\"content\":\"Say hello.\"}}]}}"
            ))
        };
        let streaming = fixture::claude_code_body();
        assert_eq!(
            memchr::memmem::find_iter(&streaming, b"\"stream\":true").count(),
            1,
            "the mock tells streaming requests by the one compact `\"stream\":true` flag"
        );
        let mut value: serde_json::Value = serde_json::from_slice(&streaming).expect("fixture");
        value["stream"] = serde_json::Value::Bool(false);
        let not_streaming = serde_json::to_vec(&value).expect("fixture");
        Bodies {
            tiny: [tiny(false), tiny(true)],
            claude_code: [Bytes::from(not_streaming), Bytes::from(streaming)],
        }
    }

    fn get(&self, size: Size, stream: bool) -> Bytes {
        match size {
            Size::Tiny => self.tiny[stream as usize].clone(),
            Size::ClaudeCode => self.claude_code[stream as usize].clone(),
        }
    }
}

/// Everything started for the timed cells.
struct Setup {
    mock: SocketAddr,
    bare: Proxy,
    ccr: [Proxy; 3],
    cw_len: usize,
    bodies: Bodies,
}

impl Setup {
    fn target(&self, workload: &Workload, path: Path) -> Target {
        let provider = workload.provider;
        let url = match path {
            Path::Direct => format!("http://{}{}", self.mock, provider.upstream_path()),
            Path::Bare => format!("http://{}{}", self.bare.addr, provider.upstream_path()),
            Path::Ccr => format!(
                "http://{}/v1/messages?beta=true",
                self.ccr_for(provider).addr
            ),
        };
        Target {
            url,
            body: self.bodies.get(workload.size, workload.stream),
            expect: expect(provider, path, workload.stream, self.cw_len),
        }
    }

    fn ccr_for(&self, provider: Provider) -> &Proxy {
        &self.ccr[provider as usize]
    }

    fn proxy(&self, workload: &Workload, path: Path) -> Option<&Proxy> {
        match path {
            Path::Direct => None,
            Path::Bare => Some(&self.bare),
            Path::Ccr => Some(self.ccr_for(workload.provider)),
        }
    }
}

/// What a whole answer looks like: ccr always answers in Anthropic's format, the other two
/// paths in the upstream's own.
fn expect(provider: Provider, path: Path, stream: bool, cw_len: usize) -> Expect {
    let anthropic = |stream: bool| {
        if stream {
            Expect {
                complete: Complete::Contains(b"event: message_stop"),
                first_content: Some(b"content_block_delta"),
            }
        } else {
            Expect {
                complete: Complete::Contains(b"\"stop_reason\":\"end_turn\""),
                first_content: None,
            }
        }
    };
    match (path, provider) {
        (Path::Ccr, _) | (_, Provider::Anthropic) => anthropic(stream),
        (_, Provider::OpenAi) if stream => Expect {
            complete: Complete::Contains(b"data: [DONE]"),
            first_content: Some(b"\"content\":\""),
        },
        (_, Provider::OpenAi) => Expect {
            complete: Complete::Contains(b"\"finish_reason\":\"stop\""),
            first_content: None,
        },
        (_, Provider::CodeWhisperer) => Expect {
            complete: Complete::Length(cw_len),
            first_content: Some(b"assistantResponseEvent"),
        },
    }
}

/// One measured cell.
struct Measured {
    cell: Cell,
    cpu_per_request: Option<Duration>,
}

async fn run(plan: Plan) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let answers = mock::Answers::new(0);
    let cw_len = answers.codewhisperer_len();
    let mock = mock::start(answers, None).await;
    let providers = [
        Provider::OpenAi,
        Provider::Anthropic,
        Provider::CodeWhisperer,
    ];
    let setup = Setup {
        mock,
        bare: Proxy::bare(&format!("http://{mock}")),
        ccr: providers.map(|provider| Proxy::ccr(|home| provider.ccr_config(mock, home))),
        cw_len,
        bodies: Bodies::new(),
    };
    let client = client::client();
    // `CCR_BENCH_ONLY=<part of a label>|<another>` runs only the matching workloads, and the
    // memory run only if one part is `memory` (for profiling and quick comparisons).
    let only = std::env::var("CCR_BENCH_ONLY").ok();
    let workloads: Vec<Workload> = workloads()
        .into_iter()
        .filter(|w| {
            only.as_deref()
                .is_none_or(|parts| parts.split('|').any(|part| w.label().contains(part)))
        })
        .collect();

    // Warm every path: connections, caches, the allocators' arenas.
    for workload in &workloads {
        for path in PATHS {
            let target = setup.target(workload, path);
            let warm =
                client::closed_loop(&client, &target, workload.concurrency, plan.cell / 5).await;
            assert_whole(&warm, workload, path);
        }
    }

    let mut results: Vec<Vec<Vec<Measured>>> = workloads
        .iter()
        .map(|_| PATHS.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 0..plan.rounds {
        for (w, workload) in workloads.iter().enumerate() {
            let mut order = PATHS.to_vec();
            if round % 2 == 1 {
                order.reverse();
            }
            for path in order {
                let target = setup.target(workload, path);
                let proxy = setup.proxy(workload, path);
                let cpu_before = proxy.map(Proxy::cpu_time);
                let cell =
                    client::closed_loop(&client, &target, workload.concurrency, plan.cell).await;
                let cpu_per_request = proxy.zip(cpu_before).map(|(proxy, before)| {
                    (proxy.cpu_time() - before) / cell.requests.max(1) as u32
                });
                assert_whole(&cell, workload, path);
                results[w][path as usize].push(Measured {
                    cell,
                    cpu_per_request,
                });
            }
        }
    }
    drop(setup);

    let memory = if only.as_deref().is_none_or(|parts| parts.contains("memory")) {
        memory_workload(&plan).await
    } else {
        Vec::new()
    };
    report(&plan, &workloads, &results, &memory);
}

fn assert_whole(cell: &Cell, workload: &Workload, path: Path) {
    assert!(
        cell.errors == 0 && cell.requests > 0,
        "{} via {}: {} errors in {} requests; first: {}",
        workload.label(),
        path.name(),
        cell.errors,
        cell.requests,
        cell.first_error.as_deref().unwrap_or("none")
    );
}

struct MemoryRun {
    path: Path,
    cell: Cell,
    idle: Memory,
    during: Memory,
    /// `plan.settle` after the streams ended, the client's connections still open and idle.
    after: Memory,
    /// Then a moment after the client closed them.
    closed: Memory,
}

/// `plan.streams` paced 76 KB streams at once through a fresh bare proxy, then a fresh ccr:
/// peak resident memory, what is still resident `plan.settle` after the last one ended (the
/// client keeping its connections, idle, as HTTP clients do), and after it closed them.
async fn memory_workload(plan: &Plan) -> Vec<MemoryRun> {
    let mock = mock::start(mock::Answers::new(0), Some(plan.pacing)).await;
    let body = Bodies::new().get(Size::ClaudeCode, true);
    let mut runs = Vec::new();
    for path in [Path::Bare, Path::Ccr] {
        let mut proxy = match path {
            Path::Bare => Proxy::bare(&format!("http://{mock}")),
            _ => Proxy::ccr(|home| Provider::OpenAi.ccr_config(mock, home)),
        };
        let url = match path {
            Path::Bare => format!("http://{}/v1/chat/completions", proxy.addr),
            _ => format!("http://{}/v1/messages?beta=true", proxy.addr),
        };
        let target = Target {
            url,
            body: body.clone(),
            expect: expect(Provider::OpenAi, path, true, 0),
        };
        // A client of its own, so that dropping it closes only these connections.
        let client = client::client();
        // One request first, so "idle" is a server that has served, not a fresh one.
        let first = client::burst(&client, &target, 1).await;
        assert_whole(&first, &memory_label(plan), path);
        let idle = proxy.memory();
        let cell = client::burst(&client, &target, plan.streams).await;
        assert_whole(&cell, &memory_label(plan), path);
        let during = proxy.memory();
        tokio::time::sleep(plan.settle).await;
        assert!(proxy.is_running(), "{} died under the streams", path.name());
        let after = proxy.memory();
        drop(client);
        tokio::time::sleep(plan.settle.min(Duration::from_secs(3))).await;
        let closed = proxy.memory();
        runs.push(MemoryRun {
            path,
            cell,
            idle,
            during,
            after,
            closed,
        });
    }
    runs
}

fn memory_label(plan: &Plan) -> Workload {
    Workload {
        provider: Provider::OpenAi,
        size: Size::ClaudeCode,
        stream: true,
        concurrency: plan.streams,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The medians over rounds of one (workload, path) cell.
struct Summary {
    rate: f64,
    p50: f64,
    p99: f64,
    first_content: Option<f64>,
    cpu_ms: Option<f64>,
}

fn summarise(runs: &[Measured]) -> Summary {
    let first_content = runs
        .iter()
        .all(|run| !run.cell.first_content.is_empty())
        .then(|| {
            median(
                runs.iter()
                    .map(|run| run.cell.first_content.value_at_quantile(0.5) as f64)
                    .collect(),
            )
        });
    Summary {
        rate: median(runs.iter().map(|run| run.cell.rate()).collect()),
        p50: median(runs.iter().map(|run| run.cell.p50()).collect()),
        p99: median(
            runs.iter()
                .map(|run| run.cell.latency.value_at_quantile(0.99) as f64)
                .collect(),
        ),
        first_content,
        cpu_ms: runs[0].cpu_per_request.map(|_| {
            median(
                runs.iter()
                    .map(|run| run.cpu_per_request.unwrap().as_secs_f64() * 1e3)
                    .collect(),
            )
        }),
    }
}

fn report(
    plan: &Plan,
    workloads: &[Workload],
    results: &[Vec<Vec<Measured>>],
    memory: &[MemoryRun],
) {
    println!(
        "{} rounds of {:.1} s per cell, paths interleaved (order reversed every other round); medians over rounds",
        plan.rounds,
        plan.cell.as_secs_f64()
    );
    println!();
    println!(
        "| workload | path | req/s | p50 µs | p99 µs | first content p50 µs | CPU ms/request | vs bare: req/s | vs bare: p50 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let summaries: Vec<Vec<Summary>> = results
        .iter()
        .map(|paths| paths.iter().map(|runs| summarise(runs)).collect())
        .collect();
    for (workload, paths) in workloads.iter().zip(&summaries) {
        let bare = &paths[Path::Bare as usize];
        for path in PATHS {
            let s = &paths[path as usize];
            println!(
                "| {} | {} | {:.0} | {:.0} | {:.0} | {} | {} | {:.2}x | {:.2}x |",
                workload.label(),
                path.name(),
                s.rate,
                s.p50,
                s.p99,
                s.first_content.map_or("—".into(), |v| format!("{v:.0}")),
                s.cpu_ms.map_or("—".into(), |v| format!("{v:.3}")),
                s.rate / bare.rate,
                s.p50 / bare.p50,
            );
        }
    }
    println!();
    println!(
        "| streams at once | path | errors | first content p50 / p99 ms | gap between reads p99 ms | RSS idle MB | peak RSS MB | RSS {:.0} s after MB | RSS once the client closed its connections MB |",
        plan.settle.as_secs_f64()
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mb = |bytes: u64| bytes as f64 / 1e6;
    for run in memory {
        println!(
            "| {} | {} | {} | {:.1} / {:.1} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} |",
            plan.streams,
            run.path.name(),
            run.cell.errors,
            run.cell.first_content.value_at_quantile(0.5) as f64 / 1e3,
            run.cell.first_content.value_at_quantile(0.99) as f64 / 1e3,
            run.cell.gaps.value_at_quantile(0.99) as f64 / 1e3,
            mb(run.idle.resident),
            mb(run.during.peak),
            mb(run.after.resident),
            mb(run.closed.resident),
        );
    }
    if !memory.is_empty() && workloads.len() == crate::workloads().len() {
        println!();
        targets(workloads, &summaries, memory);
    }
}

/// The table: ccr against the targets, as ratios to the bare proxy of this run.
fn targets(workloads: &[Workload], summaries: &[Vec<Summary>], memory: &[MemoryRun]) {
    let find = |size: Size, stream: bool, concurrency: usize| {
        let index = workloads
            .iter()
            .position(|w| {
                w.provider == Provider::OpenAi
                    && w.size == size
                    && w.stream == stream
                    && w.concurrency == concurrency
            })
            .expect("every workload runs when the table is printed");
        &summaries[index]
    };
    let verdict = |met: bool| if met { "met" } else { "not met" };
    println!("| figure (OpenAI-compatible upstream, 64 chunks) | bare proxy | ccr | target | |");
    println!("|---|---|---|---|---|");
    for (label, size, stream, floor) in [
        (
            "req/s at 32 concurrent, tiny body, non-streaming client",
            Size::Tiny,
            false,
            0.60,
        ),
        (
            "req/s at 32 concurrent, tiny body, streaming",
            Size::Tiny,
            true,
            0.60,
        ),
        (
            "req/s at 32 concurrent, 76 KB body, streaming",
            Size::ClaudeCode,
            true,
            0.30,
        ),
        (
            "req/s at 32 concurrent, 76 KB body, non-streaming client",
            Size::ClaudeCode,
            false,
            0.30,
        ),
    ] {
        let s = find(size, stream, 32);
        let ratio = s[Path::Ccr as usize].rate / s[Path::Bare as usize].rate;
        println!(
            "| {label} | 100 % | {:.0} % | ≥ {:.0} % | {} |",
            ratio * 100.0,
            floor * 100.0,
            verdict(ratio >= floor)
        );
    }
    for (label, size, ceiling) in [
        ("tiny", Size::Tiny, 100.0),
        ("76 KB", Size::ClaudeCode, 250.0),
    ] {
        let s = find(size, true, 1);
        let added = |path: Path| s[path as usize].p50 - s[Path::Direct as usize].p50;
        println!(
            "| added p50 at concurrency 1, {label}, streaming (vs direct) | {:.0} µs | {:.0} µs | ≤ {ceiling:.0} µs | {} |",
            added(Path::Bare),
            added(Path::Ccr),
            verdict(added(Path::Ccr) <= ceiling)
        );
    }
    for (label, size, ceiling) in [
        ("tiny", Size::Tiny, 0.05),
        ("76 KB", Size::ClaudeCode, 0.15),
    ] {
        let s = find(size, true, 32);
        let cpu = |path: Path| s[path as usize].cpu_ms.expect("a proxy");
        println!(
            "| CPU per request, {label}, streaming at 32 concurrent | {:.3} ms | {:.3} ms | ≤ {ceiling} ms | {} |",
            cpu(Path::Bare),
            cpu(Path::Ccr),
            verdict(cpu(Path::Ccr) <= ceiling)
        );
    }
    let mb = |bytes: u64| bytes as f64 / 1e6;
    if let (Some(bare), Some(ccr)) = (
        memory.iter().find(|r| r.path == Path::Bare),
        memory.iter().find(|r| r.path == Path::Ccr),
    ) {
        let streams = ccr.cell.requests;
        println!(
            "| peak RSS, {streams} concurrent streams, 76 KB body | {:.0} MB | {:.0} MB | ≤ 150 MB | {} |",
            mb(bare.during.peak),
            mb(ccr.during.peak),
            verdict(mb(ccr.during.peak) <= 150.0)
        );
        println!(
            "| RSS 30 s after those streams end, the client's {streams} connections idle | {:.0} MB | {:.0} MB | ≤ 60 MB | {} |",
            mb(bare.after.resident),
            mb(ccr.after.resident),
            verdict(mb(ccr.after.resident) <= 60.0)
        );
        println!(
            "| RSS once the client closed those connections | {:.0} MB | {:.0} MB | ≤ 60 MB | {} |",
            mb(bare.closed.resident),
            mb(ccr.closed.resident),
            verdict(mb(ccr.closed.resident) <= 60.0)
        );
    }
}
