//! The SSE line reader: arbitrary bytes cut at arbitrary points give the same lines as the
//! whole body read at once, and as a plain model of the format.

use ccr::anthropic::sse::{PEEK, SseHandler, SseLine, SseReader};
use proptest::prelude::*;

use super::{cases, cuts, split};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Event(Vec<u8>),
    Data(Vec<u8>),
    End,
}

/// Writes down every line; refuses `data:` lines whose value starts with `refuse`, and is
/// done after `stop_after` lines.
#[derive(Default)]
struct Recorder {
    lines: Vec<Line>,
    refuse: Option<u8>,
    stop_after: Option<usize>,
}

impl Recorder {
    /// The handler's decision, from the first byte of the value only: the reader promises
    /// "the start of the value", and the first byte is the same start in any split.
    fn keeps(&self, start: &[u8]) -> bool {
        self.refuse.is_none_or(|r| start.first() != Some(&r))
    }
}

impl SseHandler for Recorder {
    fn wants_data(&mut self, start: &[u8]) -> bool {
        assert!(start.len() <= PEEK, "a peek is at most PEEK bytes");
        self.keeps(start)
    }

    fn line(&mut self, line: SseLine<'_>) {
        assert!(!self.is_done(), "no line after the handler is done");
        self.lines.push(match line {
            SseLine::Event(name) => Line::Event(name.to_vec()),
            SseLine::Data(value) => Line::Data(value.to_vec()),
            SseLine::EndOfEvent => Line::End,
        });
    }

    fn is_done(&self) -> bool {
        self.stop_after.is_some_and(|n| self.lines.len() >= n)
    }
}

fn read(pieces: &[Vec<u8>], refuse: Option<u8>, stop_after: Option<usize>) -> Vec<Line> {
    let mut reader = SseReader::default();
    let mut recorder = Recorder {
        refuse,
        stop_after,
        ..Recorder::default()
    };
    for piece in pieces {
        reader.feed(piece, &mut recorder);
    }
    reader.finish(&mut recorder);
    recorder.lines
}

/// The format as the spec words it: lines end at `\n` (a `\r` before it is dropped), a last
/// line without one still counts, one space after the colon is dropped, and only `event:`,
/// `data:` and blank lines carry anything.
fn model(bytes: &[u8], refuse: Option<u8>, stop_after: Option<usize>) -> Vec<Line> {
    let recorder = Recorder {
        refuse,
        ..Recorder::default()
    };
    let mut lines = Vec::new();
    let mut segments: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    if segments.last().is_some_and(|s| s.is_empty()) {
        segments.pop();
    }
    let strip = |v: &[u8]| v.strip_prefix(b" ").unwrap_or(v).to_vec();
    for segment in segments {
        let line = segment.strip_suffix(b"\r").unwrap_or(segment);
        if line.is_empty() {
            lines.push(Line::End);
        } else if let Some(name) = line.strip_prefix(b"event:") {
            lines.push(Line::Event(strip(name)));
        } else if let Some(value) = line.strip_prefix(b"data:") {
            let value = strip(value);
            if recorder.keeps(&value) {
                lines.push(Line::Data(value));
            }
        }
    }
    if let Some(n) = stop_after {
        lines.truncate(n);
    }
    lines
}

/// SSE-looking bytes: fields, comments, blank lines, `\r\n`, long values (past [`PEEK`]),
/// cut UTF-8, and plain junk.
fn sse_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"data: ".to_vec()),
        Just(b"data:".to_vec()),
        Just(b"event: ".to_vec()),
        Just(b"event:".to_vec()),
        Just(b": keep-alive".to_vec()),
        Just(b"id: 7".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n\n".to_vec()),
        Just(b" ".to_vec()),
        Just("hé€😀".as_bytes().to_vec()),
        Just(b"\xe2\x82".to_vec()),
        (1..3 * PEEK).prop_map(|n| vec![b'x'; n]),
        prop::collection::vec(any::<u8>(), 1..24),
        "[a-z{}\":, ]{1,24}".prop_map(String::into_bytes),
    ];
    prop::collection::vec(piece, 0..48).prop_map(|pieces| pieces.concat())
}

fn handler_settings() -> impl Strategy<Value = (Option<u8>, Option<usize>)> {
    (
        prop::option::of(prop::sample::select(&b"x{ ad\xff"[..])),
        prop::option::weighted(0.2, 0..12usize),
    )
}

proptest! {
    #![proptest_config(cases(512, false))]

    #[test]
    fn fuzz_sse_any_split_of_sse_bytes_reads_as_the_model_says(
        bytes in sse_bytes(),
        cuts in cuts(),
        (refuse, stop_after) in handler_settings(),
    ) {
        let whole = read(std::slice::from_ref(&bytes), refuse, stop_after);
        prop_assert_eq!(&whole, &model(&bytes, refuse, stop_after));
        let pieces = split(&bytes, &cuts);
        prop_assert_eq!(read(&pieces, refuse, stop_after), whole);
    }

    #[test]
    fn fuzz_sse_any_split_of_arbitrary_bytes_reads_as_the_model_says(
        bytes in prop::collection::vec(any::<u8>(), 0..1024),
        cuts in cuts(),
        (refuse, stop_after) in handler_settings(),
    ) {
        let whole = read(std::slice::from_ref(&bytes), refuse, stop_after);
        prop_assert_eq!(&whole, &model(&bytes, refuse, stop_after));
        prop_assert_eq!(read(&split(&bytes, &cuts), refuse, stop_after), whole);
    }

    #[test]
    fn fuzz_sse_bytes_one_at_a_time_read_as_the_whole(
        bytes in sse_bytes(),
        refuse in prop::option::of(Just(b'x')),
    ) {
        let singles: Vec<Vec<u8>> = bytes.iter().map(|b| vec![*b]).collect();
        prop_assert_eq!(read(&singles, refuse, None), read(&[bytes], refuse, None));
    }
}
