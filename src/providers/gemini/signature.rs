//! Gemini's `thoughtSignature`, carried inside the `tool_use` id of the call it came with.
//!
//! Gemini 3 rejects a history that replays a function call without the signature it was sent
//! with. Claude Code keeps every `tool_use` id and sends it back, but not reliably its
//! thinking blocks, so the id is the one place a signature survives the round trip without
//! state in ccr. Signatures are base64 (`+/=`) and Anthropic ids must match
//! `^[a-zA-Z0-9_-]+$`: the base64 alphabet is mapped onto the URL-safe one and the padding,
//! which the length implies, is dropped; anything else is written as hex.

use crate::anthropic::ids;

/// `toolu_gs<unique>_<url-safe base64>`: the unique part keeps ids distinct even if two calls
/// ever carried the same signature.
const BASE64_MARK: &str = "gs";
/// `toolu_gh<unique>_<hex>`, for a signature that is not canonical base64.
const HEX_MARK: &str = "gh";

/// A `tool_use` id that carries `signature`.
pub fn encode(signature: &str) -> String {
    let unique = ids::tool_use_id();
    // `toolu_ccr<hex>`: the part after the prefix holds no `_`, which the decoder relies on.
    let unique = unique.trim_start_matches("toolu_ccr");
    match url_safe(signature) {
        Some(encoded) => format!("toolu_{BASE64_MARK}{unique}_{encoded}"),
        None => format!("toolu_{HEX_MARK}{unique}_{}", hex(signature.as_bytes())),
    }
}

/// The signature an id made by [`encode`] carries; `None` for any other id.
pub fn decode(id: &str) -> Option<String> {
    let rest = id.strip_prefix("toolu_")?;
    let (head, payload) = rest.split_once('_')?;
    if let Some(unique) = head.strip_prefix(BASE64_MARK)
        && is_hex(unique)
    {
        return standard_base64(payload);
    }
    let unique = head.strip_prefix(HEX_MARK)?;
    if !is_hex(unique) {
        return None;
    }
    unhex(payload)
}

fn is_hex(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Canonical base64 in the URL-safe alphabet without padding; `None` when `signature` is not
/// canonical base64 (its padding could not be restored exactly).
fn url_safe(signature: &str) -> Option<String> {
    let body = signature.trim_end_matches('=');
    let padding = signature.len() - body.len();
    let canonical = !body.is_empty()
        && signature.len().is_multiple_of(4)
        && padding == (4 - body.len() % 4) % 4
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    if !canonical {
        return None;
    }
    Some(
        body.chars()
            .map(|c| match c {
                '+' => '-',
                '/' => '_',
                c => c,
            })
            .collect(),
    )
}

fn standard_base64(encoded: &str) -> Option<String> {
    if encoded.is_empty()
        || encoded.len() % 4 == 1
        || !encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    let mut signature: String = encoded
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !signature.len().is_multiple_of(4) {
        signature.push('=');
    }
    Some(signature)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn unhex(text: &str) -> Option<String> {
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_anthropic_id(id: &str) -> bool {
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    #[test]
    fn base64_signatures_round_trip_through_a_valid_id() {
        for signature in [
            "CiQB0e2Kb+/x",
            "CiQB0e2Kb+/xyw==",
            "CiQB0e2Kb+/xyzA=",
            "Ab+/",
            "EvgBCvUBAdHtim9qC9J0mF/oSF8p3kPXCg+a6sPH1aFx3HHjZUvpdCK+1Gs=",
        ] {
            let id = encode(signature);
            assert!(id.starts_with("toolu_gs"), "{id}");
            assert!(is_anthropic_id(&id), "{id}");
            assert_eq!(decode(&id).as_deref(), Some(signature), "{id}");
        }
    }

    #[test]
    fn other_signatures_round_trip_as_hex() {
        for signature in [
            "not base64!",
            "skip_thought_signature_validator",
            "CiQB0e2Kb+/xy=",
            "a=b",
            "é",
        ] {
            let id = encode(signature);
            assert!(id.starts_with("toolu_gh"), "{id}");
            assert!(is_anthropic_id(&id), "{id}");
            assert_eq!(decode(&id).as_deref(), Some(signature), "{id}");
        }
    }

    #[test]
    fn two_ids_for_one_signature_differ() {
        assert_ne!(encode("Ab+/"), encode("Ab+/"));
    }

    #[test]
    fn ids_ccr_or_others_made_carry_no_signature() {
        for id in [
            "toolu_01ABCdef",
            "toolu_ccr0123456789abcdef00000001",
            "call_abc",
            "toolu_gs_",
            "toolu_gsxyz_AAAA",
            "toolu_gh12_zz",
            "toolu_gh12_abc",
            "toolu_gs12_A",
            "",
        ] {
            assert_eq!(decode(id), None, "{id}");
        }
    }
}
