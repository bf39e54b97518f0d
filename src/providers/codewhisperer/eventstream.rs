//! AWS event-stream frames read incrementally from a response body. Frames are decoded by
//! `aws-smithy-eventstream` (CRCs included); each 12-byte prelude is checked here first,
//! because the codec would otherwise wait forever for an absurd declared length.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::{Buf, BytesMut};

/// The largest frame accepted; CodeWhisperer's are a few KB.
pub const MAX_FRAME: u32 = 16 * 1024 * 1024;
const PRELUDE: usize = 12;
/// Prelude and message CRC.
const MIN_FRAME: u32 = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("event-stream prelude checksum mismatch: the stream is corrupt")]
    PreludeCrc,
    #[error(
        "event-stream frame declares {0} bytes, outside 16 bytes to 16 MiB: the stream is corrupt"
    )]
    Length(u32),
    #[error("event-stream frame is invalid: {0}")]
    Decode(String),
}

#[derive(Default)]
pub struct FrameReader {
    buf: BytesMut,
    decoder: MessageFrameDecoder,
    /// The prelude at the front of `buf` (or already inside the decoder) was checked.
    prelude_checked: bool,
}

impl FrameReader {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, `None` until more bytes arrive.
    pub fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        if !self.prelude_checked {
            if self.buf.len() < PRELUDE {
                return Ok(None);
            }
            check_prelude(&self.buf[..PRELUDE])?;
            self.prelude_checked = true;
        }
        match self.decoder.decode_frame(&mut self.buf) {
            Ok(DecodedFrame::Complete(message)) => {
                self.prelude_checked = false;
                Ok(Some(message))
            }
            Ok(DecodedFrame::Incomplete) => Ok(None),
            Err(error) => Err(FrameError::Decode(error.to_string())),
        }
    }

    /// Bytes received that do not make a whole frame yet.
    pub fn has_partial_frame(&self) -> bool {
        self.buf.has_remaining() || self.prelude_checked
    }
}

fn check_prelude(prelude: &[u8]) -> Result<(), FrameError> {
    let word =
        |i: usize| u32::from_be_bytes([prelude[i], prelude[i + 1], prelude[i + 2], prelude[i + 3]]);
    if crc32fast::hash(&prelude[..8]) != word(8) {
        return Err(FrameError::PreludeCrc);
    }
    let total = word(0);
    let headers = word(4);
    if !(MIN_FRAME..=MAX_FRAME).contains(&total) || headers > total - MIN_FRAME {
        return Err(FrameError::Length(total));
    }
    Ok(())
}

/// A string header's value.
pub fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| match h.value() {
            HeaderValue::String(s) => Some(s.as_str()),
            _ => None,
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::Header;

    pub(crate) fn frame(event_type: &str, payload: &str) -> Vec<u8> {
        let message = Message::new(payload.as_bytes().to_vec())
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("event".into()),
            ))
            .add_header(Header::new(
                ":event-type",
                HeaderValue::String(event_type.to_string().into()),
            ))
            .add_header(Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ));
        let mut out = Vec::new();
        write_message_to(&message, &mut out).unwrap();
        out
    }

    #[test]
    fn frames_split_anywhere_or_packed_together_decode() {
        let mut bytes = frame("assistantResponseEvent", r#"{"content":"héllo"}"#);
        bytes.extend(frame("assistantResponseEvent", r#"{"content":" wörld"}"#));
        for step in [1, 3, 7, bytes.len()] {
            let mut reader = FrameReader::default();
            let mut payloads = Vec::new();
            for piece in bytes.chunks(step) {
                reader.push(piece);
                while let Some(message) = reader.next_message().unwrap() {
                    assert_eq!(
                        header(&message, ":event-type"),
                        Some("assistantResponseEvent")
                    );
                    payloads.push(String::from_utf8(message.payload().to_vec()).unwrap());
                }
            }
            assert_eq!(
                payloads,
                [r#"{"content":"héllo"}"#, r#"{"content":" wörld"}"#],
                "step {step}"
            );
            assert!(!reader.has_partial_frame());
        }
    }

    #[test]
    fn corrupt_frames_are_errors_not_hangs() {
        let mut bad_crc = frame("assistantResponseEvent", r#"{"content":"x"}"#);
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 0xff;
        let mut reader = FrameReader::default();
        reader.push(&bad_crc);
        assert!(matches!(reader.next_message(), Err(FrameError::Decode(_))));

        let mut huge = Vec::new();
        huge.extend_from_slice(&(64u32 * 1024 * 1024).to_be_bytes());
        huge.extend_from_slice(&0u32.to_be_bytes());
        let crc = crc32fast::hash(&huge);
        huge.extend_from_slice(&crc.to_be_bytes());
        let mut reader = FrameReader::default();
        reader.push(&huge);
        assert_eq!(
            reader.next_message(),
            Err(FrameError::Length(64 * 1024 * 1024))
        );

        let mut reader = FrameReader::default();
        reader.push(&[0, 0, 0, 40, 0, 0, 0, 0, 1, 2, 3, 4]);
        assert_eq!(reader.next_message(), Err(FrameError::PreludeCrc));
    }
}
