//! Reading Server-Sent Events (https://html.spec.whatwg.org/multipage/server-sent-events.html)
//! from bytes as they arrive: the one place ccr splits an SSE body into lines and fields.
//! Lines, `\r\n` endings and UTF-8 may be cut anywhere by a chunk boundary.
//!
//! A line wholly inside one chunk is handed over borrowed, without a copy; only a line cut by
//! a chunk boundary is gathered in a buffer. A handler that reads a few lines of a long stream
//! (the usage scanner) decides from a line's first bytes whether to keep it, so the lines it
//! does not want are skipped without being buffered.

/// How many bytes of a line a handler sees before deciding whether the rest is worth
/// keeping: enough for `data: {"type":"message_delta"`.
pub const PEEK: usize = 64;

/// The longest line gathered: a real chunk is a few KB; a longer line (or one that never
/// ends) is dropped and reported through [`SseHandler::oversized`], so an upstream cannot make
/// ccr hold an unbounded line.
pub const MAX_LINE: usize = 1 << 20;

/// One line of an SSE body, in the fields ccr reads. Comments (`: keep-alive`), `id:`,
/// `retry:` and lines without a colon carry nothing ccr needs and are never handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseLine<'a> {
    /// `event: <name>`, the name without its leading space.
    Event(&'a [u8]),
    /// `data: <value>`, the value without its leading space.
    Data(&'a [u8]),
    /// A blank line: the current event is complete.
    EndOfEvent,
}

/// What a reader hands its lines to.
pub trait SseHandler {
    /// Whether to keep a `data:` line, judged from the start of its value (at most the
    /// line's first [`PEEK`] bytes). A line refused here is skipped and never handed over.
    fn wants_data(&mut self, _start: &[u8]) -> bool {
        true
    }

    fn line(&mut self, line: SseLine<'_>);

    /// A kept line grew past [`MAX_LINE`] before its end; the rest of it is skipped.
    fn oversized(&mut self) {}

    /// True once the handler wants no more lines (its response has ended).
    fn is_done(&self) -> bool {
        false
    }
}

/// What is known about the line cut by the end of the last chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Its first bytes are gathered until there are enough to judge it.
    Peeking,
    /// Kept: every byte is gathered until the newline.
    Keeping,
    /// Not wanted: bytes are dropped until the newline.
    Skipping,
}

/// Splits SSE bytes into lines; feed it chunks with [`SseReader::feed`].
#[derive(Debug)]
pub struct SseReader {
    /// The start of a line cut by a chunk boundary (all of it when kept).
    partial: Vec<u8>,
    cut: Cut,
}

impl Default for SseReader {
    fn default() -> Self {
        SseReader {
            partial: Vec::new(),
            cut: Cut::Peeking,
        }
    }
}

impl SseReader {
    /// Hands every line that ends in `bytes` to `handler`, and keeps a cut last line for the
    /// next chunk. Stops early once the handler is done.
    pub fn feed(&mut self, mut bytes: &[u8], handler: &mut impl SseHandler) {
        while !bytes.is_empty() && !handler.is_done() {
            let Some(newline) = memchr::memchr(b'\n', bytes) else {
                self.gather(bytes, handler);
                return;
            };
            self.end_line(&bytes[..newline], handler);
            bytes = &bytes[newline + 1..];
        }
    }

    /// The body has ended: a last line without its newline is handed over as it is.
    pub fn finish(&mut self, handler: &mut impl SseHandler) {
        if !self.partial.is_empty() && !handler.is_done() {
            self.end_line(&[], handler);
        }
        self.partial.clear();
        self.cut = Cut::Peeking;
    }

    /// `tail` ends the current line (the newline itself is not in it).
    fn end_line(&mut self, tail: &[u8], handler: &mut impl SseHandler) {
        match self.cut {
            Cut::Peeking if self.partial.is_empty() => read_line(tail, true, handler),
            Cut::Peeking | Cut::Keeping => {
                let judged = self.cut == Cut::Keeping;
                self.partial.extend_from_slice(tail);
                read_line(&self.partial, !judged, handler);
            }
            Cut::Skipping => {}
        }
        self.partial.clear();
        self.cut = Cut::Peeking;
    }

    /// Takes bytes of a line whose end has not arrived yet.
    fn gather(&mut self, bytes: &[u8], handler: &mut impl SseHandler) {
        match self.cut {
            Cut::Skipping => {}
            Cut::Keeping if self.partial.len() + bytes.len() > MAX_LINE => {
                self.partial.clear();
                self.cut = Cut::Skipping;
                handler.oversized();
            }
            Cut::Keeping => self.partial.extend_from_slice(bytes),
            Cut::Peeking => {
                let peeked = bytes.len().min(PEEK.saturating_sub(self.partial.len()));
                self.partial.extend_from_slice(&bytes[..peeked]);
                if self.partial.len() < PEEK {
                    return;
                }
                if wanted(&self.partial, handler) {
                    self.cut = Cut::Keeping;
                    self.partial.extend_from_slice(&bytes[peeked..]);
                } else {
                    self.cut = Cut::Skipping;
                    self.partial.clear();
                }
            }
        }
    }
}

/// Whether a line is worth gathering, from its first bytes: `event:` lines always are,
/// `data:` lines when the handler wants them, other lines never.
fn wanted(start: &[u8], handler: &mut impl SseHandler) -> bool {
    if start.starts_with(b"event:") {
        return true;
    }
    match start.strip_prefix(b"data:") {
        Some(value) => handler.wants_data(without_space(value)),
        None => false,
    }
}

/// Hands one whole line to the handler; `judge` asks the handler about a `data:` line first
/// (a cut line that was kept has been asked already).
fn read_line(line: &[u8], judge: bool, handler: &mut impl SseHandler) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return handler.line(SseLine::EndOfEvent);
    }
    if let Some(name) = line.strip_prefix(b"event:") {
        return handler.line(SseLine::Event(without_space(name)));
    }
    let Some(value) = line.strip_prefix(b"data:") else {
        return;
    };
    let value = without_space(value);
    if judge {
        let start = &value[..value
            .len()
            .min(PEEK.saturating_sub(line.len() - value.len()))];
        if !handler.wants_data(start) {
            return;
        }
    }
    handler.line(SseLine::Data(value));
}

/// The spec drops one space after the colon, and only one.
fn without_space(value: &[u8]) -> &[u8] {
    value.strip_prefix(b" ").unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes down every line it gets; refuses data starting with `skip`.
    #[derive(Default)]
    struct Lines {
        seen: Vec<String>,
        skip: Option<&'static [u8]>,
        asked: usize,
        stop_after: Option<usize>,
    }

    impl SseHandler for Lines {
        fn wants_data(&mut self, start: &[u8]) -> bool {
            self.asked += 1;
            assert!(start.len() <= PEEK);
            self.skip.is_none_or(|skip| !start.starts_with(skip))
        }

        fn line(&mut self, line: SseLine<'_>) {
            let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
            self.seen.push(match line {
                SseLine::Event(name) => format!("event {}", text(name)),
                SseLine::Data(value) => format!("data {}", text(value)),
                SseLine::EndOfEvent => "end".into(),
            });
        }

        fn is_done(&self) -> bool {
            self.stop_after.is_some_and(|n| self.seen.len() >= n)
        }
    }

    fn read_in_pieces(body: &[u8], step: usize, mut handler: Lines) -> Lines {
        let mut reader = SseReader::default();
        for piece in body.chunks(step) {
            reader.feed(piece, &mut handler);
        }
        reader.finish(&mut handler);
        handler
    }

    const BODY: &str = "event: a\ndata: {\"x\":\"hé\"}\r\n\r\n: keep-alive\nid: 7\ndata:tight\ndata\n\ndata: [DONE]";

    #[test]
    fn any_split_gives_the_same_fields() {
        let expected = [
            "event a",
            "data {\"x\":\"hé\"}",
            "end",
            "data tight",
            "end",
            "data [DONE]",
        ];
        for step in 1..=BODY.len() {
            let lines = read_in_pieces(BODY.as_bytes(), step, Lines::default());
            assert_eq!(lines.seen, expected, "step {step}");
        }
    }

    #[test]
    fn a_refused_line_is_skipped_in_any_split_without_being_gathered() {
        let long = "x".repeat(10 * PEEK);
        let body = format!("data: {{\"skip\":\"{long}\"}}\n\ndata: {{\"keep\":\"{long}\"}}\n\n");
        for step in [1, 7, PEEK - 1, PEEK, 1000, body.len()] {
            let mut reader = SseReader::default();
            let mut lines = Lines {
                skip: Some(b"{\"skip\""),
                ..Lines::default()
            };
            let mut most_gathered = 0;
            let (first, second) = body.split_at(body.find("\n\n").unwrap());
            for piece in first.as_bytes().chunks(step) {
                reader.feed(piece, &mut lines);
                most_gathered = most_gathered.max(reader.partial.len());
            }
            assert!(most_gathered <= PEEK, "step {step}: {most_gathered}");
            for piece in second.as_bytes().chunks(step) {
                reader.feed(piece, &mut lines);
            }
            assert_eq!(lines.seen.len(), 3, "step {step}");
            assert!(lines.seen[1].starts_with("data {\"keep\""), "step {step}");
            assert_eq!(lines.asked, 2, "each data line is judged once");
        }
    }

    #[test]
    fn reading_stops_once_the_handler_is_done() {
        let lines = Lines {
            stop_after: Some(2),
            ..Lines::default()
        };
        let lines = read_in_pieces(BODY.as_bytes(), BODY.len(), lines);
        assert_eq!(lines.seen, ["event a", "data {\"x\":\"hé\"}"]);
    }
}
