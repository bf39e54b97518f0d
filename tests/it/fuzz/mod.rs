//! Fuzzing on stable Rust: property tests (proptest) that feed arbitrary and structure-aware
//! input to every parser and stream converter that reads bytes from outside ccr — the SSE
//! line reader, the OpenAI, Gemini and CodeWhisperer converters (the AWS event-stream
//! decoder included), the Messages request parser, the config loader and `Retry-After`.
//!
//! Each property's input is bounded in size, and every converter run happens under a
//! watchdog ([`bounded`]), so a hang fails the case instead of the suite. The number of
//! cases is small by default (the whole module takes seconds); `CCR_FUZZ_CASES=N` gives
//! every property N cases (the ones that parse the 80 KB Claude Code fixture get N/10):
//!
//! ```sh
//! CCR_FUZZ_CASES=200000 cargo test --release --test it fuzz
//! ```

mod codewhisperer;
mod config;
mod gemini;
mod grammar;
mod openai;
mod request;
mod retry_after;
mod sse;

use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;

/// How long one case may run before it counts as a hang. Cases take microseconds to
/// milliseconds; this only has to be finite.
const WATCHDOG: Duration = Duration::from_secs(20);

/// The proptest config of a property whose default is `default` cases: `CCR_FUZZ_CASES`
/// overrides it; `heavy` properties (80 KB inputs) run a tenth of the override.
pub fn cases(default: u32, heavy: bool) -> Config {
    let cases = match std::env::var("CCR_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
    {
        Some(n) if heavy => (n / 10).max(1),
        Some(n) => n.max(1),
        None => default,
    };
    Config {
        cases,
        max_shrink_iters: 4096,
        ..Config::default()
    }
}

/// Runs `f` on its own thread and fails if it does not return within [`WATCHDOG`]; a panic
/// inside `f` is passed on as it is.
pub fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the worker either sends or panics"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("hang: the case ran longer than {WATCHDOG:?}")
        }
    }
}

/// `bytes` cut at arbitrary points: the pieces, in order, join back into `bytes`.
pub fn split(bytes: &[u8], cuts: &[Index]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.dedup();
    let pieces: Vec<Vec<u8>> = at.windows(2).map(|w| bytes[w[0]..w[1]].to_vec()).collect();
    debug_assert_eq!(pieces.concat(), bytes);
    pieces
}

/// Cut points for [`split`]: none to many, so pieces range from the whole input to single
/// bytes.
pub fn cuts() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..48)
}

/// One edit of a byte string, at a position chosen relative to its length.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// XOR one byte with a non-zero mask.
    Flip(Index, u8),
    /// Overwrite one byte.
    Set(Index, u8),
    Delete(Index, usize),
    Insert(Index, Vec<u8>),
    /// Copy a range somewhere else (repeats a line, an event, a frame…).
    Duplicate(Index, usize, Index),
    Truncate(Index),
}

/// Bytes that make interesting insertions into JSON, SSE and YAML.
const SPICE: &[&[u8]] = &[
    b"\n",
    b"\r\n",
    b"\n\n",
    b"data: ",
    b"event: ",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b":",
    b",",
    b"null",
    b"true",
    b"-1",
    b"1e999",
    b"18446744073709551616",
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
    b"[DONE]",
    b"\\ud800",
    b"${",
    b"$$",
    b"&a ",
    b"*a",
    b"- ",
    b"  ",
];

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 1..=255u8).prop_map(|(i, m)| Mutation::Flip(i, m)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<Index>(), 1..16usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (
            any::<Index>(),
            prop_oneof![
                prop::sample::select(SPICE).prop_map(<[u8]>::to_vec),
                prop::collection::vec(any::<u8>(), 1..8),
            ]
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<Index>(), 1..64usize, any::<Index>())
            .prop_map(|(from, n, to)| Mutation::Duplicate(from, n, to)),
        any::<Index>().prop_map(Mutation::Truncate),
    ]
}

pub fn mutations(most: usize) -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..=most)
}

/// Applies edits in order; positions are taken relative to the length at each step.
pub fn mutate(bytes: &mut Vec<u8>, edits: &[Mutation]) {
    for edit in edits {
        let len = bytes.len();
        match edit {
            Mutation::Flip(i, mask) if len > 0 => bytes[i.index(len)] ^= mask,
            Mutation::Set(i, b) if len > 0 => bytes[i.index(len)] = *b,
            Mutation::Delete(i, n) if len > 0 => {
                let at = i.index(len);
                bytes.drain(at..(at + n).min(len));
            }
            Mutation::Insert(i, new) => {
                let at = i.index(len + 1);
                bytes.splice(at..at, new.iter().copied());
            }
            Mutation::Duplicate(from, n, to) if len > 0 => {
                let start = from.index(len);
                let copy = bytes[start..(start + n).min(len)].to_vec();
                let at = to.index(len + 1);
                bytes.splice(at..at, copy);
            }
            Mutation::Truncate(i) => bytes.truncate(i.index(len + 1)),
            _ => {}
        }
    }
}
