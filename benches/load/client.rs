//! The closed-loop load client: `concurrency` workers each send a request, read the answer
//! to its end, and send the next, until the cell's time is up. Latency, time to the first
//! content event and the gaps between reads go into hdrhistograms (microseconds).

use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;

/// What a complete answer looks like on one path, and which bytes mark the first content.
#[derive(Clone, Copy)]
pub struct Expect {
    /// Found somewhere in a complete answer (its last event, or a field of the JSON body).
    pub complete: Complete,
    /// Found in the read that carries the first content event; `None` for a JSON answer.
    pub first_content: Option<&'static [u8]>,
}

#[derive(Clone, Copy)]
pub enum Complete {
    Contains(&'static [u8]),
    Length(usize),
}

pub struct Cell {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
    pub first_content: Histogram<u64>,
    pub gaps: Histogram<u64>,
    pub first_error: Option<String>,
}

impl Cell {
    fn new() -> Cell {
        let histogram = || Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram");
        Cell {
            requests: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            latency: histogram(),
            first_content: histogram(),
            gaps: histogram(),
            first_error: None,
        }
    }

    fn merge(&mut self, other: Cell) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latency.add(&other.latency).expect("same bounds");
        self.first_content
            .add(&other.first_content)
            .expect("same bounds");
        self.gaps.add(&other.gaps).expect("same bounds");
        self.first_error = self.first_error.take().or(other.first_error);
    }

    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    pub fn p50(&self) -> f64 {
        self.latency.value_at_quantile(0.5) as f64
    }
}

pub struct Target {
    pub url: String,
    pub body: Bytes,
    pub expect: Expect,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::MAX)
        .build()
        .expect("client")
}

/// `concurrency` workers, back to back, for `duration` (each finishes the request it is in).
pub async fn closed_loop(
    client: &reqwest::Client,
    target: &Target,
    concurrency: usize,
    duration: Duration,
) -> Cell {
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            let (url, body, expect) = (target.url.clone(), target.body.clone(), target.expect);
            tokio::spawn(async move {
                let mut cell = Cell::new();
                while Instant::now() < deadline {
                    one(&client, &url, &body, expect, &mut cell).await;
                }
                cell
            })
        })
        .collect();
    collect(workers, started).await
}

/// `count` requests started together, each read to its end: the memory workload.
pub async fn burst(client: &reqwest::Client, target: &Target, count: usize) -> Cell {
    let started = Instant::now();
    let workers: Vec<_> = (0..count)
        .map(|_| {
            let client = client.clone();
            let (url, body, expect) = (target.url.clone(), target.body.clone(), target.expect);
            tokio::spawn(async move {
                let mut cell = Cell::new();
                one(&client, &url, &body, expect, &mut cell).await;
                cell
            })
        })
        .collect();
    collect(workers, started).await
}

async fn collect(workers: Vec<tokio::task::JoinHandle<Cell>>, started: Instant) -> Cell {
    let mut total = Cell::new();
    for worker in workers {
        total.merge(worker.await.expect("worker"));
    }
    total.elapsed = started.elapsed();
    total
}

async fn one(client: &reqwest::Client, url: &str, body: &Bytes, expect: Expect, cell: &mut Cell) {
    let started = Instant::now();
    match read_answer(client, url, body, expect, started, cell).await {
        Ok(()) => {
            cell.requests += 1;
            record(&mut cell.latency, started.elapsed());
        }
        Err(error) => {
            cell.errors += 1;
            cell.first_error.get_or_insert(format!("{url}: {error}"));
            // A dead path must not spin: the cell still ends on time.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn read_answer(
    client: &reqwest::Client,
    url: &str,
    body: &Bytes,
    expect: Expect,
    started: Instant,
    cell: &mut Cell,
) -> Result<(), String> {
    let mut response = client
        .post(url)
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", "sk-bench-client")
        .body(body.clone())
        .send()
        .await
        .map_err(|error| error.to_string())?;
    if !response.status().is_success() {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        return Err(format!(
            "{status}: {}",
            text.chars().take(300).collect::<String>()
        ));
    }
    let mut answer = Vec::new();
    let mut last_read: Option<Instant> = None;
    let mut seen_content = expect.first_content.is_none();
    while let Some(chunk) = response.chunk().await.map_err(|error| error.to_string())? {
        let now = Instant::now();
        if let Some(previous) = last_read {
            record(&mut cell.gaps, now - previous);
        }
        last_read = Some(now);
        answer.extend_from_slice(&chunk);
        if !seen_content {
            let marker = expect.first_content.expect("checked");
            // The tail of the answer so far, so a marker split over two reads is found too.
            let from = answer.len().saturating_sub(chunk.len() + marker.len());
            if memchr::memmem::find(&answer[from..], marker).is_some() {
                seen_content = true;
                record(&mut cell.first_content, now - started);
            }
        }
    }
    let whole = match expect.complete {
        Complete::Contains(marker) => memchr::memmem::find(&answer, marker).is_some(),
        Complete::Length(length) => answer.len() == length,
    };
    if whole && seen_content {
        Ok(())
    } else {
        let tail = String::from_utf8_lossy(&answer[answer.len().saturating_sub(300)..]);
        Err(format!(
            "an incomplete answer of {} bytes ending {tail:?}",
            answer.len()
        ))
    }
}

fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    histogram.saturating_record((elapsed.as_micros() as u64).max(1));
}
