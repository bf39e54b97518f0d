//! The local input-token estimate, used to answer `count_tokens` without an upstream call.
//!
//! It must be cheap: a Claude Code request is 80–500 KB and the estimate runs on the request
//! path, so no tokenizer runs here. The figure is the body's length over a fixed number of
//! bytes per token. English prose and JSON schemas average about 3.5–4 bytes per cl100k
//! token; 3.5 leans towards over-estimating, which is the safe side for a client deciding
//! when to compact its context. Calibration against a real tokenizer on Claude-Code-shaped
//! bodies, with its measured error, belongs with scenario routing (long-context threshold).

/// Bytes per token the estimate assumes, times ten (integer arithmetic).
const BYTES_PER_TOKEN_X10: u64 = 35;

/// Estimated input tokens of a Messages request body.
pub fn input_tokens(body: &[u8]) -> u64 {
    (body.len() as u64 * 10).div_ceil(BYTES_PER_TOKEN_X10)
}

#[cfg(test)]
mod tests {
    #[test]
    fn grows_with_the_body() {
        assert_eq!(super::input_tokens(b""), 0);
        assert_eq!(super::input_tokens(&[b'a'; 35]), 10);
        assert_eq!(super::input_tokens(&[b'a'; 36]), 11);
    }
}
