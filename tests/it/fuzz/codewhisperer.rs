//! The AWS event-stream frame decoder and the CodeWhisperer converter: arbitrary bytes,
//! generated frames (encoded with AWS's own codec, as `support::mock_upstream::cw_event`
//! does), frames whose bytes were mutated and then sealed again with correct lengths and
//! CRCs (so the mutation reaches the header and payload parsers), all fed in arbitrary
//! splits. Nothing panics or hangs: the decoder always answers, and the converter always
//! ends its stream exactly once, well-formed, the same in any split and within a constant
//! factor of its input.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use ccr::providers::codewhisperer::eventstream::FrameReader;
use ccr::providers::codewhisperer::stream::Converter;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

use super::grammar::{FIXED, GROWTH, check, run, wire_size, without_drawn_ids};
use super::{bounded, cases, cuts, mutate, mutations, split};

fn convert(pieces: Vec<Vec<u8>>) -> Vec<ccr::anthropic::events::StreamEvent> {
    run(Converter::new("fuzz", "claude-fuzz", 100), pieces)
}

fn holds(bytes: &[u8], pieces: Vec<Vec<u8>>) -> Result<(), TestCaseError> {
    let whole = convert(vec![bytes.to_vec()]);
    check(&whole).map_err(TestCaseError::fail)?;
    let size = wire_size(&whole);
    prop_assert!(
        size <= GROWTH * bytes.len() + FIXED,
        "{size} bytes out of {} in: {whole:#?}",
        bytes.len()
    );
    let cut = convert(pieces.clone());
    prop_assert_eq!(without_drawn_ids(&cut), without_drawn_ids(&whole));
    decodes(pieces);
    Ok(())
}

/// The frame reader alone: every call answers, a frame is never reported twice, and once
/// it reports an error the caller stops (as the converter does).
fn decodes(pieces: Vec<Vec<u8>>) {
    let total: usize = pieces.iter().map(Vec::len).sum();
    bounded(move || {
        let mut reader = FrameReader::default();
        let mut frames = 0usize;
        for piece in &pieces {
            reader.push(piece);
            loop {
                match reader.next_message() {
                    Ok(Some(_)) => frames += 1,
                    Ok(None) => break,
                    Err(error) => {
                        assert!(!error.to_string().is_empty());
                        return;
                    }
                }
                assert!(frames * 16 <= total, "{frames} frames out of {total} bytes");
            }
        }
        let _ = reader.has_partial_frame();
    });
}

/// A frame with these headers and payload, encoded by AWS's codec.
fn frame(headers: Vec<Header>, payload: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    write_message_to(&Message::new_from_parts(headers, payload), &mut out)
        .expect("a generated frame encodes");
    out
}

fn string_header(name: &str, value: &str) -> Header {
    Header::new(
        name.to_string(),
        HeaderValue::String(value.to_string().into()),
    )
}

/// The headers of a CodeWhisperer event.
fn event_headers(event_type: &str) -> Vec<Header> {
    vec![
        string_header(":message-type", "event"),
        string_header(":event-type", event_type),
        string_header(":content-type", "application/json"),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-z ]{0,8}", 1 => "(?s).{0,8}"]
}

/// A number as CodeWhisperer might send it, or not.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0.0..100.0f64).prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::from)),
        any::<i64>().prop_map(Value::from),
        Just(json!("12")),
    ]
}

/// The payload and headers of one frame of a CodeWhisperer response.
fn event() -> impl Strategy<Value = (Vec<Header>, Vec<u8>)> {
    let json_event = |kind: &'static str, payload: Value| {
        (event_headers(kind), payload.to_string().into_bytes())
    };
    prop_oneof![
        6 => text().prop_map(move |t| json_event("assistantResponseEvent", json!({"content": t}))),
        4 => (
            prop::sample::select(&["tooluse_a", "tooluse_b", ""][..]),
            prop::option::of(prop::sample::select(&["Read", "Bash", ""][..])),
            prop::option::of(prop_oneof![
                Just(r#"{"path":"#.to_string()),
                Just(r#""a.rs"}"#.to_string()),
                Just("{}".to_string()),
                "[{}\":,a-z ]{0,8}",
            ]),
            any::<bool>(),
        )
            .prop_map(move |(id, name, input, stop)| {
                let mut e = json!({"toolUseId": id, "stop": stop});
                if let Some(n) = name { e["name"] = json!(n); }
                if let Some(i) = input { e["input"] = json!(i); }
                json_event("toolUseEvent", e)
            }),
        1 => number().prop_map(move |n| json_event("contextUsageEvent", json!({"contextUsagePercentage": n}))),
        1 => number().prop_map(move |n| json_event("meteringEvent", json!({"unit": "credit", "usage": n}))),
        1 => Just(json_event("messageMetadataEvent", json!({"conversationId": "c"}))),
        1 => (
            prop::sample::select(&["ThrottlingException", "ServiceQuotaExceededException", "ValidationException", "AccessDeniedException", "InternalServerException"][..]),
            text(),
        )
            .prop_map(|(kind, message)| (
                vec![string_header(":message-type", "exception"), string_header(":exception-type", kind)],
                json!({"message": message}).to_string().into_bytes(),
            )),
        1 => text().prop_map(|detail| (
            vec![string_header(":message-type", "error"), string_header(":error-code", "InternalFailure"), string_header(":error-message", &detail)],
            Vec::new(),
        )),
        // Headers of every type, names and payloads of any bytes.
        1 => (
            prop::collection::vec(header(), 0..4),
            prop::collection::vec(any::<u8>(), 0..32),
        ),
        1 => (text(), prop::collection::vec(any::<u8>(), 0..32))
            .prop_map(|(kind, payload)| (event_headers(&kind), payload)),
    ]
}

fn header() -> impl Strategy<Value = Header> {
    let value = prop_oneof![
        any::<bool>().prop_map(HeaderValue::Bool),
        any::<i8>().prop_map(HeaderValue::Byte),
        any::<i16>().prop_map(HeaderValue::Int16),
        any::<i32>().prop_map(HeaderValue::Int32),
        any::<i64>().prop_map(HeaderValue::Int64),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(|b| HeaderValue::ByteArray(b.into())),
        "(?s).{0,8}".prop_map(|s| HeaderValue::String(s.into())),
        any::<u128>().prop_map(HeaderValue::Uuid),
    ];
    (
        prop_oneof![
            Just(":message-type".to_string()),
            Just(":event-type".to_string()),
            "(?s).{1,8}"
        ],
        value,
    )
        .prop_map(|(name, value)| Header::new(name, value))
}

/// A stream of generated frames, encoded.
fn frames() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(event().prop_map(|(h, p)| frame(h, p)), 0..16)
}

/// Takes a frame apart into its headers and payload bytes.
fn parts(frame: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let word = |i: usize| u32::from_be_bytes(frame[i..i + 4].try_into().unwrap()) as usize;
    let total = word(0);
    // A frame sealed here before may declare a headers length that lies.
    let headers = word(4).min(total - 16);
    (
        frame[12..12 + headers].to_vec(),
        frame[12 + headers..total - 4].to_vec(),
    )
}

/// A frame of these header and payload bytes, with lengths and CRCs that match;
/// `headers_lie` shifts the declared headers length (the prelude CRC still matches).
fn seal(headers: &[u8], payload: &[u8], headers_lie: i8) -> Vec<u8> {
    let total = (16 + headers.len() + payload.len()) as u32;
    let declared = (headers.len() as i64 + i64::from(headers_lie)).clamp(0, u32::MAX.into()) as u32;
    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&declared.to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(headers);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// One frame's inside mutated, then sealed again so the decoder reads past the CRCs.
#[derive(Debug, Clone)]
struct Reseal {
    frame: Index,
    header_edits: Vec<super::Mutation>,
    payload_edits: Vec<super::Mutation>,
    headers_lie: i8,
}

fn reseal() -> impl Strategy<Value = Reseal> {
    (
        any::<Index>(),
        prop::collection::vec(super::mutation(), 0..4),
        prop::collection::vec(super::mutation(), 0..4),
        prop_oneof![8 => Just(0i8), 1 => any::<i8>()],
    )
        .prop_map(|(frame, header_edits, payload_edits, headers_lie)| Reseal {
            frame,
            header_edits,
            payload_edits,
            headers_lie,
        })
}

proptest! {
    #![proptest_config(cases(256, false))]

    #[test]
    fn fuzz_codewhisperer_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        cuts in cuts(),
    ) {
        let pieces = split(&bytes, &cuts);
        holds(&bytes, pieces)?;
    }

    /// Arbitrary bytes behind a valid prelude, so the decoder gets past its first check.
    #[test]
    fn fuzz_codewhisperer_valid_prelude_then_arbitrary_bytes(
        total in prop_oneof![16u32..2048, any::<u32>()],
        headers in prop_oneof![0u32..64, any::<u32>()],
        rest in prop::collection::vec(any::<u8>(), 0..2048),
        cuts in cuts(),
    ) {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&total.to_be_bytes());
        bytes.extend_from_slice(&headers.to_be_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        bytes.extend_from_slice(&rest);
        let pieces = split(&bytes, &cuts);
        holds(&bytes, pieces)?;
    }

    #[test]
    fn fuzz_codewhisperer_generated_frames(frames in frames(), cuts in cuts()) {
        let bytes = frames.concat();
        let pieces = split(&bytes, &cuts);
        holds(&bytes, pieces)?;
    }

    #[test]
    fn fuzz_codewhisperer_mutated_frames(
        frames in frames(),
        edits in mutations(6),
        cuts in cuts(),
    ) {
        let mut bytes = frames.concat();
        mutate(&mut bytes, &edits);
        let pieces = split(&bytes, &cuts);
        holds(&bytes, pieces)?;
    }

    #[test]
    fn fuzz_codewhisperer_mutated_and_resealed_frames(
        mut frames in frames().prop_filter("at least one frame", |f| !f.is_empty()),
        reseals in prop::collection::vec(reseal(), 1..4),
        cuts in cuts(),
    ) {
        for edit in &reseals {
            let at = edit.frame.index(frames.len());
            let (mut headers, mut payload) = parts(&frames[at]);
            mutate(&mut headers, &edit.header_edits);
            mutate(&mut payload, &edit.payload_edits);
            frames[at] = seal(&headers, &payload, edit.headers_lie);
        }
        let bytes = frames.concat();
        let pieces = split(&bytes, &cuts);
        holds(&bytes, pieces)?;
    }
}
