//! Forwarding an upstream SSE stream in whole events: the tail of a chunk that does not yet
//! end an event is held back until the rest arrives. A stream cut mid-event then loses only
//! that half event, and the `error` event that reports the cut lands on a clean boundary,
//! where a strict client can parse it.

use bytes::{Bytes, BytesMut};

/// The largest event held back: a real event is a few KB; past this the upstream is not
/// speaking SSE and the stream ends with an error instead of growing ccr's memory.
pub const MAX_EVENT: usize = 4 << 20;

#[derive(Debug, Default)]
pub struct WholeEvents {
    held: BytesMut,
}

impl WholeEvents {
    /// Takes the next chunk; returns the bytes that complete events, keeping the rest. A
    /// chunk that ends on an event boundary with nothing held passes through without a copy.
    pub fn push(&mut self, chunk: Bytes) -> Option<Bytes> {
        let Some(end) = self.last_event_end(&chunk) else {
            self.held.extend_from_slice(&chunk);
            return None;
        };
        if self.held.is_empty() {
            let out = chunk.slice(..end);
            self.held.extend_from_slice(&chunk[end..]);
            return Some(out);
        }
        self.held.extend_from_slice(&chunk[..end]);
        let out = self.held.split().freeze();
        self.held.extend_from_slice(&chunk[end..]);
        Some(out)
    }

    /// What is held when the stream ends: an unfinished event, forwarded as it came.
    pub fn take_rest(&mut self) -> Option<Bytes> {
        (!self.held.is_empty()).then(|| self.held.split().freeze())
    }

    /// Whether the unfinished event held back has grown past [`MAX_EVENT`].
    pub fn holds_too_much(&self) -> bool {
        self.held.len() > MAX_EVENT
    }

    /// Drops a half event after a failure.
    pub fn discard(&mut self) {
        self.held.clear();
    }

    /// The index just past the last blank line (`\n\n` or `\n\r\n`) that ends in `chunk`,
    /// looking back into the held bytes for a boundary split across chunks.
    fn last_event_end(&self, chunk: &[u8]) -> Option<usize> {
        let byte_at = |i: isize| -> Option<u8> {
            if i >= 0 {
                chunk.get(i as usize).copied()
            } else {
                let back = (-i) as usize;
                self.held.len().checked_sub(back).map(|j| self.held[j])
            }
        };
        let mut search = chunk;
        while let Some(i) = memchr::memrchr(b'\n', search) {
            let i = i as isize;
            let ends_blank_line = byte_at(i - 1) == Some(b'\n')
                || (byte_at(i - 1) == Some(b'\r') && byte_at(i - 2) == Some(b'\n'));
            if ends_blank_line {
                return Some(i as usize + 1);
            }
            search = &search[..i as usize];
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_EVENTS: &str = "event: a\ndata: {\"x\":1}\n\nevent: b\ndata: {\"y\":2}\n\n";

    #[test]
    fn whole_events_pass_through_without_a_copy() {
        let mut framer = WholeEvents::default();
        let chunk = Bytes::from_static(TWO_EVENTS.as_bytes());
        let out = framer.push(chunk.clone()).unwrap();
        assert_eq!(out.as_ptr(), chunk.as_ptr());
        assert_eq!(out, TWO_EVENTS.as_bytes());
        assert!(framer.take_rest().is_none());
    }

    #[test]
    fn any_split_yields_the_same_bytes_in_whole_events() {
        for step in 1..=TWO_EVENTS.len() {
            let mut framer = WholeEvents::default();
            let mut out = Vec::new();
            for piece in TWO_EVENTS.as_bytes().chunks(step) {
                if let Some(bytes) = framer.push(Bytes::copy_from_slice(piece)) {
                    assert!(bytes.ends_with(b"\n\n"), "only whole events go out");
                    out.extend_from_slice(&bytes);
                }
            }
            assert!(framer.take_rest().is_none());
            assert_eq!(out, TWO_EVENTS.as_bytes(), "step {step}");
        }
    }

    #[test]
    fn crlf_boundaries_and_a_half_event_at_the_end() {
        let mut framer = WholeEvents::default();
        let out = framer
            .push(Bytes::from_static(b"data: 1\r\n\r\ndata: 2"))
            .unwrap();
        assert_eq!(out, &b"data: 1\r\n\r\n"[..]);
        assert_eq!(framer.take_rest().unwrap(), &b"data: 2"[..]);
        framer.push(Bytes::from_static(b"data: 3"));
        framer.discard();
        assert!(framer.take_rest().is_none());
    }
}
