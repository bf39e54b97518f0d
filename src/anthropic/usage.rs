//! Token usage, read on the side from response bytes that are forwarded unchanged.

use serde::{Deserialize, Serialize};

use super::sse::{SseHandler, SseLine, SseReader};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    // Declared in the order the API writes them.
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
}

/// The usage fields as they appear in a response; absent ones leave the total unchanged.
#[derive(Deserialize, Default)]
struct UsagePatch {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl Usage {
    fn apply(&mut self, patch: &UsagePatch) {
        let fields = [
            (&mut self.input_tokens, patch.input_tokens),
            (&mut self.output_tokens, patch.output_tokens),
            (
                &mut self.cache_creation_input_tokens,
                patch.cache_creation_input_tokens,
            ),
            (
                &mut self.cache_read_input_tokens,
                patch.cache_read_input_tokens,
            ),
        ];
        for (field, value) in fields {
            if let Some(value) = value {
                *field = value;
            }
        }
    }
}

/// Largest non-streaming body kept to read its usage; larger ones are counted without it.
const MAX_JSON_BODY: usize = 16 * 1024 * 1024;

/// Watches a response body as it passes and reports its usage at the end. Only the few lines
/// that carry usage are parsed; the rest are skipped after a look at their first bytes.
#[derive(Debug)]
pub enum UsageScanner {
    Sse(SseUsage),
    Json(JsonUsage),
    None,
}

impl UsageScanner {
    /// Picks the scanner for a response by its content type.
    pub fn for_content_type(content_type: Option<&str>) -> UsageScanner {
        match content_type {
            Some(ct) if ct.starts_with("text/event-stream") => {
                UsageScanner::Sse(SseUsage::default())
            }
            Some(ct) if ct.starts_with("application/json") => {
                UsageScanner::Json(JsonUsage::default())
            }
            _ => UsageScanner::None,
        }
    }

    pub fn observe(&mut self, chunk: &[u8]) {
        match self {
            UsageScanner::Sse(s) => s.observe(chunk),
            UsageScanner::Json(j) => j.observe(chunk),
            UsageScanner::None => {}
        }
    }

    pub fn usage(&self) -> Option<Usage> {
        match self {
            UsageScanner::Sse(s) => s.usage(),
            UsageScanner::Json(j) => j.usage(),
            UsageScanner::None => None,
        }
    }
}

/// Usage read from an SSE body: `message_start` carries the input side, `message_delta`
/// the output. Only their `data:` lines are parsed; the reader skips the others after a
/// look at their first bytes.
#[derive(Debug, Default)]
pub struct SseUsage {
    lines: SseReader,
    found: UsageLines,
}

/// What the usage lines said so far, and what the current event is.
#[derive(Debug, Default)]
struct UsageLines {
    usage: Usage,
    seen: bool,
    /// Whether the current event's `event:` name is one that carries usage; `None` before
    /// a name (or in a stream without names).
    event_has_usage: Option<bool>,
}

impl SseUsage {
    pub fn observe(&mut self, chunk: &[u8]) {
        self.lines.feed(chunk, &mut self.found);
    }

    fn usage(&self) -> Option<Usage> {
        self.found.seen.then_some(self.found.usage)
    }
}

impl SseHandler for UsageLines {
    fn wants_data(&mut self, start: &[u8]) -> bool {
        self.event_has_usage.unwrap_or_else(|| {
            contains(start, b"\"message_start\"") || contains(start, b"\"message_delta\"")
        })
    }

    fn line(&mut self, line: SseLine<'_>) {
        match line {
            SseLine::Event(name) => {
                self.event_has_usage = Some(name == b"message_start" || name == b"message_delta");
            }
            SseLine::Data(data) => self.read_data(data),
            SseLine::EndOfEvent => self.event_has_usage = None,
        }
    }
}

impl UsageLines {
    fn read_data(&mut self, data: &[u8]) {
        #[derive(Deserialize)]
        struct Message {
            #[serde(default)]
            usage: Option<UsagePatch>,
        }
        #[derive(Deserialize)]
        struct Event {
            #[serde(default)]
            message: Option<Message>,
            #[serde(default)]
            usage: Option<UsagePatch>,
        }
        let Ok(event) = serde_json::from_slice::<Event>(data) else {
            return;
        };
        let patch = event.usage.or(event.message.and_then(|m| m.usage));
        if let Some(patch) = patch {
            self.usage.apply(&patch);
            self.seen = true;
        }
    }
}

#[derive(Debug, Default)]
pub struct JsonUsage {
    body: Vec<u8>,
    overflowed: bool,
}

impl JsonUsage {
    fn observe(&mut self, chunk: &[u8]) {
        if self.overflowed || self.body.len() + chunk.len() > MAX_JSON_BODY {
            self.overflowed = true;
            self.body = Vec::new();
            return;
        }
        self.body.extend_from_slice(chunk);
    }

    fn usage(&self) -> Option<Usage> {
        #[derive(Deserialize)]
        struct Body {
            usage: Option<UsagePatch>,
        }
        let body: Body = serde_json::from_slice(&self.body).ok()?;
        let mut usage = Usage::default();
        usage.apply(&body.usage?);
        Some(usage)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"m\",\"usage\":{\"input_tokens\":120,\"cache_creation_input_tokens\":7,\"cache_read_input_tokens\":30,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"héllo \\\"usage\\\":{\\\"output_tokens\\\":999}\"}}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":42}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );

    fn expected() -> Usage {
        Usage {
            input_tokens: 120,
            output_tokens: 42,
            cache_creation_input_tokens: 7,
            cache_read_input_tokens: 30,
        }
    }

    #[test]
    fn reads_usage_from_whole_stream() {
        let mut s = UsageScanner::for_content_type(Some("text/event-stream; charset=utf-8"));
        s.observe(STREAM.as_bytes());
        assert_eq!(s.usage(), Some(expected()));
    }

    #[test]
    fn reads_usage_one_byte_at_a_time() {
        let mut s = UsageScanner::for_content_type(Some("text/event-stream"));
        for b in STREAM.as_bytes() {
            s.observe(std::slice::from_ref(b));
        }
        assert_eq!(s.usage(), Some(expected()));
    }

    #[test]
    fn crlf_lines_and_missing_event_names() {
        let text = "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\r\n\r\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}\r\n\r\n";
        let mut s = UsageScanner::for_content_type(Some("text/event-stream"));
        s.observe(text.as_bytes());
        let u = s.usage().unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (5, 9));
    }

    #[test]
    fn json_body_usage() {
        let mut s = UsageScanner::for_content_type(Some("application/json"));
        s.observe(br#"{"id":"msg","usage":{"input_tokens":3,"#);
        s.observe(br#""output_tokens":4}}"#);
        assert_eq!(s.usage().unwrap().output_tokens, 4);
    }
}
