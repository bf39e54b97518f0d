//! What every converter's output must be, whatever its input: the Anthropic event grammar
//! checked on `StreamEvent` values, the size of the output on the wire, and a form of the
//! events without the ids ccr draws (so two runs can be compared).

use ccr::anthropic::events::{BlockKind, Delta, SseWriter, StreamEvent};
use ccr::providers::WireConverter;

use super::bounded;

/// Feeds `pieces` one by one, then ends the body, as `converted_events` does: nothing is fed
/// once the converter is done. Returns every event, after checking that the body's end
/// always ends the stream and that a converter that is done stays silent.
pub fn run<C: WireConverter>(mut converter: C, pieces: Vec<Vec<u8>>) -> Vec<StreamEvent> {
    bounded(move || {
        let mut out = Vec::new();
        for piece in &pieces {
            if converter.is_done() {
                break;
            }
            converter.feed(piece, &mut out);
        }
        if !converter.is_done() {
            converter.finish(&mut out);
        }
        assert!(converter.is_done(), "finish always ends the stream");
        // Anything after the end is ignored by callers; a done converter must stay silent.
        let before = out.len();
        converter.feed(b"data: {\"choices\":[]}\n\n", &mut out);
        converter.finish(&mut out);
        assert_eq!(out.len(), before, "a done converter emits nothing more");
        out
    })
}

#[derive(PartialEq)]
enum Open {
    Text,
    Thinking { signed: bool },
    Tool { input: String },
}

/// Checks the grammar of a finished stream: `message_start` first (or a lone `error`),
/// blocks numbered 0, 1, 2… opened and closed one at a time with deltas of their own kind,
/// thinking signed, tool input valid JSON, one `message_delta` right before `message_stop`,
/// and exactly one end — `message_stop` or `error` — with nothing after it.
pub fn check(events: &[StreamEvent]) -> Result<(), String> {
    let fail = |at: usize, why: &str| Err(format!("event {at}: {why}\nevents: {events:#?}"));
    let mut started = false;
    let mut next_index = 0u32;
    let mut open: Option<Open> = None;
    let mut delta_seen = false;
    let mut ended = false;
    for (at, event) in events.iter().enumerate() {
        if ended {
            return fail(at, "an event after the end");
        }
        match event {
            StreamEvent::Metering { .. } | StreamEvent::Ping => {}
            StreamEvent::Error(_) => ended = true,
            StreamEvent::MessageStart { .. } if started => {
                return fail(at, "a second message_start");
            }
            StreamEvent::MessageStart { .. } => started = true,
            _ if !started => return fail(at, "content before message_start"),
            _ if delta_seen && !matches!(event, StreamEvent::MessageStop) => {
                return fail(at, "message_delta not followed by message_stop");
            }
            StreamEvent::BlockStart { index, block } => {
                if open.is_some() {
                    return fail(at, "a block starts while another is open");
                }
                if *index != next_index {
                    return fail(at, "blocks are numbered 0, 1, 2…");
                }
                next_index += 1;
                open = Some(match block {
                    BlockKind::Text => Open::Text,
                    BlockKind::Thinking => Open::Thinking { signed: false },
                    BlockKind::ToolUse { id, .. } if id.is_empty() => {
                        return fail(at, "a tool_use block without an id");
                    }
                    BlockKind::ToolUse { .. } => Open::Tool {
                        input: String::new(),
                    },
                });
            }
            StreamEvent::Delta { index, delta } => {
                if *index + 1 != next_index {
                    return fail(at, "a delta for another block than the open one");
                }
                match (open.as_mut(), delta) {
                    (Some(Open::Text), Delta::Text(_)) => {}
                    (Some(Open::Thinking { signed: false }), Delta::Thinking(_)) => {}
                    (Some(Open::Thinking { signed }), Delta::Signature(s)) if !s.is_empty() => {
                        *signed = true
                    }
                    (Some(Open::Tool { input }), Delta::InputJson(json)) => input.push_str(json),
                    (None, _) => return fail(at, "a delta outside a block"),
                    _ => return fail(at, "a delta that does not match its block"),
                }
            }
            StreamEvent::BlockStop { index } => {
                if *index + 1 != next_index {
                    return fail(at, "a stop for another block than the open one");
                }
                match open.take() {
                    None => return fail(at, "a stop without an open block"),
                    Some(Open::Thinking { signed: false }) => {
                        return fail(at, "a thinking block closed without a signature");
                    }
                    Some(Open::Tool { input }) => {
                        if serde_json::from_str::<serde_json::Value>(&input).is_err() {
                            return fail(at, "tool input that is not JSON");
                        }
                    }
                    Some(_) => {}
                }
            }
            StreamEvent::MessageDelta { .. } => {
                if open.is_some() {
                    return fail(at, "message_delta while a block is open");
                }
                delta_seen = true;
            }
            StreamEvent::MessageStop if !delta_seen => {
                return fail(at, "message_stop without message_delta");
            }
            StreamEvent::MessageStop => ended = true,
        }
    }
    if !ended {
        return fail(events.len(), "the stream never ended");
    }
    Ok(())
}

/// Bytes the events take on the wire as SSE; internal events count a little too, since they
/// are held in memory on the way.
pub fn wire_size(events: &[StreamEvent]) -> usize {
    let mut writer = SseWriter::new();
    let mut internal = 0;
    for event in events {
        if let StreamEvent::Metering { .. } = event {
            internal += 32;
        }
        writer.write(event);
    }
    writer.take().len() + internal
}

/// The output may be larger than the input (an event's framing is bigger than a tiny
/// upstream chunk), but only by a constant factor, plus the fixed start and end.
pub const GROWTH: usize = 16;
pub const FIXED: usize = 4096;

/// The events with the ids ccr draws per run blanked: message ids, tool ids ccr made up
/// (Gemini's signature-carrying ones included), thinking signatures.
pub fn without_drawn_ids(events: &[StreamEvent]) -> Vec<StreamEvent> {
    events
        .iter()
        .cloned()
        .map(|event| match event {
            StreamEvent::MessageStart { model, usage, .. } => StreamEvent::MessageStart {
                id: String::new(),
                model,
                usage,
            },
            StreamEvent::BlockStart {
                index,
                block: BlockKind::ToolUse { id, name },
            } if ["toolu_ccr", "toolu_gs", "toolu_gh"]
                .iter()
                .any(|drawn| id.starts_with(drawn)) =>
            {
                StreamEvent::BlockStart {
                    index,
                    block: BlockKind::ToolUse {
                        id: String::new(),
                        name,
                    },
                }
            }
            StreamEvent::Delta {
                index,
                delta: Delta::Signature(_),
            } => StreamEvent::Delta {
                index,
                delta: Delta::Signature(String::new()),
            },
            other => other,
        })
        .collect()
}
